"""Candidate lists for millions of points on a few cores: k-means cells searched together by matrix products.

Why: an exact flat search is N²·d work (1M × 1M × 384 ≈ 7.7e14 flops: hours on two cores), and faiss' IVF
scans each query's cells one query at a time (no BLAS: a fraction of the cores' matrix-product rate). Here the
points are clustered by k-means into ``nlist`` ≈ √N cells (which balances the assignment's N·nlist and the
search's N²/nlist work) and

1. **phase A**: the members of each cell are searched *together* against their cell (a tiny cell borrows its
   nearest cells) by one float32 matrix product and a top-m partition, at the BLAS rate;
2. **which other cells a query needs**: none whose members provably lie farther than the query's phase-A k-th
   distance (an upper bound of its true one): the triangle inequality ``||q − μ_c'|| − R_c'`` (``R_c'``: the
   cell's largest member distance to its centroid) and the bisector bound (a member of ``c'`` is nearer
   ``μ_c'`` than the query's own centroid). In high dimension these rarely rule a cell out (every member lies
   near the sphere of radius R around its centroid, and the bound must allow for one on the near side), so
   with ``cos_bound`` < 1 a cell is also ruled out when it would need a member whose direction from the
   centroid is within ``arccos(cos_bound)`` of the query's: an assumption, not a proof;
3. **phase B**: each needed cell is searched once, by one product with the queries that need it, and merged.

With ``cos_bound = 1`` the lists are exact up to float32 ranking (the standard of faiss' flat index; every
float32 bound is widened by ``SLACK · (|q|² + |x|²)``, above its worst-case round-off for d ≤ 1000), and
:func:`balpm.neighbors.build_knn_graph`'s float64 re-ranking makes the graph the exact graph. Below 1,
``info["proven"]`` is the share of points whose list is still proven exact and
:func:`balpm.neighbors.graph_fidelity` measures the rest. The cells change the cost, never which cells a bound
rules out: the data decides how fast it is (cells much coarser than the data's clusters cost the most).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from balpm.knn_index import row_chunks, rows_f32

__all__ = ["CellBlockedIndex", "TooCostly"]

SLACK = 1e-4  # relative float32 error allowed in squared distances (|q|² + |x|² − 2 q·x, d ≤ 1000)
_BLOCK_ELEMS = 1 << 24  # query rows × database rows per matrix product (64 MB of float32)


@dataclass
class _Cells:
    """k-means cells: centroids, each point's nearest centroids, cell radii, members sorted by cell."""

    centroids: np.ndarray  # (nlist, d) float32
    cnorm: np.ndarray  # (nlist,) |μ|²
    top_d2: np.ndarray  # (N, T) float32 squared distances to the T nearest centroids (sorted order)
    top_id: np.ndarray  # (N, T) int32 their cells
    radius: np.ndarray  # (nlist,) float64 upper bound of member-to-centroid distance (-inf when empty)
    perm: np.ndarray  # (N,) point ids sorted by cell
    starts: np.ndarray  # (nlist + 1,) cell c holds sorted positions starts[c]:starts[c+1]
    xs: np.ndarray  # (N, d) float32 points in sorted order
    xnorm: np.ndarray  # (N,) float32 |x|² in sorted order
    cdist: np.ndarray  # (nlist, nlist) float64 centroid-to-centroid distances
    slack: float  # float32 error bound of any squared distance computed here (point or centroid)


def _train(X: Any, nlist: int, n_iter: int, per_cell: int, seed: int) -> np.ndarray:
    """k-means centroids from a seeded sample of ``per_cell`` points per cell (faiss)."""
    import faiss

    n, d = X.shape
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, size=min(n, per_cell * nlist), replace=False))
    km = faiss.Kmeans(d, nlist, niter=n_iter, seed=int(seed), min_points_per_centroid=1,
                      max_points_per_centroid=max(per_cell, 1) * 4, verbose=False)
    km.train(np.ascontiguousarray(X[sample], dtype=np.float32))
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


