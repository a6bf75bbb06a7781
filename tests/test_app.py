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
SMALL = dict(dataset="hh-rlhf:harmless-base", max_pairs=100, max_length=64, batch_size=6, n_members=2,
             hidden=(32,), max_epochs=5, initial=8)


@pytest.fixture()
def sessions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "sessions"
    monkeypatch.setenv("BALPM_SESSIONS_DIR", str(root))
    monkeypatch.setenv("BALPM_DATA_DIR", "none")  # the embedded sample: the same pairs on every machine
    monkeypatch.setenv("BALPM_LABEL_DWELL_S", "0")
    return root


def _session(root: Path, name: str = "t", **changes) -> Session:
    """A small session made the one the app resumes (the app opens the last session used)."""
    s = Session.create(name, SessionConfig.from_settings(**{**SMALL, **changes}), root=root)
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


def _embed_now(at: AppTest) -> None:
    """Press the *Embed now* button a page offers when the pool is not embedded in this server yet."""
    button = next((b for b in at.button if b.label == "Embed now"), None)
    if button is not None:
        button.click()
        at.run()
        assert not at.exception, at.exception


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _frame(at: AppTest, column: str):
    """The first table showing ``column`` (tables without selection are not addressable by key)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def _button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def _set_annotator(at: AppTest, name: str, *, as_default: bool = False) -> None:
    """Give the Label page's annotator name, as a person would: type it in the name form and submit it."""
    next(t for t in at.text_input if t.label == "Annotator name").input(name)
    if as_default:
        at.checkbox(key="annotator_default").check()
    _button(at, "Start labelling").click()
    at.run()
    assert not at.exception, at.exception


def _label_buttons(at: AppTest) -> dict[str, bool]:
    """Label page button → disabled."""
    return {b.label: b.disabled for b in at.button if b.label in ("A is better", "B is better", "Tie", "Skip",
                                                                    "Undo last")}


def _small_batch(s: Session, n: int = 6) -> list[str]:
    """Make the first ``n`` pairs of the session's pool its current batch (no embedding or model needed)."""
    ids = [str(i) for i in s.load_pool().ids[:n]]
    s.set_batch(pd.DataFrame({"id": ids}))
    return ids


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
    assert any("bad.jsonl:2" in _shown(e.value) for e in at.error), [e.value for e in at.error]
    assert Session.open(sessions / "t").config.pool.dataset == "hh-rlhf:harmless-base"  # the good pool is kept


def test_strict_box_refuses_a_file_with_drops_and_keeps_the_pool(sessions: Path, tmp_path: Path) -> None:
    _session(sessions)
    dups = tmp_path / "dups.jsonl"
    rows = [{"prompt": f"p{i}", "chosen": "x", "rejected": "y"} for i in (1, 2, 1)]
    dups.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    at = _app()
    at.radio(key="pool_source_kind").set_value("Path").run()
    at.text_input(key="pool_path").set_value(str(dups))
    at.checkbox(key="pool_strict").check()
    _button(at, "Load pool").click()
    at.run()
    assert not at.exception
    assert any("dups.jsonl:3" in _shown(e.value) and "duplicate pair" in e.value for e in at.error), at.error
    assert Session.open(sessions / "t").config.pool.dataset == "hh-rlhf:harmless-base"  # the good pool is kept
    at.checkbox(key="pool_strict").uncheck()
    _button(at, "Load pool").click()
    at.run()
    assert not at.exception and not at.error, at.error
    assert _metric(at, "Dropped from file") == "1" and "duplicate pair: 1, first at line 3" in at.code[0].value
    assert Session.open(sessions / "t").config.pool.strict is False


