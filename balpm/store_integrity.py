"""The label database file itself: its schema, its damage checks and its backups (used by :mod:`balpm.store`).

Why apart from :class:`balpm.store.LabelStore`: these act on the file before, beside or instead of a store's
operations (a check before any write, a backup before an upgrade, a restore hint when the file is damaged), and
the schema's constraints are what keep labels safe even from a writer that bypasses the store.

Table ``labels`` (one row per label *event*):

==============  ==========================================================================================
column          meaning
==============  ==========================================================================================
event_id        INTEGER PRIMARY KEY, increasing in commit order
request_id      TEXT UNIQUE: the token the UI minted for one displayed pair (idempotency key)
pair_id         TEXT: ``pool.pairs.id``
verdict         'a' | 'b' | 'tie' | 'skip', always about the *pool's* A and B (the UI undoes any swap)
label           1 = A preferred, 0 = B preferred, NULL for 'tie' and 'skip'
annotator       TEXT: who gave the label, never empty (NULL only in events written before schema 2)
created_at      UTC ISO-8601 time of the commit
shown_swapped   1 if the pool's B was shown on the left (A on the right), else 0: for position-bias checks
round           INTEGER active-learning round the pair was suggested in (may be NULL)
batch_id        TEXT id of the suggested batch (may be NULL)
undone          0 / 1; ``undone_at`` and ``undo_request_id`` say when and by which Undo click
note            TEXT: the annotator's optional free-text note on this label (schema 3)
supersedes      INTEGER: the event this one corrects (:meth:`LabelStore.revise`), else NULL (schema 3)
==============  ==========================================================================================

Damage is found, never papered over: opening a store runs ``PRAGMA integrity_check`` (``quick_check`` does not
compare an index with its table, and a damaged one-active-label index is exactly what let a second label for one
pair in) and compares the file with ``<name>.count`` beside it, which records the highest event id ever committed
(nothing is deleted, so a sound file never holds fewer). A damaged, truncated (0-byte) or missing file with that
evidence raises :class:`StoreDamagedError` saying how to restore, and nothing is written into it.
:meth:`LabelStore.backup` copies the database with SQLite's online backup API (a consistent snapshot while others
write) into ``backups/`` beside it; one is made automatically before any schema upgrade.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

__all__ = [
    "SCHEMA_VERSION", "LabelStoreError", "StoreDamagedError", "backups_of", "evidence_path", "is_corruption",
    "read_evidence", "note_events", "verify_database", "backup_database", "connect", "create_or_upgrade",
]

log = logging.getLogger("balpm.store")  # the store's own messages, under the name they always had

SCHEMA_VERSION = 3
"""1: the tables; 2: the ``labels_need_annotator`` trigger (no anonymous label); 3: ``note`` and ``supersedes``."""


_SCHEMA = [
    """
CREATE TABLE IF NOT EXISTS labels (
    event_id        INTEGER PRIMARY KEY AUTOINCREMENT,
    request_id      TEXT    NOT NULL UNIQUE,
    pair_id         TEXT    NOT NULL,
    verdict         TEXT    NOT NULL CHECK (verdict IN ('a', 'b', 'tie', 'skip')),
    label           INTEGER CHECK (label IN (0, 1)),
    annotator       TEXT,
    created_at      TEXT    NOT NULL,
    shown_swapped   INTEGER NOT NULL DEFAULT 0 CHECK (shown_swapped IN (0, 1)),
    round           INTEGER,
    batch_id        TEXT,
    undone          INTEGER NOT NULL DEFAULT 0 CHECK (undone IN (0, 1)),
    undone_at       TEXT,
    undo_request_id TEXT UNIQUE
)""",
    "CREATE UNIQUE INDEX IF NOT EXISTS labels_one_active_per_pair ON labels (pair_id) WHERE undone = 0",
    "CREATE INDEX IF NOT EXISTS labels_annotator ON labels (annotator, undone)",
    """
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
)""",
    # schema 2
    """
