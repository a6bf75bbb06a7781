"""Why BAL-PM does (not) win in ``benchmarks/label_efficiency.py``: learnability ceiling and the β/k scale study.

Two studies, both reusing ``balpm`` (pools exactly as :func:`balpm.experiment.load_experiment_pools` loads them,
:class:`balpm.model.PreferenceEnsemble`, :func:`balpm.metrics.preference_metrics`,
:func:`balpm.experiment.run_experiment`):

``ceiling``
    How much the preference model can learn from the embeddings at all: the ensemble trained on ALL training-pool
    labels and on 832 random ones (the benchmark's final budget), for several heads / training settings, plus
    feature baselines (completion-length difference → logistic regression; L2 logistic regression on the
    embedding difference a − b) on the same test split.

``beta``
    BAL-PM with several β (β = 0 is BALD) and k on one dataset, same settings as the benchmark; final test
    log-likelihood and the scale of BALD vs β·Ĥ of the picks over rounds (``metrics.csv`` columns).

The ``beta`` study's bal-pm runs use the benchmark's settings (64 initial + 12 rounds of 64); ``ceiling`` only fits
ensembles (no acquisition). Numbers and their reading: ``benchmarks/README.md``, "Why BAL-PM does (not) win here".

Usage (2-core shared CPU: run with ``OMP_NUM_THREADS=1 nice``)::

    python benchmarks/analysis_label_efficiency.py ceiling --datasets qa-feedback hh-rlhf:harmless-base hh-rlhf
    python benchmarks/analysis_label_efficiency.py ceiling --datasets hh-rlhf --max-pairs 0 --name ceiling_hh_full \
        --variants "default (64,) lr1e-3 15ep" "linear head" "(2048,256) lr1e-3"
    python benchmarks/analysis_label_efficiency.py beta --dataset qa-feedback --k 13 5 40

Output: ``benchmarks/out/analysis_label_efficiency/`` (CSV + a markdown table per study, printed too).
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from balpm.embed import Embedder, embed_pool  # noqa: E402
from balpm.config import AcquisitionConfig, EmbeddingConfig, EnsembleConfig, PoolConfig  # noqa: E402
from balpm.experiment import ExperimentConfig, load_experiment_pools, run_experiment  # noqa: E402
from balpm.metrics import preference_metrics  # noqa: E402
from balpm.model import PreferenceEnsemble  # noqa: E402
from balpm.report import _markdown_table, load_run  # noqa: E402

OUT = HERE / "out" / "analysis_label_efficiency"

#: name → (PreferenceEnsemble overrides, standardise inputs?)
VARIANTS: dict[str, tuple[dict, bool]] = {
    "default (64,) lr1e-3 15ep": ({}, False),
    "linear head": ({"hidden": ()}, False),
    "(2048,256) lr1e-3": ({"hidden": (2048, 256)}, False),
    "(64,) 100ep patience 10": ({"max_epochs": 100, "patience": 10}, False),
    "(64,) lr1e-2": ({"lr": 1e-2}, False),
    "(64,) wd 0.1": ({"weight_decay": 0.1}, False),
    "(64,) standardised inputs": ({}, True),
    "(64,) standardised + 100ep p10": ({"max_epochs": 100, "patience": 10}, True),
}


def _pools(dataset: str, max_pairs: int | None, embedder: Embedder):
    cfg = ExperimentConfig(PoolConfig(dataset=dataset, max_pairs=max_pairs))
    train, test, _ = load_experiment_pools(cfg)
    return train, test, embed_pool(train, embedder), embed_pool(test, embedder)


def _logreg(x_tr, y_tr, x_te, y_te, cs=(0.01, 0.1, 1.0, 10.0)) -> dict:
    """L2 logistic regression, C by 5-fold CV log-loss on the training rows; test metrics via preference_metrics."""
    from sklearn.linear_model import LogisticRegressionCV

    warnings.filterwarnings("ignore", category=FutureWarning, module="sklearn")

    clf = LogisticRegressionCV(Cs=list(cs), cv=5, scoring="neg_log_loss", max_iter=2000)
    clf.fit(x_tr, y_tr)
    p = clf.predict_proba(x_te)[:, 1]
    return preference_metrics(p[None, :], y_te) | {"C": float(clf.C_[0])}


def _length_features(pool) -> np.ndarray:
    la = pool.pairs["completion_a"].str.len().to_numpy(dtype=np.float64)
    lb = pool.pairs["completion_b"].str.len().to_numpy(dtype=np.float64)
    return np.stack([la - lb, np.log1p(la) - np.log1p(lb)], axis=1)


def ceiling(args: argparse.Namespace) -> pd.DataFrame:
    embedder = Embedder(args.model, max_length=args.max_length)
    rows = []
    for dataset in args.datasets:
        train, test, et, ee = _pools(dataset, args.max_pairs, embedder)
        y_tr = np.asarray(train.labels, dtype=np.float64)
        y_te = np.asarray(test.labels, dtype=np.float64)
        cos = np.sum(et.a * et.b, 1) / (np.linalg.norm(et.a, axis=1) * np.linalg.norm(et.b, axis=1))
        print(f"{dataset}: {len(train)} train / {len(test)} test pairs; P(A) train {y_tr.mean():.3f}; "
              f"median cosine(prompt+A, prompt+B) {np.median(cos):.4f}; "
              f"median |a-b|/|a| {np.median(np.linalg.norm(et.a - et.b, axis=1) / np.linalg.norm(et.a, axis=1)):.3f}",
              flush=True)
        base = {"dataset": dataset, "n_train_pool": len(train), "n_test": len(test)}
        # feature baselines
        rows.append(base | {"model": "constant P(A)=train rate", "labels": len(train)}
                    | preference_metrics(np.full((1, len(test)), y_tr.mean()), y_te))
        rows.append(base | {"model": "logreg on length diff", "labels": len(train)}
                    | _logreg(_length_features(train), y_tr, _length_features(test), y_te))
        rows.append(base | {"model": "logreg (L2, CV) on emb a-b", "labels": len(train)}
                    | _logreg(et.a - et.b, y_tr, ee.a - ee.b, y_te))
        mu = np.concatenate([et.a, et.b]).mean(0)
        sd = np.concatenate([et.a, et.b]).std(0) + 1e-8
        for name, (over, std) in VARIANTS.items():
            if name not in args.variants and args.variants != ["all"]:
                continue
            for budget in ("all", args.budget):
                for seed in args.seeds:
                    if budget == "all":
                        idx = np.arange(len(train))
                    else:
                        idx = np.sort(np.random.default_rng(seed).choice(len(train), int(budget), replace=False))
                    a, b, ta, tb = et.a[idx], et.b[idx], ee.a, ee.b
                    if std:
                        a, b, ta, tb = (a - mu) / sd, (b - mu) / sd, (ta - mu) / sd, (tb - mu) / sd
                    model = PreferenceEnsemble(**({"n_members": 5} | over), seed=seed, device="cpu")
                    t0 = time.perf_counter()
                    model.fit(a, b, y_tr[idx])
                    sec = time.perf_counter() - t0
                    m = preference_metrics(model.predict_member_proba(ta, tb), y_te)
                    rows.append(base | {"model": name, "labels": len(idx), "seed": seed, "fit_seconds": sec,
                                        "epochs_mean": float(np.mean(model.history_["epochs_trained"]))} | m)
                    print(f"  {name:34s} labels {len(idx):5d} seed {seed}: LL {m['log_likelihood']:.4f} "
                          f"acc {m['accuracy']:.3f} epochs {rows[-1]['epochs_mean']:.1f} ({sec:.1f}s)", flush=True)
        pd.DataFrame(rows).to_csv(OUT / f"{args.name}_raw.csv", index=False)  # keep what finished
    df = pd.DataFrame(rows)
    df.to_csv(OUT / f"{args.name}_raw.csv", index=False)
    df["seed"] = df.get("seed", pd.Series(dtype=float)).fillna(-1)
    g = df.groupby(["dataset", "model", "labels"], sort=False)
    summ = g.agg(seeds=("seed", "nunique"), LL=("log_likelihood", "mean"), LL_sd=("log_likelihood", "std"),
                 acc=("accuracy", "mean"), acc_sd=("accuracy", "std"),
                 epochs=("epochs_mean", "mean"), fit_s=("fit_seconds", "mean")).reset_index()
    summ.to_csv(OUT / f"{args.name}.csv", index=False)
    (OUT / f"{args.name}.md").write_text(_markdown_table(summ, {"LL": 4, "LL_sd": 4, "acc": 3, "acc_sd": 3,
                                                           "epochs": 1, "fit_s": 1}) + "\n")
    print(_markdown_table(summ, {"LL": 4, "LL_sd": 4, "acc": 3, "acc_sd": 3, "epochs": 1, "fit_s": 1}))
    return summ


def beta(args: argparse.Namespace) -> pd.DataFrame:
    base = ExperimentConfig(PoolConfig(dataset=args.dataset, max_pairs=args.max_pairs), initial=64, batch_size=64,
                            rounds=12, ensemble=EnsembleConfig(n_members=5, hidden=(64,), max_epochs=15),
                            embedding=EmbeddingConfig(embedding_model=args.model, max_length=args.max_length))
    grid = [(b, args.k[0]) for b in args.betas] + [(args.k_beta, k) for k in args.k[1:]]
    frames = []
    for b, k in grid:
        for seed in args.seeds:
            tag = f"beta={b:g},k={k}"
            cfg = replace(base, acquisition=AcquisitionConfig("bal-pm", {"beta": float(b), "k": int(k)}), seed=seed,
                          tag=tag,
                          out=str(OUT / "beta_runs" / f"{args.dataset.replace(':', '-')}-{tag}-seed{seed}"))
            t0 = time.perf_counter()
            run_experiment(cfg)
            print(f"{tag} seed {seed}: {time.perf_counter() - t0:.0f}s", flush=True)
            m = load_run(cfg.out)[1]
            frames.append(m[m["split"] == "test"].assign(beta=b, k=k))
    df = pd.concat(frames, ignore_index=True)
    df.to_csv(OUT / f"beta_{args.dataset.replace(':', '-')}_raw.csv", index=False)
    last = df[df["round"] == df["round"].max()]
    final = last.groupby(["beta", "k"]).agg(seeds=("seed", "nunique"), LL=("log_likelihood", "mean"),
                                            LL_se=("log_likelihood", "sem"), acc=("accuracy", "mean")).reset_index()
    # scale of the two terms of the picks: BALD (uncertainty_mean) vs β·Ĥ (entropy_term_mean), and median U/score
    r = df[df["round"] > 0]
    scale = r.groupby(["beta", "k", "round"]).agg(bald=("uncertainty_mean", "mean"),
                                                  beta_H=("entropy_term_mean", "mean"),
                                                  ratio_median=("ratio_median", "mean")).reset_index()
    wide = scale.pivot_table(index=["beta", "k"], columns="round", values="ratio_median").reset_index()
    wide.columns = [f"r{c}" if isinstance(c, (int, np.integer)) else c for c in wide.columns]
    keep = ["beta", "k"] + [f"r{i}" for i in (1, 2, 4, 6, 8, 10, 12) if f"r{i}" in wide.columns]
    sel = scale[scale["round"].isin([1, 6, 12])].pivot_table(index=["beta", "k"], columns="round",
                                                             values=["bald", "beta_H"]).reset_index()
    sel.columns = [f"{a}_r{b}" if b != "" else a for a, b in sel.columns]
    name = args.dataset.replace(":", "-")
    text = "\n\n".join([_markdown_table(final, {"LL": 4, "LL_se": 4, "acc": 3}),
                        "median U/score of the picks by round (mean over seeds):",
                        _markdown_table(wide[keep], 3),
                        "mean BALD and mean β·Ĥ of the picks at rounds 1, 6, 12 (nats):",
                        _markdown_table(sel, {c: 5 for c in sel.columns})]) + "\n"
    (OUT / f"beta_{name}.md").write_text(text)
    print(text)
    return final


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("ceiling")
    c.add_argument("--datasets", nargs="+", default=["qa-feedback", "hh-rlhf:harmless-base"])
    c.add_argument("--variants", nargs="+", default=["all"], help="names in VARIANTS, or all")
    c.add_argument("--budget", type=int, default=832)
    c.add_argument("--name", default="ceiling", help="output file stem (ceiling.csv, ceiling.md, ceiling_raw.csv)")
    b = sub.add_parser("beta")
    b.add_argument("--dataset", default="qa-feedback")
    b.add_argument("--betas", nargs="+", type=float, default=[0.0, 0.001, 0.01, 0.1])
    b.add_argument("--k", nargs="+", type=int, default=[13], help="first: k of the β grid; the rest: extra k runs")
    b.add_argument("--k-beta", type=float, default=0.01, help="β of the extra k runs")
    for q in (c, b):
        q.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
        q.add_argument("--max-pairs", type=int, default=3000)
        q.add_argument("--model", default="default")
        q.add_argument("--max-length", type=int, default=256)
    args = p.parse_args(argv)
    OUT.mkdir(parents=True, exist_ok=True)
    (ceiling if args.cmd == "ceiling" else beta)(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
