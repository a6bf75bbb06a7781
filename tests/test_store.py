"""The label store: idempotent, durable, one active label per pair, on a real SQLite file."""

from __future__ import annotations

import gc
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from types import SimpleNamespace

import pandas as pd
import pytest

from balpm.store import SCHEMA_VERSION, LabelStore, StoreDamagedError, verdict_to_label


def _pool() -> SimpleNamespace:
    pairs = pd.DataFrame({
        "id": ["p0", "p1", "p2", "p3"],
        "prompt": ["q0", "q1", "q2", "q3"],
        "completion_a": ["a0", "a1", "a2", "a3"],
        "completion_b": ["b0", "b1", "b2", "b3"],
    })
    return SimpleNamespace(pairs=pairs, name="toy")


def test_record_and_read(tmp_path):
    store = LabelStore(tmp_path / "s.db")
    r = store.record("p0", "a", "ann", False, 0, "req-0", batch_id="b0")
    assert r.recorded and r.status == "recorded"
    store.record("p1", "b", "ann", True, 0, "req-1")
    store.record("p2", "tie", "ann", False, 1, "req-2")
    store.record("p3", "skip", "ann", False, 1, "req-3")
    df = store.active_labels()
    assert list(df["pair_id"]) == ["p0", "p1", "p2", "p3"]
    assert df["label"].tolist()[:2] == [1, 0] and df["label"].isna().tolist()[2:] == [True, True]
    assert df["shown_swapped"].tolist() == [False, True, False, False]
    assert df.loc[0, "batch_id"] == "b0"
    assert df["created_at"].str.endswith("+00:00").all()
    assert store.label_map() == {"p0": 1, "p1": 0}
    assert store.decided_ids() == {"p0", "p1", "p2", "p3"}
    assert len(store) == 4
    # the journal is WAL and survives reopening
    assert sqlite3.connect(tmp_path / "s.db").execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    assert LabelStore(tmp_path / "s.db").label_map() == {"p0": 1, "p1": 0}


def test_verdicts_validated(tmp_path):
    store = LabelStore(tmp_path / "s.db")
    with pytest.raises(ValueError):
        store.record("p0", "left", "ann", False, 0, "r")
    with pytest.raises(ValueError):
        store.record("p0", "a", "ann", False, 0, None)
    assert verdict_to_label("a") == 1 and verdict_to_label("b") == 0 and verdict_to_label("tie") is None
    assert len(store) == 0


def test_same_request_id_is_recorded_once(tmp_path):
    store = LabelStore(tmp_path / "s.db")
    first = store.record("p0", "a", "ann", False, 0, "req")
    again = store.record("p0", "a", "ann", False, 0, "req")
    replay_other_verdict = store.record("p0", "b", "ann", False, 0, "req")
    assert first.status == "recorded"
    assert again.status == "duplicate" and again.event_id == first.event_id
    assert replay_other_verdict.status == "duplicate"
    assert len(store.events()) == 1 and store.label_map() == {"p0": 1}


def test_second_tab_cannot_relabel_a_pair(tmp_path):
    tab1, tab2 = LabelStore(tmp_path / "s.db"), LabelStore(tmp_path / "s.db")
    assert tab1.record("p0", "a", "ann", False, 0, "tab1-token").recorded
    r = tab2.record("p0", "b", "ann", False, 0, "tab2-token")
    assert r.status == "already_labelled"
    assert tab2.label_map() == {"p0": 1}


def test_undo_marks_never_deletes(tmp_path):
    store = LabelStore(tmp_path / "s.db")
    store.record("p0", "a", "alice", False, 0, "r0")
    store.record("p1", "b", "bob", False, 0, "r1")
    store.record("p2", "a", "alice", False, 0, "r2")
    undone = store.undo_last("alice", request_id="undo-1")
    assert undone["pair_id"] == "p2" and undone["undone"] == 1
    # a replayed Undo click undoes nothing more
    assert store.undo_last("alice", request_id="undo-1")["pair_id"] == "p2"
    assert store.label_map() == {"p0": 1, "p1": 0}
    assert store.undo_last("bob")["pair_id"] == "p1"
    assert store.label_map() == {"p0": 1}
    ev = store.events()
    assert len(ev) == 3 and ev["undone"].tolist() == [False, True, True]
    # an undone pair can be labelled again, with a new token
    assert store.record("p2", "b", "alice", True, 1, "r3").recorded
    assert store.label_map() == {"p0": 1, "p2": 0}
    assert store.undo_last("carol") is None


