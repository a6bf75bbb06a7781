"""Model study (issue 12, section 2): which preference model learns monotonically and knows what it does not know.

For each model candidate, on each dataset (the split of the ceiling analysis, ``analysis_label_efficiency.py``:
``max_pairs`` 3,000 whole prompt groups, 20% held out for test, data seed 0) and each seed:

(a) the random-acquisition curve: fit on the first n labels of a seeded random order of the training pool, for n in
    64, 128, 256, 512, 832 and all; test log-likelihood (nats), accuracy, ECE (10 bins);
(c) round-1 BALD: after the fit on 64 labels, the mean BALD of the 32 highest-BALD pairs of the rest of the pool;
(d) whether BALD ranks usefully: at 128 and 512 labels, refit with the 64 highest-BALD pairs of the rest added and
    with the next 64 pairs of the random order added; the test-LL gain of BALD's batch over the random one.

(b), calibration at 832 labels, is (a)'s ECE there. Summary: mean ± standard error over seeds.

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/model_study.py            # all datasets, candidates, 3 seeds
    python benchmarks/model_study.py --datasets qa-feedback --candidates default "linear Laplace" --seeds 0
    python benchmarks/model_study.py --from-raw model_study_hh model_study_qa   # one table from per-dataset runs

Writes ``benchmarks/out/model_study/{name}_raw.csv`` (one row per fit), ``{name}.md`` (the tables).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from balpm import uncertainty as unc  # noqa: E402
from balpm.config import PoolConfig  # noqa: E402
from balpm.embed import Embedder, embed_pool  # noqa: E402
from balpm.experiment import ExperimentConfig, load_experiment_pools  # noqa: E402
from balpm.metrics import preference_metrics  # noqa: E402
from balpm.model import PreferenceEnsemble  # noqa: E402
from balpm.model_variants import HeldOutWeightDecay, LastLayerLaplace, LinearLaplacePreference  # noqa: E402

OUT = HERE / "out" / "model_study"
BUDGETS = (64, 128, 256, 512, 832)
BALD_AT = (128, 512)
BATCH = 64


def _ensemble(**over: Any) -> Callable[[int], Any]:
    return lambda seed: PreferenceEnsemble(**({"device": "cpu"} | over), seed=seed)


#: name → factory(seed) of an unfitted model (cheap candidates first)
CANDIDATES: dict[str, Callable[[int], Any]] = {
    "default": _ensemble(),
    "init_std 0.1": _ensemble(init_std=0.1),
    "init_std 0.3": _ensemble(init_std=0.3),
    "weight decay on held-out": lambda seed: HeldOutWeightDecay(seed=seed, device="cpu"),
    "linear Laplace": lambda seed: LinearLaplacePreference(seed=seed),
    "last-layer Laplace": lambda seed: LastLayerLaplace(seed=seed, device="cpu"),
    "bootstrapped members": _ensemble(bootstrap=True),
    "random prior 1.0": _ensemble(prior_scale=1.0),
    "bootstrap + random prior 1.0": _ensemble(bootstrap=True, prior_scale=1.0),
}


def _fit_score(factory, seed, et, ee, y_tr, y_te, idx) -> tuple[Any, dict]:
    t0 = time.perf_counter()
    model = factory(seed).fit(et.a[idx], et.b[idx], y_tr[idx])
    sec = time.perf_counter() - t0
    return model, preference_metrics(model.predict_member_proba(ee.a, ee.b), y_te) | {"fit_seconds": sec}


def study_seed(name: str, seed: int, et, ee, y_tr, y_te) -> list[dict]:
    """Every fit of one candidate and seed: the curve, round-1 BALD and the BALD-vs-random batches."""
    factory = CANDIDATES[name]
    order = np.random.default_rng(seed).permutation(len(y_tr))
    rows = []
    for n in (*[b for b in BUDGETS if b < len(order)], len(order)):
        model, m = _fit_score(factory, seed, et, ee, y_tr, y_te, order[:n])
        row = {"labels": n, "kind": "curve", **m}
        rest = order[n:]
        if n in (64, *BALD_AT) and len(rest) >= 2 * BATCH:
            bald = unc.bald(model.predict_member_proba(et.a[rest], et.b[rest]))
            top = rest[np.argsort(-bald, kind="stable")[:BATCH]]
            row["top32_bald"] = float(np.sort(bald)[::-1][:32].mean())
            if n in BALD_AT:
                _, mb = _fit_score(factory, seed, et, ee, y_tr, y_te, np.concatenate([order[:n], top]))
                _, mr = _fit_score(factory, seed, et, ee, y_tr, y_te, order[: n + BATCH])
                row["bald_batch_ll"], row["random_batch_ll"] = mb["log_likelihood"], mr["log_likelihood"]
                row["bald_gain"] = mb["log_likelihood"] - mr["log_likelihood"]
        rows.append(row)
        print(f"    {name:26s} seed {seed} labels {n:5d}: LL {m['log_likelihood']:.4f} ece {m['ece']:.3f} "
              f"({m['fit_seconds']:.1f}s)" + (f" bald gain {row['bald_gain']:+.4f}" if "bald_gain" in row else ""),
              flush=True)
    return rows


def _se(x: pd.Series) -> float:
    x = x.dropna()
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")


def _pm(mean: float, se: float, digits: int = 4) -> str:
    return f"{mean:.{digits}f} ± {se:.{digits}f}" if np.isfinite(se) else f"{mean:.{digits}f}"


def summarise(df: pd.DataFrame) -> str:
    """The two markdown tables: the curve with the monotonicity goal, and calibration / BALD."""
    curve_cols = [*map(str, BUDGETS), "all"]
    lines = ["| dataset | model | " + " | ".join(curve_cols) + " | all − 832 | goal met |",
             "|---|---|" + "---|" * (len(curve_cols) + 2)]
    lines2 = ["| dataset | model | ECE at 832 | round-1 BALD (top 32) | BALD − random, 128 | BALD − random, 512 |"
              " fit s (all) |", "|---|---|---|---|---|---|---|"]
    for (dataset, model), g in df.groupby(["dataset", "model"], sort=False):
        n_all = g["labels"].max()
        cells, by = [], {}
        for col in curve_cols:
            n = n_all if col == "all" else int(col)
            s = g[g["labels"] == n].set_index("seed")["log_likelihood"]
            by[col] = s
            cells.append(_pm(s.mean(), _se(s)))
        diff = (by["all"] - by["832"]).dropna()
        met = bool(diff.mean() >= -_se(diff)) if len(diff) else False
        lines.append(f"| {dataset} | {model} | " + " | ".join(cells) + f" | {_pm(diff.mean(), _se(diff))} | "
                     f"{'yes' if met else '**no**'} |")
        at = {n: g[g["labels"] == n] for n in (64, 128, 512, 832, n_all)}
        gains = [_pm(at[n]["bald_gain"].mean(), _se(at[n]["bald_gain"])) for n in BALD_AT]
        lines2.append(f"| {dataset} | {model} | {_pm(at[832]['ece'].mean(), _se(at[832]['ece']), 3)} | "
                      f"{at[64]['top32_bald'].mean():.2g} | {gains[0]} | {gains[1]} | "
                      f"{at[n_all]['fit_seconds'].mean():.1f} |")
    return "\n".join(lines) + "\n\n" + "\n".join(lines2) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["hh-rlhf", "hh-rlhf:harmless-base", "qa-feedback"])
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES), help=f"names in {list(CANDIDATES)}")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--max-pairs", type=int, default=3000)
    p.add_argument("--model", default="default", help="embedding model")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--name", default="model_study", help="output file stem")
    p.add_argument("--from-raw", nargs="+", default=None, metavar="STEM",
                   help="no fits: the tables of earlier runs' raw files (e.g. one run per dataset), as --name")
    args = p.parse_args(argv)
    if args.from_raw:
        table = summarise(pd.concat([pd.read_csv(OUT / f"{stem}_raw.csv") for stem in args.from_raw]))
        (OUT / f"{args.name}.md").write_text(table)
        print(table)
        return 0
    unknown = sorted(set(args.candidates) - set(CANDIDATES))
    if unknown:
        p.error(f"unknown candidates {unknown}; choose from {list(CANDIDATES)}")
    OUT.mkdir(parents=True, exist_ok=True)
    embedder = Embedder(args.model, max_length=args.max_length)
    rows: list[dict] = []
    t0 = time.perf_counter()
    for dataset in args.datasets:
        train, test, _ = load_experiment_pools(ExperimentConfig(PoolConfig(dataset=dataset, max_pairs=args.max_pairs)))
        et, ee = embed_pool(train, embedder), embed_pool(test, embedder)
        y_tr, y_te = np.asarray(train.labels, dtype=np.float64), np.asarray(test.labels, dtype=np.float64)
        print(f"{dataset}: {len(train)} train / {len(test)} test pairs", flush=True)
        for name in args.candidates:
            for seed in args.seeds:
                rows += [{"dataset": dataset, "model": name, "seed": seed, **r}
                         for r in study_seed(name, seed, et, ee, y_tr, y_te)]
            pd.DataFrame(rows).to_csv(OUT / f"{args.name}_raw.csv", index=False)  # keep what finished
    df = pd.DataFrame(rows)
    table = summarise(df)
    (OUT / f"{args.name}.md").write_text(table)
    print(table)
    print(f"{time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
