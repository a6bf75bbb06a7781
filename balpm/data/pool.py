"""The pool type and what every reader reports: :class:`PreferencePool`, :class:`LoadReport`, :class:`PoolFormatError`.

Everything downstream (embedding, learner, store, app) sees only these; readers build them (:mod:`balpm.data.sources`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

CORE_COLUMNS = ("id", "prompt", "completion_a", "completion_b", "label", "source", "group")
#: Metadata column (bool) of rows whose completions are transcript replies (HH-RLHF) kept exactly as in the source,
#: leading space and all, so ``prompt + chosen`` is the published transcript. What is embedded and measured is the
#: reply stripped, as the reader held it before and as the pair id hashes it (:meth:`PreferencePool.completion_texts`).
STRIP_COLUMN = "strip_completions"


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
        labelled = int(self.pairs["label"].notna().sum())
        return f"PreferencePool(name={self.name!r}, pairs={len(self)}, labelled={labelled})"

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

    def completion_texts(self, side: str) -> list[str]:
        """The completion of side ``"a"`` or ``"b"`` of every pair as embedded and measured (not as shown).

        ``completion_a``/``completion_b`` hold the source's texts exactly (what the label view shows and the exports
        write); rows marked in :data:`STRIP_COLUMN` (transcript replies) give theirs stripped here, so embedded
        texts, and with them embedding caches and fixed-seed runs, do not depend on a reply's surrounding spaces.
        """
        if side not in ("a", "b"):
            raise ValueError(f"side must be 'a' or 'b', not {side!r}")
        comps = self.pairs[f"completion_{side}"].tolist()
        if STRIP_COLUMN not in self.pairs.columns:
            return comps
        strip = self.pairs[STRIP_COLUMN].to_numpy(dtype=object) == True  # noqa: E712 (None in mixed pools)
        return [c.strip() if s else c for c, s in zip(comps, strip)]

    def pair_texts(self, side: str) -> list[str]:
        """The prompt+completion text of side ``"a"`` or ``"b"`` of every pair as embedded: the prompt joined
        (:func:`join_prompt_completion`) with :meth:`completion_texts`."""
        comps = self.completion_texts(side)
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
        test_mask = self.test_group_mask(test_fraction, seed)
        return self.subset(~test_mask), self.subset(test_mask)

    def test_group_mask(self, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
        """The rows :meth:`split_by_group` holds out, as a boolean mask: the one split, for callers that keep
        the pool whole (a session's train/test masks)."""
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), not {test_fraction}")
        codes, order, sizes = self._shuffled_groups(seed)
        n_groups = len(sizes)
        cum = np.cumsum(sizes[order])
        target = test_fraction * len(self)
        n_test = int(np.searchsorted(cum, target, side="left")) + 1
        # take the prefix whose total is closest to the target
        if n_test > 1 and abs(cum[n_test - 2] - target) <= abs(cum[n_test - 1] - target):
            n_test -= 1
        if n_groups >= 2:
            n_test = min(max(n_test, 1), n_groups - 1)
        is_test_group = np.zeros(n_groups, dtype=bool)
        is_test_group[order[:n_test]] = True
        return is_test_group[codes]

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


class _Loc:
    """Where a record sits in its file, to raise located errors."""

    __slots__ = ("path", "line")

    def __init__(self, path: str, line: int | None):
        self.path = path
        self.line = line

    def error(self, fld: str | None, message: str) -> PoolFormatError:
        return PoolFormatError(self.path, self.line, fld, message)