def test_no_label_without_an_annotator(tmp_path):
    """Issue 10 case 3: a label with no (or a blank) annotator is refused, by the store and by the file itself."""
    store = LabelStore(tmp_path / "s.db")
    for nobody in (None, "", "   "):
        with pytest.raises(ValueError, match="annotator"):
            store.record("p0", "a", nobody, False, 0, f"req-{nobody!r}")
    assert len(store.events()) == 0
    # a writer that bypasses LabelStore (an older balpm, a script) is refused by the database too
    conn = sqlite3.connect(tmp_path / "s.db")
    with pytest.raises(sqlite3.IntegrityError, match="annotator"):
        conn.execute("INSERT INTO labels (request_id, pair_id, verdict, label, annotator, created_at)"
                      " VALUES ('raw', 'p0', 'a', 1, NULL, 'now')")
    conn.close()
    assert store.record("p0", "a", " alice ", False, 0, "ok").recorded
    assert store.events()["annotator"].tolist() == ["alice"]  # surrounding blanks are not part of a name


def test_undo_only_ever_undoes_the_callers_own_labels(tmp_path):
    """Issue 10 case 3: Undo with no name used to undo anyone's most recent label."""
    store = LabelStore(tmp_path / "s.db")
    store.record("p0", "a", "alice", False, 0, "r0")
    store.record("p1", "b", "bob", False, 0, "r1")
    for nobody in (None, "", " "):
        with pytest.raises(ValueError, match="annotator"):
            store.undo_last(nobody)
    with pytest.raises(TypeError):
        store.undo_last()  # the annotator is not optional
    assert store.label_map() == {"p0": 1, "p1": 0}  # nothing undone by the refused calls
    assert store.undo_last("alice")["pair_id"] == "p0"  # alice's, although bob labelled after her
    assert store.undo_last("alice") is None  # alice has nothing left: bob's label is not hers to undo
    assert store.label_map() == {"p1": 0}
    # a replayed Undo click of bob's cannot be claimed by alice
    assert store.undo_last("bob", request_id="u-bob")["pair_id"] == "p1"
    with pytest.raises(ValueError, match="bob"):
        store.undo_last("alice", request_id="u-bob")


def test_default_annotator_is_set_once(tmp_path):
    """Issue 10 case 3: a one-person session may name its annotator once; it never changes silently."""
    store = LabelStore(tmp_path / "s.db")
    assert store.default_annotator() is None
    with pytest.raises(ValueError, match="annotator"):
        store.set_default_annotator("  ")
    assert store.set_default_annotator(" solo ") == "solo"
    assert store.set_default_annotator("solo") == "solo"  # the same name again is fine
    with pytest.raises(ValueError, match="'solo'"):
        store.set_default_annotator("other")
    assert LabelStore(tmp_path / "s.db").default_annotator() == "solo"  # kept in the file


def test_meta_and_exports(tmp_path):
    store = LabelStore(tmp_path / "s.db")
    store.set_meta("policy", "bal-pm")
    store.set_meta("params", {"beta": 0.01, "k": 13})
    store.set_meta("policy", "bald")
    assert store.get_meta("policy") == "bald" and store.get_meta("missing", 3) == 3
    assert store.meta() == {"params": {"beta": 0.01, "k": 13}, "policy": "bald"}

    store.record("p0", "a", "ann", False, 0, "r0")
    store.record("p1", "b", "ann", True, 0, "r1")
    store.record("p2", "tie", "ann", False, 0, "r2")
    store.record("p3", "a", "ann", False, 0, "r3")
    store.undo_last("ann")
    n = store.export_trl(_pool(), tmp_path / "out" / "trl.jsonl")
    lines = [json.loads(x) for x in (tmp_path / "out" / "trl.jsonl").read_text().splitlines()]
    ev = store.events().set_index("pair_id")
    assert n == 2 and lines == [
        {"id": "p0", "prompt": "q0", "chosen": "a0", "rejected": "b0", "annotator": "ann",
         "labelled_at": ev.loc["p0", "created_at"]},
        {"id": "p1", "prompt": "q1", "chosen": "b1", "rejected": "a1", "annotator": "ann",
         "labelled_at": ev.loc["p1", "created_at"]},
    ]
    assert store.export_parquet(tmp_path / "ev.parquet") == 4
    ev = pd.read_parquet(tmp_path / "ev.parquet")
    assert ev["undone"].tolist() == [False, False, False, True]
    store.record("zz", "a", "ann", False, 0, "r4")
    with pytest.raises(KeyError):
        store.export_trl(_pool(), tmp_path / "bad.jsonl")


