"""One BAL-PM round on a synthetic pool of 100k–1M pairs (d = 384): time and peak memory of each step.

Usage::

    nice -n 10 python benchmarks/scale.py                          # 100k, 300k, 1M; markdown table
    python benchmarks/scale.py --sizes 20000 --json out.json       # quick check

Data (made once per size under ``--data-dir``, default ``/tmp/balpm-scale``, never in the repo): prompt
embeddings are the clustered Gaussians of ``benchmarks/acquisition.py`` (1000 centres), ``a`` and ``b`` the
prompt plus N(0, 0.5²) noise, written as a :func:`balpm.distributed.save_pool_embeddings` folder of ``.npy``
files (4.6 GB at 1M). Each size then runs in its own subprocess that memory-maps the pool and times:

1. the kNN graph of the prompts (k = 13; exact flat index up to ``--approx-threshold``, past it the index of
   ``--method``: the cell-blocked search by default since issue 14 (after IVF, HNSW before); wall and CPU
   seconds, the CPU ones less inflated by other jobs on shared cores) and, for any graph not from the flat
   index, its fidelity against exact search on ``--recall-queries`` sampled points
   (:func:`balpm.neighbors.graph_fidelity`: share with r_k within 1%, max error, share with the exact ball);
2. fitting a 5-member :class:`balpm.model.PreferenceEnsemble` (class defaults but ``max_epochs=--fit-epochs``)
   on ``--labelled`` pairs with synthetic Bradley-Terry labels (the same work at every size, for scale only);
3. uncertainty of every pair (:func:`balpm.distributed.chunked_uncertainty`: member probabilities in 65,536-row
   chunks, BALD kept);
4. BALD top-B and the BAL-PM greedy batch of B = 320 on the graph, 1% of the pool already acquired.

Peak memory: ``ru_maxrss`` of the subprocess (it includes the resident pages of the memory-mapped embeddings,
which the kernel may drop under pressure) and the peak of ``RssAnon`` sampled every 0.1 s (heap only: what the
round really needs in RAM).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_result, run_measurement, write_json  # noqa: E402
from acquisition import machine, synthetic  # noqa: E402  (the acquisition benchmark's generator and machine line)

K, B = 13, 320


class AnonPeak:
    """Samples ``RssAnon`` of this process in a thread: the heap's peak, page cache of memmaps excluded."""

    def __init__(self, every: float = 0.1) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._t.start()

    def _read(self) -> int:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        return 0

    def _run(self, every: float) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._read())
            time.sleep(every)

    def stop(self) -> int:
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, self._read())
        return self.peak


def make_pool(n: int, folder: Path, dim: int = 384) -> Path:
    """Write the synthetic pool once (prompt in RAM while generated, a/b streamed into memmaps)."""
    from balpm.distributed import save_pool_embeddings
    from balpm.embed import PoolEmbeddings

    if (folder / "meta.json").exists():
        return folder
    P = synthetic(n, dim)
    rng = np.random.default_rng(2)
    pairs = {}
    for name in ("a", "b"):
        arr = np.empty_like(P)
        for s in range(0, n, 65536):
            arr[s : s + 65536] = P[s : s + 65536] + rng.normal(scale=0.5, size=(min(n, s + 65536) - s, dim))
        pairs[name] = arr
    emb = PoolEmbeddings(ids=np.char.add("p", np.arange(n).astype(str)), prompt=P, a=pairs["a"], b=pairs["b"],
                         model_id="synthetic", stats={})
    save_pool_embeddings(emb, folder)
    return folder


