"""Ray engine vs local engine: embedding throughput of N HH-RLHF texts, overheads included.

Usage::

    nice -n 10 python benchmarks/ray_embed.py                      # 1000 texts, 2 Ray workers
    python benchmarks/ray_embed.py --n 200 --workers 2 --json out.json

Texts: the first N distinct prompt / prompt+A / prompt+B texts of HH-RLHF harmless-base test (what
``embed_pool`` embeds), default MiniLM on CPU, no cache reads (fresh cache folders), batch size 32.

Each engine runs in its own subprocess (fresh torch, fresh Ray), in this order:

- ``local``: ``Embedder`` load + :func:`balpm.embed.embed_texts` through a fresh cache (torch uses every core);
- ``local-1thread``: the same with ``torch.set_num_threads(1)`` (what one Ray worker gets);
- ``ray``: ``ray.init(num_cpus=cores)`` + :func:`balpm.distributed.embed_texts_ray` with ``--workers`` replicas
  of 1 CPU each and blocks of ``--chunk`` texts (so every worker gets several), then the same call again on the
  warm cluster (new actor pool, probe memoised) and once more fully cached.

Reported: wall time end to end, texts/s over that, and the Ray run's parts (cluster start, probe = one extra
model load to learn the cache key, the Ray Data job including actor start-up and model loads).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_result, run_measurement, write_json  # noqa: E402
from acquisition import machine  # noqa: E402


def texts_of(n: int) -> list[str]:
    from balpm.data import data_dir, load_pool

    pool = load_pool(Path(data_dir()) / "hh-rlhf" / "harmless-base-test.jsonl.gz")
    texts: list[str] = []
    for p, a, b in zip(pool.prompt_texts(), pool.pair_texts("a"), pool.pair_texts("b")):
        texts += [p, a, b]
    return list(dict.fromkeys(texts))[:n]


def run_engine(engine: str, n: int, workers: int, chunk: int, batch: int) -> dict:
    texts = texts_of(n)
    cache = tempfile.mkdtemp(prefix="balpm-ray-bench-")
    out: dict = {"engine": engine, "texts": len(texts)}
    if engine.startswith("local"):
        import torch

        from balpm.embed import Embedder, embed_texts

        if engine == "local-1thread":
            torch.set_num_threads(1)
        out["threads"] = torch.get_num_threads()
        t0 = time.perf_counter()
        e = Embedder("default", device="cpu", batch_size=batch)
        out["load_s"] = time.perf_counter() - t0
        _, st = embed_texts(texts, e, cache_dir=cache)
        out["encode_s"] = st["seconds"]
        out["wall_s"] = time.perf_counter() - t0
        return out
    os.environ["RAY_DISABLE_USAGE_STATS"] = "1"
    import ray

    from balpm.distributed import embed_texts_ray

    t0 = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             object_store_memory=500 * 2**20)
    out["init_s"] = time.perf_counter() - t0
    kw = {"model": "default", "batch_size": batch}
    for label, folder in (("cold", cache), ("warm", tempfile.mkdtemp(prefix="balpm-ray-bench-")), ("cached", cache)):
        t = time.perf_counter()
        _, st = embed_texts_ray(texts, kw, folder, num_workers=workers, chunk_size=chunk)
        out[label] = {"s": time.perf_counter() - t, "probe_s": st["probe_seconds"], "computed": st["computed"],
                      "blocks": st["blocks"]}
    out["wall_s"] = out["init_s"] + out["cold"]["s"]
    ray.shutdown()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--chunk", type=int, default=128, help="texts per Ray block / cache chunk")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--engines", nargs="+", default=["local", "local-1thread", "ray"])
    p.add_argument("--json")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.one:
        print_result(run_engine(args.one, args.n, args.workers, args.chunk, args.batch))
        return 0
    rows = []
    for engine in args.engines:
        cmd = [sys.executable, __file__, "--one", engine, "--n", str(args.n), "--workers", str(args.workers),
               "--chunk", str(args.chunk), "--batch", str(args.batch)]
        res = run_measurement(cmd, engine)
        if res is None:
            continue
        rows.append(res)
        print(json.dumps(res), file=sys.stderr, flush=True)
    print(f"machine: {machine()}; load average at the end: {os.getloadavg()[0]:.1f}")
    print("| engine | wall (s) | texts/s | parts |")
    print("|---|---|---|---|")
    base = next((r["wall_s"] for r in rows if r["engine"] == "local"), None)
    for r in rows:
        rate = r["texts"] / r["wall_s"]
        if r["engine"].startswith("local"):
            parts = f"{r['threads']} torch threads; model load {r['load_s']:.1f} s, encode {r['encode_s']:.1f} s"
        else:
            parts = (f"ray.init {r['init_s']:.1f} s, cold run {r['cold']['s']:.1f} s (probe {r['cold']['probe_s']:.1f} s,"
                     f" {r['cold']['blocks']} blocks); on the warm cluster {r['warm']['s']:.1f} s "
                     f"({r['texts'] / r['warm']['s']:.1f} texts/s); fully cached rerun {r['cached']['s']:.1f} s")
        ratio = f" ({base / r['wall_s']:.2f}x local)" if base else ""
        print(f"| {r['engine']} | {r['wall_s']:.1f} | {rate:.1f}{ratio} | {parts} |")
    if args.json:
        write_json(args.json, machine(), rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