def test_concurrent_threads_same_pairs(tmp_path):
    """Two tabs (threads) race to label the same 60 pairs: each pair ends with exactly one active label."""
    store = LabelStore(tmp_path / "s.db")
    results: dict[str, list] = {"t1": [], "t2": []}
    barrier = threading.Barrier(2)

    def work(name: str, verdict: str) -> None:
        barrier.wait()
        for i in range(60):
            results[name].append(store.record(f"p{i}", verdict, name, False, 0, f"{name}-{i}").status)

    threads = [threading.Thread(target=work, args=("t1", "a")), threading.Thread(target=work, args=("t2", "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    labels = store.label_map()
    assert len(labels) == 60
    won = sum(s == "recorded" for s in results["t1"] + results["t2"])
    lost = sum(s == "already_labelled" for s in results["t1"] + results["t2"])
    assert won == 60 and lost == 60
    assert len(store.events()) == 60


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd (Linux)")
def test_thread_churn_leaves_no_connection_open(tmp_path):
    """200 operations from 50 short-lived threads (a Streamlit rerun per thread) leave no file handle behind.

    SQLite may keep the descriptor of a closed connection for reuse while another connection of the process holds
    a lock on the file (POSIX locks), so the count may rise by at most one per thread alive at once, never per
    thread ever run; :meth:`LabelStore.close` releases everything.
    """
    LabelStore(tmp_path / "warm.db").close()  # any lazy one-off handles (imports, caches) are open now
    gc.collect()  # connections of earlier tests (sqlite3 frees them in the cycle collector): now, not mid-count
    base = _open_fds()
    store = LabelStore(tmp_path / "s.db")
    store.record("warm", "a", "ann", False, 0, "warm")
    held = _open_fds()
    assert held - base <= 4  # the idle connection (database, WAL, WAL index) and one descriptor kept for reuse
    errors: list[BaseException] = []

    def rerun(i: int) -> None:
        try:
            assert store.record(f"p{i}", "a" if i % 2 else "b", "ann", False, 0, f"r{i}").recorded
            assert f"p{i}" in store.decided_ids()
            assert store.label_map()[f"p{i}"] == i % 2
            store.set_meta(f"k{i}", i)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    live = 10
    for start in range(0, 50, live):  # ten live threads at a time, each gone before the next wave
        wave = [threading.Thread(target=rerun, args=(i,)) for i in range(start, start + live)]
        for t in wave:
            t.start()
        for t in wave:
            t.join()
        assert _open_fds() <= held + live  # one connection left open per thread would add 3 per thread
    assert not errors, errors
    assert len(store) == 51 and store.get_meta("k49") == 49
    store.close()
    assert _open_fds() == base
    # still durable and WAL, and usable after close: a fresh reader sees every commit
    reader = sqlite3.connect(tmp_path / "s.db")
    assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    reader.close()
    assert len(store.label_map()) == 51 and _open_fds() == base


_WRITER = textwrap.dedent("""
    import sys
    from balpm.store import LabelStore
    store = LabelStore(sys.argv[1])
    name, n = sys.argv[2], int(sys.argv[3])
    for i in range(n):
        r = store.record(f"{name}-{i}", "a" if i % 2 else "b", name, False, i // 10, f"{name}-req-{i}")
        if r.recorded:
            print(f"{name}-{i}", flush=True)
""")


def test_concurrent_processes(tmp_path):
    db = tmp_path / "s.db"
    LabelStore(db).close()
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(db), name, "150"], stdout=subprocess.PIPE,
                              text=True) for name in ("w1", "w2")]
    acked = set()
    for p in procs:
        out, _ = p.communicate(timeout=120)
        assert p.returncode == 0
        acked |= set(out.split())
    assert len(acked) == 300
    assert set(LabelStore(db).label_map()) == acked


