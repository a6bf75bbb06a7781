"""The learner's state on disk: one save is a set of files plus a checksummed manifest, written last.

A save writes ``state-<id>.npz`` and ``ensemble-<id>.npz`` (if fitted), each atomically and checksummed, then
``learner.json`` naming them with their sha256; replacing that manifest is the one step that switches to the new
save, so a killed save leaves the previous one in force. Loading verifies every file (:class:`LearnerStateError` for
damage). Format 1 folders (fixed file names, no manifest checksum) still load. A selection is not part of the state
(a session logs it once, in ``selections.csv``); the ``last_selection`` file older saves hold is still read.
:meth:`balpm.learner.ActiveLearner.save` and :meth:`~balpm.learner.ActiveLearner.load` are the entry points;
this module is their file format, kept apart from the active-learning loop.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from balpm.safeio import DamagedFileError, atomic_write_bytes, load_npz, save_npz, sha256_file
from balpm.safeio import ids_digest as _ids_digest

if TYPE_CHECKING:
    from balpm.data import PreferencePool
    from balpm.embed import PoolEmbeddings
    from balpm.learner import ActiveLearner

__all__ = ["LearnerStateError", "load_learner", "save_learner", "saved_selection"]

_FORMAT_VERSION = 2
"""2: ``learner.json`` is the manifest of one save (file names + sha256), written last; 1: fixed file names."""
_PARTS = {"state": ".npz", "ensemble": ".npz", "last_selection": ".csv"}
_LEGACY_FILES = ("state.npz", "ensemble.npz", "last_selection.csv", "state.tmp.npz", "ensemble.tmp.npz",
                 "learner.json.tmp")


def save_learner(learner: ActiveLearner, directory: str | os.PathLike[str]) -> Path:
    """Write ``learner``'s whole state to ``directory`` (see :meth:`balpm.learner.ActiveLearner.save`)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    save_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
    files: dict[str, dict[str, str]] = {}

    def put(part: str, write: Any) -> None:
        name = f"{part}-{save_id}{_PARTS[part]}"
        write(d / name)
        files[part] = {"name": name, "sha256": sha256_file(d / name)}

    put("state", lambda p: save_npz(p, {"labels": learner.labels_, "acquired_round": learner.acquired_round_}))
    if learner.ensemble_ is not None:
        put("ensemble", lambda p: save_npz(p, learner.ensemble_.state_dict()))
    meta = {
        "format_version": _FORMAT_VERSION,
        "save_id": save_id,
        "files": files,
        "params": learner.get_params(),
        "pool_name": getattr(learner.pool, "name", None),
        "n_pairs": int(len(learner.labels_)),
        "ids_sha256": _ids_digest(learner.ids),
        "embeddings_model_id": getattr(learner.embeddings, "model_id", None),
        "fitted_key": learner._fitted_key,
        "fit_round": learner._fit_round,
        "rng": {"scheme": "numpy default_rng([seed, round, purpose])", "seed": learner.seed},
        "timings": learner.timings_,
    }
    meta = json.loads(json.dumps(meta, default=_json_default))
    meta["sha256"] = _manifest_digest(meta)
    current = _current_save_id(d)
    if current is not None and current > save_id:  # a later save committed meanwhile: it wins
        for f in files.values():
            (d / f["name"]).unlink(missing_ok=True)
        return d
    atomic_write_bytes(d / "learner.json", json.dumps(meta, indent=2).encode())  # the commit point
    _remove_superseded(d, save_id, {f["name"] for f in files.values()})
    return d


