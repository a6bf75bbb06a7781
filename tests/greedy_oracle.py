"""Test oracle: ``balpm_greedy`` as it was before issue 14 (an argmax over all N scores for every pick).

Kept verbatim (argmax branch only) so that the faster selection can be checked pick for pick, ties included,
against what the project shipped: the fixed-seed picks must not change.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma

from balpm.neighbors import KnnGraph


def greedy_oracle(
    graph: KnnGraph,
    uncertainty: np.ndarray | None,
    candidates: np.ndarray,
    acquired: np.ndarray,
    batch_size: int,
    beta: float = 0.01,
    d: float = 1.0,
    eps: float = 1e-4,
    uncertainty_weight: float = 1.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Greedy on ``w·U + β·Ĥ``, one full argmax per pick; equal scores go to the lowest index."""
    n_pts = graph.n_points
    cand = np.asarray(candidates, dtype=bool) & ~np.asarray(acquired, dtype=bool)
    acq = np.asarray(acquired, dtype=bool)
    if uncertainty is None:
        U = np.zeros(n_pts)
    else:
        U = np.asarray(uncertainty, dtype=np.float64)
    B = int(min(batch_size, int(cand.sum())))

    logr = np.log(2.0 * graph.radius.astype(np.float64) + eps)
    rows = np.repeat(np.arange(n_pts), graph.ball_sizes)
    n = np.bincount(rows, weights=acq[graph.indices], minlength=n_pts).astype(np.int64)
    max_n = int(graph.ball_sizes.max(initial=0)) + 1
    psi_d = digamma(np.arange(max_n + 2, dtype=np.float64) + 1.0) / d  # psi_d[n] = ψ(n + 1) / d
    wU = uncertainty_weight * U

    lowest = -np.finfo(np.float64).max  # a candidate's score stays above the -inf of non-candidates

    def score_of(idx: np.ndarray | int) -> np.ndarray:
        return wU[idx] + beta * (logr[idx] - psi_d[n[idx]])

    score = np.where(cand, np.maximum(score_of(np.arange(n_pts)), lowest), -np.inf)
    if np.isnan(score[cand]).any():
        raise ValueError("uncertainty is NaN for some candidates")
    out_i = np.empty(B, np.int64)
    out_bh = np.empty(B)
    out_s = np.empty(B)
    for t in range(B):
        i = int(np.argmax(score))
        out_i[t], out_s[t] = i, score_of(i)
        out_bh[t] = beta * (logr[i] - psi_d[n[i]])
        score[i] = -np.inf
        cand[i] = False
        mem = graph.members_of(i)
        n[mem] += 1
        live = mem[cand[mem]]
        score[live] = np.maximum(score_of(live), lowest)
    return out_i, U[out_i], out_bh, out_s
