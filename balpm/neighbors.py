"""The kNN graph of prompt embeddings that BAL-PM's entropy term needs (faiss).

BAL-PM scores a pair ``x`` with a Kozachenko-Leonenko style entropy estimate that needs, for every point,

- ``r_k(x)``: the Euclidean distance to its k-th nearest *other* point among all prompt embeddings (pool and
  acquired together), and
- the *ball* ``{j ≠ x : ||e_x − e_j|| ≤ r_k(x)}`` (ties included), whose acquired members are counted as ``n(x)``.

Pool ∪ acquired is the same set in every round, so both are computed once per dataset and embedding model and
cached beside the embeddings (:meth:`KnnGraph.save` / :meth:`KnnGraph.load`, :func:`cached_knn_graph`).
Acquisition then updates ``n`` in O(ball size) per pick through the transpose (:meth:`KnnGraph.members_of`).

Exactness and ties
------------------
faiss ranks neighbours by float32 squared distances (``|x|² + |y|² − 2 x·y``, which is not exactly 0 for
duplicates). We search ``k + extra`` neighbours, then recompute the distances of that list in float64 from the
coordinate differences (duplicates come out at exactly 0), re-sort by (distance, index) and read ``r_k`` there.
The ball keeps the listed points with ``dist ≤ r_k · (1 + tie_rtol)`` (``tie_rtol = 1e-6`` by default: equal
distances computed along different paths may differ in the last bits). When even the last listed point is in the
ball (within ``overflow_guard``), the ball may extend past the list — typically a prompt repeated more than
``k + extra`` times — and that point's ball is recomputed against all N points (float64 BLAS to filter
candidates, then exact float64 differences); duplicates of a vector share one such pass.

Exact search (``faiss.IndexFlatL2`` queried in chunks, or :class:`TorchFlatIndex` on a GPU: the same graph) is
the default up to ``approx_threshold`` points; above it an approximate index (IVF by default, or HNSW; knobs in
:class:`IndexTuning`) supplies the candidate lists, so ``r_k`` may be over-estimated for the points whose true
neighbours it missed: :func:`graph_fidelity` measures that share against exact search on sampled points, and
``exact=True`` asks for exact search at any size. Inputs may be float16/float32/float64 arrays or ``np.memmap``;
they are read in float32 chunks and nothing N×N is ever formed.
"""

from __future__ import annotations

import hashlib
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from numpy.typing import ArrayLike

from balpm.knn_index import (  # IndexTuning, TorchFlatIndex, knn_search, recall_at_k: re-exported
    IndexTuning,
    TorchFlatIndex,
    drop_self,
    knn_search,
    make_index,
    recall_at_k,
    row_chunks,
    rows_f32,
    tuning_with,
)
from balpm.safeio import DamagedFileError, ids_digest, load_npz, quarantine, save_npz

__all__ = [
    "KnnGraph",
    "build_knn_graph",
    "knn_search",
    "IndexTuning",
    "TorchFlatIndex",
    "recall_at_k",
    "embedding_fingerprint",
    "cached_knn_graph",
    "knn_cache_path",
    "load_or_build_knn",
    "exact_balls",
    "graph_fidelity",
]

_FORMAT_VERSION = 1
_ARRAYS = ("format_version", "k", "exact", "radius", "indptr", "indices", "t_indptr", "t_indices", "meta_keys",
           "meta_values")


# ----------------------------------------------------------------------------------------------------- graph


