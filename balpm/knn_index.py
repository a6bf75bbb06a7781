"""Candidate neighbour search for :mod:`balpm.neighbors`: the indexes, their settings, a plain kNN search.

Every knob lives in :class:`IndexTuning`. Exact search is faiss' flat index on the CPU or :class:`TorchFlatIndex`
(blocked matrix products + top-k with torch, on a GPU when there is one); approximate search is faiss IVF
(default) or HNSW. All rank in float32: :func:`balpm.neighbors.build_knn_graph` re-ranks the lists in float64.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["IndexTuning", "TorchFlatIndex", "make_index", "knn_search", "drop_self", "recall_at_k", "row_chunks",
           "rows_f32", "tuning_with"]


def row_chunks(n: int, size: int):
    """``(start, stop)`` of consecutive blocks of at most ``size`` rows."""
    for start in range(0, n, size):
        yield start, min(n, start + size)


def rows_f32(X: Any, start: int, stop: int) -> np.ndarray:
    """Rows ``start..stop-1`` of X (any float dtype, a memmap too) as a contiguous float32 array."""
    return np.ascontiguousarray(X[start:stop], dtype=np.float32)


@dataclass(frozen=True)
class IndexTuning:
    """How the candidate neighbour lists are searched: every knob of the faiss and torch indexes, in one place.

    Attributes
    ----------
    method : {"blocked", "ivf", "hnsw"}
        Index used past ``approx_threshold`` (or with ``exact=False``). ``blocked`` (default) is
        :class:`balpm.knn_blocked.CellBlockedIndex`: k-means cells searched together by matrix products, every
        list certified exact by the triangle inequality (a wider search where not), so the graph is the exact
        one at a fraction of the flat search's work. ``ivf`` (faiss, the default before) scans the ``nprobe``
        cells nearest each point; ``hnsw`` walks a graph: both only probably find the neighbours (``ivf``: r_k
        within 1% and the exact ball for all of 2,000 sampled points at 20k-300k on clustered d = 384 data;
        HNSW M = 16, efSearch = 64 got 1-8% of the balls wrong; ``docs/scaling.md``, ``benchmarks/README.md``).
        Every list is then re-ranked exactly in float64.
    hnsw_m, ef_construction, ef_search : int
        HNSW links per node, build-time and query-time beam widths.
    nlist : int or None
        IVF / k-means cells (``None``: 4·√N within [16, 65536] for ``ivf``, where ``nprobe`` cells are scanned
        per query; √N for ``blocked``, which balances the assignment's N·nlist and the search's N²/nlist work).
    cos_bound : float
        ``blocked``: a cell is searched for a query unless the query's k-th distance is below a lower bound of
        the distance to its members. ``1.0`` uses only proven bounds (triangle inequality, bisector planes):
        the lists are then exact, but in high dimension these bounds rarely rule a cell out, so the search
        costs about as much as a flat one. Below 1 the bound also assumes that the angle at the cell's centroid
        between the query and a member has cosine ≤ ``cos_bound`` (0.7 by default: 45°; random directions in
        d = 384 have cosines of about ±0.05), which rules out far cells; ``graph_fidelity`` measures the result
        and ``info["blocked_proven"]`` gives the share of points whose list is proven exact anyway.
    min_probe : int
        ``blocked`` with ``cos_bound < 1``: the query's ``min_probe`` nearest cells are always searched (the
        angle assumption fails where a cell holds part of the query's own cluster: it lies in that direction).
    max_pairs_factor : float or None
        ``blocked``: if the first 2% of the points needed more than ``max_pairs_factor · √N`` distance pairs
        each, the cells rule out too little on this data and the search falls back to ``ivf`` with a warning
        (``info["blocked_fallback"]``); 40 would match IVF's 16 cells of √N/4 points (4√N pairs per query at
        about a tenth of the matrix products' rate). ``None`` (default): never; where the cells rule out
        nothing the search is then a (slow) flat search with exact results, and it says so: a warning after the first
        2% of the points when they cost more than 10% of a flat search (from 20,000 points), with the estimated
        total time. Not the default because IVF is
        much less accurate exactly there: on the MiniLM prompts of hh-rlhf (8,488, no cell ruled out) IVF
        had r_k within 1% for 80% and the exact ball for 41% of 2,000 points, the cell-blocked search 100%.
    top_cells, kmeans_iter, train_per_cell : int
        ``blocked``: nearest centroids kept per point for its certificate, k-means iterations, training points
        per cell (they change the cost, never the lists).
    seed : int
        IVF training sample.
    device : str
        Exact search: ``"auto"`` (default) runs torch blocked matrix products on CUDA when torch sees a GPU and
        faiss' flat index on the CPU otherwise; ``"faiss"`` forces the latter; any torch device (``"cpu"``,
        ``"cuda"``, ``"cuda:1"``) forces the torch search there. Both give the same graph (float64 re-ranking).
    query_block, db_block : int
        torch search: query rows per block and database rows per matrix product (bounds the
        ``query_block × db_block`` float32 distance block on the device).
    """

    method: str = "blocked"
    hnsw_m: int = 16
    ef_construction: int = 40
    ef_search: int = 64
    nlist: int | None = None
    nprobe: int = 16
    top_cells: int = 16
    cos_bound: float = 0.7
    min_probe: int = 1
    max_pairs_factor: float | None = None
    kmeans_iter: int = 10
    train_per_cell: int = 32
    seed: int = 0
    device: str = "auto"
    query_block: int = 4096
    db_block: int = 131072

    def __post_init__(self) -> None:
        if self.method not in ("blocked", "hnsw", "ivf"):
            raise ValueError(f"unknown approximate method {self.method!r} (use 'blocked', 'ivf' or 'hnsw')")

    def exact_device(self) -> str | None:
        """The torch device of the exact search, or None for faiss' flat index."""
        if self.device == "faiss":
            return None
        if self.device != "auto":
            return self.device
        torch = sys.modules.get("torch")  # an installed-but-unimported torch is not loaded just to ask
        if torch is None:
            try:
                import torch  # noqa: F811
            except ImportError:
                return None
        return "cuda" if torch.cuda.is_available() else None


