"""Held-out quality of a preference model: log-likelihood, accuracy, Brier score, calibration error, mean BALD.

Pure functions on arrays, shared by the learner's ``evaluate``, simulated runs' ``metrics.csv`` and the notebooks,
so every number called "test log-likelihood" is computed one way.
"""

from __future__ import annotations

import numpy as np

from balpm import uncertainty as unc

__all__ = ["expected_calibration_error", "pair_log_likelihood", "preference_metrics"]

_EPS = 1e-7
"""Probabilities are clipped to [_EPS, 1 − _EPS] before the log, so one confident mistake is finite."""


def pair_log_likelihood(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-pair log-probability (nats) of labels ``y`` (1 = A) under ``p`` = p(A ≻ B), clipped to [_EPS, 1 − _EPS]."""
    pc = np.clip(p, _EPS, 1 - _EPS)
    return y * np.log(pc) + (1 - y) * np.log1p(-pc)


def expected_calibration_error(p: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error of the top-label prediction (Guo et al., 2017), equal-width bins on [0, 1].

    Why top-label: which completion is called A is a coin flip, so calibration is judged on the confidence of the
    predicted winner, ``max(p, 1 − p)``, against whether it won.

    Parameters
    ----------
    p : (N,) array
        Predicted P(A ≻ B).
    y : (N,) array
        Observed labels (1 = A preferred, 0 = B preferred).
    n_bins : int
        Bins of the confidence; a confidence exactly on an inner edge goes to the upper bin, 1.0 to the last.

    Returns
    -------
    float
        ``Σ_b (n_b / N) · |accuracy_b − confidence_b|``; NaN for empty input.
    """
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if p.size == 0:
        return float("nan")
    conf = np.maximum(p, 1.0 - p)
    correct = ((p >= 0.5) == (y == 1)).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    ece = 0.0
    for b in np.unique(bins):
        m = bins == b
        ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)


def preference_metrics(member_probs: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> dict[str, float]:
    """Held-out quality of an ensemble on pairs with observed labels.

    Parameters
    ----------
    member_probs : (E, N) array
        Each member's P(A ≻ B).
    labels : (N,) array
        1 = A preferred, 0 = B preferred; NaN entries (ties, missing) are left out.

    Returns
    -------
    dict
        ``log_likelihood`` (mean log-probability of the observed label under the ensemble's predictive, in nats,
        probabilities clipped to [1e-7, 1 − 1e-7]), ``accuracy`` (predictive ≥ 0.5 counts as A),
        ``brier`` (mean squared error of P(A ≻ B)), ``ece`` (:func:`expected_calibration_error`, 10 bins),
        ``mean_bald`` (mean BALD over the same pairs), ``n`` (pairs scored).
    """
    probs = np.asarray(member_probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    keep = ~np.isnan(y)
    probs, y = probs[:, keep], y[keep]
    if y.size == 0:
        return {k: float("nan") for k in ("log_likelihood", "accuracy", "brier", "ece", "mean_bald")} | {"n": 0}
    p = probs.mean(axis=0)
    return {
        "log_likelihood": float(np.mean(pair_log_likelihood(p, y))),
        "accuracy": float(np.mean((p >= 0.5) == (y == 1))),
        "brier": float(np.mean((p - y) ** 2)),
        "ece": expected_calibration_error(p, y, n_bins),
        "mean_bald": float(np.mean(unc.bald(probs))),
        "n": int(y.size),
    }