CREATE TRIGGER IF NOT EXISTS labels_need_annotator BEFORE INSERT ON labels
WHEN NEW.annotator IS NULL OR trim(NEW.annotator) = ''
BEGIN
    SELECT RAISE(ABORT, 'labels.annotator is required: no label without an annotator');
END""",
]
_ADDED_COLUMNS = [("note", "TEXT"), ("supersedes", "INTEGER")]
"""Schema 3: appended with ALTER TABLE (old and new files then have one column order)."""


class LabelStoreError(RuntimeError):
    """A label database this balpm cannot use as it is (damaged, or written by a newer balpm)."""


class StoreDamagedError(LabelStoreError):
    """The label database is damaged or has lost labels; the message says how to restore it from a backup.

    Attributes
    ----------
    path : Path
        The damaged database file (left exactly as it was found).
    backups : list of Path
        Backups found in its ``backups/`` folder, newest first.
    """

    def __init__(self, path: Path, problem: str, *, evidence: int | None = None) -> None:
        self.path = path
        self.backups = backups_of(path)
        newest = (f"the newest backup is {self.backups[0]}" if self.backups
                  else f"no backup was found in {path.parent / 'backups'}")
        steps = (f"To restore: stop every app or process using it; move {path} aside (keep it: "
                 f"`sqlite3 {path.name} .recover` may salvage labels from it); copy a backup to {path} ({newest}); "
                 f"then delete {evidence_path(path)}")
        if evidence:
            steps += f" (it records that {evidence} label events were written; any given after the backup are lost)"
        super().__init__(f"{path}: the label database {problem}. Nothing was written to it. {steps}. Backups are "
                         "made by `balpm backup SESSION` and automatically before a schema upgrade.")


def backups_of(path: str | os.PathLike[str]) -> list[Path]:
    """Backups of the database ``path`` in the ``backups/`` folder beside it, newest first."""
    path = Path(path)
    folder = path.parent / "backups"
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob(f"{path.stem}-*.sqlite") if p.is_file()]
    return sorted(found, key=lambda p: (p.stat().st_mtime_ns, p.name), reverse=True)


def evidence_path(path: Path) -> Path:
    """``labels.sqlite`` → ``labels.count``: the evidence file beside a database."""
    return path.with_suffix(".count")


def is_corruption(e: sqlite3.DatabaseError) -> bool:
    """SQLITE_CORRUPT / SQLITE_NOTADB (a damaged file), as opposed to a lock, a full disk or a permission."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (11, 26)
    return not isinstance(e, sqlite3.OperationalError)


@contextmanager
def connect(path: Path, timeout: float) -> Iterator[sqlite3.Connection]:
    """A connection for one operation (autocommit mode, ``synchronous=FULL``), closed on the way out."""
    conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous=FULL")  # per connection: a commit is on disk when it returns
        conn.execute("PRAGMA foreign_keys=ON")
        yield conn
    finally:
        conn.close()


