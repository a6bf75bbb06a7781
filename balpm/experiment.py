"""Simulated active-learning runs (the dataset's own labels are the oracle), run folders, comparisons, labels saved.

A run folder holds

- ``config.json``: the :class:`ExperimentConfig` plus what the run resolved (pool sizes, embedding model id,
  versions, start and end time);
- ``metrics.csv``: one row per round and evaluation split (``test``, and ``ood`` when configured), columns
  :data:`METRIC_COLUMNS`;
- ``acquired.csv``: one row per acquired pair (round 0 is the random initial set), columns
  :data:`ACQUIRED_COLUMNS`.

Round ``r`` of ``metrics.csv`` describes the state after ``r`` acquisition rounds: the ensemble trained on the
initial set plus ``r`` batches (``n_labeled``), and the selection statistics and timings of the batch of round
``r`` (NaN for round 0). Both files are rewritten after every round, so an interrupted run keeps what it finished.

:func:`compare_runs` averages runs over seeds; :func:`labels_saved` reads off how many labels a policy saves
against a reference policy (the paper's headline number), counting from where the policy's mean curve stays at or
above the reference's final score, not from its first touch.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from balpm.safeio import atomic_write_text

__all__ = [
    "ExperimentConfig",
    "run_experiment",
    "load_experiment_pools",
    "load_labelled_sample",
    "compare_runs",
    "labels_saved",
    "labels_saved_table",
    "load_run",
    "write_report",
    "policy_params_for",
    "METRICS",
    "METRIC_COLUMNS",
    "ACQUIRED_COLUMNS",
]

METRICS = ("log_likelihood", "accuracy", "brier", "ece", "mean_bald")
HIGHER_IS_BETTER = {"log_likelihood": True, "accuracy": True, "brier": False, "ece": False, "mean_bald": False}
METRIC_COLUMNS = (
    "dataset", "policy", "seed", "round", "n_labeled", "split", *METRICS, "n_eval",
    "ratio_median", "ratio_q25", "ratio_q75", "uncertainty_mean", "entropy_term_mean",
    "fit_seconds", "score_seconds", "select_seconds", "eval_seconds",
)
ACQUIRED_COLUMNS = ("round", "pick", "id", "label", "uncertainty", "entropy_term", "score", "ratio")

Progress = Callable[[int, int], None]


def _int_tuple(text: str) -> tuple[int, ...]:
    """``"2048,256"`` → ``(2048, 256)`` (argparse type of tuple fields)."""
    parts = [p for p in str(text).replace(" ", "").split(",") if p]
    return tuple(int(p) for p in parts)


@dataclass
class ExperimentConfig:
    """Everything that defines a simulated run; every field is a ``balpm run`` option (``--max-pairs`` ...)."""

    dataset: str = field(default="hh-rlhf:harmless-base", metadata={
        "help": "pool file or built-in name (hh-rlhf, hh-rlhf:harmless-base, qa-feedback, ...)"})
    max_pairs: int | None = field(default=2000, metadata={
        "help": "sample whole prompt groups down to about this many pairs before splitting (0 or none: all)"})
    test_fraction: float = field(default=0.2, metadata={"help": "fraction of pairs (whole groups) held out for test"})
    ood_dataset: str | None = field(default=None, metadata={
        "help": "optional out-of-distribution pool evaluated every round (split 'ood')"})
    ood_max_pairs: int | None = field(default=500, metadata={"help": "cap on the OOD pool (whole groups)"})
    model: str = field(default="default", metadata={
        "help": "embedding model: default (MiniLM), smollm2, a hub name or a local folder"})
    max_length: int = field(default=256, metadata={"help": "tokens per embedded text (left-truncated)"})
    embed_batch_size: int = field(default=32, metadata={"help": "texts per embedding forward pass"})
    device: str | None = field(default=None, metadata={"help": "torch device (default: cuda, mps, then cpu)"})
    cache_dir: str | None = field(default=None, metadata={
        "help": "embedding and kNN cache folder (default: $BALPM_CACHE_DIR or ~/.cache/balpm)"})
    policy: str = field(default="bal-pm", metadata={
        "help": "acquisition policy: bal-pm, random, bald, softmax-bald, power-bald, softrank-bald, entropy"})
    beta: float = field(default=0.01, metadata={"help": "bal-pm: weight of the prompt entropy term"})
    k: int = field(default=13, metadata={"help": "bal-pm/entropy: neighbour rank of the kNN entropy estimate"})
    temperature: float = field(default=1.0, metadata={"help": "softmax/power/softrank-bald: sampling temperature"})
    initial: int = field(default=32, metadata={"help": "random initial labelled pairs (round 0)"})
    batch_size: int = field(default=32, metadata={"help": "pairs acquired per round"})
    rounds: int = field(default=10, metadata={"help": "acquisition rounds after the initial set"})
    seed: int = field(default=0, metadata={"help": "seed of the initial set, the picks and the ensemble training"})
    strict: bool = field(default=False, metadata={
        "help": "refuse a pool at the first record its format would drop (empty completion, tie, duplicate ...) "
                "instead of dropping and counting it"})
    data_seed: int = field(default=0, metadata={
        "help": "seed of the A/B coin, the pool sample and the train/test split: fixed across --seed values so "
                "that every seed is scored on the same test set"})
    n_members: int = field(default=5, metadata={"help": "ensemble members"})
    hidden: tuple[int, ...] = field(default=(64,), metadata={
        "help": "hidden widths of each reward head, comma separated (the model's default; paper: 2048,256)",
        "type": _int_tuple})
    lr: float = field(default=1e-3, metadata={"help": "AdamW learning rate of the heads"})
    weight_decay: float = field(default=0.0, metadata={"help": "AdamW weight decay"})
    train_batch_size: int = field(default=32, metadata={"help": "training minibatch size (pairs)"})
    max_epochs: int = field(default=15, metadata={"help": "epoch cap of one ensemble fit"})
    patience: int = field(default=3, metadata={"help": "early-stopping patience (epochs)"})
    tag: str = field(default="", metadata={
        "help": "label told apart in comparisons (e.g. beta=0.1): runs are grouped by policy + tag"})
    out: str | None = field(default=None, metadata={
        "help": "run folder (default runs/<dataset>-<policy>[-<tag>]-seed<seed>)"})

    def model_params(self) -> dict[str, Any]:
        """Constructor parameters of :class:`balpm.model.PreferenceEnsemble`."""
        return {
            "n_members": int(self.n_members), "hidden": tuple(int(h) for h in self.hidden), "lr": float(self.lr),
            "weight_decay": float(self.weight_decay), "batch_size": int(self.train_batch_size),
            "max_epochs": int(self.max_epochs), "patience": int(self.patience), "device": self.device,
        }

    def policy_label(self) -> str:
        return f"{self.policy} [{self.tag}]" if self.tag else self.policy

    def out_dir(self) -> Path:
        if self.out:
            return Path(self.out)
        name = "-".join(x for x in (_slug(self.dataset), _slug(self.policy), _slug(self.tag)) if x)
        return Path("runs") / f"{name}-seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(d["hidden"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names}
        if "hidden" in kw:
            kw["hidden"] = tuple(kw["hidden"])
        return cls(**kw)


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in str(s)).strip("-")


def policy_params_for(config: ExperimentConfig) -> dict[str, Any]:
    """The constructor parameters the configured policy takes (others are ignored, not errors)."""
    name = config.policy.strip().lower().replace("_", "-")
    if name in ("bal-pm", "balpm"):
        return {"beta": float(config.beta), "k": int(config.k)}
    if name == "entropy":
        return {"k": int(config.k)}
    if name in ("softmax-bald", "power-bald", "softrank-bald"):
        return {"temperature": float(config.temperature)}
    return {}


# ------------------------------------------------------------------------------------------------ running
def load_labelled_sample(source: str, max_pairs: int | None = None, seed: int = 0, strict: bool = False) -> Any:
    """The labelled pairs of a pool, sampled down to about ``max_pairs`` pairs by whole prompt groups.

    Parameters
    ----------
    source : str
        What :func:`balpm.data.load_pool` takes (a path or a built-in name such as ``hh-rlhf``).
    max_pairs : int, optional
        Cap on the pairs (whole groups, :meth:`PreferencePool.sample_groups`); None or 0 keeps them all.
    seed : int
        Seed of the A/B coin of the loader and of the group sample (a run's ``data_seed``).
    strict : bool
        Refuse the source at its first record the format would drop (:func:`balpm.data.load_pool`).

    Returns
    -------
    PreferencePool
        Only pairs with a label (the simulated oracle can answer no other).
    """
    from balpm.data import load_pool

    pool = load_pool(source, seed=seed, strict=strict)
    pool = pool.subset(~np.isnan(pool.labels))
    return pool.sample_groups(int(max_pairs), seed) if max_pairs else pool


def load_experiment_pools(config: ExperimentConfig) -> tuple[Any, Any, Any | None]:
    """The pools a run of ``config`` uses, exactly as :func:`run_experiment` loads them.

    Parameters
    ----------
    config : ExperimentConfig
        Reads ``dataset``, ``max_pairs``, ``test_fraction``, ``data_seed``, ``ood_dataset``, ``ood_max_pairs``.

    Returns
    -------
    train_pool : PreferencePool
        What the learner picks from.
    test_pool : PreferencePool
        Held-out prompt groups (:meth:`PreferencePool.split_by_group` with ``test_fraction``, ``data_seed``): no
        prompt is on both sides.
    ood_pool : PreferencePool or None
        The out-of-distribution pool (``ood_dataset``, capped at ``ood_max_pairs``), None when not configured.

    Notes
    -----
    Every pool is :func:`load_labelled_sample` of its source with ``data_seed``, so every ``seed`` of a
    comparison sees the same sample and test set.
    """
    pool = load_labelled_sample(config.dataset, config.max_pairs, config.data_seed, config.strict)
    train, test = pool.split_by_group(config.test_fraction, config.data_seed)
    ood = None
    if config.ood_dataset:
        ood = load_labelled_sample(config.ood_dataset, config.ood_max_pairs, config.data_seed, config.strict)
    return train, test, ood


def _atomic_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def _atomic_json(obj: Any, path: Path) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str))


def _selection_stats(sel: pd.DataFrame | None) -> dict[str, float]:
    nan = float("nan")
    if sel is None or not len(sel):
        return {"ratio_median": nan, "ratio_q25": nan, "ratio_q75": nan, "uncertainty_mean": nan,
                "entropy_term_mean": nan}
    r = sel["ratio"].to_numpy(dtype=np.float64)
    r = r[np.isfinite(r)]
    q = np.quantile(r, [0.25, 0.5, 0.75]) if r.size else [nan, nan, nan]
    et = sel["entropy_term"].to_numpy(dtype=np.float64)
    return {
        "ratio_median": float(q[1]), "ratio_q25": float(q[0]), "ratio_q75": float(q[2]),
        "uncertainty_mean": float(np.nanmean(sel["uncertainty"])) if sel["uncertainty"].notna().any() else nan,
        "entropy_term_mean": float(np.nanmean(et)) if np.isfinite(et).any() else nan,
    }


def ratio_by_round(picks: pd.DataFrame) -> pd.DataFrame:
    """Per round: number of scored picks, median and quartiles of ``U / score``, mean BALD and mean β·Ĥ.

    ``picks`` holds one row per pick with ``round``, ``ratio``, ``uncertainty`` and ``entropy_term`` (a run's
    ``acquired.csv`` or ``Session.pick_history()``); picks without a finite ratio (random batches) are left out.
    """
    cols = ["round", "picks", "ratio_median", "ratio_q25", "ratio_q75", "uncertainty_mean", "entropy_term_mean"]
    if not len(picks):
        return pd.DataFrame(columns=cols)
    ok = np.isfinite(pd.to_numeric(picks["ratio"], errors="coerce").to_numpy(dtype=np.float64))
    rows = [{"round": rnd, "picks": len(g), **_selection_stats(g)} for rnd, g in picks[ok].groupby("round")]
    return pd.DataFrame(rows, columns=cols)


_EMBEDDERS: dict[tuple[Any, ...], Any] = {}


def _embedder(config: ExperimentConfig) -> Any:
    """One loaded embedding model per setting and process: a benchmark of many runs loads it once."""
    from balpm.embed import Embedder

    key = (config.model, config.device, int(config.embed_batch_size), int(config.max_length))
    if key not in _EMBEDDERS:
        _EMBEDDERS.clear()  # keep at most one model in memory
        _EMBEDDERS[key] = Embedder(config.model, device=config.device, batch_size=config.embed_batch_size,
                                   max_length=config.max_length)
    return _EMBEDDERS[key]


def run_experiment(
    config: ExperimentConfig,
    progress: Progress | None = None,
    on_round: Callable[[int, pd.DataFrame], None] | None = None,
    *,
    embed_progress: Progress | None = None,
) -> Path:
    """Run one simulated active-learning experiment and write its run folder.

    Parameters
    ----------
    config : ExperimentConfig
    progress : callable, optional
        ``progress(done_rounds, total_rounds)`` after each round (total = ``rounds + 1``, round 0 included).
    on_round : callable, optional
        ``on_round(round, metrics_rows)`` with that round's rows of ``metrics.csv`` (for live plots).
    embed_progress : callable, optional
        ``progress(done, total)`` of the embedding of train, test and OOD pools.

    Returns
    -------
    Path
        The run folder (``config.out_dir()``).
    """
    from balpm.embed import embed_pool
    from balpm.learner import ActiveLearner

    out = config.out_dir()
    out.mkdir(parents=True, exist_ok=True)
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()

    train, test, ood = load_experiment_pools(config)
    if config.initial > len(train):
        raise ValueError(f"initial={config.initial} exceeds the {len(train)} training pairs")
    embedder = _embedder(config)
    emb_train = embed_pool(train, embedder, cache_dir=config.cache_dir, progress=embed_progress)
    emb_test = embed_pool(test, embedder, cache_dir=config.cache_dir, progress=embed_progress)
    emb_ood = embed_pool(ood, embedder, cache_dir=config.cache_dir, progress=embed_progress) if ood else None
    embed_seconds = time.perf_counter() - t0

    knn_dir = Path(config.cache_dir) / "knn" if config.cache_dir else None
    learner = ActiveLearner(
        train, emb_train, policy=config.policy, policy_params=policy_params_for(config),
        model_params=config.model_params(), batch_size=config.batch_size, seed=config.seed,
        knn_k=config.k, knn_cache_dir=knn_dir,
    )
    learner.initialize(config.initial)

    info = {
        "config": config.to_dict(),
        "policy_label": config.policy_label(),
        "resolved": {
            "n_train": len(train), "n_test": len(test), "n_ood": len(ood) if ood is not None else 0,
            "embedding_model_id": embedder.model_id, "embedding_dim": int(emb_train.dim),
            "embed_seconds": embed_seconds, "embed_stats": [emb_train.stats, emb_test.stats],
            "started": started, "finished": None, "python": platform.python_version(),
        },
    }
    _atomic_json(info, out / "config.json")

    splits = [("test", test, emb_test)] + ([("ood", ood, emb_ood)] if ood is not None else [])
    metric_rows: list[dict[str, Any]] = []
    acquired = learner.acquired().assign(pick=np.nan, uncertainty=np.nan, entropy_term=np.nan, score=np.nan,
                                         ratio=np.nan)[list(ACQUIRED_COLUMNS)]
    total = int(config.rounds) + 1
    sel: pd.DataFrame | None = None
    for r in range(total):
        if r > 0:
            sel = learner.oracle_step()
            if not len(sel):
                break  # the pool ran dry
            labels = learner.labels_[sel["row"].to_numpy()]
            acquired = pd.concat([acquired, sel.assign(label=labels)[list(ACQUIRED_COLUMNS)]], ignore_index=True)
        learner.fit()
        times = {"fit_seconds": learner.timings_.get("fit", np.nan),
                 "score_seconds": learner.timings_.get("score", np.nan) if r else np.nan,
                 "select_seconds": learner.timings_.get("select", np.nan) if r else np.nan}
        stats = _selection_stats(sel if r else None)
        rows = []
        for split, pool, emb in splits:
            te = time.perf_counter()
            m = learner.evaluate(pool, emb)
            row = {"dataset": config.dataset, "policy": config.policy_label(), "seed": config.seed, "round": r,
                   "n_labeled": learner.n_labeled_, "split": split, **{k: m[k] for k in METRICS},
                   "n_eval": m["n"], **stats, **times, "eval_seconds": time.perf_counter() - te}
            rows.append(row)
        metric_rows += rows
        _atomic_csv(pd.DataFrame(metric_rows, columns=list(METRIC_COLUMNS)), out / "metrics.csv")
        _atomic_csv(acquired, out / "acquired.csv")
        if on_round is not None:
            on_round(r, pd.DataFrame(rows, columns=list(METRIC_COLUMNS)))
        if progress is not None:
            progress(r + 1, total)

    info["resolved"]["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    info["resolved"]["seconds"] = time.perf_counter() - t0
    _atomic_json(info, out / "config.json")
    return out


# ------------------------------------------------------------------------------------------------ comparing
def load_run(run_dir: str | os.PathLike[str]) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """``(config.json, metrics, acquired)`` of a run folder (``acquired`` empty if missing)."""
    d = Path(run_dir)
    if not (d / "metrics.csv").exists():
        raise FileNotFoundError(f"{d}: not a run folder (no metrics.csv)")
    info = json.loads((d / "config.json").read_text()) if (d / "config.json").exists() else {}
    metrics = pd.read_csv(d / "metrics.csv")
    acq = pd.read_csv(d / "acquired.csv", dtype={"id": str}) if (d / "acquired.csv").exists() else pd.DataFrame(
        columns=list(ACQUIRED_COLUMNS))
    return info, metrics, acq


def find_runs(root: str | os.PathLike[str], depth: int = 3) -> list[Path]:
    """Run folders (holding ``metrics.csv``) at or below ``root``, at most ``depth`` levels down, sorted.

    Hidden folders are skipped; an unreadable folder is skipped rather than failing the search.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = [root] if (root / "metrics.csv").is_file() else []
    if depth > 0:
        try:
            children = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            children = []
        for child in children:
            found += find_runs(child, depth - 1)
    return found


def load_runs(dirs: Iterable[str | os.PathLike[str]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Concatenated ``metrics.csv`` and ``acquired.csv`` rows of several run folders.

    The acquired rows gain ``policy`` (the run's policy label), ``seed``, ``dataset`` and ``run`` (the folder), so
    picks of many runs can be grouped like their metrics.
    """
    metrics, acquired = [], []
    for d in dirs:
        info, m, a = load_run(d)
        metrics.append(m)
        cfg = info.get("config", {})
        label = info.get("policy_label") or (m["policy"].iloc[0] if len(m) and "policy" in m else Path(d).name)
        if len(a):
            acquired.append(a.assign(policy=label, seed=cfg.get("seed"), dataset=cfg.get("dataset"), run=str(d)))
    return (pd.concat(metrics, ignore_index=True) if metrics else pd.DataFrame(columns=list(METRIC_COLUMNS)),
            pd.concat(acquired, ignore_index=True) if acquired else pd.DataFrame())


def compare_runs(dirs: Iterable[str | os.PathLike[str]] | pd.DataFrame) -> pd.DataFrame:
    """Mean and standard error over seeds, per dataset, policy, split and number of labels.

    Parameters
    ----------
    dirs : iterable of run folders, or a DataFrame of concatenated ``metrics.csv`` rows

    Returns
    -------
    pandas.DataFrame
        Columns ``dataset``, ``policy``, ``split``, ``n_labeled``, ``round``, ``n_seeds``, and for every metric
        ``{metric}_mean`` and ``{metric}_se`` (standard error ``std(ddof=1)/√n``; NaN with one seed).
    """
    if isinstance(dirs, pd.DataFrame):
        df = dirs
    else:
        frames = [load_run(d)[1] for d in dirs]
        if not frames:
            raise ValueError("compare_runs needs at least one run folder")
        df = pd.concat(frames, ignore_index=True)
    keys = ["dataset", "policy", "split", "n_labeled"]
    g = df.groupby(keys, sort=True)
    out = g.agg(round=("round", "min"), n_seeds=("seed", "nunique")).reset_index()
    for m in METRICS:
        if m not in df.columns:
            continue
        agg = g[m].agg(["mean", "std", "count"]).reset_index(drop=True)
        out[f"{m}_mean"] = agg["mean"].to_numpy()
        se = agg["std"].to_numpy() / np.sqrt(agg["count"].to_numpy())
        out[f"{m}_se"] = np.where(agg["count"].to_numpy() > 1, se, np.nan)
    return out


def labels_saved(
    curves: pd.DataFrame,
    policy: str,
    reference: str,
    *,
    metric: str = "log_likelihood",
    split: str = "test",
    dataset: str | None = None,
) -> dict[str, Any]:
    """How many fewer labels ``policy`` needs than ``reference`` to reach the reference's final score.

    The target is the reference's mean ``metric`` at its largest ``n_labeled``. ``labels_needed`` is the smallest
    label count from which the policy's mean curve *stays* at or above the target (≥ for log-likelihood and
    accuracy, ≤ for Brier and ECE) at every later point: the start of the final run of points that reach the
    target, linearly interpolated between that point and the (missing) point before it, i.e. at the last upward
    crossing. A noisy curve that touches the target early and falls back does not count from its first touch
    (the note says where it first crossed); a curve whose last point is below the target has not reached it.

    Parameters
    ----------
    curves : DataFrame
        :func:`compare_runs` output.
    policy, reference : str
        Values of the ``policy`` column.
    dataset : str, optional
        Needed when ``curves`` holds several datasets.

    Returns
    -------
    dict
        ``dataset``, ``policy``, ``reference``, ``metric``, ``target``, ``reference_labels`` (n at the target),
        ``reached`` (bool: the curve ends at or above the target), ``labels_needed`` (float, NaN if not reached),
        ``labels_saved`` (reference_labels − labels_needed; negative means the policy needs more),
        ``percent_saved`` (of reference_labels), ``note``.
    """
    df = curves[curves["split"] == split]
    if dataset is None:
        names = df["dataset"].unique()
        if len(names) != 1:
            raise ValueError(f"curves hold datasets {list(names)}: pass dataset=")
        dataset = str(names[0])
    df = df[df["dataset"] == dataset]
    col = f"{metric}_mean" if f"{metric}_mean" in df.columns else metric
    ref = df[df["policy"] == reference].sort_values("n_labeled")
    pol = df[df["policy"] == policy].sort_values("n_labeled")
    if ref.empty or pol.empty:
        missing = reference if ref.empty else policy
        raise ValueError(f"no {split} curve for policy {missing!r} on {dataset!r}")
    target = float(ref[col].iloc[-1])
    n_ref = float(ref["n_labeled"].iloc[-1])
    higher = HIGHER_IS_BETTER.get(metric, True)
    n = pol["n_labeled"].to_numpy(dtype=np.float64)
    v = pol[col].to_numpy(dtype=np.float64)
    reached = (v >= target) if higher else (v <= target)
    gain = (target - float(ref[col].iloc[0])) * (1 if higher else -1)
    se_col = f"{metric}_se"
    se = float(ref[se_col].iloc[-1]) if se_col in ref.columns else float("nan")
    out: dict[str, Any] = {"dataset": dataset, "policy": policy, "reference": reference, "metric": metric,
                           "split": split, "target": target, "reference_labels": n_ref, "reference_gain": gain}
    notes = []
    if np.isfinite(se) and abs(gain) < 2 * se:
        notes.append("reference improved by less than 2 standard errors: read with care")
    if gain < 0:
        notes.append(f"reference ended below its first point ({gain:+.4f}): the target is not a gain")
    if not reached.any():
        best = float(np.nanmax(v) if higher else np.nanmin(v))
        notes.insert(0, f"never reached {target:.4f} within {int(n[-1])} labels (best {best:.4f})")
        return out | {"reached": False, "labels_needed": float("nan"), "labels_saved": float("nan"),
                      "percent_saved": float("nan"), "note": "; ".join(notes)}
    first = int(np.argmax(reached))
    if not reached[-1]:
        notes.insert(0, f"touched {target:.4f} at {int(n[first])} labels but ended below it "
                        f"({float(v[-1]):.4f} at {int(n[-1])}): did not stay at or above the target")
        return out | {"reached": False, "labels_needed": float("nan"), "labels_saved": float("nan"),
                      "percent_saved": float("nan"), "note": "; ".join(notes)}
    below = np.flatnonzero(~reached)
    i = int(below[-1]) + 1 if below.size else 0  # start of the final run of points at or above the target
    if i == 0:
        needed = float(n[0])
        notes.insert(0, "reached at its first point")
    else:
        frac = (target - v[i - 1]) / (v[i] - v[i - 1])
        needed = float(n[i - 1] + frac * (n[i] - n[i - 1]))
        if first < i:
            notes.insert(0, f"first touched the target at {int(n[first])} labels, fell back below, "
                            f"and stays at or above it from {needed:.0f}")
    saved = n_ref - needed
    return out | {"reached": True, "labels_needed": needed, "labels_saved": saved,
                  "percent_saved": 100.0 * saved / n_ref if n_ref else float("nan"), "note": "; ".join(notes)}


def labels_saved_table(curves: pd.DataFrame, references: Sequence[str] = ("random", "bald"),
                       metric: str = "log_likelihood", split: str = "test") -> pd.DataFrame:
    """:func:`labels_saved` of every other policy against each present reference, for every dataset."""
    rows = []
    df = curves[curves["split"] == split]
    for dataset in sorted(df["dataset"].unique()):
        policies = sorted(df.loc[df["dataset"] == dataset, "policy"].unique())
        for ref in references:
            if ref not in policies:
                continue
            for pol in policies:
                if pol != ref:
                    rows.append(labels_saved(curves, pol, ref, metric=metric, split=split, dataset=dataset))
    cols = ["dataset", "policy", "reference", "metric", "split", "target", "reference_labels", "reference_gain",
            "reached",
            "labels_needed", "labels_saved", "percent_saved", "note"]
    return pd.DataFrame(rows, columns=cols)


def _fmt(x: Any, digits: int = 4) -> str:
    if isinstance(x, (float, np.floating)):
        return "n/a" if not np.isfinite(x) else f"{x:.{digits}f}"
    return str(x)


def _markdown_table(df: pd.DataFrame, digits: int | dict[str, int] = 4) -> str:
    cols = list(df.columns)
    per = digits if isinstance(digits, dict) else {}
    default = digits if isinstance(digits, int) else 4
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c], per.get(c, default)) for c in cols) + " |")
    return "\n".join(lines)


def write_report(dirs: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *,
                 png: bool = True) -> Path:
    """Write a comparison folder: ``curves.csv``, ``labels_saved.csv``, ``summary.md``, HTML (and PNG) figures.

    PNG export needs kaleido with a working Chrome; when that fails the report says so and keeps the HTML.
    """
    from balpm import plots

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [load_run(d) for d in dirs]
    if not runs:
        raise ValueError("no run folders given")
    metrics = pd.concat([m for _, m, _ in runs], ignore_index=True)
    curves = compare_runs(metrics)
    curves.to_csv(out / "curves.csv", index=False)
    table = labels_saved_table(curves)
    table.to_csv(out / "labels_saved.csv", index=False)

    figures: dict[str, Any] = {}
    for dataset in sorted(curves["dataset"].unique()):
        sub = curves[curves["dataset"] == dataset]
        slug = _slug(dataset)
        for split in sorted(sub["split"].unique()):
            for metric in ("log_likelihood", "accuracy", "brier", "ece"):
                fig = plots.learning_curves(sub, metric=metric, split=split)
                fig.update_layout(title=f"{dataset}: {split} {metric.replace('_', '-')}")
                figures[f"{slug}-{split}-{metric}"] = fig
    acq = []
    for info, m, a in runs:
        if len(a) and "policy_label" in info:
            cfg = info.get("config", {})
            acq.append(a.assign(policy=info["policy_label"], seed=cfg.get("seed"), dataset=cfg.get("dataset")))
    if acq:
        acq_df = pd.concat(acq, ignore_index=True)
        acq_df = acq_df[acq_df["round"] > 0]
        has_entropy = acq_df.groupby("policy")["entropy_term"].apply(lambda s: s.notna().any())
        for pol in has_entropy[has_entropy].index:
            for dataset in sorted(acq_df["dataset"].dropna().unique()):
                part = acq_df[(acq_df["policy"] == pol) & (acq_df["dataset"] == dataset)]
                if len(part):
                    fig = plots.ratio_over_rounds(part)
                    fig.update_layout(title=f"{dataset}: {pol}, uncertainty / score of the picks")
                    figures[f"{_slug(dataset)}-ratio-{_slug(pol)}"] = fig
    if len(table):
        figures["labels-saved"] = plots.labels_saved_bar(table)

    for name, fig in figures.items():
        fig.write_html(out / f"{name}.html", include_plotlyjs="cdn")
    png_note = _write_pngs(figures, out) if png else "PNG export not requested (--no-png)."
    (out / "summary.md").write_text(_summary_markdown(runs, curves, table, figures, png_note))
    return out


def _write_pngs(figures: dict[str, Any], out: Path) -> str:
    """Export PNGs through kaleido (one browser session when plotly has ``write_images``); never raises."""
    import plotly.io as pio

    names = list(figures)
    paths = [out / f"{n}.png" for n in names]
    try:
        if hasattr(pio, "write_images"):
            pio.write_images([figures[n] for n in names], paths, width=900, height=550)
        else:  # pragma: no cover - older plotly
            for n, p in zip(names, paths):
                figures[n].write_image(p, width=900, height=550)
    except Exception as exc:  # kaleido needs a Chrome: no browser, no PNG
        for p in paths:
            p.unlink(missing_ok=True)
        first = (str(exc).splitlines() or [""])[0][:200]
        return f"PNG export skipped ({type(exc).__name__}: {first}); the HTML figures are complete."
    return "PNG figures written beside the HTML ones."


def _summary_markdown(runs: list, curves: pd.DataFrame, table: pd.DataFrame, figures: dict, png_note: str) -> str:
    lines = ["# Label efficiency", ""]
    cfgs = [info.get("config", {}) for info, _, _ in runs]
    seeds = sorted({c.get("seed") for c in cfgs if c.get("seed") is not None})
    lines.append(f"{len(runs)} runs; seeds {seeds}. Metric: mean test log-likelihood (nats, higher is better), "
                 "mean ± standard error over seeds.")
    lines.append("")
    final = curves[curves["split"] == "test"].sort_values("n_labeled").groupby(["dataset", "policy"]).tail(1)
    final = final.sort_values(["dataset", "log_likelihood_mean"], ascending=[True, False])  # best first per dataset
    if len(final):
        lines += ["## Final test metrics", ""]
        view = final[["dataset", "policy", "n_labeled", "n_seeds"]].copy()
        for m in ("log_likelihood", "accuracy", "brier", "ece"):
            view[m] = [f"{a:.4f} ± {b:.4f}" if np.isfinite(b) else f"{a:.4f}"
                       for a, b in zip(final[f"{m}_mean"], final[f"{m}_se"])]
        lines += [_markdown_table(view.reset_index(drop=True)), ""]
    if len(table):
        lines += ["## Labels saved", "",
                  "Labels a policy needs to reach the reference policy's final mean test log-likelihood, against "
                  "the reference's label count: the smallest label count from which the policy's mean curve stays "
                  "at or above that target at every later point (linear interpolation at its last upward "
                  "crossing), so an early touch of a noisy curve that falls back does not count. A curve that "
                  "ends below the target has not reached it.", ""]
        view = table[["dataset", "policy", "reference", "target", "reference_gain", "reference_labels",
                      "labels_needed", "labels_saved", "percent_saved", "note"]]
        lines += [_markdown_table(view, {"target": 4, "reference_gain": 4, "reference_labels": 0,
                                         "labels_needed": 1, "labels_saved": 1, "percent_saved": 1}), ""]
    lines += ["## Files", "", "- `curves.csv`, `labels_saved.csv`", *(f"- `{n}.html`" for n in figures),
              f"- {png_note}", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ CLI glue
def _field_type(f: dataclasses.Field, hints: dict[str, Any]) -> tuple[Callable[[str], Any], bool]:
    """argparse ``type`` of a config field, and whether it is optional (accepts 'none')."""
    if "type" in f.metadata:
        return f.metadata["type"], False
    tp = hints[f.name]
    args = typing.get_args(tp)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), tp) if args else tp
    if base not in (int, float, str):
        base = str
    if optional:
        def parse(text: str, base: Callable[[str], Any] = base) -> Any:
            return None if text.strip().lower() in ("none", "") else base(text)
        return parse, True
    return base, False


def add_config_arguments(parser: Any, cls: type = ExperimentConfig) -> None:
    """One ``--option`` per dataclass field, with its help text and default (like trl's ``HfArgumentParser``)."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if hints[f.name] is bool:  # a flag: off unless given
            parser.add_argument("--" + f.name.replace("_", "-"), dest=f.name, action="store_true",
                                default=f.default, help=f.metadata.get("help", ""))
            continue
        conv, _ = _field_type(f, hints)
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        shown = ",".join(map(str, default)) if isinstance(default, tuple) else default
        parser.add_argument(
            "--" + f.name.replace("_", "-"), dest=f.name, type=conv, default=default, metavar=f.name.upper(),
            help=f"{f.metadata.get('help', '')} (default: {shown})",
        )


def config_from_namespace(ns: Any, cls: type = ExperimentConfig) -> ExperimentConfig:
    return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if hasattr(ns, f.name)})
