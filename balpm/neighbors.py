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

Exact search (``faiss.IndexFlatL2``, queried in chunks) is the default below ``approx_threshold`` points; above
it an approximate index (HNSW by default, or IVF) is used, so ``r_k`` may be slightly over-estimated for a few
points (check with :func:`recall_at_k`). Inputs may be float16/float32/float64 arrays or ``np.memmap``; they are
read in float32 chunks and nothing N×N is ever formed.
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

from balpm.safeio import DamagedFileError, load_npz, quarantine, save_npz

__all__ = [
    "KnnGraph",
    "build_knn_graph",
    "knn_search",
    "recall_at_k",
    "embedding_fingerprint",
    "cached_knn_graph",
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


# ----------------------------------------------------------------------------------------------------- search


def _chunks(n: int, size: int):
    for start in range(0, n, size):
        yield start, min(n, start + size)


def _f32(X: Any, start: int, stop: int) -> np.ndarray:
    return np.ascontiguousarray(X[start:stop], dtype=np.float32)


def _make_index(
    X: Any, exact: bool, method: str, chunk_size: int, seed: int, hnsw_m: int, ef_construction: int, ef_search: int,
    nlist: int | None, nprobe: int,
):
    import faiss

    n, d = X.shape
    if exact:
        index = faiss.IndexFlatL2(d)
    elif method == "hnsw":
        index = faiss.IndexHNSWFlat(d, hnsw_m)
        index.hnsw.efConstruction = ef_construction
        index.hnsw.efSearch = ef_search
    elif method == "ivf":
        nlist = nlist or int(max(16, min(65536, 4 * np.sqrt(n))))
        quantizer = faiss.IndexFlatL2(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist)
        rng = np.random.default_rng(seed)
        n_train = min(n, 64 * nlist)
        sample = np.sort(rng.choice(n, size=n_train, replace=False))
        index.train(np.ascontiguousarray(X[sample], dtype=np.float32))
        index.nprobe = nprobe
    else:
        raise ValueError(f"unknown approximate method {method!r} (use 'hnsw' or 'ivf')")
    for a, b in _chunks(n, chunk_size):
        index.add(_f32(X, a, b))
    return index


def knn_search(
    X: ArrayLike,
    k: int,
    *,
    exact: bool = True,
    method: str = "hnsw",
    chunk_size: int = 16384,
    seed: int = 0,
    hnsw_m: int = 16,
    ef_construction: int = 40,
    ef_search: int = 64,
    nlist: int | None = None,
    nprobe: int = 16,
    queries: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Plain faiss kNN of every point (or of ``queries``, row indices into X) among X, self excluded.

    Returns ``(dist, idx)``, each ``(n_queries, k)``; ``dist`` are faiss float32 Euclidean distances (not
    squared), ``idx`` int64 with -1 where the index found too few. This is the baseline the graph is timed
    against, and what :func:`recall_at_k` compares.
    """
    n = X.shape[0]
    k = int(min(k, n - 1))
    index = _make_index(X, exact, method, chunk_size, seed, hnsw_m, ef_construction, max(ef_search, k + 1),
                        nlist, nprobe)
    q_rows = np.arange(n) if queries is None else np.asarray(queries, dtype=np.int64)
    D = np.empty((len(q_rows), k), np.float32)
    I = np.empty((len(q_rows), k), np.int64)
    for a, b in _chunks(len(q_rows), chunk_size):
        rows = q_rows[a:b]
        q = np.ascontiguousarray(X[rows], dtype=np.float32)
        d2, ii = index.search(q, k + 1)
        d2, ii = _drop_self(d2, ii, rows)
        D[a:b] = np.sqrt(np.maximum(d2, 0))
        I[a:b] = ii
    return D, I


def _drop_self(d2: np.ndarray, ii: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each query's own row from its (m+1)-long list, or the last entry when self is absent.

    Self is not always first: a duplicate at distance 0 may be listed before it, and a prompt repeated more
    often than the list is long may push it out of the list altogether.
    """
    is_self = ii == rows[:, None]
    drop = np.where(is_self.any(axis=1), np.argmax(is_self, axis=1), ii.shape[1] - 1)
    keep = np.ones(ii.shape, bool)
    keep[np.arange(len(rows)), drop] = False
    m = ii.shape[1] - 1
    return d2[keep].reshape(-1, m), ii[keep].reshape(-1, m)


def recall_at_k(approx: ArrayLike, exact: ArrayLike) -> float:
    """Mean fraction of the exact k nearest neighbours that the approximate search also returned.

    Both are ``(n_queries, k)`` index arrays (as from :func:`knn_search`); -1 entries never match.
    """
    a = np.asarray(approx)
    e = np.asarray(exact)
    if a.shape[0] != e.shape[0]:
        raise ValueError("approx and exact must have the same number of rows")
    hits = 0
    for ra, re in zip(a, e):
        hits += np.intersect1d(ra[ra >= 0], re, assume_unique=False).size
    return hits / e.size


# ------------------------------------------------------------------------------------------------------ build


def _exact_dists(X: Any, rows: np.ndarray, idx: np.ndarray, block: int = 1024) -> np.ndarray:
    """float64 distances from X[rows[i]] to X[idx[i, :]] from coordinate differences (exactly 0 for duplicates)."""
    out = np.empty(idx.shape, np.float64)
    for a, b in _chunks(len(rows), block):
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
    for a, b in _chunks(n, chunk_size):
        xc = np.asarray(X[a:b], dtype=np.float64)
        xn = np.einsum("ij,ij->i", xc, xc)
        for qa, qb in _chunks(len(uniq), 256):  # bounds the (queries x chunk) float64 block
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


def build_knn_graph(
    X: ArrayLike,
    k: int = 13,
    exact: bool | None = None,
    approx_threshold: int = 200_000,
    *,
    extra: int = 8,
    method: str = "hnsw",
    tie_rtol: float = 1e-6,
    overflow_guard: float = 1e-3,
    chunk_size: int = 8192,
    seed: int = 0,
    hnsw_m: int = 16,
    ef_construction: int = 40,
    ef_search: int = 64,
    nlist: int | None = None,
    nprobe: int = 16,
    n_threads: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> KnnGraph:
    """Build the radii and tie-exact balls of N points (see the module docstring for the tie handling).

    Parameters
    ----------
    X : (N, d) array-like
        Prompt embeddings, any float dtype, may be a ``np.memmap``.
    k : int
        Neighbour rank of the radius (BAL-PM default 13).
    exact : bool or None
        ``None`` picks exact search below ``approx_threshold`` points and ``method`` above.
    extra : int
        Neighbours searched beyond ``k`` so that ties at ``r_k`` rarely need the brute-force pass.
    method : {"hnsw", "ivf"}
        Approximate faiss index used when not exact.
    tie_rtol : float
        Relative tolerance when comparing a distance with ``r_k`` (float round-off between equal distances).
    overflow_guard : float
        A point's ball is recomputed exhaustively when its last searched neighbour is within
        ``r_k · (1 + overflow_guard)``; covers float32 mis-ranking at the end of the searched list.
    chunk_size : int
        Query rows per faiss call (bounds the float32/float64 working memory).
    n_threads : int or None
        faiss OpenMP threads (``None`` leaves faiss' default).
    progress : callable or None
        ``progress(done, total)`` after each query chunk.
    """
    import faiss

    t0 = time.perf_counter()
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
        warnings.warn(f"only {n} points: k clamped from {k} to {k_eff}", stacklevel=2)
    if exact is None:
        exact = n <= approx_threshold
    if n_threads is not None:
        faiss.omp_set_num_threads(int(n_threads))
    m = int(min(k_eff + extra, n - 1))

    index = _make_index(X, exact, method, chunk_size, seed, hnsw_m, ef_construction, max(ef_search, m + 1),
                        nlist, nprobe)
    t_index = time.perf_counter()

    radius = np.empty(n, np.float64)
    ball_rows: list[np.ndarray] = []
    ball_cols: list[np.ndarray] = []
    overflow: list[np.ndarray] = []
    overflow_thr: list[np.ndarray] = []
    t_refine = 0.0
    for a, b in _chunks(n, chunk_size):
        rows = np.arange(a, b)
        q = _f32(X, a, b)
        _, ii = index.search(q, m + 1)
        t_r = time.perf_counter()
        _, ii = _drop_self(np.zeros_like(ii, dtype=np.float32), ii, rows)
        dist = _exact_dists(X, rows, ii)
        order = np.lexsort((np.where(ii < 0, n, ii), dist), axis=-1)
        dist = np.take_along_axis(dist, order, axis=1)
        ii = np.take_along_axis(ii, order, axis=1)
        r = dist[:, k_eff - 1]
        thr = r * (1.0 + tie_rtol)
        inside = dist <= thr[:, None]
        ovf = ~np.isfinite(r)  # an approximate index found fewer than k neighbours
        if m < n - 1:  # else the list already holds every other point and cannot overflow
            ovf |= dist[:, -1] <= r * (1.0 + overflow_guard)
        radius[a:b] = r
        inside[ovf] = False
        rr, cc = np.nonzero(inside)
        ball_rows.append(rows[rr])
        ball_cols.append(ii[rr, cc])
        if ovf.any():
            overflow.append(rows[ovf])
            overflow_thr.append(thr[ovf])
        t_refine += time.perf_counter() - t_r
        if progress is not None:
            progress(b, n)
    del index
    t_search = time.perf_counter()

    n_overflow = 0
    if overflow:
        orows = np.concatenate(overflow)
        othr = np.concatenate(overflow_thr)
        bad = ~np.isfinite(othr)
        if bad.any():  # approximate search returned fewer than k neighbours: exact radius by brute force
            for i in np.nonzero(bad)[0]:
                _, ii = knn_search(X, k_eff, exact=True, queries=np.array([orows[i]]), chunk_size=chunk_size)
                dd = _exact_dists(X, np.array([orows[i]]), ii)[0]
                radius[orows[i]] = np.sort(dd)[k_eff - 1]
                othr[i] = radius[orows[i]] * (1 + tie_rtol)
        n_overflow = len(orows)
        balls = _brute_force_balls(X, orows, othr, chunk_size=max(1024, chunk_size))
        for i, cols in balls.items():
            ball_rows.append(np.full(len(cols), i, np.int64))
            ball_cols.append(cols)
    t_overflow = time.perf_counter()

    rows_all = np.concatenate(ball_rows).astype(np.int64)
    cols_all = np.concatenate(ball_cols).astype(np.int64)
    # CSR sorted by row; within a row the original (distance, index) order for searched rows
    order = np.argsort(rows_all, kind="stable")
    rows_all, cols_all = rows_all[order], cols_all[order]
    idx_dtype = np.int32 if n < 2**31 - 1 else np.int64
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(rows_all, minlength=n), out=indptr[1:])
    t_order = np.lexsort((rows_all, cols_all))
    t_indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(cols_all, minlength=n), out=t_indptr[1:])
    graph = KnnGraph(
        k=k_eff,
        radius=radius.astype(np.float32),
        indptr=indptr,
        indices=cols_all.astype(idx_dtype),
        t_indptr=t_indptr,
        t_indices=rows_all[t_order].astype(idx_dtype),
        exact=bool(exact),
        info={
            "method": "flat" if exact else method,
            "n": n,
            "dim": int(X.shape[1]),
            "searched": m,
            "tie_rtol": float(tie_rtol),
            "n_overflow": int(n_overflow),
            "seconds_index": t_index - t0,
            "seconds_search": t_search - t_index - t_refine,
            "seconds_refine": t_refine,
            "seconds_overflow": t_overflow - t_search,
            "seconds_total": time.perf_counter() - t0,
        },
    )
    return graph


# ------------------------------------------------------------------------------------------------------ cache


def embedding_fingerprint(X: ArrayLike, chunk_rows: int = 65536) -> str:
    """sha1 of the shape, dtype and bytes of X (chunked, works on memmaps): the cache key of a graph."""
    h = hashlib.sha1()
    h.update(repr((tuple(X.shape), str(np.dtype(X.dtype)))).encode())
    for a, b in _chunks(X.shape[0], chunk_rows):
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
