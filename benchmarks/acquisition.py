"""Acquisition speed: BAL-PM batch selection on synthetic prompt embeddings vs a naive implementation.

Usage::

    python benchmarks/acquisition.py                       # 2k, 10k, 92k, 1M; prints a markdown table
    python benchmarks/acquisition.py --sizes 10000 --naive-sizes 10000 --json out.json
    python benchmarks/acquisition.py --select-only 10000 92000 1000000   # selection alone, random-ball graphs

Every size runs in its own subprocess so that ``ru_maxrss`` is that size's peak memory. Data: clustered
Gaussians (1000 centres, d = 384, float32), 1% of the points acquired, BALD uniform in [0, 0.1), batch 320.

Measured per size: the kNN graph build (with its parts) next to one plain faiss kNN search with the same k and
index; the greedy selection of one batch on the prebuilt graph (``heap``, the default, and ``argmax``; best of 3,
each call cold: the graph's cached ``log r_k`` is dropped first); for
the naive reference (all-pairs distances recomputed for every pick, float32 BLAS in chunks) the batch time, or —
past ``--naive-cap`` seconds — how many picks it managed; whether the naive picks equal the fast ones; for
approximate graphs the recall@k of the graph's k nearest neighbours against exact search on sampled queries.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time

import numpy as np
from scipy.special import digamma

from balpm.acquisition import balpm_greedy
from balpm.neighbors import build_knn_graph, knn_search, recall_at_k

from _common import cpu_model, print_result, run_measurement, write_json  # benchmarks/_common.py

K, BETA, EPS, D = 13, 0.01, 1e-4, 1.0


def synthetic(n: int, dim: int = 384, centres: int = 1000, seed: int = 0) -> np.ndarray:
    """Clustered Gaussian 'prompt embeddings', float32, generated in chunks (1M x 384 is 1.5 GB)."""
    rng = np.random.default_rng(seed)
    C = rng.normal(size=(centres, dim)).astype(np.float32)
    X = np.empty((n, dim), np.float32)
    for a in range(0, n, 65536):
        b = min(n, a + 65536)
        X[a:b] = C[rng.integers(centres, size=b - a)]
        X[a:b] += rng.normal(scale=0.5, size=(b - a, dim)).astype(np.float32)
    return X


def naive_select(X: np.ndarray, U: np.ndarray, cand: np.ndarray, acq: np.ndarray, batch: int,
                 cap_s: float, chunk: int = 2048) -> tuple[np.ndarray, float]:
    """The definition without any caching: every pick recomputes all-pairs distances, r_k and n(x)."""
    cand, acq = cand.copy(), acq.copy()
    sq = np.einsum("ij,ij->i", X, X)
    picks: list[int] = []
    t0 = time.perf_counter()
    for _ in range(batch):
        best, best_s = -1, -np.inf
        rows = np.flatnonzero(cand)
        for a in range(0, len(rows), chunk):
            r_ = rows[a:a + chunk]
            d2 = sq[r_, None] + sq[None, :] - 2.0 * (X[r_] @ X.T)
            d2[np.arange(len(r_)), r_] = np.inf
            dist = np.sqrt(np.maximum(d2, 0))
            rk = np.partition(dist, K - 1, axis=1)[:, K - 1]
            n = (dist[:, acq] <= rk[:, None]).sum(axis=1)
            s = U[r_] + BETA * (np.log(2 * rk + EPS) - digamma(n + 1.0) / D)
            j = int(np.argmax(s))
            if s[j] > best_s:
                best, best_s = int(r_[j]), float(s[j])
        picks.append(best)
        cand[best] = False
        acq[best] = True
        if time.perf_counter() - t0 > cap_s:
            break
    return np.array(picks), time.perf_counter() - t0


def run_one(n: int, batch: int, naive: bool, naive_cap: float, recall_queries: int, single_search: bool,
            approx_threshold: int) -> dict:
    X = synthetic(n)
    rng = np.random.default_rng(1)
    acq = rng.uniform(size=n) < 0.01
    cand = ~acq
    U = rng.uniform(0, 0.1, size=n)
    exact = n <= approx_threshold
    out: dict = {"n": n, "batch": batch, "exact": exact, "acquired": int(acq.sum())}

    t = time.perf_counter()
    g = build_knn_graph(X, k=K, exact=exact)
    out["graph_s"] = time.perf_counter() - t
    out["graph_parts"] = {key: round(v, 2) for key, v in g.info.items() if key.startswith("seconds_")}
    out["n_overflow"] = g.info["n_overflow"]
    out["method"] = g.info["method"]
    if exact:  # throughput of the exact search's matrix products (2·N²·d FLOPs), to set against the device's rate
        out["search_tflops"] = 2.0 * n * n * X.shape[1] / max(g.info["seconds_search"], 1e-9) / 1e12
    if single_search:
        t = time.perf_counter()
        knn_search(X, K, exact=exact)
        out["single_search_s"] = time.perf_counter() - t

    out.update(time_selection(g, U, cand, acq, batch))

    if not exact and recall_queries:
        q = np.sort(rng.choice(n, size=min(recall_queries, n), replace=False))
        t = time.perf_counter()
        _, E = knn_search(X, K, exact=True, queries=q)
        out["recall_exact_search_s"] = time.perf_counter() - t
        A = np.stack([g.ball(i)[:K] for i in q])
        out["recall_at_k"] = recall_at_k(A, E)
        out["recall_queries"] = len(q)

    if naive:
        p, dt = naive_select(X, U, cand, acq, batch, naive_cap)
        out["naive_s"] = dt
        out["naive_picks"] = len(p)
        out["naive_matches"] = bool(np.array_equal(p, np.array(out["picks_argmax"][: len(p)])))
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    del out["picks_heap"], out["picks_argmax"]
    return out


def time_selection(g, U: np.ndarray, cand: np.ndarray, acq: np.ndarray, batch: int, repeats: int = 3) -> dict:
    """Best-of-``repeats`` seconds of one batch per ``balpm_greedy`` method, each call cold (the graph's cached
    ``log r_k`` dropped first, as in a first round), and whether all methods picked the same."""
    out: dict = {}
    picks = {}
    for method in ("argmax", "heap"):
        times = []
        for _ in range(repeats):
            g.__dict__.pop("_log_radius", None)
            t = time.perf_counter()
            p, *_ = balpm_greedy(g, U, cand, acq, batch, beta=BETA, d=D, eps=EPS, method=method)
            times.append(time.perf_counter() - t)
        out[f"select_{method}_s"] = min(times)
        picks[method] = p.tolist()
    out["heap_equals_argmax"] = picks["heap"] == picks["argmax"]
    out["picks_heap"], out["picks_argmax"] = picks["heap"], picks["argmax"]
    return out


def random_ball_graph(n: int, k: int = K, seed: int = 0):
    """A KnnGraph with k random balls per point and random radii: what the selection's cost depends on (N, ball
    and member-list sizes) without the hour a real 1M-point graph takes to build on 2 cores."""
    from balpm.neighbors import KnnGraph

    rng = np.random.default_rng(seed)
    cols = np.sort(rng.integers(0, n, size=(n, k)), axis=1).ravel()
    rows = np.repeat(np.arange(n), k)
    t_indptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(cols, minlength=n), out=t_indptr[1:])
    return KnnGraph(k, rng.uniform(5, 10, n).astype(np.float32), np.arange(0, n * k + 1, k, dtype=np.int64),
                    cols.astype(np.int32), t_indptr, rows[np.lexsort((rows, cols))].astype(np.int32), exact=False)


def select_study(n: int, batch: int) -> dict:
    """Selection only, on :func:`random_ball_graph` (1% acquired, BALD uniform in [0, 0.1) as in ``run_one``)."""
    from greedy_oracle import greedy_oracle  # tests/greedy_oracle.py: balpm_greedy before issue 14

    g = random_ball_graph(n)
    rng = np.random.default_rng(1)
    acq = rng.uniform(size=n) < 0.01
    U = rng.uniform(0, 0.1, size=n)
    out: dict = {"n": n, "batch": batch, "graph": f"random balls, k={K}"}
    out.update(time_selection(g, U, ~acq, acq, batch))
    t = time.perf_counter()
    want = greedy_oracle(g, U, ~acq, acq, batch, beta=BETA, d=D, eps=EPS)[0].tolist()
    out["oracle_s"] = time.perf_counter() - t
    out["heap_equals_oracle"] = out["picks_heap"] == want
    del out["picks_heap"], out["picks_argmax"]
    return out


def recall_study(n: int, efs: list[int], n_queries: int, hnsw_m: int = 16, ef_construction: int = 40) -> dict:
    """HNSW at the graph's settings: recall@k and r_k error vs exact on sampled queries, for several efSearch."""
    import faiss

    X = synthetic(n)
    q = np.sort(np.random.default_rng(2).choice(n, size=n_queries, replace=False))
    t = time.perf_counter()
    _, E = knn_search(X, K, exact=True, queries=q)
    out: dict = {"n": n, "queries": n_queries, "exact_s": time.perf_counter() - t}
    r_exact = np.sort(np.linalg.norm(X[E] - X[q][:, None, :], axis=-1), axis=1)[:, K - 1]
    t = time.perf_counter()
    index = faiss.IndexHNSWFlat(X.shape[1], hnsw_m)
    index.hnsw.efConstruction = ef_construction
    for a in range(0, n, 65536):
        index.add(X[a:a + 65536])
    out["hnsw_build_s"] = time.perf_counter() - t
    out["ef"] = []
    for ef in efs:
        index.hnsw.efSearch = ef
        t = time.perf_counter()
        _, I = index.search(X[q], K + 1)
        dt = time.perf_counter() - t
        I = np.stack([row[row != qi][:K] for row, qi in zip(I, q)])
        r = np.sort(np.linalg.norm(X[I] - X[q][:, None, :], axis=-1), axis=1)[:, K - 1]
        rel = r / r_exact - 1
        out["ef"].append({"ef_search": ef, "recall_at_k": recall_at_k(I, E), "query_ms": 1e3 * dt / len(q),
                          "rk_rel_err_median": float(np.median(rel)), "rk_rel_err_max": float(rel.max()),
                          "log_rk_err_mean": float(np.mean(np.log1p(rel)))})
    out["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    return out


def machine() -> str:
    return f"{os.cpu_count()} cores ({cpu_model()}), python {platform.python_version()}"


def table(rows: list[dict]) -> str:
    batches = sorted({r["batch"] for r in rows}) or [320]
    head = (f"| N | kNN index | graph build (s) | one plain kNN search (s) | select B={'/'.join(map(str, batches))} "
            "argmax (ms) | heap (ms) "
            "| naive | naive / argmax | recall@13 | peak RSS (GB) |")
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        parts = r["graph_parts"]
        build = (f"{r['graph_s']:.1f} (index {parts['seconds_index']:.1f}, search {parts['seconds_search']:.1f}, "
                 f"float64 refine {parts['seconds_refine']:.1f}, overflow {parts['seconds_overflow']:.1f})")
        single = f"{r['single_search_s']:.1f}" if "single_search_s" in r else "not run"
        if "naive_s" in r:
            per_pick_naive = r["naive_s"] / r["naive_picks"]
            per_pick_fast = r["select_argmax_s"] / r["batch"]
            if r["naive_picks"] == r["batch"]:
                naive = f"{r['naive_s']:.1f} s"
            else:
                naive = f"{r['naive_picks']} of {r['batch']} picks in {r['naive_s']:.0f} s (capped)"
            naive += ", same picks" if r["naive_matches"] else ", DIFFERENT picks"
            ratio = f"{per_pick_naive / per_pick_fast:,.0f}x per pick"
        else:
            naive, ratio = "not run", "-"
        recall = (f"{r['recall_at_k']:.3f} ({r['recall_queries']} q)" if "recall_at_k" in r
                  else f"exact ({r['search_tflops']:.2f} TFLOP/s)" if "search_tflops" in r else "exact")
        lines.append(
            f"| {r['n']:,} | {r['method']} | {build} | {single} | {1e3 * r['select_argmax_s']:.1f} | "
            f"{1e3 * r['select_heap_s']:.1f} | {naive} | {ratio} | {recall} | {r['peak_rss_gb']:.2f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2000, 10_000, 92_000, 1_000_000])
    p.add_argument("--batch", type=int, default=320)
    p.add_argument("--naive-sizes", type=int, nargs="*", default=[2000, 10_000])
    p.add_argument("--naive-cap", type=float, default=180.0, help="seconds before the naive batch is cut short")
    p.add_argument("--single-search-max", type=int, default=200_000,
                   help="largest N at which the plain faiss search is also timed")
    p.add_argument("--approx-threshold", type=int, default=200_000)
    p.add_argument("--recall-queries", type=int, default=1000)
    p.add_argument("--json", help="also write the raw results here")
    p.add_argument("--recall-study", type=int, metavar="N",
                   help="only measure HNSW recall@k and r_k error vs exact at N points for --ef values")
    p.add_argument("--ef", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--select-only", type=int, nargs="+", metavar="N",
                   help="only time the selection at these sizes, on random-ball graphs (see random_ball_graph)")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.select_only:
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
        print(f"machine: {machine()}")
        print("| N | graph | heap (ms, default) | argmax (ms) | pre-issue-14 argmax (ms) | same picks |")
        print("|---|---|---|---|---|---|")
        for n in args.select_only:
            r = select_study(n, args.batch)
            print(f"| {n:,} | {r['graph']} | {1e3 * r['select_heap_s']:.1f} | {1e3 * r['select_argmax_s']:.1f} | "
                  f"{1e3 * r['oracle_s']:.1f} | {r['heap_equals_argmax'] and r['heap_equals_oracle']} |", flush=True)
        return 0

    if args.recall_study:
        res = recall_study(args.recall_study, args.ef, args.recall_queries)
        print(json.dumps(res, indent=1))
        return 0

    if args.one is not None:
        res = run_one(args.one, args.batch, args.one in args.naive_sizes, args.naive_cap, args.recall_queries,
                      args.one <= args.single_search_max, args.approx_threshold)
        print_result(res)
        return 0

    rows = []
    for n in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(n)] + [a for a in (argv or sys.argv[1:])]
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
