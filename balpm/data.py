"""Preference pools: read pairwise preference data into one table, validate it, split it by prompt.

A pool is one table of pairs (:class:`PreferencePool`), whatever the source format:

``id`` (str, unique), ``prompt``, ``completion_a``, ``completion_b``, ``label`` (pandas ``Int8``: 1 = A
preferred, 0 = B preferred, ``<NA>`` = unlabelled), ``source``, ``group`` (identifies the prompt; splits never
cut a group), then metadata columns.

Sources (:func:`load_pool`)
---------------------------
- Files: JSON lines (``.jsonl``, ``.ndjson``, gzip or not), JSON (a list of objects, or one object per line),
  CSV/TSV, Parquet; a folder written by ``datasets.Dataset.save_to_disk``; a folder of such files
  (concatenated, ``source`` = file name). The record *schema* is detected from the fields of the first record:

  * ``prompt``/``chosen``/``rejected`` (trl convention): labelled; a seeded coin decides which completion is A.
  * ``prompt``/``completion_a``/``completion_b`` [/``label``]: kept in the given order; no ``label`` field (or an
    empty one) means unlabelled.
  * ``chosen``/``rejected`` without ``prompt``: Anthropic HH-RLHF transcripts. Both dialogues are cut after the
    last ``"\\n\\nAssistant:"``; the shared part is the prompt, the two final replies (stripped) are the
    completions. Coin as for trl.
  * ``info``/``summaries``/``choice``: OpenAI summarize-from-feedback comparisons. Order kept
    (A = ``summaries[0]``), ``label = 1 if choice == 0 else 0``, ``id = "{info.id}-{k}"`` (k-th comparison of
    that post in the file), ``group = info.id``; ``worker``, ``policy_a``/``policy_b``, ``confidence``,
    ``split``, ``batch`` kept as metadata.
  * ``question``/``prediction 1..4``/``preference``: AllenAI QA-Feedback. Six pairs per question in the order
    (1,2),(1,3),(1,4),(2,3),(2,4),(3,4); ``preference`` 1 = first better, 2 = second, 0 = tie (dropped, counted
    as ``"tie"``). Which prediction is shown as A is the seeded coin (as for trl), ``pair`` = ``"i,j"`` in the
    shown order (A = prediction i), label 1 when prediction i was preferred. The prompt is the question alone
    (passages would push the answers out of an embedding model's window); ``passages`` (JSON text), ``gold``
    and ``pair`` are metadata; ``group`` = the question.

  Optional fields ``id``, ``group`` and ``source`` in the generic schemas override the defaults; other fields
  become metadata columns.
- Built-in names (:data:`BUILTIN_DATASETS`): ``hh-rlhf`` (the four splits, ``source`` says which),
  ``hh-rlhf:<split>`` and ``qa-feedback`` read the full files in :func:`data_dir`. When the folder lacks them,
  ``hh-rlhf:harmless-base`` and ``qa-feedback`` read the embedded sample shipped in the package
  (:func:`sample_dir`, ``balpm/datasets/``), so a fresh clone runs on real pairs; ``sample:<name>`` always reads
  the sample. ``pool.report.origin`` (and the summary's first line) says which was read.
- ``hf:NAME[:split]``: ``datasets.load_dataset`` (needs the network), same schemas.

Ids
---
The source's id where it has one (``id`` field, summarize ``info.id``), otherwise the first 16 hex digits of the
sha1 of prompt, first and second completion *in source order* (chosen before rejected), so an id never depends
on the seed. The coin of pair ``id`` under seed ``s`` is a hash of ``(s, id)``: the same pair is shown the same
way round whichever subset or split of a dataset is loaded.

Errors and drops (one rule for every source)
--------------------------------------------
The rule: **a record is dropped, not the file, exactly when the format's own published files hold such records
and they carry no usable comparison**: the text was *derived* by the reader (an HH transcript split) or
*generated* by a policy (a summarize summary, a QA-Feedback prediction) and came out empty, identical or
unsplittable, or the annotators gave no preference. Everything else the loader cannot use is an error, because
only the file's author can fix it. ``load_pool(..., strict=True)`` (``--strict`` on the command line, the
*Strict* box on the Pool page) turns every drop into an error located at the record.

*Errors* (:class:`PoolFormatError`, naming file, line/row and field): unreadable or malformed JSON/CSV, bytes
that are not UTF-8 (UTF-16 included; a UTF-8 byte order mark is fine), JSON nested deeper than the parser goes,
a missing required field, a text field you wrote (prompt, trl/pairs completions, summarize post) that is not a
string or is empty/blank, a label outside {0, 1} (a QA ``preference`` outside {0, 1, 2}, a summarize ``choice``
outside {0, 1}), duplicate explicit ids, an unknown schema; for CSV/TSV also a header naming a column twice or
a column without a name, and a row with fewer values than the header or with values past it (an unquoted
comma). Empty values past the last named column are trailing separators (spreadsheet exports write one on every
row) and are ignored; so are rows whose values are all blank.

*Drops*, counted by reason in ``pool.report.dropped`` with the file and line of the first in
``pool.report.first_dropped`` (the summary prints both): ``"identical completions"``, ``"duplicate pair"`` (same
hash id and label as an earlier row), ``"conflicting duplicate"`` (same hash id, other label; the first is
kept), ``"tie"`` (QA-Feedback), ``"empty completion"`` (a blank HH final reply after the split, a blank
summarize summary text, a blank QA prediction, which drops the three pairs it is in), and the HH transcript
rules ``"no assistant turn"`` and ``"prompts differ"``.

Missing labels are the same in every container: JSON ``null`` or ``NaN``, an absent field, an empty CSV cell and
the texts ``NaN``/``nan``/``NA``/``null``/``None`` (:data:`MISSING_LABEL_TEXTS`) all mean *unlabelled*.

Line numbers in errors are 1-based: the physical line for JSON lines, the data row (header not counted) for
CSV/Parquet/``datasets`` tables, the record number for a JSON list (first record = 1).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import math
import os
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "BUILTIN_DATASETS",
    "HH_SPLITS",
    "LoadReport",
    "MISSING_LABEL_TEXTS",
    "PoolFormatError",
    "PreferencePool",
    "SAMPLE_OF",
    "SAMPLE_PREFIX",
    "data_dir",
    "format_summary",
    "full_data_present",
    "join_prompt_completion",
    "load_pool",
    "pair_id",
    "sample_dir",
    "split_hh_transcript",
    "summarize",
]

CORE_COLUMNS = ("id", "prompt", "completion_a", "completion_b", "label", "source", "group")
HH_SPLITS = ("harmless-base", "helpful-base", "helpful-online", "helpful-rejection-sampled")
HH_SEPARATOR = "\n\nAssistant:"
QA_PAIRS = ((1, 2), (1, 3), (1, 4), (2, 3), (2, 4), (3, 4))

#: Prefix of a built-in name that always reads the embedded sample (``sample:qa-feedback``).
SAMPLE_PREFIX = "sample:"
#: Built-in names that have an embedded sample (``balpm/datasets/``) -> pairs of the full split, for the summary.
SAMPLE_OF: dict[str, int] = {"hh-rlhf:harmless-base": 2303, "qa-feedback": 2616}

#: Built-in dataset names -> description. ``hh-rlhf:<split>`` works for every split in :data:`HH_SPLITS`.
#: A name with a sample reads the full split from :func:`data_dir` when it is there, else the sample.
BUILTIN_DATASETS: dict[str, str] = {
    "hh-rlhf": "Anthropic HH-RLHF test splits (all four, concatenated), data_dir()/hh-rlhf/*.jsonl.gz",
    **{f"hh-rlhf:{s}": f"Anthropic HH-RLHF {s} test split" + (" (else the embedded sample)" if f"hh-rlhf:{s}" in SAMPLE_OF else "")
       for s in HH_SPLITS},
    "qa-feedback": "AllenAI QA-Feedback dev set, data_dir()/qa-feedback/dev_feedback.json (else the embedded sample)",
    **{f"{SAMPLE_PREFIX}{k}": f"embedded sample of {k} (ships with balpm)" for k in SAMPLE_OF},
}


# --------------------------------------------------------------------------------------------------- errors


class PoolFormatError(ValueError):
    """A pool file the loader cannot accept, located so the user can fix it.

    ``str()`` reads ``"{path}:{line}: field '{field}': {message}"``; the line and field parts are left out
    when unknown (None).
    """

    def __init__(self, path: str | os.PathLike | None, line: int | None, field: str | None, message: str):
        self.path = str(path) if path is not None else "<pool>"
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        what = f" field '{self.field}':" if self.field is not None else ""
        return f"{where}:{what} {self.message}"

    def __reduce__(self):  # keep pickling (multiprocessing, Ray) working with the 4-argument constructor
        return (type(self), (self.path, self.line, self.field, self.message))


# --------------------------------------------------------------------------------------------------- pool


@dataclass
class LoadReport:
    """What a load kept and dropped, so a summary can say why pairs are missing.

    Attributes
    ----------
    path : str
        The file, folder or name that was read.
    kept : int
        Pairs in the pool.
    dropped : dict[str, int]
        Reason -> number of pairs dropped (see the module docstring for the reasons).
    first_dropped : dict[str, tuple[str, int | None]]
        Reason -> (file, line) of the first record dropped for it, so a user can look at one.
    format : str
        The detected record schema (``"hh-rlhf"``, ``"trl"``, ``"pairs"``, ``"summarize"``, ``"qa-feedback"``).
    origin : str
        For a built-in name, which data it was read from, so nobody mistakes the sample for the full split:
        ``"embedded sample, 600 of 2,303 pairs"`` or ``"full split, data folder /path"``; empty otherwise.
    """

    path: str
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    first_dropped: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    format: str = ""
    origin: str = ""

    @property
    def dropped_total(self) -> int:
        return int(sum(self.dropped.values()))


def join_prompt_completion(prompt: str, completion: str) -> str:
    """The text embedded for a prompt followed by one completion.

    Concatenated directly when the prompt ends or the completion starts with whitespace (the source already
    separates them), otherwise joined with one space, so ``"TL;DR:" + " text"`` and ``"Assistant:" + "text"``
    both read naturally.
    """
    if not prompt or not completion or prompt[-1].isspace() or completion[0].isspace():
        return prompt + completion
    return prompt + " " + completion


class PreferencePool:
    """A table of preference pairs plus where it came from.

    Parameters
    ----------
    pairs : pandas.DataFrame
        Columns ``id``, ``prompt``, ``completion_a``, ``completion_b``, ``label`` (``Int8``), ``source``,
        ``group``, then metadata. The index is reset; row ``i`` is pair ``i`` everywhere downstream.
    name : str
        Display name (the file name or built-in name).
    report : LoadReport, optional
        What the load kept and dropped.
    """

    def __init__(self, pairs: pd.DataFrame, name: str = "pool", report: LoadReport | None = None):
        missing = [c for c in CORE_COLUMNS if c not in pairs.columns]
        if missing:
            raise ValueError(f"pairs table lacks columns {missing}")
        rest = [c for c in pairs.columns if c not in CORE_COLUMNS]
        pairs = pairs[list(CORE_COLUMNS) + rest].reset_index(drop=True)
        if pairs["label"].dtype != "Int8":
            pairs["label"] = pairs["label"].astype("Int8")
        self.pairs = pairs
        self.name = name
        self.report = report if report is not None else LoadReport(path=name, kept=len(pairs))

    def __len__(self) -> int:
        return len(self.pairs)

    def __repr__(self) -> str:
        return f"PreferencePool(name={self.name!r}, pairs={len(self)}, labelled={int(self.pairs['label'].notna().sum())})"

    @property
    def ids(self) -> np.ndarray:
        """Pair ids, shape (N,), str."""
        return self.pairs["id"].to_numpy(dtype=str)

    @property
    def labels(self) -> np.ndarray:
        """Labels as float, shape (N,): 1.0 = A preferred, 0.0 = B preferred, NaN = unlabelled."""
        return self.pairs["label"].to_numpy(dtype="float64", na_value=np.nan)

    @property
    def groups(self) -> np.ndarray:
        """Group (prompt identity) of every pair, shape (N,), str."""
        return self.pairs["group"].to_numpy(dtype=str)

    def subset(self, indices_or_mask: Sequence[int] | np.ndarray) -> PreferencePool:
        """The pool restricted to some rows (integer positions or a boolean mask of length N), in that order."""
        idx = np.asarray(indices_or_mask)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(f"mask has shape {idx.shape}, pool has {len(self)} pairs")
            idx = np.flatnonzero(idx)
        return PreferencePool(self.pairs.iloc[idx.astype(np.intp)], name=self.name, report=self.report)

    def prompt_texts(self) -> list[str]:
        """The prompt of every pair (the text embedded for the prompt)."""
        return self.pairs["prompt"].tolist()

    def pair_texts(self, side: str) -> list[str]:
        """The prompt+completion text of side ``"a"`` or ``"b"`` of every pair (see :func:`join_prompt_completion`)."""
        if side not in ("a", "b"):
            raise ValueError(f"side must be 'a' or 'b', not {side!r}")
        comps = self.pairs[f"completion_{side}"].tolist()
        return [join_prompt_completion(p, c) for p, c in zip(self.pairs["prompt"].tolist(), comps)]

    def _shuffled_groups(self, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        codes, uniques = pd.factorize(self.pairs["group"], sort=True)  # sorted: independent of row order
        sizes = np.bincount(codes, minlength=len(uniques))
        order = np.random.default_rng(seed).permutation(len(uniques))
        return codes, order, sizes

    def split_by_group(self, test_fraction: float = 0.2, seed: int = 0) -> tuple[PreferencePool, PreferencePool]:
        """Split into (train, test) by whole groups, so a prompt never sits on both sides.

        Groups are shuffled with ``seed`` and moved to the test side until it holds about ``test_fraction`` of the
        pairs. When there are two groups or more both sides get at least one. Rows keep their pool order.
        """
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), not {test_fraction}")
        codes, order, sizes = self._shuffled_groups(seed)
        n_groups = len(sizes)
        cum = np.cumsum(sizes[order])
        n_test = int(np.searchsorted(cum, test_fraction * len(self), side="left")) + 1
        # take the prefix whose total is closest to the target
        if n_test > 1 and abs(cum[n_test - 2] - test_fraction * len(self)) <= abs(cum[n_test - 1] - test_fraction * len(self)):
            n_test -= 1
        if n_groups >= 2:
            n_test = min(max(n_test, 1), n_groups - 1)
        is_test_group = np.zeros(n_groups, dtype=bool)
        is_test_group[order[:n_test]] = True
        test_mask = is_test_group[codes]
        return self.subset(~test_mask), self.subset(test_mask)

    def sample_groups(self, max_pairs: int, seed: int = 0) -> PreferencePool:
        """A random subset of whole groups holding at most about ``max_pairs`` pairs (at least one group).

        For a quick run on a big pool without letting a prompt's pairs straddle the cut. Returns the pool itself
        when it already has ``max_pairs`` pairs or fewer.
        """
        if max_pairs < 1:
            raise ValueError(f"max_pairs must be >= 1, not {max_pairs}")
        if len(self) <= max_pairs:
            return self
        codes, order, sizes = self._shuffled_groups(seed)
        cum = np.cumsum(sizes[order])
        n_take = max(int(np.searchsorted(cum, max_pairs, side="right")), 1)
        keep = np.zeros(len(sizes), dtype=bool)
        keep[order[:n_take]] = True
        return self.subset(keep[codes])


# --------------------------------------------------------------------------------------------------- helpers


def pair_id(prompt: str, first: str, second: str) -> str:
    """A stable 16-hex-digit id of a pair from its texts in source order (chosen/first, rejected/second)."""
    h = hashlib.sha1()
    for t in (prompt, first, second):
        h.update(t.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()[:16]


def _coin(seed: int, pid: str) -> bool:
    """True when the rejected completion is shown as A for pair ``pid`` under ``seed``."""
    return hashlib.sha1(f"{seed}\x00{pid}".encode()).digest()[0] & 1 == 1


def _prompt_group(prompt: str) -> str:
    return hashlib.sha1(prompt.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _is_missing(v: Any) -> bool:
    if v is None or v is pd.NA:
        return True
    return isinstance(v, float) and math.isnan(v)


class _Loc:
    """Where a record sits in its file, to raise located errors."""

    __slots__ = ("path", "line")

    def __init__(self, path: str, line: int | None):
        self.path = path
        self.line = line

    def error(self, fld: str | None, message: str) -> PoolFormatError:
        return PoolFormatError(self.path, self.line, fld, message)


def _text(rec: dict, key: str, loc: _Loc, *, allow_empty: bool = False, label: str | None = None) -> str:
    """A required string field: present, a string, valid Unicode, not blank."""
    name = label or key
    if key not in rec:
        raise loc.error(name, "missing field")
    v = rec[key]
    if _is_missing(v):
        raise loc.error(name, "missing value")
    if not isinstance(v, str):
        raise loc.error(name, f"expected text, got {type(v).__name__}")
    if not v.isascii():
        try:
            v.encode("utf-8")
        except UnicodeEncodeError as e:
            raise loc.error(name, f"not valid UTF-8 text (bad byte or surrogate at character {e.start})") from None
    if not allow_empty and not v.strip():
        raise loc.error(name, "empty text")
    return v


#: Label texts that mean "no label" (lower-cased, stripped): what a CSV cell holds where JSON has null or NaN.
MISSING_LABEL_TEXTS = frozenset({"", "nan", "na", "<na>", "null", "none"})


def _label(v: Any, loc: _Loc, key: str = "label", allowed: Sequence[int] = (0, 1)) -> int | None:
    """A label field: missing (None, NaN, or a text in :data:`MISSING_LABEL_TEXTS`), else a value in ``allowed``.

    ``NaN`` in a JSON line and ``NaN`` in a CSV cell mean the same: no label.
    """
    if _is_missing(v) or (isinstance(v, str) and v.strip().lower() in MISSING_LABEL_TEXTS):
        return None
    x: Any = v
    if isinstance(v, str):
        try:
            x = float(v.strip())
        except ValueError:
            raise loc.error(key, f"expected one of {list(allowed)}, got {v!r}") from None
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) or float(x) not in allowed:
        raise loc.error(key, f"expected one of {list(allowed)}, got {v!r}")
    return int(x)


def _optional_str(v: Any) -> str | None:
    if _is_missing(v):
        return None
    return v if isinstance(v, str) else str(v)


# --------------------------------------------------------------------------------------------------- records


@dataclass
class _Row:
    id: str
    prompt: str
    a: str
    b: str
    label: int | None
    source: str
    group: str
    meta: dict[str, Any]
    loc: _Loc
    explicit_id: bool


class _Builder:
    """Collects rows, drops duplicates, counts drops, builds the table."""

    def __init__(self, strict: bool = False) -> None:
        self.rows: list[_Row] = []
        self.dropped: Counter[str] = Counter()
        self.first_dropped: dict[str, tuple[str, int | None]] = {}
        self.strict = strict
        self._seen: dict[str, _Row] = {}

    def drop(self, reason: str, loc: _Loc, fld: str | None = None, n: int = 1) -> None:
        """Count ``n`` pairs dropped for ``reason`` at ``loc``; in strict mode, refuse the file there instead."""
        if self.strict:
            raise loc.error(fld, f"{reason}: the record would be dropped, and strict mode turns every drop into an error")
        self.dropped[reason] += n
        self.first_dropped.setdefault(reason, (loc.path, loc.line))

    def add(self, row: _Row) -> None:
        if row.a == row.b:
            self.drop("identical completions", row.loc)
            return
        prev = self._seen.get(row.id)
        if prev is not None:
            if row.explicit_id or prev.explicit_id:
                first = f" (first at line {prev.loc.line})" if prev.loc.line is not None else ""
                raise row.loc.error("id", f"duplicate id {row.id!r}{first}")
            self.drop("duplicate pair" if prev.label == row.label else "conflicting duplicate", row.loc)
            return
        self._seen[row.id] = row
        self.rows.append(row)

    def frame(self) -> pd.DataFrame:
        rows = self.rows
        meta_keys: list[str] = []
        seen: set[str] = set()
        for r in rows:
            for k in r.meta:
                if k not in seen:
                    seen.add(k)
                    meta_keys.append(k)
        data: dict[str, Any] = {
            "id": [r.id for r in rows],
            "prompt": [r.prompt for r in rows],
            "completion_a": [r.a for r in rows],
            "completion_b": [r.b for r in rows],
            "label": pd.array([r.label for r in rows], dtype="Int8"),
            "source": [r.source for r in rows],
            "group": [r.group for r in rows],
        }
        for k in meta_keys:
            data[k] = [r.meta.get(k) for r in rows]
        cols = {k: (v if k == "label" else pd.Series(v, dtype=str if k in CORE_COLUMNS else None)) for k, v in data.items()}
        return pd.DataFrame(cols)


def _detect_schema(rec: dict, loc: _Loc) -> str:
    keys = set(rec)
    if {"info", "summaries", "choice"} <= keys:
        return "summarize"
    if "question" in keys and "preference" in keys and "prediction 1" in keys:
        return "qa-feedback"
    if {"chosen", "rejected"} <= keys:
        return "trl" if "prompt" in keys else "hh-rlhf"
    if {"prompt", "completion_a", "completion_b"} <= keys:
        return "pairs"
    if "prompt" in keys and ("chosen" in keys or "rejected" in keys):
        raise loc.error("rejected" if "chosen" in keys else "chosen", "missing field")
    if "prompt" in keys and ("completion_a" in keys or "completion_b" in keys):
        raise loc.error("completion_b" if "completion_a" in keys else "completion_a", "missing field")
    raise loc.error(
        None,
        f"unknown record layout (fields {sorted(keys)[:8]}); expected prompt/chosen/rejected, "
        "prompt/completion_a/completion_b[/label], chosen/rejected transcripts (HH-RLHF), "
        "info/summaries/choice (summarize-from-feedback) or question/prediction 1..4/preference (QA-Feedback)",
    )


_GENERIC_RESERVED = {"id", "prompt", "chosen", "rejected", "completion_a", "completion_b", "label", "source", "group"}


def _generic_extras(rec: dict, loc: _Loc, source: str) -> tuple[str | None, str, str | None, dict]:
    rid = rec.get("id")
    rid = None if _is_missing(rid) or (isinstance(rid, str) and not rid.strip()) else str(rid)
    if isinstance(rec.get("id"), float) and rid is not None and float(rec["id"]).is_integer():
        rid = str(int(rec["id"]))  # CSV/Parquet ids that pandas read as floats
    src = _optional_str(rec.get("source")) or source
    grp = _optional_str(rec.get("group"))
    meta = {k: v for k, v in rec.items() if k not in _GENERIC_RESERVED}
    return rid, src, grp, meta


def _add_chosen_rejected(
    b: _Builder, prompt: str, chosen: str, rejected: str, rid: str | None, src: str, grp: str | None,
    meta: dict, loc: _Loc, seed: int,
) -> None:
    pid = rid if rid is not None else pair_id(prompt, chosen, rejected)
    if _coin(seed, pid):
        a, c, lab = rejected, chosen, 0
    else:
        a, c, lab = chosen, rejected, 1
    b.add(_Row(pid, prompt, a, c, lab, src, grp if grp is not None else _prompt_group(prompt), meta, loc, rid is not None))


def _read_trl(b: _Builder, rec: dict, loc: _Loc, source: str, seed: int) -> None:
    prompt = _text(rec, "prompt", loc)
    chosen = _text(rec, "chosen", loc)
    rejected = _text(rec, "rejected", loc)
    rid, src, grp, meta = _generic_extras(rec, loc, source)
    _add_chosen_rejected(b, prompt, chosen, rejected, rid, src, grp, meta, loc, seed)


def _read_pairs(b: _Builder, rec: dict, loc: _Loc, source: str, seed: int) -> None:
    prompt = _text(rec, "prompt", loc)
    a = _text(rec, "completion_a", loc)
    c = _text(rec, "completion_b", loc)
    lab = _label(rec.get("label"), loc)
    rid, src, grp, meta = _generic_extras(rec, loc, source)
    pid = rid if rid is not None else pair_id(prompt, a, c)
    b.add(_Row(pid, prompt, a, c, lab, src, grp if grp is not None else _prompt_group(prompt), meta, loc, rid is not None))


def split_hh_transcript(chosen: str, rejected: str) -> tuple[str, str, str] | str:
    """Split two HH-RLHF dialogues into (prompt, chosen reply, rejected reply), or return the drop reason.

    The prompt runs up to and including the last ``"\\n\\nAssistant:"`` and must be the same in both; replies are
    stripped and must be non-empty and different.
    """
    pc, sep_c, rc = chosen.rpartition(HH_SEPARATOR)
    pr, sep_r, rr = rejected.rpartition(HH_SEPARATOR)
    if not sep_c or not sep_r:
        return "no assistant turn"
    if pc != pr:
        return "prompts differ"
    rc, rr = rc.strip(), rr.strip()
    if rc == rr:
        return "identical completions"
    if not rc or not rr:
        return "empty completion"
    return pc + HH_SEPARATOR, rc, rr


def _read_hh(b: _Builder, rec: dict, loc: _Loc, source: str, seed: int) -> None:
    chosen = _text(rec, "chosen", loc)
    rejected = _text(rec, "rejected", loc)
    parts = split_hh_transcript(chosen, rejected)
    if isinstance(parts, str):
        b.drop(parts, loc)
        return
    prompt, rc, rr = parts
    rid, src, grp, meta = _generic_extras(rec, loc, source)
    _add_chosen_rejected(b, prompt, rc, rr, rid, src, grp, meta, loc, seed)


def _read_summarize(b: _Builder, rec: dict, loc: _Loc, source: str, seed: int, counts: Counter) -> None:
    info = rec.get("info")
    if not isinstance(info, dict):
        raise loc.error("info", f"expected an object, got {type(info).__name__}")
    iloc = _Loc(loc.path, loc.line)
    info_id = info.get("id")
    if _is_missing(info_id) or (isinstance(info_id, str) and not info_id.strip()):
        raise loc.error("info.id", "missing field")
    info_id = str(info_id)
    if "post" in info and not _is_missing(info.get("post")):
        post = _text(info, "post", iloc, label="info.post")
        title = _text(info, "title", iloc, label="info.title")
        sub = _text(info, "subreddit", iloc, label="info.subreddit")
        prompt = f"SUBREDDIT: r/{sub}\n\nTITLE: {title}\n\nPOST: {post}\n\nTL;DR:"
        site = None
    elif "article" in info and not _is_missing(info.get("article")):
        article = _text(info, "article", iloc, label="info.article")
        prompt = f"Article:\n{article}\n\nTL;DR:"
        site = _optional_str(info.get("site"))
        sub = None
    else:
        raise loc.error("info.post", "missing field (a comparison needs info.post or info.article)")
    sums = rec.get("summaries")
    if not isinstance(sums, list) or len(sums) != 2:
        raise loc.error("summaries", "expected a list of two summaries")
    texts, policies, notes = [], [], []
    for i, s in enumerate(sums):
        if not isinstance(s, dict):
            raise loc.error(f"summaries[{i}]", f"expected an object, got {type(s).__name__}")
        texts.append(_text(s, "text", loc, label=f"summaries[{i}].text", allow_empty=True))
        policies.append(_optional_str(s.get("policy")))
        notes.append(_optional_str(s.get("note")))
    if "choice" not in rec:
        raise loc.error("choice", "missing field")
    choice = _label(rec["choice"], loc, key="choice")
    if choice is None:
        raise loc.error("choice", "missing value")
    extra = rec.get("extra")
    conf = extra.get("confidence") if isinstance(extra, dict) else None
    k = counts[info_id]
    counts[info_id] += 1  # a dropped comparison keeps its number, so ids never depend on what was dropped
    blank = [i for i, t in enumerate(texts) if not t.strip()]
    if blank:  # a policy produced nothing: the published files hold such comparisons
        b.drop("empty completion", loc, f"summaries[{blank[0]}].text")
        return
    meta = {
        "worker": _optional_str(rec.get("worker")),
        "policy_a": policies[0],
        "policy_b": policies[1],
        "note_a": notes[0],
        "note_b": notes[1],
        "confidence": None if _is_missing(conf) else conf,
        "batch": _optional_str(rec.get("batch")),
        "split": _optional_str(rec.get("split")),
        "subreddit": sub,
        "site": site,
    }
    b.add(_Row(f"{info_id}-{k}", prompt, texts[0], texts[1], 1 if choice == 0 else 0, source, info_id, meta, loc, True))


def _literal(v: Any, loc: _Loc, key: str) -> Any:
    """QA-Feedback fields may hold a JSON or Python literal as a string.

    Raises ValueError for text that is no literal, and a located error for one too deeply nested (or too long a
    chain of operators) for the parsers, which would otherwise end in a RecursionError or MemoryError.
    """
    if not isinstance(v, str):
        return v
    s = v.strip()
    try:
        try:
            return json.loads(s)
        except ValueError:
            pass
        import ast

        try:
            return ast.literal_eval(s)
        except SyntaxError as e:
            if "too many nested" in str(e):
                raise RecursionError(str(e)) from None
            raise ValueError(str(e)) from None
        except TypeError as e:  # {[1]: 2}: an unhashable key
            raise ValueError(str(e)) from None
    except (RecursionError, MemoryError):
        raise loc.error(key, f"too deeply nested to parse ({len(s):,} characters)") from None


def _read_qa(b: _Builder, rec: dict, loc: _Loc, source: str, seed: int) -> None:
    question = _text(rec, "question", loc)
    answers = [_text(rec, f"prediction {i}", loc, allow_empty=True) for i in range(1, 5)]
    try:
        pref = _literal(rec.get("preference"), loc, "preference")
    except PoolFormatError:
        raise
    except ValueError:
        raise loc.error("preference", "not a list of six verdicts") from None
    if not isinstance(pref, (list, tuple)) or len(pref) != 6:
        raise loc.error("preference", f"expected a list of six verdicts (0, 1, 2), got {rec.get('preference')!r}")
    verdicts = [_label(v, loc, key="preference", allowed=(0, 1, 2)) for v in pref]
    passages = rec.get("passages")
    try:
        passages = _literal(passages, loc, "passages")
    except PoolFormatError:
        raise
    except ValueError:
        pass  # metadata: kept as the text it is
    try:
        passages_json = passages if isinstance(passages, str) else json.dumps(passages, ensure_ascii=False)
    except (TypeError, ValueError):  # a Python literal JSON cannot hold (a set, bytes): keep the source text
        passages_json = str(rec.get("passages"))
    gold = _optional_str(rec.get("gold"))
    for (i, j), v in zip(QA_PAIRS, verdicts):
        if v is None:
            raise loc.error("preference", "missing verdict")
        if v == 0:
            b.drop("tie", loc, "preference")
            continue
        a, c = answers[i - 1], answers[j - 1]
        if not a.strip() or not c.strip():  # model output, like a summary: the pair is dropped, not the file
            b.drop("empty completion", loc, f"prediction {i if not a.strip() else j}")
            continue
        pid = pair_id(question, a, c)  # source order, so the id never depends on the seed
        first_better = v == 1
        # The annotators preferred the lower-numbered prediction 61% of the time; a Bradley-Terry model has no
        # position term, so showing the source order would hand it an unlearnable 61/39 prior. Same coin as trl.
        if _coin(seed, pid):
            i, j, a, c, first_better = j, i, c, a, not first_better
        meta = {"pair": f"{i},{j}", "passages": passages_json, "gold": gold}
        b.add(_Row(pid, question, a, c, 1 if first_better else 0, source, question, meta, loc, False))


# --------------------------------------------------------------------------------------------------- containers


_JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]')


def _deepest(text: str) -> tuple[int, list]:
    """(depth, path) of the first deepest point of a JSON text, for a located 'nested too deeply' error.

    ``path`` holds the keys and list indices (at most three) leading to that point, outermost first. Run only
    after the JSON parser gave up (RecursionError), so a slow scan costs nothing on good files.
    """
    stack: list[list] = []  # [is_object, current key or index, expecting a key]
    best, path = 0, []
    for m in _JSON_TOKEN.finditer(text):
        t = m.group()
        c = t[0]
        if c in "[{":
            stack.append([c == "{", None if c == "{" else 0, c == "{"])
            if len(stack) > best:
                best = len(stack)
                path = [f[1] for f in stack[: min(3, len(stack) - 1)]]
        elif c in "]}":
            if stack:
                stack.pop()
        elif c == ",":
            if stack:
                top = stack[-1]
                if top[0]:
                    top[2] = True
                else:
                    top[1] += 1
        elif stack and stack[-1][0] and stack[-1][2]:  # an object key
            try:
                stack[-1][1] = json.loads(t)
            except ValueError:
                stack[-1][1] = t[1:-1]
            stack[-1][2] = False
    return best, path


def _too_deep(loc: _Loc, depth: int, path: list, above: int) -> PoolFormatError:
    """The located error for JSON nested deeper than the parser goes; ``above`` = levels above a record's fields."""
    fld = path[above - 1] if len(path) >= above and isinstance(path[above - 1], str) else None
    return loc.error(fld, f"nested {depth - above} levels deep: too deeply nested for the JSON reader")


