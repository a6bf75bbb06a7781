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
from balpm.config import (CONCERNS, AcquisitionConfig, EmbeddingConfig, EnsembleConfig, PoolConfig,
                          concern_from_dict)
from balpm.safeio import atomic_write_text

if TYPE_CHECKING:  # annotations only: the engine modules are imported when a run starts
    from balpm.data import PreferencePool
    from balpm.embed import Embedder, PoolEmbeddings
    from balpm.learner import ActiveLearner
    from balpm.session import Session

__all__ = [
    "ExperimentConfig",
    "run_experiment",
    "load_experiment_pools",
    "load_labelled_sample",
    "oracle_round",
    "metric_rows",
    "session_round",
    "run_finished",
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


@dataclass
class ExperimentConfig:
    """Everything that defines a simulated run: the run's own fields, and one nested config per concern.

    Every field is a ``balpm run`` option (``--max-pairs``, ``--embedding-model`` ...), built by :mod:`balpm.cli`.
    ``config.json`` files written before the nesting (flat fields, ``model`` for the embedding model) still load
    through :meth:`from_dict`.
    """

    pool: PoolConfig = field(default_factory=PoolConfig)
    ood_dataset: str | None = field(default=None, metadata={
        "help": "optional out-of-distribution pool evaluated every round (split 'ood')"})
    ood_max_pairs: int | None = field(default=500, metadata={"help": "cap on the OOD pool (whole groups)"})
    embedding: EmbeddingConfig = field(default_factory=EmbeddingConfig)
    cache_dir: str | None = field(default=None, metadata={
        "help": "embedding and kNN cache folder (default: $BALPM_CACHE_DIR or ~/.cache/balpm)"})
    acquisition: AcquisitionConfig = field(default_factory=AcquisitionConfig)
    initial: int = field(default=32, metadata={"help": "random initial labelled pairs (round 0)"})
    batch_size: int = field(default=32, metadata={"help": "pairs acquired per round"})
    rounds: int = field(default=10, metadata={"help": "acquisition rounds after the initial set"})
    seed: int = field(default=0, metadata={"help": "seed of the initial set, the picks and the ensemble training"})
    ensemble: EnsembleConfig = field(default_factory=EnsembleConfig)
    tag: str = field(default="", metadata={
        "help": "label told apart in comparisons (e.g. beta=0.1): runs are grouped by policy + tag"})
    out: str | None = field(default=None, metadata={
        "help": "run folder (default runs/<dataset>-<policy>[-<tag>]-seed<seed>)"})

    def model_params(self) -> dict[str, Any]:
        """Constructor parameters of :class:`balpm.model.PreferenceEnsemble` (on the embedding's device)."""
        return self.ensemble.model_params(self.embedding.device)

    def policy_label(self) -> str:
        policy = self.acquisition.policy
        return f"{policy} [{self.tag}]" if self.tag else policy

    def out_dir(self) -> Path:
        if self.out:
            return Path(self.out)
        parts = (_slug(self.pool.dataset), _slug(self.acquisition.policy), _slug(self.tag))
        return Path("runs") / f"{'-'.join(x for x in parts if x)}-seed{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ensemble"]["hidden"] = list(d["ensemble"]["hidden"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentConfig:
        """From :meth:`to_dict`, or from the flat dict of a ``config.json`` written before issue 13."""
        d = dict(d)
        if not any(isinstance(d.get(name), dict) for name in CONCERNS):
            d = _nest_flat(d)
        names = {f.name for f in dataclasses.fields(cls)}
        kw = {k: v for k, v in d.items() if k in names and k not in CONCERNS}
        for name, concern in CONCERNS.items():  # settings added later read as what an older file meant
            kw[name] = concern_from_dict(concern, d.get(name) or {})
        return cls(**kw)


_LEGACY_EMBEDDING = {"model": "embedding_model", "max_length": "max_length", "embed_batch_size": "embed_batch_size",
                     "device": "device"}


def _nest_flat(flat: dict[str, Any]) -> dict[str, Any]:
    """A flat config dict (``config.json`` before issue 13) in the nested layout of :meth:`ExperimentConfig.to_dict`."""
    d = dict(flat)
    nested: dict[str, Any] = {}
    for name in ("pool", "ensemble"):
        known = {f.name for f in dataclasses.fields(CONCERNS[name])}
        nested[name] = {k: d.pop(k) for k in list(d) if k in known}
    nested["embedding"] = {new: d.pop(old) for old, new in _LEGACY_EMBEDDING.items() if old in d}
    params = {k: d.pop(k) for k in ("beta", "k", "temperature") if k in d}
    nested["acquisition"] = {"policy": d.pop("policy", "bal-pm"), **({"params": params} if params else {})}
    return {**d, **nested}


def policy_params_for(config: ExperimentConfig) -> dict[str, Any]:
    """The constructor parameters the configured policy takes (:meth:`AcquisitionConfig.policy_params`)."""
    return config.acquisition.policy_params()


# ------------------------------------------------------------------------------------------------ running
def load_labelled_sample(
    source: str, max_pairs: int | None = None, seed: int = 0, strict: bool = False, *, labelled_only: bool = True,
    columns: str | None = None,
) -> PreferencePool:
    """The labelled pairs of a pool, sampled down to about ``max_pairs`` pairs by whole prompt groups.

    The one loader of a run's pools and of a session's pool (:meth:`balpm.session.Session.load_pool`), so both
    see the same pairs for the same settings.

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
    labelled_only : bool
        Keep only pairs with a label (the simulated oracle can answer no other); False for human labelling.
    columns : str, optional
        Column mapping for files with other column names (``"prompt=question,chosen=answer_good,..."``,
        :func:`balpm.data.load_pool`).

    Returns
    -------
    PreferencePool
    """
    from balpm.data import load_pool

    pool = load_pool(source, seed=seed, strict=strict, columns=columns)
    if labelled_only:
        pool = pool.subset(~np.isnan(pool.labels))
    return pool.sample_groups(int(max_pairs), seed) if max_pairs else pool


def load_experiment_pools(config: ExperimentConfig) -> tuple[PreferencePool, PreferencePool, PreferencePool | None]:
    """The pools a run of ``config`` uses, exactly as :func:`run_experiment` loads them.

    Parameters
    ----------
    config : ExperimentConfig
        Reads ``pool`` (:class:`balpm.config.PoolConfig`), ``ood_dataset`` and ``ood_max_pairs``.

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
    pc = config.pool
    pool = load_labelled_sample(pc.dataset, pc.max_pairs, pc.data_seed, pc.strict, columns=pc.columns)
    train, test = pool.split_by_group(pc.test_fraction, pc.data_seed)
    ood = None
    if config.ood_dataset:
        ood = load_labelled_sample(config.ood_dataset, config.ood_max_pairs, pc.data_seed, pc.strict)
    return train, test, ood


def _atomic_csv(df: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, df.to_csv(index=False))


def _atomic_json(obj: Any, path: Path) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, default=str))


_EMBEDDERS: dict[tuple[Any, ...], Embedder] = {}


def _embedder(config: ExperimentConfig) -> Embedder:
    """One loaded embedding model per setting and process: a benchmark of many runs loads it once."""
    from balpm.embed import Embedder

    ec = config.embedding
    key = (ec.embedding_model, ec.device, int(ec.embed_batch_size), int(ec.max_length))
    if key not in _EMBEDDERS:
        _EMBEDDERS.clear()  # keep at most one model in memory
        _EMBEDDERS[key] = Embedder(ec.embedding_model, device=ec.device, batch_size=ec.embed_batch_size,
                                   max_length=ec.max_length)
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


def oracle_round(learner: ActiveLearner, initial: int) -> tuple[int, pd.DataFrame | None, list[str]] | None:
    """The labelling half of one simulated round, shared by :func:`run_experiment` and
    :meth:`balpm.session.Session.simulate_round` (baal's ``ActiveLearningLoop.step``).

    With nothing labelled, the random initial set (``initial`` pairs, fewer when fewer labelled pairs are left);
    else one oracle step. The caller then refits (``learner.fit()``) and writes :func:`metric_rows`.

    Returns
    -------
    tuple or None
        ``(round, selection, ids)``: ``selection`` is None for the random initial set; None when the pool ran dry.
    """
    if learner.n_labeled_ == 0:
        n = min(int(initial), int(np.sum(~np.isnan(learner.pool.labels) & ~learner.decided_mask)))
        return 0, None, [str(i) for i in learner.initialize(n)]
    sel = learner.oracle_step()
    if not len(sel):
        return None
    return int(sel["round"].iloc[0]), sel, sel["id"].astype(str).tolist()


def metric_rows(learner: ActiveLearner, r: int, sel: pd.DataFrame | None,
                splits: list[tuple[str, PreferencePool, PoolEmbeddings]], *, dataset: str, policy: str,
                seed: int) -> list[dict[str, Any]]:
    """The ``metrics.csv`` rows (:data:`METRIC_COLUMNS`, one per evaluation split) of round ``r`` after the learner
    was fitted: metrics, the batch's selection statistics and the round's timings (``sel`` None and NaN timings
    for round 0). The one schema of a run folder's and a simulation session's ``metrics.csv``."""
    times = {"fit_seconds": learner.timings_.get("fit", np.nan),
             "score_seconds": learner.timings_.get("score", np.nan) if r else np.nan,
             "select_seconds": learner.timings_.get("select", np.nan) if r else np.nan}
    stats = _selection_stats(sel)
    rows = []
    for split, pool, emb in splits:
        te = time.perf_counter()
        m = learner.evaluate(pool, emb)
        rows.append({"dataset": dataset, "policy": policy, "seed": seed, "round": r,
                     "n_labeled": learner.n_labeled_, "split": split, **{k: m[k] for k in METRICS},
                     "n_eval": m["n"], **stats, **times, "eval_seconds": time.perf_counter() - te})
    return rows


def session_round(session: Session, learner: ActiveLearner, test_pool: PreferencePool | None = None,
                  test_embeddings: PoolEmbeddings | None = None) -> dict[str, Any]:
    """:meth:`balpm.session.Session.simulate_round`: :func:`oracle_round`, the oracle's labels stored in the
    session (before the refit: a crash there loses no label), refit, :func:`metric_rows` appended to the session's
    ``metrics.csv``, learner saved. Returns the test row ({} when the pool ran dry; metrics NaN without a test
    split)."""
    session.sync(learner)
    step = oracle_round(learner, session.config.initial)
    if step is None:
        return {}
    rnd, sel, ids = step
    if sel is not None:
        session._append_selection(sel)
    session.record_oracle(learner, ids, rnd)
    learner.fit()
    c = session.config
    has_test = test_pool is not None and test_embeddings is not None and len(test_pool) > 0
    label = {"dataset": c.pool.dataset, "policy": c.acquisition.policy, "seed": int(c.seed)}
    rows = metric_rows(learner, rnd, sel, [("test", test_pool, test_embeddings)] if has_test else [], **label)
    rows = rows or [{**label, "round": rnd, "n_labeled": learner.n_labeled_, "split": "test",
                     "fit_seconds": learner.timings_.get("fit", np.nan)}]
    row = pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
    metrics = session.metrics()
    _atomic_csv(pd.concat([metrics, row], ignore_index=True) if len(metrics) else row, session.folder / "metrics.csv")
    session.save_learner(learner)
    session.clear_batch()
    return row.iloc[0].to_dict()


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
        train, emb_train, policy=config.acquisition.policy, policy_params=config.acquisition.policy_params(),
        model_params=config.model_params(), batch_size=config.batch_size, seed=config.seed,
        knn_k=config.acquisition.knn_k, knn_cache_dir=knn_dir,
    )
    info = _run_info(config, (train, test, ood), embedder, (emb_train, emb_test), embed_seconds, started)
    _atomic_json(info, out / "config.json")

    splits = [("test", test, emb_test)] + ([("ood", ood, emb_ood)] if ood is not None else [])
    all_rows: list[dict[str, Any]] = []
    acquired = pd.DataFrame(columns=list(ACQUIRED_COLUMNS))
    total = int(config.rounds) + 1
    for r in range(total):
        step = oracle_round(learner, config.initial)  # round 0: the random initial set
        if step is None:
            break  # the pool ran dry
        _, sel, _ = step
        if sel is None:
            acquired = learner.acquired().assign(pick=np.nan, uncertainty=np.nan, entropy_term=np.nan, score=np.nan,
                                                 ratio=np.nan, beta=np.nan)[list(ACQUIRED_COLUMNS)]
        else:
            labels = learner.labels_[sel["row"].to_numpy()]
            acquired = pd.concat([acquired, sel.assign(label=labels)[list(ACQUIRED_COLUMNS)]], ignore_index=True)
        learner.fit()
        rows = metric_rows(learner, r, sel, splits, dataset=config.pool.dataset, policy=config.policy_label(),
                           seed=config.seed)
        all_rows += rows
        _atomic_csv(pd.DataFrame(all_rows, columns=list(METRIC_COLUMNS)), out / "metrics.csv")
        _atomic_csv(acquired, out / "acquired.csv")
        if on_round is not None:
            on_round(r, pd.DataFrame(rows, columns=list(METRIC_COLUMNS)))
        if progress is not None:
            progress(r + 1, total)

    info["resolved"]["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    info["resolved"]["seconds"] = time.perf_counter() - t0
    _atomic_json(info, out / "config.json")
    return out


def run_finished(config: ExperimentConfig) -> bool:
    """Whether ``config``'s run folder already holds a finished run of exactly this configuration, so a rerun of many
    runs (a benchmark, notebook 02 in full mode) can skip it. An interrupted run (``finished`` still unset), a
    folder of another configuration or no folder at all is not; folders of either ``config.json`` layout are read.
    """
    path = config.out_dir() / "config.json"
    if not path.exists():
        return False
    info = json.loads(path.read_text(encoding="utf-8"))
    same = type(config).from_dict(info.get("config") or {}) == config  # either layout
    return same and bool((info.get("resolved") or {}).get("finished"))
