"""Exports of a label store: the training table, TRL JSONL (standard or conversational), Parquet, a ``datasets``
folder, the event log.

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

from balpm.data import chat
from balpm.data.chat import MESSAGE_COLUMNS
from balpm.vectors import conversational

if TYPE_CHECKING:
    from balpm.data import PreferencePool
    from balpm.store import LabelStore

__all__ = ["training_table", "export_trl", "export_trl_chat", "export_training_parquet", "export_dataset",
           "export_event_log", "write_export", "EXPORT_FORMATS"]


def _labelled_rows(store: LabelStore, pool: PreferencePool) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """(active a/b label events, their pool rows in the same order, whether A won): what every training export
    joins. Raises KeyError for a labelled pair id that is not in ``pool``."""
    ev = store.active_labels()
    ev = ev[ev["label"].notna()]
    pairs = pool.pairs.set_index("id", drop=False)
    missing = [i for i in ev["pair_id"] if i not in pairs.index]
    if missing:
        raise KeyError(f"{len(missing)} labelled pair ids are not in pool {getattr(pool, 'name', '')!r}: "
                       f"{missing[:5]}")
    return ev, pairs.loc[ev["pair_id"].tolist()], (ev["label"].astype(int) == 1).to_numpy()


def training_table(store: LabelStore, pool: PreferencePool) -> pd.DataFrame:
    """The active a/b labels as a training table, one row per labelled pair in label order.

    Columns ``id``, ``prompt``, ``chosen``, ``rejected`` (texts exactly as the pool holds them, which is as the
    source has them: an HH-RLHF reply keeps its leading space, so ``prompt + chosen`` is the chosen transcript
    when the annotator agreed with it), ``annotator``, ``labelled_at`` (UTC ISO-8601), ``round``, ``note``. Ties
    and skips are left out: no preference to learn from.

    Raises
    ------
    KeyError
        A labelled pair id is not in ``pool`` (labels of another pool).
    """
    ev, rows, a_won = _labelled_rows(store, pool)
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
    return _write_jsonl(path, [{"id": r.id, "prompt": r.prompt, "chosen": r.chosen, "rejected": r.rejected,
                                "annotator": r.annotator, "labelled_at": r.labelled_at, "note": r.note}
                               for r in table.itertuples(index=False)])


def _write_jsonl(path: str | os.PathLike[str], lines: list[dict]) -> int:
    """Write ``lines`` as JSON lines atomically (temporary file, then rename); a ``note`` that is not text is left
    out of its line. Returns the number of lines."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            for line in lines:
                if not isinstance(line.get("note"), str):
                    line.pop("note", None)
                fh.write(json.dumps(line, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return len(lines)


def export_trl_chat(store: LabelStore, pool: PreferencePool, path: str | os.PathLike[str]) -> int:
    """Write the active a/b labels in trl's conversational preference format (explicit prompt); returns the lines.

    Each line: ``id``, ``prompt`` (the prompt's messages), ``chosen`` and ``rejected`` (the completions' messages,
    each a list of ``{"role", "content"}``, exactly as the pool file held them), ``annotator``, ``labelled_at``
    (and ``note`` when one was given). Why beside :func:`export_trl`: a trainer applies its own chat template to
    messages; flattened text would carry balpm's plain rendering instead.

    Raises
    ------
    ValueError
        ``pool`` is not conversational, or a labelled pair has no messages (a folder that mixes chat files with
        plain ones): the error names the pool, the pair and its source file.
    """
    name = getattr(pool, "name", "")
    if not conversational(pool):
        raise ValueError(f"pool {name!r} is not conversational: its pairs carry no message lists (no "
                         f"{'/'.join(MESSAGE_COLUMNS)} columns); export it as TRL JSONL (format 'trl') instead")
    ev, rows, a_won = _labelled_rows(store, pool)
    msgs = rows.reindex(columns=list(MESSAGE_COLUMNS))
    bare = msgs.isna().any(axis=1).to_numpy()
    if bare.any():
        first = rows.iloc[int(np.flatnonzero(bare)[0])]
        raise ValueError(f"pool {name!r}: {int(bare.sum())} labelled pairs have no message lists, the first "
                         f"{first['id']!r} (from {first['source']!r}); export the pool as TRL JSONL (format 'trl')")
    lines = []
    for (p, a, b), won, e in zip(msgs.itertuples(index=False), a_won, ev.itertuples(index=False)):
        lines.append({"id": str(e.pair_id), "prompt": chat.from_json(p),
                      "chosen": chat.from_json(a if won else b), "rejected": chat.from_json(b if won else a),
                      "annotator": e.annotator, "labelled_at": e.created_at, "note": e.note})
    return _write_jsonl(path, lines)


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


#: Export format name -> (writer, what it writes, default file name suffix). ``writer(store, pool, path)`` returns
#: the rows written; ``dataset`` writes a folder.
EXPORT_FORMATS = {
    "trl": (export_trl, "TRL reward-trainer JSONL (prompt/chosen/rejected texts)", ".jsonl"),
    "trl-chat": (export_trl_chat, "TRL conversational JSONL (message lists; conversational pools only)", ".jsonl"),
    "train": (export_training_parquet, "the training table as Parquet", ".parquet"),
    "dataset": (export_dataset, "a datasets.save_to_disk folder of the training table", ""),
    "events": (lambda store, pool, path: export_event_log(store, path), "the full label event log as Parquet",
               ".parquet"),
}


def write_export(store: LabelStore, pool: PreferencePool, fmt: str, path: str | os.PathLike[str]) -> int:
    """Write one export named in :data:`EXPORT_FORMATS` (the CLI's ``--format``, the Label page's buttons)."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; choose one of {sorted(EXPORT_FORMATS)}")
    return EXPORT_FORMATS[fmt][0](store, pool, path)
