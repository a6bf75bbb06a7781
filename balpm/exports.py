"""Exports of a label store: the training table, TRL JSONL, Parquet, a ``datasets`` folder, the event log.

Why apart from :mod:`balpm.store`: an export only reads the store's active labels and joins them with the pool's
texts; it never writes to the database. :class:`balpm.store.LabelStore` keeps its ``export_*`` methods, which call
these.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from balpm.data import PreferencePool
    from balpm.store import LabelStore

__all__ = ["training_table", "export_trl", "export_training_parquet", "export_dataset", "export_event_log"]


def training_table(store: LabelStore, pool: PreferencePool) -> pd.DataFrame:
    """The active a/b labels as a training table, one row per labelled pair in label order.

    Columns ``id``, ``prompt``, ``chosen``, ``rejected`` (texts exactly as the pool holds them, so a trl reward
    trainer reads them as they are), ``annotator``, ``labelled_at`` (UTC ISO-8601), ``round``, ``note``. Ties
    and skips are left out: no preference to learn from.

    Raises
    ------
    KeyError
        A labelled pair id is not in ``pool`` (labels of another pool).
    """
    ev = store.active_labels()
    ev = ev[ev["label"].notna()]
    pairs = pool.pairs.set_index("id", drop=False)
    missing = [i for i in ev["pair_id"] if i not in pairs.index]
    if missing:
        raise KeyError(f"{len(missing)} labelled pair ids are not in pool {getattr(pool, 'name', '')!r}: "
                       f"{missing[:5]}")
    rows = pairs.loc[ev["pair_id"].tolist()]
    a_won = (ev["label"].astype(int) == 1).to_numpy()
    a, b = rows["completion_a"].to_numpy(dtype=object), rows["completion_b"].to_numpy(dtype=object)
    return pd.DataFrame({
        "id": ev["pair_id"].astype(str).to_numpy(),
        "prompt": rows["prompt"].to_numpy(dtype=object),
        "chosen": np.where(a_won, a, b),
        "rejected": np.where(a_won, b, a),
        "annotator": ev["annotator"].to_numpy(dtype=object),
        "labelled_at": ev["created_at"].to_numpy(dtype=object),
        "round": ev["round"].to_numpy(),
        "note": ev["note"].to_numpy(dtype=object),
    })


def export_trl(store: LabelStore, pool: PreferencePool, path: str | os.PathLike[str]) -> int:
    """Write the active a/b labels as TRL reward-trainer JSONL; returns the number of lines.

    Each line: ``id``, ``prompt``, ``chosen``, ``rejected``, ``annotator``, ``labelled_at`` (and ``note``
    when one was given), from :func:`training_table`. Written atomically (temporary file, then rename).
    """
    table = training_table(store, pool)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            for r in table.itertuples(index=False):
                line = {"id": r.id, "prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected,
                        "annotator": r.annotator, "labelled_at": r.labelled_at}
                if isinstance(r.note, str):
                    line["note"] = r.note
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(table)


def export_training_parquet(store: LabelStore, pool: PreferencePool, path: str | os.PathLike[str]) -> int:
    """Write :func:`training_table` (not the event log) to Parquet; returns the row count."""
    table = training_table(store, pool)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        table.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(table)


def export_dataset(store: LabelStore, pool: PreferencePool, folder: str | os.PathLike[str]) -> int:
    """Write :func:`training_table` with ``datasets.Dataset.save_to_disk`` (``load_from_disk`` reads it back).

    Raises
    ------
    FileExistsError
        ``folder`` exists and is not empty (an export never overwrites).
    """
    from datasets import Dataset

    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise FileExistsError(f"{folder} exists and is not empty; an export never overwrites")
    table = training_table(store, pool)
    table["round"] = table["round"].astype("float64")  # nullable Int64 has no datasets feature of its own
    Dataset.from_pandas(table, preserve_index=False).save_to_disk(str(folder))
    return len(table)


def export_event_log(store: LabelStore, path: str | os.PathLike[str], *, include_undone: bool = True) -> int:
    """Write the event log (all events by default, for audit) to Parquet; returns the row count."""
    df = store.events(include_undone=include_undone)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_parquet(path, index=False)
    return len(df)
