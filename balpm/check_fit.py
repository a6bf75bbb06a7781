"""The learnability check's statistics (:mod:`balpm.check`): prompt-grouped folds, clustered standard errors, the
logistic baselines and the saturating learning curve.

Kept apart from :mod:`balpm.check`, which runs the check and judges it, because these are plain numerical
routines with no pool, embedding or model in sight; :mod:`balpm.check` re-exports the public ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

from balpm.metrics import pair_log_likelihood

__all__ = ["fit_saturating_curve", "group_folds", "saturating_curve"]

_CS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # standardised features: 1e-4 ≈ constant, 1.0 ≈ barely penalised
_B_GRID = np.round(np.arange(0.1, 2.001, 0.05), 3)


def group_folds(groups: Sequence[str] | np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """Fold index (0..k−1) of every row; whole groups per fold, groups shuffled by ``seed``, sizes balanced.

    Groups are dealt, largest first (ties in seeded random order), to the fold holding the fewest rows so far, so
    folds differ by at most one group's size.
    """
    codes, uniques = pd.factorize(pd.Series(np.asarray(groups, dtype=str)), sort=True)
    n_groups = len(uniques)
    if n_groups < k:
        raise ValueError(f"{k} folds need at least {k} prompt groups; the labels cover {n_groups}")
    sizes = np.bincount(codes, minlength=n_groups)
    order = np.random.default_rng(seed).permutation(n_groups)
    order = order[np.argsort(-sizes[order], kind="stable")]
    fold_of_group = np.empty(n_groups, dtype=np.int64)
    load = np.zeros(k, dtype=np.int64)
    for g in order:
        f = int(np.argmin(load))
        fold_of_group[g] = f
        load[f] += sizes[g]
    return fold_of_group[codes]


def _cluster_se(x: np.ndarray, codes: np.ndarray) -> float:
    """Standard error of ``mean(x)`` with rows clustered by ``codes`` (a prompt's pairs are not independent)."""
    n = len(x)
    if n < 2:
        return float("nan")
    dev = np.bincount(codes, weights=x - x.mean())
    g = int(np.count_nonzero(np.bincount(codes)))
    if g < 2:
        return float("nan")
    return float(math.sqrt(g / (g - 1) * np.sum(dev**2)) / n)


def _fit_logistic(x: np.ndarray, y: np.ndarray, c: float, w0: np.ndarray | None = None) -> np.ndarray:
    """L2 logistic regression (penalty ``|w|² / (2C)``, intercept free); returns ``[w..., bias]``.

    Newton's method with step halving: the objective is strictly convex, so it converges in a handful of
    iterations, each one ``(d+1)``-square solve, about 10x faster here than L-BFGS (400 fits per check).
    """
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])
    pen = np.full(d + 1, 1.0 / c)
    pen[-1] = 1e-8

    def objective(w: np.ndarray) -> float:
        z = xb @ w
        return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(pen * w * w))

    w = np.zeros(d + 1) if w0 is None else w0.copy()
    f = objective(w)
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-(xb @ w)))
        grad = xb.T @ (p - y) + pen * w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(pen)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while True:
            f_new = objective(w - t * step)
            if f_new <= f + 1e-12 or t < 1e-6:
                break
            t *= 0.5
        w = w - t * step
        done = f - f_new < 1e-10 * max(1.0, abs(f))
        f = f_new
        if done:
            break
    return w


def _logistic_predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(x @ w[:-1] + w[-1])))


def _logistic_cv(x_tr: np.ndarray, y_tr: np.ndarray, g_tr: np.ndarray, x_te: np.ndarray, seed: int) -> np.ndarray:
    """P(A) on ``x_te`` from an L2 logistic regression whose C is picked by 3-fold group CV log-loss on the
    training rows (features standardised on the training rows, so one C grid fits every feature scale)."""
    mu, sd = x_tr.mean(0), x_tr.std(0) + 1e-12
    xs_tr, xs_te = (x_tr - mu) / sd, (x_te - mu) / sd
    best_c = _CS[len(_CS) // 2]
    if len(np.unique(g_tr)) >= 3 and len(y_tr) >= 12:
        inner = group_folds(g_tr, 3, seed)
        scores = []
        warm: list[np.ndarray | None] = [None, None, None]
        for c in _CS:  # from strong to weak penalty, each fold's fit warm-started from the previous C's
            ll = np.empty(len(y_tr))
            for f in range(3):
                te = inner == f
                warm[f] = _fit_logistic(xs_tr[~te], y_tr[~te], c, warm[f])
                ll[te] = pair_log_likelihood(_logistic_predict(warm[f], xs_tr[te]), y_tr[te])
            scores.append(ll.mean())
        best_c = _CS[int(np.argmax(scores))]
    return _logistic_predict(_fit_logistic(xs_tr, y_tr, best_c), xs_te)


def saturating_curve(n: np.ndarray | float, c: float, a: float, b: float) -> np.ndarray:
    """``LL(n) = c − a · n^(−b)``: rises to the ceiling ``c`` when ``a > 0``, falls to it when ``a < 0``."""
    return c - a * np.power(np.asarray(n, dtype=np.float64), -b)


def fit_saturating_curve(n: np.ndarray, ll: np.ndarray,
                         weights: np.ndarray | None = None) -> tuple[float, float, float]:
    """Least-squares ``(c, a, b)`` of :func:`saturating_curve` through points ``(n, ll)``.

    For each ``b`` on a grid (0.1 … 2) the model is linear in ``(c, a)`` and solved exactly (weighted least
    squares); the ``b`` with the smallest weighted residual wins. Why a grid: with 4-5 noisy points a free
    three-parameter optimiser often runs off to ``b → 0`` with huge ``a`` and ``c``; the grid keeps the fit defined.
    """
    n = np.asarray(n, dtype=np.float64)
    ll = np.asarray(ll, dtype=np.float64)
    w = np.ones_like(ll) if weights is None else np.asarray(weights, dtype=np.float64)
    sw = np.sqrt(w)
    best: tuple[float, float, float, float] | None = None
    for b in _B_GRID:
        design = np.stack([np.ones_like(n), -np.power(n, -b)], axis=1) * sw[:, None]
        coef, *_ = np.linalg.lstsq(design, ll * sw, rcond=None)
        sse = float(np.sum((design @ coef - ll * sw) ** 2))
        if best is None or sse < best[0] - 1e-15:
            best = (sse, float(coef[0]), float(coef[1]), float(b))
    assert best is not None
    return best[1], best[2], best[3]
