"""Decoder LLM features against MiniLM: the learnability ceiling on the same subsample (issue 12, section 4).

For each dataset: a seeded subsample of about ``--max-pairs`` labelled pairs by whole prompt groups (the pools' own
sampling, :func:`balpm.experiment.load_labelled_sample`, as ``--max-pairs`` of ``balpm run``), embedded with each
model through the usual cache (``~/.cache/balpm``: a rerun is instant), then :func:`balpm.check.learnability_check`
on ALL its labels, once per feature set, with the same seed, so every feature set sees the same pairs and the same
folds: k-fold-by-prompt-group held-out log-likelihood and accuracy of the default preference ensemble and of the
check's baselines (constant, length-difference logistic, logistic on a − b), its learning curve and its verdict.

Because pairs and folds are shared, the script also reports the *paired* difference of each model's held-out
log-likelihood between two feature sets (per pair, standard error clustered by prompt group): far tighter than
comparing two means that each carry their own error. The per-pair predictions are the ones the check itself
computed (``LearnabilityReport.pair_ll``, not recomputed), asserted to give its table's numbers. Each check's result is saved in ``--out`` and reused while its inputs are unchanged.

Feature sets: each ``--models`` entry, and with ``--concat`` both side by side (does the second add anything).

Usage (2-core shared CPU; the SmolLM2 pass embeds at about 1-3 texts/s, ~20-30 min per dataset when not cached)::

    OMP_NUM_THREADS=1 nice -n 5 python benchmarks/decoder_features.py --concat --unit-norm   # 2 datasets, ~600 pairs
    python benchmarks/decoder_features.py --datasets sample:qa-feedback --max-pairs 200 --models default
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from _common import cpu_model  # noqa: E402

from balpm.check import CHANCE_LL, MODEL_NAMES, _cluster_se, learnability_check  # noqa: E402
from balpm.embed import Embedder, PoolEmbeddings, embed_pool  # noqa: E402
from balpm.experiment import load_labelled_sample  # noqa: E402
from balpm.safeio import ids_digest  # noqa: E402

README = HERE / "README.md"
START, END = "<!-- decoder-features:start -->", "<!-- decoder-features:end -->"
NAMES = {"default": "MiniLM", "smollm2": "SmolLM2-135M"}
SHORT = {MODEL_NAMES[0]: "ensemble", MODEL_NAMES[1]: "constant", MODEL_NAMES[2]: "length logreg",
         MODEL_NAMES[3]: "a − b logreg"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["hh-rlhf:harmless-base", "qa-feedback"])
    p.add_argument("--models", nargs="+", default=["default", "smollm2"], help="embedding models (first = reference)")
    p.add_argument("--max-pairs", type=int, default=600, help="subsample size (whole prompt groups)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the A/B coin and of the subsample")
    p.add_argument("--seed", type=int, default=0, help="seed of the check: folds, members, bootstrap")
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3, help="CV repeats of the ensemble (the check's default)")
    p.add_argument("--curve", nargs="+", type=float, default=[0.3125, 0.625, 1.0],
                   help="learning-curve fractions of each training part (600 pairs, 5 folds: 150, 300, all 480)")
    p.add_argument("--concat", action="store_true", help="also check both models' features side by side")
    p.add_argument("--unit-norm", action="store_true",
                   help="also check each model's features scaled to unit norm (MiniLM's already are)")
    p.add_argument("--fresh", action="store_true", help="rerun checks whose results are saved in --out")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (1 on a shared CPU: with more threads than cores, 2 ran a check 20x slower)")
    p.add_argument("--device", default=None, help="embedding device (default: CUDA, then MPS, then CPU)")
    p.add_argument("--embed-only", action="store_true", help="fill the embedding cache and stop")
    p.add_argument("--out", type=Path, default=HERE / "out" / "decoder_features")
    p.add_argument("--readme", action="store_true", help="write the tables between the markers of README.md")
    return p.parse_args(argv)


def embed(pool, model: str, dataset: str, device: str | None) -> tuple[PoolEmbeddings, dict]:
    """Embed the subsample with ``model`` through the cache; throughput of what was not cached."""
    embedder = Embedder(model, device=device)
    t0, last = time.perf_counter(), [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 60 or done == total:
            last[0] = now
            print(f"  {dataset} / {model}: {done}/{total} texts, {now - t0:.0f}s", flush=True)

    pe = embed_pool(pool, embedder, progress=progress)
    st = dict(pe.stats)
    st["texts_per_s"] = st["computed"] / st["seconds"] if st.get("computed") else None
    st["model_id"] = embedder.model_id
    return pe, st


def unit_norm(pe: PoolEmbeddings) -> PoolEmbeddings:
    """Every vector scaled to unit L2 norm, as MiniLM's are (``Embedder(normalize=True)`` gives the same): the
    ensemble's defaults were tuned on unit-norm inputs, and SmolLM2's last-token states have norms near 50."""
    def unit(x: np.ndarray) -> np.ndarray:
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    return PoolEmbeddings(pe.ids, unit(pe.prompt), unit(pe.a), unit(pe.b), f"{pe.model_id}/unit")


def concat(first: PoolEmbeddings, second: PoolEmbeddings) -> PoolEmbeddings:
    """Both feature sets side by side (rows matched by id)."""
    if not np.array_equal(first.ids, second.ids):
        raise ValueError("the two embeddings do not cover the same pairs in the same order")
    return PoolEmbeddings(first.ids, np.hstack([first.prompt, second.prompt]), np.hstack([first.a, second.a]),
                          np.hstack([first.b, second.b]), f"{first.model_id}+{second.model_id}")


def _code_digest() -> str:
    """sha256 of the modules behind a check's numbers: a saved result is reused only while they are unchanged (a
    changed model default must not mix old and new numbers in one table)."""
    import hashlib

    import balpm.ensemble_training
    import balpm.metrics
    import balpm.model

    h = hashlib.sha256()
    for mod in (check, balpm.model, balpm.ensemble_training, balpm.metrics):
        h.update(Path(mod.__file__).read_bytes())
    return h.hexdigest()[:16]


def check_features(pool, pe: PoolEmbeddings, name: str, args: argparse.Namespace) -> dict:
    """The learnability check on all labels of ``pool`` with features ``pe``, plus each model's held-out LL per pair
    (asserted equal to the report's table); cached in ``args.out`` under a key of everything that changes it."""
    key = {"dataset": args.current, "pairs": len(pool), "ids": ids_digest(pool.ids), "model_id": pe.model_id,
           "data_seed": args.data_seed, "seed": args.seed, "folds": args.folds, "repeats": args.repeats,
           "curve": list(args.curve), "code": _code_digest()}
    path = args.out / re.sub(r"[^A-Za-z0-9.+-]+", "_", f"{args.current}__{name}.json")
    if path.is_file() and not args.fresh:
        saved = json.loads(path.read_text())
        if saved.get("key") == key:
            print(f"--- {args.current}, {name}: from {path}", flush=True)
            return saved
    t0 = time.perf_counter()
    rep = learnability_check(pool, pe, budget=len(pool), folds=args.folds, seed=args.seed,
                             repeats=args.repeats, curve_fractions=args.curve)
    ids, ll = rep.pair_ids, rep.pair_ll
    table = rep.models.set_index("model")["log_likelihood"]
    for m in MODEL_NAMES:
        if not np.isclose(ll[m].mean(), table[m], atol=1e-9):
            raise AssertionError(f"{m}: per-pair LL {ll[m].mean():.6f} differs from the check's {table[m]:.6f}")
    print(f"--- {args.current}, {name} features ({time.perf_counter() - t0:.0f}s)\n{rep.summary()}", flush=True)
    groups = pool.groups[pd.Index(pool.ids).get_indexer(ids)]
    saved = {"key": key, "report": rep.to_dict(), "ids": ids.tolist(), "groups": [str(g) for g in groups],
             "pair_ll": {m: v.tolist() for m, v in ll.items()}}
    path.write_text(json.dumps(saved, default=float))
    return saved


def run_dataset(dataset: str, args: argparse.Namespace) -> dict:
    pool = load_labelled_sample(dataset, args.max_pairs, args.data_seed)
    print(f"{dataset}: {len(pool)} pairs, {len(np.unique(pool.groups))} prompt groups", flush=True)
    args.current = dataset
    embs, stats = {}, {}
    for model in args.models:
        embs[NAMES.get(model, model)], stats[NAMES.get(model, model)] = embed(pool, model, dataset, args.device)
    if args.embed_only:
        return {"dataset": dataset, "pairs": len(pool), "embedding": stats}
    names = list(embs)
    if args.unit_norm:
        for name in names[1:]:
            embs[f"{name}, unit norm"] = unit_norm(embs[name])
    if args.concat and len(names) == 2:
        embs[f"{names[0]} + {names[1]}"] = concat(embs[names[0]], embs[names[1]])
    out = {"dataset": dataset, "pairs": len(pool), "groups": int(len(np.unique(pool.groups))),
           "embedding": stats, "features": {}, "paired": []}
    done = {name: check_features(pool, pe, name, args) for name, pe in embs.items()}
    out["features"] = {name: d["report"] for name, d in done.items()}
    ref = done[names[0]]
    codes = pd.factorize(pd.Series(ref["groups"]))[0]
    for name in [n for n in done if n != names[0]]:
        if done[name]["ids"] != ref["ids"]:
            raise AssertionError(f"{name} and {names[0]} were checked on different pairs")
        for m in (MODEL_NAMES[0], MODEL_NAMES[3]):
            d = np.asarray(done[name]["pair_ll"][m]) - np.asarray(ref["pair_ll"][m])
            out["paired"].append({"model": m, "features": name, "reference": names[0], "diff": float(d.mean()),
                                  "se": _cluster_se(d, codes)})
    return out


def _fmt(v: float, se: float, digits: int = 4) -> str:
    return f"{v:.{digits}f} ± {se:.{digits}f}"


def tables(results: list[dict]) -> str:
    """Markdown: the CV table per dataset and feature set, the learning curve, the paired differences."""
    lines = ["| dataset (pairs / groups) | features | model | held-out LL ± s.e. | accuracy ± s.e. | gain over "
             "constant ± s.e. | verdict |", "|---|---|---|---|---|---|---|"]
    for r in results:
        for fname, rep in r["features"].items():
            for i, m in enumerate(rep["models"]):
                if m["model"] == MODEL_NAMES[1] and fname != next(iter(r["features"])):
                    continue  # the constant is the same for every feature set
                gain = "–" if m["model"] == MODEL_NAMES[1] else f"{m['gain']:+.4f} ± {m['gain_se']:.4f}"
                lines.append(f"| {r['dataset']} ({r['pairs']} / {r['groups']}) | {fname} | {SHORT[m['model']]} | "
                             f"{_fmt(m['log_likelihood'], m['ll_se'])} | {_fmt(m['accuracy'], m['accuracy_se'], 3)} "
                             f"| {gain} | {rep['verdict'] if i == 0 else ''} |")
    lines += ["", "Learning curve of the ensemble (held-out LL ± s.e. by mean training pairs per fold):", "",
              "| dataset | features | curve |", "|---|---|---|"]
    for r in results:
        for fname, rep in r["features"].items():
            pts = "; ".join(f"{c['n_train']:.0f}: {_fmt(c['log_likelihood'], c['ll_se'])}" for c in rep["curve"])
            lines.append(f"| {r['dataset']} | {fname} | {pts} |")
    lines += ["", "Paired difference of held-out LL per pair (same pairs, same folds; s.e. clustered by prompt "
              "group; positive = better than the reference):", "",
              "| dataset | model | features − reference | difference ± s.e. |", "|---|---|---|---|"]
    for r in results:
        for p in r["paired"]:
            lines.append(f"| {r['dataset']} | {SHORT[p['model']]} | {p['features']} − {p['reference']} | "
                         f"{p['diff']:+.4f} ± {p['se']:.4f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = [run_dataset(d, args) for d in args.datasets]
    (args.out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    if args.embed_only:
        print(json.dumps([{k: r[k] for k in ("dataset", "pairs", "embedding")} for r in results], default=str))
        return
    machine = (f"{cpu_model()}, `nproc` {os.cpu_count()}, {platform.system()}, torch threads {args.threads}, "
               f"load average {os.getloadavg()[0]:.1f} at the end; {time.perf_counter() - t0:.0f} s in all")
    body = (f"{START}\nCommand: `python benchmarks/decoder_features.py {' '.join(sys.argv[1:])}`. Machine: "
            f"{machine}. Chance is {CHANCE_LL:.4f} nats.\n\n{tables(results)}\n{END}")
    (args.out / "table.md").write_text(body + "\n")
    print(body)
    if args.readme:
        text = README.read_text()
        if START in text and END in text:
            README.write_text(text[: text.index(START)] + body + text[text.index(END) + len(END):])
            print(f"rewrote the decoder-features tables of {README}")
        else:
            print(f"{README} has no {START} marker: tables not written there")


if __name__ == "__main__":
    main()
