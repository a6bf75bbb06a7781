"""The SQLite label store of a labelling session.

Why SQLite and why this shape: the labels a person gives are the one thing in a session that cannot be recomputed,
so every label is its own committed transaction (WAL journal, ``synchronous=FULL``) before :meth:`LabelStore.record`
returns; nothing is ever deleted (Undo marks an event ``undone``); and writes are idempotent, so a double click,
a page rerun or a second browser tab replaying the same click cannot create a second label.

Table ``labels`` holds one row per label *event* (:mod:`balpm.store_integrity` says what each column means).

A correction never edits a label: :meth:`LabelStore.revise` marks the old event undone and commits a new one that
names it in ``supersedes``, in one transaction, and :meth:`LabelStore.withdraw` marks an event undone; so the audit
trail keeps every verdict ever given and the one-active-label-per-pair index below still holds.

A trigger refuses an event without an annotator (schema 2), so even a writer that bypasses this class cannot
record an anonymous label, and Undo (:meth:`LabelStore.undo_last`) only ever undoes its caller's own events.

A partial UNIQUE index keeps at most one *active* (not undone) event per pair: the first writer wins and a later
one (another tab) is told ``"already_labelled"``. A skip is an event too, so a skipped pair is not offered again
until its skip is undone.

Table ``meta``: key → JSON value, for session information (pool, policy, seed, the one-person session's
default annotator, ...).

Damage is found, never papered over: opening a store checks the file and refuses a damaged one or one that has lost
labels (:class:`StoreDamagedError`, saying how to restore); :meth:`LabelStore.backup` copies it. Both live in
:mod:`balpm.store_integrity`; the exports in :mod:`balpm.exports`.
"""

from __future__ import annotations

import json
import logging
import os
import unicodedata
import sqlite3
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from balpm import exports
from balpm.store_integrity import (SCHEMA_VERSION, LabelStoreError, StoreDamagedError, backup_database,
                                   backups_of, connect, create_or_upgrade, evidence_path, note_events,
                                   read_evidence, verify_database)

if TYPE_CHECKING:
    from balpm.data import PreferencePool

__all__ = [
    "LabelStore", "LabelStoreError", "StoreDamagedError", "RecordResult", "VERDICTS", "verdict_to_label",
    "validate_annotator", "validate_note", "backups_of",
]

log = logging.getLogger(__name__)

VERDICTS = ("a", "b", "tie", "skip")
_DEFAULT_ANNOTATOR_KEY = "default_annotator"
_MAX_ANNOTATOR = 100

_MAX_NOTE = 2000

_COLUMNS = [
    "event_id", "request_id", "pair_id", "verdict", "label", "annotator", "created_at", "shown_swapped",
    "round", "batch_id", "undone", "undone_at", "undo_request_id", "note", "supersedes",
]

Status = Literal["recorded", "duplicate", "already_labelled"]


