"""A labelling session: one folder that holds everything needed to stop and resume labelling.

Why a folder: the app, a notebook and a second browser tab must all agree on what a session is, and a person's
labels must survive a crash. The folder (default ``~/balpm-sessions/<name>``, root ``$BALPM_SESSIONS_DIR``) holds

- ``session.json``: :class:`SessionConfig` (pool reference, embedding model, policy, batch size, mode, seeds);
- ``labels.sqlite``: the :class:`balpm.store.LabelStore` (every label committed as it is given);
- ``labels.count``: how many label events were ever committed, so an emptied or lost ``labels.sqlite`` is refused
  (:class:`balpm.store.StoreDamagedError`) instead of silently starting over;
- ``backups/``: copies of ``labels.sqlite`` (``balpm backup SESSION``, and automatically before a schema upgrade);
- ``learner/``: :meth:`balpm.learner.ActiveLearner.save` (the fitted ensemble, to skip a refit on resume);
- ``batch.json``: the proposed batch being labelled, its ids and round only (shared by every tab on the session);
- ``metrics.csv``: held-out metrics per round (simulation mode);
- ``selections.csv``: the one log of selections: every scored batch's picks (round, rank, id) with BALD, β·Ĥ,
  score and ratio (the current batch's scores and the ratio-over-rounds view read it);
- ``uploads/``: pool files uploaded through the app, so the session can reopen them.
- ``quarantine/``: a damaged learner state moved aside by :meth:`Session.make_learner` (kept for inspection).

The label store is the source of truth: :meth:`Session.make_learner` rebuilds the learner's labelled set from the
store's active labels, so a crash between "label committed" and "learner saved" loses nothing.

Two modes: ``"human"`` (labels from a person through the store) and ``"simulation"`` (the oracle is the pool's own
labels; oracle labels go through the store too, with annotator ``"oracle"``, so both modes resume the same way).
This module never imports streamlit.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from balpm.acquisition import SCORE_COLUMNS
from balpm.config import SessionConfig  # re-exported: its home is balpm.config, with the configs it nests
from balpm.safeio import atomic_write_text as _atomic_write_text
from balpm.store import LabelStore

if TYPE_CHECKING:  # annotations only: the pool, embedding and learner modules load when first used
    from balpm.data import PreferencePool
    from balpm.embed import PoolEmbeddings
    from balpm.learner import ActiveLearner
    from balpm.store import RecordResult

__all__ = [
    "SessionConfig",
    "Session",
    "validate_session_name",
    "Batch",
    "sessions_dir",
    "list_sessions",
    "demo_config",
    "open_or_create_demo",
    "MODES",
    "ORACLE",
    "SELECTION_COLUMNS",
]

MODES = ("human", "simulation")
ORACLE = "oracle"
"""Annotator name of labels given by the dataset's own labels in simulation mode."""
DEMO_NAME = "demo"
_CONFIG_FILE = "session.json"
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,79}")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}


SELECTION_COLUMNS = ["round", "pick", "id", *SCORE_COLUMNS]
"""Columns of ``selections.csv``, the one log of selections: each scored pick's round, rank, id and scores (those of
:data:`balpm.acquisition.SELECTION_COLUMNS`, the layout of a selection)."""


def validate_session_name(name: str) -> str:
    """``name`` without surrounding blanks, if it is a safe session name; else ValueError saying what is allowed.

    Why: a name typed in the app becomes a folder under :func:`sessions_dir`, so it must never be read as a path
    (``../../x``, ``/abs/x``, ``~/x`` made folders outside it). Allowed: 1 to 80 letters, digits, ``.``, ``_``
    and ``-``, starting with a letter or digit and not ending with ``.``, and not a name Windows reserves
    (``CON``, ``NUL``, ``COM1``, ...). Code that wants a session elsewhere passes a :class:`pathlib.Path`.
    """
    if not isinstance(name, str):
        raise TypeError(f"a session name is a str, not {type(name).__name__}")
    clean = name.strip()
    if not _NAME_RE.fullmatch(clean) or clean.endswith("."):
        raise ValueError(f"session name {name!r} is not allowed: use 1 to 80 letters, digits, '.', '_' or '-', "
                         "starting with a letter or digit and not ending with '.' (a name is never a path)")
    if clean.split(".")[0].lower() in _WINDOWS_RESERVED:
        raise ValueError(f"session name {name!r} is not allowed: Windows reserves it for a device")
    return clean


