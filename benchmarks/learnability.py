"""Validate the learnability check (``balpm check``) against the all-label ceilings we measured.

For each dataset: the benchmark's training pool (:func:`balpm.experiment.load_experiment_pools`, the split of
``benchmarks/analysis_label_efficiency.py ceiling``), and per seed a random order of its pairs; the check runs on
the first 128, 256 and 512 of them (nested) with the budget set to the whole training pool, so its forecast at
the budget can be compared with the ensemble trained on all training labels (``benchmarks/README.md``, "Why
BAL-PM does (not) win here", section 2). Only the labelled pairs are embedded (the check needs no more), through
the usual cache. The table it prints is written between the ``learnability`` markers of ``benchmarks/README.md``.

Usage (2-core shared CPU)::

    OMP_NUM_THREADS=1 nice python benchmarks/learnability.py        # 3 datasets x 3 seeds x {128, 256, 512}
    python benchmarks/learnability.py --datasets sample:qa-feedback --seeds 0 --no-readme   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import cpu_model  # noqa: E402

from balpm.check import CHANCE_LL, learnability_check  # noqa: E402
from balpm.embed import Embedder, embed_pool  # noqa: E402
from balpm.config import PoolConfig  # noqa: E402
from balpm.experiment import ExperimentConfig, load_experiment_pools  # noqa: E402

README = HERE / "README.md"
START, END = "<!-- learnability:start -->", "<!-- learnability:end -->"
#: dataset → (max_pairs of the split, the all-label ceiling we measured: default ensemble, mean of 3 seeds, and
#: the 832-label one where measured), from benchmarks/README.md "Why BAL-PM does (not) win here", section 2.
CEILINGS = {
    "qa-feedback": (3000, -0.6929, -0.6848, "barely learnable; the ensemble falls with more labels"),
    "hh-rlhf:harmless-base": (3000, -0.6572, -0.6632, "learns; flat after ~450 labels"),
    "hh-rlhf": (0, -0.6887, -0.6902, "not learnable (53% accuracy with 6,790 labels)"),
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=list(CEILINGS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--labels", nargs="+", type=int, default=[128, 256, 512])
    p.add_argument("--model", default="default", help="embedding model")
    p.add_argument("--out", type=Path, default=HERE / "out" / "learnability")
    p.add_argument("--no-readme", action="store_true", help="do not rewrite the README section")
    return p.parse_args(argv)


def run(args: argparse.Namespace) -> pd.DataFrame:
    args.out.mkdir(parents=True, exist_ok=True)
    embedder = Embedder(args.model)
    rows = []
    for dataset in args.datasets:
        max_pairs = CEILINGS.get(dataset, (3000,))[0]
        train, _test, _ = load_experiment_pools(ExperimentConfig(PoolConfig(dataset=dataset, max_pairs=max_pairs)))
        orders = {s: np.random.default_rng(s).permutation(len(train)) for s in args.seeds}
        need = np.unique(np.concatenate([o[: max(args.labels)] for o in orders.values()]))
        t0 = time.perf_counter()
        emb = embed_pool(train.subset(need), embedder)
        print(f"{dataset}: {len(train)} training pairs; embedded {len(need)} in {time.perf_counter() - t0:.0f}s "
              f"({emb.stats.get('cached', 0)} texts cached)", flush=True)
        for seed in args.seeds:
            for n in args.labels:
                ids = train.ids[np.sort(orders[seed][:n])]
                rep = learnability_check(train, emb, ids, budget=len(train), seed=seed)
                m = rep.models.set_index("model")
                rows.append({"dataset": dataset, "seed": seed, "labels": n, "budget": len(train),
                             "verdict": rep.verdict, "seconds": rep.seconds,
                             "pm_ll": m.loc["preference model", "log_likelihood"],
                             "pm_gain": m.loc["preference model", "gain"],
                             "pm_gain_se": m.loc["preference model", "gain_se"],
                             "pm_acc": m.loc["preference model", "accuracy"],
                             "best_baseline_gain": m.drop(["preference model", "constant P(A)"])["gain"].max(),
                             "forecast_now": rep.forecast_now, "forecast_budget": rep.forecast_budget,
                             "forecast_lo": rep.forecast_budget_lo, "forecast_hi": rep.forecast_budget_hi})
                (args.out / f"{dataset.replace(':', '_')}_s{seed}_n{n}.json").write_text(
                    json.dumps(rep.to_dict(), indent=1, default=float))
                print(f"  seed {seed} labels {n}: {rep.verdict} ({rep.seconds:.1f}s); forecast at {len(train)}: "
                      f"{rep.forecast_budget:.4f} [{rep.forecast_budget_lo:.4f}, {rep.forecast_budget_hi:.4f}]",
                      flush=True)
        pd.DataFrame(rows).to_csv(args.out / "raw.csv", index=False)
    return pd.DataFrame(rows)


def table(df: pd.DataFrame) -> str:
    """One row per (dataset, labels): verdicts over seeds, CV numbers and the forecast next to the ceiling."""
    lines = ["| dataset (budget = training pool) | labels | verdicts over seeds | CV LL of the preference model "
             "(gain over constant ± s.e.) | forecast at the budget [10-90% band] | measured: all labels / 832 | "
             "s per check |",
             "|---|---|---|---|---|---|---|"]
    for (dataset, n), g in df.groupby(["dataset", "labels"], sort=False):
        counts = g["verdict"].value_counts()
        verdicts = ", ".join(f"{v} ×{c}" for v, c in counts.items())
        ceil = CEILINGS.get(dataset)
        measured = f"{ceil[1]:.4f} / {ceil[2]:.4f}" if ceil else "–"
        lines.append(
            f"| {dataset} ({int(g['budget'].iloc[0]):,}) | {n} | {verdicts} | "
            + "; ".join(f"{r.pm_ll:.4f} ({r.pm_gain:+.4f} ± {r.pm_gain_se:.4f})" for r in g.itertuples())
            + " | " + "; ".join(f"{r.forecast_budget:.4f} [{r.forecast_lo:.4f}, {r.forecast_hi:.4f}]"
                                for r in g.itertuples())
            + f" | {measured} | {g['seconds'].median():.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    t0 = time.perf_counter()
    df = run(args)
    machine = (f"{cpu_model()}, `nproc` {os.cpu_count()}, {platform.system()}, "
               f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, load average "
               f"{os.getloadavg()[0]:.1f} at the end; {time.perf_counter() - t0:.0f} s in all")
    md = table(df)
    body = (f"{START}\nCommand: `python benchmarks/learnability.py {' '.join(sys.argv[1:])}`. Machine: {machine}. "
            f"Chance is {CHANCE_LL:.4f} nats; seeds {', '.join(map(str, args.seeds))} in order.\n\n{md}\n{END}")
    (args.out / "table.md").write_text(body + "\n")
    print(body)
    if not args.no_readme:
        text = README.read_text()
        if START in text and END in text:
            text = text[: text.index(START)] + body + text[text.index(END) + len(END):]
            README.write_text(text)
            print(f"rewrote the learnability section of {README}")
        else:
            print(f"{README} has no {START} marker: table not written there")


if __name__ == "__main__":
    main()