def verdict_to_label(verdict: str) -> int | None:
    """Map a verdict to the model's label: 'a' → 1, 'b' → 0, 'tie'/'skip' → None (not a label for the model)."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict must be one of {VERDICTS}, got {verdict!r}")
    return {"a": 1, "b": 0}.get(verdict)


def validate_annotator(name: str | None) -> str:
    """The annotator name a label is stored under: ``name`` without surrounding blanks.

    Why: a label must always say who gave it (Undo and audits go by this name), so an empty or blank name is
    refused rather than stored as NULL, and a name that could not be shown on one line is refused too.

    Raises
    ------
    ValueError
        ``name`` is None, blank, longer than 100 characters or holds a control character (newline, tab, ...).
    """
    if name is None or not isinstance(name, str) or not name.strip():
        raise ValueError(f"an annotator name is required (got {name!r}): no label without an annotator")
    name = name.strip()
    if len(name) > _MAX_ANNOTATOR:
        raise ValueError(f"annotator name is {len(name)} characters long; at most {_MAX_ANNOTATOR}")
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        raise ValueError(f"annotator name {name!r} holds a control character (newline, tab, ...)")
    return name


def validate_note(note: str | None) -> str | None:
    """A label's free-text note as stored: None for no note (or a blank one), else the text without outer blanks.

    Raises
    ------
    ValueError
        Longer than 2,000 characters (a note, not a document) or not a string.
    """
    if note is None:
        return None
    if not isinstance(note, str):
        raise ValueError(f"a note is text, got {type(note).__name__}")
    note = note.strip()
    if len(note) > _MAX_NOTE:
        raise ValueError(f"note is {len(note)} characters long; at most {_MAX_NOTE}")
    return note or None


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _utc_time(when: str) -> str:
    """An ISO-8601 time with a zone (``Z`` allowed) as stored: UTC, microseconds; ValueError without a zone."""
    t = datetime.fromisoformat(str(when).replace("Z", "+00:00"))
    if t.tzinfo is None:
        raise ValueError(f"time {when!r} has no time zone: a label's time must be unambiguous")
    return t.astimezone(timezone.utc).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class RecordResult:
    """What :meth:`LabelStore.record` did.

    Attributes
    ----------
    status : {"recorded", "duplicate", "already_labelled"}
        ``recorded``: a new event was committed. ``duplicate``: this request id was already recorded (double click,
        replay), nothing written. ``already_labelled``: the pair already has an active event from another request
        (second tab), nothing written.
    event_id : int
        The new event, or the existing one that made this call a no-op.
    """

    status: Status
    event_id: int

    @property
    def recorded(self) -> bool:
        return self.status == "recorded"


class LabelStore:
    """Durable, idempotent store of label events for one labelling session (one SQLite file).

    Every operation opens its own short-lived connection (``synchronous=FULL``), runs one transaction and closes
    it before returning, so the object holds no connection between calls: it is safe to share between threads,
    including a new thread per call (Streamlit runs each rerun on a fresh one), and between processes (SQLite
    file locks; writers take ``BEGIN IMMEDIATE`` and wait up to ``timeout`` seconds for each other).

    One more connection, idle and never used for a query, is held from construction to :meth:`close`: while it is
    open, closing an operation's connection is not the last close of the file, so SQLite does not checkpoint and
    delete the WAL every time (a label commits in about 5 ms instead of about 12 ms on the shared dev machine).
    The object therefore holds one connection however many threads use it.

    Parameters
    ----------
    path : str or Path
        The database file; created with its folder if missing.
    timeout : float
        Seconds a writer waits for another writer's lock before failing.
    """

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.timeout = float(timeout)
        # before any write: a damaged file is left as found
        last_event, version, has_labels = verify_database(self.path, self.timeout)
        if version > SCHEMA_VERSION:
            raise LabelStoreError(f"{self.path}: label store schema {version} is newer than this balpm "
                                  f"({SCHEMA_VERSION}); upgrade balpm to open it")
        with connect(self.path, self.timeout) as conn:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent: a property of the file from now on
        keeper = sqlite3.connect(self.path, timeout=self.timeout, check_same_thread=False)
        keeper.execute("SELECT COUNT(*) FROM sqlite_master").fetchall()  # opens the WAL and its index
        # closed by close() or when this object is freed (a sqlite3 connection alone waits for the cycle collector)
        self._release_keeper = weakref.finalize(self, keeper.close)
        if has_labels and version < SCHEMA_VERSION:
            self.backup(reason=f"before-schema-{SCHEMA_VERSION}")
        with self._write() as conn:
            create_or_upgrade(conn)
        if last_event > (read_evidence(self.path) or 0):
            note_events(self.path, last_event)  # a store from before the evidence was kept: keep it from now on

    # ------------------------------------------------------------------ damage
    @property
    def count_path(self) -> Path:
        """``<name>.count`` beside the database: the highest event id committed (evidence of labels given)."""
        return evidence_path(self.path)

    def backup(self, dest: str | os.PathLike[str] | None = None, *, reason: str = "manual") -> Path:
        """A consistent, checked copy of the database (SQLite's online backup API); returns the copy's path.

        See :func:`balpm.store_integrity.backup_database` for why and how (default place ``backups/`` beside the
        database, never overwritten: ``FileExistsError``).
        """
        return backup_database(self.path, dest, reason=reason, timeout=self.timeout)

    # ------------------------------------------------------------------ connections
    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction that holds the write lock from its first statement (no lost-update races).

        Committed (durable) before the block's caller returns; rolled back on any exception.
        """
        with connect(self.path, self.timeout) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """All rows of one query, on a connection of its own."""
        with connect(self.path, self.timeout) as conn:
            return conn.execute(sql, params).fetchall()

    def close(self) -> None:
        """Close the idle connection (operations close their own); the store stays usable, only slower."""
        self._release_keeper()

    def __enter__(self) -> LabelStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LabelStore({str(self.path)!r})"

    # ------------------------------------------------------------------ writes
    def record(
        self,
        pair_id: str,
        verdict: str,
        annotator: str,
        shown_swapped: bool = False,
        round: int | None = None,  # noqa: A002 - the contract's name
        request_id: str | None = None,
        *,
        batch_id: str | None = None,
        note: str | None = None,
        created_at: str | None = None,
    ) -> RecordResult:
        """Commit one label event, at most once per ``request_id`` and at most one active event per pair.

        Parameters
        ----------
        pair_id : str
            The pool pair's id.
        verdict : {"a", "b", "tie", "skip"}
            About the pool's A and B, not the screen's left and right.
        annotator : str
            Who gave the label (required, see :func:`validate_annotator`; simulation uses ``"oracle"``).
        shown_swapped : bool
            True if the pool's B was shown on the left.
        round : int, optional
            Active-learning round of the suggestion.
        request_id : str
            Idempotency token minted by the UI for one displayed pair; required so a replay is recognised.
        batch_id : str, optional
        note : str, optional
            The annotator's free-text note on this label (:func:`validate_note`).
        created_at : str, optional
            When the label was given, ISO-8601 with a time zone (stored in UTC); default now. Set only for labels
            given elsewhere and imported (:mod:`balpm.labelstudio`), so their time is the annotator's, not the
            import's.

        Returns
        -------
        RecordResult
            ``status`` says whether the event was written; the event is durable when this returns.

        Raises
        ------
        ValueError
            No ``request_id``, an unknown verdict or no annotator; nothing is written.
        """
        annotator = validate_annotator(annotator)
        note = validate_note(note)
        if not request_id:
            raise ValueError("record() needs a request_id (one token per displayed pair) to make writes idempotent")
        label = verdict_to_label(verdict)
        when = _utc_now() if created_at is None else _utc_time(created_at)
        with self._write() as conn:
            row = conn.execute("SELECT event_id FROM labels WHERE request_id = ?", (request_id,)).fetchone()
            if row is not None:
                return RecordResult("duplicate", int(row[0]))
            row = conn.execute(
                "SELECT event_id FROM labels WHERE pair_id = ? AND undone = 0", (str(pair_id),)
            ).fetchone()
            if row is not None:
                return RecordResult("already_labelled", int(row[0]))
            cur = conn.execute(
                "INSERT INTO labels (request_id, pair_id, verdict, label, annotator, created_at, shown_swapped,"
                " round, batch_id, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(request_id), str(pair_id), verdict, label, annotator, when, int(bool(shown_swapped)),
                    None if round is None else int(round), batch_id, note,
                ),
            )
            event_id = int(cur.lastrowid)
        note_events(self.path, event_id)  # after the commit: the evidence never claims a label the file lacks
        return RecordResult("recorded", event_id)

    def undo_last(self, annotator: str, *, request_id: str | None = None) -> dict[str, Any] | None:
        """Mark ``annotator``'s most recent active event undone; never deletes, never touches another's event.

        Parameters
        ----------
        annotator : str
            Whose label to undo (required: two people sharing a session never undo each other's labels).
        request_id : str, optional
            Idempotency token of the Undo click: a replay of the same click undoes nothing more.

        Returns
        -------
        dict or None
            The event that is now undone (for a replayed click: the one that click undid), or None if this
            annotator has nothing to undo.

        Raises
        ------
        ValueError
            No annotator, or ``request_id`` already undid another annotator's label.
        """
        annotator = validate_annotator(annotator)
        with self._write() as conn:
            if request_id is not None:
                row = conn.execute("SELECT * FROM labels WHERE undo_request_id = ?", (request_id,)).fetchone()
                if row is not None:
                    event = dict(zip(_COLUMNS, row))
                    if event["annotator"] != annotator:
                        raise ValueError(f"undo request {request_id!r} already undid a label of "
                                         f"{event['annotator']!r}, not of {annotator!r}")
                    return event
            row = conn.execute(
                "SELECT event_id FROM labels WHERE undone = 0 AND annotator = ? ORDER BY event_id DESC LIMIT 1",
                (annotator,),
            ).fetchone()
            if row is None:
                return None
            conn.execute(
                "UPDATE labels SET undone = 1, undone_at = ?, undo_request_id = ? WHERE event_id = ?",
                (_utc_now(), request_id, row[0]),
            )
            out = conn.execute("SELECT * FROM labels WHERE event_id = ?", (row[0],)).fetchone()
            return dict(zip(_COLUMNS, out))

    def _own_event(self, conn: sqlite3.Connection, event_id: int, annotator: str) -> dict[str, Any]:
        """Event ``event_id`` as a dict, checked to be ``annotator``'s (a person corrects only their own labels)."""
        row = conn.execute("SELECT * FROM labels WHERE event_id = ?", (int(event_id),)).fetchone()
        if row is None:
            raise KeyError(f"no label event {event_id} in {self.path}")
        event = dict(zip(_COLUMNS, row))
        if event["annotator"] != annotator:
            raise ValueError(f"label event {event_id} is {event['annotator']!r}'s, not {annotator!r}'s: "
                             "a label is changed or withdrawn only by whoever gave it")
        return event

    def revise(self, event_id: int, annotator: str, *, request_id: str, verdict: str | None = None,
               note: str | None = None) -> RecordResult:
        """Change an active label: mark event ``event_id`` undone and commit a new event that supersedes it.

        Why a new event: nothing is ever edited or deleted, so the audit trail shows the first verdict, the
        correction and when each was given; both happen in one transaction, so the pair never has two active
        labels nor none in between.

        Parameters
        ----------
        event_id : int
            The active event to change (the caller's own).
        annotator : str
            Who changes it: must be the event's annotator.
        request_id : str
            Idempotency token of the click: a replay returns ``"duplicate"`` and writes nothing.
        verdict : {"a", "b", "tie", "skip"}, optional
            The new verdict; default: keep the old one (a note-only change).
        note : str, optional
            The new note; default keeps the old note, ``""`` clears it.

        Returns
        -------
        RecordResult
            ``recorded`` with the new event's id, or ``duplicate`` for a replayed request.

        Raises
        ------
        KeyError
            No such event.
        ValueError
            Another annotator's event, an event no longer active (changed or withdrawn since), a bad verdict
            or note; nothing is written.
        """
        annotator = validate_annotator(annotator)
        if not request_id:
            raise ValueError("revise() needs a request_id (one token per click) to make writes idempotent")
        new_note = None if note is None else validate_note(note)
        with self._write() as conn:
            row = conn.execute("SELECT event_id FROM labels WHERE request_id = ?", (request_id,)).fetchone()
            if row is not None:
                return RecordResult("duplicate", int(row[0]))
            old = self._own_event(conn, event_id, annotator)
            if old["undone"]:
                raise ValueError(f"label event {event_id} (pair {old['pair_id']!r}) was already changed or "
                                 "withdrawn: change its newest version")
            verdict = old["verdict"] if verdict is None else verdict
            label = verdict_to_label(verdict)
            now = _utc_now()
            conn.execute("UPDATE labels SET undone = 1, undone_at = ?, undo_request_id = ? WHERE event_id = ?",
                         (now, f"revise:{request_id}", int(event_id)))
            cur = conn.execute(
                "INSERT INTO labels (request_id, pair_id, verdict, label, annotator, created_at, shown_swapped,"
                " round, batch_id, note, supersedes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (str(request_id), old["pair_id"], verdict, label, annotator, now, int(old["shown_swapped"]),
                 old["round"], old["batch_id"], old["note"] if note is None else new_note, int(event_id)),
            )
            new_id = int(cur.lastrowid)
        note_events(self.path, new_id)
        return RecordResult("recorded", new_id)

    def withdraw(self, event_id: int, annotator: str, *, request_id: str) -> dict[str, Any]:
        """Withdraw an active label of ``annotator`` (any one, not only the last): it is marked undone, not deleted.

        The pair is then undecided again (offered for labelling). A replayed ``request_id`` withdraws nothing
        more. Returns the withdrawn event.

        Raises
        ------
        KeyError
            No such event.
        ValueError
            Another annotator's event, or one already changed or withdrawn by another request.
        """
        annotator = validate_annotator(annotator)
        if not request_id:
            raise ValueError("withdraw() needs a request_id (one token per click) to make writes idempotent")
        with self._write() as conn:
            event = self._own_event(conn, event_id, annotator)
            if event["undone"]:
                if event["undo_request_id"] == request_id:
                    return event  # a replay of this same click
                raise ValueError(f"label event {event_id} (pair {event['pair_id']!r}) was already changed or "
                                 "withdrawn")
            conn.execute("UPDATE labels SET undone = 1, undone_at = ?, undo_request_id = ? WHERE event_id = ?",
                         (_utc_now(), request_id, int(event_id)))
            return dict(zip(_COLUMNS, conn.execute("SELECT * FROM labels WHERE event_id = ?",
                                                   (int(event_id),)).fetchone()))

    # ------------------------------------------------------------------ reads
    def history(self, annotator: str, *, include_inactive: bool = False) -> pd.DataFrame:
        """``annotator``'s label events, newest first, with a ``state`` column: what the History list shows.

        ``state`` is ``active``, ``changed`` (a later event supersedes it) or ``withdrawn`` (undone or withdrawn).
        By default only the active ones (one per pair): the labels that count now.
        """
        annotator = validate_annotator(annotator)
        ev = self.events()
        ev = ev[ev["annotator"] == annotator]
        replaced = set(ev["supersedes"].dropna().astype(int))
        state = np.where(~ev["undone"].to_numpy(bool), "active",
                         np.where(ev["event_id"].isin(replaced).to_numpy(), "changed", "withdrawn"))
        ev = ev.assign(state=state)
        if not include_inactive:
            ev = ev[ev["state"] == "active"]
        return ev.sort_values("event_id", ascending=False).reset_index(drop=True)

    def events(self, *, include_undone: bool = True) -> pd.DataFrame:
        """Every label event in commit order (the audit log)."""
        sql = "SELECT * FROM labels" + ("" if include_undone else " WHERE undone = 0") + " ORDER BY event_id"
        df = pd.DataFrame(self._read(sql), columns=_COLUMNS)
        df["label"] = df["label"].astype("Int8")
        df["round"] = df["round"].astype("Int64")
        df["shown_swapped"] = df["shown_swapped"].astype(bool)
        df["undone"] = df["undone"].astype(bool)
        df["supersedes"] = df["supersedes"].astype("Int64")
        return df

    def active_labels(self) -> pd.DataFrame:
        """The active (not undone) event of every pair that has one, including ties and skips.

        Columns as in the module docstring; ``label`` is nullable ``Int8`` (NA for tie/skip).
        """
        return self.events(include_undone=False)

    def label_map(self) -> dict[str, int]:
        """``pair_id → label`` (1 = A, 0 = B) of the active a/b verdicts: what the model trains on."""
        rows = self._read("SELECT pair_id, label FROM labels WHERE undone = 0 AND label IS NOT NULL ORDER BY event_id")
        return {str(p): int(lab) for p, lab in rows}

    def decided_ids(self) -> set[str]:
        """Pairs with an active event of any verdict: not to be offered again."""
        return {str(r[0]) for r in self._read("SELECT pair_id FROM labels WHERE undone = 0")}

    def __len__(self) -> int:
        """Number of active events."""
        return int(self._read("SELECT COUNT(*) FROM labels WHERE undone = 0")[0][0])

    # ------------------------------------------------------------------ meta
    def set_meta(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under ``key`` (overwrites; not the default annotator, which is set once)."""
        if key == _DEFAULT_ANNOTATOR_KEY:
            raise ValueError("the default annotator is set once, with set_default_annotator()")
        with self._write() as conn:
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    def get_meta(self, key: str, default: Any = None) -> Any:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return default if not rows else json.loads(rows[0][0])

    def meta(self) -> dict[str, Any]:
        """All session information as a dict."""
        return {k: json.loads(v) for k, v in self._read("SELECT key, value FROM meta ORDER BY key")}

    def set_default_annotator(self, name: str) -> str:
        """Name the one person of a one-person session, once; returns the stored name.

        Why once: labels already given under the default name must stay that person's, so the default can never
        be switched to someone else (each person then gives their name with each label instead). Setting the same
        name again is a no-op, so a page rerun is harmless.

        Raises
        ------
        ValueError
            ``name`` is not a valid annotator name, or another default was already set.
        """
        name = validate_annotator(name)
        with self._write() as conn:  # read and set under one lock: two tabs cannot both win
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (_DEFAULT_ANNOTATOR_KEY,)).fetchone()
            if row is not None:
                current = json.loads(row[0])
                if current != name:
                    raise ValueError(f"this session's default annotator is already {current!r}; it is set once and "
                                     f"cannot become {name!r} (give each label's annotator name instead)")
                return current
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (_DEFAULT_ANNOTATOR_KEY, json.dumps(name)))
        return name

    def default_annotator(self) -> str | None:
        """The default annotator set by :meth:`set_default_annotator`, or None (every label names its annotator)."""
        return self.get_meta(_DEFAULT_ANNOTATOR_KEY)

    # ------------------------------------------------------------------ exports (balpm.exports)
    def training_table(self, pool: PreferencePool) -> pd.DataFrame:
        """The active a/b labels as a training table (:func:`balpm.exports.training_table`)."""
        return exports.training_table(self, pool)

    def export_trl(self, pool: PreferencePool, path: str | os.PathLike[str]) -> int:
        """Write the active a/b labels as TRL reward-trainer JSONL (:func:`balpm.exports.export_trl`)."""
        return exports.export_trl(self, pool, path)

    def export_training_parquet(self, pool: PreferencePool, path: str | os.PathLike[str]) -> int:
        """Write :meth:`training_table` to Parquet (:func:`balpm.exports.export_training_parquet`)."""
        return exports.export_training_parquet(self, pool, path)

    def export_dataset(self, pool: PreferencePool, folder: str | os.PathLike[str]) -> int:
        """Write :meth:`training_table` as a ``datasets`` folder (:func:`balpm.exports.export_dataset`)."""
        return exports.export_dataset(self, pool, folder)

    def export_parquet(self, path: str | os.PathLike[str], *, include_undone: bool = True) -> int:
        """Write the event log to Parquet (:func:`balpm.exports.export_event_log`)."""
        return exports.export_event_log(self, path, include_undone=include_undone)