def load_learner(cls: type[ActiveLearner], directory: str | os.PathLike[str], pool: PreferencePool,
                 embeddings: PoolEmbeddings, **overrides: Any) -> ActiveLearner:
    """Restore a learner of class ``cls`` from ``directory`` (see :meth:`balpm.learner.ActiveLearner.load`)."""
    from balpm.model import PreferenceEnsemble

    d = Path(directory)
    meta = _read_manifest(d)
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or version > _FORMAT_VERSION:
        raise ValueError(f"{d}: saved by a newer balpm (format {version!r})")
    ids = pool.pairs["id"].astype(str).to_numpy()
    if len(ids) != meta.get("n_pairs") or _ids_digest(ids) != meta.get("ids_sha256"):
        raise ValueError(f"{d}: the saved learner belongs to another pool ({meta.get('pool_name')!r}, "
                         f"{meta.get('n_pairs')} pairs) than {getattr(pool, 'name', '')!r} ({len(ids)} pairs)")
    saved_model, model = meta.get("embeddings_model_id"), getattr(embeddings, "model_id", None)
    if saved_model is not None and model is not None and saved_model != model:
        raise ValueError(f"{d}: the saved learner was fitted on embeddings {saved_model!r}, not {model!r}")
    try:
        params = {**meta["params"], **overrides}
        learner = cls(pool, embeddings, **params)
    except (KeyError, TypeError) as e:
        raise LearnerStateError(d, f"learner.json: unusable parameters ({type(e).__name__}: {e})") from e
    paths = _part_paths(d, meta)
    if "state" not in paths:
        raise LearnerStateError(d, "no state file")
    state = _read_part(d, paths["state"], lambda p: load_npz(p, required=("labels", "acquired_round")))
    labels, rounds = state["labels"], state["acquired_round"]
    n = len(ids)
    if labels.shape != (n,) or rounds.shape != (n,) or labels.dtype.kind != "f" or rounds.dtype.kind not in "iu":
        raise LearnerStateError(d, f"{paths['state'][0]}: labels {labels.dtype}{labels.shape} and rounds "
                                   f"{rounds.dtype}{rounds.shape} do not fit a pool of {n} pairs")
    learner.labels_ = labels.astype(np.float64)
    learner.acquired_round_ = rounds.astype(np.int64)
    if "ensemble" in paths:
        arrays = _read_part(d, paths["ensemble"], load_npz)
        try:
            learner.ensemble_ = PreferenceEnsemble.from_state_dict(arrays)
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise LearnerStateError(d, f"{paths['ensemble'][0]}: not an ensemble ({e})") from e
        learner._fitted_key = meta.get("fitted_key")
        learner._fit_round = meta.get("fit_round")
        if version < 2 and int(np.asarray(arrays.get("n_train", -1))) != learner.n_labeled_:
            # format 1 wrote its files one by one: an ensemble of another save is refit, never trusted
            learner.ensemble_, learner._fitted_key, learner._fit_round = None, None, None
    learner.timings_ = dict(meta.get("timings") or {})
    if "last_selection" in paths:
        learner.last_selection_ = _read_part(d, paths["last_selection"], _read_selection)
    return learner


class LearnerStateError(ValueError):
    """A saved learner folder that cannot be trusted (damaged, unreadable or incomplete files).

    Nothing is lost with it: the labels are in the label database, which is the source of truth, so the caller
    refits from there (:meth:`balpm.session.Session.make_learner` moves the folder aside and says so).
    ``directory`` and ``reason`` are kept for that message.
    """

    def __init__(self, directory: str | os.PathLike[str], reason: str) -> None:
        self.directory = Path(directory)
        self.reason = reason
        super().__init__(f"{self.directory}: {reason}")