def run_one(folder: Path, approx_threshold: int, recall_queries: int, labelled: int, fit_epochs: int,
            method: str) -> dict:
    import torch

    from balpm.acquisition import balpm_greedy
    from balpm.distributed import chunked_uncertainty, load_pool_embeddings
    from balpm.model import PreferenceEnsemble
    from balpm.neighbors import build_knn_graph, graph_fidelity

    anon = AnonPeak()
    out: dict = {"torch_threads": torch.get_num_threads()}
    t = time.perf_counter()
    emb = load_pool_embeddings(folder, mmap_mode="r")
    n = len(emb)
    out.update(n=n, dim=emb.dim, load_s=time.perf_counter() - t)
    rng = np.random.default_rng(1)
    acq = rng.uniform(size=n) < 0.01
    out["acquired"] = int(acq.sum())

    t, c = time.perf_counter(), time.process_time()
    g = build_knn_graph(emb.prompt, k=K, approx_threshold=approx_threshold, method=method)
    out["graph_s"] = time.perf_counter() - t
    out["graph_cpu_s"] = time.process_time() - c  # all threads: on shared cores less inflated than wall time
    out["graph_method"] = g.info["method"]
    out["graph_blocked"] = {k: v for k, v in g.info.items() if k.startswith("blocked_")}
    out["graph_parts"] = {k: round(v, 1) for k, v in g.info.items() if k.startswith("seconds_")}
    out["graph_mb"] = sum(a.nbytes for a in (g.radius, g.indptr, g.indices, g.t_indptr, g.t_indices)) / 2**20
    out["rss_after_graph_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if g.info["method"] != "flat" and not g.info["method"].startswith("torch") and recall_queries:
        out["fidelity"] = graph_fidelity(emb.prompt, g, n_queries=recall_queries, seed=3)

    # labelled pairs with synthetic Bradley-Terry labels from a hidden linear reward
    lab = np.sort(rng.choice(n, size=min(labelled, n), replace=False))
    w = np.random.default_rng(4).normal(size=emb.dim) / np.sqrt(emb.dim)
    a_l, b_l = np.asarray(emb.a[lab]), np.asarray(emb.b[lab])
    y = (rng.uniform(size=len(lab)) < 1 / (1 + np.exp(-(a_l - b_l) @ w * 4))).astype(float)
    t = time.perf_counter()
    ens = PreferenceEnsemble(n_members=5, seed=0, max_epochs=fit_epochs).fit(a_l, b_l, y)
    out["fit_s"] = time.perf_counter() - t
    out["ensemble"] = {"members": 5, "hidden": list(ens.hidden), "labelled": int(len(lab))}

    t, c = time.perf_counter(), time.process_time()
    unc = chunked_uncertainty(ens, emb.a, emb.b, chunk_rows=65536)
    out["score_s"] = time.perf_counter() - t
    out["score_cpu_s"] = time.process_time() - c
    U = unc["bald"]

    cand = ~acq
    t = time.perf_counter()
    s = np.where(cand, U, -np.inf)
    top = np.argpartition(-s, B)[:B]
    top = top[np.argsort(-s[top], kind="stable")]
    out["bald_select_s"] = time.perf_counter() - t
    t = time.perf_counter()
    picks, *_ = balpm_greedy(g, U, cand, acq, B)
    out["balpm_select_s"] = time.perf_counter() - t
    out["overlap_bald_balpm"] = int(np.intersect1d(picks, top).size)
    out["round_s"] = out["graph_s"] + out["score_s"] + out["bald_select_s"] + out["balpm_select_s"]
    out["later_round_s"] = out["score_s"] + out["balpm_select_s"]  # the graph is cached after the first round
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out["peak_anon_gb"] = anon.stop() / 2**30
    return out


def table(rows: list[dict]) -> str:
    lines = ["| pairs | kNN graph (s) | r_k within 1%; exact ball; max r_k error | fit 5 members (s) "
             "| score all pairs (s) | BALD top-320 (ms) "
             "| BAL-PM 320 (ms) | round total (s) | peak RSS / heap (GB) |", "|" + "---|" * 9]
    for r in rows:
        p = r["graph_parts"]
        graph = (f"{r['graph_s']:.1f} {r['graph_method']} (index {p['seconds_index']:.0f}, search "
                 f"{p['seconds_search']:.0f}, refine {p['seconds_refine']:.0f}; CPU {r.get('graph_cpu_s', 0):.0f})")
        f = r.get("fidelity")
        rec = (f"{100 * f['radius_within']:.2f}%; {100 * f['ball_equal']:.2f}%; +{100 * f['radius_err_max']:.2g}% "
               f"({f['queries']} q)" if f else "exact" if r["graph_method"] == "flat"
               or r["graph_method"].startswith("torch") else "not checked")
        lines.append(
            f"| {r['n']:,} | {graph} | {rec} | {r['fit_s']:.1f} | {r['score_s']:.1f} | "
            f"{1e3 * r['bald_select_s']:.1f} | {1e3 * r['balpm_select_s']:.1f} | {r['round_s']:.1f} | "
            f"{r['peak_rss_gb']:.2f} / {r['peak_anon_gb']:.2f} |"
        )
    if len(rows) > 1:
        a, b = rows[0], rows[-1]
        f = b["n"] / a["n"]
        lines.append("")
        lines.append(
            f"Growth {a['n']:,} → {b['n']:,} ({f:.0f}x pairs): graph {b['graph_s'] / a['graph_s']:.1f}x, scoring "
            f"{b['score_s'] / a['score_s']:.1f}x, BAL-PM select {b['balpm_select_s'] / a['balpm_select_s']:.1f}x, "
            f"round {b['round_s'] / a['round_s']:.1f}x, peak heap {b['peak_anon_gb'] / a['peak_anon_gb']:.1f}x."
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    p.add_argument("--data-dir", default="/tmp/balpm-scale")
    p.add_argument("--approx-threshold", type=int, default=200_000)
    p.add_argument("--recall-queries", type=int, default=2000)
    p.add_argument("--method", default="blocked", choices=["blocked", "ivf", "hnsw"],
                   help="index past the threshold (IndexTuning.method)")
    p.add_argument("--labelled", type=int, default=2000)
    p.add_argument("--fit-epochs", type=int, default=5, help="max_epochs of the ensemble fit (not the subject)")
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--one", help=argparse.SUPPRESS)
    p.add_argument("--make", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.make is not None:
        make_pool(args.make, Path(args.data_dir) / f"pool-{args.make}")
        return 0
    if args.one is not None:
        res = run_one(Path(args.one), args.approx_threshold, args.recall_queries, args.labelled, args.fit_epochs,
                      args.method)
        print_result(res)
        return 0

    rows = []
    for n in args.sizes:
        folder = Path(args.data_dir) / f"pool-{n}"
        t = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--make", str(n), "--data-dir", args.data_dir], check=True)
        print(f"N={n:,}: data ready in {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
        cmd = [sys.executable, __file__, "--one", str(folder), "--approx-threshold", str(args.approx_threshold),
               "--recall-queries", str(args.recall_queries), "--labelled", str(args.labelled),
               "--fit-epochs", str(args.fit_epochs), "--method", args.method]
        t = time.perf_counter()
        res = run_measurement(cmd, f"N={n}")
        if res is None:
            continue
        rows.append(res)
        print(f"N={n:,} done in {time.perf_counter() - t:.0f} s: {json.dumps(res)}", file=sys.stderr, flush=True)
    print(f"machine: {machine()}")
    print(table(rows))
    if args.json:
        write_json(args.json, machine(), rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