def tuning_with(tuning: IndexTuning | None, overrides: dict[str, Any]) -> IndexTuning:
    """``tuning`` (default settings when None) with keyword overrides such as ``method="ivf"``, ``ef_search=256``."""
    return replace(tuning or IndexTuning(), **overrides)


class TorchFlatIndex:
    """Exact float32 kNN by blocked matrix products and top-k with torch, on any device (faiss' search API).

    ``||q − x||² = |q|² + |x|² − 2 q·x`` per (query block × database block), a running top-m merged across
    database blocks. Like faiss' flat index it ranks in float32; :func:`build_knn_graph` re-ranks the lists in
    float64, so the graph is the same as faiss' (``tests/test_neighbors.py`` checks it on CPU tensors).
    """

    def __init__(self, X: Any, device: str, query_block: int = 4096, db_block: int = 131072,
                 chunk_size: int = 65536) -> None:
        import torch

        self.torch = torch
        self.device = torch.device(device)
        n, d = X.shape
        self.X = torch.empty((n, d), dtype=torch.float32, device=self.device)
        for a, b in row_chunks(n, chunk_size):
            self.X[a:b] = torch.from_numpy(rows_f32(X, a, b)).to(self.device)
        self.xn = (self.X * self.X).sum(dim=1)
        self.query_block, self.db_block = int(query_block), int(db_block)

    def search(self, q: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
        """``(d2, idx)`` of the ``kk`` nearest database rows of each query row (float32 squared distances)."""
        torch = self.torch
        n = self.X.shape[0]
        kk = min(kk, n)
        D = np.empty((len(q), kk), np.float32)
        I = np.empty((len(q), kk), np.int64)
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False  # TF32 products (10-bit mantissa) would mis-rank the lists
        try:
            self._search(q, kk, D, I)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
        return D, I

    def _search(self, q: np.ndarray, kk: int, D: np.ndarray, I: np.ndarray) -> None:
        torch = self.torch
        n = self.X.shape[0]
        with torch.no_grad():
            for a, b in row_chunks(len(q), self.query_block):
                Q = torch.from_numpy(np.ascontiguousarray(q[a:b], dtype=np.float32)).to(self.device)
                qn = (Q * Q).sum(dim=1, keepdim=True)
                best_d = best_i = None
                for s, e in row_chunks(n, self.db_block):
                    d2 = torch.addmm(qn + self.xn[None, s:e], Q, self.X[s:e].T, beta=1.0, alpha=-2.0)
                    d2.clamp_(min=0)
                    dd, ii = torch.topk(d2, min(kk, e - s), dim=1, largest=False)
                    ii += s
                    if best_d is not None:
                        dd, pos = torch.topk(torch.cat([best_d, dd], 1), kk, dim=1, largest=False)
                        ii = torch.gather(torch.cat([best_i, ii], 1), 1, pos)
                    best_d, best_i = dd, ii
                D[a:b] = best_d.cpu().numpy()
                I[a:b] = best_i.cpu().numpy()


def make_index(X: Any, exact: bool, tuning: IndexTuning, chunk_size: int, min_ef: int = 0, k: int | None = None):
    """The index the lists are searched in: torch or faiss flat (exact), the cell-blocked search (its lists
    of ``min_ef - 1`` neighbours, certified at rank ``k``), faiss HNSW or IVF (approximate)."""
    import faiss

    n, d = X.shape
    if not exact and tuning.method == "blocked":
        from balpm.knn_blocked import CellBlockedIndex, TooCostly

        m = max(min_ef - 1, 1)
        limit = None if tuning.max_pairs_factor is None else tuning.max_pairs_factor * np.sqrt(n)
        try:
            return CellBlockedIndex(X, m, min(k or m, m), nlist=tuning.nlist, top_cells=tuning.top_cells,
                                    kmeans_iter=tuning.kmeans_iter, train_per_cell=tuning.train_per_cell,
                                    cos_bound=tuning.cos_bound, min_probe=tuning.min_probe, max_pairs=limit,
                                    seed=tuning.seed, chunk_size=max(chunk_size, 4096))
        except TooCostly as e:
            warnings.warn(f"cell-blocked kNN search: {e}; using IVF instead", stacklevel=3)
            tuning = replace(tuning, method="ivf")
    if exact:
        device = tuning.exact_device()
        if device is not None:
            return TorchFlatIndex(X, device, tuning.query_block, tuning.db_block)
        index = faiss.IndexFlatL2(d)
    elif tuning.method == "hnsw":
        index = faiss.IndexHNSWFlat(d, tuning.hnsw_m)
        index.hnsw.efConstruction = tuning.ef_construction
        index.hnsw.efSearch = max(tuning.ef_search, min_ef)
    else:
        nlist = tuning.nlist or int(max(16, min(65536, 4 * np.sqrt(n))))
        quantizer = faiss.IndexFlatL2(d)
        index = faiss.IndexIVFFlat(quantizer, d, nlist)
        rng = np.random.default_rng(tuning.seed)
        n_train = min(n, 64 * nlist)
        sample = np.sort(rng.choice(n, size=n_train, replace=False))
        index.train(np.ascontiguousarray(X[sample], dtype=np.float32))
        index.nprobe = tuning.nprobe
    for a, b in row_chunks(n, chunk_size):
        index.add(rows_f32(X, a, b))
    return index


def knn_search(
    X: ArrayLike,
    k: int,
    *,
    exact: bool = True,
    chunk_size: int = 16384,
    queries: np.ndarray | None = None,
    tuning: IndexTuning | None = None,
    **tuning_overrides: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """Plain kNN of every point (or of ``queries``, row indices into X) among X, self excluded.

    Returns ``(dist, idx)``, each ``(n_queries, k)``; ``dist`` are float32 Euclidean distances (not squared),
    ``idx`` int64 with -1 where the index found too few. This is the baseline the graph is timed against, and
    what :func:`recall_at_k` compares. ``tuning`` / keyword overrides: :class:`IndexTuning`.
    """
    tuning = tuning_with(tuning, tuning_overrides)
    n = X.shape[0]
    k = int(min(k, n - 1))
    index = make_index(X, exact, tuning, chunk_size, min_ef=k + 1)
    q_rows = np.arange(n) if queries is None else np.asarray(queries, dtype=np.int64)
    D = np.empty((len(q_rows), k), np.float32)
    I = np.empty((len(q_rows), k), np.int64)
    for a, b in row_chunks(len(q_rows), chunk_size):
        rows = q_rows[a:b]
        q = np.ascontiguousarray(X[rows], dtype=np.float32)
        if hasattr(index, "lists"):  # the cell-blocked search found every point's list already (self excluded)
            ii = index.lists[rows]
            nb = np.asarray(X[np.maximum(ii, 0).ravel()], dtype=np.float32).reshape(ii.shape + (q.shape[1],))
            d2 = np.where(ii < 0, np.inf, ((nb - q[:, None, :]) ** 2).sum(-1))
        else:
            d2, ii = index.search(q, k + 1)
            d2, ii = drop_self(d2, ii, rows)
        D[a:b] = np.sqrt(np.maximum(d2, 0))
        I[a:b] = ii
    return D, I


def drop_self(d2: np.ndarray, ii: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
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
