"""Helpers shared by the data-layer tests (files written from real rows or by hand)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from balpm.data import PoolFormatError, load_pool


HH_FILE = "hh-rlhf/harmless-base-test.jsonl.gz"  # the full file in the shared data folder
HH_SAMPLE = "hh-rlhf/harmless-base-sample.jsonl.gz"  # its embedded sample


def head_gzip(src: Path, dst: Path, n: int, extra: list[str] | None = None) -> Path:
    """Write the first ``n`` lines of a real gzip JSONL file (plus extra lines) to a temporary gzip file."""
    with gzip.open(src, "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(n)]
    lines += [x if x.endswith("\n") else x + "\n" for x in extra or []]
    with gzip.open(dst, "wt", encoding="utf-8") as f:
        f.writelines(lines)
    return dst


def write_lines(path: Path, lines: list[str | dict]) -> Path:
    path.write_text("".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines), encoding="utf-8")
    return path


TRL = [{"prompt": f"question {i}?", "chosen": f"good {i}", "rejected": f"bad {i}"} for i in range(200)]


GOOD = {"prompt": "p", "completion_a": "a", "completion_b": "b", "label": 1}


HEADER = "prompt,completion_a,completion_b,label"


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def assert_located(f: Path, line: int | None, fld: str | None, msg: str) -> PoolFormatError:
    with pytest.raises(PoolFormatError) as e:
        load_pool(f)
    assert (e.value.path, e.value.line, e.value.field) == (str(f), line, fld), str(e.value)
    assert msg in str(e.value)
    return e.value


QA_RECORD = {
    "question": "Who?", "passages": [["Title", "text"]], "gold": "g",
    **{f"prediction {i}": f"answer {i}" for i in range(1, 5)}, "preference": [1, 2, 1, 2, 1, 2],
}
