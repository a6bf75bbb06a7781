"""Acquisition policies by name: each a small object with ``select(inp, batch_size, rng) -> Selection`` that
declares its own parameters (:class:`PolicyParam` in ``PARAMS``), so that :func:`get_policy` validates them and the
Acquire page, the CLI and the configs build their inputs from the one declaration.

The selection maths (BAL-PM's greedy, the entropy term) and the data classes are in :mod:`balpm.acquisition`,
which also re-exports every name here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Protocol

import numpy as np
from scipy.special import digamma

from balpm.acquisition import (AcquisitionInput, RngLike, Selection, _clip_batch, _ratio, _rng, auto_beta,
                               balpm_greedy)
from balpm.neighbors import KnnGraph, build_knn_graph

__all__ = [
    "PolicyParam", "Policy", "RandomPolicy", "TopScorePolicy", "StochasticPolicy", "BalPMPolicy",
    "EntropyPolicy", "SoftmaxBaldPolicy", "PowerBaldPolicy", "SoftrankBaldPolicy", "POLICIES", "get_policy",
    "policy_names", "canonical_policy_name", "policy_parameters", "all_policy_parameters", "policy_params_from",
    "bald_score",
]


@dataclass(frozen=True)
class PolicyParam:
    """One constructor parameter of a policy, declared on its class (``PARAMS``) so that :func:`get_policy`
    validates it and the Acquire page and the CLI build their inputs from it, instead of each keeping a list.

    ``low``/``high`` bound the value (inclusive, None: unbounded), ``choices`` lists the allowed values of a string.
    ``label`` and ``step`` are for an input widget. ``advanced`` parameters (tuning knobs such as ``eps``) are
    accepted by :func:`get_policy` but not offered by the page or the CLI. ``words`` are strings accepted instead
    of a number (``beta="auto"``), case-insensitively.
    """

    name: str
    type: type
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple[str, ...] | None = None
    label: str = ""
    step: float = 1.0
    advanced: bool = False
    words: tuple[str, ...] = ()

    def word(self, value: Any) -> str | None:
        """The word of :attr:`words` that ``value`` spells (any case, blanks around), else None."""
        if isinstance(value, str) and value.strip().lower() in self.words:
            return value.strip().lower()
        return None

    def parse(self, text: str) -> Any:
        """A command-line value: one of the words, or ``text`` converted to ``type`` (ValueError otherwise)."""
        return self.word(text) or self.type(text)

    def check(self, value: Any, policy: str) -> Any:
        """``value`` converted to ``type`` (or one of the words); a ValueError naming the policy and the parameter
        when it does not fit."""
        where = f"policy {policy!r} parameter {self.name!r}"
        if self.word(value) is not None:
            return self.word(value)
        try:
            v = self.type(value)
            if self.type is int and float(value) != v:
                raise ValueError
        except (TypeError, ValueError):
            also = "".join(f" or {w!r}" for w in self.words)
            raise ValueError(f"{where} must be {self.type.__name__}{also}, got {value!r}") from None
        if self.choices is not None and v not in self.choices:
            raise ValueError(f"{where} must be one of {', '.join(self.choices)}, got {v!r}")
        if self.low is not None and not v >= self.low:
            raise ValueError(f"{where} must be ≥ {self.low}, got {v!r}")
        if self.high is not None and not v <= self.high:
            raise ValueError(f"{where} must be ≤ {self.high}, got {v!r}")
        return v


_BETA = PolicyParam("beta", float, 0.01, "bal-pm: weight of the prompt entropy term, or 'auto': each round the β "
                    "that gives BALD and the entropy term the same spread over the candidates", low=0.0,
                    label="β (weight of the prompt entropy)", step=0.01, words=("auto",))
_K = PolicyParam("k", int, 13, "bal-pm/entropy: neighbour rank of the kNN entropy estimate", low=1,
                 label="k (neighbour rank of the entropy estimate)")
_TEMPERATURE = PolicyParam("temperature", float, 1.0, "softmax/power/softrank-bald: sampling temperature", low=0.0,
                           label="Temperature", step=0.1)
_D = PolicyParam("d", float, 1.0, "dimension divisor of ψ(n + 1) in Ĥ", low=0.0, advanced=True)
_EPS = PolicyParam("eps", float, 1e-4, "ε in log(2 r_k + ε)", low=0.0, advanced=True)
_METHOD = PolicyParam("method", str, "heap", "greedy selection: heap (fast) or argmax (reference)",
                      choices=("heap", "argmax"), advanced=True)


class Policy(Protocol):
    """What the learner calls. ``needs_knn`` tells it whether to put a (cached) KnnGraph in the input; ``PARAMS``
    declares the constructor parameters :func:`get_policy` accepts."""

    name: str
    needs_knn: bool
    PARAMS: ClassVar[tuple[PolicyParam, ...]]

    def select(self, inp: AcquisitionInput, batch_size: int, rng: RngLike = None) -> Selection: ...

    def pool_scores(self, inp: AcquisitionInput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N,) BALD, β·Ĥ and score of every pair before any pick (NaN where the policy has no such term)."""
        ...


