"""Sessions: create / open / resume, the store as the truth of the labelled set, batches, uploads, simulation.

Embeddings are random vectors with the pool's ids (the session logic does not care what they encode), so these
tests run in seconds; the app tests cover real embeddings.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from balpm.data import PoolFormatError
from balpm.embed import PoolEmbeddings
from balpm.session import (ORACLE, Session, SessionConfig, list_sessions, open_or_create_demo, sessions_dir,
                           validate_session_name)
from balpm.store import StoreDamagedError

TINY = dict(dataset="hh-rlhf:harmless-base", max_pairs=60, batch_size=4, n_members=2, hidden=(16,), max_epochs=3,
            initial=6)


@pytest.fixture()
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BALPM_SESSIONS_DIR", str(tmp_path / "sessions"))
    monkeypatch.setenv("BALPM_DATA_DIR", "none")  # the embedded sample: the same pairs on every machine
    return tmp_path / "sessions"


def fake_embeddings(pool, dim: int = 8, seed: int = 0) -> PoolEmbeddings:
    rng = np.random.default_rng(seed)
    n = len(pool)
    return PoolEmbeddings(ids=pool.ids, prompt=rng.normal(size=(n, dim)).astype(np.float32),
                          a=rng.normal(size=(n, dim)).astype(np.float32), b=rng.normal(size=(n, dim)).astype(np.float32),
                          model_id="fake-model")


def test_create_open_and_list(root: Path) -> None:
    assert sessions_dir() == root
    s = Session.create("alice", SessionConfig.from_settings(**TINY))
    assert (root / "alice" / "session.json").is_file() and (root / "alice" / "labels.sqlite").is_file()
    with pytest.raises(FileExistsError):
        Session.create("alice")
    again = Session.open("alice")
    assert again.config == s.config and again.config.created_at
    assert Session.create("alice", exist_ok=True).config == s.config
    Session.create("bob", SessionConfig.from_settings(**TINY))
    assert set(list_sessions()) == {"alice", "bob"}
    with pytest.raises(FileNotFoundError):
        Session.open("nobody")
    with pytest.raises(ValueError):
        Session.create("no spaces or !")
    assert s.store.get_meta("session")["pool"]["dataset"] == "hh-rlhf:harmless-base"


def test_session_names_never_leave_the_sessions_folder(root: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 10 case 13: a name is a name, never a path; only a pathlib.Path puts a session elsewhere."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))  # where '~/x' would land
    (tmp_path / "cwd" / "deep").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "cwd" / "deep")  # where '../../x' would land: tmp_path / "x"
    outside = str(tmp_path / "abs" / "x")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for bad in ("../../x", "../x", outside, "~/x", "a/b", "a\\b", ".", "..", ".hidden", "x.", "", "  ", "a b",
                "a\nb", "CON", "nul.txt", "a" * 81):
        with pytest.raises(ValueError, match="session name"):
            validate_session_name(bad)
        with pytest.raises(ValueError, match="session name"):
            Session.create(bad, SessionConfig.from_settings(**TINY))
        with pytest.raises(ValueError, match="session name"):
            Session.open(bad)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before  # no folder made anywhere
    assert validate_session_name(" alice-hh_2.b ") == "alice-hh_2.b"
    # code that means a folder says so with a Path (the sidebar never does)
    elsewhere = Session.create(tmp_path / "abs" / "x", SessionConfig.from_settings(**TINY))
    assert elsewhere.folder == tmp_path / "abs" / "x" and Session.open(tmp_path / "abs" / "x").name == "x"
    assert Session.create(Path("~/mine"), SessionConfig.from_settings(**TINY)).folder == home / "mine"
    with pytest.raises(TypeError):
        Session.open(3)  # type: ignore[arg-type]
    (root / "by hand").mkdir(parents=True)
    (root / "by hand" / "session.json").write_text(json.dumps(SessionConfig.from_settings(**TINY).to_dict()))
    assert "by hand" not in list_sessions()  # only names that can be opened by name are offered


def test_update_persists_and_pool_change_drops_the_batch(root: Path) -> None:
    s = Session.create("s", SessionConfig.from_settings(**TINY))
    pool = s.load_pool()
    learner = s.make_learner(pool, fake_embeddings(pool))
    s.propose(learner)
    assert s.current_batch() is not None
    s.update(policy="bald", batch_size=7)
    assert s.current_batch() is not None  # policy changes keep the batch being labelled
    assert Session.open("s").config.batch_size == 7
    s.update(max_pairs=30)
    assert s.current_batch() is None  # another pool: the old batch names other rows
    with pytest.raises(TypeError):
        s.update(nonsense=1)


def test_labels_are_rebuilt_from_the_store_after_a_crash(root: Path) -> None:
    s = Session.create("s", SessionConfig.from_settings(**TINY))
    pool = s.load_pool()
    emb = fake_embeddings(pool)
    ids = list(pool.ids[:5])
    for i, (pid, v) in enumerate(zip(ids, ["a", "b", "a", "tie", "skip"])):
        s.record(pid, v, annotator="ann", shown_swapped=bool(i % 2), request_id=f"t{i}", round=0)
    learner = s.make_learner(pool, emb)
    assert learner.n_labeled_ == 3 and learner.decided_mask.sum() == 5
    learner.fit()
    s.save_learner(learner)
    # a label committed after the last save (the process dies before saving the learner) is not lost
    s.record(pool.ids[7], "b", annotator="ann", shown_swapped=False, request_id="late", round=1)
    s.store.undo_last("ann", request_id="u1")  # ... and neither is an undo
    s.close()
    resumed = Session.open(s.folder)
    learner2 = resumed.make_learner(pool, emb)
    assert learner2.labels_dict() == {ids[0]: 1, ids[1]: 0, ids[2]: 1}
    assert learner2.decided_mask.sum() == 5 and learner2.ensemble_ is not None  # the saved ensemble is reused


def test_saved_learner_of_another_model_is_not_reused(root: Path) -> None:
    s = Session.create("s", SessionConfig.from_settings(**TINY))
    pool = s.load_pool()
    s.record(pool.ids[0], "a", annotator="ann", shown_swapped=False, request_id="x", round=0)
    s.record(pool.ids[1], "b", annotator="ann", shown_swapped=False, request_id="y", round=0)
    learner = s.make_learner(pool, fake_embeddings(pool))
    learner.fit()
    s.save_learner(learner)
    other = fake_embeddings(pool, dim=12)
    other.model_id = "another-model"
    fresh = s.make_learner(pool, other)
    assert fresh.ensemble_ is None and fresh.n_labeled_ == 2


def test_first_batch_is_random_then_the_model_picks(root: Path) -> None:
    s = Session.create("s", SessionConfig.from_settings(**TINY))
    pool = s.load_pool()
    emb = fake_embeddings(pool)
    learner = s.make_learner(pool, emb)
    b0 = s.propose(learner)
    assert b0.cold_start and b0.round == 0 and len(b0.ids) == TINY["batch_size"]
    assert s.propose(learner).ids == b0.ids  # same labelled set, same seed: same batch (a rerun is harmless)
    assert Session.open(s.folder).current_batch().cold_start  # the flag survives batch.json
    truth = dict(zip(pool.ids, pool.labels))
    for pid in b0.ids[:3]:
        s.record(pid, "a" if truth[pid] == 1 else "b", annotator="x", shown_swapped=False, request_id=pid,
                 round=b0.round)
    assert s.pending_ids() == b0.ids[3:]
    b1 = s.propose(learner)
    assert not b1.cold_start and b1.round == 1 and len(b1.ids) == TINY["batch_size"]
    assert np.isfinite(b1.table["uncertainty"]).all() and not set(b1.ids) & set(b0.ids[:3])
    reopened = Session.open(s.folder).current_batch()
    assert reopened.ids == b1.ids and reopened.batch_id == b1.batch_id


def test_undo_puts_the_pair_back_in_front_of_the_batch(root: Path) -> None:
    s = Session.create("s", SessionConfig.from_settings(**TINY))
    pool = s.load_pool()
    learner = s.make_learner(pool, fake_embeddings(pool))
    b = s.propose(learner)
    s.record(b.ids[0], "a", annotator="x", shown_swapped=False, request_id="r0", round=0)
    s.clear_batch()
    s.propose(learner)  # a later batch that no longer holds the labelled pair
    ev = s.undo_last("x", request_id="u")
    assert ev["pair_id"] == b.ids[0]
    assert s.current_batch().ids[0] == b.ids[0] and b.ids[0] in s.pending_ids()
    assert s.undo_last("x", request_id="u")["event_id"] == ev["event_id"]  # replayed click: nothing more undone


def test_side_order_is_stable_and_roughly_balanced(root: Path) -> None:
    s = Session.create("s", SessionConfig.from_settings(**TINY))
    ids = [f"id{i}" for i in range(400)]
    flips = [s.side_swapped(i) for i in ids]
    assert flips == [Session.open(s.folder).side_swapped(i) for i in ids]
    assert 150 < sum(flips) < 250


def test_upload_is_saved_inside_the_session_and_reopens(root: Path) -> None:
    s = Session.create("s", SessionConfig.from_settings(dataset="", max_pairs=None))
    rel = s.save_upload("../../pairs.jsonl", b'{"prompt": "p", "chosen": "x", "rejected": "y"}\n')
    assert rel == "uploads/pairs.jsonl" and (s.folder / rel).is_file()
    s.update(dataset=rel)
    before = s.pool_identity()
    assert len(Session.open(s.folder).load_pool()) == 1
    (s.folder / rel).write_bytes(b'{"prompt": "p", "chosen": "x", "rejected": "y"}\n{"prompt": "q", "chosen": "u", "rejected": "v"}\n')
    assert s.pool_identity() != before  # a replaced file is another pool: caches keyed on it never go stale
    bad = s.save_upload("bad.jsonl", b'{"prompt": "p", "chosen": "x"}\n')
    s.update(dataset=bad)
    with pytest.raises(PoolFormatError, match=r"bad.jsonl:1"):
        s.load_pool()


def test_demo_session_on_first_start(root: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    demo = open_or_create_demo()  # no data folder here: the demo labels the embedded sample
    assert demo.name == "demo" and demo.config.pool.dataset == "sample:hh-rlhf:harmless-base"
    assert open_or_create_demo().folder == demo.folder
    monkeypatch.setenv("BALPM_DATA_DIR", str(tmp_path / "missing"))  # a wrong folder: still a demo, on the sample
    assert open_or_create_demo(tmp_path / "elsewhere").config.pool.dataset == "sample:hh-rlhf:harmless-base"


def test_simulation_rounds_store_oracle_labels_and_resume(root: Path) -> None:
    s = Session.create("sim", SessionConfig.from_settings(**TINY, mode="simulation"))
    pool = s.load_pool()
    assert not np.isnan(pool.labels).any()
    emb = fake_embeddings(pool)
    train, test = s.split_masks(pool)
    assert test is not None and test.any() and not (train & test).any()
    held_out = pool.split_by_group(s.config.pool.test_fraction, s.config.pool.data_seed)[1]
    assert pool.ids[test].tolist() == held_out.ids.tolist()  # one split: the run's split_by_group, as a mask
    learner = s.make_learner(pool.subset(train), emb.subset(train))
    r0 = s.simulate_round(learner, pool.subset(test), emb.subset(test))
    r1 = s.simulate_round(learner, pool.subset(test), emb.subset(test))
    assert (r0["round"], r0["n_labeled"]) == (0, TINY["initial"])
    assert (r1["round"], r1["n_labeled"]) == (1, TINY["initial"] + TINY["batch_size"])
    assert np.isfinite(r1["log_likelihood"])
    events = s.store.active_labels()
    assert len(events) == TINY["initial"] + TINY["batch_size"] and set(events["annotator"]) == {ORACLE}
    truth = dict(zip(pool.ids, pool.labels))
    assert all(truth[p] == lab for p, lab in zip(events["pair_id"], events["label"]))
    assert list(s.metrics()["n_labeled"]) == [r0["n_labeled"], r1["n_labeled"]]
    from balpm.experiment import METRIC_COLUMNS

    assert list(s.metrics().columns) == list(METRIC_COLUMNS)  # one round, one schema: a run folder's metrics.csv
    assert r1["policy"] == "bal-pm" and r1["split"] == "test" and np.isfinite(r1["uncertainty_mean"])
    resumed = Session.open(s.folder).make_learner(pool.subset(train), emb.subset(train))
    assert resumed.labels_dict() == learner.labels_dict()
    assert json.loads((s.folder / "session.json").read_text())["mode"] == "simulation"


def test_batch_of_another_pool_or_model_is_never_shown(root: Path) -> None:
    s = Session.create("s", SessionConfig.from_settings(**TINY))
    pool = s.load_pool()
    s.propose(s.make_learner(pool, fake_embeddings(pool)))
    assert s.current_batch() is not None
    other = Session.open(s.folder)
    other.update(max_length=32)  # another tab changes the model settings
    assert s.reload().embedding.max_length == 32 and s.current_batch() is None


def test_every_scored_batch_is_kept_for_the_ratio_history(root: Path) -> None:
    s = Session.create("hist", SessionConfig.from_settings(**TINY, mode="simulation", policy="bal-pm"))
    pool = s.load_pool()
    emb = fake_embeddings(pool)
    train, test = s.split_masks(pool)
    learner = s.make_learner(pool.subset(train), emb.subset(train))
    for _ in range(3):  # initial random set, then two scored rounds
        s.simulate_round(learner, pool.subset(test), emb.subset(test))
    hist = s.selections()
    assert sorted(hist["round"].unique()) == [1, 2] and len(hist) == 2 * TINY["batch_size"]
    assert np.isfinite(hist["ratio"]).all() and list(hist.loc[hist["round"] == 2, "pick"]) == [0, 1, 2, 3]
    acquired = set(s.store.active_labels()["pair_id"])
    assert set(hist["id"]) <= acquired
    # a batch proposed again for the same round replaces that round's earlier proposal; nothing else is lost
    b3 = s.propose(learner)
    b3_again = s.propose(learner)
    hist = Session.open(s.folder).selections()
    assert sorted(hist["round"].unique()) == [1, 2, 3]
    assert hist.loc[hist["round"] == 3, "id"].tolist() == b3_again.ids == b3.ids
    assert s.pick_history()["round"].tolist() == hist["round"].tolist()


def test_cold_start_batches_have_no_history(root: Path) -> None:
    s = Session.create("cold", SessionConfig.from_settings(**TINY))
    pool = s.load_pool()
    s.propose(s.make_learner(pool, fake_embeddings(pool)))
    assert s.selections().empty and s.pick_history().empty


def test_a_session_whose_labels_vanished_refuses_to_label(root: Path) -> None:
    """Issue 10 case 11: an emptied labels.sqlite must not open as a fresh session: it says how to restore."""
    s = Session.create("s", SessionConfig.from_settings(**TINY))
    for i in range(3):
        s.record(f"p{i}", "a", annotator="ann", shown_swapped=False, request_id=f"r{i}")
    s.close()
    (s.folder / "labels.sqlite").write_bytes(b"")  # a disk incident
    for side in ("labels.sqlite-wal", "labels.sqlite-shm"):
        (s.folder / side).unlink(missing_ok=True)
    again = Session.open("s")  # the settings still open (the Pool page can show them) ...
    with pytest.raises(StoreDamagedError, match="restore"):
        again.record("p9", "a", annotator="ann", shown_swapped=False, request_id="r9")  # ... labelling cannot
    with pytest.raises(StoreDamagedError, match="3 label events"):
        again.n_labelled()
    assert (s.folder / "labels.sqlite").stat().st_size == 0


def test_balpm_backup_command(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 10 case 11: `balpm backup SESSION [--out FILE]` on demand; a damaged store is refused in one line."""
    import sqlite3

    from balpm.cli import main

    s = Session.create("s", SessionConfig.from_settings(**TINY))
    s.record("p0", "b", annotator="ann", shown_swapped=False, request_id="r0")
    assert main(["backup", "s"]) == 0
    made = Path(capsys.readouterr().out.strip())
    assert made.parent == s.folder / "backups" and made.is_file()
    out = root.parent / "elsewhere" / "copy.sqlite"
    assert main(["backup", str(s.folder), "--out", str(out)]) == 0  # a folder path works too
    assert sqlite3.connect(out).execute("SELECT pair_id, label, annotator FROM labels").fetchall() == [
        ("p0", 0, "ann")]
    assert main(["backup", "s", "--out", str(out)]) == 2  # never overwrites
    assert "exists" in capsys.readouterr().err
    assert main(["backup", "no such name!"]) == 2
    assert "session name" in capsys.readouterr().err
    s.close()
    (s.folder / "labels.sqlite").write_bytes(b"")
    for side in ("labels.sqlite-wal", "labels.sqlite-shm"):
        (s.folder / side).unlink(missing_ok=True)
    assert main(["backup", "s"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("balpm backup: ") and err.count("\n") == 1 and "restore" in err.lower()


FIXTURES = Path(__file__).parent / "fixtures"


def test_session_folder_written_before_issue_13_still_opens(tmp_path: Path) -> None:
    """tests/fixtures/session_before_issue13 was written before the configs were nested (flat session.json:
    ``pool`` a str, ``pool_seed``, ``model``, ``model_params``): it opens with every setting and its two labels."""
    import shutil

    folder = shutil.copytree(FIXTURES / "session_before_issue13", tmp_path / "old")
    s = Session.open(folder)
    c = s.config
    assert c.pool.dataset == "sample:hh-rlhf:harmless-base" and c.pool.data_seed == 3 and c.pool.max_pairs == 60
    assert c.pool.test_fraction == 0.25 and c.mode == "simulation" and c.initial == 8
    assert (c.embedding.embedding_model, c.embedding.max_length, c.embedding.embed_batch_size) == ("default", 128, 16)
    assert c.acquisition.policy == "bal-pm" and c.acquisition.params == {"beta": 0.05, "k": 7}
    assert c.ensemble.n_members == 3 and c.ensemble.hidden == (16,) and c.ensemble.max_epochs == 4
    assert c.batch_size == 8 and c.seed == 2
    assert s.store.label_map() == {"5131d596ab9087bc": 1.0, "7ce9df29e706c228": 0.0}
    assert len(s.load_pool()) == 60  # the same sample as before: its labels still name its pairs
    assert SessionConfig.from_dict(c.to_dict()) == c
    assert c.settings()["policy_params"] == {"beta": 0.05, "k": 7} and c.settings()["data_seed"] == 3


def test_settings_by_flat_name_reach_their_concern(root: Path) -> None:
    c = SessionConfig.from_settings(dataset="x.jsonl", embedding_model="smollm2", policy="bald", n_members=2)
    assert c.pool.dataset == "x.jsonl" and c.embedding.embedding_model == "smollm2"
    assert c.acquisition.policy == "bald" and c.ensemble.n_members == 2 and c.pool.max_pairs == 500
    with pytest.raises(TypeError, match="unknown session settings"):
        c.with_settings(model="default")  # the embedding model's old name is refused, not silently dropped
    with pytest.raises(TypeError, match="PoolConfig"):
        c.with_settings(pool="x.jsonl")


def test_a_selection_is_stored_once_in_the_log(root: Path) -> None:
    """Issue 13 item 4: ``selections.csv`` is the one record of a selection; ``batch.json`` holds only the current
    batch's ids and round, the learner's folder no selection; the batch's scores are read back from the log, which
    is also the pick history. Before, batch.json carried a score table and learner/last_selection-*.csv a copy."""
    from balpm.acquisition import SELECTION_COLUMNS as FRAME
    from balpm.session import SELECTION_COLUMNS as LOG

    s = Session.create("once", SessionConfig.from_settings(**TINY, policy="bal-pm"))
    pool = s.load_pool()
    learner = s.make_learner(pool, fake_embeddings(pool))
    truth = dict(zip(pool.ids, pool.labels))
    for pid in s.propose(learner).ids:  # the cold start: random, nothing logged
        s.record(pid, "a" if truth[pid] == 1 else "b", annotator="x", shown_swapped=False, request_id=pid, round=0)
    sel = s.sync(learner).suggest()
    assert list(sel.columns) == list(FRAME)  # one layout of a selection: suggest builds Selection.to_frame's
    assert set(LOG) <= set(FRAME)  # the log keeps the frame's columns that are not in the pool table
    batch = s.propose(learner)
    on_disk = json.loads((s.folder / "batch.json").read_text())
    assert on_disk["ids"] == batch.ids and on_disk["round"] == batch.round == 1
    assert not {"table", "uncertainty", "score"} & set(on_disk)
    assert not [p.name for p in s.learner_dir.iterdir() if "selection" in p.name]
    log = s.selections()
    assert list(log.columns) == LOG and log["round"].tolist() == [1] * len(batch.ids)
    assert log["id"].tolist() == batch.ids == sel["id"].tolist()
    again = Session.open(s.folder).current_batch()
    for col in ("uncertainty", "entropy_term", "score", "ratio"):
        np.testing.assert_array_equal(again.table[col].to_numpy(), sel[col].to_numpy())  # read back from the log
    assert s.pick_history()[LOG].equals(log[LOG])


def test_selections_of_an_old_folder_still_load(root: Path) -> None:
    """A session folder from before the one log kept its current batch's scores in batch.json only: they still
    show in the batch and the pick history."""
    s = Session.create("old", SessionConfig.from_settings(**TINY))
    pool = s.load_pool()
    ids = [str(i) for i in pool.ids[:3]]
    table = {"id": ids, "uncertainty": [0.3, 0.2, 0.1], "entropy_term": [0.01, 0.02, None],
             "score": [0.31, 0.22, 0.1], "ratio": [0.3 / 0.31, 0.2 / 0.22, 1.0]}
    (s.folder / "batch.json").write_text(json.dumps({
        "batch_id": "b", "round": 2, "ids": ids, "created_at": "", "cold_start": False, "pool": s.pool_identity(),
        "model": s.config.model_key(), "table": table}))
    batch = Session.open(s.folder).current_batch()
    assert batch.ids == ids and batch.table["score"].tolist() == [0.31, 0.22, 0.1]
    hist = s.pick_history()
    assert hist["id"].tolist() == ids and hist["round"].tolist() == [2, 2, 2] and hist["pick"].tolist() == [0, 1, 2]


def _a_batch(s: Session, ids: list[str]) -> None:
    """Make ``ids`` the session's scored batch of round 1 (what Acquire writes)."""
    import pandas as pd

    s.set_batch(pd.DataFrame({"id": ids, "round": 1, "pick": range(len(ids)), "uncertainty": 0.5,
                              "entropy_term": 0.1, "score": 0.6, "ratio": 0.8}))


def test_a_built_in_pool_is_keyed_by_the_files_it_reads(root: Path, tmp_path: Path, monkeypatch) -> None:
    """``hh-rlhf:harmless-base`` reads the full split when BALPM_DATA_DIR holds it, else the embedded sample: other
    pairs, so another pool identity, and the batch proposed on one is not shown on the other. Before, every built-in
    name's files were fingerprinted as just "builtin": switching data folders went unnoticed."""
    import gzip
    import shutil

    from balpm.data import sample_dir

    sample = sample_dir() / "hh-rlhf" / "harmless-base-sample.jsonl.gz"
    full = tmp_path / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"  # a data folder laid out as the shared one
    full.parent.mkdir(parents=True)
    shutil.copyfile(sample, full)
    s = Session.create("s", SessionConfig.from_settings(dataset="hh-rlhf:harmless-base", max_pairs=60))
    on_sample = s.pool_identity()  # BALPM_DATA_DIR=none (the root fixture)
    monkeypatch.setenv("BALPM_DATA_DIR", str(tmp_path / "data"))
    on_full = s.pool_identity()
    assert on_full != on_sample and s.pool_identity() == on_full  # stable while the data stay
    ids = [str(i) for i in s.load_pool().ids[:3]]
    _a_batch(s, ids)
    assert s.current_batch().ids == ids
    monkeypatch.setenv("BALPM_DATA_DIR", "none")
    assert s.pool_identity() == on_sample and s.current_batch() is None  # proposed on other data: not shown
    monkeypatch.setenv("BALPM_DATA_DIR", str(tmp_path / "data"))
    assert s.current_batch().ids == ids
    with gzip.open(sample) as f:  # the full file replaced by other pairs (its first 100 lines)
        lines = f.readlines()[:100]
    with gzip.open(full, "wb") as f:
        f.writelines(lines)
    assert s.pool_identity() not in (on_full, on_sample) and s.current_batch() is None


def test_session_folder_written_before_built_in_files_were_counted_keeps_its_batch(root: Path, tmp_path: Path) -> None:
    """tests/fixtures/session_before_pool_files was written by balpm before a built-in's files were part of the pool
    identity (batch.json keyed with "builtin"): the same data give the same pool, so its batch is still shown, and
    it is re-keyed by the files read from now on."""
    import shutil

    folder = shutil.copytree(FIXTURES / "session_before_pool_files", tmp_path / "old")
    s = Session.open(folder)
    assert s.config.pool.dataset == "sample:hh-rlhf:harmless-base"
    batch = s.current_batch()
    assert batch is not None and batch.ids == ["5131d596ab9087bc", "7ce9df29e706c228", "a8ab1470b5896166",
                                               "465798a8fb4746ff"]
    assert batch.table["score"].tolist() == [0.41, 0.31, 0.21, 0.11]  # its scores, from the old selections.csv
    assert json.loads((folder / "batch.json").read_text())["pool"] == s.pool_identity()
    assert s.current_batch().ids == batch.ids and set(s.load_pool().ids) >= set(batch.ids)