def test_bad_upload_shows_located_error_and_good_upload_is_saved_in_session(sessions: Path) -> None:
    s = _session(sessions)
    at = _app()
    at.radio(key="pool_source_kind").set_value("Upload a file").run()
    at.file_uploader(key="pool_upload").set_value(("pairs.csv", b"prompt,chosen,rejected\nq,a,b\nq2,,b\n", "text/csv"))
    _button(at, "Load pool").click()
    at.run()
    assert not at.exception
    assert any("pairs.csv:2" in _shown(e.value) and "chosen" in e.value for e in at.error), [e.value for e in at.error]

    good = b'{"prompt": "Say hi", "chosen": "Hi!", "rejected": "No."}\n{"prompt": "Count", "chosen": "1 2 3", "rejected": "3"}\n'
    at.file_uploader(key="pool_upload").set_value(("good.jsonl", good, "application/json"))
    at.number_input(key="pool_max_pairs").set_value(0)
    _button(at, "Load pool").click()
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert _metric(at, "Pairs") == "2"
    cfg = Session.open(s.folder).config
    assert cfg.pool.dataset == "uploads/good.jsonl" and (s.folder / cfg.pool.dataset).is_file()


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
    _embed_now(at)
    _button(at, "Step: fit, score and propose a batch").click()
    at.run()
    assert not at.exception, at.exception
    table = _frame(at, "status")
    assert len(table) == SMALL["batch_size"]  # the first batch is random: nothing to fit on yet
    assert any("drawn at random" in c.value for c in at.caption)
    # no score columns left empty: the browser's grid draws an empty cell as a grey "None" (seen in
    # tests/test_app_browser_e2e.py's screenshots), whatever the Styler's display value says
    assert not {"BALD", "β·Ĥ", "score", "ratio"} & set(table.columns), list(table.columns)
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
    _embed_now(at)
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
    _set_annotator(at, "alice")
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


def test_name_is_settled_before_labelling_and_no_box_is_left_to_type_into(sessions: Path) -> None:
    """Issue 10, case 1: the label buttons are disabled until the name is submitted; once it is, the name is
    shown as text with a Change name button and the page holds no text box a shortcut key could type into."""
    s = _session(sessions)
    _small_batch(s)
    at = _app("pages/4_label.py")
    assert set(_label_buttons(at).values()) == {True}, _label_buttons(at)  # no name yet: nothing to press
    next(t for t in at.text_input if t.label == "Annotator name").input("alice")  # typed, not yet submitted
    assert set(_label_buttons(at).values()) == {True}
    _button(at, "Start labelling").click()
    at.run()
    assert not at.exception, at.exception
    assert not [t for t in at.main.text_input], "a text box is left on the Label page"
    assert set(_label_buttons(at).values()) == {False}
    assert any(m.value.startswith("Labelling as **alice**") for m in at.markdown), [m.value for m in at.markdown]
    _button(at, "A is better").click()
    at.run()
    assert list(s.store.active_labels()["annotator"]) == ["alice"]
    _button(at, "Change name").click()
    at.run()
    assert set(_label_buttons(at).values()) == {True}  # a name being changed is not settled
    assert [t.value for t in at.main.text_input] == ["alice"]  # the box starts from the current name
    _set_annotator(at, "bob")
    _button(at, "A is better").click()
    at.run()
    assert list(s.store.active_labels()["annotator"]) == ["alice", "bob"]


def test_switching_sessions_asks_for_the_name_again_and_restores_it_on_return(sessions: Path) -> None:
    """Issue 10, case 2: the annotator belongs to the tab *and* the session."""
    other = _session(sessions, "other")
    _small_batch(other)
    s = _session(sessions, "first")  # the one the app opens
    _small_batch(s)
    at = _app("pages/4_label.py")
    _set_annotator(at, "alice")
    at.sidebar.selectbox(key="sb_open_name").set_value("other")
    at.sidebar.button(key="sb_open").click()
    at.run()
    assert not at.exception, at.exception
    assert "other" in " ".join(m.value for m in at.sidebar.markdown)
    assert set(_label_buttons(at).values()) == {True}, "the previous session's name must not carry over"
    assert [t.value for t in at.main.text_input] == [""]  # asked again, from an empty box
    _set_annotator(at, "bob")
    _button(at, "A is better").click()
    at.run()
    assert list(other.store.active_labels()["annotator"]) == ["bob"]
    at.sidebar.selectbox(key="sb_open_name").set_value("first")
    at.sidebar.button(key="sb_open").click()
    at.run()
    assert any(m.value.startswith("Labelling as **alice**") for m in at.markdown)  # restored, and shown
    _button(at, "A is better").click()
    at.run()
    assert list(s.store.active_labels()["annotator"]) == ["alice"]


