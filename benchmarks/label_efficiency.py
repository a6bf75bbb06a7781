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
from balpm.experiment import ExperimentConfig, run_experiment  # noqa: E402
from balpm.report import write_report  # noqa: E402

POLICIES = ("bal-pm", "random", "bald", "softmax-bald", "power-bald", "softrank-bald")
DATASETS = ("hh-rlhf", "qa-feedback")
README = HERE / "README.md"
START, END = "<!-- label-efficiency:start -->", "<!-- label-efficiency:end -->"


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
    p.add_argument("--beta", type=float, default=0.01)
    p.add_argument("--out", type=Path, default=HERE / "out" / "label_efficiency")
    p.add_argument("--no-readme", action="store_true", help="do not rewrite the README section")
    p.add_argument("--no-png", action="store_true")
    p.add_argument("--tiny", action="store_true",
                   help="smoke-test preset: 200 pairs, 2 seeds, 2 rounds of 8, 3 small members; README untouched")
    args = p.parse_args(argv)
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
                name = f"{re.sub(r'[^A-Za-z0-9._-]+', '-', dataset)}-{policy}-seed{seed}"
                out.append(replace(base, pool=replace(base.pool, dataset=dataset), seed=seed,
                                   acquisition=AcquisitionConfig(policy, {"beta": args.beta, "k": 13}),
                                   out=str(args.out / "runs" / name)))
    return out


def finished(cfg: ExperimentConfig) -> bool:
    """The run folder holds a finished run of exactly this configuration."""
    path = Path(cfg.out) / "config.json"
    if not path.exists():
        return False
    info = json.loads(path.read_text())
    same = ExperimentConfig.from_dict(info.get("config") or {}) == cfg  # folders of either config layout
    return same and bool(info.get("resolved", {}).get("finished"))


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
        if finished(cfg):
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