@dataclass
class KnnGraph:
    """Radii ``r_k`` and tie-exact balls of N points, with the transpose for O(k) acquisition updates.

    Attributes
    ----------
    k : int
        Neighbour rank that defines the radius (clamped to N − 1 for tiny sets).
    radius : (N,) float32
        ``r_k(i)``: distance to the k-th nearest other point.
    indptr, indices : CSR arrays
        Ball of point ``i`` is ``indices[indptr[i]:indptr[i+1]]`` (sorted by distance, then index).
    t_indptr, t_indices : CSR arrays
        Transpose: ``members_of(j)`` = points whose ball contains ``j`` (sorted by index).
    exact : bool
        Whether the neighbour search was exact.
    info : dict
        Build metadata (method, timings, overflow count, tie tolerance, fingerprint).
    """

    k: int
    radius: np.ndarray
    indptr: np.ndarray
    indices: np.ndarray
    t_indptr: np.ndarray
    t_indices: np.ndarray
    exact: bool = True
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_points(self) -> int:
        return int(self.radius.shape[0])

    def __len__(self) -> int:
        return self.n_points

    @property
    def ball_sizes(self) -> np.ndarray:
        """(N,) number of points in each ball (≥ k; more when there are ties at ``r_k``)."""
        return np.diff(self.indptr)

    def ball(self, i: int) -> np.ndarray:
        """Indices ``j ≠ i`` with ``||x_i − x_j|| ≤ r_k(i)``."""
        return self.indices[self.indptr[i] : self.indptr[i + 1]]

    def members_of(self, j: int) -> np.ndarray:
        """Indices ``i`` whose ball contains ``j`` (whose ``n`` grows when ``j`` is acquired)."""
        return self.t_indices[self.t_indptr[j] : self.t_indptr[j + 1]]

    def count_in_ball(self, mask: ArrayLike) -> np.ndarray:
        """(N,) int64: for every point, how many points of ``mask`` lie in its ball (``n(x)`` of BAL-PM).

        Read through the transpose: each masked point adds one to the balls that hold it, so the cost is the
        masked points' member lists (the acquired set, a few % of N), not all N balls.
        """
        m = np.asarray(mask, dtype=bool)
        if m.shape != (self.n_points,):
            raise ValueError(f"mask must have shape ({self.n_points},), got {m.shape}")
        js = np.flatnonzero(m)
        starts, lens = self.t_indptr[js], self.t_indptr[js + 1] - self.t_indptr[js]
        # positions starts[q] .. starts[q] + lens[q] - 1 of every masked q, concatenated
        pos = np.arange(int(lens.sum()), dtype=np.int64) + np.repeat(starts - np.cumsum(lens) + lens, lens)
        return np.bincount(self.t_indices[pos], minlength=self.n_points).astype(np.int64)

    def log_radius(self, eps: float) -> np.ndarray:
        """(N,) float64 ``log(2 r_k + ε)``, the radius part of BAL-PM's Ĥ; computed once per ``eps`` and kept
        (the radii never change, and at 1M points the log is a good part of a batch's selection time)."""
        cache = self.__dict__.setdefault("_log_radius", {})
        if eps not in cache:
            cache.clear()
            cache[eps] = np.log(2.0 * self.radius.astype(np.float64) + eps)
            cache[eps].flags.writeable = False
        return cache[eps]

    # -- persistence -------------------------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write a checksummed ``.npz`` atomically (uncompressed: loading must be fast). Returns the path written."""
        meta = {k: v for k, v in self.info.items() if isinstance(v, (str, int, float, bool)) or v is None}
        return save_npz(Path(path), {
            "format_version": np.int64(_FORMAT_VERSION),
            "k": np.int64(self.k),
            "exact": np.bool_(self.exact),
            "radius": self.radius,
            "indptr": self.indptr,
            "indices": self.indices,
            "t_indptr": self.t_indptr,
            "t_indices": self.t_indices,
            "meta_keys": np.array(list(meta.keys()), dtype=str),
            "meta_values": np.array([repr(v) for v in meta.values()], dtype=str),
        })

    @classmethod
    def load(cls, path: str | os.PathLike) -> "KnnGraph":
        """Read a graph written by :meth:`save`, verified.

        Raises :class:`balpm.safeio.DamagedFileError` (a ``ValueError`` naming the file) when the file is
        unreadable, fails its checksum, or (files written before checksums) its arrays do not fit together.
        """
        import ast

        path = Path(path)
        z = load_npz(path, required=_ARRAYS)
        if int(z["format_version"]) != _FORMAT_VERSION:
            raise ValueError(f"{path}: unsupported KnnGraph format {int(z['format_version'])}")
        n = int(z["radius"].shape[0]) if z["radius"].ndim == 1 else -1
        for ptr, idx in (("indptr", "indices"), ("t_indptr", "t_indices")):
            p, i = z[ptr], z[idx]
            if n < 1 or p.shape != (n + 1,) or i.ndim != 1 or int(p[0]) != 0 or int(p[-1]) != len(i) \
                    or np.any(np.diff(p) < 0) or (len(i) and (int(i.min()) < 0 or int(i.max()) >= n)):
                raise DamagedFileError(path, f"{ptr}/{idx} {p.shape}/{i.shape} are not a graph of {n} points")
        try:
            info = {str(k): ast.literal_eval(str(v)) for k, v in zip(z["meta_keys"], z["meta_values"], strict=True)}
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
            raise DamagedFileError(path, f"unreadable metadata ({type(e).__name__}: {e})") from e
        return cls(
            k=int(z["k"]),
            radius=z["radius"],
            indptr=z["indptr"],
            indices=z["indices"],
            t_indptr=z["t_indptr"],
            t_indices=z["t_indices"],
            exact=bool(z["exact"]),
            info=info,
        )