ScoreFn = Callable[[AcquisitionInput], np.ndarray]


def _uncertainty_or_nan(inp: AcquisitionInput) -> np.ndarray:
    return inp.uncertainty if inp.uncertainty is not None else np.full(inp.n, np.nan)


def bald_score(inp: AcquisitionInput) -> np.ndarray:
    """The base score of the BALD family: the pairs' BALD."""
    return inp.require_uncertainty("bald")


class RandomPolicy:
    """Uniformly random batch (the passive-learning baseline)."""

    name = "random"
    needs_knn = False
    PARAMS: ClassVar[tuple[PolicyParam, ...]] = ()

    def pool_scores(self, inp: AcquisitionInput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        nan = np.full(inp.n, np.nan)
        return _uncertainty_or_nan(inp), nan, nan.copy()

    def select(self, inp: AcquisitionInput, batch_size: int, rng: RngLike = None) -> Selection:
        pool = np.flatnonzero(inp.selectable())
        B = _clip_batch(batch_size, len(pool))
        idx = _rng(rng).choice(pool, size=B, replace=False)
        u = inp.uncertainty[idx] if inp.uncertainty is not None else np.full(B, np.nan)
        nan = np.full(B, np.nan)
        return Selection(idx.astype(np.int64), u, nan, nan.copy(), nan.copy(), self.name, {})


class TopScorePolicy:
    """Deterministic top-B of a score (``bald``: top-B BALD). Equal scores go to the lowest index."""

    needs_knn = False
    PARAMS: ClassVar[tuple[PolicyParam, ...]] = ()

    def __init__(self, score: ScoreFn = bald_score, name: str = "bald") -> None:
        self.score_fn = score
        self.name = name

    def pool_scores(self, inp: AcquisitionInput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return _uncertainty_or_nan(inp), np.full(inp.n, np.nan), np.asarray(self.score_fn(inp), np.float64)

    def select(self, inp: AcquisitionInput, batch_size: int, rng: RngLike = None) -> Selection:
        s = self.score_fn(inp)
        pool = np.flatnonzero(inp.selectable())
        B = _clip_batch(batch_size, len(pool))
        idx = pool[np.argsort(-s[pool], kind="stable")[:B]]
        u = inp.uncertainty[idx] if inp.uncertainty is not None else np.full(B, np.nan)
        return Selection(idx, u, np.full(B, np.nan), s[idx], _ratio(u, s[idx]), self.name, {})


class StochasticPolicy:
    """Stochastic batch acquisition (Kirsch et al. 2023): top-B of perturbed keys.

    ``key = f(score) + temperature · Gumbel``, with f = identity (``softmax``), log (``power``) or
    −log(rank) (``softrank``, rank 1 = best). Taking the top-B keys samples B pairs without replacement with
    probability ∝ exp(score/T), score^(1/T) or rank^(−1/T) respectively. ``temperature`` is the inverse of
    Kirsch et al.'s coldness β; at the default 1 the two coincide, and temperature → 0 recovers top-B.
    """

    KINDS = ("softmax", "power", "softrank")
    needs_knn = False
    PARAMS: ClassVar[tuple[PolicyParam, ...]] = (_TEMPERATURE,)
    pool_scores = TopScorePolicy.pool_scores

    def __init__(self, kind: str = "softmax", temperature: float = 1.0, score: ScoreFn = bald_score,
                 name: str | None = None) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}")
        if temperature < 0:
            raise ValueError("temperature must be ≥ 0")
        self.kind = kind
        self.temperature = float(temperature)
        self.score_fn = score
        self.name = name or f"{kind}-bald"

    def keys(self, s: np.ndarray) -> np.ndarray:
        """The deterministic part of the key for scores ``s`` (only the candidates' scores)."""
        if self.kind == "softmax":
            return s.astype(np.float64)
        if self.kind == "power":
            with np.errstate(divide="ignore"):
                return np.log(np.maximum(s, 0.0))
        ranks = np.empty(len(s), np.float64)
        ranks[np.argsort(-s, kind="stable")] = np.arange(1, len(s) + 1)
        return -np.log(ranks)

    def select(self, inp: AcquisitionInput, batch_size: int, rng: RngLike = None) -> Selection:
        s_all = self.score_fn(inp)
        pool = np.flatnonzero(inp.selectable())
        B = _clip_batch(batch_size, len(pool))
        s = s_all[pool]
        key = self.keys(s)
        if self.temperature > 0:
            key = key + self.temperature * _rng(rng).gumbel(size=len(pool))
        idx = pool[np.argsort(-key, kind="stable")[:B]]
        u = inp.uncertainty[idx] if inp.uncertainty is not None else np.full(B, np.nan)
        return Selection(idx, u, np.full(B, np.nan), s_all[idx], _ratio(u, s_all[idx]), self.name,
                         {"temperature": self.temperature})


class BalPMPolicy:
    """BAL-PM: greedy on ``U + β·Ĥ`` (see the module docstring). Defaults are the paper's runs.

    ``beta="auto"`` chooses β at each selection from the candidates' scores (:func:`balpm.acquisition.auto_beta`:
    BALD and Ĥ given the same spread); the β used is in ``Selection.beta``. A number is used as given.

    Uses ``inp.knn`` when given (it must have the same k), otherwise builds the graph from
    ``inp.prompt_embeddings`` (slow in a loop: cache it).
    """

    name = "bal-pm"
    needs_knn = True  # the learner passes its cached graph in AcquisitionInput.knn
    PARAMS: ClassVar[tuple[PolicyParam, ...]] = (_BETA, _K, _D, _EPS, _METHOD)

    def __init__(self, beta: float | str = 0.01, k: int = 13, d: float = 1.0, eps: float = 1e-4,
                 method: str = "heap", **knn_kwargs: Any) -> None:
        self.beta = _BETA.word(beta) or float(beta)
        self.k, self.d, self.eps, self.method = int(k), float(d), float(eps), method
        self.knn_kwargs = knn_kwargs

    def params(self) -> dict[str, Any]:
        return {"beta": self.beta, "k": self.k, "d": self.d, "eps": self.eps}

    def graph(self, inp: AcquisitionInput) -> KnnGraph:
        g = inp.knn
        if g is not None and g.k == min(self.k, g.n_points - 1):
            return g
        if inp.prompt_embeddings is None:
            raise ValueError(f"policy {self.name!r} needs AcquisitionInput.knn or .prompt_embeddings")
        if g is not None:
            warnings.warn(f"knn graph has k={g.k}, policy wants k={self.k}: rebuilding", stacklevel=3)
        return build_knn_graph(inp.prompt_embeddings, k=self.k, **self.knn_kwargs)

    def _weights(self) -> tuple[float, float | str]:
        return 1.0, self.beta

    def _entropy(self, g: KnnGraph, acquired: np.ndarray) -> np.ndarray:
        """(N,) Ĥ before the first pick (without β)."""
        return g.log_radius(self.eps) - digamma(g.count_in_ball(acquired).astype(np.float64) + 1.0) / self.d

    def _beta_for(self, inp: AcquisitionInput, g: KnnGraph, U: np.ndarray | None) -> float:
        """The β of this selection: the fixed one, or :func:`auto_beta` over the selectable candidates."""
        beta = self._weights()[1]
        if beta != "auto":
            return float(beta)
        sel = inp.selectable()
        return auto_beta(U[sel], self._entropy(g, inp.acquired)[sel], self.d)

    def pool_scores(self, inp: AcquisitionInput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The greedy's scores before its first pick, computed by the same expression (so they equal the first
        pick's ``score`` and ``entropy_term`` bit for bit)."""
        w = self._weights()[0]
        U = inp.require_uncertainty(self.name) if w else inp.uncertainty
        g = self.graph(inp)
        bh = self._beta_for(inp, g, U) * self._entropy(g, inp.acquired)
        s = (U if w == 1.0 else w * U) + bh if w else bh
        return _uncertainty_or_nan(inp), bh, s

    def select(self, inp: AcquisitionInput, batch_size: int, rng: RngLike = None) -> Selection:
        w = self._weights()[0]
        U = inp.require_uncertainty(self.name) if w else inp.uncertainty
        g = self.graph(inp)
        beta = self._beta_for(inp, g, U)
        idx, u, bh, s = balpm_greedy(g, U, inp.candidates, inp.acquired, batch_size, beta=beta,
                                     d=self.d, eps=self.eps, uncertainty_weight=w, method=self.method)
        if U is None:
            u = np.full(len(idx), np.nan)
        ratio = _ratio(u, s) if w else np.full(len(idx), np.nan)
        return Selection(idx, u, bh, s, ratio, self.name, self.params(), beta=beta if w else None)


class EntropyPolicy(BalPMPolicy):
    """The diversity term alone: greedy on Ĥ (score = Ĥ, ``entropy_term`` = Ĥ; ratio NaN)."""

    name = "entropy"
    PARAMS: ClassVar[tuple[PolicyParam, ...]] = (_K, _D, _EPS, _METHOD)

    def __init__(self, k: int = 13, d: float = 1.0, eps: float = 1e-4, method: str = "heap",
                 **knn_kwargs: Any) -> None:
        super().__init__(beta=1.0, k=k, d=d, eps=eps, method=method, **knn_kwargs)

    def params(self) -> dict[str, Any]:
        return {"k": self.k, "d": self.d, "eps": self.eps}

    def _weights(self) -> tuple[float, float]:
        return 0.0, 1.0


# ----------------------------------------------------------------------------------------------- registry


class SoftmaxBaldPolicy(StochasticPolicy):
    """``softmax-bald``: B pairs drawn with probability ∝ exp(BALD / T)."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__("softmax", temperature)


class PowerBaldPolicy(StochasticPolicy):
    """``power-bald``: B pairs drawn with probability ∝ BALD^(1/T)."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__("power", temperature)


class SoftrankBaldPolicy(StochasticPolicy):
    """``softrank-bald``: B pairs drawn with probability ∝ rank^(−1/T)."""

    def __init__(self, temperature: float = 1.0) -> None:
        super().__init__("softrank", temperature)


POLICIES: dict[str, type] = {
    "random": RandomPolicy,
    "bald": TopScorePolicy,
    "softmax-bald": SoftmaxBaldPolicy,
    "power-bald": PowerBaldPolicy,
    "softrank-bald": SoftrankBaldPolicy,
    "entropy": EntropyPolicy,
    "bal-pm": BalPMPolicy,
}


def policy_names() -> list[str]:
    """Registered policy names, in a stable order."""
    return list(POLICIES)


def canonical_policy_name(name: str) -> str:
    """The registered name of ``name``: case-insensitive, ``_`` for ``-`` and ``balpm`` accepted; ValueError if none."""
    key = str(name).strip().lower().replace("_", "-")
    if key == "balpm":
        key = "bal-pm"
    if key not in POLICIES:
        raise ValueError(f"unknown acquisition policy {name!r}; choose from {', '.join(POLICIES)}")
    return key


def policy_parameters(name: str, *, advanced: bool = True) -> list[PolicyParam]:
    """The parameters policy ``name`` declares (without the ``advanced`` ones when ``advanced=False``)."""
    return [p for p in POLICIES[canonical_policy_name(name)].PARAMS if advanced or not p.advanced]


def all_policy_parameters(*, advanced: bool = False) -> list[PolicyParam]:
    """Every parameter some policy declares, once each in registry order: what a CLI or config that holds every
    policy's settings (``--beta``, ``--k``, ``--temperature``) builds its options from."""
    seen: dict[str, PolicyParam] = {}
    for cls in POLICIES.values():
        for p in cls.PARAMS:
            if advanced or not p.advanced:
                seen.setdefault(p.name, p)
    return list(seen.values())


def policy_params_from(name: str, values: Mapping[str, Any] | Any) -> dict[str, Any]:
    """The parameters of policy ``name`` found in ``values`` (a mapping or an object with attributes, e.g. a
    config holding every policy's settings), checked; parameters of other policies are left out."""
    get = values.get if isinstance(values, Mapping) else (lambda k, d=None: getattr(values, k, d))
    key = canonical_policy_name(name)
    missing = object()
    out = {}
    for p in POLICIES[key].PARAMS:
        v = get(p.name, missing)
        if v is not missing and v is not None:
            out[p.name] = p.check(v, key)
    return out


def get_policy(name: str, **params: Any) -> Policy:
    """Instantiate a registered policy with ``params`` checked against its declared ``PARAMS`` (type, range,
    choices); a parameter the policy does not declare is an error naming the ones it takes.

    Names are case-insensitive and ``_`` is accepted for ``-`` (``bal_pm``, ``BALPM`` too).
    """
    key = canonical_policy_name(name)
    declared = {p.name: p for p in POLICIES[key].PARAMS}
    unknown = sorted(set(params) - set(declared))
    if unknown:
        takes = ", ".join(declared) or "no parameters"
        raise ValueError(f"policy {key!r} has no parameter {unknown[0]!r}; it takes {takes}")
    return POLICIES[key](**{k: declared[k].check(v, key) for k, v in params.items()})
