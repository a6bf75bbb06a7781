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
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from balpm import uncertainty as unc
from balpm.learner_state import LearnerStateError, load_learner, save_learner, saved_selection
from balpm.metrics import expected_calibration_error, preference_metrics  # re-exported: lived here before
from balpm.neighbors import knn_cache_path, load_or_build_knn  # re-exported: they lived here

if TYPE_CHECKING:  # annotations only: the model and acquisition modules load when first used
    from balpm.acquisition import AcquisitionInput, Policy
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

_PURPOSE_INIT, _PURPOSE_SELECT, _PURPOSE_FIT = 0, 1, 2


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
        The last :meth:`suggest` result (in memory only: a session logs selections in ``selections.csv``).
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
        self._pool_scores: tuple[tuple, pd.DataFrame] | None = None  # score_pool's last answer and its key

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

    def knn_graph(self) -> KnnGraph:
        """The kNN graph of the pool's prompts (built once, cached on disk beside the embedding cache)."""
        if self.knn_graph_ is None:
            self.knn_graph_ = load_or_build_knn(self.embeddings, self.knn_k, self.knn_cache_dir)
        return self.knn_graph_

    def _acquisition_input(self, policy: Policy, u: np.ndarray | None, cand: np.ndarray) -> AcquisitionInput:
        from balpm.acquisition import AcquisitionInput

        return AcquisitionInput(uncertainty=u, candidates=cand, acquired=self.decided_mask.copy(),
                                prompt_embeddings=np.asarray(self.embeddings.prompt),
                                knn=self.knn_graph() if policy.needs_knn else None)

    def score_pool(self, *, refit: bool = True) -> pd.DataFrame:
        """What the policy scores every pair at before its next pick: one row per pool row, in pool order, with
        ``id``, ``uncertainty`` (BALD), ``entropy_term`` (β·Ĥ, NaN for policies without one), ``score`` and
        ``candidate`` (undecided). A pair :meth:`suggest` picks first has these very numbers.

        ``refit=False`` scores with the ensemble as last fitted, even if labels came since (for a quick view);
        ValueError when nothing has been fitted then.
        """
        if refit:
            self._ensure_fitted()
        elif self.ensemble_ is None:
            raise ValueError("no fitted ensemble to score with: call fit() or score_pool(refit=True)")
        cand = ~self.decided_mask
        key = (id(self.ensemble_), hashlib.sha256(cand.tobytes()).hexdigest(), self.policy,
               json.dumps(self.policy_params, sort_keys=True, default=str))
        if self._pool_scores is not None and self._pool_scores[0] == key:  # a page rerun: nothing changed
            return self._pool_scores[1].copy()
        policy = self._policy()
        bald = unc.bald(self.ensemble_.predict_member_proba(self.embeddings.a, self.embeddings.b))
        u, bh, s = policy.pool_scores(self._acquisition_input(policy, bald, cand))
        out = pd.DataFrame({"id": self.pool.pairs["id"].astype(str).to_numpy(),
                            "uncertainty": np.asarray(u, np.float64), "entropy_term": np.asarray(bh, np.float64),
                            "score": np.asarray(s, np.float64), "candidate": cand})
        self._pool_scores = (key, out)
        return out.copy()

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
        from balpm.acquisition import get_policy

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
        sel = policy.select(self._acquisition_input(policy, u, cand), bs, self._rng(r, _PURPOSE_SELECT))
        t2 = time.perf_counter()
        self.timings_["score"] = t1 - t0
        self.timings_["select"] = t2 - t1
        out = sel.to_frame(self.pool.pairs, round=r, cold_start=cold)
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

        Each save writes its own files, ``state-<id>.npz`` and ``ensemble-<id>.npz`` (if fitted), each
        atomically and checksummed, and then, last, ``learner.json``:
        the manifest naming those files with their sha256. Replacing the manifest is the one atomic step that
        switches to the new save; files no manifest names any more are removed afterwards. A save killed before
        that step (kill -9, power cut) leaves the previous save in force; :meth:`load` verifies every file
        against the manifest. Of two processes saving at once the later save normally wins; should the earlier
        commit after the later one cleared its files (a narrow race), :meth:`load` reports a
        :class:`LearnerStateError` and the session refits from the label database.

        The random state needs no file: it is a function of ``(seed, round)`` (module docstring).
        """
        return save_learner(self, directory)

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
        return load_learner(cls, directory, pool, embeddings, **overrides)

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
    from balpm.acquisition import SELECTION_COLUMNS

    return pd.DataFrame({c: [] for c in SELECTION_COLUMNS}).astype({"cold_start": bool})
