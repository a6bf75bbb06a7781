"""Know before you pay: can these features learn this preference task, and will more labels help?

:func:`learnability_check` answers from the labels a user already has (a session's labels, or, in simulation, N
random labels of the pool's own), before a labelling campaign is paid for:

1. **Cross-validated quality.** K-fold by prompt group (a prompt never sits on both sides) held-out
   log-likelihood and accuracy of the preference model (:class:`balpm.model.PreferenceEnsemble`, the learner's
   model) and of three baselines: a constant P(A) (the training rate), an L2 logistic regression on the
   completion-length difference and one on the embedding difference a − b. Standard errors are clustered by
   prompt group (pairs of one prompt are not independent), and each model's gain over the constant is a paired
   difference on the same held-out pairs, so its standard error is much smaller than either model's own.
2. **A learning curve.** The same folds, the model trained on nested subsets of each training part, then
   ``LL(n) = c − a · n^(−b)`` fitted by weighted least squares (exact linear solve for ``c, a`` on a grid of
   ``b``, so there is no optimiser to fail) and extrapolated to the budget the user names. The band is the
   10th-90th percentile of the forecast over a bootstrap of prompt groups (all curve points resampled together).
3. **A verdict**, from those numbers (thresholds below, each with its reason):

   - ``no usable signal``: no model beats the constant by :data:`SIGNAL_Z` standard errors and
     :data:`MIN_GAIN` nats, and the labels rule out a useful gain: the preference model's gain plus
     :data:`SIGNAL_Z` standard errors is below :data:`USEFUL_GAIN`. A campaign with these features would pay for
     labels the model cannot use.
   - ``too few labels to tell``: no signal shown, but the interval still holds a useful gain (up to X nats).
     The reasons say X and about how many more labels would tell (standard errors shrink as 1/√labels: enough
     that :data:`SIGNAL_Z` standard errors are half of :data:`USEFUL_GAIN`, so a gain of 0 and one of
     :data:`USEFUL_GAIN` give different verdicts).
   - ``learning and still rising``: the forecast gain from the labels in hand to the budget is at least
     :data:`RISE_SHARE` of the forecast gain over the constant at the budget, and at least :data:`MIN_GAIN`.
   - ``saturating: few labels left to save``: there is signal, but the curve is (nearly) flat from here on.

Why these baselines: on our data a logistic regression on a − b matches the ensemble's all-label ceiling and the
length difference alone carries QA-Feedback's signal (``benchmarks/README.md``, "Why BAL-PM does (not) win
here"); when a baseline beats the preference model the summary says so.

The check's own validation against all-label ceilings is in ``benchmarks/README.md`` ("Learnability check"),
produced by ``benchmarks/learnability.py``. Its numerical routines (folds by prompt group, clustered standard
errors, the logistic baselines, the curve fit) are in :mod:`balpm.check_fit`; the public ones import from here too.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from balpm.check_fit import (  # noqa: F401  (_cluster_se, _fit_logistic: imported from here by tests, benchmarks)
    _cluster_se,
    _fit_logistic,
    _logistic_cv,
    fit_saturating_curve,
    group_folds,
    saturating_curve,
)
from balpm.metrics import _EPS, pair_log_likelihood
from balpm.model import PreferenceEnsemble

__all__ = [
    "CHANCE_LL",
    "LearnabilityReport",
    "MIN_LABELS",
    "USEFUL_GAIN",
    "VERDICTS",
    "check_session",
    "embed_labelled",
    "fit_saturating_curve",
    "group_folds",
    "learnability_check",
    "random_labelled_ids",
    "saturating_curve",
]

#: Log-likelihood of a coin, P(A) = 0.5, in nats.
CHANCE_LL = -math.log(2.0)
#: The verdicts: the first three in order of how much a campaign can still buy, the fourth when the labels in hand
#: cannot tell "no usable signal" from a useful one yet.
VERDICTS = ("no usable signal", "learning and still rising", "saturating: few labels left to save",
            "too few labels to tell")
#: A model shows signal when its held-out gain over the constant is this many (clustered) standard errors ...
SIGNAL_Z = 2.0
#: ... and at least this many nats: smaller gains are below what a preference model can use (hh-rlhf's whole
#: four-split pool, unlearnable from MiniLM features, sits within 0.005 nats of chance with 6,790 labels).
MIN_GAIN = 0.003
#: The smallest gain over the constant (nats, held out) worth a campaign. Set from the all-label ceilings, not from
#: the checks it is validated on: hh-rlhf's four-split mix gains 0.0045 nats with 6,790 labels (53% accuracy) and is
#: not worth labelling, harmless-base gains 0.036 (60%). A calibrated model gaining 0.01 nats is right about 57% of
#: the time, where most teams would stop.
USEFUL_GAIN = 0.01
#: "Still rising" when at least this share of the forecast gain at the budget is still to come.
RISE_SHARE = 0.25
#: Fewest A/B labels the check runs on: 5 folds of 8 pairs, and a curve of at least 3 nested subsets.
MIN_LABELS = 40
#: Names of the models in :attr:`LearnabilityReport.models` (the preference model first).
MODEL_NAMES = ("preference model", "constant P(A)", "logistic on length difference", "logistic on a − b")


# ------------------------------------------------------------------------------------------------ small helpers
# (the folds, clustered standard errors, logistic baselines and curve fit are in balpm.check_fit)
def random_labelled_ids(pool: Any, n: int, seed: int = 0) -> list[str]:
    """``n`` random pairs with a label in ``pool`` (simulation: the pool's own labels play the annotators)."""
    labelled = np.flatnonzero(~np.isnan(pool.labels))
    if n > len(labelled):
        raise ValueError(f"--labels {n}: the pool {pool.name!r} has only {len(labelled)} labelled pairs")
    rows = np.sort(np.random.default_rng(seed).choice(labelled, size=n, replace=False))
    return pool.ids[rows].tolist()


def _length_features(pool: Any, rows: np.ndarray) -> np.ndarray:
    la = np.array([len(t) for t in pool.completion_texts("a")], dtype=np.float64)[rows]  # as embedded: no padding
    lb = np.array([len(t) for t in pool.completion_texts("b")], dtype=np.float64)[rows]
    return np.stack([la - lb, np.log1p(la) - np.log1p(lb)], axis=1)


# ------------------------------------------------------------------------------------------------------ report
@dataclass
class LearnabilityReport:
    """What :func:`learnability_check` found; :meth:`summary` says it in words.

    Attributes
    ----------
    verdict : str
        One of :data:`VERDICTS`.
    reasons : list of str
        The numbers behind the verdict, one sentence each.
    n_labels, n_groups, folds, budget : int
        Labelled pairs used, their prompt groups, CV folds, the budget forecast for.
    models : DataFrame
        One row per model (:data:`MODEL_NAMES`): ``log_likelihood``, ``ll_se``, ``accuracy``, ``accuracy_se``,
        ``gain`` (held-out LL minus the constant's on the same pairs), ``gain_se``, ``z`` (gain / gain_se).
    curve : DataFrame
        ``model``, ``n_train`` (mean training pairs per fold), ``log_likelihood``, ``ll_se``: the preference
        model's held-out LL over nested subsets of each training part.
    fit : dict
        ``c``, ``a``, ``b`` of the preference model's :func:`saturating_curve`.
    forecast : DataFrame
        ``n``, ``log_likelihood``, ``lo``, ``hi``: the fitted curve from the smallest subset to the budget with its
        10-90% bootstrap band (``n_boot`` resamples of prompt groups).
    forecast_now, forecast_budget : float
        The fitted curve at ``n_labels`` and at ``budget``; ``forecast_budget_lo`` / ``_hi`` its band.
    seconds : float
        Wall time of the check.
    pair_ids, pair_ll : ndarray, dict of ndarray
        The labelled pairs the check used (ties left out) and each model's held-out log-likelihood of each of
        them, in that order: the per-pair numbers behind :attr:`models`, for paired comparisons of two reports
        on the same pairs (e.g. two feature sets). Not in :meth:`to_dict`.
    """

    verdict: str
    reasons: list[str]
    n_labels: int
    n_groups: int
    folds: int
    budget: int
    models: pd.DataFrame
    curve: pd.DataFrame
    fit: dict[str, float]
    forecast: pd.DataFrame
    forecast_now: float
    forecast_budget: float
    forecast_budget_lo: float
    forecast_budget_hi: float
    seconds: float
    settings: dict[str, Any] = field(default_factory=dict)
    pair_ids: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=str), repr=False)
    pair_ll: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def model_row(self, name: str) -> pd.Series:
        """The :attr:`models` row of ``name``."""
        return self.models.set_index("model").loc[name]

    def summary(self) -> str:
        """A plain-text report: verdict, reasons, the CV table and the forecast."""
        lines = [f"verdict: {self.verdict}"]
        lines += [f"  - {r}" for r in self.reasons]
        lines.append(f"{self.folds}-fold CV by prompt group on {self.n_labels} labelled pairs ({self.n_groups} "
                     f"prompt groups); chance is {CHANCE_LL:.4f} nats; ± is one standard error (clustered by group)")
        width = max(len(m) for m in self.models["model"])
        lines.append(f"  {'model':{width}s}  held-out LL          accuracy         gain over constant")
        for _, r in self.models.iterrows():
            lines.append(f"  {r['model']:{width}s}  {r['log_likelihood']:.4f} ± {r['ll_se']:.4f}   "
                         f"{r['accuracy']:.3f} ± {r['accuracy_se']:.3f}   {r['gain']:+.4f} ± {r['gain_se']:.4f}")
        pts = self.curve[self.curve["model"] == MODEL_NAMES[0]]
        lines.append("learning curve (preference model, held-out LL by training pairs): " + ", ".join(
            f"{int(round(n))}: {v:.4f}" for n, v in zip(pts["n_train"], pts["log_likelihood"])))
        lines.append(f"fit LL(n) = {self.fit['c']:.4f} − {self.fit['a']:.4f}·n^(−{self.fit['b']:.2f}); "
                     f"at {self.n_labels} labels {self.forecast_now:.4f}, at the budget of {self.budget} "
                     f"{self.forecast_budget:.4f} (10-90% band {self.forecast_budget_lo:.4f} to "
                     f"{self.forecast_budget_hi:.4f})")
        lines.append(f"({self.seconds:.1f} s)")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready numbers (for ``balpm check --json`` and the benchmark)."""
        return {"verdict": self.verdict, "reasons": list(self.reasons), "n_labels": self.n_labels,
                "n_groups": self.n_groups, "folds": self.folds, "budget": self.budget,
                "models": self.models.to_dict(orient="records"), "curve": self.curve.to_dict(orient="records"),
                "fit": dict(self.fit), "forecast_now": self.forecast_now, "forecast_budget": self.forecast_budget,
                "forecast_budget_lo": self.forecast_budget_lo, "forecast_budget_hi": self.forecast_budget_hi,
                "seconds": self.seconds, "settings": dict(self.settings)}


# ------------------------------------------------------------------------------------------------------- check
def _rows_for(ids: np.ndarray, index: pd.Index, what: str) -> np.ndarray:
    rows = index.get_indexer(ids)
    if (rows < 0).any():
        missing = ids[rows < 0]
        raise ValueError(f"{len(missing)} labelled pair(s) are not in the {what}, e.g. {str(missing[0])!r}")
    return rows


def learnability_check(
    pool: Any,
    embeddings: Any,
    ids: Sequence[str] | None = None,
    labels: Sequence[float] | Mapping[str, int] | None = None,
    *,
    budget: int | None = None,
    folds: int = 5,
    seed: int = 0,
    ensemble_params: Mapping[str, Any] | None = None,
    curve_fractions: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
    repeats: int = 3,
    n_boot: int = 200,
) -> LearnabilityReport:
    """Cross-validate the preference model and baselines on the labels in hand and forecast the budget.

    Parameters
    ----------
    pool : balpm.data.PreferencePool
        The pool (texts for the length baseline, groups for the folds).
    embeddings : balpm.embed.PoolEmbeddings
        Vectors of at least the labelled pairs (matched by id, so embedding only those is enough).
    ids : sequence of str, optional
        The labelled pairs. Default: every pair of ``pool`` with a label.
    labels : sequence or mapping, optional
        1 = A preferred, 0 = B; a mapping ``id → label`` (a session's ``store.label_map()``) or one value per
        ``ids``. Default: the pool's own labels (simulation). Ties / NaN are left out.
    budget : int, optional
        Labels the campaign would buy in total; default the pool's size.
    folds : int
        K of the K-fold split by prompt group.
    seed : int
        Seeds the folds, the subsets, the ensemble and the bootstrap: same inputs, same report.
    ensemble_params : mapping, optional
        :class:`balpm.model.PreferenceEnsemble` parameters (a session's ``model_params``); default the defaults.
    curve_fractions : sequence of float
        Nested subset sizes of each training part for the learning curve (1.0 = the CV fit itself).
    repeats : int
        Cross-validation repeats of the preference model (new folds and member seeds each), whose held-out
        probabilities are averaged per pair.
    n_boot : int
        Bootstrap resamples of prompt groups for the forecast band.

    Returns
    -------
    LearnabilityReport

    Raises
    ------
    ValueError
        Fewer than ``folds`` prompt groups or :data:`MIN_LABELS` labels, a single class, or labelled ids missing
        from the pool or the embeddings.
    """
    t0 = time.perf_counter()
    ids_arr, y = _labels_in_hand(pool, ids, labels)
    a, b, lengths, groups = _pair_inputs(pool, embeddings, ids_arr)
    codes = pd.factorize(pd.Series(groups))[0]
    n = len(y)
    budget = int(budget) if budget is not None else int(len(pool))
    if budget < n:
        raise ValueError(f"budget {budget} is below the {n} labels already in hand; name the campaign's total")
    params = {"device": "cpu"} | dict(ensemble_params or {})
    fracs = sorted({float(f) for f in curve_fractions} | {1.0})
    preds, curve_p, curve_ok, n_train = _out_of_fold(a, b, y, lengths, groups, folds, seed, repeats, params, fracs)
    models = _cv_table(preds, y, codes)
    curve, fit, forecast = _learning_curve(curve_p, curve_ok, n_train, y, codes, budget, seed, n_boot)
    now = float(saturating_curve(n, fit["c"], fit["a"], fit["b"]))
    at_budget = float(saturating_curve(budget, fit["c"], fit["a"], fit["b"]))
    at = int(np.searchsorted(forecast["n"].to_numpy(), budget))
    b_lo, b_hi = float(forecast["lo"].iloc[at]), float(forecast["hi"].iloc[at])

    verdict, reasons = _verdict(models, now, at_budget, b_lo, b_hi, n, budget)
    return LearnabilityReport(
        verdict=verdict, reasons=reasons, n_labels=n, n_groups=len(np.unique(codes)), folds=folds, budget=budget,
        models=models, curve=curve, fit=fit, forecast=forecast, forecast_now=now,
        forecast_budget=at_budget, forecast_budget_lo=b_lo, forecast_budget_hi=b_hi, seconds=time.perf_counter() - t0,
        settings={"seed": seed, "curve_fractions": fracs, "repeats": repeats, "n_boot": n_boot,
                  "ensemble_params": dict(params)},
        pair_ids=ids_arr, pair_ll={m: pair_log_likelihood(p, y) for m, p in preds.items()},
    )


def _pair_inputs(pool: Any, embeddings: Any, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The labelled pairs' vectors (A, B), length features and prompt groups, matched by id."""
    prow = _rows_for(ids, pd.Index(pool.ids), "pool")
    erow = _rows_for(ids, pd.Index(np.asarray(embeddings.ids, dtype=str)), "embeddings")
    a = np.asarray(embeddings.a[erow], dtype=np.float32)
    b = np.asarray(embeddings.b[erow], dtype=np.float32)
    return a, b, _length_features(pool, prow), pool.groups[prow]


def _labels_in_hand(pool: Any, ids: Sequence[str] | None,
                    labels: Sequence[float] | Mapping[str, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """The labelled ids and their 0/1 labels (ties and NaN left out), checked: enough of them, both sides."""
    pool_index = pd.Index(pool.ids)
    if ids is None:
        ids_arr = pool.ids[~np.isnan(pool.labels)]
    else:
        ids_arr = np.asarray(list(ids), dtype=str)
    if labels is None:
        y = pool.labels[_rows_for(ids_arr, pool_index, "pool")]
    elif isinstance(labels, Mapping):
        if ids is None:
            ids_arr = np.asarray(list(labels), dtype=str)
        y = np.array([np.nan if labels[i] is None else float(labels[i]) for i in ids_arr], dtype=np.float64)
    else:
        y = np.asarray(labels, dtype=np.float64)
        if y.shape != ids_arr.shape:
            raise ValueError(f"{len(y)} labels for {len(ids_arr)} ids")
    keep = ~np.isnan(y)
    ids_arr, y = ids_arr[keep], y[keep]
    bad = np.flatnonzero((y != 0) & (y != 1))
    if len(bad):
        raise ValueError(f"labels are 1 (A preferred) or 0 (B); pair {str(ids_arr[bad[0]])!r} has {y[bad[0]]:g}")
    if len(y) < MIN_LABELS:
        raise ValueError(f"the check needs at least {MIN_LABELS} labelled pairs (A or B); it got {len(y)}")
    if len(np.unique(y)) < 2:
        raise ValueError("every label says the same side; the check needs both A and B preferred somewhere")
    return ids_arr, y


def _out_of_fold(a: np.ndarray, b: np.ndarray, y: np.ndarray, lengths: np.ndarray, groups: np.ndarray, folds: int,
                 seed: int, repeats: int, params: dict[str, Any], fracs: list[float],
                 ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Held-out probabilities of every model for every pair, and of the preference model per curve fraction.

    Returns ``(preds by model, curve probabilities (fraction, pair), fraction usable, training sizes)``.
    """
    diff = (a - b).astype(np.float64)
    fold = group_folds(groups, folds, seed)
    n = len(y)
    # ---- out-of-fold predictions. The preference model is cross-validated `repeats` times (other folds, other
    # member seeds) and each pair's held-out probabilities averaged: one 5-member run's seed moves the gain by as
    # much as the gain itself at 256 labels (harmless-base: −0.007 to +0.019 nats over 4 seeds, same labels).
    # The baselines are deterministic given the folds: once. Curve: per fraction, each pair held out once a repeat.
    preds = {name: np.zeros(n) for name in MODEL_NAMES}
    curve_p = np.zeros((len(fracs), n))
    curve_ok = np.ones(len(fracs), dtype=bool)
    n_train = np.zeros((len(fracs), folds * repeats))
    for r in range(repeats):
        fold_r = fold if r == 0 else group_folds(groups, folds, seed * 1000 + r)
        for f in range(folds):
            te, tr = fold_r == f, np.flatnonzero(fold_r != f)
            order = tr[np.random.default_rng([seed, r, f]).permutation(len(tr))]
            for j, frac in enumerate(fracs):
                sub = np.sort(order[: max(int(round(frac * len(tr))), 2)])
                n_train[j, r * folds + f] = len(sub)
                if len(np.unique(y[sub])) < 2 or len(sub) < 8:
                    curve_ok[j] = False
                    continue
                model = PreferenceEnsemble(**(params | {"seed": seed + 100 * r + f}))
                curve_p[j, te] += model.fit(a[sub], b[sub], y[sub]).predict_proba(a[te], b[te]) / repeats
            if r == 0:
                tr0 = np.flatnonzero(~te)
                preds[MODEL_NAMES[1]][te] = np.clip(y[tr0].mean(), _EPS, 1 - _EPS)
                preds[MODEL_NAMES[2]][te] = _logistic_cv(lengths[tr0], y[tr0], groups[tr0], lengths[te], seed)
                preds[MODEL_NAMES[3]][te] = _logistic_cv(diff[tr0], y[tr0], groups[tr0], diff[te], seed)
    if not curve_ok[fracs.index(1.0)]:
        raise ValueError("a training part of the folds holds labels of one side only; label more pairs")
    preds[MODEL_NAMES[0]] = curve_p[fracs.index(1.0)]
    return preds, curve_p, curve_ok, n_train


def _cv_table(preds: dict[str, np.ndarray], y: np.ndarray, codes: np.ndarray) -> pd.DataFrame:
    """Each model's held-out log-likelihood, accuracy and gain over the constant, with prompt-clustered errors."""
    ll = {m: pair_log_likelihood(p, y) for m, p in preds.items()}
    rows = []
    for m in MODEL_NAMES:
        correct = ((preds[m] >= 0.5) == (y == 1)).astype(np.float64)
        gain = ll[m] - ll[MODEL_NAMES[1]]
        gain_se = _cluster_se(gain, codes) if m != MODEL_NAMES[1] else float("nan")
        rows.append({"model": m, "log_likelihood": float(ll[m].mean()), "ll_se": _cluster_se(ll[m], codes),
                     "accuracy": float(correct.mean()), "accuracy_se": _cluster_se(correct, codes),
                     "gain": float(gain.mean()), "gain_se": gain_se,
                     "z": float(gain.mean() / gain_se) if gain_se and gain_se > 0 else float("nan")})
    return pd.DataFrame(rows)


def _learning_curve(curve_p: np.ndarray, curve_ok: np.ndarray, n_train: np.ndarray, y: np.ndarray,
                    codes: np.ndarray, budget: int, seed: int, n_boot: int,
                    ) -> tuple[pd.DataFrame, dict[str, float], pd.DataFrame]:
    """The preference model's learning curve, its saturating fit and the forecast with a bootstrap band over
    prompt groups: ``(curve, fit {c, a, b}, forecast)``."""
    n = len(y)
    n_mean = n_train.mean(axis=1)
    mat = np.stack([pair_log_likelihood(curve_p[j], y) for j in range(len(curve_p))])[curve_ok]
    xs = n_mean[curve_ok]
    curve = pd.DataFrame({"model": MODEL_NAMES[0], "n_train": xs, "log_likelihood": mat.mean(axis=1),
                          "ll_se": [_cluster_se(row, codes) for row in mat]})
    if len(xs) < 3:
        raise ValueError(f"too few labels of each side for a learning curve ({n} labels)")
    # Unweighted: the points' standard errors shrink where predictions sit near 0.5 (few labels), which would let
    # the flat start of the curve decide the extrapolation; the curve's shape, not its noise, is the larger error.
    weights = None
    c, a_, b_ = fit_saturating_curve(xs, mat.mean(axis=1), weights)
    grid = np.unique(np.concatenate([np.geomspace(xs.min(), max(budget, n), 60).round(1), [n, budget]]))
    uniq = np.unique(codes)
    by_group = [np.flatnonzero(codes == g) for g in uniq]
    rng = np.random.default_rng([seed, 1_000_003])
    boots = np.empty((n_boot, len(grid)))
    for i in range(n_boot):
        take = np.concatenate([by_group[g] for g in rng.integers(0, len(uniq), len(uniq))])
        boots[i] = saturating_curve(grid, *fit_saturating_curve(xs, mat[:, take].mean(axis=1), weights))
    lo, hi = np.percentile(boots, [10, 90], axis=0)
    forecast = pd.DataFrame({"n": grid, "log_likelihood": saturating_curve(grid, c, a_, b_), "lo": lo, "hi": hi})
    return curve, {"c": c, "a": a_, "b": b_}, forecast


def _verdict(models: pd.DataFrame, now: float, at_budget: float, lo: float, hi: float, n: int,
             budget: int) -> tuple[str, list[str]]:
    """The plain verdict and the sentences with the numbers behind it (rules in the module docstring)."""
    m = models.set_index("model")
    const = float(m.loc[MODEL_NAMES[1], "log_likelihood"])
    learners = [x for x in MODEL_NAMES if x != MODEL_NAMES[1]]
    best = max(learners, key=lambda x: m.loc[x, "gain"])
    pm = m.loc[MODEL_NAMES[0]]
    signal = {x: bool(m.loc[x, "gain"] >= MIN_GAIN and m.loc[x, "z"] >= SIGNAL_Z) for x in learners}
    reasons = [f"best held-out model: {best}, {m.loc[best, 'log_likelihood']:.4f} nats "
               f"({m.loc[best, 'gain']:+.4f} ± {m.loc[best, 'gain_se']:.4f} over the constant's {const:.4f}, "
               f"accuracy {m.loc[best, 'accuracy']:.3f})"]
    if not any(signal.values()):
        reasons.append(f"no model beats the constant by {SIGNAL_Z:g} standard errors and {MIN_GAIN} nats, so "
                       f"these features show no preference signal the model could learn from {n} labels")
        return _no_signal_verdict(pm, n, budget, reasons)
    if not signal[MODEL_NAMES[0]]:
        reasons.append(f"the preference model itself gains only {pm['gain']:+.4f} ± {pm['gain_se']:.4f}; the "
                       f"signal is in: {', '.join(x for x in learners if signal[x])}")
    elif best != MODEL_NAMES[0] and m.loc[best, "gain"] - pm["gain"] > 0:
        reasons.append(f"a {best} does as well or better than the preference model ({pm['log_likelihood']:.4f})")
    total = at_budget - const
    still = at_budget - now
    reasons.append(f"the fitted curve gives {now:.4f} at {n} labels and {at_budget:.4f} at {budget} "
                   f"(10-90% band {lo:.4f} to {hi:.4f}): {still:+.4f} nats still to gain, "
                   f"{(still / total if total > 0 else 0.0):.0%} of the forecast gain over the constant")
    if signal[MODEL_NAMES[0]] and total > 0 and still >= MIN_GAIN and still >= RISE_SHARE * total:
        return VERDICTS[1], reasons
    return VERDICTS[2], reasons


def _no_signal_verdict(pm: pd.Series, n: int, budget: int, reasons: list[str]) -> tuple[str, list[str]]:
    """No signal shown: ``no usable signal`` when the interval rules out a useful gain, else ``too few labels to
    tell``, with the labels that would tell (the ±:data:`SIGNAL_Z` s.e. interval half of :data:`USEFUL_GAIN` wide,
    the standard error shrinking as 1/√labels)."""
    se = float(pm["gain_se"])
    upper = float(pm["gain"]) + SIGNAL_Z * se if np.isfinite(se) else float("inf")
    if upper < USEFUL_GAIN:
        reasons.append(f"{n} labels rule out a preference-model gain above {upper:.4f} nats over the constant "
                       f"({SIGNAL_Z:g} standard errors above what was seen), below the {USEFUL_GAIN} nats worth a "
                       "campaign")
        return VERDICTS[0], reasons
    need = int(math.ceil(n * (SIGNAL_Z * se / (USEFUL_GAIN / 2)) ** 2)) if np.isfinite(se) else 4 * n
    more = max(need - n, 1)
    whole = (f"about {more:,} more (≈{need:,} in all)" if need <= budget else
             f"more than the budget of {budget:,} allows (≈{need:,} in all); label part of it and check again")
    reasons.append(f"too few labels to tell: {n} labels cannot rule out a preference-model gain of up to {upper:.4f} "
                   f"nats over the constant ({SIGNAL_Z:g} standard errors above what was seen), and "
                   f"{USEFUL_GAIN} nats would be worth a campaign; label {whole} to tell a useful gain from none")
    return VERDICTS[3], reasons


# ------------------------------------------------------------------------------------------- entry points' helpers
def embed_labelled(pool: Any, ids: Sequence[str], embedder: Any, cache_dir: Any = None, progress: Any = None, *,
                   folder: Any = None, **embedder_kwargs: Any) -> Any:
    """Vectors of only the pairs ``ids`` of ``pool`` (the check needs no others), through the usual vector cache.

    ``embedder`` is a :class:`balpm.embed.Embedder` or an embedding model value: a model name (loaded with
    ``embedder_kwargs``) or ``file:PATH``, your own vectors, read instead (:mod:`balpm.vectors`; relative paths
    inside ``folder``, a session's).
    """
    from balpm.embed import Embedder, embed_pool
    from balpm.vectors import model_vectors_file, read_vectors

    sub = pool.subset(np.sort(_rows_for(np.asarray(list(ids), dtype=str), pd.Index(pool.ids), "pool")))
    if isinstance(embedder, str):
        path = model_vectors_file(embedder, folder)
        if path is not None:
            return read_vectors(path, sub)
        embedder = Embedder(embedder, **embedder_kwargs)
    return embed_pool(sub, embedder, cache_dir=cache_dir, progress=progress)


def check_session(session: Any, pool: Any | None = None, embeddings: Any | None = None, *,
                  cache_dir: Any = None, **kwargs: Any) -> LearnabilityReport:
    """:func:`learnability_check` on the labels a session has so far (its label database is the truth).

    ``pool`` / ``embeddings`` default to the session's pool and vectors of its labelled pairs only (embedded with
    the session's model through the cache, or read from the file a ``file:PATH`` model names); the ensemble uses
    the session's model parameters. ``kwargs`` go to :func:`learnability_check` (``budget``, ``folds``, ``seed``).
    """
    pool = session.load_pool() if pool is None else pool
    labels = session.store.label_map()
    if not labels:
        raise ValueError(f"session {session.name!r} has no A/B labels yet; label some pairs first")
    if embeddings is None:
        ec = session.config.embedding
        embeddings = embed_labelled(pool, list(labels), ec.embedding_model, cache_dir=cache_dir,
                                    folder=session.folder, device=ec.device, batch_size=int(ec.embed_batch_size),
                                    max_length=int(ec.max_length))
    kwargs.setdefault("ensemble_params", session.config.ensemble_params())
    kwargs.setdefault("seed", int(session.config.seed))
    return learnability_check(pool, embeddings, list(labels), labels, **kwargs)