def create_or_upgrade(conn: sqlite3.Connection) -> None:
    """Create the tables, index and trigger, or bring an older file up to :data:`SCHEMA_VERSION`.

    Runs in the caller's write transaction; the caller backs up a file that holds labels first.
    """
    for stmt in _SCHEMA:
        conn.execute(stmt)
    have = {r[1] for r in conn.execute("PRAGMA table_info(labels)").fetchall()}
    for col, kind in _ADDED_COLUMNS:
        if col not in have:
            conn.execute(f"ALTER TABLE labels ADD COLUMN {col} {kind}")
    if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def read_evidence(database: Path) -> int | None:
    """The event count ``<name>.count`` beside ``database`` vouches for; None when missing or unreadable."""
    try:
        return int(json.loads(evidence_path(database).read_text(encoding="utf-8"))["events"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def note_events(database: Path, last_event: int) -> None:
    """Record that events up to ``last_event`` were committed (after the commit: a lower bound, never more).

    Best effort: the label is already durable, so failing to write the evidence is logged, not raised.
    """
    count = evidence_path(database)
    tmp = count.with_name(f".{count.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        tmp.write_text(json.dumps({"events": int(last_event), "database": database.name}), encoding="utf-8")
        os.replace(tmp, count)
    except OSError as e:
        log.warning("%s: could not record the label count beside the database: %s", count, e)
        tmp.unlink(missing_ok=True)


def verify_database(path: Path, timeout: float) -> tuple[int, int, bool]:
    """Check the database file before any write; returns (highest event id, schema version, has a labels table).

    Raises
    ------
    StoreDamagedError
        ``PRAGMA integrity_check`` fails, the file is not a database, or it holds fewer events than
        ``<name>.count`` says were committed (a truncated, emptied or deleted file).
    """
    evidence = read_evidence(path)
    last_event, version, has_labels = 0, 0, False
    if path.exists():
        try:
            conn = sqlite3.connect(path, timeout=timeout, isolation_level=None)
            try:
                problems = [r[0] for r in conn.execute("PRAGMA integrity_check(5)").fetchall()]
                if problems != ["ok"]:
                    raise StoreDamagedError(path, "is damaged (integrity check: " + "; ".join(problems)
                                            + ")", evidence=evidence)
                version = int(conn.execute("PRAGMA user_version").fetchone()[0])
                has_labels = conn.execute(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'labels'").fetchone() is not None
                if has_labels:
                    last_event = int(conn.execute("SELECT COALESCE(MAX(event_id), 0) FROM labels").fetchone()[0])
            finally:
                conn.close()
        except sqlite3.DatabaseError as e:
            if not is_corruption(e):
                raise
            raise StoreDamagedError(path, f"is damaged ({e})", evidence=evidence) from e
    if evidence is not None and last_event < evidence:
        state = ("is missing" if not path.exists()
                 else f"holds {last_event} label events" if last_event else "is empty")
        raise StoreDamagedError(
            path, f"{state} but {evidence_path(path).name} records that {evidence} label events were "
            "written: labels have been lost", evidence=evidence)
    return last_event, version, has_labels


def backup_database(path: Path, dest: str | os.PathLike[str] | None = None, *, reason: str = "manual",
                    timeout: float = 30.0) -> Path:
    """Copy the database with SQLite's online backup API; returns the copy's path.

    Why the backup API and not a file copy: it copies one consistent snapshot even while other tabs or
    processes commit labels (a file copy can tear a page or miss the WAL). The copy is checked
    (``integrity_check``), made a single self-contained file (rollback journal, no WAL), written under a
    temporary name and renamed into place, so a backup file is always complete.

    Parameters
    ----------
    dest : str or Path, optional
        Where to write; default ``backups/<stem>-<UTC time>-<reason>.sqlite`` beside the database.
        Never overwritten.
    reason : str
        Part of the default file name (``manual``, ``before-schema-2``).
    timeout : float
        Seconds to wait for a writer's lock.

    Raises
    ------
    FileExistsError
        ``dest`` exists.
    """
    if dest is None:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        dest = path.parent / "backups" / f"{path.stem}-{stamp}-{reason}.sqlite"
    dest = Path(dest)
    if dest.exists():
        raise FileExistsError(f"{dest} exists; a backup never overwrites a file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with connect(path, timeout) as src:
            out = sqlite3.connect(tmp, isolation_level=None)
            try:
                src.backup(out)  # all pages in one step: one read transaction, one snapshot
                out.execute("PRAGMA journal_mode=DELETE")
                problems = [r[0] for r in out.execute("PRAGMA integrity_check(5)").fetchall()]
            finally:
                out.close()
        if problems != ["ok"]:
            raise LabelStoreError(f"{dest}: the backup of {path} failed its check: {'; '.join(problems)}")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        if dest.exists():  # made by someone else meanwhile
            raise FileExistsError(f"{dest} exists; a backup never overwrites a file")
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("backed up %s to %s", path, dest)
    return dest
