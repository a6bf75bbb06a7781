"""AppTest of the app's core pages (Pool, Embed, Acquire, Label) on small real HH-RLHF subsets.

Every test runs the real router (``app.py``) with ``BALPM_SESSIONS_DIR`` in a temporary folder, drives the widgets
and checks what a user would read. Sizes are small (100-150 pairs, 2 tiny ensemble members, 64 tokens) so the
file runs in a few minutes on two busy cores; the embedding disk cache (``BALPM_CACHE_DIR``, one per test session)
makes every embedding after the first a cache hit.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from balpm.data import load_pool
from balpm.session import Session, SessionConfig

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT = 600
SMALL = dict(pool="hh-rlhf:harmless-base", max_pairs=100, max_length=64, batch_size=6, n_members=2,
             model_params={"hidden": [32], "max_epochs": 5}, initial=8)


@pytest.fixture()
def sessions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "sessions"
    monkeypatch.setenv("BALPM_SESSIONS_DIR", str(root))
    monkeypatch.setenv("BALPM_DATA_DIR", "none")  # the embedded sample: the same pairs on every machine
    monkeypatch.setenv("BALPM_LABEL_DWELL_S", "0")
    return root


def _session(root: Path, name: str = "t", **changes) -> Session:
    """A small session made the one the app resumes (the app opens the last session used)."""
    s = Session.create(name, SessionConfig(**{**SMALL, **changes}), root=root)
    root.mkdir(parents=True, exist_ok=True)
    (root / ".last_session").write_text(str(s.folder))
    return s


def _app(page: str | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(page).run()
        assert not at.exception, at.exception
    return at


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _frame(at: AppTest, column: str):
    """The first table showing ``column`` (tables without selection are not addressable by key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _set_annotator(at: AppTest, name: str) -> None:
    """Give the Label page's annotator name, as a person would."""
    at.text_input(key="annotator").set_value(name).run()


_MARKDOWN_KINDS = ("title", "header", "subheader", "markdown", "caption", "success", "info", "warning", "error",
                   "toast", "exception")


def _markdown_bodies(at: AppTest) -> list[str]:
    """The Markdown source of every element Streamlit renders as Markdown (main area and sidebar)."""
    return [str(e.value) for kind in _MARKDOWN_KINDS for e in at.get(kind)]


def _shown(body: str) -> str:
    """What the browser shows for a Markdown body made of escaped text (backslash escapes removed)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", body)


# ---------------------------------------------------------------------------------------------- Pool
def test_first_start_opens_demo_and_pool_shows_real_count_of_a_subset(sessions: Path) -> None:
    at = _app()
    assert (sessions / "demo" / "session.json").is_file()
    assert "demo" in " ".join(m.value for m in at.sidebar.markdown)
    at.number_input(key="pool_max_pairs").set_value(150)
    _button(at, "Load pool").click()
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    expected = len(load_pool("hh-rlhf:harmless-base").sample_groups(150, 0))
    assert _metric(at, "Pairs") == str(expected)
    assert f"pairs: {expected}" in at.code[0].value  # the validation summary
    assert len(at.get("plotly_chart")) == 2  # length histograms


def test_bad_path_shows_located_error_not_traceback(sessions: Path, tmp_path: Path) -> None:
    _session(sessions)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "chosen": "x", "rejected": "y"}\n{"prompt": "p2", "chosen": ', encoding="utf-8")
    at = _app()
    at.radio(key="pool_source_kind").set_value("Path").run()
    at.text_input(key="pool_path").set_value(str(bad))
    _button(at, "Load pool").click()
    at.run()
    assert not at.exception
    assert any("bad.jsonl:2" in e.value for e in at.error), [e.value for e in at.error]
    assert Session.open(sessions / "t").config.pool == "hh-rlhf:harmless-base"  # the good pool is kept


def test_bad_upload_shows_located_error_and_good_upload_is_saved_in_session(sessions: Path) -> None:
    s = _session(sessions)
    at = _app()
    at.radio(key="pool_source_kind").set_value("Upload a file").run()
    at.file_uploader(key="pool_upload").set_value(("pairs.csv", b"prompt,chosen,rejected\nq,a,b\nq2,,b\n", "text/csv"))
    _button(at, "Load pool").click()
    at.run()
    assert not at.exception
    assert any("pairs.csv:2" in e.value and "chosen" in e.value for e in at.error), [e.value for e in at.error]

    good = b'{"prompt": "Say hi", "chosen": "Hi!", "rejected": "No."}\n{"prompt": "Count", "chosen": "1 2 3", "rejected": "3"}\n'
    at.file_uploader(key="pool_upload").set_value(("good.jsonl", good, "application/json"))
    at.number_input(key="pool_max_pairs").set_value(0)
    _button(at, "Load pool").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert _metric(at, "Pairs") == "2"
    cfg = Session.open(s.folder).config
    assert cfg.pool == "uploads/good.jsonl" and (s.folder / cfg.pool).is_file()


# ---------------------------------------------------------------------------------------------- Embed
def test_embed_small_subset_reports_count_and_cache(sessions: Path) -> None:
    s = _session(sessions)
    n = len(s.load_pool())
    at = _app("pages/2_embed.py")
    _button(at, "Embed pool").click()
    at.run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert _metric(at, "Pairs embedded") == str(n)
    assert int(_metric(at, "Cached (skipped)")) + int(_metric(at, "Computed")) == int(_metric(at, "Unique texts"))
    # a second press (any tab) reuses the vectors: nothing is computed again
    at2 = _app("pages/2_embed.py")
    assert _metric(at2, "Pairs embedded") == str(n)


def test_changing_max_length_never_shows_stale_embeddings(sessions: Path) -> None:
    _session(sessions)
    at = _app("pages/2_embed.py")
    _button(at, "Embed pool").click()
    at.run()
    assert _metric(at, "Pairs embedded")
    Session.open(sessions / "t").update(max_length=48)
    at.run()
    assert not at.exception
    assert not [m for m in at.metric if m.label == "Pairs embedded"]  # not embedded with the new setting yet
    assert any("not embedded" in i.value for i in at.info)


# ---------------------------------------------------------------------------------------------- Acquire
def test_step_shows_batch_table_with_bald_and_score(sessions: Path) -> None:
    s = _session(sessions)
    at = _app("pages/3_acquire.py")
    _button(at, "Step: fit, score and propose a batch").click()
    at.run()
    assert not at.exception, at.exception
    table = _frame(at, "BALD")
    assert len(table) == SMALL["batch_size"]  # the first batch is random: nothing to fit on yet
    assert np.isnan(table["BALD"]).all() and any("drawn at random" in c.value for c in at.caption)
    # label the first batch (a person would, on the Label page), then Step scores with the ensemble
    pool = s.load_pool()
    truth = dict(zip(pool.ids, pool.labels))
    for pid in table["id"]:
        s.record(pid, "a" if truth[pid] == 1 else "b", annotator="t", shown_swapped=False, request_id=f"r-{pid}",
                 round=0)
    at.number_input(key="acq_batch").set_value(5).run()
    _button(at, "Step: fit, score and propose a batch").click()
    at.run()
    assert not at.exception, at.exception
    table = _frame(at, "BALD")
    assert len(table) == 5
    assert {"BALD", "β·Ĥ", "score", "ratio"} <= set(table.columns)
    assert np.isfinite(table["BALD"]).all() and np.isfinite(table["score"]).all()
    assert not any("drawn at random" in c.value for c in at.caption)
    assert not set(table["id"]) & s.store.decided_ids()


def test_simulation_runs_rounds_and_grows_the_curve(sessions: Path) -> None:
    _session(sessions, mode="simulation")
    at = _app("pages/3_acquire.py")
    at.number_input(key="sim_rounds").set_value(2).run()
    _button(at, "Run 2 rounds").click()
    at.run()
    assert not at.exception, at.exception
    metrics = _frame(at, "n_labeled")
    assert len(metrics) == 2 and list(metrics["n_labeled"]) == [SMALL["initial"], SMALL["initial"] + SMALL["batch_size"]]
    assert all(math.isfinite(x) for x in metrics["log_likelihood"])
    assert len(at.get("plotly_chart")) == 1


# ---------------------------------------------------------------------------------------------- Label
def test_label_two_pairs_then_undo_leaves_one_in_store(sessions: Path) -> None:
    s = _session(sessions)
    at = _app("pages/4_label.py")
    at.text_input(key="annotator").set_value("alice").run()
    _button(at, "Propose a batch").click()
    at.run()
    assert not at.exception, at.exception
    first = s.current_batch()
    assert first is not None and len(first.ids) == SMALL["batch_size"]
    assert first.cold_start and any("drawn at random" in c.value for c in at.caption)
    _button(at, "A is better").click()
    at.run()
    _button(at, "B is better").click()
    at.run()
    assert not at.exception, at.exception
    events = s.store.active_labels()
    assert len(events) == 2 and set(events["annotator"]) == {"alice"}
    # the verdict is about the pool's A/B, whatever side it was shown on
    for _, ev in events.iterrows():
        assert ev["shown_swapped"] == s.side_swapped(ev["pair_id"])
    left_choice = events.iloc[0]
    assert left_choice["verdict"] == ("b" if left_choice["shown_swapped"] else "a")
    _button(at, "Undo last").click()
    at.run()
    assert not at.exception, at.exception
    assert len(s.store.active_labels()) == 1
    assert any("Undid" in x.value for x in at.success)
    assert s.store.get_meta("last_annotator") == "alice"


def test_double_record_with_same_token_stores_one(sessions: Path) -> None:
    s = _session(sessions)
    first = s.record("p1", "a", annotator="a", shown_swapped=False, request_id="tok-1")
    again = s.record("p1", "a", annotator="a", shown_swapped=False, request_id="tok-1")
    assert first.status == "recorded" and again.status == "duplicate"
    other_tab = s.record("p1", "b", annotator="b", shown_swapped=True, request_id="tok-2")
    assert other_tab.status == "already_labelled"
    assert len(s.store.active_labels()) == 1


def test_held_key_within_dwell_records_one_label(sessions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _session(sessions)
    monkeypatch.setenv("BALPM_LABEL_DWELL_S", "1.0")
    at = _app("pages/4_label.py")
    at.text_input(key="annotator").set_value("bob").run()
    _button(at, "Propose a batch").click()
    at.run()
    time.sleep(1.1)  # the person reads the pair
    _button(at, "A is better").click()
    at.run()
    assert len(s.store.active_labels()) == 1
    _button(at, "A is better").click()  # the key is still held: the next pair appeared a moment ago
    at.run()
    assert not at.exception, at.exception
    assert len(s.store.active_labels()) == 1
    assert any("Ignored" in w.value for w in at.warning)


def test_two_tabs_never_duplicate_and_skip_labelled_pairs(sessions: Path) -> None:
    s = _session(sessions)
    tab1 = _app("pages/4_label.py")
    tab1.text_input(key="annotator").set_value("t1").run()
    _button(tab1, "Propose a batch").click()
    tab1.run()
    tab2 = _app("pages/4_label.py")
    tab2.text_input(key="annotator").set_value("t2").run()
    _button(tab1, "A is better").click()
    tab1.run()
    # tab2 still shows the pair tab1 just labelled: its click must not add a second label
    _button(tab2, "B is better").click()
    tab2.run()
    assert not tab2.exception, tab2.exception
    events = s.store.events()
    assert len(events) == 1 and events.iloc[0]["annotator"] == "t1"
    # and tab2 moved on to a pair nobody labelled
    assert any("already labelled" in i.value for i in tab2.info)
    shown = [_shown(c.value) for c in tab2.caption if c.value.startswith("Pair ")]
    assert shown and events.iloc[0]["pair_id"] not in shown[0]


def test_batch_done_proposes_next_and_exports(sessions: Path) -> None:
    s = _session(sessions, batch_size=2)
    at = _app("pages/4_label.py")
    at.text_input(key="annotator").set_value("carol").run()
    _button(at, "Propose a batch").click()
    at.run()
    first = s.current_batch()
    _button(at, "A is better").click()
    at.run()
    _button(at, "Tie").click()
    at.run()
    assert not at.exception, at.exception
    nxt = s.current_batch()
    assert nxt is not None and nxt.batch_id != first.batch_id and nxt.round == first.round + 1
    assert not set(nxt.ids) & set(first.ids)
    assert [d.label for d in at.download_button] == ["Download labels (TRL JSONL)", "Download label events (Parquet)"]


# ---------------------------------------------------------------------------------------------- user strings are text
EVIL = "![x](http://127.0.0.1:9/pixel.png)"  # what a hostile id, name or file name looks like


def test_user_strings_are_shown_as_text_never_markdown(sessions: Path, tmp_path: Path) -> None:
    """Pair ids, annotator names and file names reach the browser as text (issue 10, case 5): a Markdown image in
    any of them would make every browser showing the page fetch its URL."""
    data = tmp_path / "![f](pixel.png).jsonl"
    rows = [{"id": f"{EVIL}`{i}", "prompt": f"Question {i}?", "chosen": f"Answer {i}.", "rejected": "No."}
            for i in range(4)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    s = _session(sessions, pool=str(data), max_pairs=None)
    s.set_batch(pd.DataFrame({"id": [r["id"] for r in rows[:3]]}))

    def check(at: AppTest) -> list[str]:
        assert not at.exception, at.exception
        bodies = _markdown_bodies(at)
        leaked = [b for b in bodies if "](" in b or "![" in b or "`" in b.replace("\\`", "")]
        assert not leaked, leaked
        return [_shown(b) for b in bodies]

    at = _app("pages/4_label.py")
    _set_annotator(at, EVIL)
    shown = check(at)
    first = next(t for t in shown if t.startswith("Pair ") and "of" not in t)
    assert first == f"Pair {rows[0]['id']}"  # the id is shown, character for character
    _button(at, "A is better").click()
    at.run()
    shown = check(at)
    assert any(rows[0]["id"] in t and t.startswith("Saved") for t in shown), shown
    _button(at, "Undo last").click()
    at.run()
    shown = check(at)
    assert any(rows[0]["id"] in t and t.startswith("Undid") for t in shown), shown
    assert any(data.name in t for t in shown)  # the sidebar names the pool file

    at.switch_page("pages/1_pool.py").run()
    shown = check(at)
    assert data.name in shown
