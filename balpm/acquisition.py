"""Acquisition policies: which unlabelled pairs to send for labelling next.

Policies are small objects with one method, ``select(inp, batch_size, rng) -> Selection``, looked up by name
(:data:`POLICIES`, :func:`get_policy`). Scores are composable: the stochastic policies of Kirsch et al. (2023,
"Stochastic Batch Acquisition") wrap a base score (BALD by default) and only change how a batch is drawn from it.

BAL-PM (Melo et al. 2024) adds a diversity bonus to BALD and picks greedily::

    score(x) = U(x) + β · Ĥ(x),      Ĥ(x) = log(2 r_k(x) + ε) − ψ(n(x) + 1) / d

where ``U`` is BALD, ``r_k`` the distance from x's prompt embedding to its k-th nearest other prompt embedding
(pool and acquired together), and ``n(x)`` the number of acquired prompts (labelled + picked earlier in this
batch) within ``r_k(x)`` of x, ties included. Ĥ is the Kozachenko-Leonenko estimate of the entropy of the
acquired prompt distribution, read at x: it is high where few prompts have been acquired nearby, so BAL-PM
spreads its batch over the prompt space instead of spending it on one uncertain topic.

Speed: ``r_k`` and the balls never change during a run (:class:`balpm.neighbors.KnnGraph`, built once and cached);
acquiring point p raises ``n`` only for the points whose ball contains p (``graph.members_of(p)``, about k of
them). Scores only change there, so a batch reads the candidates in initial-score order (sorted lazily, block
by block) against a heap of the changed scores: O(N) once, then O(k log) per pick; no distances are computed.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import digamma

from balpm.neighbors import KnnGraph, build_knn_graph

__all__ = [
    "AcquisitionInput",
    "Selection",
    "SELECTION_COLUMNS",
    "SCORE_COLUMNS",
    "Policy",
    "RandomPolicy",
    "TopScorePolicy",
    "StochasticPolicy",
    "BalPMPolicy",
    "EntropyPolicy",
    "PolicyParam",
    "POLICIES",
    "get_policy",
    "policy_names",
    "canonical_policy_name",
    "policy_parameters",
    "all_policy_parameters",
    "policy_params_from",
    "balpm_select",
    "balpm_greedy",
    "entropy_term",
    "auto_beta",
    "robust_spread",
    "bald_score",
]

RngLike = np.random.Generator | int | None


# --------------------------------------------------------------------------------------------- data classes


@dataclass
class AcquisitionInput:
    """Everything a policy may look at, over all N pairs of the pool table.

    Attributes
    ----------
    uncertainty : (N,) float or None
        BALD of every pair (only ``random`` and ``entropy`` accept None).
    candidates : (N,) bool
        Pairs that may be picked (unlabelled, in the training split).
    acquired : (N,) bool
        Pairs already labelled (count towards BAL-PM's ``n(x)``).
    prompt_embeddings : (N, d) or None
        Needed by ``bal-pm``/``entropy`` only when ``knn`` is None.
    knn : KnnGraph or None
        Prebuilt graph over the same N prompt embeddings (the learner caches it).
    """

    uncertainty: np.ndarray | None
    candidates: np.ndarray
    acquired: np.ndarray
    prompt_embeddings: np.ndarray | None = None
    knn: KnnGraph | None = None

    def __post_init__(self) -> None:
        self.candidates = np.asarray(self.candidates, dtype=bool)
        self.acquired = np.asarray(self.acquired, dtype=bool)
        n = self.candidates.shape[0]
        if self.candidates.ndim != 1 or self.acquired.shape != (n,):
            raise ValueError("candidates and acquired must be (N,) boolean arrays of the same length")
        if self.uncertainty is not None:
            self.uncertainty = np.asarray(self.uncertainty, dtype=np.float64)
            if self.uncertainty.shape != (n,):
                raise ValueError(f"uncertainty must have shape ({n},), got {self.uncertainty.shape}")
        if self.knn is not None and self.knn.n_points != n:
            raise ValueError(f"knn graph has {self.knn.n_points} points, the pool has {n}")

    @property
    def n(self) -> int:
        return int(self.candidates.shape[0])

    def selectable(self) -> np.ndarray:
        """Candidates that are not already acquired."""
        return self.candidates & ~self.acquired

    def require_uncertainty(self, who: str) -> np.ndarray:
        if self.uncertainty is None:
            raise ValueError(f"policy {who!r} needs AcquisitionInput.uncertainty")
        u = self.uncertainty
        if np.isnan(u[self.selectable()]).any():
            raise ValueError("uncertainty is NaN for some candidates")
        return u


@dataclass
class Selection:
    """A batch in pick order, with what each pick scored.

    ``uncertainty`` is U (BALD) of each pick, ``entropy_term`` β·Ĥ (NaN for policies without one), ``score`` what
    the policy ranked by before any noise (NaN for ``random``), ``ratio`` = U / score (how much of BAL-PM's score
    came from uncertainty; 1 for ``bald``; NaN where undefined). ``beta`` is the β the batch was picked with
    (the number :func:`auto_beta` chose under ``beta="auto"``); None (NaN in the frame) for policies without one.
    """

    indices: np.ndarray
    uncertainty: np.ndarray
    entropy_term: np.ndarray
    score: np.ndarray
    ratio: np.ndarray
    policy: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    beta: float | None = None

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    def to_frame(self, pool_pairs: Any = None, *, round: int | None = None,  # noqa: A002
                 cold_start: bool = False) -> Any:
        """pandas DataFrame, one row per pick, in the one layout of a selection (:data:`SELECTION_COLUMNS`):
        ``pick``, ``row`` (index into the pool table) and the scores; with the pool's ``pairs`` table (and the
        round) also ``round``, ``id``, ``prompt``, ``completion_a``, ``completion_b`` and ``cold_start`` in their
        places, which is what :meth:`balpm.learner.ActiveLearner.suggest` returns."""
        import pandas as pd

        rows = np.asarray(self.indices, dtype=np.int64)
        cols: dict[str, Any] = {"pick": np.arange(len(rows)), "round": round, "row": rows}
        if pool_pairs is not None:
            pairs = pool_pairs.iloc[rows]
            cols["id"] = pairs["id"].astype(str).to_numpy()
            for c in ("prompt", "completion_a", "completion_b"):
                cols[c] = pairs[c].to_numpy()
        for c in SCORE_COLUMNS:
            v = getattr(self, c)
            cols[c] = np.full(len(rows), np.nan if v is None else v, np.float64) if c == "beta" else np.asarray(
                v, dtype=np.float64)
        if pool_pairs is not None:
            cols["cold_start"] = bool(cold_start)
        return pd.DataFrame({c: cols[c] for c in SELECTION_COLUMNS if c in cols and cols[c] is not None})


SCORE_COLUMNS = ("uncertainty", "entropy_term", "score", "ratio", "beta")
"""What every pick scored: BALD, β·Ĥ (NaN without one), the policy's score, U / score, and the β of its batch (NaN
without one; it changes from round to round under ``beta="auto"``)."""
SELECTION_COLUMNS = ("pick", "round", "row", "id", "prompt", "completion_a", "completion_b", *SCORE_COLUMNS,
                     "cold_start")
"""The one layout of a selection: :meth:`Selection.to_frame` and ``ActiveLearner.suggest`` build it."""


def _ratio(u: np.ndarray, s: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s != 0, u / np.where(s != 0, s, 1.0), np.nan)


def _rng(rng: RngLike) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


def _clip_batch(batch_size: int, available: int) -> int:
    if batch_size < 0:
        raise ValueError("batch_size must be ≥ 0")
    return int(min(batch_size, available))


# --------------------------------------------------------------------------------------------- the maths


def entropy_term(radius: ArrayLike, n: ArrayLike, d: float = 1.0, eps: float = 1e-4) -> np.ndarray:
    """Ĥ(x) = log(2 r_k(x) + ε) − ψ(n(x) + 1) / d  (float64), without β."""
    r = np.asarray(radius, dtype=np.float64)
    return np.log(2.0 * r + eps) - digamma(np.asarray(n, dtype=np.float64) + 1.0) / d


def robust_spread(x: ArrayLike) -> float:
    """Spread of ``x`` that a few extreme values do not set: the interquartile range, or, when at least half the
    values are equal (IQR 0), the standard deviation; 0 only when all finite values are equal (or none is)."""
    v = np.asarray(x, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size < 2:
        return 0.0
    tol = 64 * np.finfo(np.float64).eps * float(np.max(np.abs(v)))  # rounding noise of equal values is no spread
    q25, q75 = np.quantile(v, [0.25, 0.75])
    iqr = float(q75 - q25)
    if iqr > tol:
        return iqr
    sd = float(np.std(v))
    return sd if sd > tol else 0.0


def auto_beta(uncertainty: ArrayLike, entropy: ArrayLike, d: float = 1.0) -> float:
    """β for ``beta="auto"``: the one that gives BALD and the entropy term the same spread over the candidates,
    ``β = spread(U) / spread(Ĥ)`` (:func:`robust_spread`, over the candidates' BALD and Ĥ before the first pick).

    Why: what decides a pick is how the scores of candidates *differ*, not their level. With a fixed β the
    balance between the two terms is set by the scale of BALD, which is not stable: right after a small initial
    set the ensemble's members barely disagree (BALD 1e-5 to 1e-3 nats) while Ĥ spans about a nat, so at the
    paper's β = 0.01 the first rounds are entropy-only picks, and later BALD can dominate. Matching the spreads
    lets each term move a candidate's rank by the same amount in every round, on every dataset and feature
    model, with no tuning. The IQR (not the range or the standard deviation) keeps a few isolated prompts
    (huge ``r_k``) or one outlying BALD from setting the scale.

    Guards: BALD equal on all candidates (spread 0): β = 1, since then only Ĥ orders the picks and any β > 0
    gives the same batch. Ĥ equal on all candidates (same radius and count everywhere): the spread of Ĥ is taken
    as 1/d, its change when a ball that held no acquired prompt gets one (ψ(2) − ψ(1) = 1), which is how Ĥ
    varies within the batch. The rule is deterministic: the same scores give the same β.
    """
    su = robust_spread(uncertainty)
    if su <= 0:
        return 1.0
    sh = robust_spread(entropy)
    if sh <= 0:
        sh = 1.0 / d if d > 0 else 1.0
    return su / sh


class _GreedyState:
    """What a greedy BAL-PM batch updates pick by pick: the counts ``n``, the candidates, the picks so far.

    One expression computes the initial and the incremental scores, so they are bitwise identical whichever
    order the points are visited in: that is what lets the ``heap`` and ``argmax`` selections agree pick for pick.
    """

    def __init__(self, graph: KnnGraph, wU: np.ndarray, cand: np.ndarray, acq: np.ndarray, B: int, beta: float,
                 d: float, eps: float) -> None:
        self.graph, self.wU, self.cand, self.beta = graph, wU, cand, beta
        self.logr = graph.log_radius(eps)
        self.n = graph.count_in_ball(acq)
        # n grows by at most one per pick, so ψ is tabulated up to the largest count reachable in this batch
        self.psi_d = digamma(np.arange(int(self.n.max(initial=0)) + B + 2, dtype=np.float64) + 1.0) / d
        self.out_i = np.empty(B, np.int64)
        self.out_bh = np.empty(B)
        self.out_s = np.empty(B)

    def score_of(self, idx: np.ndarray | int) -> np.ndarray:
        """``w·U + β·Ĥ`` of ``idx`` at the current counts (not clipped)."""
        return self.wU[idx] + self.beta * (self.logr[idx] - self.psi_d[self.n[idx]])

    def initial_scores(self) -> np.ndarray:
        """(N,) scores, ``-inf`` for non-candidates, candidates clipped above it; NaN is an error."""
        s = self.wU + self.beta * (self.logr - self.psi_d[self.n])  # score_of(all), without an index gather
        s = np.where(self.cand, np.maximum(s, _LOWEST), -np.inf)
        if np.isnan(s).any():
            raise ValueError("uncertainty is NaN for some candidates")
        return s

    def take(self, t: int, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Record ``i`` as pick ``t``, count it in the balls that hold it; return those still candidates and their
        new (clipped) scores."""
        self.out_i[t], self.out_s[t] = i, self.score_of(i)
        self.out_bh[t] = self.beta * (self.logr[i] - self.psi_d[self.n[i]])
        self.cand[i] = False
        mem = self.graph.members_of(i)
        self.n[mem] += 1
        live = mem[self.cand[mem]]
        return live, np.maximum(self.score_of(live), _LOWEST)


_LOWEST = -np.finfo(np.float64).max  # a candidate's score stays above the -inf of non-candidates


def _prefix_block(batch_size: int) -> int:
    """First block of the sorted prefix: the picks plus room for the points whose score changed."""
    return 4 * batch_size + 64


class _SortedPrefix:
    """Candidates in (initial score descending, index ascending) order, sorted only as far as it is read.

    The first ``block`` points come from one ``argpartition`` (O(N)); ties at the cut are all kept, so the prefix
    is exactly the head of the full order. Reading past it sorts the next, twice as long, block.
    """

    def __init__(self, score: np.ndarray, block: int) -> None:
        self.score = score
        self.left = int(np.count_nonzero(score > -np.inf))  # candidates not yet in the prefix
        self.below = np.inf  # every point not yet in the prefix scores < below
        self.block = max(1, block)
        self.order = np.empty(0, np.int64)
        self.pos = 0

    def _extend(self) -> None:
        s = self.score if self.below == np.inf else np.where(self.score < self.below, self.score, -np.inf)
        m = min(self.block, self.left)
        cut = np.partition(s, len(s) - m)[len(s) - m]  # the m-th largest remaining score
        new = np.flatnonzero(s >= cut)  # ascending index; ties at the cut all come in
        new = new[np.argsort(-s[new], kind="stable")]
        self.order = np.concatenate([self.order[self.pos:], new])
        self.pos = 0
        self.left -= len(new)
        self.below = cut
        self.block *= 2

    def peek(self, skip: np.ndarray) -> int:
        """First point of the order with ``skip`` False (advancing past the others); -1 when none is left."""
        while True:
            while self.pos < len(self.order) and skip[self.order[self.pos]]:
                self.pos += 1
            if self.pos < len(self.order):
                return int(self.order[self.pos])
            if self.left == 0:
                return -1
            self._extend()


def balpm_greedy(
    graph: KnnGraph,
    uncertainty: ArrayLike | None,
    candidates: ArrayLike,
    acquired: ArrayLike,
    batch_size: int,
    beta: float = 0.01,
    d: float = 1.0,
    eps: float = 1e-4,
    uncertainty_weight: float = 1.0,
    method: str = "heap",
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Greedy BAL-PM batch on a prebuilt graph: the lower-level entry the policies and :func:`balpm_select` use.

    ``score = w·U + β·Ĥ`` with ``w = uncertainty_weight`` (0 gives the pure-diversity ``entropy`` policy).
    U is fixed within the batch; after each pick ``n`` grows by one for the points whose ball holds the pick.
    Equal scores go to the lowest index.

    Parameters
    ----------
    method : {"heap", "argmax"}
        ``heap`` (default) reads the candidates in initial-score order, sorted lazily block by block
        (one O(N) partition, then O(block log block)), against a heap of the points whose score changed
        (O(k log) per pick): about O(N + B·k log) in all, 320 picks at 1M in milliseconds. ``argmax`` scans the
        (N,) score array per pick (O(B·N)): the plain definition, kept as the reference. Both return the same
        picks, ties included (``tests/test_acquisition.py`` checks them against the pre-issue-14 code);
        ``benchmarks/acquisition.py`` times them.

    Returns
    -------
    indices, U, beta_H, score : (B,) arrays in pick order (``beta_H`` is β·Ĥ at pick time).
    """
    n_pts = graph.n_points
    cand = np.asarray(candidates, dtype=bool) & ~np.asarray(acquired, dtype=bool)
    acq = np.asarray(acquired, dtype=bool)
    if cand.shape != (n_pts,) or acq.shape != (n_pts,):
        raise ValueError(f"masks must have shape ({n_pts},)")
    if uncertainty is None:
        if uncertainty_weight != 0:
            raise ValueError("uncertainty is required unless uncertainty_weight == 0")
        U = np.zeros(n_pts)
    else:
        U = np.asarray(uncertainty, dtype=np.float64)
        if U.shape != (n_pts,):
            raise ValueError(f"uncertainty must have shape ({n_pts},)")
    if method not in ("heap", "argmax"):
        raise ValueError(f"unknown method {method!r} (use 'heap' or 'argmax')")
    B = _clip_batch(batch_size, int(np.count_nonzero(cand)))
    st = _GreedyState(graph, U if uncertainty_weight == 1.0 else uncertainty_weight * U, cand, acq, B, beta, d,
                      eps)
    score = st.initial_scores()

    if method == "argmax":
        for t in range(B):
            i = int(np.argmax(score))
            live, new = st.take(t, i)
            score[i] = -np.inf
            score[live] = new
    else:
        prefix = _SortedPrefix(score, block=_prefix_block(B))
        skip = ~cand  # picked, or score changed (then the heap holds its current score, not the prefix)
        version = np.zeros(n_pts, np.int64)
        heap: list[tuple[float, int, int]] = []
        for t in range(B):
            while heap and (not cand[heap[0][1]] or heap[0][2] != version[heap[0][1]]):
                heapq.heappop(heap)
            j = prefix.peek(skip)
            if heap and (j < 0 or (heap[0][0], heap[0][1]) < (-score[j], j)):
                i = heapq.heappop(heap)[1]
            else:
                i = j
            live, new = st.take(t, i)
            skip[i] = True
            if live.size:
                skip[live] = True
                version[live] += 1
                for v, s in zip(live.tolist(), new.tolist()):
                    heapq.heappush(heap, (-s, v, int(version[v])))
    return st.out_i, U[st.out_i], st.out_bh, st.out_s


def balpm_select(
    pool_prompt_emb: ArrayLike,
    acquired_prompt_emb: ArrayLike,
    uncertainty: ArrayLike,
    batch_size: int,
    beta: float = 0.01,
    k: int = 13,
    d: float = 1.0,
    eps: float = 1e-4,
    **knn_kwargs: Any,
) -> np.ndarray:
    """BAL-PM batch from raw embeddings: pool row indices in pick order.

    Builds the kNN graph over pool ∪ acquired (extra keyword arguments go to
    :func:`balpm.neighbors.build_knn_graph`). In a loop over rounds, build the graph once and use
    :class:`BalPMPolicy` (or :func:`balpm_greedy`) instead.
    """
    P = np.asarray(pool_prompt_emb)
    A = np.asarray(acquired_prompt_emb)
    if A.size == 0:
        A = np.empty((0, P.shape[1]), P.dtype)
    if P.ndim != 2 or A.ndim != 2 or P.shape[1] != A.shape[1]:
        raise ValueError("pool and acquired embeddings must be 2-D with the same width")
    n_pool = P.shape[0]
    U = np.asarray(uncertainty, dtype=np.float64)
    if U.shape != (n_pool,):
        raise ValueError(f"uncertainty must have shape ({n_pool},), got {U.shape}")
    X = np.concatenate([P.astype(np.float32, copy=False), A.astype(np.float32, copy=False)])
    graph = build_knn_graph(X, k=k, **knn_kwargs)
    n_all = X.shape[0]
    cand = np.zeros(n_all, bool)
    cand[:n_pool] = True
    acq = ~cand
    idx, *_ = balpm_greedy(graph, np.concatenate([U, np.zeros(n_all - n_pool)]), cand, acq, batch_size,
                           beta=beta, d=d, eps=eps)
    return idx


# ------------------------------------------------------------------------------------------------ policies
#: The policy objects and their registry live in :mod:`balpm.policies`; they are importable from here too (lazily,
#: since that module builds on this one).
_FROM_POLICIES = frozenset({
    "PolicyParam", "Policy", "RandomPolicy", "TopScorePolicy", "StochasticPolicy", "BalPMPolicy",
    "EntropyPolicy", "SoftmaxBaldPolicy", "PowerBaldPolicy", "SoftrankBaldPolicy", "POLICIES", "get_policy",
    "policy_names", "canonical_policy_name", "policy_parameters", "all_policy_parameters", "policy_params_from",
    "bald_score",
})


if TYPE_CHECKING:  # for type checkers and linters; at run time __getattr__ imports them
    from balpm.policies import (  # noqa: F401
        PolicyParam, Policy, RandomPolicy, TopScorePolicy, StochasticPolicy, BalPMPolicy, EntropyPolicy,
        SoftmaxBaldPolicy, PowerBaldPolicy, SoftrankBaldPolicy, POLICIES, get_policy, policy_names,
        canonical_policy_name, policy_parameters, all_policy_parameters, policy_params_from, bald_score,
    )


def __getattr__(name: str) -> Any:
    if name in _FROM_POLICIES:
        from balpm import policies

        return getattr(policies, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