# ------------------------------------------------------------------------------------------------------ build


def _exact_dists(X: Any, rows: np.ndarray, idx: np.ndarray, block: int = 256) -> np.ndarray:
    """float64 distances from X[rows[i]] to X[idx[i, :]] from coordinate differences (exactly 0 for duplicates).

    Blocks of 256 rows keep the float64 neighbour copy (256 × m × d) in cache: 2.5x less CPU than 1024 rows
    (measured at d = 384, m = 21); the result does not depend on the block.
    """
    out = np.empty(idx.shape, np.float64)
    for a, b in row_chunks(len(rows), block):
        q = np.asarray(X[rows[a:b]], dtype=np.float64)
        ib = idx[a:b]
        nb = np.asarray(X[np.where(ib < 0, 0, ib).ravel()], dtype=np.float64).reshape(ib.shape + (q.shape[1],))
        nb -= q[:, None, :]
        out[a:b] = np.sqrt(np.einsum("imd,imd->im", nb, nb))
    out[idx < 0] = np.inf
    return out


def _brute_force_balls(
    X: Any, rows: np.ndarray, thr: np.ndarray, chunk_size: int
) -> dict[int, np.ndarray]:
    """Exact balls ``{j ≠ i: dist(i, j) ≤ thr_i}`` against all N points for a few rows.

    Duplicated vectors share one pass: candidates are found with float64 BLAS squared distances (with a slack
    that covers its round-off), then confirmed with exact float64 differences.
    """
    n, dim = X.shape
    Q = np.asarray(X[rows], dtype=np.float64)
    uniq, inverse = np.unique(Q, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    # per unique vector, the largest threshold among its rows (each row is filtered afterwards)
    uthr = np.full(len(uniq), -np.inf)
    np.maximum.at(uthr, inverse, thr)
    qn = np.einsum("ij,ij->i", uniq, uniq)
    cand: list[list[np.ndarray]] = [[] for _ in range(len(uniq))]
    for a, b in row_chunks(n, chunk_size):
        xc = np.asarray(X[a:b], dtype=np.float64)
        xn = np.einsum("ij,ij->i", xc, xc)
        for qa, qb in row_chunks(len(uniq), 256):  # bounds the (queries x chunk) float64 block
            d2 = qn[qa:qb, None] + xn[None, :] - 2.0 * (uniq[qa:qb] @ xc.T)
            slack = 1e-9 * (qn[qa:qb, None] + xn[None, :]) + 1e-12
            ui, cj = np.nonzero(d2 <= (uthr[qa:qb] ** 2)[:, None] * (1 + 1e-6) + slack)
            for u in np.unique(ui):
                cand[qa + u].append(cj[ui == u] + a)
    out: dict[int, np.ndarray] = {}
    for u in range(len(uniq)):
        cj = np.concatenate(cand[u]) if cand[u] else np.empty(0, np.int64)
        diff = np.asarray(X[cj], dtype=np.float64) - uniq[u]
        dist = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        order = np.lexsort((cj, dist))
        cj, dist = cj[order], dist[order]
        for r in np.nonzero(inverse == u)[0]:
            i = int(rows[r])
            sel = (dist <= thr[r]) & (cj != i)
            out[i] = cj[sel].astype(np.int64)
    return out


@dataclass
class _Balls:
    """The build's working state: radii, ball entries found so far, rows whose ball needs the exhaustive pass."""

    radius: np.ndarray
    rows: list[np.ndarray] = field(default_factory=list)
    cols: list[np.ndarray] = field(default_factory=list)
    overflow: list[np.ndarray] = field(default_factory=list)
    overflow_thr: list[np.ndarray] = field(default_factory=list)


def _refine_lists(X: Any, rows: np.ndarray, ii: np.ndarray, k: int, tie_rtol: float, overflow_guard: float,
                  can_overflow: bool, balls: _Balls) -> None:
    """Re-rank one chunk's candidate lists in float64 (distance, then index), read r_k, keep the balls.

    A row whose last listed point is still within ``r_k · (1 + overflow_guard)`` (or whose list is short of k)
    may have a ball reaching past its list: it goes to :func:`_repair_overflow` instead.
    """
    n = X.shape[0]
    dist = _exact_dists(X, rows, ii)
    order = np.lexsort((np.where(ii < 0, n, ii), dist), axis=-1)
    dist = np.take_along_axis(dist, order, axis=1)
    ii = np.take_along_axis(ii, order, axis=1)
    r = dist[:, k - 1]
    thr = r * (1.0 + tie_rtol)
    inside = dist <= thr[:, None]
    ovf = ~np.isfinite(r)  # an approximate index found fewer than k neighbours
    if can_overflow:  # else the list already holds every other point
        ovf |= dist[:, -1] <= r * (1.0 + overflow_guard)
    balls.radius[rows] = r
    inside[ovf] = False
    rr, cc = np.nonzero(inside)
    balls.rows.append(rows[rr])
    balls.cols.append(ii[rr, cc])
    if ovf.any():
        balls.overflow.append(rows[ovf])
        balls.overflow_thr.append(thr[ovf])


def _search_phase(X: Any, index: Any, m: int, k: int, chunk_size: int, tie_rtol: float, overflow_guard: float,
                  progress: Callable[[int, int], None] | None) -> tuple[_Balls, float]:
    """Search ``m`` candidates per point chunk by chunk and refine them; returns the balls and the refine time."""
    n = X.shape[0]
    balls = _Balls(radius=np.empty(n, np.float64))
    t_refine = 0.0
    for a, b in row_chunks(n, chunk_size):
        rows = np.arange(a, b)
        if hasattr(index, "lists"):  # CellBlockedIndex: every list was searched at once, self excluded
            t_r = time.perf_counter()
            ii = index.lists[a:b]
        else:
            _, ii = index.search(rows_f32(X, a, b), m + 1)
            t_r = time.perf_counter()
            _, ii = drop_self(np.zeros_like(ii, dtype=np.float32), ii, rows)
        _refine_lists(X, rows, ii, k, tie_rtol, overflow_guard, m < n - 1, balls)
        t_refine += time.perf_counter() - t_r
        if progress is not None:
            progress(b, n)
    return balls, t_refine


def _repair_overflow(X: Any, k: int, tie_rtol: float, chunk_size: int, balls: _Balls) -> int:
    """Exhaustive balls (and, where the list was short, exact radii) for the rows flagged by the search."""
    if not balls.overflow:
        return 0
    orows = np.concatenate(balls.overflow)
    othr = np.concatenate(balls.overflow_thr)
    for i in np.nonzero(~np.isfinite(othr))[0]:  # fewer than k neighbours found: exact radius by brute force
        q = np.array([orows[i]])
        _, ii = knn_search(X, k, exact=True, queries=q, chunk_size=chunk_size, device="faiss")
        balls.radius[orows[i]] = np.sort(_exact_dists(X, q, ii)[0])[k - 1]
        othr[i] = balls.radius[orows[i]] * (1 + tie_rtol)
    for i, cols in _brute_force_balls(X, orows, othr, chunk_size=max(1024, chunk_size)).items():
        balls.rows.append(np.full(len(cols), i, np.int64))
        balls.cols.append(cols)
    return len(orows)


def _assemble(n: int, k: int, exact: bool, balls: _Balls, info: dict[str, Any]) -> KnnGraph:
    """CSR of the balls (rows in (distance, index) order) and of their transpose."""
    rows_all = np.concatenate(balls.rows).astype(np.int64)
    cols_all = np.concatenate(balls.cols).astype(np.int64)
    order = np.argsort(rows_all, kind="stable")  # keeps each searched row's (distance, index) order
    rows_all, cols_all = rows_all[order], cols_all[order]
    idx_dtype = np.int32 if n < 2**31 - 1 else np.int64
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows_all, minlength=n), out=indptr[1:])
    t_order = np.lexsort((rows_all, cols_all))
    t_indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(cols_all, minlength=n), out=t_indptr[1:])
    return KnnGraph(k=k, radius=balls.radius.astype(np.float32), indptr=indptr, indices=cols_all.astype(idx_dtype),
                    t_indptr=t_indptr, t_indices=rows_all[t_order].astype(idx_dtype), exact=bool(exact), info=info)


