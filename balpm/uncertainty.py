"""Uncertainty of a deep ensemble of Bradley-Terry preference models (pure functions, nats).

Every function takes ``probs`` shaped ``(members, pairs)``: member ``e``'s probability that completion A is
preferred to completion B for pair ``j``. Each returns a ``(pairs,)`` float64 array. Any float dtype is accepted
(float16 logits-turned-probabilities included); work is done in float64 so that BALD, a small difference of two
entropies, does not drown in round-off.

The decomposition is the usual one for a Bernoulli outcome under an ensemble posterior:

- predictive entropy ``H[E_e p_e]`` (total uncertainty),
- expected entropy ``E_e H[p_e]`` (aleatoric: the members agree the pair is a coin flip),
- BALD ``= predictive - expected`` (epistemic: the mutual information between the label and the model).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import entr

__all__ = [
    "binary_entropy",
    "mean_probability",
    "predictive_entropy",
    "expected_entropy",
    "bald",
    "variance",
    "summarize",
]

_RANGE_TOL = 1e-6


def _as_probs(probs: ArrayLike) -> np.ndarray:
    """Validate and convert to a float64 ``(members, pairs)`` array clipped into [0, 1]."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be 2-D (members, pairs); got shape {p.shape}")
    if p.shape[0] == 0:
        raise ValueError("probs has no ensemble members")
    if np.isnan(p).any():
        raise ValueError("probs contains NaN")
    if (p < -_RANGE_TOL).any() or (p > 1 + _RANGE_TOL).any():
        raise ValueError("probs must lie in [0, 1]")
    return np.clip(p, 0.0, 1.0)


def binary_entropy(p: ArrayLike) -> np.ndarray:
    """Entropy of a Bernoulli(p) in nats, exactly 0 at p = 0 and p = 1 (no log(0) warnings)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, 1.0)
    return entr(p) + entr(1.0 - p)


def mean_probability(probs: ArrayLike) -> np.ndarray:
    """The ensemble's predictive probability P(A ≻ B), the mean over members."""
    return _as_probs(probs).mean(axis=0)


def predictive_entropy(probs: ArrayLike) -> np.ndarray:
    """Total uncertainty: binary entropy of the mean probability."""
    return binary_entropy(mean_probability(probs))


def expected_entropy(probs: ArrayLike) -> np.ndarray:
    """Aleatoric uncertainty: the mean of the members' binary entropies."""
    return binary_entropy(_as_probs(probs)).mean(axis=0)


def bald(probs: ArrayLike) -> np.ndarray:
    """Epistemic uncertainty (BALD, Houlsby et al. 2011): predictive minus expected entropy.

    Mathematically ≥ 0 (Jensen); clipped at 0 so that round-off never yields a negative score.
    """
    p = _as_probs(probs)
    out = binary_entropy(p.mean(axis=0)) - binary_entropy(p).mean(axis=0)
    return np.maximum(out, 0.0)


def variance(probs: ArrayLike) -> np.ndarray:
    """Variance of the members' probabilities (population variance, ``ddof=0``)."""
    return _as_probs(probs).var(axis=0)


def summarize(probs: ArrayLike) -> dict[str, np.ndarray]:
    """All of the above at once (one validation pass), keyed by name; each value is ``(pairs,)`` float64.

    Keys: ``mean``, ``predictive_entropy``, ``expected_entropy``, ``bald``, ``variance``, ``std``.
    """
    p = _as_probs(probs)
    mean = p.mean(axis=0)
    pred = binary_entropy(mean)
    expct = binary_entropy(p).mean(axis=0)
    var = p.var(axis=0)
    return {
        "mean": mean,
        "predictive_entropy": pred,
        "expected_entropy": expct,
        "bald": np.maximum(pred - expct, 0.0),
        "variance": var,
        "std": np.sqrt(var),
    }