def test_no_label_or_undo_without_a_name_and_undo_is_only_ones_own(sessions: Path) -> None:
    """Issue 10, case 3: no label without an annotator, and Undo never reaches another person's label."""
    s = _session(sessions)
    _small_batch(s)
    nameless = _app("pages/4_label.py")
    assert set(_label_buttons(nameless).values()) == {True}  # no label and no Undo without a name
    alice = _app("pages/4_label.py")
    _set_annotator(alice, "alice")
    _button(alice, "A is better").click()
    alice.run()
    bob = _app("pages/4_label.py")
    _set_annotator(bob, "bob")
    _button(bob, "B is better").click()
    bob.run()
    assert sorted(s.store.active_labels()["annotator"]) == ["alice", "bob"]
    nameless.run()
    assert _label_buttons(nameless)["Undo last"]  # it used to undo bob's label, the latest of anyone's
    _button(alice, "Undo last").click()  # alice's Undo takes back alice's label, not bob's later one
    alice.run()
    assert not alice.exception, alice.exception
    assert list(s.store.active_labels()["annotator"]) == ["bob"]


def test_one_person_session_sets_its_default_name_once(sessions: Path) -> None:
    """Issue 10, case 3: a one-person session may name its annotator once; new tabs then label as that name,
    and say so on the page."""
    s = _session(sessions)
    _small_batch(s)
    at = _app("pages/4_label.py")
    _set_annotator(at, "dana", as_default=True)
    assert s.store.default_annotator() == "dana"
    later = _app("pages/4_label.py")  # a new tab, or the app after a restart
    assert set(_label_buttons(later).values()) == {False}
    assert any(m.value.startswith("Labelling as **dana**") and "default" in m.value for m in later.markdown)
    assert not [c for c in later.checkbox if c.key == "annotator_default"]
    _button(later, "Change name").click()
    later.run()
    assert not [c for c in later.checkbox if c.key == "annotator_default"]  # set once: not offered again
    _set_annotator(later, "erin")
    _button(later, "A is better").click()
    later.run()
    assert list(s.store.active_labels()["annotator"]) == ["erin"] and s.store.default_annotator() == "dana"


