"""Alternative preference models for the model study (issue 12, section 2), with the interface of
:class:`balpm.model.PreferenceEnsemble` that the metrics and BALD read: ``fit(emb_a, emb_b, labels)`` returns
``self``; ``predict_member_proba(emb_a, emb_b)`` gives ``(S, N)`` posterior draws (or members) of P(A ≻ B).

Why apart from :mod:`balpm.model`: each is a small piece that either wraps the ensemble (weight decay chosen on a
held-out slice) or replaces it (a linear Bradley-Terry model with a Laplace posterior), so the study can compare them
on the same data without touching the default model; ``benchmarks/model_study.py`` measures them.

- :class:`HeldOutWeightDecay` picks the ensemble's AdamW weight decay from a small grid by the log-likelihood of
  a held-out slice of the labels, then refits on all labels with it.
- :class:`LastLayerLaplace`: the ensemble, each member's output layer given a Laplace posterior around its trained
  weights (generalised Gauss-Newton Hessian, prior precision by MacKay's evidence updates): members x draws.
- :class:`LinearLaplacePreference` is P(A ≻ B) = σ(w·(a − b)), w ~ N(0, α⁻¹ I): the MAP by Newton's method, the
  Laplace posterior N(w_MAP, H⁻¹) and α tuned by MacKay's evidence updates (α ← γ / |w_MAP|², γ the effective
  number of parameters). Its BALD is exact in the model's own posterior, not an artefact of how members were
  initialised, and it is large from the first labels (tens of labels leave most directions to the prior).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from balpm.metrics import pair_log_likelihood

__all__ = ["HeldOutWeightDecay", "LastLayerLaplace", "LinearLaplacePreference", "held_out_split"]


def _pairs(emb_a: Any, emb_b: Any, labels: Any | None = None) -> tuple[np.ndarray, ...]:
    """float64 copies of two ``(N, d)`` matrices (and labels in {0, 1}), with a clear error on bad shapes."""
    a = np.asarray(emb_a, dtype=np.float64)
    b = np.asarray(emb_b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape:
        raise ValueError(f"emb_a and emb_b must be (N, d) arrays of one shape, got {a.shape} and {b.shape}")
    if labels is None:
        return a, b
    y = np.asarray(labels, dtype=np.float64)
    if y.shape != (a.shape[0],) or not np.all((y == 0) | (y == 1)):
        raise ValueError(f"labels must be (N,) = ({a.shape[0]},) values in {{0, 1}}")
    return a, b, y


def held_out_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random (fit, held-out) index split of ``n`` labels; the held-out part has at least 2 rows (and at
    least 2 rows stay to fit on)."""
    if n < 4:
        raise ValueError(f"a held-out split needs at least 4 labels, got {n}")
    n_val = min(n - 2, max(2, int(round(float(fraction) * n))))
    perm = np.random.default_rng(int(seed)).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