def _is_session_name(name: str) -> bool:
    try:
        return validate_session_name(name) == name
    except ValueError:
        return False


def sessions_dir() -> Path:
    """``$BALPM_SESSIONS_DIR`` or ``~/balpm-sessions``: where named sessions live."""
    env = os.environ.get("BALPM_SESSIONS_DIR")
    return Path(env).expanduser() if env else Path.home() / "balpm-sessions"


def list_sessions(root: str | os.PathLike[str] | None = None) -> list[str]:
    """Names of the sessions under ``root`` (folders holding a ``session.json``), newest first.

    Only folders whose name :meth:`Session.open` accepts as a name (:func:`validate_session_name`) are listed.
    """
    base = Path(root) if root is not None else sessions_dir()
    if not base.is_dir():
        return []
    found = [p for p in base.iterdir() if _is_session_name(p.name) and (p / _CONFIG_FILE).is_file()]
    found.sort(key=lambda p: (p / _CONFIG_FILE).stat().st_mtime, reverse=True)
    return [p.name for p in found]


def demo_config() -> SessionConfig:
    """The session a first start opens: HH-RLHF harmless-base, offline default model, human labelling.

    The full split when the data folder holds it, else the embedded sample, named ``sample:...`` so the demo keeps
    its pairs if a data folder appears later (its labels were given on the sample's pairs).
    """
    from balpm.data import SAMPLE_PREFIX, full_data_present

    pool = "hh-rlhf:harmless-base"
    return SessionConfig.from_settings(dataset=pool if full_data_present(pool) else SAMPLE_PREFIX + pool,
                                       max_pairs=500, embedding_model="default", mode="human")