def _check_points(X: Any, k: int) -> tuple[Any, int, int]:
    """X as a 2-D array (memmaps kept), N, and k clamped to N − 1 (with a warning)."""
    if getattr(X, "ndim", None) != 2:
        X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"X must be 2-D (N, d); got shape {X.shape}")
    n = int(X.shape[0])
    if n < 2:
        raise ValueError("a kNN graph needs at least 2 points")
    if k < 1:
        raise ValueError("k must be ≥ 1")
    k_eff = int(min(k, n - 1))
    if k_eff < k:
        warnings.warn(f"only {n} points: k clamped from {k} to {k_eff}", stacklevel=3)
    return X, n, k_eff


def build_knn_graph(
    X: ArrayLike,
    k: int = 13,
    exact: bool | None = None,
    approx_threshold: int = 200_000,
    *,
    extra: int = 8,
    tie_rtol: float = 1e-6,
    overflow_guard: float = 1e-3,
    chunk_size: int = 8192,
    n_threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
    tuning: IndexTuning | None = None,
    **tuning_overrides: Any,
) -> KnnGraph:
    """Build the radii and tie-exact balls of N points (see the module docstring for the tie handling).

    Three phases: search ``k + extra`` candidates per point and re-rank them in float64
    (:func:`_search_phase`), exhaustive balls for the few rows whose ball may reach past their list
    (:func:`_repair_overflow`), CSR assembly with the transpose (:func:`_assemble`).

    Parameters
    ----------
    X : (N, d) array-like
        Prompt embeddings, any float dtype, may be a ``np.memmap``.
    k : int
        Neighbour rank of the radius (BAL-PM default 13).
    exact : bool or None
        ``None`` picks exact search up to ``approx_threshold`` points and ``tuning.method`` above.
    extra : int
        Neighbours searched beyond ``k`` so that ties at ``r_k`` rarely need the brute-force pass.
    tie_rtol : float
        Relative tolerance when comparing a distance with ``r_k`` (float round-off between equal distances).
    overflow_guard : float
        A point's ball is recomputed exhaustively when its last searched neighbour is within
        ``r_k · (1 + overflow_guard)``; covers float32 mis-ranking at the end of the searched list.
    chunk_size : int
        Query rows per search call (bounds the float32/float64 working memory).
    n_threads : int or None
        faiss OpenMP threads (``None`` leaves faiss' default).
    progress : callable or None
        ``progress(done, total)`` after each query chunk.
    tuning, **tuning_overrides
        :class:`IndexTuning` (index kind and knobs, exact search device); keywords override its fields
        (``method="ivf"``, ``ef_search=256``, ``device="cuda"``).
    """
    import faiss

    tuning = tuning_with(tuning, tuning_overrides)
    t0 = time.perf_counter()
    X, n, k_eff = _check_points(X, k)
    if exact is None:
        exact = n <= approx_threshold
    if n_threads is not None:
        faiss.omp_set_num_threads(int(n_threads))
    m = int(min(k_eff + extra, n - 1))

    index = make_index(X, exact, tuning, chunk_size, min_ef=m + 1, k=k_eff)
    t_index = time.perf_counter()
    balls, t_refine = _search_phase(X, index, m, k_eff, chunk_size, tie_rtol, overflow_guard, progress)
    index_info = dict(getattr(index, "info", {}))
    del index
    t_search = time.perf_counter()
    n_overflow = _repair_overflow(X, k_eff, tie_rtol, chunk_size, balls)
    t_overflow = time.perf_counter()
    device = tuning.exact_device() if exact else None
    method = tuning.method
    if method == "blocked" and not exact and not index_info:  # the cells ruled out too little: IVF was used
        method, index_info = "ivf", {"fallback": True}
    info = {"method": method if not exact else "flat" if device is None else f"torch-{device}", "n": n,
            "dim": int(X.shape[1]), "searched": m, "tie_rtol": float(tie_rtol), "n_overflow": int(n_overflow),
            "seconds_index": t_index - t0, "seconds_search": t_search - t_index - t_refine,
            "seconds_refine": t_refine, "seconds_overflow": t_overflow - t_search}
    info.update({f"blocked_{key}": v for key, v in index_info.items()})
    proven = bool(exact) or index_info.get("proven") == 1.0  # the cell-blocked search proved every list exact
    graph = _assemble(n, k_eff, proven, balls, info)
    graph.info["seconds_total"] = time.perf_counter() - t0
    return graph


