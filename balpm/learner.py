"""The active learner shared by simulated runs (:mod:`balpm.experiment`) and human labelling (app, notebooks).

One object holds a pool, its embeddings, the labelled set and the ensemble, and runs the loop

    suggest() → a batch of pairs → label(ids, labels) (a person, or the pool's own labels in simulation) → fit()

Why one object for both: a person labelling in the app and a simulated run must pick with exactly the same code, so
what a benchmark measures is what the app does.

Rounds and randomness
---------------------
Every pool row has an ``acquired_round_``: ``-1`` not acquired, ``0`` the initial set, ``r ≥ 1`` labelled from the
``r``-th suggestion (as in baal's ``ActiveLearningDataset``). :meth:`ActiveLearner.suggest` proposes for round
``last_round_ + 1``. Every random choice is drawn from ``np.random.default_rng([seed, round, purpose])`` and the
ensemble of round ``r`` is seeded the same way, so the picks depend only on ``(seed, labelled set)``: a session that
is saved and loaded makes exactly the picks it would have made, and asking again for the same round (a page rerun)
returns the same batch.

Ties and skips are *decided* (never offered again) but are not labels for the model (``labels_`` stays NaN).

Cold start: with no label yet there is nothing to fit, so :meth:`ActiveLearner.suggest` draws the batch uniformly at
random (seeded like the rest) for every policy and flags it (``cold_start`` column).
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

from balpm import uncertainty as unc
from balpm.metrics import expected_calibration_error, preference_metrics  # re-exported: lived here before
from balpm.neighbors import knn_cache_path, load_or_build_knn  # re-exported: they lived here
from balpm.safeio import DamagedFileError, atomic_write_bytes, load_npz, save_npz, sha256_file
from balpm.safeio import ids_digest as _ids_digest

if TYPE_CHECKING:  # annotations only: the model and acquisition modules load when first used
    from balpm.acquisition import Policy
    from balpm.data import PreferencePool
    from balpm.embed import PoolEmbeddings
    from balpm.model import PreferenceEnsemble
    from balpm.neighbors import KnnGraph
    from balpm.store import LabelStore

__all__ = [
    "ActiveLearner",
    "LearnerStateError",
    "saved_selection",
    "expected_calibration_error",
    "preference_metrics",
    "knn_cache_path",
    "load_or_build_knn",
]

_FORMAT_VERSION = 2
"""2: ``learner.json`` is the manifest of one save (file names + sha256), written last; 1: fixed file names."""
_PARTS = {"state": ".npz", "ensemble": ".npz", "last_selection": ".csv"}
_LEGACY_FILES = ("state.npz", "ensemble.npz", "last_selection.csv", "state.tmp.npz", "ensemble.tmp.npz",
                 "learner.json.tmp")
_PURPOSE_INIT, _PURPOSE_SELECT, _PURPOSE_FIT = 0, 1, 2
_KNN_POLICIES = {"bal-pm", "entropy"}


# ---------------------------------------------------------------------------------------------------- learner
class ActiveLearner:
    """Pool-based active learning of a Bradley-Terry ensemble, for simulations and human labelling alike.

    Parameters
    ----------
    pool : PreferencePool
        The pairs (row ``i`` of ``pool.pairs`` ↔ row ``i`` of every embedding matrix).
    embeddings : PoolEmbeddings
        ``prompt``, ``a``, ``b`` (N, d) of the pool.
    policy : str
        A name in ``balpm.acquisition.POLICIES`` (``bal-pm``, ``random``, ``bald``, ...).
    policy_params : dict, optional
        Passed to ``get_policy`` (e.g. ``beta``, ``k``, ``temperature``).
    model_params : dict, optional
        Passed to :class:`balpm.model.PreferenceEnsemble` (``seed`` is set per round by the learner).
    batch_size : int
        Pairs per suggestion.
    seed : int
        Root of every random choice.
    knn_graph : KnnGraph, optional
        A prebuilt graph of ``embeddings.prompt``; else built on first need and cached (:func:`load_or_build_knn`).
    knn_k : int, optional
        ``k`` of the graph; default ``policy_params["k"]`` or 13.
    knn_cache_dir : path, optional
        Folder of the graph cache (default ``<balpm cache>/knn``).

    Attributes
    ----------
    labels_ : (N,) float array
        1 = A preferred, 0 = B preferred, NaN = no label for the model.
    acquired_round_ : (N,) int array
        Round in which each pair was decided (labelled, tie or skip); -1 if not yet.
    ensemble_ : PreferenceEnsemble or None
        The last fitted ensemble.
    last_selection_ : pandas.DataFrame or None
        The last :meth:`suggest` result.
    timings_ : dict
        Seconds of the last ``fit``, ``score`` and ``select`` phases.
    """

    def __init__(
        self,
        pool: PreferencePool,
        embeddings: PoolEmbeddings,
        *,
        policy: str = "bal-pm",
        policy_params: dict[str, Any] | None = None,
        model_params: dict[str, Any] | None = None,
        batch_size: int = 32,
        seed: int = 0,
        knn_graph: KnnGraph | None = None,
        knn_k: int | None = None,
        knn_cache_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        n = len(pool.pairs)
        if len(embeddings.ids) != n or not np.array_equal(np.asarray(embeddings.ids).astype(str),
                                                          pool.pairs["id"].to_numpy().astype(str)):
            raise ValueError("embeddings.ids must equal pool.pairs.id, row for row (embed this pool)")
        self.pool = pool
        self.embeddings = embeddings
        self.policy = policy
        self.policy_params = dict(policy_params or {})
        self.model_params = dict(model_params or {})
        self.model_params.pop("seed", None)
        if "hidden" in self.model_params:  # JSON round trips give lists; keep one canonical form
            self.model_params["hidden"] = tuple(int(h) for h in self.model_params["hidden"])
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.knn_k = int(knn_k if knn_k is not None else self.policy_params.get("k", 13))
        self.knn_cache_dir = knn_cache_dir
        self.knn_graph_ = knn_graph
        self._policy_obj: Policy | None = None

        self.labels_ = np.full(n, np.nan)
        self.acquired_round_ = np.full(n, -1, dtype=np.int64)
        self.ensemble_: PreferenceEnsemble | None = None
        self._fitted_key: str | None = None
        self._fit_round: int | None = None
        self.last_selection_: pd.DataFrame | None = None
        self.timings_: dict[str, float] = {}
        self._index = pd.Index(pool.pairs["id"].astype(str))

    # ------------------------------------------------------------------ views
    @property
    def ids(self) -> np.ndarray:
        return self._index.to_numpy()

    @property
    def n_labeled_(self) -> int:
        """Pairs with a label for the model."""
        return int(np.sum(~np.isnan(self.labels_)))

    @property
    def last_round_(self) -> int:
        """The highest round with a decided pair (-1 before any)."""
        return int(self.acquired_round_.max()) if len(self.acquired_round_) else -1

    @property
    def labeled_mask(self) -> np.ndarray:
        return ~np.isnan(self.labels_)

    @property
    def decided_mask(self) -> np.ndarray:
        """Pairs not to be offered again (labelled, tie or skip)."""
        return self.acquired_round_ >= 0

    def labeled_ids(self) -> list[str]:
        """Labelled pair ids in the order they were acquired (round, then pool order)."""
        idx = np.flatnonzero(self.labeled_mask)
        idx = idx[np.argsort(self.acquired_round_[idx], kind="stable")]
        return [str(i) for i in self.ids[idx]]

    def labels_dict(self) -> dict[str, int]:
        """``id → 0/1`` of the labelled pairs."""
        idx = np.flatnonzero(self.labeled_mask)
        return {str(self.ids[i]): int(self.labels_[i]) for i in idx}

    def acquired(self) -> pd.DataFrame:
        """``id``, ``round``, ``label`` of every decided pair, by round."""
        idx = np.flatnonzero(self.decided_mask)
        df = pd.DataFrame({"id": self.ids[idx], "round": self.acquired_round_[idx], "label": self.labels_[idx]})
        return df.sort_values("round", kind="stable").reset_index(drop=True)

    def rows_of(self, ids: Any) -> np.ndarray:
        """Pool rows of pair ids (row ``i`` of ``pool.pairs`` and of every embedding matrix).

        Parameters
        ----------
        ids : str or sequence of str

        Returns
        -------
        (len(ids),) int64 array
            In the order of ``ids``.

        Raises
        ------
        KeyError
            When an id is not in the learner's pool; the message names the unknown ids (the first 10).
        """
        ids = [str(i) for i in np.atleast_1d(np.asarray(ids, dtype=object))]
        rows = self._index.get_indexer(ids).astype(np.int64)
        if (rows < 0).any():
            missing = [i for i, r in zip(ids, rows) if r < 0]
            more = f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""
            raise KeyError(f"{len(missing)} ids are not in the pool: {', '.join(missing[:10])}{more}")
        return rows

    def _rng(self, round_: int, purpose: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, int(round_), purpose])

    # ------------------------------------------------------------------ labelling
    def initialize(self, n: int, seed: int | None = None) -> list[str]:
        """Label ``n`` random pairs (round 0) with the pool's own labels: the simulation's starting set.

        Only pairs with a pool label are drawn. ``seed`` defaults to the learner's seed.

        Returns
        -------
        list of str
            The drawn ids.
        """
        truth = np.asarray(self.pool.labels, dtype=np.float64)
        avail = np.flatnonzero(~np.isnan(truth) & ~self.decided_mask)
        if n > len(avail):
            raise ValueError(f"cannot draw {n} initial pairs: only {len(avail)} labelled pairs are available")
        rng = np.random.default_rng([self.seed if seed is None else int(seed), 0, _PURPOSE_INIT])
        rows = np.sort(rng.choice(avail, size=int(n), replace=False))
        self._set(rows, truth[rows], 0)
        return [str(i) for i in self.ids[rows]]

    def label(self, ids: Any, labels: Any, round: int | None = None) -> None:  # noqa: A002
        """Record labels for pairs, from a person or an oracle.

        Parameters
        ----------
        ids : sequence of str
        labels : sequence
            1 / ``"a"`` = A preferred, 0 / ``"b"`` = B preferred; ``None``, NaN, ``"tie"`` or ``"skip"`` decide
            the pair without giving the model a label.
        round : int, optional
            Default: the round of the pending suggestion (``last_round_ + 1``).
        """
        rows = self.rows_of(ids)
        labels = list(np.atleast_1d(np.asarray(labels, dtype=object)))
        if len(labels) != len(rows):
            raise ValueError(f"{len(rows)} ids but {len(labels)} labels")
        values = np.array([_label_value(v) for v in labels], dtype=np.float64)
        r = self._pending_round() if round is None else int(round)
        self._set(rows, values, r)

    def unlabel(self, ids: Any) -> None:
        """Forget decisions (an Undo in the app): the pairs become candidates again."""
        rows = self.rows_of(ids)
        self.labels_[rows] = np.nan
        self.acquired_round_[rows] = -1

    def sync_from_store(self, store: LabelStore) -> None:
        """Make the labelled set equal to the active events of a :class:`balpm.store.LabelStore`.

        The store is the source of truth in a human session; ids that are not in this pool are ignored, and an
        event without a round counts as round 0.
        """
        df = store.active_labels()
        self.labels_[:] = np.nan
        self.acquired_round_[:] = -1
        if df.empty:
            return
        rows = self._index.get_indexer(df["pair_id"].astype(str))
        keep = rows >= 0
        rows = rows[keep]
        lab = df["label"].astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)[keep]
        rnd = df["round"].astype("Float64").fillna(0).to_numpy(dtype=np.float64)[keep].astype(np.int64)
        self.labels_[rows] = lab
        self.acquired_round_[rows] = rnd

    def _set(self, rows: np.ndarray, values: np.ndarray, round_: int) -> None:
        self.labels_[rows] = values
        self.acquired_round_[rows] = int(round_)

    def _pending_round(self) -> int:
        return self.last_round_ + 1

    # ------------------------------------------------------------------ model
    def _labels_key(self) -> str:
        m = self.labeled_mask
        h = hashlib.sha256(np.flatnonzero(m).astype(np.int64).tobytes())
        h.update(self.labels_[m].astype(np.int8).tobytes())
        h.update(json.dumps(self.model_params, sort_keys=True, default=str).encode())
        return h.hexdigest()

    @property
    def is_stale(self) -> bool:
        """True when the ensemble was not fitted on the current labelled set."""
        return self.ensemble_ is None or self._fitted_key != self._labels_key()

    def fit(self) -> ActiveLearner:
        """Train a fresh ensemble on the labelled pairs (seeded by ``(seed, round)``)."""
        from balpm.model import PreferenceEnsemble

        m = self.labeled_mask
        if not m.any():
            raise ValueError("no labelled pairs to fit on: call initialize() or label() first")
        r = self._pending_round()
        fit_seed = int(self._rng(r, _PURPOSE_FIT).integers(2**31 - 1))
        t0 = time.perf_counter()
        model = PreferenceEnsemble(**self.model_params, seed=fit_seed)
        model.fit(self.embeddings.a[m], self.embeddings.b[m], self.labels_[m])
        self.timings_["fit"] = time.perf_counter() - t0
        self.ensemble_ = model
        self._fitted_key = self._labels_key()
        self._fit_round = r
        return self

    def _ensure_fitted(self) -> None:
        if self.is_stale:
            self.fit()

    def member_proba(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Members' P(A ≻ B), ``(E, N)`` for the whole pool or ``(E, len(rows))``."""
        self._ensure_fitted()
        a, b = self.embeddings.a, self.embeddings.b
        if rows is not None:
            a, b = a[rows], b[rows]
        return self.ensemble_.predict_member_proba(a, b)

    # ------------------------------------------------------------------ acquisition
    def _policy(self) -> Policy:
        if self._policy_obj is None:
            from balpm.acquisition import get_policy

            self._policy_obj = get_policy(self.policy, **self.policy_params)
        return self._policy_obj

    def _needs_knn(self, policy: Policy) -> bool:
        flag = getattr(policy, "needs_knn", None)
        return bool(flag) if flag is not None else self.policy in _KNN_POLICIES

    def knn_graph(self) -> KnnGraph:
        """The kNN graph of the pool's prompts (built once, cached on disk beside the embedding cache)."""
        if self.knn_graph_ is None:
            self.knn_graph_ = load_or_build_knn(self.embeddings, self.knn_k, self.knn_cache_dir)
        return self.knn_graph_

    def suggest(self, batch_size: int | None = None, *, candidates: np.ndarray | None = None) -> pd.DataFrame:
        """Propose the next batch: fit if stale, score the undecided pairs, run the policy.

        Parameters
        ----------
        batch_size : int, optional
            Default: the learner's ``batch_size`` (fewer if fewer candidates remain).
        candidates : (N,) bool array, optional
            Restrict the choice further (e.g. to pairs the oracle can answer); decided pairs are always excluded.

        Returns
        -------
        pandas.DataFrame
            One row per pick, in pick order: ``pick``, ``round``, ``row`` (pool row), ``id``, ``prompt``,
            ``completion_a``, ``completion_b``, ``uncertainty`` (BALD, nats), ``entropy_term`` (β·Ĥ; NaN for
            policies without one), ``score``, ``ratio`` (uncertainty / score), ``cold_start`` (bool). Calling
            again without new labels returns the same batch.

        Notes
        -----
        Cold start: with no labelled pair (nothing to fit on; ties and skips are no labels) the batch is drawn
        uniformly at random among the candidates for every policy, seeded by ``(seed, round)`` like every other
        choice; ``uncertainty``, ``entropy_term``, ``score`` and ``ratio`` are NaN and ``cold_start`` is True.
        """
        from balpm.acquisition import AcquisitionInput, get_policy

        bs = self.batch_size if batch_size is None else int(batch_size)
        cand = ~self.decided_mask
        if candidates is not None:
            cand &= np.asarray(candidates, dtype=bool)
        bs = min(bs, int(cand.sum()))
        r = self._pending_round()
        if bs <= 0:
            self.last_selection_ = _empty_selection()
            return self.last_selection_
        cold = self.n_labeled_ == 0
        if not cold:
            self._ensure_fitted()
        t0 = time.perf_counter()
        # cold start: nothing to fit on, so the first batch is uniformly random whatever the policy
        u = None if cold else unc.bald(self.member_proba())
        t1 = time.perf_counter()
        policy = get_policy("random") if cold else self._policy()
        knn = self.knn_graph() if self._needs_knn(policy) else None
        inp = AcquisitionInput(
            uncertainty=u,
            candidates=cand,
            acquired=self.decided_mask.copy(),
            prompt_embeddings=np.asarray(self.embeddings.prompt),
            knn=knn,
        )
        sel = policy.select(inp, bs, self._rng(r, _PURPOSE_SELECT))
        t2 = time.perf_counter()
        self.timings_["score"] = t1 - t0
        self.timings_["select"] = t2 - t1
        rows = np.asarray(sel.indices, dtype=np.int64)
        pairs = self.pool.pairs.iloc[rows]
        out = pd.DataFrame({
            "pick": np.arange(len(rows)),
            "round": r,
            "row": rows,
            "id": pairs["id"].astype(str).to_numpy(),
            "prompt": pairs["prompt"].to_numpy(),
            "completion_a": pairs["completion_a"].to_numpy(),
            "completion_b": pairs["completion_b"].to_numpy(),
            "uncertainty": np.asarray(sel.uncertainty, dtype=np.float64),
            "entropy_term": np.asarray(sel.entropy_term, dtype=np.float64),
            "score": np.asarray(sel.score, dtype=np.float64),
            "ratio": np.asarray(sel.ratio, dtype=np.float64),
            "cold_start": cold,
        })
        self.last_selection_ = out
        return out

    def oracle_step(self, batch_size: int | None = None) -> pd.DataFrame:
        """One simulated round: suggest among pairs with a pool label, then label them with the pool's labels."""
        truth = np.asarray(self.pool.labels, dtype=np.float64)
        sel = self.suggest(batch_size, candidates=~np.isnan(truth))
        if len(sel):
            self.label(sel["id"].to_numpy(), truth[sel["row"].to_numpy()], round=int(sel["round"].iloc[0]))
        return sel

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, test_pool: PreferencePool, test_embeddings: PoolEmbeddings) -> dict[str, float]:
        """Quality of the current ensemble on held-out pairs (their own labels): see :func:`preference_metrics`."""
        self._ensure_fitted()
        probs = self.ensemble_.predict_member_proba(test_embeddings.a, test_embeddings.b)
        return preference_metrics(probs, np.asarray(test_pool.labels, dtype=np.float64))

    # ------------------------------------------------------------------ persistence
    def get_params(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "policy_params": self.policy_params,
            "model_params": self.model_params,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "knn_k": self.knn_k,
        }

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the whole state to a folder, so that a reader finds one complete save whatever kills the writer.

        Each save writes its own files, ``state-<id>.npz``, ``ensemble-<id>.npz`` (if fitted) and
        ``last_selection-<id>.csv`` (if any), each atomically and checksummed, and then, last, ``learner.json``:
        the manifest naming those files with their sha256. Replacing the manifest is the one atomic step that
        switches to the new save; files no manifest names any more are removed afterwards. A save killed before
        that step (kill -9, power cut) leaves the previous save in force; :meth:`load` verifies every file
        against the manifest. Of two processes saving at once the later save normally wins; should the earlier
        commit after the later one cleared its files (a narrow race), :meth:`load` reports a
        :class:`LearnerStateError` and the session refits from the label database.

        The random state needs no file: it is a function of ``(seed, round)`` (module docstring).
        """
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        save_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        files: dict[str, dict[str, str]] = {}

        def put(part: str, write: Any) -> None:
            name = f"{part}-{save_id}{_PARTS[part]}"
            write(d / name)
            files[part] = {"name": name, "sha256": sha256_file(d / name)}

        put("state", lambda p: save_npz(p, {"labels": self.labels_, "acquired_round": self.acquired_round_}))
        if self.ensemble_ is not None:
            put("ensemble", lambda p: save_npz(p, self.ensemble_.state_dict()))
        if self.last_selection_ is not None:
            put("last_selection", lambda p: atomic_write_bytes(p, self.last_selection_.to_csv(index=False).encode()))
        meta = {
            "format_version": _FORMAT_VERSION,
            "save_id": save_id,
            "files": files,
            "params": self.get_params(),
            "pool_name": getattr(self.pool, "name", None),
            "n_pairs": int(len(self.labels_)),
            "ids_sha256": _ids_digest(self.ids),
            "embeddings_model_id": getattr(self.embeddings, "model_id", None),
            "fitted_key": self._fitted_key,
            "fit_round": self._fit_round,
            "rng": {"scheme": "numpy default_rng([seed, round, purpose])", "seed": self.seed},
            "timings": self.timings_,
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

    @classmethod
    def load(cls, directory: str | os.PathLike[str], pool: PreferencePool, embeddings: PoolEmbeddings,
             **overrides: Any) -> ActiveLearner:
        """Restore a learner saved by :meth:`save` on the same pool and embeddings, every file verified.

        ``overrides`` replace saved constructor parameters (e.g. ``knn_graph``, ``knn_cache_dir``). Folders
        written before manifests existed (format 1) still load; their ensemble is dropped (refit on demand) when
        it was not fitted on the saved labels.

        Raises
        ------
        LearnerStateError
            The folder cannot be trusted: unreadable or damaged files, a checksum mismatch, files missing. The
            labels are in the label database, so the caller rebuilds (:meth:`balpm.session.Session.make_learner`).
        ValueError
            Saved for another pool or other embeddings, or by a newer balpm: not damage, just not this learner.
        """
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

    def __repr__(self) -> str:
        return (f"ActiveLearner(policy={self.policy!r}, pool={getattr(self.pool, 'name', '?')!r}, "
                f"n_labeled={self.n_labeled_}, last_round={self.last_round_})")


def _label_value(v: Any) -> float:
    if v is None:
        return np.nan
    if isinstance(v, str):
        s = v.strip().lower()
        if s in ("a", "1"):
            return 1.0
        if s in ("b", "0"):
            return 0.0
        if s in ("tie", "skip", ""):
            return np.nan
        raise ValueError(f"unknown label {v!r}: use 1/'a', 0/'b', or None/'tie'/'skip'")
    try:
        f = float(v)
    except (TypeError, ValueError):
        if v is pd.NA:
            return np.nan
        raise ValueError(f"unknown label {v!r}") from None
    if np.isnan(f):
        return np.nan
    if f not in (0.0, 1.0):
        raise ValueError(f"labels must be 0 or 1 (or None for a tie/skip), got {v!r}")
    return f


def _empty_selection() -> pd.DataFrame:
    cols = ["pick", "round", "row", "id", "prompt", "completion_a", "completion_b", "uncertainty", "entropy_term",
            "score", "ratio", "cold_start"]
    return pd.DataFrame({c: [] for c in cols}).astype({"cold_start": bool})


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