def test_kill_9_loses_no_acknowledged_label(tmp_path):
    """A writer killed mid-loop: every label it printed (after its commit returned) is in the database."""
    db = tmp_path / "s.db"
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(db), "k", "100000"], stdout=subprocess.PIPE,
                            text=True)
    acked: list[str] = []
    deadline = time.monotonic() + 60
    while len(acked) < 200 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(line.strip())
    os.kill(proc.pid, signal.SIGKILL)
    rest, _ = proc.communicate(timeout=30)
    acked += rest.split()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 200
    stored = LabelStore(db).label_map()
    missing = set(acked) - set(stored)
    assert not missing, f"{len(missing)} acknowledged labels lost"
    # at most the one in flight was committed but not yet printed
    assert len(stored) - len(acked) in (0, 1)


# ---------------------------------------------------------------------------------------------- damaged files
def _filled(db, n: int = 3) -> None:
    with LabelStore(db) as store:
        for i in range(n):
            assert store.record(f"pair-{i:06d}", "a" if i % 2 else "b", "ann", False, 0, f"r{i}").recorded


def test_truncated_database_with_evidence_of_labels_refuses_to_open(tmp_path):
    """Issue 10 case 11: a 0-byte labels file (a disk incident) opened as a new empty store, labels gone silently."""
    db = tmp_path / "labels.sqlite"
    _filled(db, 3)
    assert (tmp_path / "labels.count").is_file()  # the evidence kept beside the database
    backup = LabelStore(db).backup()
    db.write_bytes(b"")
    for side in (tmp_path / "labels.sqlite-wal", tmp_path / "labels.sqlite-shm"):
        side.unlink(missing_ok=True)
    with pytest.raises(StoreDamagedError) as err:
        LabelStore(db)
    msg = str(err.value)
    assert str(db) in msg and "3 label events" in msg and str(backup) in msg and "restore" in msg.lower()
    assert err.value.path == db and err.value.backups == [backup]
    assert db.stat().st_size == 0  # nothing was written into the damaged file
    db.unlink()  # a deleted database is no better
    with pytest.raises(StoreDamagedError):
        LabelStore(db)
    # the restore the message describes works: the backup back in place, the evidence of later labels dropped
    db.write_bytes(backup.read_bytes())
    (tmp_path / "labels.count").unlink()
    assert LabelStore(db).label_map() == {"pair-000000": 0, "pair-000001": 1, "pair-000002": 0}


def test_an_existing_store_gains_its_evidence_on_first_open(tmp_path):
    """A database written before the label count was kept gets one the first time it is opened."""
    db = tmp_path / "labels.sqlite"
    _filled(db, 2)
    (tmp_path / "labels.count").unlink()
    LabelStore(db).close()
    assert json.loads((tmp_path / "labels.count").read_text())["events"] == 2
    db.write_bytes(b"")
    with pytest.raises(StoreDamagedError, match="2 label events"):
        LabelStore(db)


def _flip_in_index(db, pair_id: str) -> None:
    """Flip one bit of ``pair_id``'s key inside the one-active-label index (not in the table): a silent corruption."""
    conn = sqlite3.connect(db)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    try:
        pages = [r[0] for r in conn.execute("SELECT pageno FROM dbstat WHERE name = 'labels_one_active_per_pair'")]
    except sqlite3.OperationalError:
        pytest.skip("this SQLite has no dbstat table to locate the index pages")
    finally:
        conn.close()
    data = bytearray(db.read_bytes())
    for page in pages:
        at = data.find(pair_id.encode(), (page - 1) * page_size, page * page_size)
        if at >= 0:
            data[at + len(pair_id) - 1] ^= 0x40  # the last digit becomes a letter: the index names no such row
            db.write_bytes(bytes(data))
            return
    raise AssertionError(f"{pair_id} not found in the index pages")


def test_flipped_bytes_in_the_index_are_found_on_open(tmp_path):
    """Issue 10 case 11: an index damaged by flipped bytes let a second active label for one pair be recorded."""
    db = tmp_path / "labels.sqlite"
    _filled(db, 600)
    _flip_in_index(db, "pair-000123")
    with pytest.raises(StoreDamagedError) as err:
        LabelStore(db)
    assert "labels_one_active_per_pair" in str(err.value) and str(db) in str(err.value)
    # what opening it anyway would have allowed: the index no longer sees the pair's active label
    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO labels (request_id, pair_id, verdict, label, annotator, created_at)"
                 " VALUES ('second', 'pair-000123', 'a', 1, 'ann', 'now')")
    assert conn.execute("SELECT COUNT(*) FROM labels NOT INDEXED WHERE pair_id = 'pair-000123' AND undone = 0"
                        ).fetchone()[0] == 2
    conn.close()