def exact_balls(X: ArrayLike, rows: ArrayLike, k: int = 13, *, extra: int = 8, tie_rtol: float = 1e-6,
                overflow_guard: float = 1e-3, chunk_size: int = 8192) -> tuple[np.ndarray, list[np.ndarray]]:
    """Exact ``r_k`` and ball of a few rows (faiss flat search + the graph's float64 re-ranking and repair).

    What :func:`build_knn_graph` with ``exact=True`` computes for these rows, without building the rest: the
    reference :func:`graph_fidelity` checks an approximate graph against.
    """
    if getattr(X, "ndim", None) != 2:
        X = np.asarray(X)
    rows = np.asarray(rows, dtype=np.int64)
    n = X.shape[0]
    k = int(min(k, n - 1))
    m = int(min(k + extra, n - 1))
    balls = _Balls(radius=np.full(n, np.nan))
    index = make_index(X, True, IndexTuning(device="faiss"), chunk_size)
    for a, b in row_chunks(len(rows), chunk_size):
        r = rows[a:b]
        _, ii = index.search(np.ascontiguousarray(X[r], dtype=np.float32), m + 1)
        _, ii = drop_self(np.zeros_like(ii, dtype=np.float32), ii, r)
        _refine_lists(X, r, ii, k, tie_rtol, overflow_guard, m < n - 1, balls)
    del index
    _repair_overflow(X, k, tie_rtol, chunk_size, balls)
    rr, cc = np.concatenate(balls.rows), np.concatenate(balls.cols)
    order = np.argsort(rr, kind="stable")
    rr, cc = rr[order], cc[order]
    out = [np.sort(cc[np.searchsorted(rr, i) : np.searchsorted(rr, i, side="right")]) for i in rows]
    return balls.radius[rows], out


