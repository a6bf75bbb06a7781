"""Redraw the embedded sample from the full shared data folder.

    python -m balpm.datasets.make_sample                      # reads $BALPM_DATA_DIR (or ../shared/data)
    python -m balpm.datasets.make_sample --data-dir DIR --check   # exit 1 if the committed files differ

The draw is seeded and takes whole prompt groups, so a prompt's pairs are either all in the sample or all out,
and the same seed and source files always give byte-identical sample files:

- HH-RLHF ``harmless-base`` (test split): the published file is read with :func:`balpm.data.load_pool`, whole
  prompt groups are drawn with :meth:`balpm.data.PreferencePool.sample_groups` (seed 0, 600 pairs), and the
  published lines of the drawn pairs are written unchanged, in file order, gzip-compressed (``mtime`` 0). Lines the
  loader drops (identical completions, duplicates, ...) are not drawn, so the sample holds exactly its usable pairs.
- QA-Feedback ``dev_feedback.json``: 100 questions (a question is a prompt group: its six verdicts stay together)
  drawn with ``numpy.random.default_rng(0).permutation``, written in file order as the publisher formats the file
  (``json.dumps(indent=2)``, ASCII escapes), gzip-compressed.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import sys
from pathlib import Path

import numpy as np

from balpm.datasets import SAMPLE_DIR

HH_SPLIT = "harmless-base"
HH_SOURCE = f"hh-rlhf/{HH_SPLIT}-test.jsonl.gz"
HH_FILE = f"hh-rlhf/{HH_SPLIT}-sample.jsonl.gz"  # named apart from the full file it is drawn from
QA_SOURCE = "qa-feedback/dev_feedback.json"
QA_FILE = "qa-feedback/dev_feedback-sample.json.gz"
HH_PAIRS = 600
QA_QUESTIONS = 100
SEED = 0


def _gzip(data: bytes) -> bytes:
    """Deterministic gzip bytes (no file name, mtime 0): a redraw gives a byte-identical file."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(data)
    return buf.getvalue()


def hh_sample(source: Path, pairs: int = HH_PAIRS, seed: int = SEED) -> bytes:
    """The gzip bytes of the HH-RLHF sample: the published lines of ``pairs`` usable pairs in whole prompt groups."""
    from balpm.data import hh_pair_id, load_pool, split_hh_transcript

    drawn = set(load_pool(source).sample_groups(pairs, seed).ids.tolist())
    keep: list[bytes] = []
    seen: set[str] = set()
    with gzip.open(source, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            parts = split_hh_transcript(rec["chosen"], rec["rejected"])
            if isinstance(parts, str):
                continue
            pid = hh_pair_id(*parts)
            if pid in drawn and pid not in seen:  # first occurrence: the one the loader kept
                seen.add(pid)
                keep.append(line if line.endswith(b"\n") else line + b"\n")
    if len(seen) != len(drawn):
        raise RuntimeError(f"{source}: found {len(seen)} of the {len(drawn)} drawn pairs")
    return _gzip(b"".join(keep))


def qa_sample(source: Path, questions: int = QA_QUESTIONS, seed: int = SEED) -> bytes:
    """The gzip bytes of the QA-Feedback sample: ``questions`` whole questions, publisher's JSON layout."""
    records = json.loads(source.read_bytes())
    take = np.sort(np.random.default_rng(seed).permutation(len(records))[:questions])
    return _gzip(json.dumps([records[i] for i in take], indent=2, ensure_ascii=True).encode("ascii"))


def main(argv: list[str] | None = None) -> int:
    from balpm.data import data_dir

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-dir", type=Path, default=None, help="the full data folder (default: balpm.data.data_dir())")
    p.add_argument("--out", type=Path, default=SAMPLE_DIR, help="where to write (default: the package's sample folder)")
    p.add_argument("--check", action="store_true", help="compare with the files in --out instead of writing")
    args = p.parse_args(argv)
    root = args.data_dir or data_dir()
    if root is None or not (root / HH_SOURCE).is_file() or not (root / QA_SOURCE).is_file():
        p.error(f"full data not found in {root} (give --data-dir or set BALPM_DATA_DIR)")
    files = {HH_FILE: hh_sample(root / HH_SOURCE), QA_FILE: qa_sample(root / QA_SOURCE)}
    status = 0
    for rel, data in files.items():
        target = args.out / rel
        if args.check:
            same = target.is_file() and target.read_bytes() == data
            print(f"{target}: {'identical' if same else 'DIFFERS'}")
            status |= not same
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            print(f"{target}: {len(data):,} bytes")
    return status


if __name__ == "__main__":
    sys.exit(main())
