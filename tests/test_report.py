"""``balpm compare``'s report folder read as a user offline would: figures that draw without internet, PNGs through
kaleido and Debian's Chromium (or a note that says exactly why not), datasets named as pools, empty tables explained.

Run folders are written by hand in the documented layout (``config.json``, ``metrics.csv``, ``acquired.csv``), so
these tests need no training.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from balpm.report import ACQUIRED_COLUMNS, METRIC_COLUMNS, write_report

POOL = "/data/team/preferences/my-pairs.jsonl"  # a pool given by path, as `balpm run --dataset PATH` records it


def _run_folder(root: Path, policy: str, seed: int, dataset: str = POOL, slope: float = 0.01) -> Path:
    """One run folder of three rounds (16, 32, 48 labels) whose test log-likelihood rises by ``slope`` a round."""
    d = root / f"{policy}-{seed}"
    d.mkdir(parents=True)
    (d / "config.json").write_text(json.dumps({"config": {"dataset": dataset, "policy": policy, "seed": seed},
                                               "policy_label": policy}))
    rows = []
    for r in range(3):
        row = dict.fromkeys(METRIC_COLUMNS, np.nan)
        row |= {"dataset": dataset, "policy": policy, "seed": seed, "round": r, "n_labeled": 16 * (r + 1),
                "split": "test", "log_likelihood": -0.69 + slope * r + 0.001 * seed, "accuracy": 0.5 + 0.02 * r,
                "brier": 0.25 - 0.01 * r, "ece": 0.05, "mean_bald": 0.01, "n_eval": 100}
        rows.append(row)
    pd.DataFrame(rows, columns=list(METRIC_COLUMNS)).to_csv(d / "metrics.csv", index=False)
    acq = [{"round": r, "pick": i, "id": f"p{r}-{i}", "label": 1,
            "uncertainty": np.nan if r == 0 else 0.01, "entropy_term": np.nan if r == 0 or policy == "random" else 0.2,
            "score": np.nan if r == 0 else 0.21, "ratio": np.nan if r == 0 else 0.05}
           for r in range(3) for i in range(4)]
    pd.DataFrame(acq, columns=list(ACQUIRED_COLUMNS)).to_csv(d / "acquired.csv", index=False)
    return d


@pytest.fixture
def two_policies(tmp_path: Path) -> list[Path]:
    return [_run_folder(tmp_path / "runs", "random", 0), _run_folder(tmp_path / "runs", "bal-pm", 0, slope=0.02)]


def test_html_figures_draw_offline_from_one_local_plotly_js(two_policies: list[Path], tmp_path: Path) -> None:
    out = write_report(two_policies, tmp_path / "rep", png=False)
    pages = sorted(out.glob("*.html"))
    assert len(pages) >= 5
    js = out / "plotly.min.js"
    assert js.stat().st_size > 1_000_000 and b"plotly.js" in js.read_bytes()[:2000]
    for page in pages:
        html = page.read_text()
        assert "cdn.plot.ly" not in html and not re.search(r"""<script[^>]+src=["']https?:""", html), page.name
        assert re.search(r"""<script[^>]+src=["']plotly\.min\.js["']""", html), page.name
    assert "plotly.min.js" in (out / "summary.md").read_text()


def test_datasets_are_named_by_the_pool_name_not_its_path(two_policies: list[Path], tmp_path: Path) -> None:
    out = write_report(two_policies, tmp_path / "rep", png=False)
    summary = (out / "summary.md").read_text()
    assert "my-pairs.jsonl" in summary and "/data/team" not in summary
    assert (out / "my-pairs.jsonl-test-log_likelihood.html").exists()
    assert "/data/team" not in (out / "my-pairs.jsonl-test-log_likelihood.html").read_text()
    assert set(pd.read_csv(out / "curves.csv")["dataset"]) == {"my-pairs.jsonl"}
    assert set(pd.read_csv(out / "labels_saved.csv")["dataset"]) == {"my-pairs.jsonl"}


def test_two_pools_with_one_file_name_stay_apart(tmp_path: Path) -> None:
    runs = [_run_folder(tmp_path / "a", "random", 0, dataset="/x/team-a/pairs.jsonl"),
            _run_folder(tmp_path / "b", "random", 0, dataset="/x/team-b/pairs.jsonl")]
    out = write_report(runs, tmp_path / "rep", png=False)
    assert set(pd.read_csv(out / "curves.csv")["dataset"]) == {"team-a/pairs.jsonl", "team-b/pairs.jsonl"}


def test_one_run_says_why_there_is_no_labels_saved_table(tmp_path: Path) -> None:
    out = write_report([_run_folder(tmp_path, "bal-pm", 0)], tmp_path / "rep", png=False)
    summary = (out / "summary.md").read_text()
    section = summary.split("## Labels saved", 1)[1].split("##", 1)[0]
    assert "one run" in section and "random" in section and "bald" in section, section
    assert len(pd.read_csv(out / "labels_saved.csv")) == 0


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's Chromium (apt-get install chromium)")
def test_png_export_through_kaleido_and_chromium(two_policies: list[Path], tmp_path: Path) -> None:
    out = write_report(two_policies, tmp_path / "rep", png=True)
    pngs = sorted(out.glob("*.png"))
    assert {p.stem for p in pngs} == {p.stem for p in out.glob("*.html")}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)
    assert "PNG figures written" in (out / "summary.md").read_text()


def test_png_failure_note_says_exactly_why(two_policies: list[Path], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Plotly's "no Chrome" error starts with a blank line: the note once read 'skipped (RuntimeError: )'."""
    monkeypatch.setenv("BROWSER_PATH", str(tmp_path / "no-such-chrome"))
    out = write_report(two_policies, tmp_path / "rep", png=True)
    summary = (out / "summary.md").read_text()
    note = next(line for line in summary.splitlines() if "PNG export skipped" in line)
    assert "RuntimeError: )" not in note and "Chrome" in note and "BROWSER_PATH" in note, note
    assert "HTML figures are complete" not in summary
    assert not list(out.glob("*.png"))