def _deepest_field(rec: dict) -> str | None:
    """The field of an already parsed record whose value nests deepest (iterative: safe at any depth)."""
    best, name = -1, None
    for k, v in rec.items():
        depth, todo = 0, [(v, 1)]
        while todo:
            x, d = todo.pop()
            depth = max(depth, d)
            if isinstance(x, dict):
                todo.extend((y, d + 1) for y in x.values())
            elif isinstance(x, (list, tuple)):
                todo.extend((y, d + 1) for y in x)
        if depth > best:
            best, name = depth, str(k)
    return name


def _decode_line(raw: bytes, loc: _Loc) -> dict:
    """Parse one JSON line; locate non-UTF-8 bytes in the field that holds them."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        text = raw.decode("utf-8", "surrogateescape")
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            raise loc.error(None, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None
        fld = _find_bad_field(obj)
        raise loc.error(fld, f"not valid UTF-8 (byte 0x{raw[e.start]:02x} at column {e.start + 1})") from None
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise loc.error(None, f"malformed JSON: {e}") from None
    except RecursionError:
        raise _too_deep(loc, *_deepest(text), above=1) from None
    if not isinstance(obj, dict):
        raise loc.error(None, f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _find_bad_field(obj: Any, prefix: str = "") -> str | None:
    """The dotted name of the first string (or key) holding a lone surrogate (None when too deep to tell)."""
    try:
        return _find_bad_field_in(obj, prefix)
    except RecursionError:
        return None


def _find_bad_field_in(obj: Any, prefix: str) -> str | None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            name = f"{prefix}.{k}" if prefix else str(k)
            if isinstance(k, str) and not _utf8_ok(k):
                return name
            found = _find_bad_field_in(v, name)
            if found is not None:
                return found
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            found = _find_bad_field_in(v, f"{prefix}[{i}]")
            if found is not None:
                return found
    elif isinstance(obj, str) and not _utf8_ok(obj):
        return prefix or None
    return None


def _utf8_ok(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise PoolFormatError(path, None, None, f"cannot read: {e.strerror or e}") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as e:
            raise PoolFormatError(path, None, None, f"broken gzip file: {e}") from None
    if data[:4] in (b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff"):
        raise PoolFormatError(path, None, None, "UTF-32 text: save the file as UTF-8")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or (len(data) > 1 and b"\x00" in data[:2]):
        raise PoolFormatError(path, None, None, "UTF-16 text (or another encoding with NUL bytes): save it as UTF-8")
    if data[:3] == b"\xef\xbb\xbf":  # a UTF-8 byte order mark (Excel, Notepad): not part of the data
        data = data[3:]
    return data


def _iter_jsonl(path: Path, data: bytes) -> Iterator[tuple[_Loc, dict]]:
    for n, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        loc = _Loc(str(path), n)
        yield loc, _decode_line(raw, loc)


def _iter_json_list(path: Path, data: bytes) -> Iterator[tuple[_Loc, dict]]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        text = data.decode("utf-8", "surrogateescape")
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            raise PoolFormatError(path, line, None, f"not valid UTF-8 (byte 0x{data[e.start]:02x})") from None
        if isinstance(obj, list):
            for i, rec in enumerate(obj, start=1):
                fld = _find_bad_field(rec)
                if fld is not None:
                    raise PoolFormatError(path, i, fld, f"not valid UTF-8 (byte 0x{data[e.start]:02x})")
        raise PoolFormatError(path, line, None, f"not valid UTF-8 (byte 0x{data[e.start]:02x})")
    try:
        obj = json.loads(text)
    except ValueError as e:
        raise PoolFormatError(path, getattr(e, "lineno", None), None, f"malformed JSON: {e}") from None
    except RecursionError:
        depth, where = _deepest(text)
        wrapped = bool(where) and isinstance(where[0], str)  # {"data": [...]}
        i = where[1] if wrapped and len(where) > 1 else (where[0] if where and not wrapped else None)
        loc = _Loc(str(path), i + 1 if isinstance(i, int) else None)
        raise _too_deep(loc, depth, where, above=3 if wrapped else 2) from None
    if isinstance(obj, dict):
        for key in ("data", "pairs", "rows", "records"):
            if isinstance(obj.get(key), list):
                obj = obj[key]
                break
        else:
            obj = [obj]
    if not isinstance(obj, list):
        raise PoolFormatError(path, None, None, f"expected a JSON list of objects, got {type(obj).__name__}")
    for i, rec in enumerate(obj, start=1):
        loc = _Loc(str(path), i)
        if not isinstance(rec, dict):
            raise loc.error(None, f"expected a JSON object, got {type(rec).__name__}")
        yield loc, rec


def _iter_frame(path: Path | str, df: pd.DataFrame) -> Iterator[tuple[_Loc, dict]]:
    for i, rec in enumerate(df.to_dict("records"), start=1):
        yield _Loc(str(path), i), rec


def _csv_rows(path: Path, text: str, sep: str) -> Iterator[tuple[int, list[str]]]:
    """(data row number, values) of every non-blank CSV record after the header; csv errors located."""
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))  # a long completion is not an error
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, strict=True)
    n = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise PoolFormatError(
                path, n if n else None, None,
                f"malformed CSV (record ending at line {reader.line_num} of the file): {e}; a double quote inside a "
                "quoted text must be doubled",
            ) from None
        if not values:  # a blank line
            continue
        yield n, values
        n += 1


def _unquoted_comma_field(values: list[str], names: list[str]) -> str | None:
    """The column whose text most likely held the unquoted separators of a row with too many values, or None.

    In prose a comma is followed by a space, so a value that starts with a space is probably the tail of the
    value before it. Only when exactly the surplus number of values does so, all in one run, is a field named.
    """
    extra = len(values) - len(names)
    tails = [i for i in range(1, len(values)) if values[i][:1].isspace()]
    if len(tails) != extra or tails != list(range(tails[0], tails[0] + extra)):
        return None
    return names[tails[0] - 1]


def _iter_csv(path: Path, data: bytes, sep: str) -> Iterator[tuple[_Loc, dict]]:
    """Records of a CSV/TSV file, with its shape checked row by row.

    The header names the columns: a column without a name, or a name given twice, is an error (never a silent
    ``Unnamed: 4`` or ``label.1``). Every row must hold one value per named column; empty values past the last
    named column are trailing separators (spreadsheet exports end every row in one) and are ignored, anything
    else there is an error naming the row, never a silent shift. Rows whose values are all blank are skipped.
    Values are kept as text (an empty label is unlabelled). Line numbers are data rows (header not counted).
    """
    try:
        text = data.decode("utf-8")
        bad: UnicodeDecodeError | None = None
    except UnicodeDecodeError as e:
        bad = e
        text = data.decode("utf-8", "surrogateescape")  # bad bytes become lone surrogates, found per cell below
    if text.startswith("\ufeff"):  # a UTF-8 byte order mark (Excel writes one)
        text = text[1:]
    rows = _csv_rows(path, text, sep)
    first = next(rows, None)
    if first is None:
        raise PoolFormatError(path, None, None, "empty CSV file (no header)")
    header = [h.strip() for h in first[1]]
    while header and not header[-1]:
        header.pop()
    where: dict[str, int] = {}
    for k, name in enumerate(header, start=1):
        if not name:
            raise PoolFormatError(path, None, None, f"header: column {k} has no name")
        if name in where:
            raise PoolFormatError(path, None, name, f"header names column {name!r} twice (columns {where[name]} and {k})")
        where[name] = k
    if not header:
        raise PoolFormatError(path, None, None, "header names no columns")
    if len(header) == 1:  # another separator: "prompt;chosen;rejected" is one column to a comma reader
        other = next((c for c in (";", "|", ",", "\t") if c != sep and c in header[0]), None)
        if other is not None:
            raise PoolFormatError(
                path, None, None,
                f"the header is one column {header[0][:60]!r}: separated by {other!r}? balpm reads ',' in .csv and "
                "tab in .tsv files",
            )
    if bad is not None and not all(_utf8_ok(h) for h in header):
        raise PoolFormatError(path, None, None, f"header: not valid UTF-8 (byte 0x{data[bad.start]:02x})")
    width = len(header)
    what = "comma" if sep == "," else "tab"
    for i, values in rows:
        loc = _Loc(str(path), i)
        if bad is not None:
            for k, v in enumerate(values):
                if not _utf8_ok(v):
                    fld = header[k] if k < width else None
                    raise loc.error(fld, f"not valid UTF-8 (byte 0x{data[bad.start]:02x})")
        if all(not v.strip() for v in values):
            continue
        if len(values) < width:
            raise loc.error(
                header[len(values)],
                f"missing: the row has {len(values)} values, the header names {width} columns ({', '.join(header)})",
            )
        if len(values) > width and any(v.strip() for v in values[width:]):
            guess = _unquoted_comma_field(values, header)
            hint = (f"an unquoted {what} in this text? " if guess else f"an unquoted {what} in a text? ") + \
                'put texts that hold one in double quotes'
            if guess is None:
                surplus = next(k for k in range(width, len(values)) if values[k].strip())
                raise loc.error(
                    None,
                    f"the row has {len(values)} values, the header names {width} columns ({', '.join(header)}); "
                    f"column {surplus + 1} has no name but holds {values[surplus][:40]!r}: {hint}",
                )
            raise loc.error(guess, f"the row has {len(values)} values, the header names {width}: {hint}")
        yield loc, dict(zip(header, values))


def _records_from_file(path: Path, fmt: str | None) -> Iterator[tuple[_Loc, dict]]:
    name = path.name.lower()
    kind = fmt
    if kind is None:
        stem = name[:-3] if name.endswith(".gz") else name
        if stem.endswith((".jsonl", ".ndjson", ".jsonlines")):
            kind = "jsonl"
        elif stem.endswith(".json"):
            kind = "json"
        elif stem.endswith(".csv"):
            kind = "csv"
        elif stem.endswith(".tsv"):
            kind = "tsv"
        elif stem.endswith((".parquet", ".pq")):
            kind = "parquet"
        else:
            raise PoolFormatError(path, None, None, "unknown file type (expected .jsonl, .json, .csv, .tsv, .parquet)")
    if kind == "parquet":
        try:
            df = pd.read_parquet(path)
        except Exception as e:  # pyarrow raises several types for a broken file
            raise PoolFormatError(path, None, None, f"cannot read Parquet: {e}") from None
        return _iter_frame(path, df)
    data = _read_bytes(path)
    if kind in ("csv", "tsv"):
        return _iter_csv(path, data, "," if kind == "csv" else "\t")
    if kind == "json":
        head = data.lstrip()[:1]
        kind = "jsonl" if head == b"{" and _looks_like_jsonl(data) else "json_list"
    if kind == "jsonl":
        return _iter_jsonl(path, data)
    if kind == "json_list":
        return _iter_json_list(path, data)
    raise PoolFormatError(path, None, None, f"unknown format {fmt!r} (jsonl, json, csv, tsv, parquet)")


def _looks_like_jsonl(data: bytes) -> bool:
    """A ``.json`` file with one object per line (summarize-from-feedback batches are named ``*.json``)."""
    first = data.lstrip().split(b"\n", 1)[0]
    try:
        return isinstance(json.loads(first), dict)
    except ValueError:
        return False


def _is_hf_disk(path: Path) -> bool:
    return path.is_dir() and (
        (path / "dataset_dict.json").is_file() or ((path / "state.json").is_file() and (path / "dataset_info.json").is_file())
    )


def _hf_records(ds: Any, where: str, source: str) -> list[tuple[str, Iterator[tuple[_Loc, dict]]]]:
    """(source, records) per split of a ``datasets`` Dataset or DatasetDict; errors are located at ``where``."""
    if isinstance(getattr(ds, "column_names", None), dict):  # a DatasetDict
        return [(f"{source}:{sp}", _iter_frame(f"{where}:{sp}", ds[sp].to_pandas())) for sp in ds.keys()]
    return [(source, _iter_frame(where, ds.to_pandas()))]


# --------------------------------------------------------------------------------------------------- loading

_READERS: dict[str, Callable[..., None]] = {
    "trl": _read_trl,
    "pairs": _read_pairs,
    "hh-rlhf": _read_hh,
    "qa-feedback": _read_qa,
}


def _consume(b: _Builder, records: Iterable[tuple[_Loc, dict]], source: str, seed: int, schemas: set[str]) -> None:
    schema = None
    counts: Counter[str] = Counter()
    for loc, rec in records:
        if schema is None:
            schema = _detect_schema(rec, loc)
            schemas.add(schema)
        try:
            if schema == "summarize":
                _read_summarize(b, rec, loc, source, seed, counts)
            else:
                _READERS[schema](b, rec, loc, source, seed)
        except RecursionError:  # a value the parser took but Python cannot walk (json.dumps of deep metadata)
            raise loc.error(_deepest_field(rec), "too deeply nested to read") from None


def data_dir() -> Path | None:
    """The folder holding the full built-in datasets: ``$BALPM_DATA_DIR``, else ``shared/data`` beside the repository.

    Returns None when neither is set or exists, or when ``BALPM_DATA_DIR=none``: the explicit way to hide a data
    folder and use the embedded sample (a fresh clone, the tests' sample runs).
    """
    env = os.environ.get("BALPM_DATA_DIR", "").strip()
    if env.lower() == "none":
        return None
    if env:
        return Path(env).expanduser()
    import balpm

    beside = Path(balpm.__file__).resolve().parents[2] / "shared" / "data"
    return beside if beside.is_dir() else None


def sample_dir() -> Path:
    """The embedded sample's folder (package data, laid out like :func:`data_dir`; see ``balpm/datasets/README.md``)."""
    from balpm.datasets import SAMPLE_DIR

    return SAMPLE_DIR


def _split_files(name: str, root: Path) -> list[tuple[str, Path]]:
    """(source, file) pairs of built-in ``name`` in a folder laid out like the data folder; [] when any is missing."""
    base, _, split = name.partition(":")
    if base == "qa-feedback":
        found = [f for f in (root / "qa-feedback" / n for n in ("dev_feedback.json", "dev_feedback.json.gz")) if f.is_file()]
        return [("qa-feedback", found[0])] if found else []
    out = []
    for s in (split,) if split else HH_SPLITS:
        files = sorted((root / "hh-rlhf").glob(f"{s}-*.jsonl.gz")) + sorted((root / "hh-rlhf" / s).glob("*.jsonl.gz"))
        if not files:
            return []
        out.extend((f"hh-rlhf:{s}", f) for f in files)
    return out


def full_data_present(name: str) -> bool:
    """Whether :func:`data_dir` holds the full files of built-in ``name`` (else it reads the sample, or fails)."""
    root = data_dir()
    return root is not None and root.is_dir() and bool(_split_files(name, root))


def _builtin_files(name: str) -> tuple[list[tuple[str, Path]], Path | None]:
    """(source, file) pairs for a built-in name and the data folder they came from (None: the embedded sample).

    The full split from :func:`data_dir` when it is there, else the embedded sample when the name has one; a
    ``sample:`` name always reads the sample. Anything else is a PoolFormatError that says what to set.
    """
    samples = ", ".join(SAMPLE_PREFIX + k for k in SAMPLE_OF)
    base = name[len(SAMPLE_PREFIX):] if name.startswith(SAMPLE_PREFIX) else name
    if base.startswith("hh-rlhf:") and base.partition(":")[2] not in HH_SPLITS:
        raise PoolFormatError(name, None, None, f"unknown hh-rlhf split {base.partition(':')[2]!r}; known: {', '.join(HH_SPLITS)}")
    if name.startswith(SAMPLE_PREFIX):
        if base not in SAMPLE_OF:
            raise PoolFormatError(name, None, None, f"no embedded sample of {base!r}; samples: {samples}")
        return _split_files(base, sample_dir()), None
    root = data_dir()
    if root is not None and not root.is_dir():
        raise PoolFormatError(name, None, None, f"data folder {root} does not exist: set BALPM_DATA_DIR to the data "
                              "folder, or BALPM_DATA_DIR=none to use the embedded sample")
    files = _split_files(base, root) if root is not None else []
    if files:
        return files, root
    if base in SAMPLE_OF:
        return _split_files(base, sample_dir()), None
    where = f"not in {root}" if root is not None else "no data folder found"
    raise PoolFormatError(name, None, None, f"no embedded sample of this dataset and its full files are missing "
                          f"({where}): set BALPM_DATA_DIR to the folder holding hh-rlhf/ and qa-feedback/; "
                          f"the embedded samples work anywhere: {samples}")


def _is_builtin(source: str) -> bool:
    name = source[len(SAMPLE_PREFIX):] if source.startswith(SAMPLE_PREFIX) else source
    return name in BUILTIN_DATASETS or name.startswith("hh-rlhf:")


def load_pool(
    source: str | os.PathLike, *, seed: int = 0, fmt: str | None = None, strict: bool = False
) -> PreferencePool:
    """Read a preference pool from a file, folder, built-in name or ``hf:NAME[:split]``.

    Parameters
    ----------
    source : str or path-like
        A file (JSONL/JSON/CSV/TSV/Parquet, gzip allowed), a ``save_to_disk`` folder, a folder of such files, a
        built-in name (:data:`BUILTIN_DATASETS`) or ``hf:NAME[:split]``. An existing path wins over a name.
    seed : int
        Seed of the coin that decides which completion of a chosen/rejected pair is shown as A.
    fmt : {None, "jsonl", "json", "csv", "tsv", "parquet"}
        The container format when the file extension does not tell; the record schema is always detected.
    strict : bool
        Refuse the source at the first record the format's rules would drop (a located PoolFormatError naming
        the reason) instead of dropping and counting it; see "Errors and drops" in the module docstring.

    Returns
    -------
    PreferencePool

    Raises
    ------
    PoolFormatError
        For anything the user must fix, located to file, line and field.
    """
    src = str(source)
    path = Path(src).expanduser()
    b = _Builder(strict)
    schemas: set[str] = set()
    origin = ""
    if path.exists():
        name = path.name
        if _is_hf_disk(path):
            try:
                import datasets
            except ImportError:
                raise PoolFormatError(path, None, None, "reading a save_to_disk folder needs `pip install datasets`") from None
            for s, recs in _hf_records(datasets.load_from_disk(str(path)), str(path), name):
                _consume(b, recs, s, seed, schemas)
        elif path.is_dir():
            files = sorted(
                p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(_DIR_EXTENSIONS)
            )
            if not files:
                raise PoolFormatError(path, None, None, "folder holds no pool files (.jsonl[.gz], .json, .csv, .parquet)")
            for f in files:
                _consume(b, _records_from_file(f, fmt), str(f.relative_to(path)), seed, schemas)
        else:
            _consume(b, _records_from_file(path, fmt), name, seed, schemas)
    elif src.startswith("hf:"):
        name = src
        spec = src[3:]
        ds_name, _, split = spec.partition(":")
        if not ds_name:
            raise PoolFormatError(src, None, None, "expected hf:NAME[:split]")
        try:
            import datasets
        except ImportError:
            raise PoolFormatError(src, None, None, "hf: sources need `pip install datasets`") from None
        try:
            ds = datasets.load_dataset(ds_name, split=split or None)
        except Exception as e:  # network, unknown name, unknown split
            raise PoolFormatError(src, None, None, f"datasets.load_dataset failed: {e}") from None
        for s, recs in _hf_records(ds, src, src):
            _consume(b, recs, s, seed, schemas)
    elif _is_builtin(src):
        name = src
        files, root = _builtin_files(src)
        for s, f in files:
            _consume(b, _records_from_file(f, None), s, seed, schemas)
        full = SAMPLE_OF.get(src[len(SAMPLE_PREFIX):] if src.startswith(SAMPLE_PREFIX) else src)
        origin = f"embedded sample, {len(b.rows):,} of {full:,} pairs" if root is None else f"full split, data folder {root}"
    else:
        known = ", ".join(k for k in BUILTIN_DATASETS if not k.startswith("hh-rlhf:"))
        raise PoolFormatError(src, None, None, f"no such file or built-in dataset (built-ins: {known}, hh-rlhf:<split>)")
    if not b.rows:
        raise PoolFormatError(src, None, None, "no usable pairs" + (f" (dropped: {dict(b.dropped)})" if b.dropped else ""))
    pairs = b.frame()
    report = LoadReport(path=src, kept=len(pairs), dropped=dict(b.dropped), first_dropped=dict(b.first_dropped),
                        format="+".join(sorted(schemas)),
                        origin=origin)
    return PreferencePool(pairs, name=name, report=report)


_DIR_EXTENSIONS = (".jsonl", ".jsonl.gz", ".ndjson", ".json", ".json.gz", ".csv", ".tsv", ".parquet")


# --------------------------------------------------------------------------------------------------- summary


def _percentiles(lengths: np.ndarray) -> dict[str, int]:
    if len(lengths) == 0:
        return {"p5": 0, "p50": 0, "p95": 0}
    p = np.percentile(lengths, [5, 50, 95])
    return {"p5": int(round(p[0])), "p50": int(round(p[1])), "p95": int(round(p[2]))}


def summarize(pool: PreferencePool) -> dict:
    """Counts a user checks before labelling: pairs, drops, label balance, repeated prompts, text lengths.

    Every count describes ``pool`` itself except the drops: validation happens once, when the source file is
    read, so ``dropped`` and ``dropped_total`` count rows of the *whole source file*, also for a subset or a sample
    of it (``pool.subset``, ``pool.sample_groups``). ``source_pairs`` (pairs the file gave) and ``is_subset`` say
    which case it is, and :func:`format_summary` spells it out.

    Returns
    -------
    dict
        ``name``, ``path``, ``format``, ``origin`` (built-ins: embedded sample or full split), ``pairs``,
        ``source_pairs`` (pairs kept when the source was read),
        ``is_subset`` (``pairs < source_pairs``), ``dropped`` (reason -> count, whole source file),
        ``first_dropped`` (reason -> ``{"path", "line"}`` of its first dropped record),
        ``dropped_total`` (whole source file), ``labelled``, ``unlabelled``, ``a_preferred``, ``b_preferred``, ``a_preferred_fraction`` (NaN when
        nothing is labelled), ``groups``, ``repeated_prompt_groups`` (groups with more than one pair),
        ``pairs_in_repeated_groups``, ``sources`` (source -> pairs) and ``lengths`` (``prompt``/``completion_a``/
        ``completion_b``/``completion`` -> ``p5``/``p50``/``p95`` in characters).
    """
    df = pool.pairs
    lab = df["label"]
    n_lab = int(lab.notna().sum())
    n_a = int((lab == 1).sum())
    sizes = df["group"].value_counts()
    rep = sizes[sizes > 1]
    la = df["completion_a"].str.len().to_numpy()
    lb = df["completion_b"].str.len().to_numpy()
    return {
        "name": pool.name,
        "path": pool.report.path,
        "format": pool.report.format,
        "origin": pool.report.origin,
        "pairs": len(df),
        "source_pairs": int(pool.report.kept),
        "is_subset": len(df) < int(pool.report.kept),
        "dropped": dict(pool.report.dropped),
        "first_dropped": {k: {"path": f, "line": n} for k, (f, n) in pool.report.first_dropped.items()},
        "dropped_total": pool.report.dropped_total,
        "labelled": n_lab,
        "unlabelled": len(df) - n_lab,
        "a_preferred": n_a,
        "b_preferred": n_lab - n_a,
        "a_preferred_fraction": n_a / n_lab if n_lab else float("nan"),
        "groups": int(len(sizes)),
        "repeated_prompt_groups": int(len(rep)),
        "pairs_in_repeated_groups": int(rep.sum()),
        "sources": {str(k): int(v) for k, v in df["source"].value_counts(sort=False).items()},
        "lengths": {
            "prompt": _percentiles(df["prompt"].str.len().to_numpy()),
            "completion_a": _percentiles(la),
            "completion_b": _percentiles(lb),
            "completion": _percentiles(np.concatenate([la, lb])),
        },
    }


def _where(first: dict, pool_path: str) -> str:
    """``line 22`` in the pool's own file, ``name:22`` in a file of a folder or of a built-in dataset."""
    f, line = Path(first["path"]), first["line"]
    base = Path(pool_path).expanduser()
    if f == base:
        name = ""
    else:
        try:
            name = str(f.relative_to(base))
        except ValueError:
            name = f.name
    if line is None:
        return name or "the file"
    return f"{name}:{line}" if name else f"line {line}"


def format_summary(d: dict) -> str:
    """The summary of :func:`summarize` as plain text (``pairs: N`` on its own line, N a plain number).

    The drop line says that it counts the source file, and for a subset how many pairs the file gave.
    """
    if d.get("origin"):  # a built-in name: say whether this is the embedded sample or the full split
        lines = [f"pool: {d['name']} ({d['origin']}" + (f"; format {d['format']})" if d.get("format") else ")")]
    else:
        lines = [f"pool: {d['name']}" + (f" ({d['format']})" if d.get("format") else "")]
    lines.append(f"pairs: {d['pairs']}")
    dropped = f"dropped while reading the source file: {d['dropped_total']}"
    if d["dropped_total"]:
        first = d.get("first_dropped", {})
        dropped += " (" + "; ".join(
            f"{k}: {v}" + (f", first at {_where(first[k], d['path'])}" if k in first else "")
            for k, v in sorted(d["dropped"].items())
        ) + ")"
    if d.get("is_subset"):
        dropped += f"; the file gave {d['source_pairs']} pairs, this pool is a subset of {d['pairs']}"
    lines.append(dropped)
    if d["labelled"]:
        frac = d["a_preferred_fraction"]
        lines.append(
            f"labels: {d['labelled']} labelled (A preferred {d['a_preferred']} = {frac:.1%}, "
            f"B preferred {d['b_preferred']}), {d['unlabelled']} unlabelled"
        )
    else:
        lines.append(f"labels: none ({d['unlabelled']} unlabelled)")
    lines.append(
        f"prompts: {d['groups']} groups; {d['repeated_prompt_groups']} with more than one pair "
        f"({d['pairs_in_repeated_groups']} pairs)"
    )
    if len(d["sources"]) > 1:
        lines.append("sources: " + ", ".join(f"{k} {v}" for k, v in d["sources"].items()))
    lines.append("length (characters)      p5     p50     p95")
    for key in ("prompt", "completion_a", "completion_b"):
        q = d["lengths"][key]
        lines.append(f"  {key:<20} {q['p5']:>7} {q['p50']:>7} {q['p95']:>7}")
    return "\n".join(lines)
