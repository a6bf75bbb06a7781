"""Benchmark 3: ensemble training. Batched members vs a loop over members, and the default-tuning study.

Usage
-----
    python benchmarks/train.py prepare [--pairs 5000] [--out benchmarks/out/hh5000.npz]
        Embed HH-RLHF pairs (balpm.data + balpm.embed, default MiniLM) into one .npz (a, b, prompt, labels, group).
    python benchmarks/train.py speed [--embeddings FILE.npz | --synthetic] [--pairs 5000] [--epochs 3]
        Same epochs (no early stopping) for PreferenceEnsemble.fit and fit_loop_reference; seconds and ratio.
    python benchmarks/train.py study [--embeddings FILE.npz] [--train 2000] [--test 1000] [--configs ...]
        Test log-likelihood, accuracy, ECE, fit time of the paper's configuration against other settings.
    python benchmarks/train.py step [--embeddings FILE.npz] [--pairs 2312]
        The model part of an app Step with the defaults: fit on all pairs + score all pairs.

Every sub-command prints a Markdown table and the machine (nproc, CPU or GPU model, torch version) and can write
JSON (``--json``). The machine is shared: compare only numbers from one run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from balpm.devices import select_device
from balpm.model import PreferenceEnsemble

from _common import cpu_model  # benchmarks/_common.py (run as python benchmarks/<name>.py)

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fit_loop_oracle import fit_loop_reference  # noqa: E402  (tests/fit_loop_oracle.py: fit, one member at a time)

OUT_DIR = Path(__file__).resolve().parent / "out"

#: Settings compared by ``study``; each entry is a set of PreferenceEnsemble parameters (others at their defaults).
CONFIGS: dict[str, dict[str, Any]] = {
    "paper (lr 3e-5, until early stop, cap 100)": dict(hidden=(2048, 256), lr=3e-5, max_epochs=100),
    "paper lr 3e-5, cap 15": dict(hidden=(2048, 256), lr=3e-5, max_epochs=15),
    "lr 1e-4, cap 15": dict(hidden=(2048, 256), lr=1e-4, max_epochs=15),
    "lr 3e-4, cap 15": dict(hidden=(2048, 256), lr=3e-4, max_epochs=15),
    "lr 1e-3, cap 15": dict(hidden=(2048, 256), lr=1e-3, max_epochs=15),
    "lr 3e-3, cap 15": dict(hidden=(2048, 256), lr=3e-3, max_epochs=15),
    "lr 1e-3, wd 0.01": dict(hidden=(2048, 256), lr=1e-3, max_epochs=15, weight_decay=0.01),
    "lr 1e-3, val 0.2": dict(hidden=(2048, 256), lr=1e-3, max_epochs=15, val_fraction=0.2),
    "lr 1e-3, hidden (512, 128)": dict(lr=1e-3, max_epochs=15, hidden=(512, 128)),
    "lr 1e-3, hidden (256, 64)": dict(lr=1e-3, max_epochs=15, hidden=(256, 64)),
    "lr 3e-3, hidden (256, 64)": dict(lr=3e-3, max_epochs=15, hidden=(256, 64)),
    "lr 1e-3, hidden (64,) (default)": dict(lr=1e-3, max_epochs=15, hidden=(64,)),
}
#: Run by ``study --cpu-set``: the paper's heads and learning rate vs the defaults, with CPU fit times.
CPU_SET = ["paper lr 3e-5, cap 15", "lr 1e-3, cap 15", "lr 1e-3, hidden (256, 64)", "lr 1e-3, hidden (64,) (default)"]


def machine() -> str:
    """One line naming the machine: nproc, CPU model, GPU if used, torch version, threads."""
    cpu = cpu_model()
    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (
        f"nproc {os.cpu_count()}, {cpu}{gpu}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch threads, python {platform.python_version()}"
    )


def prepare(pairs: int, out: Path, seed: int = 0) -> Path:
    """Embed a group-sampled subset of HH-RLHF (all four test splits) with the default embedder into ``out``."""
    from balpm.data import load_pool
    from balpm.embed import Embedder, embed_pool

    pool = load_pool("hh-rlhf", seed=seed).sample_groups(pairs, seed=seed)
    t0 = time.perf_counter()
    emb = embed_pool(pool, Embedder("default"))
    print(f"embedded {len(pool)} pairs in {time.perf_counter() - t0:.1f} s ({emb.stats})", file=sys.stderr)
    out.parent.mkdir(parents=True, exist_ok=True)
    groups = np.array(pool.pairs["group"].astype(str).tolist(), dtype=str)  # pandas 3 gives object arrays
    np.savez(out, a=emb.a, b=emb.b, prompt=emb.prompt, labels=pool.labels, group=groups, model_id=emb.model_id)
    return out


def load_embeddings(path: Path | None, pairs: int, d: int = 384, seed: int = 0) -> dict[str, np.ndarray]:
    """Real embeddings from a ``prepare`` file, or synthetic Bradley-Terry data (d=384) when ``path`` is None."""
    if path is not None:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
        keep = slice(0, min(pairs, len(data["labels"])))
        return {k: (v[keep] if v.ndim and len(v) == len(data["labels"]) else v) for k, v in data.items()}
    rng = np.random.default_rng(seed)
    prompt = rng.normal(size=(pairs, d)).astype(np.float32)
    a = prompt + 0.5 * rng.normal(size=(pairs, d)).astype(np.float32)
    b = prompt + 0.5 * rng.normal(size=(pairs, d)).astype(np.float32)
    norm = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)  # noqa: E731  (unit norm like MiniLM)
    a, b, prompt = norm(a), norm(b), norm(prompt)
    w = rng.normal(size=d)
    logit = 40 * (a - b) @ w / np.sqrt(d)
    labels = (rng.random(pairs) < 1 / (1 + np.exp(-logit))).astype(np.float64)
    return {"a": a, "b": b, "prompt": prompt, "labels": labels, "group": np.arange(pairs).astype(str)}


def group_split(data: dict[str, np.ndarray], n_train: int, n_test: int, seed: int = 0):
    """Disjoint train/test row indices by whole groups (prompts never straddle), about n_train / n_test rows."""
    groups = data["group"]
    uniq = np.unique(groups)
    order = np.random.default_rng(seed).permutation(len(uniq))
    rows_of = {g: np.flatnonzero(groups == g) for g in uniq}
    test, train = [], []
    for gi in order:
        rows = rows_of[uniq[gi]]
        if len(test) < n_test:
            test.extend(rows)
        elif len(train) < n_train:
            train.extend(rows)
    return np.array(train[:n_train]), np.array(test[:n_test])


def metrics(p: np.ndarray, y: np.ndarray, bins: int = 10) -> dict[str, float]:
    """Test log-likelihood (mean log p(observed label), nats), accuracy, ECE (10 bins on max probability)."""
    p = np.clip(p, 1e-12, 1 - 1e-12)
    ll = float(np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))
    conf = np.maximum(p, 1 - p)
    correct = ((p > 0.5) == (y == 1)).astype(float)
    edges = np.linspace(0.5, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges) - 1, 0, bins - 1)
    ece = sum(abs(correct[which == k].mean() - conf[which == k].mean()) * (which == k).mean()
              for k in range(bins) if (which == k).any())
    return {"test_ll": ll, "accuracy": float(correct.mean()), "ece": float(ece)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def run_speed(data: dict[str, np.ndarray], epochs: int, repeats: int, device: str | None, members: int,
              hidden: tuple[int, ...]) -> dict:
    """Batched fit vs loop over members, same epochs (patience > epochs, so nobody stops early)."""
    dev = select_device(device)
    params = dict(n_members=members, hidden=hidden, max_epochs=epochs, patience=epochs + 1, device=dev)
    a, b, y = data["a"], data["b"], data["labels"]
    PreferenceEnsemble(**{**params, "max_epochs": 1}).fit(a[:256], b[:256], y[:256])  # warm-up (kernels, allocator)
    rows = []
    for r in range(repeats):  # interleaved, so both sides see the same machine load
        sync(dev)
        t0 = time.perf_counter()
        batched = PreferenceEnsemble(**params).fit(a, b, y)
        sync(dev)
        t_batched = time.perf_counter() - t0
        t0 = time.perf_counter()
        loop = fit_loop_reference(PreferenceEnsemble(**params), a, b, y)
        sync(dev)
        t_loop = time.perf_counter() - t0
        diff = float(np.abs(batched.predict_member_proba(a, b) - loop.predict_member_proba(a, b)).max())
        rows.append({"repeat": r, "batched_s": t_batched, "loop_s": t_loop, "ratio": t_loop / t_batched,
                     "max_prob_diff": diff})
    return {"device": str(dev), "pairs": len(y), "epochs": epochs, "members": members, "hidden": hidden, "rows": rows,
            "median_ratio": statistics.median(r["ratio"] for r in rows)}


def run_study(data: dict[str, np.ndarray], n_train: int, n_test: int, configs: list[str], seeds: list[int],
              device: str | None) -> list[dict]:
    """Each config fitted on the same group split; test metrics of the ensemble mean, fit seconds, epochs."""
    tr, te = group_split(data, n_train, n_test)
    dev = select_device(device)
    out = []
    for name in configs:
        for seed in seeds:
            model = PreferenceEnsemble(**{**CONFIGS[name], "device": dev, "seed": seed})
            sync(dev)
            t0 = time.perf_counter()
            model.fit(data["a"][tr], data["b"][tr], data["labels"][tr])
            sync(dev)
            seconds = time.perf_counter() - t0
            p = model.predict_proba(data["a"][te], data["b"][te])
            out.append({"config": name, "seed": seed, "n_train": len(tr), "n_test": len(te),
                        **metrics(p, data["labels"][te]), "fit_s": seconds,
                        "epochs": float(model.history_["epochs_trained"].mean()),
                        "best_epoch": float(model.history_["best_epoch"].mean()), "device": str(dev)})
            print(json.dumps(out[-1]), file=sys.stderr, flush=True)
    return out


def run_step(data: dict[str, np.ndarray], pairs: int, device: str | None, repeats: int) -> list[dict]:
    """Fit the default ensemble on ``pairs`` labelled pairs and score all of them, as an app Step does."""
    a, b, y = data["a"][:pairs], data["b"][:pairs], data["labels"][:pairs]
    rows = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model = PreferenceEnsemble(device=device).fit(a, b, y)
        t1 = time.perf_counter()
        model.predict_member_proba(a, b)
        t2 = time.perf_counter()
        rows.append({"pairs": len(y), "fit_s": t1 - t0, "score_s": t2 - t1, "total_s": t2 - t0,
                     "epochs": model.history_["epochs_trained"].tolist()})
    return rows


def table(rows: list[dict], cols: list[str]) -> str:
    fmt = lambda v: f"{v:.4g}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def summarize_study(rows: list[dict]) -> list[dict]:
    """Mean over seeds per config."""
    out = []
    for name in dict.fromkeys(r["config"] for r in rows):
        rs = [r for r in rows if r["config"] == name]
        out.append({"config": name, "seeds": len(rs), "n_train": rs[0]["n_train"],
                    **{k: float(np.mean([r[k] for r in rs])) for k in
                       ("test_ll", "accuracy", "ece", "fit_s", "epochs", "best_epoch")}})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["prepare", "speed", "study", "step"])
    ap.add_argument("--embeddings", type=Path, help="a .npz from `prepare` (default: benchmarks/out/hh5000.npz "
                    "if present, else synthetic unless --real)")
    ap.add_argument("--synthetic", action="store_true", help="synthetic d=384 Bradley-Terry data")
    ap.add_argument("--pairs", type=int, default=5000)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--members", type=int, default=5)
    ap.add_argument("--hidden", type=int, nargs="+", default=[64], help="speed: hidden widths")
    ap.add_argument("--train", type=int, default=2000)
    ap.add_argument("--test", type=int, default=1000)
    ap.add_argument("--configs", nargs="*", default=list(CONFIGS), help=f"names from {list(CONFIGS)}")
    ap.add_argument("--cpu-set", action="store_true", help=f"study only {CPU_SET}")
    ap.add_argument("--seeds", type=int, nargs="*", default=[0])
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--out", type=Path, default=OUT_DIR / "hh5000.npz", help="prepare: output file")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    if args.command == "prepare":
        print(prepare(args.pairs, args.out))
        return 0
    path = None if args.synthetic else (args.embeddings or (args.out if args.out.exists() else None))
    data = load_embeddings(path, max(args.pairs, args.train + args.test))
    source = f"real: {path}" if path else "synthetic d=384"
    print(f"machine: {machine()}\ndata: {source}, {len(data['labels'])} pairs\n")
    if args.command == "speed":
        data = {k: (v[: args.pairs] if v.ndim else v) for k, v in data.items()}
        res = run_speed(data, args.epochs, args.repeats, args.device, args.members, tuple(args.hidden))
        print(table(res["rows"], ["repeat", "batched_s", "loop_s", "ratio", "max_prob_diff"]))
        print(f"\n{res['pairs']} pairs, {res['epochs']} epochs, {res['members']} members of {res['hidden']} on "
              f"{res['device']}: "
              f"median ratio loop/batched {res['median_ratio']:.2f}")
    elif args.command == "study":
        configs = CPU_SET if args.cpu_set else args.configs
        rows = run_study(data, args.train, args.test, configs, args.seeds, args.device)
        res = {"rows": rows, "summary": summarize_study(rows)}
        print(table(res["summary"], ["config", "seeds", "n_train", "test_ll", "accuracy", "ece", "fit_s", "epochs",
                                     "best_epoch"]))
    else:
        res = {"rows": run_step(data, args.pairs, args.device, args.repeats)}
        print(table(res["rows"], ["pairs", "fit_s", "score_s", "total_s", "epochs"]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"machine": machine(), "data": source, **res}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
