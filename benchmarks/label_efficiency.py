"""Label efficiency: policies × datasets × seeds of simulated active learning, then the comparison report.

Every run is :func:`balpm.experiment.run_experiment` with the dataset's own labels as the oracle; the report is
:func:`balpm.report.write_report` (learning curves with standard-error bands, labels saved against ``random``
and ``bald``). Output goes to ``benchmarks/out/label_efficiency/`` (gitignored): ``runs/<dataset>-<policy>-seed<s>``
and ``report/``. The report's summary replaces the "Label efficiency" section of ``benchmarks/README.md``.

Runs that already finished with the same configuration are skipped, so an interrupted benchmark resumes where it
stopped (delete the run folder to redo one).

Usage::

    python benchmarks/label_efficiency.py                 # the full grid (see --help for the settings)
    python benchmarks/label_efficiency.py --tiny          # a smoke test of the whole pipeline (~1-2 minutes)
    python benchmarks/label_efficiency.py --policies bal-pm random --betas auto 0.001 0.01 0.1 --beta-readme
        # β rules (issue 12, section 3): one bal-pm run per β, tagged beta=<β>; the table goes into the README's
        # "β rules" section, the "Label efficiency" section is left alone
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import sys
import time
from dataclasses import replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from balpm.config import AcquisitionConfig, EmbeddingConfig, EnsembleConfig, PoolConfig, int_tuple  # noqa: E402
from balpm.experiment import ExperimentConfig, run_experiment, run_finished  # noqa: E402
from balpm.report import write_report  # noqa: E402

POLICIES = ("bal-pm", "random", "bald", "softmax-bald", "power-bald", "softrank-bald")
DATASETS = ("hh-rlhf", "qa-feedback")
README = HERE / "README.md"
START, END = "<!-- label-efficiency:start -->", "<!-- label-efficiency:end -->"
BETA_START, BETA_END = "<!-- beta-rules:start -->", "<!-- beta-rules:end -->"
ROUNDS_SHOWN = (1, 2, 3)  # and the last round


def beta_value(text: str) -> float | str:
    """``auto`` or a number (``--beta``, ``--betas``)."""
    return "auto" if text.strip().lower() == "auto" else float(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=list(DATASETS))
    p.add_argument("--policies", nargs="+", default=list(POLICIES))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--max-pairs", type=int, default=3000, help="pairs per dataset (whole prompt groups)")
    p.add_argument("--initial", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--rounds", type=int, default=12)
    p.add_argument("--n-members", type=int, default=5)
    p.add_argument("--hidden", default="64", help="reward head widths (model default 64; paper 2048,256)")
    p.add_argument("--max-epochs", type=int, default=15)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--model", default="default", help="embedding model")
    p.add_argument("--beta", type=beta_value, default=0.01, help="bal-pm's β: a number or auto")
    p.add_argument("--betas", nargs="+", type=beta_value, default=None,
                   help="several β rules: one bal-pm run per value, tagged beta=<value> (then the main README "
                        "section is not rewritten)")
    p.add_argument("--beta-readme", action="store_true",
                   help="with --betas: write the β-rule table into the README's 'beta rules' section")
    p.add_argument("--out", type=Path, default=HERE / "out" / "label_efficiency")
    p.add_argument("--no-readme", action="store_true", help="do not rewrite the README section")
    p.add_argument("--no-png", action="store_true")
    p.add_argument("--tiny", action="store_true",
                   help="smoke-test preset: 200 pairs, 2 seeds, 2 rounds of 8, 3 small members; README untouched")
    args = p.parse_args(argv)
    if args.betas:
        args.no_readme = True  # the main grid's section is the fixed-β grid's alone
    if args.tiny:
        args.max_pairs, args.initial, args.batch_size, args.rounds = 200, 8, 8, 2
        args.n_members, args.hidden, args.max_epochs, args.max_length = 3, "32", 5, 64
        args.seeds = args.seeds[:2] if len(args.seeds) >= 2 else args.seeds
        args.no_readme = True
        if args.out == HERE / "out" / "label_efficiency":
            args.out = HERE / "out" / "label_efficiency_tiny"
    return args


def configs(args: argparse.Namespace) -> list[ExperimentConfig]:
    base = ExperimentConfig(
        pool=PoolConfig(max_pairs=args.max_pairs), initial=args.initial, batch_size=args.batch_size,
        rounds=args.rounds, ensemble=EnsembleConfig(n_members=args.n_members, hidden=int_tuple(args.hidden),
                                                    max_epochs=args.max_epochs),
        embedding=EmbeddingConfig(embedding_model=args.model, max_length=args.max_length),
    )
    out = []
    for dataset in args.datasets:
        for seed in args.seeds:
            for policy in args.policies:
                for beta, tag in _beta_runs(args, policy):
                    name = "-".join(x for x in (re.sub(r"[^A-Za-z0-9._-]+", "-", dataset), policy,
                                                tag.replace("=", "")) if x) + f"-seed{seed}"
                    out.append(replace(base, pool=replace(base.pool, dataset=dataset), seed=seed, tag=tag,
                                       acquisition=AcquisitionConfig(policy, {"beta": beta, "k": 13}),
                                       out=str(args.out / "runs" / name)))
    return out


def _beta_runs(args: argparse.Namespace, policy: str) -> list[tuple[float | str, str]]:
    """``(β, tag)`` of the runs of ``policy``: one per ``--betas`` value for bal-pm (tagged), else one untagged."""
    if args.betas and policy == "bal-pm":
        return [(b, f"beta={b:g}" if isinstance(b, float) else f"beta={b}") for b in args.betas]
    return [(args.beta, "")]


def update_readme(summary: str, args: argparse.Namespace, seconds: float) -> None:
    cmd = "python benchmarks/label_efficiency.py " + " ".join(sys.argv[1:])
    body = "\n".join([
        START,
        "## Label efficiency",
        "",
        f"Command: `{cmd.strip()}` ({seconds / 60:.1f} min of runs on {platform.machine()}, "
        f"{platform.python_version()}). Datasets {', '.join(args.datasets)}; {args.max_pairs} pairs each "
        f"(whole prompt groups, 20% held out for test); {args.initial} random initial labels, then {args.rounds} "
        f"rounds of {args.batch_size}; ensemble of {args.n_members} heads {args.hidden}, embeddings {args.model} "
        f"(max {args.max_length} tokens); seeds {args.seeds}.",
        "",
        summary.replace("# Label efficiency\n", "").strip().replace("\n## ", "\n### "),
        "",
        END,
    ])
    text = README.read_text() if README.exists() else "# Benchmarks\n"
    if START in text and END in text:
        text = text[: text.index(START)] + body + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    README.write_text(text)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfgs = configs(args)
    t0 = time.perf_counter()
    dirs = []
    for i, cfg in enumerate(cfgs, 1):
        tag = f"[{i}/{len(cfgs)}] {cfg.pool.dataset} {cfg.acquisition.policy} seed {cfg.seed}"
        if run_finished(cfg):
            print(f"{tag}: done already", flush=True)
        else:
            t = time.perf_counter()
            run_experiment(cfg)
            print(f"{tag}: {time.perf_counter() - t:.0f}s", flush=True)
        dirs.append(Path(cfg.out))
    report = write_report(dirs, args.out / "report", png=not args.no_png)
    # Wall time of the runs themselves, whichever invocation made them (a resumed grid or a report-only rerun).
    seconds = sum(float(json.loads((d / "config.json").read_text())["resolved"].get("seconds") or 0.0) for d in dirs)
    print(f"this invocation: {(time.perf_counter() - t0) / 60:.1f} min")
    summary = (report / "summary.md").read_text()
    print(summary)
    print(f"report: {report}  ({seconds / 60:.1f} min)")
    if not args.no_readme:
        update_readme(summary, args, seconds)
        print(f"updated {README}")
    if args.betas:
        table = beta_table(dirs)
        (args.out / "report" / "beta_rules.md").write_text(table + "\n")
        print(table)
        if args.beta_readme:
            write_section(BETA_START, BETA_END, _beta_section(table, args, seconds), after="### Conclusion")
            print(f"updated {README} (beta rules)")
    return 0


def beta_table(dirs: list[Path]) -> str:
    """Markdown: per dataset and β rule, the final test LL ± s.e. over seeds, labels saved against random, and the
    mean (median) U/score of the picks and the mean β used at rounds 1, 2, 3 and the last."""
    import numpy as np

    from balpm.report import compare_runs, labels_saved, load_runs

    metrics, acq = load_runs(dirs)
    curves = compare_runs(metrics)
    test = curves[curves["split"] == "test"]
    rows = ["| dataset | policy (β rule) | final test LL ± s.e. | labels saved vs random (of the final n) | "
            "U/score of the picks, mean (median): rounds 1 / 2 / 3 / last | β used: rounds 1 / 2 / 3 / last |",
            "|---|---|---|---|---|---|"]
    for dataset, part in test.groupby("dataset", sort=False):
        last_n = part["n_labeled"].max()
        for policy in sorted(part["policy"].unique(), key=lambda p: (p == "random", p)):
            end = part[(part["policy"] == policy) & (part["n_labeled"] == last_n)].iloc[0]
            ll = f"{end['log_likelihood_mean']:.4f} ± {end['log_likelihood_se']:.4f}"
            saved = "–"
            if policy != "random" and "random" in set(part["policy"]):
                r = labels_saved(curves, policy, "random", dataset=dataset)
                saved = (f"{r['labels_saved']:.0f} ({r['percent_saved']:.0f}%)" if r["reached"]
                         else "not reached")
            picks = acq[(acq["dataset"] == dataset) & (acq["policy"] == policy) & (acq["round"] > 0)]
            last = int(picks["round"].max()) if len(picks) else 0
            ratio, beta = [], []
            for rnd in (*ROUNDS_SHOWN, last):
                g = picks[picks["round"] == rnd]
                x = g["ratio"].to_numpy(dtype=np.float64)
                x = x[np.isfinite(x)]
                ratio.append(f"{x.mean():.3g} ({np.median(x):.3g})" if x.size else "–")
                b = g["beta"].to_numpy(dtype=np.float64) if "beta" in g else np.empty(0)
                b = b[np.isfinite(b)]
                beta.append(f"{b.mean():.3g}" if b.size else "–")
            rows.append(f"| {dataset} | {policy} | {ll} | {saved} | {' / '.join(ratio)} | {' / '.join(beta)} |")
    return "\n".join(rows)


def _beta_section(table: str, args: argparse.Namespace, seconds: float) -> str:
    cmd = "python benchmarks/label_efficiency.py " + " ".join(sys.argv[1:])
    return "\n".join([
        "### β rules (issue 12, section 3)", "",
        f"Command: `{cmd.strip()}` ({seconds / 60:.1f} min of runs on {platform.machine()}). Same settings as the "
        f"label-efficiency grid: {args.max_pairs} pairs per dataset, {args.initial} random initial labels, then "
        f"{args.rounds} rounds of {args.batch_size}; {args.n_members} members, heads {args.hidden}; seeds "
        f"{args.seeds}. `auto` is `--beta auto` (balpm.acquisition.auto_beta: each round β = IQR(BALD) / IQR(Ĥ) "
        "over the candidates). Labels saved: against random's final LL, counted from where the mean curve stays "
        "at or above it. U/score: mean and median over the picks of all seeds (outliers come from scores near 0).",
        "", table])


def write_section(start: str, end: str, body: str, after: str) -> None:
    """Replace the README text between ``start`` and ``end`` with ``body``; a new section goes before ``after``
    (a heading), or at the end when that heading is missing."""
    text = README.read_text()
    block = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    elif after in text:
        i = text.index(after)
        text = text[:i] + block + "\n\n" + text[i:]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    README.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