@dataclass
class Batch:
    """A proposed batch being labelled: shared by every tab through ``batch.json``.

    ``table`` holds one row per pick (``id``, ``uncertainty``, ``entropy_term``, ``score``, ``ratio``) in pick
    order; ``cold_start`` says the batch was drawn at random because nothing was labelled yet (the learner's
    cold start, :meth:`balpm.learner.ActiveLearner.suggest`).
    """

    batch_id: str
    round: int
    ids: list[str]
    table: pd.DataFrame
    created_at: str = ""
    cold_start: bool = False


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Session:
    """One labelling session folder (see the module docstring). Open with :meth:`create` or :meth:`open`."""

    def __init__(self, folder: str | os.PathLike[str], config: SessionConfig) -> None:
        self.folder = Path(folder)
        self.config = config
        self._store: LabelStore | None = None
        self.last_warning: str | None = None
        """What :meth:`make_learner` had to repair (a damaged learner state), for the page to show; else None."""

    # ------------------------------------------------------------------ life cycle
    @classmethod
    def create(cls, name_or_path: str | os.PathLike[str], config: SessionConfig | None = None, *,
               root: str | os.PathLike[str] | None = None, exist_ok: bool = False) -> Session:
        """Make a new session folder: a ``str`` is a name (:func:`validate_session_name`) under
        :func:`sessions_dir` (or ``root``); only a :class:`pathlib.Path` means a folder anywhere else."""
        folder = cls._resolve(name_or_path, root)
        if (folder / _CONFIG_FILE).exists():
            if not exist_ok:
                raise FileExistsError(f"session {folder} already exists: open it instead")
            return cls.open(folder)
        config = dataclasses.replace(config) if config is not None else SessionConfig()
        if config.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {config.mode!r}")
        config.created_at = config.created_at or _now()
        folder.mkdir(parents=True, exist_ok=True)
        session = cls(folder, config)
        session.save_config()
        session.store.set_meta("session", config.to_dict())
        return session

    @classmethod
    def open(cls, name_or_path: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> Session:
        """Open an existing session: a ``str`` is a name under the sessions folder, a :class:`pathlib.Path` a folder."""
        folder = cls._resolve(name_or_path, root)
        cfg_file = folder / _CONFIG_FILE
        if not cfg_file.is_file():
            raise FileNotFoundError(f"no session at {folder} (missing {_CONFIG_FILE})")
        return cls(folder, SessionConfig.from_dict(json.loads(cfg_file.read_text(encoding="utf-8"))))

    @staticmethod
    def _resolve(name_or_path: str | os.PathLike[str], root: str | os.PathLike[str] | None) -> Path:
        """A path object is a folder; a str is only ever a validated name under the sessions folder."""
        if isinstance(name_or_path, os.PathLike):
            return Path(name_or_path).expanduser()
        if not isinstance(name_or_path, str):
            raise TypeError(f"a session is a name (str) or a folder (pathlib.Path), not {type(name_or_path).__name__}")
        return Path(root if root is not None else sessions_dir()) / validate_session_name(name_or_path)

    @property
    def name(self) -> str:
        return self.folder.name

    @property
    def store(self) -> LabelStore:
        """The session's label store (opened, and checked, on first use).

        Raises :class:`balpm.store.StoreDamagedError` when the database is damaged or has lost labels (its
        message says how to restore from ``backups/``): a session in that state cannot record a label.
        """
        if self._store is None:
            self._store = LabelStore(self.folder / "labels.sqlite")
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def reload(self) -> SessionConfig:
        """Re-read ``session.json``: another tab or process may have changed the settings."""
        try:
            self.config = SessionConfig.from_dict(json.loads((self.folder / _CONFIG_FILE).read_text(encoding="utf-8")))
        except (OSError, ValueError):
            pass  # keep the settings in memory if the file is mid-replace or gone
        return self.config

    def save_config(self) -> None:
        _atomic_write_text(self.folder / _CONFIG_FILE, json.dumps(self.config.to_dict(), indent=2))

    def update(self, **changes: Any) -> SessionConfig:
        """Change settings (:meth:`SessionConfig.with_settings` names) and save. A new pool or model drops the
        current batch (other rows / stale scores)."""
        if "mode" in changes and changes["mode"] not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        new = self.config.with_settings(**changes)
        old = (self.pool_identity(), self.config.model_key())
        self.config = new
        self.save_config()
        if (self.pool_identity(), self.config.model_key()) != old:
            self.clear_batch()
        return self.config

    def __repr__(self) -> str:
        return f"Session({str(self.folder)!r}, pool={self.config.pool.dataset!r}, mode={self.config.mode!r})"

    # ------------------------------------------------------------------ pool
    def pool_path(self) -> Path | None:
        """The pool's file or folder when ``pool`` is a path (relative paths are inside the session folder)."""
        p = Path(self.config.pool.dataset).expanduser()
        if not p.is_absolute():
            inside = self.folder / p
            if inside.exists():
                return inside
        return p if p.exists() else None

    def pool_source(self) -> str:
        """What :func:`balpm.data.load_pool` is given: the resolved path, or the built-in name."""
        p = self.pool_path()
        return str(p) if p is not None else self.config.pool.dataset

    def pool_identity(self) -> str:
        """A key that changes whenever the loaded pool could change: the source and what it reads
        (:func:`balpm.data.sources.source_fingerprint`: a file's size and mtime, a built-in name's files, full
        split or embedded sample, and their bytes), seed, size, mode, split and column mapping."""
        from balpm.data.sources import source_fingerprint

        return self._pool_key(source_fingerprint(self.pool_source()))

    def _pool_key(self, fingerprint: str) -> str:
        c, pc = self.config, self.config.pool
        parts = [self.pool_source(), fingerprint, str(pc.data_seed), str(pc.max_pairs), c.mode,
                 str(pc.test_fraction) if c.mode == "simulation" else ""] + ([pc.columns] if pc.columns else [])
        return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:20]

    def save_upload(self, filename: str, data: bytes) -> str:
        """Write an uploaded pool file into ``uploads/`` and point the session at it; returns the relative path."""
        safe = Path(filename).name or "pool.jsonl"
        rel = Path("uploads") / safe
        target = self.folder / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{safe}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        return str(rel)

    def load_pool(self) -> PreferencePool:
        """The session's pool: loaded, restricted to labelled pairs in simulation, sampled to ``max_pairs``.

        Raises :class:`balpm.data.PoolFormatError` (located) for a file the user must fix.
        """
        from balpm.experiment import load_labelled_sample

        pc = self.config.pool
        return load_labelled_sample(self.pool_source(), pc.max_pairs, int(pc.data_seed), bool(pc.strict),
                                    labelled_only=self.config.mode == "simulation", columns=pc.columns)

    def split_masks(self, pool: PreferencePool) -> tuple[np.ndarray, np.ndarray | None]:
        """(train, test) row masks: a held-out group split (seeded by ``pool.data_seed``) in simulation, else all
        / None."""
        n = len(pool)
        if self.config.mode != "simulation" or n < 4 or pool.groups.size and len(set(pool.groups)) < 2:
            return np.ones(n, dtype=bool), None
        test_mask = pool.test_group_mask(float(self.config.pool.test_fraction), int(self.config.pool.data_seed))
        return ~test_mask, test_mask

    # ------------------------------------------------------------------ learner
    @property
    def learner_dir(self) -> Path:
        return self.folder / "learner"

    def learner_params(self) -> dict[str, Any]:
        c = self.config
        return {"policy": c.acquisition.policy, "policy_params": dict(c.acquisition.params),
                "model_params": c.ensemble_params(),
                "batch_size": int(c.batch_size), "seed": int(c.seed)}

    def make_learner(self, pool: PreferencePool, embeddings: PoolEmbeddings, *,
                     knn_cache_dir: str | os.PathLike[str] | None = None) -> ActiveLearner:
        """The session's :class:`balpm.learner.ActiveLearner` on ``pool``, labelled set rebuilt from the store.

        The saved learner is reused (its fitted ensemble saves a refit) when it belongs to this pool and
        embedding model; the current config's policy and batch size always win. Otherwise a fresh learner. A
        damaged saved state (:class:`balpm.learner.LearnerStateError`) never stops labelling: the folder is moved
        into ``quarantine/``, the learner is rebuilt from the store's labels and :attr:`last_warning` says so.
        """
        from balpm.learner import ActiveLearner, LearnerStateError
        from balpm.safeio import quarantine

        params = self.learner_params()
        learner = None
        damaged: tuple[str, Path | None] | None = None
        self.last_warning = None
        d = self.learner_dir
        if (d / "learner.json").exists():
            try:
                learner = ActiveLearner.load(d, pool, embeddings, knn_cache_dir=knn_cache_dir, **params)
            except LearnerStateError as e:
                damaged = (e.reason, quarantine(d, e.reason, "the model is refit from the labels in the database"))
            except (ValueError, KeyError, OSError):
                learner = None  # another pool or embedding model: the store still has every label
        if learner is None:
            learner = ActiveLearner(pool, embeddings, knn_cache_dir=knn_cache_dir, **params)
        self.sync(learner)
        if damaged is not None:
            where = f"moved to {damaged[1]}" if damaged[1] is not None else "left in place (it could not be moved)"
            self.last_warning = (
                f"The saved learner state was damaged ({damaged[0]}) and was {where}. The model will be refit "
                f"from the {learner.n_labeled_} labels in the database, which are the source of truth; no label is "
                "lost and labelling goes on."
            )
        return learner

    def sync(self, learner: ActiveLearner) -> ActiveLearner:
        """Make ``learner``'s labelled set equal to the store's active labels (the store is the truth)."""
        learner.sync_from_store(self.store)
        return learner

    def save_learner(self, learner: ActiveLearner) -> None:
        learner.save(self.learner_dir)

    # ------------------------------------------------------------------ batches
    def current_batch(self) -> Batch | None:
        """The batch being labelled (``batch.json``), or None (also when it was proposed for another pool/model)."""
        f = self.folder / "batch.json"
        if not f.is_file():
            return None
        try:
            d = json.loads(f.read_text(encoding="utf-8"))
        except (ValueError, OSError):
            return None
        pool = self.pool_identity()
        # keyed before balpm counted a built-in's files (their fingerprint was "builtin"): kept, and re-keyed below
        legacy = d.get("pool") != pool and self.pool_path() is None and d.get("pool") == self._pool_key("builtin")
        if (d.get("pool") != pool and not legacy) or d.get("model", self.config.model_key()) != self.config.model_key():
            return None  # proposed for another pool or model (e.g. the file was replaced): never show it
        ids = [str(i) for i in d["ids"]]
        batch = Batch(batch_id=d["batch_id"], round=int(d["round"]), ids=ids,
                      table=self._batch_table(int(d["round"]), ids), created_at=d.get("created_at", ""),
                      cold_start=bool(d.get("cold_start", d.get("initial", False))))  # "initial": older files
        if legacy:
            self._write_batch(batch)
        return batch

    def _batch_table(self, rnd: int, ids: list[str]) -> pd.DataFrame:
        """The batch's picks in order with their scores, read from the one log (:meth:`selections`); NaN scores for
        a cold-start batch (not logged: it has none)."""
        log = self.selections()
        log = log[log["round"] == rnd].drop_duplicates("id", keep="last").set_index("id")
        return log.reindex(ids)[list(SCORE_COLUMNS)].astype(float).rename_axis("id").reset_index()

    def set_batch(self, selection: pd.DataFrame) -> Batch:
        """Make a selection (``ActiveLearner.suggest`` output) the batch to label; written atomically."""
        cols = [c for c in ("id", "uncertainty", "entropy_term", "score", "ratio") if c in selection.columns]
        table = selection[cols].copy()
        table["id"] = table["id"].astype(str)
        rnd = int(selection["round"].iloc[0]) if len(selection) and "round" in selection else 0
        cold = bool(selection["cold_start"].any()) if "cold_start" in selection else False
        batch = Batch(batch_id=uuid.uuid4().hex[:12], round=rnd, ids=table["id"].tolist(), table=table,
                      created_at=_now(), cold_start=cold)
        self._append_selection(selection)  # the log first: batch.json only names the ids and the round
        self._write_batch(batch)
        return batch

    def _append_selection(self, selection: pd.DataFrame) -> None:
        """Add a scored batch's per-pick statistics to ``selections.csv`` (the ratio-over-rounds history).

        A batch proposed again for the same round replaces the earlier proposal; cold-start (random) batches
        have no scores and are not kept.
        """
        if not len(selection) or "ratio" not in selection.columns or "round" not in selection.columns:
            return
        if "cold_start" in selection.columns and bool(selection["cold_start"].all()):
            return
        new = selection.reindex(columns=SELECTION_COLUMNS).copy()
        new["id"] = new["id"].astype(str)
        if new["pick"].isna().all():
            new["pick"] = np.arange(len(new))
        old = self.selections()
        if len(old):
            new = pd.concat([old[~old["round"].isin(new["round"].unique())], new], ignore_index=True)
        tmp = self.selections_file.with_name(".selections.csv.tmp")
        new.sort_values(["round", "pick"], kind="stable").to_csv(tmp, index=False)
        os.replace(tmp, self.selections_file)

    def pick_history(self) -> pd.DataFrame:
        """Every scored pick (random picks left out), one row per pick (:data:`SELECTION_COLUMNS`), by round and pick:
        :meth:`selections` without the rows that have no BALD."""
        df = self.selections()
        df = df[np.isfinite(pd.to_numeric(df["uncertainty"], errors="coerce").to_numpy(dtype=np.float64))]
        return df.sort_values(["round", "pick"], kind="stable").reset_index(drop=True)

    @property
    def selections_file(self) -> Path:
        """``selections.csv``: the per-round pick history (absent in sessions made before it was kept)."""
        return self.folder / "selections.csv"

    def selections(self) -> pd.DataFrame:
        """Every scored batch proposed in this session, one row per pick (:data:`SELECTION_COLUMNS`): the one log.

        Session folders written before the log was the one record also kept picks in the learner's
        ``last_selection`` file and in ``batch.json``; those are read too when present, for rounds the log lacks.
        """
        f = self.selections_file
        log = pd.read_csv(f, dtype={"id": str}) if f.is_file() else pd.DataFrame(columns=SELECTION_COLUMNS)
        legacy = self._legacy_selections()
        if legacy is None:
            return log
        legacy = legacy[~legacy["round"].isin(log["round"].unique())]
        return pd.concat([f for f in (log, legacy) if len(f)] or [log], ignore_index=True)

    def _legacy_selections(self) -> pd.DataFrame | None:
        """Picks that older session folders kept outside ``selections.csv`` (None when there are none)."""
        from balpm.learner_state import saved_selection

        frames = []
        last = saved_selection(self.learner_dir)
        if last is not None:
            frames.append(last)
        f = self.folder / "batch.json"
        try:
            d = json.loads(f.read_text(encoding="utf-8")) if f.is_file() else {}
        except (ValueError, OSError):
            d = {}
        if d.get("table") and not d.get("cold_start", d.get("initial", False)):
            frames.append(pd.DataFrame(d["table"]).assign(round=int(d["round"]), pick=np.arange(len(d["ids"]))))
        frames = [f.reindex(columns=SELECTION_COLUMNS) for f in frames
                  if len(f) and {"round", "ratio"} <= set(f.columns)]
        if not frames:
            return None
        df = pd.concat(frames, ignore_index=True)
        df["id"] = df["id"].astype(str)
        return df.drop_duplicates(["round", "id"], keep="last").sort_values(["round", "pick"], kind="stable")

    def _write_batch(self, batch: Batch) -> None:
        """``batch.json``: the batch's ids and round only (its scores are in ``selections.csv``)."""
        payload = {"batch_id": batch.batch_id, "round": batch.round, "ids": batch.ids, "created_at": batch.created_at,
                   "cold_start": batch.cold_start, "pool": self.pool_identity(), "model": self.config.model_key()}
        _atomic_write_text(self.folder / "batch.json", json.dumps(payload))

    def clear_batch(self) -> None:
        (self.folder / "batch.json").unlink(missing_ok=True)

    def pending_ids(self, batch: Batch | None = None) -> list[str]:
        """Ids of the batch not decided in the store yet (re-read every call: another tab may have labelled)."""
        batch = batch if batch is not None else self.current_batch()
        if batch is None:
            return []
        decided = self.store.decided_ids()
        return [i for i in batch.ids if i not in decided]

    def propose(self, learner: ActiveLearner, *, candidates: np.ndarray | None = None) -> Batch:
        """Fit (if stale), score the pool and make the next batch current; saves the learner.

        With no labelled pair yet the learner's cold start draws the batch at random (``Batch.cold_start``).
        """
        self.sync(learner)
        batch = self.set_batch(learner.suggest(candidates=candidates))
        self.save_learner(learner)
        return batch

    # ------------------------------------------------------------------ human labels
    def side_swapped(self, pair_id: str) -> bool:
        """Whether the pool's B is shown on the left for this pair: a coin seeded by (session seed, pair id).

        Stable across reruns and tabs, so a pair never jumps sides between clicks.
        """
        h = hashlib.sha256(f"{int(self.config.seed)}:{pair_id}".encode()).digest()
        return bool(h[0] & 1)

    def record(self, pair_id: str, verdict: str, *, annotator: str, shown_swapped: bool, request_id: str,
               round: int | None = None, batch_id: str | None = None) -> RecordResult:  # noqa: A002
        """Commit one label (idempotent on ``request_id``); returns :class:`balpm.store.RecordResult`.

        ``annotator`` is required (ValueError when missing or blank): no label without the person who gave it.
        """
        return self.store.record(pair_id, verdict, annotator=annotator, shown_swapped=shown_swapped, round=round,
                                 request_id=request_id, batch_id=batch_id)

    def undo_last(self, annotator: str, *, request_id: str | None = None) -> dict[str, Any] | None:
        """Undo ``annotator``'s own most recent label; the pair is put back at the front of the current batch.

        ``annotator`` is required (ValueError when missing): Undo never reaches another person's label.
        """
        ev = self.store.undo_last(annotator, request_id=request_id)
        if ev is not None:
            self._offer_again(str(ev["pair_id"]))
        return ev

    def withdraw(self, event_id: int, annotator: str, *, request_id: str) -> dict[str, Any]:
        """Withdraw any one of ``annotator``'s labels (:meth:`balpm.store.LabelStore.withdraw`: marked, never
        deleted); like Undo, the pair is put back at the front of the current batch to be labelled again."""
        ev = self.store.withdraw(event_id, annotator, request_id=request_id)
        self._offer_again(str(ev["pair_id"]))
        return ev

    def _offer_again(self, pid: str) -> None:
        """Put an undecided pair back at the front of the current batch (if it is not in it already)."""
        batch = self.current_batch()
        if batch is not None and pid not in batch.ids:
            batch.ids = [pid] + batch.ids
            self._write_batch(batch)  # ids only: the table is read from the log on the next current_batch()

    def n_labelled(self) -> int:
        """Active a/b labels in the store (what the model trains on)."""
        return len(self.store.label_map())

    # ------------------------------------------------------------------ simulation
    def record_oracle(self, learner: ActiveLearner, ids: list[str], round: int) -> None:  # noqa: A002
        """Store the oracle's labels of ``ids`` (already set on ``learner``) so a resumed session rebuilds them."""
        rows = learner.rows_of(ids)
        for pid, lab in zip(ids, learner.labels_[rows]):
            verdict = "tie" if np.isnan(lab) else ("a" if lab == 1 else "b")
            self.store.record(str(pid), verdict, annotator=ORACLE, round=int(round),
                              request_id=f"{ORACLE}:{pid}")

    def simulate_round(self, learner: ActiveLearner, test_pool: PreferencePool | None = None,
                       test_embeddings: PoolEmbeddings | None = None) -> dict[str, Any]:
        """One simulated round, the same as a run's (:func:`balpm.experiment.oracle_round`): the initial random
        set if nothing is labelled, else an oracle step; the oracle's labels stored; then refit, evaluate on the
        held-out split, append to ``metrics.csv`` (a run's schema, :func:`balpm.experiment.metric_rows`) and save
        the learner.

        Returns the metrics row (``round``, ``n_labeled``, ``log_likelihood``, ``accuracy``, ...; metrics NaN
        without a test split; empty dict when the pool has run dry).
        """
        from balpm.experiment import session_round

        return session_round(self, learner, test_pool, test_embeddings)

    def metrics(self) -> pd.DataFrame:
        """Held-out metrics per simulated round (empty frame before the first)."""
        f = self.folder / "metrics.csv"
        return pd.read_csv(f) if f.is_file() else pd.DataFrame()


def open_or_create_demo(root: str | os.PathLike[str] | None = None) -> Session:
    """The demo session, created on first start (on the full split or the embedded sample: :func:`demo_config`)."""
    base = Path(root) if root is not None else sessions_dir()
    if (base / DEMO_NAME / _CONFIG_FILE).is_file():
        return Session.open(base / DEMO_NAME)
    return Session.create(DEMO_NAME, demo_config(), root=base, exist_ok=True)