def _manifest_digest(meta: dict[str, Any]) -> str:
    """sha256 of a manifest's canonical JSON without its own ``sha256`` entry (catches flipped bytes in it)."""
    body = {k: v for k, v in meta.items() if k != "sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _read_manifest(d: Path) -> dict[str, Any]:
    """``learner.json`` of a saved learner, verified against its own checksum when it has one (format 2)."""
    path = d / "learner.json"
    try:
        meta = json.loads(path.read_bytes().decode("utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as e:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise LearnerStateError(d, f"learner.json unreadable ({type(e).__name__}: {e})") from e
    if not isinstance(meta, dict):
        raise LearnerStateError(d, "learner.json does not hold an object")
    if "sha256" in meta and meta["sha256"] != _manifest_digest(meta):
        raise LearnerStateError(d, "learner.json: checksum mismatch (the file is not what was written)")
    if meta.get("format_version", 0) >= 2 and "sha256" not in meta:
        raise LearnerStateError(d, "learner.json: no checksum")
    return meta


def _part_paths(d: Path, meta: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """``part → (file name, sha256 or None)`` of a saved learner: from the manifest, or format 1's fixed names."""
    if meta.get("format_version", 0) < 2:
        fixed = {"state": "state.npz", "ensemble": "ensemble.npz", "last_selection": "last_selection.csv"}
        return {part: (name, None) for part, name in fixed.items() if part == "state" or (d / name).exists()}
    files = meta.get("files")
    if not isinstance(files, dict):
        raise LearnerStateError(d, "learner.json names no files")
    out: dict[str, tuple[str, str | None]] = {}
    for part, entry in files.items():
        name = entry.get("name") if isinstance(entry, dict) else None
        if part not in _PARTS or not isinstance(name, str) or Path(name).name != name or name.startswith("."):
            raise LearnerStateError(d, f"learner.json: bad file entry {part!r}: {entry!r}")
        out[part] = (name, entry.get("sha256"))
    return out


def _read_part(d: Path, part: tuple[str, str | None], read: Any) -> Any:
    """Read one file of a save after checking it against the manifest's sha256; damage → LearnerStateError."""
    name, digest = part
    path = d / name
    try:
        if digest is not None and sha256_file(path) != digest:
            raise LearnerStateError(d, f"{name}: checksum mismatch with learner.json (damaged file)")
        return read(path)
    except FileNotFoundError as e:
        raise LearnerStateError(d, f"{name}, named by learner.json, is missing") from e
    except DamagedFileError as e:
        raise LearnerStateError(d, f"{name}: {e.reason}") from e
    except (OSError, ValueError, KeyError, EOFError) as e:
        if isinstance(e, LearnerStateError):
            raise
        raise LearnerStateError(d, f"{name}: unreadable ({type(e).__name__}: {e})") from e


def _read_selection(path: Path) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(path.read_bytes()), dtype={"id": str})


def _current_save_id(d: Path) -> str | None:
    """``save_id`` of the save in force (None for none, format 1, or an unreadable manifest)."""
    try:
        sid = json.loads((d / "learner.json").read_bytes()).get("save_id")
    except (OSError, ValueError, AttributeError):
        return None
    return sid if isinstance(sid, str) else None


def _remove_superseded(d: Path, save_id: str, keep: set[str]) -> None:
    """Delete the files of saves older than ``save_id`` (and format 1's), once ``save_id``'s manifest is in force.

    Files of a later save (a concurrent writer still writing) are left alone; so are the temporary files of an
    interrupted write (:mod:`balpm.safeio` names them ``.tmp-<target>-…``) unless their save is older.
    """
    for part, suffix in _PARTS.items():
        for prefix in (f"{part}-", f".tmp-{part}-"):
            for p in d.glob(f"{prefix}*"):
                other = p.name[len(prefix) : len(prefix) + len(save_id)]
                if p.name not in keep and other < save_id:
                    p.unlink(missing_ok=True)
    try:  # manifests whose write was interrupted: older than this save's first file
        since = min((d / name).stat().st_mtime_ns for name in keep)
        for p in d.glob(".tmp-learner.json-*"):
            if p.stat().st_mtime_ns < since:
                p.unlink(missing_ok=True)
    except (OSError, ValueError):
        pass
    for name in _LEGACY_FILES:
        (d / name).unlink(missing_ok=True)


def saved_selection(directory: str | os.PathLike[str]) -> pd.DataFrame | None:
    """The last selection of the learner saved in ``directory`` (None when there is none or it cannot be read).

    For views such as the pick history, which must not depend on the learner's full state being loadable.
    """
    d = Path(directory)
    try:
        meta = _read_manifest(d)
        part = _part_paths(d, meta).get("last_selection")
        return None if part is None else _read_part(d, part, _read_selection)
    except (OSError, ValueError):
        return None


def _json_default(o: Any) -> Any:
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    return str(o)
