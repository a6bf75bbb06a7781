"""The embedded sample (issue 15): what ships, how built-in names resolve to it, and that it is a faithful draw."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from balpm.data import SAMPLE_OF, PoolFormatError, data_dir, format_summary, load_pool, sample_dir, summarize
from balpm.datasets import make_sample
from balpm.session import open_or_create_demo

HH = "hh-rlhf/harmless-base-sample.jsonl.gz"
QA = "qa-feedback/dev_feedback-sample.json.gz"


@pytest.fixture()
def no_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with no data folder (BALPM_DATA_DIR=none hides ../shared/data as well)."""
    monkeypatch.setenv("BALPM_DATA_DIR", "none")


# ------------------------------------------------------------------------------------------------ what ships


def test_sample_files_are_small_licensed_and_in_the_publishers_formats(sample_data: Path) -> None:
    assert sample_data == sample_dir() and (sample_data / "__init__.py").is_file()
    sizes = {rel: (sample_data / rel).stat().st_size for rel in (HH, QA)}
    assert sum(sizes.values()) < 500_000, sizes  # the repository grows well under 1 MB
    notice = (sample_data / "NOTICE").read_text(encoding="utf-8")
    assert "MIT License" in notice and "Anthropic" in notice and "anthropics/hh-rlhf" in notice
    assert "Apache License, Version 2.0" in notice and "allenai/FineGrainedRLHF" in notice
    assert "make_sample" in (sample_data / "README.md").read_text(encoding="utf-8")
    lines = gzip.open(sample_data / HH, "rt", encoding="utf-8").read().splitlines()
    assert len(lines) == 600 and all(set(json.loads(x)) == {"chosen", "rejected"} for x in lines)
    records = json.loads(gzip.open(sample_data / QA, "rb").read())
    assert len(records) == 100 and all(len(r["preference"]) == 6 and "prediction 4" in r for r in records)


def test_sample_loads_with_the_same_readers(sample_data: Path) -> None:
    hh = load_pool(sample_data / HH)
    assert (len(hh), hh.report.format, hh.report.dropped) == (600, "hh-rlhf", {})
    qa = load_pool(sample_data / QA)
    assert qa.report.format == "qa-feedback" and len(qa) + qa.report.dropped["tie"] == 600  # 100 questions x 6
    assert qa.pairs["group"].nunique() == 97  # three questions have only ties


# ------------------------------------------------------------------------------------------------ resolution


def test_builtin_names_fall_back_to_the_sample_and_say_so(no_data: None) -> None:
    assert data_dir() is None
    hh = load_pool("hh-rlhf:harmless-base")
    assert len(hh) == 600 and set(hh.pairs["source"]) == {"hh-rlhf:harmless-base"}
    assert hh.report.origin == "embedded sample, 600 of 2,303 pairs"
    text = format_summary(summarize(hh))
    assert text.splitlines()[0] == "pool: hh-rlhf:harmless-base (embedded sample, 600 of 2,303 pairs; format hh-rlhf)"
    qa = load_pool("qa-feedback")
    assert len(qa) == 527 and qa.report.origin == "embedded sample, 527 of 2,616 pairs"
    explicit = load_pool("sample:hh-rlhf:harmless-base")
    assert explicit.ids.tolist() == hh.ids.tolist() and explicit.name == "sample:hh-rlhf:harmless-base"


def test_an_empty_data_folder_also_gives_the_sample(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BALPM_DATA_DIR", str(tmp_path))
    assert data_dir() == tmp_path
    assert load_pool("qa-feedback").report.origin.startswith("embedded sample")


@pytest.mark.parametrize("name", ["hh-rlhf", "hh-rlhf:helpful-online"])
def test_names_without_a_sample_say_what_to_set(no_data: None, name: str) -> None:
    with pytest.raises(PoolFormatError, match="BALPM_DATA_DIR") as e:
        load_pool(name)
    assert e.value.path == name and "sample:hh-rlhf:harmless-base" in str(e.value)


def test_bad_names_and_a_missing_folder_are_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with pytest.raises(PoolFormatError, match="no embedded sample of 'hh-rlhf:helpful-base'"):
        load_pool("sample:hh-rlhf:helpful-base")
    with pytest.raises(PoolFormatError, match="unknown hh-rlhf split 'nope'"):
        load_pool("sample:hh-rlhf:nope")
    monkeypatch.setenv("BALPM_DATA_DIR", str(tmp_path / "typo"))  # a mistake: never silently the sample
    with pytest.raises(PoolFormatError, match="does not exist.*BALPM_DATA_DIR=none"):
        load_pool("hh-rlhf:harmless-base")
    assert len(load_pool("sample:qa-feedback")) == 527  # the explicit sample needs no folder


def test_cli_validate_on_the_sample(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("balpm")
    env = {**os.environ, "BALPM_DATA_DIR": "none"}
    r = subprocess.run([str(exe), "validate", "hh-rlhf:harmless-base"], capture_output=True, text=True, env=env,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "(embedded sample, 600 of 2,303 pairs" in r.stdout and "pairs: 600" in r.stdout


def test_demo_session_opens_on_the_sample_without_data(no_data: None, tmp_path: Path) -> None:
    demo = open_or_create_demo(tmp_path / "sessions")
    assert demo is not None and demo.config.pool.dataset == "sample:hh-rlhf:harmless-base"
    pool = demo.load_pool()
    assert len(pool) == demo.config.pool.max_pairs and pool.report.origin.startswith("embedded sample")


# ------------------------------------------------------------------------------------------------ with the full data


def test_full_data_wins_and_the_sample_is_a_faithful_draw(shared_data: Path, sample_data: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BALPM_DATA_DIR", str(shared_data))
    for name, full_pairs in SAMPLE_OF.items():
        full = load_pool(name)
        assert len(full) == full_pairs and full.report.origin == f"full split, data folder {shared_data}"
        sample = load_pool("sample:" + name)
        assert sample.report.origin.startswith("embedded sample")
        # the same pairs, shown the same way round, with the same labels and groups
        merged = sample.pairs.merge(full.pairs, on="id", suffixes=("", "_full"))
        assert len(merged) == len(sample)
        for col in ("prompt", "completion_a", "completion_b", "label", "group"):
            assert (merged[col] == merged[f"{col}_full"]).all(), col
        # whole prompt groups: every pair of a drawn group is in the sample
        drawn = set(sample.groups)
        assert int(full.pairs["group"].isin(drawn).sum()) == len(sample)


def test_redraw_is_byte_identical(shared_data: Path, sample_data: Path) -> None:
    assert make_sample.main(["--data-dir", str(shared_data), "--check"]) == 0


def test_demo_session_uses_the_full_split_when_present(shared_data: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BALPM_DATA_DIR", str(shared_data))
    demo = open_or_create_demo(tmp_path / "sessions")
    assert demo is not None and demo.config.pool.dataset == "hh-rlhf:harmless-base"
    assert demo.load_pool().report.origin.startswith("full split")


# ------------------------------------------------------------------------------------------------ packaging


@pytest.mark.slow
def test_wheel_ships_the_sample(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path), str(repo)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (wheel,) = tmp_path.glob("balpm-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"balpm/datasets/{HH}", f"balpm/datasets/{QA}", "balpm/datasets/NOTICE",
            "balpm/datasets/make_sample.py"} <= names
    # balpm.data is a package (issue 13): all its modules ship, and no stale balpm/data.py from an old build
    assert {f"balpm/data/{m}.py" for m in ("__init__", "pool", "records", "formats", "sources", "summary")} <= names
    assert "balpm/data.py" not in names