class HeldOutWeightDecay:
    """A :class:`balpm.model.PreferenceEnsemble` whose weight decay is chosen on a held-out slice of the labels.

    Parameters
    ----------
    grid
        AdamW (decoupled) weight decays to try. Each step shrinks weights by ``lr · weight_decay``, so with lr 1e-3
        useful values are 1-30, not the 1e-4-1e-2 of coupled L2.
    val_fraction
        Fraction of the labels held out to score the grid (whole rows; at least 2).
    seed
        Seeds the held-out slice and every ensemble fit.
    **ensemble_params
        Other :class:`balpm.model.PreferenceEnsemble` parameters.

    Attributes
    ----------
    weight_decay_ : float
        The chosen value (the smallest on a tie); ``scores_`` maps each value to its held-out log-likelihood.
    ensemble_ : PreferenceEnsemble
        Refitted on all labels with ``weight_decay_``.
    """

    def __init__(self, grid: Sequence[float] = (0.0, 3.0, 10.0, 30.0), val_fraction: float = 0.2, seed: int = 0,
                 **ensemble_params: Any) -> None:
        self.grid = tuple(float(g) for g in grid)
        self.val_fraction = val_fraction
        self.seed = seed
        self.ensemble_params = ensemble_params

    def _ensemble(self, weight_decay: float) -> Any:
        from balpm.model import PreferenceEnsemble

        return PreferenceEnsemble(**(self.ensemble_params | {"weight_decay": weight_decay, "seed": self.seed}))

    def fit(self, emb_a: Any, emb_b: Any, labels: Any) -> HeldOutWeightDecay:
        a, b, y = _pairs(emb_a, emb_b, labels)
        if not self.grid:
            raise ValueError("grid must hold at least one weight decay")
        if len(self.grid) == 1 or len(y) < 10:  # too few labels to hold any out: the first value
            self.scores_ = {}
            self.weight_decay_ = self.grid[0]
        else:
            fit_idx, val_idx = held_out_split(len(y), self.val_fraction, self.seed)
            self.scores_ = {}
            for wd in self.grid:
                model = self._ensemble(wd).fit(a[fit_idx], b[fit_idx], y[fit_idx])
                p = model.predict_proba(a[val_idx], b[val_idx])
                self.scores_[wd] = float(np.mean(pair_log_likelihood(p, y[val_idx])))
            best = max(self.scores_.values())
            self.weight_decay_ = min(wd for wd, s in self.scores_.items() if s == best)
        self.ensemble_ = self._ensemble(self.weight_decay_).fit(a, b, y)
        return self

    def predict_member_proba(self, emb_a: Any, emb_b: Any) -> np.ndarray:
        """The refitted ensemble's per-member P(A ≻ B), ``(E, N)``."""
        return self.ensemble_.predict_member_proba(emb_a, emb_b)

    def predict_proba(self, emb_a: Any, emb_b: Any) -> np.ndarray:
        return self.predict_member_proba(emb_a, emb_b).mean(axis=0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free σ


class LinearLaplacePreference:
    """Linear Bradley-Terry on ``a − b`` with a Gaussian prior tuned by the evidence and a Laplace posterior.

    Parameters
    ----------
    n_samples
        Posterior draws of w that :meth:`predict_member_proba` returns (the "members" BALD reads).
    alpha
        Starting prior precision α of w ~ N(0, α⁻¹ I).
    evidence_updates
        MacKay updates of α (each after a fresh MAP); 0 keeps ``alpha`` fixed.
    newton_steps
        Cap on Newton steps per MAP (it converges in a handful: the objective is convex).
    seed
        Seeds the posterior draws.

    Attributes
    ----------
    w_ : (d,) MAP weights; ``cov_`` (d, d) posterior covariance H⁻¹; ``alpha_`` the tuned precision;
    ``gamma_`` the effective number of well-determined parameters.
    """

    def __init__(self, n_samples: int = 64, alpha: float = 1.0, evidence_updates: int = 30, newton_steps: int = 25,
                 seed: int = 0) -> None:
        self.n_samples = n_samples
        self.alpha = alpha
        self.evidence_updates = evidence_updates
        self.newton_steps = newton_steps
        self.seed = seed

    def _map(self, x: np.ndarray, y: np.ndarray, alpha: float, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The MAP weights under precision ``alpha`` (Newton from ``w``) and the Hessian there."""
        d = x.shape[1]
        for _ in range(int(self.newton_steps)):
            p = _sigmoid(x @ w)
            grad = x.T @ (p - y) + alpha * w
            hess = (x * (p * (1 - p))[:, None]).T @ x + alpha * np.eye(d)
            step = np.linalg.solve(hess, grad)
            w = w - step
            if float(np.max(np.abs(step))) < 1e-8:
                break
        p = _sigmoid(x @ w)
        return w, (x * (p * (1 - p))[:, None]).T @ x

    def fit(self, emb_a: Any, emb_b: Any, labels: Any) -> LinearLaplacePreference:
        a, b, y = _pairs(emb_a, emb_b, labels)
        if float(self.alpha) <= 0 or int(self.n_samples) < 1:
            raise ValueError("alpha must be > 0 and n_samples >= 1")
        x = a - b
        alpha = float(self.alpha)
        w = np.zeros(x.shape[1])
        w, data_hess = self._map(x, y, alpha, w)
        gamma = 0.0
        for _ in range(int(self.evidence_updates)):
            lam = np.clip(np.linalg.eigvalsh(data_hess), 0.0, None)
            gamma = float(np.sum(lam / (lam + alpha)))
            new = float(np.clip(gamma / max(float(w @ w), 1e-12), 1e-6, 1e8))
            w, data_hess = self._map(x, y, new, w)
            done = abs(np.log(new / alpha)) < 1e-4
            alpha = new
            if done:
                break
        self.w_, self.alpha_, self.gamma_ = w, alpha, gamma
        self.cov_ = np.linalg.inv(data_hess + alpha * np.eye(x.shape[1]))
        self.cov_ = 0.5 * (self.cov_ + self.cov_.T)
        return self

    def sample_weights(self) -> np.ndarray:
        """``(n_samples, d)`` draws from N(w_MAP, H⁻¹), the same for a fixed ``seed``."""
        if not hasattr(self, "w_"):
            raise ValueError("this LinearLaplacePreference is not fitted yet: call fit() first")
        rng = np.random.default_rng(int(self.seed))
        return rng.multivariate_normal(self.w_, self.cov_, size=int(self.n_samples), method="cholesky")

    def predict_member_proba(self, emb_a: Any, emb_b: Any) -> np.ndarray:
        """P(A ≻ B) under each posterior draw, ``(n_samples, N)``."""
        a, b = _pairs(emb_a, emb_b)
        return _sigmoid(self.sample_weights() @ (a - b).T)

    def predict_proba(self, emb_a: Any, emb_b: Any) -> np.ndarray:
        return self.predict_member_proba(emb_a, emb_b).mean(axis=0)


def _evidence_alpha(lam: np.ndarray, w_sq: float, alpha: float, updates: int) -> tuple[float, float]:
    """MacKay's fixed point α ← γ / |w|², γ = Σ λ / (λ + α), for Hessian eigenvalues ``lam`` at fixed weights."""
    gamma = 0.0
    for _ in range(int(updates)):
        gamma = float(np.sum(lam / (lam + alpha)))
        alpha = float(np.clip(gamma / max(w_sq, 1e-12), 1e-6, 1e8))
    return alpha, gamma


class LastLayerLaplace:
    """A :class:`balpm.model.PreferenceEnsemble` whose members' output layers get a Laplace posterior.

    Member e's logit is ``r_e(a) − r_e(b) = w_e · (φ_e(a) − φ_e(b))`` (+ its prior network, if any), φ_e its last
    hidden layer. Around the trained ``w_e`` the Laplace posterior is N(w_e, H_e⁻¹), H_e = Σ p(1−p) x xᵀ + α_e I
    (x = φ_e(a) − φ_e(b), the output bias cancels), α_e tuned by the evidence at fixed ``w_e``.
    :meth:`predict_member_proba` returns ``n_samples`` draws per member, ``(E · n_samples, N)``.

    Parameters
    ----------
    n_samples
        Draws of each member's output layer.
    evidence_updates
        MacKay updates of each α_e (from α = 1).
    seed
        Seeds the ensemble and the draws.
    **ensemble_params
        Other :class:`balpm.model.PreferenceEnsemble` parameters.
    """

    def __init__(self, n_samples: int = 8, evidence_updates: int = 20, seed: int = 0, **ensemble_params: Any) -> None:
        self.n_samples = n_samples
        self.evidence_updates = evidence_updates
        self.seed = seed
        self.ensemble_params = ensemble_params

    def fit(self, emb_a: Any, emb_b: Any, labels: Any) -> LastLayerLaplace:
        from balpm.model import PreferenceEnsemble

        a, b, y = _pairs(emb_a, emb_b, labels)
        ens = PreferenceEnsemble(**(self.ensemble_params | {"seed": self.seed})).fit(a, b, y)
        x = ens.last_hidden(a) - ens.last_hidden(b)  # (E, N, h)
        p = 1.0 / (1.0 + np.exp(-ens.predict_member_logits(a, b)))
        w_out = ens.weights_[len(tuple(ens.hidden))][:, :, 0].astype(np.float64)  # (E, h)
        rng = np.random.default_rng(int(self.seed))
        deltas, self.alpha_ = [], []
        for e in range(x.shape[0]):
            data_hess = (x[e] * (p[e] * (1 - p[e]))[:, None]).T @ x[e]
            lam = np.clip(np.linalg.eigvalsh(data_hess), 0.0, None)
            alpha, _ = _evidence_alpha(lam, float(w_out[e] @ w_out[e]), 1.0, self.evidence_updates)
            cov = np.linalg.inv(data_hess + alpha * np.eye(x.shape[2]))
            deltas.append(rng.multivariate_normal(np.zeros(x.shape[2]), 0.5 * (cov + cov.T), size=int(self.n_samples),
                                                  method="cholesky"))
            self.alpha_.append(alpha)
        self.ensemble_, self.deltas_ = ens, np.stack(deltas)  # (E, S, h): draws of w − w_e
        return self

    def predict_member_proba(self, emb_a: Any, emb_b: Any) -> np.ndarray:
        """P(A ≻ B) under every member's output-layer draws, ``(E · n_samples, N)``."""
        a, b = _pairs(emb_a, emb_b)
        ens = self.ensemble_
        logits = ens.predict_member_logits(a, b)[:, None, :] + np.einsum(
            "enh,esh->esn", ens.last_hidden(a) - ens.last_hidden(b), self.deltas_)
        return _sigmoid(logits.reshape(-1, logits.shape[-1]))

    def predict_proba(self, emb_a: Any, emb_b: Any) -> np.ndarray:
        return self.predict_member_proba(emb_a, emb_b).mean(axis=0)