def graph_fidelity(X: ArrayLike, graph: KnnGraph, n_queries: int = 2000, seed: int = 0,
                   rtol: float = 0.01) -> dict[str, float]:
    """How close a graph's radii and balls are to exact search, on ``n_queries`` sampled points.

    The one check of a graph against exact search (``balpm.distributed.knn_recall_sample`` was folded in
    here). Returns ``radius_within`` (share of sampled points with ``r_k`` within ``rtol`` of exact: what
    BAL-PM's Ĥ reads through ``log r_k``), the relative ``r_k`` error ``radius_err_median`` /
    ``radius_err_p99`` / ``radius_err_max`` and ``radius_err_over_10pct`` (share off by more than 10%; an
    approximate search can only over-estimate), ``ball_equal`` (share whose ball is exactly the exact ball,
    hence the same ``n(x)`` for any acquired set), ``recall`` (mean share of the graph's k nearest that lie in
    the exact ball: recall@k, ties at ``r_k`` counted as found), ``queries`` and ``seconds`` (of the exact
    reference).
    """
    n = graph.n_points
    q = np.sort(np.random.default_rng(seed).choice(n, size=min(n_queries, n), replace=False))
    t = time.perf_counter()
    r_exact, balls = exact_balls(X, q, graph.k)
    secs = time.perf_counter() - t
    err = graph.radius[q].astype(np.float64) / np.maximum(r_exact, 1e-30) - 1.0
    err[r_exact == 0] = np.where(graph.radius[q][r_exact == 0] == 0, 0.0, np.inf)
    same = [np.array_equal(np.sort(graph.ball(int(i))), b) for i, b in zip(q, balls)]
    recall = [np.isin(graph.ball(int(i))[: graph.k], b).sum() / graph.k for i, b in zip(q, balls)]
    return {"radius_within": float(np.mean(np.abs(err) <= rtol)), "radius_err_median": float(np.median(err)),
            "radius_err_p99": float(np.quantile(err, 0.99)), "radius_err_max": float(err.max()),
            "radius_err_over_10pct": float(np.mean(err > 0.1)), "ball_equal": float(np.mean(same)),
            "recall": float(np.mean(recall)), "queries": int(len(q)), "seconds": secs}