def test_double_press_after_undo_records_one_label(sessions: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10, case 4: U, U, then A twice in quick succession records one label. The second U re-shows an
    older pair; after the first A the pair the first U re-showed comes back into view, and it gets a fresh
    dwell window (it used to keep the time it was first shown, so the second A labelled it)."""
    s = _session(sessions)
    ids = _small_batch(s)
    monkeypatch.setenv("BALPM_LABEL_DWELL_S", "1.0")
    at = _app("pages/4_label.py")
    _set_annotator(at, "ulla")
    for label in ("A is better", "B is better", "Undo last", "Undo last"):
        time.sleep(1.1)  # a deliberate press each time
        _button(at, label).click()
        at.run()
        assert not at.exception, at.exception
    assert len(s.store.active_labels()) == 0
    time.sleep(1.1)
    _button(at, "A is better").click()
    at.run()
    _button(at, "A is better").click()  # the double press: the next pair appeared a moment ago
    at.run()
    assert not at.exception, at.exception
    assert list(s.store.active_labels()["pair_id"]) == [ids[0]]
    assert any("Ignored" in w.value for w in at.warning)


@pytest.mark.parametrize("bad", ["../../x", "/abs/x", "~/x", "a/b", ".."])
def test_sidebar_refuses_a_session_name_that_is_a_path(sessions: Path, tmp_path: Path, bad: str) -> None:
    """Issue 10, case 13 (sidebar): the New session name box is checked as it is typed
    (``validate_session_name``): a clear error, Create disabled, and no folder is made anywhere."""
    _session(sessions)
    before = sorted(p for p in tmp_path.rglob("*") if p.is_dir())
    at = _app()
    at.sidebar.text_input(key="sb_new_name").input(bad)
    at.run()
    assert not at.exception, at.exception
    errors = [_shown(e.value) for e in at.sidebar.error]
    assert any("not allowed" in e and bad in e for e in errors), errors
    create = at.sidebar.button(key="sb_create")
    assert create.disabled
    assert sorted(p for p in tmp_path.rglob("*") if p.is_dir()) == before
    assert not Path(bad).expanduser().resolve().joinpath("session.json").exists()
    at.sidebar.text_input(key="sb_new_name").input("  alice-hh  ")  # a good name (blanks trimmed) still works
    at.run()
    assert not at.sidebar.error and not at.sidebar.button(key="sb_create").disabled
    at.sidebar.button(key="sb_create").click()
    at.run()
    assert not at.exception, at.exception
    assert (sessions / "alice-hh" / "session.json").is_file()
    assert "alice-hh" in " ".join(_shown(m.value) for m in at.sidebar.markdown)


def test_create_session_empties_the_new_session_name_box(sessions: Path) -> None:
    """After *Create session* the name just used is gone from the box (a second click would only be refused: the
    name is taken), and the box takes the next name as before."""
    _session(sessions)
    at = _app()
    at.sidebar.text_input(key="sb_new_name").input("bob-hh")
    at.run()
    at.sidebar.button(key="sb_create").click()
    at.run()
    assert not at.exception, at.exception
    assert (sessions / "bob-hh" / "session.json").is_file()
    assert at.sidebar.text_input(key="sb_new_name").value == ""
    assert at.sidebar.button(key="sb_create").disabled  # nothing to create until a new name is typed
    at.sidebar.text_input(key="sb_new_name").input("carol-hh")
    at.run()
    assert at.sidebar.text_input(key="sb_new_name").value == "carol-hh"
    assert not at.sidebar.button(key="sb_create").disabled


def test_label_page_stops_with_the_restore_steps_when_the_label_database_lost_its_labels(sessions: Path) -> None:
    """Issue 10, case 11 (page): a label database emptied by a disk incident stops labelling with the library's
    message (how to restore from a backup), not a traceback, and nothing is written into it."""
    s = _session(sessions)
    _small_batch(s)
    s.record("x1", "a", annotator="ann", shown_swapped=False, request_id="r1")
    s.close()
    (s.folder / "labels.sqlite").write_bytes(b"")  # truncated to 0 bytes; labels.count remembers the label
    at = _app("pages/4_label.py")
    assert not at.exception, at.exception
    errors = [_shown(e.value) for e in at.error]
    assert any(e.startswith("Labelling is stopped") and "restore" in e for e in errors), errors
    assert not [b for b in at.button if b.label == "A is better"]
    assert (s.folder / "labels.sqlite").stat().st_size == 0


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
    _set_annotator(at, "bob")
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
    _set_annotator(tab1, "t1")
    _button(tab1, "Propose a batch").click()
    tab1.run()
    tab2 = _app("pages/4_label.py")
    _set_annotator(tab2, "t2")
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
    _set_annotator(at, "carol")
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
    assert [d.label for d in at.download_button] == [
        "Download TRL JSONL", "Download Training table (Parquet)", "Download datasets folder (zip)",
        "Download Label events (Parquet)"]


# ---------------------------------------------------------------------------------------------- user strings are text
EVIL = "![x](http://127.0.0.1:9/pixel.png)"  # what a hostile id, name or file name looks like


def test_user_strings_are_shown_as_text_never_markdown(sessions: Path, tmp_path: Path) -> None:
    """Pair ids, annotator names and file names reach the browser as text (issue 10, case 5): a Markdown image in
    any of them would make every browser showing the page fetch its URL."""
    data = tmp_path / "![f](pixel.png).jsonl"
    rows = [{"id": f"{EVIL}`{i}", "prompt": f"Question {i}?", "chosen": f"Answer {i}.", "rejected": "No."}
            for i in range(4)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    s = _session(sessions, dataset=str(data), max_pairs=None)
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


# ---------------------------------------------------------------------------------------------- issue 11: label view
def _chat_pool(tmp_path: Path) -> Path:
    """A trl-style file whose prompts are HH dialogues and whose completions hold Markdown, HTML and images."""
    rows = []
    for i in range(6):
        rows.append({
            "prompt": f"\n\nHuman: How do I store tomatoes {i}?\n\nAssistant: On the counter.\n\nHuman: "
                      f"And once they are cut {i}?\n\nAssistant:",
            "chosen": f" Keep **cut** tomatoes in the fridge, covered {i}.\n\n- wrap them\n- eat within 2 days",
            "rejected": f" Keep them on the counter {i}. ![x](http://127.0.0.1:9/pixel.png) <b>$5</b>",
        })
    path = tmp_path / "chat.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _pair_on_screen(s: Session, at: AppTest) -> tuple[str, str, str]:
    """(prompt, left text, right text) of the pair the Label page shows now, in the order shown."""
    pid = next(c.value for c in at.caption if c.value.startswith("Pair ")).split(" ", 1)[1]
    pid = _shown(pid)
    row = s.load_pool().pairs.set_index("id").loc[pid]
    left, right = row["completion_a"], row["completion_b"]
    if s.side_swapped(pid):
        left, right = right, left
    return row["prompt"], left, right


def test_label_view_shows_chat_turns_and_safe_markdown_with_raw_and_diff_views(sessions: Path,
                                                                               tmp_path: Path) -> None:
    """Issue 11 item 4: the dialogue as chat bubbles, completions as Markdown that can fetch nothing, whole texts
    (no fixed-height boxes), a raw-text view and a highlight of where A and B differ."""
    from balpm.render import safe_markdown, split_turns

    s = _session(sessions, dataset=str(_chat_pool(tmp_path)), max_pairs=None)
    _small_batch(s, 3)
    at = _app("pages/4_label.py")
    _set_annotator(at, "ann")
    prompt, left, right = _pair_on_screen(s, at)
    chats = list(at.main.chat_message)
    turns = split_turns(prompt)
    assert [c.name for c in chats] == [r for r, _ in turns] + ["assistant", "assistant"]
    bodies = [[m.value for m in c.markdown] for c in chats]
    assert bodies == [[safe_markdown(t)] for _, t in turns] + [[safe_markdown(left.strip())],
                                                              [safe_markdown(right.strip())]]
    for body in sum(bodies, []):
        assert not re.search(r"(?<!\\)!\[|(?<!\\)<|(?<!\\)\$", body), body  # no image, HTML or LaTeX can render
    assert any("**cut**" in b[0] for b in bodies[-2:])  # Markdown formatting is kept
    boxes = [c for c in at.main.get("flex_container") if "label_left" in str(getattr(c, "proto", ""))]
    assert all("height" not in str(c.proto).split("label_left")[0][-200:] for c in boxes)

    at.toggle(key="label_raw").set_value(True).run()
    assert not at.exception, at.exception
    # exactly the stored texts, spaces and indentation too (st.code drops only one outer line break)
    assert [c.value for c in at.main.code] == [re.sub(r"\A\n|\n\Z", "", t) for t in (prompt, left, right)]

    at.toggle(key="label_raw").set_value(False).run()
    at.toggle(key="label_diff").set_value(True).run()
    assert not at.exception, at.exception
    marked = [m.value for c in list(at.main.chat_message)[-2:] for m in c.markdown]
    assert all(":orange-background[" in m for m in marked), marked
    assert all("cut" not in m.split(":orange-background[")[0] for m in marked if "cut" in m)
    # the shared words are not marked: 'Keep' starts both texts and stays plain
    assert all(m.startswith("Keep ") for m in marked), marked


def _conversational_pool(tmp_path: Path) -> Path:
    """A trl conversational file (explicit prompt) whose prompts open with a system message."""
    rows = [{"prompt": [{"role": "system", "content": "You are a terse gardener; answer in one line."},
                        {"role": "user", "content": f"How do I store tomatoes {i}?"},
                        {"role": "assistant", "content": "Whole or cut?"},
                        {"role": "user", "content": f"Cut, {i} of them."}],
             "chosen": [{"role": "assistant", "content": f"In the fridge, covered {i}."}],
             "rejected": [{"role": "assistant", "content": f"On the counter {i}."}]} for i in range(6)]
    path = tmp_path / "conversational.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_label_view_draws_a_conversational_prompt_from_its_messages_with_the_system_turn_as_such(
        sessions: Path, tmp_path: Path) -> None:
    """A trl conversational pool keeps its message lists: the prompt's bubbles follow their roles, so the system
    message is the system's (its own name and avatar), not a user bubble saying "System: ..." (the flat text)."""
    from balpm.render import safe_markdown

    s = _session(sessions, dataset=str(_conversational_pool(tmp_path)), max_pairs=None)
    _small_batch(s, 3)
    at = _app("pages/4_label.py")
    _set_annotator(at, "ann")
    chats = list(at.main.chat_message)
    assert [c.name for c in chats] == ["system", "user", "assistant", "user", "assistant", "assistant"]
    assert [m.value for m in chats[0].markdown] == [safe_markdown("You are a terse gardener; answer in one line.")]
    assert chats[0].avatar == ":material/settings:"
    assert not any("System" in m.value for c in chats for m in c.markdown)
    assert [m.value for m in chats[1].markdown][0].startswith("How do I store tomatoes")


def test_raw_view_shows_hh_replies_exactly_as_in_the_source(sessions: Path) -> None:
    """Issue 11 items 4 and 9: an HH reply keeps its leading space in the raw view (st.text would strip it), and
    what is shown is what the transcript holds: prompt + reply is the published dialogue."""
    s = _session(sessions)
    _small_batch(s, 3)
    at = _app("pages/4_label.py")
    _set_annotator(at, "ann")
    prompt, left, right = _pair_on_screen(s, at)
    assert left.startswith(" ") and right.startswith(" ")  # the sample's replies, as published
    at.toggle(key="label_raw").set_value(True).run()
    assert not at.exception, at.exception
    assert [c.value for c in at.main.code][1:] == [left, right]


def test_shortcut_list_shows_on_the_question_mark_button(sessions: Path) -> None:
    """Issue 11 item 5: a `?` key (its button) shows every shortcut."""
    s = _session(sessions)
    _small_batch(s)
    at = _app("pages/4_label.py")
    assert not any("**U**: undo" in m.value for m in at.markdown)
    _button(at, "Keyboard shortcuts (?)").click()
    at.run()
    listed = next(m.value for m in at.markdown if "**U**: undo" in m.value)
    for key in ("**A**", "**B**", "**T**", "**S**", "**?**"):
        assert key in listed


def test_history_lists_labels_newest_first_and_changes_or_withdraws_any(sessions: Path) -> None:
    """Issue 11 item 5: the history view lists this annotator's labels newest first, searchable by id or text;
    any label (not only the last) can be changed (a new event supersedes it) or withdrawn, with a note."""
    s = _session(sessions)
    ids = _small_batch(s, 6)
    s.record(ids[5], "a", annotator="bob", shown_swapped=False, request_id="bob-1")  # another annotator's label
    at = _app("pages/4_label.py")
    _set_annotator(at, "ann")
    for choice in ("A is better", "B is better", "Tie"):
        _button(at, choice).click()
        at.run()
    mine = s.store.history("ann")
    assert len(mine) == 3
    at.radio(key="label_view").set_value("History: change or withdraw a label").run()
    assert not at.exception, at.exception
    assert not [b for b in at.button if b.label in ("A is better", "Undo last")]  # no labelling in this view
    table = _frame(at, "your choice")
    assert table["pair"].tolist() == mine["pair_id"].tolist()  # newest first, bob's label not listed
    assert ids[5] not in table["pair"].tolist()
    oldest = mine.iloc[-1]
    at.text_input(key="hist_query").input(str(oldest["pair_id"])[:8]).run()
    assert _frame(at, "your choice")["pair"].tolist() == [oldest["pair_id"]]
    words = s.load_pool().pairs.set_index("id").loc[mine.iloc[0]["pair_id"], "prompt"].split()[-4:-1]
    at.text_input(key="hist_query").input(" ".join(words)).run()
    assert mine.iloc[0]["pair_id"] in _frame(at, "your choice")["pair"].tolist()
    at.text_input(key="hist_query").input("").run()

    # change the OLDEST label (the first one given: 'left is better') to 'right', with a note
    at.selectbox(key="hist_pick").set_value(int(oldest["event_id"])).run()
    assert not at.exception, at.exception
    at.radio(key=f"hist_choice_{int(oldest['event_id'])}").set_value("right").run()
    at.text_input(key=f"hist_note_{int(oldest['event_id'])}").input("A ignores the question").run()
    _button(at, "Save change").click()
    at.run()
    assert not at.exception, at.exception
    ev = s.store.events().set_index("event_id")
    new = ev[ev["supersedes"] == int(oldest["event_id"])]
    assert len(new) == 1 and new["note"].iloc[0] == "A ignores the question"
    swapped = bool(oldest["shown_swapped"])
    assert new["verdict"].iloc[0] == ("a" if swapped else "b")  # 'right' as shown, mapped to the pool's A/B
    assert bool(ev.loc[int(oldest["event_id"]), "undone"])  # the old event is kept, marked changed
    assert len(s.store) == 4 and len(s.store.decided_ids()) == 4  # one active label per pair still
    assert any("Changed" in m.value for m in at.success)

    # withdraw the middle label, after the session moved on to another batch: it is offered again, first
    middle_row = s.store.history("ann").iloc[1]
    middle = int(middle_row["event_id"])
    s.set_batch(pd.DataFrame({"id": ids[3:5]}))
    at.selectbox(key="hist_pick").set_value(middle).run()
    _button(at, "Withdraw this label").click()
    at.run()
    assert not at.exception, at.exception
    assert s.current_batch().ids == [middle_row["pair_id"], *ids[3:5]]
    assert len(s.store.history("ann")) == 2 and len(s.store.events()) == 5  # nothing deleted, nothing added
    assert s.store.history("ann", include_inactive=True).set_index("event_id").loc[middle, "state"] == "withdrawn"
    assert s.store.label_map()[ids[5]] == 1  # bob's label untouched


# ---------------------------------------------------------------------------------------------- issue 11: Acquire
def test_acquire_offers_embed_now_instead_of_embedding_silently(sessions: Path) -> None:
    """Issue 11 item 7: opening Acquire on a pool this server has not embedded shows *Embed now*, computes nothing."""
    _session(sessions, max_pairs=97)  # a pool no other test embedded in this process
    at = _app("pages/3_acquire.py")
    assert [b.label for b in at.button if b.label == "Embed now"] == ["Embed now"]
    assert not [b for b in at.button if b.label.startswith("Step")]  # nothing to step on yet
    assert any("not embedded" in i.value for i in at.info)
    _embed_now(at)
    assert [b.label for b in at.button if b.label.startswith("Step")]
    assert not [b for b in at.button if b.label == "Embed now"]
    at.run()  # a rerun finds the vectors in memory: no button again
    assert not [b for b in at.button if b.label == "Embed now"]


def test_step_asks_before_replacing_a_batch_with_unlabelled_pairs(sessions: Path) -> None:
    """Issue 11 item 6: Step with unlabelled pairs left asks 'keep labelling / replace' and replaces only when told."""
    s = _session(sessions)
    ids = _small_batch(s, 6)
    s.record(ids[0], "a", annotator="ann", shown_swapped=False, request_id="r0")
    first = s.current_batch()
    at = _app("pages/3_acquire.py")
    _embed_now(at)
    _button(at, "Step: fit, score and propose a batch").click()
    at.run()
    assert not at.exception, at.exception
    assert s.current_batch().batch_id == first.batch_id  # not replaced yet
    warning = next(w.value for w in at.warning if "unlabelled" in w.value)
    assert warning.startswith(f"5 pairs of round {first.round} are unlabelled")
    _button(at, "Keep labelling").click()
    at.run()
    assert not at.exception, at.exception
    assert s.current_batch().batch_id == first.batch_id
    assert at.title[0].value == "Label"  # back to labelling
    at.switch_page("pages/3_acquire.py").run()
    assert not [w for w in at.warning if "unlabelled" in w.value]  # answered: not asked again
    _button(at, "Step: fit, score and propose a batch").click()
    at.run()
    _button(at, "Replace the batch").click()
    at.run()
    assert not at.exception, at.exception
    new = s.current_batch()
    assert new.batch_id != first.batch_id and not [w for w in at.warning if "unlabelled" in w.value]
    assert s.store.label_map() == {ids[0]: 1}  # the label given is kept
    # a batch with nothing left to label is replaced without a question
    for i, pid in enumerate(s.pending_ids(new)):
        s.record(pid, "b", annotator="ann", shown_swapped=False, request_id=f"n{i}")
    _button(at, "Step: fit, score and propose a batch").click()
    at.run()
    assert s.current_batch().batch_id != new.batch_id


def test_acquire_numbers_in_significant_digits_prompt_preview_and_diversity_note(sessions: Path) -> None:
    """Issue 11 item 8: BALD 1.2e-06 (never 0.0000), the prompt column shows the last human turn cut at a word,
    and a batch whose uncertainty is under 1% of the score says it is driven by prompt diversity alone."""
    from balpm.render import prompt_preview

    s = _session(sessions)
    pool = s.load_pool()
    ids = [str(i) for i in pool.ids[:4]]
    s.set_batch(pd.DataFrame({"id": ids, "uncertainty": [1.234e-6, 2e-7, 3e-6, 0.02],
                              "entropy_term": [0.031, 0.025, 0.02, 0.01], "score": [0.031, 0.025, 0.02, 0.03],
                              "ratio": [4e-5, 8e-6, 1.5e-4, 0.67], "round": [3] * 4}))
    at = _app("pages/3_acquire.py")
    _embed_now(at)
    frame = next(d for d in at.dataframe if "BALD" in d.value.columns)
    shown = _display_values(frame)
    assert shown["BALD"] == ["1.2e-06", "2e-07", "3e-06", "0.02"]
    assert shown["ratio"][:2] == ["4e-05", "8e-06"]
    assert not any(v.startswith("0.0000") for col in ("BALD", "β·Ĥ", "score", "ratio") for v in shown[col])
    prompts = pool.pairs.set_index("id").loc[ids, "prompt"]
    assert frame.value["prompt"].tolist() == [prompt_preview(p, 120) for p in prompts]
    assert any("driven by prompt diversity alone" in i.value and "3 of 4 picks" in i.value for i in at.info)


def _display_values(frame) -> dict[str, list[str]]:
    """What the browser shows in each cell of a styled ``st.dataframe`` (the Styler's display values)."""
    import pyarrow as pa

    styler = frame.proto.arrow_data.styler
    assert styler.display_values, "the table is not styled"
    display = pa.ipc.open_stream(styler.display_values).read_all().to_pandas()
    display.columns = list(frame.value.columns)
    return {c: [str(v) for v in display[c]] for c in display.columns}


def test_feature_space_offers_embed_now_instead_of_embedding_silently(sessions: Path) -> None:
    """Issue 11 item 7 (Feature space): a pool not embedded in this server gets an *Embed now* button, no map."""
    _session(sessions, max_pairs=91)  # a pool no other test embedded in this process
    at = _app("pages/5_feature_space.py")
    assert [b.label for b in at.button if b.key == "fs_load"] == ["Embed now"]
    assert not at.get("plotly_chart")
    _embed_now(at)
    assert not [b for b in at.button if b.label == "Embed now"]
    assert len(at.get("plotly_chart")) == 1


def test_feature_space_selection_leaves_out_the_bald_column_when_no_model_was_fitted(sessions: Path) -> None:
    """Streamlit's grid shows an empty cell as "None" in the browser whatever the Styler says: with no fitted model
    (so no BALD for any pair) the selection table has no BALD column at all, as the Acquire page's batch table."""
    _session(sessions, max_pairs=91)
    at = _app("pages/5_feature_space.py")
    _embed_now(at)
    fig = json.loads(at.get("plotly_chart")[0].proto.spec)
    trace = fig["data"][0]
    rows = trace["customdata"]
    if isinstance(rows, dict):  # plotly >= 6 packs arrays as base64
        import base64

        rows = np.frombuffer(base64.b64decode(rows["bdata"]), dtype=np.dtype(rows["dtype"])).ravel()
    points = [{"curve_number": 0, "point_index": i, "point_number": i, "customdata": int(rows[i])} for i in range(3)]
    at.session_state["fs_chart"] = {"selection": {"points": points, "point_indices": [0, 1, 2], "box": [],
                                                  "lasso": [{"x": [0, 1, 1], "y": [0, 0, 1]}]}}
    at.run()
    assert not at.exception, at.exception
    frame = next(d for d in at.dataframe if "id" in d.value.columns)
    assert len(frame.value) == 3
    assert "BALD" not in frame.value.columns, frame.value.columns
    assert all(None not in values for values in _display_values(frame).values())
