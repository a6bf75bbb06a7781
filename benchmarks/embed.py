"""Embedding throughput: length-sorted dynamic padding vs padding to max length, cold vs cached.

Texts are the first ``--n`` prompt+completion texts of the HH-RLHF test splits (``pool.pair_texts``), the texts
BAL-PM embeds for its preference model. Prints a table and writes it, with the exact command and the machine,
into the "Embedding" section of ``benchmarks/README.md`` (one result block per device, replaced on rerun).

    python benchmarks/embed.py                    # CPU here
    python benchmarks/embed.py --device cuda      # same script on a GPU

Other processes sharing the CPU move absolute numbers; the ratios within one run are what to quote.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import cpu_model  # benchmarks/_common.py (run as python benchmarks/<name>.py)

README = Path(__file__).resolve().parent / "README.md"
SECTION = "## Embedding"
INTRO = """\
`benchmarks/embed.py`: texts per second of `balpm.embed.Embedder` on the first N prompt+completion texts of
HH-RLHF (the `pool.pair_texts` BAL-PM embeds for its preference model), comparing length-sorted dynamic padding
(tokenize once, sort by token length, pad each batch to its own longest text; the default) with padding every
batch to `max_length`, and a cold run through the cache (encode + write chunk files) with a fully cached rerun.
Shared machines move the absolute numbers; compare ratios within one block.
"""


def hh_texts(n: int) -> list[str]:
    """The first ``n`` distinct prompt+completion texts of the built-in HH-RLHF pool (A then B per pair)."""
    from balpm.data import load_pool

    pool = load_pool("hh-rlhf")
    texts: list[str] = []
    for a, b in zip(pool.pair_texts("a"), pool.pair_texts("b")):
        texts += [a, b]
    return list(dict.fromkeys(texts))[:n]


def machine(device) -> dict[str, str]:
    """What the numbers were measured on."""
    import torch

    cpu = cpu_model()
    try:
        nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    except OSError:
        nproc = str(os.cpu_count())
    info = {"nproc": nproc, "cpu": cpu, "torch": torch.__version__, "torch threads": str(torch.get_num_threads())}
    import transformers

    info["transformers"] = transformers.__version__
    if device.type == "cuda":
        info["device"] = torch.cuda.get_device_name(device)
    elif device.type == "mps":
        info["device"] = "Apple MPS"
    else:
        info["device"] = "CPU"
    return info


def timed(fn) -> tuple[float, object]:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def run(args: argparse.Namespace) -> tuple[list[tuple[str, float, float, str]], dict[str, str], dict]:
    from balpm.embed import EmbeddingCache, Embedder

    texts = hh_texts(args.n)
    emb = Embedder(args.model, device=args.device, batch_size=args.batch_size, max_length=args.max_length)
    lengths = np.array([len(x) for x in emb.tokenize(texts)])
    info = machine(emb.device)
    extra = {"model": f"{emb!r}", "texts": len(texts), "tokens": lengths}
    accel = emb.device.type != "cpu"
    repeat = args.repeat or (3 if accel else 1)
    extra["repeat"] = repeat
    # Warm-up, not timed. On a GPU every new batch shape costs kernel selection the first time it is seen, so one
    # full pass per padding mode; on CPU a few batches suffice (and a full pass would double a long run).
    for mode in ("dynamic", "max_length"):
        emb.padding = mode
        emb.encode(texts if accel else texts[: 2 * args.batch_size])
    emb.padding = "dynamic"

    def best(fn):
        runs = [timed(fn) for _ in range(repeat)]
        return min(r[0] for r in runs), runs[-1][1]

    rows = []
    t, dyn = best(lambda: emb.encode(texts))
    rows.append(("dynamic padding, length-sorted (cold, no cache)", t, len(texts) / t, "1.00x"))
    emb.padding = "max_length"
    t_max, fixed = best(lambda: emb.encode(texts))
    emb.padding = "dynamic"
    rows.append((f"pad every batch to max_length={emb.max_length}", t_max, len(texts) / t_max,
                 f"{t / t_max:.2f}x"))
    extra["max |dynamic - max_length|"] = float(np.abs(dyn - fixed).max())

    dirs: list[str] = []

    def cold():
        dirs.append(tempfile.mkdtemp(prefix="balpm-bench-"))
        return EmbeddingCache(dirs[-1]).embed(emb, texts)

    try:
        t_cold, (v1, _) = best(cold)
        rows.append(("through cache, cold (encode + write chunks)", t_cold, len(texts) / t_cold,
                     f"{t / t_cold:.2f}x"))
        cache = EmbeddingCache(dirs[-1])
        t_hot, (v2, s2) = best(lambda: cache.embed(emb, texts))
        assert s2["computed"] == 0 and np.array_equal(v1, v2)
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    rows.append(("through cache, all cached", t_hot, len(texts) / t_hot, f"{t / t_hot:.0f}x"))
    return rows, info, extra


def table(rows) -> str:
    lines = ["| mode | seconds | texts/s | speed vs dynamic |", "|---|---:|---:|---:|"]
    for name, secs, rate, ratio in rows:
        lines.append(f"| {name} | {secs:.2f} | {rate:,.1f} | {ratio} |")
    return "\n".join(lines)


def block(rows, info, extra, command: str) -> tuple[str, str]:
    label = f"### {info['device']} ({extra['model'].split(',')[0].replace('Embedder(model=', 'model ')})"
    tok = extra["tokens"]
    body = "\n".join([
        label,
        "",
        f"Command: `{command}`  ",
        f"Machine: `nproc`={info['nproc']}, CPU {info['cpu']}, device {info['device']}, torch {info['torch']} "
        f"({info['torch threads']} threads), transformers {info['transformers']}, measured "
        f"{time.strftime('%Y-%m-%d')}  ",
        f"{extra['model']}; {extra['texts']} texts, tokens per text after truncation: mean {tok.mean():.0f}, "
        f"median {np.median(tok):.0f}, {100 * (tok >= tok.max()).mean():.0f}% at the cap  ",
        f"Largest difference between dynamic and max-length vectors: {extra['max |dynamic - max_length|']:.1e}; "
        f"best of {extra['repeat']} timed run(s) per mode after warm-up",
        "",
        table(rows),
        "",
    ])
    return label, body


def write_readme(path: Path, label: str, body: str) -> None:
    """Replace (or add) this device's block inside the Embedding section, leaving other sections alone."""
    text = path.read_text() if path.exists() else "# balpm benchmarks\n"
    start = text.find(SECTION + "\n")
    if start < 0:
        text = text.rstrip("\n") + "\n\n" + SECTION + "\n\n" + INTRO + "\n"
        start = text.find(SECTION + "\n")
    m = re.compile(r"^## ", re.M).search(text, start + len(SECTION))
    end = m.start() if m else len(text)
    section = text[start:end]
    blocks = re.split(r"(?m)^(?=### )", section)
    head, blocks = blocks[0], [b for b in blocks[1:] if b.splitlines()[0] != label]
    blocks.append(body + "\n")
    new = head.rstrip("\n") + "\n\n" + "".join(b.rstrip("\n") + "\n\n" for b in blocks)
    path.write_text(text[:start] + new + text[end:])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1000, help="texts to embed")
    p.add_argument("--device", default=None, help="cuda | mps | cpu (default: best available)")
    p.add_argument("--model", default="default")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--repeat", type=int, default=0, help="timed runs per mode, best kept (default: 3 on GPU, 1 on CPU)")
    p.add_argument("--readme", type=Path, default=README, help="README to update")
    p.add_argument("--no-write", action="store_true", help="print only")
    args = p.parse_args(argv)
    command = "python " + " ".join(shlex.quote(a) for a in ["benchmarks/embed.py", *(argv or sys.argv[1:])])
    rows, info, extra = run(args)
    label, body = block(rows, info, extra, command)
    print(body)
    if not args.no_write:
        write_readme(args.readme, label, body)
        print(f"updated {args.readme}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