# ------------------------------------------------------------------------------------------------------ cache


def embedding_fingerprint(X: ArrayLike, chunk_rows: int = 65536) -> str:
    """sha1 of the shape, dtype and bytes of X (chunked, works on memmaps): the cache key of a graph."""
    h = hashlib.sha1()
    h.update(repr((tuple(X.shape), str(np.dtype(X.dtype)))).encode())
    for a, b in row_chunks(X.shape[0], chunk_rows):
        h.update(np.ascontiguousarray(X[a:b]).tobytes())
    return h.hexdigest()


def cached_knn_graph(X: ArrayLike, path: str | os.PathLike, k: int = 13, **build_kwargs: Any) -> KnnGraph:
    """Load the graph at ``path`` if it was built from these very embeddings with this ``k``; else build and save.

    The embeddings' fingerprint (:func:`embedding_fingerprint`) is stored in the graph's ``info``. A damaged
    file (unreadable, checksum mismatch) is moved into ``quarantine/`` beside it with one
    :class:`balpm.safeio.DamagedFileWarning`, and the graph is rebuilt: a broken cache never stops a run.
    """
    path = Path(path)
    fp = embedding_fingerprint(X)
    try:
        g = KnnGraph.load(path)
        if g.info.get("fingerprint") == fp and g.info.get("k_requested", g.k) == k:
            return g
    except FileNotFoundError:
        pass
    except DamagedFileError as e:
        quarantine(path, e.reason, "the graph is rebuilt", stacklevel=2)
    except (OSError, ValueError, KeyError):
        pass  # another format version or an unreadable folder: rebuilt and replaced below
    g = build_knn_graph(X, k=k, **build_kwargs)
    g.info["fingerprint"] = fp
    g.info["k_requested"] = int(k)
    g.save(path)
    return g


def knn_cache_path(embeddings: Any, k: int, cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where the kNN graph of ``embeddings.prompt`` is cached: keyed by the model id, the pair ids and ``k``.

    The file also stores a fingerprint of the vectors (:func:`cached_knn_graph`), so a pool re-embedded with
    other settings (max length, pooling) rebuilds instead of reusing a stale graph.
    """
    if cache_dir is None:
        from balpm.embed import default_cache_dir

        cache_dir = Path(default_cache_dir()) / "knn"
    h = hashlib.sha256()
    h.update(str(getattr(embeddings, "model_id", "")).encode())
    h.update(ids_digest(np.asarray(embeddings.ids)).encode())
    h.update(f"k={int(k)}".encode())
    return Path(cache_dir) / f"knn-{h.hexdigest()[:24]}.npz"


def load_or_build_knn(embeddings: Any, k: int, cache_dir: str | os.PathLike[str] | None = None) -> KnnGraph:
    """The :class:`KnnGraph` of the prompt embeddings, from the cache or built once and cached."""
    path = knn_cache_path(embeddings, k, cache_dir)
    try:
        return cached_knn_graph(embeddings.prompt, path, k=int(k))
    except OSError:  # a read-only cache folder is not an error: build in memory
        return build_knn_graph(embeddings.prompt, k=int(k))