def _assign(X: Any, C: np.ndarray, top: int, chunk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Squared distances to, and ids of, each point's ``top`` nearest centroids (one product per chunk)."""
    n = X.shape[0]
    cn = np.einsum("ij,ij->i", C, C)
    top = min(top, len(C))
    top_d2 = np.empty((n, top), np.float32)
    top_id = np.empty((n, top), np.int32)
    xnorm = np.empty(n, np.float32)
    for a, b in row_chunks(n, chunk):
        x = rows_f32(X, a, b)
        xn = np.einsum("ij,ij->i", x, x)
        d2 = x @ C.T
        d2 *= -2.0
        d2 += cn[None, :]
        part = np.argpartition(d2, top - 1, axis=1)[:, :top] if top < len(C) else np.tile(np.arange(top), (b - a, 1))
        dd = np.take_along_axis(d2, part, axis=1)
        o = np.argsort(dd, axis=1, kind="stable")
        top_d2[a:b] = np.take_along_axis(dd, o, axis=1) + xn[:, None]
        top_id[a:b] = np.take_along_axis(part, o, axis=1)
        xnorm[a:b] = xn
    return top_d2, top_id, xnorm


def _cells(X: Any, nlist: int, top: int, n_iter: int, per_cell: int, seed: int, chunk: int) -> _Cells:
    """Train, assign, sort the points by cell into one float32 copy, bound each cell's radius."""
    C = _train(X, nlist, n_iter, per_cell, seed)
    top_d2, top_id, xnorm = _assign(X, C, top, chunk)
    cn = np.einsum("ij,ij->i", C, C)
    cell = top_id[:, 0]
    own = np.sqrt(np.maximum(top_d2[:, 0].astype(np.float64) + SLACK * (xnorm + cn[cell]), 0.0))
    radius = np.full(len(C), -np.inf)
    np.maximum.at(radius, cell, own)
    perm = np.argsort(cell, kind="stable")
    starts = np.zeros(len(C) + 1, np.int64)
    np.cumsum(np.bincount(cell, minlength=len(C)), out=starts[1:])
    xs = np.empty(X.shape, np.float32)
    for a, b in row_chunks(len(perm), chunk):
        xs[a:b] = np.asarray(X[np.sort(perm[a:b])], dtype=np.float32)[np.argsort(np.argsort(perm[a:b]))]
    C64 = C.astype(np.float64)
    cn64 = np.einsum("ij,ij->i", C64, C64)
    cdist = np.sqrt(np.maximum(cn64[:, None] + cn64[None, :] - 2.0 * (C64 @ C64.T), 0.0))
    slack = SLACK * 2.0 * (float(xnorm.max()) + float(cn.max()))
    return _Cells(C, cn, top_d2, top_id, radius, perm, starts, xs, xnorm[perm], cdist, slack)


def _topm(d2: np.ndarray, cols: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``m`` smallest of each row of ``d2`` (sorted), as (squared distances, ``cols`` entries: one row for
    all, or one per row); +inf / -1 pad rows with fewer than ``m`` finite entries."""
    nq, nc = d2.shape
    if nc > m:
        part = np.argpartition(d2, m - 1, axis=1)[:, :m]
    else:
        part = np.tile(np.arange(nc), (nq, 1))
    dd = np.take_along_axis(d2, part, axis=1)
    o = np.argsort(dd, axis=1, kind="stable")
    dd = np.take_along_axis(dd, o, axis=1)
    pick = np.take_along_axis(part, o, axis=1)
    ii = np.take_along_axis(cols, pick, axis=1) if cols.ndim == 2 else cols[pick]
    ii[~np.isfinite(dd)] = -1
    if dd.shape[1] < m:
        dd = np.pad(dd, ((0, 0), (0, m - dd.shape[1])), constant_values=np.inf)
        ii = np.pad(ii, ((0, 0), (0, m - ii.shape[1])), constant_values=-1)
    return dd, ii


def _search_block(cs: _Cells, q_pos: np.ndarray, db_pos: np.ndarray | slice, m: int,
                  self_first: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Top-m (float32 squared distances, sorted positions) of queries ``q_pos`` among ``db_pos`` (positions, or
    a slice: a cell's members, read without a copy). ``self_first``: the queries are the database's first rows,
    in order (their own cell), and are not their own neighbours."""
    if isinstance(db_pos, slice):
        xd, dn = cs.xs[db_pos], cs.xnorm[db_pos]
        cols = np.arange(db_pos.start, db_pos.stop)
    else:
        xd, dn, cols = cs.xs[db_pos], cs.xnorm[db_pos], db_pos
    step = max(64, _BLOCK_ELEMS // max(len(cols), 1))
    D = np.empty((len(q_pos), m), np.float32)
    I = np.empty((len(q_pos), m), np.int64)
    for a, b in row_chunks(len(q_pos), step):
        q = q_pos[a:b]
        d2 = cs.xs[q[0]:q[-1] + 1] @ xd.T if q[-1] - q[0] == b - a - 1 else cs.xs[q] @ xd.T
        d2 *= -2.0
        d2 += dn[None, :]
        d2 += cs.xnorm[q][:, None]
        if self_first:
            d2[np.arange(b - a), np.arange(a, b)] = np.inf
        D[a:b], I[a:b] = _topm(d2, cols, m)
    return D, I


def _cell_positions(cs: _Cells, cells: np.ndarray) -> np.ndarray:
    """Sorted positions of all members of ``cells``."""
    if len(cells) == 0:
        return np.empty(0, np.int64)
    return np.concatenate([np.arange(cs.starts[c], cs.starts[c + 1]) for c in cells])


def _angle_bound(d: np.ndarray, R: np.ndarray, tau: float) -> np.ndarray:
    """Least ``||q − x||`` over ``||x − μ|| ≤ R`` when the angle between ``q − μ`` and ``x − μ`` has cosine
    ≤ ``tau`` (``d = ||q − μ||``). ``tau = 1`` is the triangle inequality ``d − R``; below 1 an assumption (see
    :class:`balpm.knn_index.IndexTuning` ``cos_bound``), increasing in ``d`` and decreasing in ``R``."""
    empty = ~np.isfinite(R)
    R = np.where(empty, 0.0, np.maximum(R, 0.0))
    inner = tau * d <= R
    lb2 = np.where(inner, d * d * (1.0 - tau * tau), d * d + R * R - 2.0 * tau * d * R)
    return np.where(empty, np.inf, np.sqrt(np.maximum(lb2, 0.0)))


def _lower_bounds(cs: _Cells, own: int, d2_own: np.ndarray, d2: np.ndarray, cells: np.ndarray,
                  tau: float) -> tuple[np.ndarray, np.ndarray]:
    """(proven, assumed) lower bounds (float64) of the distance from each query to the members of its ``cells``.

    Proven: the larger of the triangle inequality ``||q − μ_c'|| − R_c'`` and the hyperplane bound (a member
    of ``c'`` is nearer ``μ_c'`` than the queries' own centroid ``μ_own``, up to the assignment's round-off, so it
    lies beyond their bisector, at least ``(||q − μ_c'||² − ||q − μ_own||²) / (2 ||μ_own − μ_c'||)``
    away).
    Assumed: the larger of that and :func:`_angle_bound` at ``tau``. ``d2_own`` (nq,), ``d2`` (nq, ncells):
    float32 squared distances of the queries to the centroids; every float32 quantity is widened by
    ``cs.slack``. Empty cells get +inf.
    """
    d2 = d2.astype(np.float64)
    d = np.sqrt(np.maximum(d2 - cs.slack, 0.0))
    R = cs.radius[cells]
    gap = np.maximum(cs.cdist[own][cells], 1e-300)
    plane = (d2 - d2_own.astype(np.float64)[:, None] - 3.0 * cs.slack) / (2.0 * gap)
    plane[cells == own] = -np.inf
    proven = np.maximum(np.where(np.isfinite(R), d - R, np.inf), plane)
    return proven, proven.copy() if tau >= 1.0 else np.maximum(proven, _angle_bound(d, R, tau))


def _needed_cells(cs: _Cells, own: int, q_pos: np.ndarray, thr: np.ndarray, searched: np.ndarray,
                  tau: float, min_probe: int) -> tuple[np.ndarray, np.ndarray]:
    """Cells to search next, boolean (len(q_pos), nlist): not yet searched, assumed bound ≤ ``thr``; and per
    query whether that search is proven complete (no cell left out whose proven bound is ≤ ``thr``).

    Bounds come from the ``T`` nearest centroids kept by the assignment; cells past them are at least the T-th
    distance away. Where the (assumed) bound at that distance does not rule them out, the queries' distances
    to every centroid are computed; where only the proven one fails there, the query is counted unproven.
    """
    nlist = len(cs.centroids)
    pts = cs.perm[q_pos]
    tid, td2 = cs.top_id[pts], cs.top_d2[pts]
    d2_own = td2[:, 0]
    proven, assumed = _lower_bounds(cs, own, d2_own, td2, tid, tau)
    need = np.zeros((len(q_pos), nlist), bool)
    if tau < 1.0 and min_probe > 1:  # an assumed bound trusts no cell among the query's nearest min_probe
        assumed[:, :min_probe] = -np.inf
    rows, cols = np.nonzero(assumed <= thr[:, None])
    need[rows, tid[rows, cols]] = True
    short = np.zeros((len(q_pos), nlist), bool)  # proven bound not above thr
    rows, cols = np.nonzero(proven <= thr[:, None])
    short[rows, tid[rows, cols]] = True
    d_t = np.sqrt(np.maximum(td2[:, -1].astype(np.float64) - cs.slack, 0.0))
    r_max = float(cs.radius[np.isfinite(cs.radius)].max())
    far_proven = d_t - r_max <= thr
    far = _angle_bound(d_t, np.full(len(d_t), r_max), min(tau, 1.0)) <= thr
    if far.any() and tid.shape[1] < nlist:
        q = cs.xs[q_pos[far]]
        d2 = cs.xnorm[q_pos[far], None] + cs.cnorm[None, :] - 2.0 * (q @ cs.centroids.T)
        all_cells = np.broadcast_to(np.arange(nlist), d2.shape)
        p_all, a_all = _lower_bounds(cs, own, d2_own[far], d2, all_cells, tau)
        need[far] |= a_all <= thr[far, None]
        short[far] |= p_all <= thr[far, None]
        far_proven[far] = False
    need[:, searched] = False
    short[:, searched] = False
    unproven = (short & ~need).any(axis=1) | (far_proven & (tid.shape[1] < nlist))
    return need, ~unproven


@dataclass
class _Stats:
    certified_a: int = 0
    proven: int = 0
    phase_b_queries: int = 0
    phase_b_pairs: int = 0
    phase_a_pairs: int = 0


def _search_cell(cs: _Cells, c: int, m: int, k: int, guard: float, tau: float, min_probe: int,
                 order: np.ndarray, st: _Stats) -> tuple[np.ndarray, np.ndarray]:
    """Phase A, certificate and phase B for the members of cell ``c``: their sorted-position lists (top-m)."""
    q_pos = np.arange(cs.starts[c], cs.starts[c + 1])
    searched, size = [], 0
    for c2 in order:  # the cell itself first, then its nearest cells until the block has m + 1 points
        searched.append(c2)
        size += cs.starts[c2 + 1] - cs.starts[c2]
        if size > m:
            break
    searched_arr = np.array(searched)
    db = slice(cs.starts[c], cs.starts[c + 1]) if len(searched) == 1 else _cell_positions(cs, searched_arr)
    D, I = _search_block(cs, q_pos, db, m, self_first=True)
    st.phase_a_pairs += len(q_pos) * size
    thr = np.sqrt(D[:, k - 1].astype(np.float64) + cs.slack) * (1.0 + guard)
    need, proven = _needed_cells(cs, c, q_pos, thr, searched_arr, tau, min_probe)
    st.proven += int(proven.sum())
    todo = np.flatnonzero(need.any(axis=1))
    st.certified_a += len(q_pos) - len(todo)
    st.phase_b_queries += len(todo)
    if len(todo) == 0:
        return I, D
    cells = np.flatnonzero(need[todo].any(axis=0))
    sizes = cs.starts[cells + 1] - cs.starts[cells]
    per_cell = int((need[todo][:, cells].sum(axis=0) * sizes).sum())
    if per_cell + 20_000 * len(cells) > len(todo) * int(sizes.sum()):
        # most queries need most of these cells: one product against their union is faster than one per cell
        # (20,000 pairs: about the fixed cost of one small product and merge)
        Db, Ib = _search_block(cs, q_pos[todo], _cell_positions(cs, cells), m)
        st.phase_b_pairs += len(todo) * int(sizes.sum())
        D[todo], I[todo] = _topm(np.concatenate([D[todo], Db], 1), np.concatenate([I[todo], Ib], 1), m)
        return I, D
    for c2 in cells:  # phase B: each needed cell once, with the queries that need it
        rows = todo[need[todo, c2]]
        Db, Ib = _search_block(cs, q_pos[rows], slice(cs.starts[c2], cs.starts[c2 + 1]), m)
        st.phase_b_pairs += len(rows) * (cs.starts[c2 + 1] - cs.starts[c2])
        D[rows], I[rows] = _topm(np.concatenate([D[rows], Db], 1), np.concatenate([I[rows], Ib], 1), m)
    return I, D


class TooCostly(RuntimeError):
    """The cells rule out too little on this data: the search would cost more than ``max_pairs`` per point."""


#: Without a ``max_pairs`` limit, the search still says so (a warning) when the first 2% of the points cost more
#: than this share of a flat search's pairs: on such data a big pool's graph takes a flat search's time, and the
#: user should hear it with the estimate before waiting, not after.
SLOW_SHARE = 0.1
#: ... and only from this many points: below it even a flat search takes seconds, not worth a warning.
SLOW_MIN_POINTS = 20_000


def _cost_check(per_point: float, n: int, done: int, elapsed: float, max_pairs: float | None) -> None:
    """At the 2% checkpoint: raise :class:`TooCostly` past ``max_pairs``, else warn when near a flat search."""
    if max_pairs is not None and per_point > max_pairs:
        raise TooCostly(f"{per_point:.0f} distance pairs per point on the first {done} points "
                        f"(limit {max_pairs:.0f}): the cells rule out too little on this data")
    if max_pairs is None and n >= SLOW_MIN_POINTS and per_point > SLOW_SHARE * (n - 1):
        warnings.warn(f"cell-blocked kNN search: the cells rule out little on this data ({per_point:.0f} distance "
                      f"pairs per point on the first {done} of {n:,} points; a flat search is {n - 1:,}): the graph "
                      f"will take about {elapsed * n / max(done, 1):.0f} s in all, exact; for a faster approximate "
                      "graph use IndexTuning(method='ivf') or max_pairs_factor", UserWarning, stacklevel=4)


class CellBlockedIndex:
    """Top-m lists of every point (self excluded) by the cell-blocked search of the module docstring.

    ``lists[i]`` are point ids (int64, -1 padded), ``info`` the timings and shares. Built in the constructor:
    the whole graph is searched at once (the cells must see all points), then read in chunks by the graph.
    """

    def __init__(self, X: Any, m: int, k: int, *, nlist: int | None = None, top_cells: int = 16,
                 kmeans_iter: int = 10, train_per_cell: int = 32, seed: int = 0, guard: float = 1e-3,
                 cos_bound: float = 1.0, min_probe: int = 2, max_pairs: float | None = None,
                 chunk_size: int = 16384) -> None:
        t0 = time.perf_counter()
        n = X.shape[0]
        nlist = int(nlist or max(1, min(65536, round(np.sqrt(n)))))
        nlist = min(nlist, n)
        cs = _cells(X, nlist, top_cells, kmeans_iter, train_per_cell, seed, chunk_size)
        t1 = time.perf_counter()
        st = _Stats()
        lists = np.empty((n, m), np.int64)
        checked = False
        for c in range(nlist):
            if not checked and cs.starts[c] >= 0.02 * n:  # the first 2% of the points (k-means' cell order)
                checked = True
                per_point = (st.phase_a_pairs + st.phase_b_pairs) / max(cs.starts[c], 1)
                _cost_check(per_point, n, int(cs.starts[c]), time.perf_counter() - t1, max_pairs)
            if cs.starts[c + 1] == cs.starts[c]:
                continue
            order = np.argsort(np.where(np.arange(nlist) == c, -1.0, cs.cdist[c]), kind="stable")
            I, _ = _search_cell(cs, c, m, k, guard, cos_bound, min_probe, order, st)
            pts = cs.perm[cs.starts[c]:cs.starts[c + 1]]
            lists[pts] = np.where(I < 0, -1, cs.perm[np.maximum(I, 0)])
        self.lists = lists
        self.info = {"nlist": nlist, "cos_bound": cos_bound, "min_probe": min_probe, "proven": st.proven / n,
                     "certified_a": st.certified_a / n, "phase_b_queries": st.phase_b_queries,
                     "pairs_per_point": (st.phase_a_pairs + st.phase_b_pairs) / n,
                     "seconds_cells": t1 - t0, "seconds_lists": time.perf_counter() - t1}
