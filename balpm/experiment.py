"""Simulated active-learning runs: the dataset's own labels are the oracle, each run writes one run folder.

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

Reading run folders back, comparing them over seeds and "labels saved" live in :mod:`balpm.report`; their names
are importable from here too, as before.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import time
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from balpm.report import (  # re-exported: run comparison and reporting lived here before balpm.report
    ACQUIRED_COLUMNS,
    HIGHER_IS_BETTER,
    METRIC_COLUMNS,
    METRICS,
    _selection_stats,
    _slug,
    compare_runs,
    find_runs,
    labels_saved,
    labels_saved_table,
    load_run,
    load_runs,
    ratio_by_round,
    write_report,
)
from balpm.safeio import atomic_write_text

if TYPE_CHECKING:  # annotations only: the engine modules are imported when a run starts
    from balpm.data import PreferencePool
    from balpm.embed import Embedder, PoolEmbeddings
    from balpm.learner import ActiveLearner

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
    # also re-exported from balpm.report (their home): read run folders back
    "HIGHER_IS_BETTER",
    "find_runs",
    "load_runs",
    "ratio_by_round",
]

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
def load_labelled_sample(
    source: str, max_pairs: int | None = None, seed: int = 0, strict: bool = False
) -> PreferencePool:
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


def load_experiment_pools(config: ExperimentConfig) -> tuple[PreferencePool, PreferencePool, PreferencePool | None]:
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


_EMBEDDERS: dict[tuple[Any, ...], Embedder] = {}


def _embedder(config: ExperimentConfig) -> Embedder:
    """One loaded embedding model per setting and process: a benchmark of many runs loads it once."""
    from balpm.embed import Embedder

    key = (config.model, config.device, int(config.embed_batch_size), int(config.max_length))
    if key not in _EMBEDDERS:
        _EMBEDDERS.clear()  # keep at most one model in memory
        _EMBEDDERS[key] = Embedder(config.model, device=config.device, batch_size=config.embed_batch_size,
                                   max_length=config.max_length)
    return _EMBEDDERS[key]


def _run_info(config: ExperimentConfig, pools: tuple[PreferencePool, PreferencePool, PreferencePool | None],
              embedder: Embedder, embs: tuple[PoolEmbeddings, PoolEmbeddings], embed_seconds: float,
              started: str) -> dict[str, Any]:
    """``config.json`` of a run: the config, and what it resolved to (pool sizes, embedding model, versions)."""
    train, test, ood = pools
    return {
        "config": config.to_dict(),
        "policy_label": config.policy_label(),
        "resolved": {
            "n_train": len(train), "n_test": len(test), "n_ood": len(ood) if ood is not None else 0,
            "embedding_model_id": embedder.model_id, "embedding_dim": int(embs[0].dim),
            "embed_seconds": embed_seconds, "embed_stats": [embs[0].stats, embs[1].stats],
            "started": started, "finished": None, "python": platform.python_version(),
        },
    }


def _round_rows(config: ExperimentConfig, learner: ActiveLearner, r: int, sel: pd.DataFrame | None,
                splits: list[tuple[str, PreferencePool, PoolEmbeddings]]) -> list[dict[str, Any]]:
    """The ``metrics.csv`` rows of round ``r`` (one per evaluation split) after the learner was fitted: metrics,
    the batch's selection statistics and the round's timings (``sel`` None and NaN timings for round 0)."""
    times = {"fit_seconds": learner.timings_.get("fit", np.nan),
             "score_seconds": learner.timings_.get("score", np.nan) if r else np.nan,
             "select_seconds": learner.timings_.get("select", np.nan) if r else np.nan}
    stats = _selection_stats(sel)
    rows = []
    for split, pool, emb in splits:
        te = time.perf_counter()
        m = learner.evaluate(pool, emb)
        rows.append({"dataset": config.dataset, "policy": config.policy_label(), "seed": config.seed, "round": r,
                     "n_labeled": learner.n_labeled_, "split": split, **{k: m[k] for k in METRICS},
                     "n_eval": m["n"], **stats, **times, "eval_seconds": time.perf_counter() - te})
    return rows


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

    info = _run_info(config, (train, test, ood), embedder, (emb_train, emb_test), embed_seconds, started)
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
        rows = _round_rows(config, learner, r, sel if r else None, splits)
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


def _with_default(text: str, shown: Any) -> str:
    """``text`` plus ``(default: shown)``, unless the text already says its default in words (said once) or there
    is none to say (``None``: the option is off unless given)."""
    return text if "(default" in text or shown is None else f"{text} (default: {shown})"


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
            help=_with_default(f.metadata.get("help", ""), shown),
        )


def config_from_namespace(ns: Any, cls: type = ExperimentConfig) -> ExperimentConfig:
    return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls) if hasattr(ns, f.name)})