@pytest.mark.parametrize("seed", range(6))
def test_random_byte_flips_are_refused_or_leave_a_sound_file(tmp_path, seed):
    """Flipped bits in a page are refused on open, or left the file's structure sound; never another exception.

    (SQLite keeps no checksum of row contents: a flip inside a stored text is not detectable by any check.)
    """
    import random

    db = tmp_path / "labels.sqlite"
    _filled(db, 300)
    rng = random.Random(seed)
    data = bytearray(db.read_bytes())
    page_size = 4096
    page = rng.randrange(1, len(data) // page_size)  # any page but the header page
    for _ in range(8):
        data[page * page_size + rng.randrange(page_size)] ^= 1 << rng.randrange(8)
    db.write_bytes(bytes(data))
    try:
        store = LabelStore(db)
    except StoreDamagedError as e:
        assert str(db) in str(e)
        return
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    conn.close()
    assert len(store.events()) == 300


def _old_schema_store(db, version: int = 1) -> None:
    """A label database as balpm wrote it at schema 1 (before the no-anonymous-label trigger)."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.executescript("""
        CREATE TABLE labels (
            event_id INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT NOT NULL UNIQUE, pair_id TEXT NOT NULL,
            verdict TEXT NOT NULL CHECK (verdict IN ('a', 'b', 'tie', 'skip')), label INTEGER CHECK (label IN (0, 1)),
            annotator TEXT, created_at TEXT NOT NULL,
            shown_swapped INTEGER NOT NULL DEFAULT 0 CHECK (shown_swapped IN (0, 1)), round INTEGER, batch_id TEXT,
            undone INTEGER NOT NULL DEFAULT 0 CHECK (undone IN (0, 1)), undone_at TEXT, undo_request_id TEXT UNIQUE);
        CREATE UNIQUE INDEX labels_one_active_per_pair ON labels (pair_id) WHERE undone = 0;
        CREATE INDEX labels_annotator ON labels (annotator, undone);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO labels (request_id, pair_id, verdict, label, annotator, created_at)
            VALUES ('r0', 'p0', 'a', 1, NULL, '2024-01-01T00:00:00+00:00'),
                   ('r1', 'p1', 'b', 0, 'alice', '2024-01-01T00:00:01+00:00');
    """)
    conn.execute(f"PRAGMA user_version = {int(version)}")
    conn.close()


@pytest.mark.parametrize("version", [1, 0])  # 0: tables without a version number
def test_schema_upgrade_backs_up_the_database_first(tmp_path, version):
    """Issue 10 case 11: a backup is made (SQLite's online backup) before any schema migration."""
    db = tmp_path / "labels.sqlite"
    _old_schema_store(db, version)
    store = LabelStore(db)
    backups = sorted((tmp_path / "backups").glob("*.sqlite"))
    assert len(backups) == 1 and f"before-schema-{SCHEMA_VERSION}" in backups[0].name
    old = sqlite3.connect(backups[0])
    assert old.execute("PRAGMA user_version").fetchone()[0] == version
    assert old.execute("SELECT pair_id, annotator FROM labels ORDER BY event_id").fetchall() == [
        ("p0", None), ("p1", "alice")]
    assert old.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    old.close()
    assert sqlite3.connect(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.label_map() == {"p0": 1, "p1": 0}  # the old labels, anonymous one included, are kept
    with pytest.raises(ValueError, match="annotator"):
        store.record("p2", "a", None, False, 0, "r2")
    LabelStore(db).close()
    assert len(list((tmp_path / "backups").glob("*.sqlite"))) == 1  # no migration, no second backup


def test_backup_refuses_to_overwrite(tmp_path):
    store = LabelStore(tmp_path / "s.db")
    store.record("p0", "a", "ann", False, 0, "r0")
    out = store.backup(tmp_path / "copy.sqlite")
    with pytest.raises(FileExistsError):
        store.backup(out)
    assert sqlite3.connect(out).execute("SELECT pair_id FROM labels").fetchall() == [("p0",)]
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_backup_is_consistent_while_another_process_writes(tmp_path):
    """Issue 10 case 11: backups taken while a second process commits labels are each a complete, clean prefix."""
    db = tmp_path / "s.db"
    LabelStore(db).close()
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(db), "w", "1000000"], stdout=subprocess.PIPE,
                            text=True)
    acked: list[str] = []
    reader = threading.Thread(target=lambda: acked.extend(line.strip() for line in proc.stdout), daemon=True)
    reader.start()
    store = LabelStore(db)
    copies = []
    try:
        for i in range(5):
            deadline = time.monotonic() + 60
            while len(acked) < 50 * (i + 1) and time.monotonic() < deadline:
                time.sleep(0.01)
            before = len(acked)
            copies.append((before, store.backup(tmp_path / f"backup-{i}.sqlite")))
        assert proc.poll() is None  # every backup was taken while the writer was still writing
    finally:
        proc.kill()
        proc.wait(timeout=30)
    reader.join(timeout=30)
    counts = []
    for before, path in copies:
        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
        rows = conn.execute("SELECT event_id, pair_id FROM labels ORDER BY event_id").fetchall()
        conn.close()
        n = len(rows)
        assert n >= before  # every label acknowledged before the backup began is in it
        assert rows == [(i + 1, f"w-{i}") for i in range(n)]  # a prefix of the commits, nothing torn or missing
        counts.append(n)
    assert counts == sorted(counts) and counts[-1] > counts[0]  # the writer committed between backups
    assert set(acked) <= set(LabelStore(db).label_map())


# ---------------------------------------------------------------------------------------------- issue 11 item 5
def test_revise_supersedes_with_a_new_event_and_keeps_the_audit_trail(tmp_path):
    """Any label (not only the last) can be changed: a new event supersedes it; nothing is edited or deleted."""
    store = LabelStore(tmp_path / "s.db")
    first = store.record("p0", "a", "ann", True, 3, "r0", batch_id="b3", note="looked close").event_id
    store.record("p1", "b", "ann", False, 3, "r1")
    res = store.revise(first, "ann", verdict="b", request_id="fix-1")
    assert res.status == "recorded" and res.event_id > first
    assert store.revise(first, "ann", verdict="b", request_id="fix-1").status == "duplicate"  # replayed click
    assert store.label_map() == {"p0": 0, "p1": 0} and len(store) == 2  # one active label per pair
    ev = store.events().set_index("event_id")
    assert ev.loc[first, "verdict"] == "a" and bool(ev.loc[first, "undone"])  # the old verdict is kept
    new = ev.loc[res.event_id]
    assert (new["verdict"], new["supersedes"], new["note"], new["round"], new["batch_id"], new["shown_swapped"]) == (
        "b", first, "looked close", 3, "b3", True)
    # a note-only change keeps the verdict; "" clears the note
    noted = store.revise(res.event_id, "ann", note="  A misses the question  ", request_id="note-1").event_id
    assert store.events().set_index("event_id").loc[noted, ["verdict", "note"]].tolist() == [
        "b", "A misses the question"]
    cleared = store.revise(noted, "ann", note="", request_id="note-2").event_id
    assert pd.isna(store.events().set_index("event_id").loc[cleared, "note"])
    with pytest.raises(ValueError, match="already changed or withdrawn"):
        store.revise(first, "ann", verdict="a", request_id="fix-2")  # only the newest version can change
    with pytest.raises(ValueError, match="not 'bob'"):
        store.revise(cleared, "bob", verdict="a", request_id="fix-3")  # never another annotator's label
    with pytest.raises(KeyError):
        store.revise(999, "ann", verdict="a", request_id="fix-4")
    with pytest.raises(ValueError, match="verdict"):
        store.revise(cleared, "ann", verdict="maybe", request_id="fix-5")
    assert store.label_map() == {"p0": 0, "p1": 0}  # failed changes wrote nothing
    hist = store.history("ann", include_inactive=True)
    assert hist["event_id"].tolist() == sorted(hist["event_id"], reverse=True)  # newest first
    assert hist.set_index("event_id")["state"].to_dict() == {
        first: "changed", 2: "active", res.event_id: "changed", noted: "changed", cleared: "active"}
    assert store.history("ann")["pair_id"].tolist() == ["p0", "p1"]


def test_withdraw_any_label_marks_it_undone_and_the_pair_is_open_again(tmp_path):
    store = LabelStore(tmp_path / "s.db")
    e0 = store.record("p0", "a", "ann", False, 0, "r0").event_id
    store.record("p1", "b", "ann", False, 0, "r1")
    store.record("p2", "tie", "bob", False, 0, "r2")
    out = store.withdraw(e0, "ann", request_id="w0")  # not the last label: the first one
    assert out["pair_id"] == "p0" and out["undone"] == 1
    assert store.withdraw(e0, "ann", request_id="w0")["event_id"] == e0  # replay: nothing more
    with pytest.raises(ValueError, match="already changed or withdrawn"):
        store.withdraw(e0, "ann", request_id="w1")
    with pytest.raises(ValueError, match="not 'ann'"):
        store.withdraw(3, "ann", request_id="w2")
    assert store.decided_ids() == {"p1", "p2"} and len(store.events()) == 3  # nothing deleted
    assert store.record("p0", "b", "ann", False, 0, "r0-again").recorded  # offered and labelled again
    assert store.history("ann", include_inactive=True).set_index("event_id").loc[e0, "state"] == "withdrawn"


def test_note_is_checked_and_kept(tmp_path):
    store = LabelStore(tmp_path / "s.db")
    with pytest.raises(ValueError, match="at most 2000"):
        store.record("p0", "a", "ann", False, 0, "r0", note="x" * 2001)
    assert len(store.events()) == 0
    store.record("p0", "a", "ann", False, 0, "r1", note="   ")
    assert pd.isna(store.events()["note"].iloc[0])  # a blank note is no note


def test_a_schema_2_store_gains_notes_and_keeps_its_labels(tmp_path):
    db = tmp_path / "labels.sqlite"
    _old_schema_store(db, 2)
    store = LabelStore(db)
    assert store.label_map() == {"p0": 1, "p1": 0}
    e = store.record("p2", "a", "carol", False, 0, "r2", note="fine").event_id
    assert store.events().set_index("event_id").loc[e, "note"] == "fine"
    assert store.revise(e, "carol", verdict="b", request_id="x").recorded


# ---------------------------------------------------------------------------------------------- issue 11 item 9
def _hh_pool():
    from balpm.data import load_pool

    return load_pool("sample:hh-rlhf:harmless-base")


def test_every_export_loads_with_datasets_and_has_the_reward_trainer_columns(tmp_path):
    """TRL JSONL, the Parquet training table and a save_to_disk folder: each loads with `datasets` as it is."""
    datasets = pytest.importorskip("datasets")
    pool = _hh_pool()
    store = LabelStore(tmp_path / "s.db")
    ids = pool.pairs["id"].tolist()[:5]
    for i, pid in enumerate(ids):
        store.record(pid, "ab"[i % 2], "ann", False, 1, f"r{i}", note="sure" if i == 0 else None)
    store.record(pool.pairs["id"].iloc[5], "tie", "ann", False, 1, "r-tie")  # ties are not training rows
    assert store.export_trl(pool, tmp_path / "l.jsonl") == 5
    assert store.export_training_parquet(pool, tmp_path / "train.parquet") == 5
    assert store.export_dataset(pool, tmp_path / "ds") == 5
    with pytest.raises(FileExistsError):
        store.export_dataset(pool, tmp_path / "ds")
    loaded = {
        "jsonl": datasets.load_dataset("json", data_files=str(tmp_path / "l.jsonl"), split="train",
                                       cache_dir=str(tmp_path / "hf")),
        "parquet": datasets.load_dataset("parquet", data_files=str(tmp_path / "train.parquet"), split="train",
                                         cache_dir=str(tmp_path / "hf")),
        "save_to_disk": datasets.load_from_disk(str(tmp_path / "ds")),
    }
    by_id = pool.pairs.set_index("id")
    for kind, ds in loaded.items():
        assert {"prompt", "chosen", "rejected", "id", "annotator", "labelled_at"} <= set(ds.column_names), kind
        assert ds.num_rows == 5 and ds["id"] == ids, kind
        for i, row in enumerate(ds):
            pair = by_id.loc[row["id"]]
            a_won = i % 2 == 0
            assert row["prompt"] == pair["prompt"]  # exactly the pool's texts
            assert (row["chosen"], row["rejected"]) == ((pair["completion_a"], pair["completion_b"]) if a_won
                                                        else (pair["completion_b"], pair["completion_a"])), kind
            assert row["annotator"] == "ann" and row["labelled_at"].startswith("20")
    events = pd.read_parquet(tmp_path / "train.parquet")
    assert "verdict" not in events.columns  # the training table, not the event log
    assert store.export_parquet(tmp_path / "events.parquet") == 6  # the event log stays its own export
