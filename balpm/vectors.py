"""What a pool embeds (:func:`pool_texts`) and your own vectors of it, read from a file (``--from-file F``).

Teams embed with their own model on their own GPUs; balpm only needs three vectors per pair, the same views
:func:`balpm.embed.embed_pool` computes: the prompt alone, prompt + completion A, prompt + completion B.

Layouts
-------
- Parquet (``.parquet``): columns ``id`` (the pool's pair id), ``prompt``, ``a``, ``b``, each a list of floats
  of one fixed length per row.
- ``.npz``: arrays ``ids`` (N strings), ``prompt``, ``a``, ``b`` (N x d each).
- a folder holding ``ids.txt`` (one id a line) or ``ids.npy``, and ``prompt.npy``, ``a.npy``, ``b.npy``.

Rows may come in any order and the file may hold more pairs than the pool (a sample of a larger pool); "A" and
"B" are the pool's ``completion_a``/``completion_b`` (after the A/B coin: write them from ``balpm validate``'s
pool, or from :func:`balpm.embed.pool_texts`). Checked: every pool id present, no id twice, one dimension for all
three views, finite values; an error names the file, the row and the field. The vectors get a model identity of
their own, ``file:<name>@<sha256 of the file>``, so the kNN and UMAP caches never mix them with another model's.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from balpm.data.pool import PoolFormatError

if TYPE_CHECKING:
    from balpm.data import PreferencePool
    from balpm.embed import Embedder, PoolEmbeddings

VIEWS = ("prompt", "a", "b")
#: Prefix of an embedding model value that names a file of your own vectors instead of a model (``file:PATH``): what
#: the Embed page's import saves in a session, and what ``balpm check --model`` accepts.
FILE_MODEL = "file:"


def model_vectors_file(model: str, folder: str | os.PathLike | None = None) -> Path | None:
    """The vectors file an embedding model value ``file:PATH`` names, else None (a model to run).

    A relative ``PATH`` is inside ``folder`` (a session's folder: the Embed page saves imports under its
    ``vectors/``), or the working directory when there is none.
    """
    if not str(model).startswith(FILE_MODEL):
        return None
    path = Path(str(model)[len(FILE_MODEL):]).expanduser()
    return path if path.is_absolute() or folder is None else Path(folder) / path


def pool_texts(pool: PreferencePool, embedder: Embedder | None = None) -> list[str]:
    """What a pool embeds, in one list: every prompt, then every prompt+A, then every prompt+B (row order).

    A conversational pool (a ``prompt_messages`` column) embedded by a decoder with a chat template gets its
    conversations through that template (:meth:`Embedder.chat_text`); every other pool its plain texts.
    """
    if embedder is not None and conversational(pool):
        chat = _chat_texts(pool, embedder)
        if chat is not None:
            return chat
    prompts = list(pool.prompt_texts())
    texts_a = list(pool.pair_texts("a"))
    texts_b = list(pool.pair_texts("b"))
    if not (len(texts_a) == len(texts_b) == len(prompts)):
        raise ValueError("pool.prompt_texts() and pool.pair_texts() disagree in length")
    return prompts + texts_a + texts_b


def conversational(pool: PreferencePool) -> bool:
    """Whether the pool keeps conversations (``prompt_messages``), so :func:`pool_texts` depends on the embedder."""
    pairs = getattr(pool, "pairs", None)  # duck-typed pools (tests, adapters) carry only the two text methods
    return pairs is not None and "prompt_messages" in pairs.columns


def _chat_texts(pool: PreferencePool, embedder: Embedder) -> list[str] | None:
    """:func:`pool_texts` through the model's chat template, or None when it has none (or a row has no messages)."""
    cols = ("prompt_messages", "completion_a_messages", "completion_b_messages")
    frame = pool.pairs.reindex(columns=list(cols))
    if frame.isna().to_numpy().any():
        return None
    rows = [[json.loads(m) for m in row] for row in frame.itertuples(index=False)]
    prompts = [embedder.chat_text(p, generation_prompt=True) for p, _, _ in rows]
    if any(t is None for t in prompts):
        return None
    texts_a = [embedder.chat_text(p + a, generation_prompt=False) for p, a, _ in rows]
    texts_b = [embedder.chat_text(p + b, generation_prompt=False) for p, _, b in rows]
    return prompts + texts_a + texts_b


class VectorFileError(PoolFormatError):
    """A vectors file balpm cannot use, located like a pool error: ``file:row: field 'x': message``."""


def vectors_model_id(path: str | os.PathLike) -> str:
    """``file:<name>@<first 16 hex of the sha256 of its bytes>`` (a folder: of its files' names and bytes)."""
    p = Path(path)
    h = hashlib.sha256()
    files = sorted(f for f in p.iterdir() if f.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(f.name.encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return f"file:{p.name}@{h.hexdigest()[:16]}"


def _read_parquet(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    import pandas as pd

    try:
        df = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a broken file
        raise VectorFileError(path, None, None, f"cannot read Parquet: {e}") from None
    for col in ("id", *VIEWS):
        if col not in df.columns:
            raise VectorFileError(path, None, col, f"missing column (the file has {list(df.columns)[:8]})")
    views = {}
    for col in VIEWS:
        lengths = df[col].map(lambda v: -1 if v is None else len(v)).to_numpy()
        bad = np.flatnonzero(lengths != lengths[0]) if len(df) else []
        if len(bad) or (len(df) and lengths[0] <= 0):
            row = int(bad[0]) if len(bad) else 0
            raise VectorFileError(path, row + 1, col, f"a vector of {lengths[row]} values, row 1 has {lengths[0]}: "
                                                     "every vector must have one fixed length")
        views[col] = np.stack(df[col].to_numpy()).astype(np.float32) if len(df) else np.zeros((0, 0), np.float32)
    return df["id"].astype(str).to_numpy(), views


def _read_arrays(path: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """``.npz`` with ids/prompt/a/b, or a folder of ``ids.txt``/``ids.npy`` and ``prompt.npy``/``a.npy``/``b.npy``."""
    arrays: dict[str, np.ndarray] = {}
    try:
        if path.is_dir():
            if (path / "ids.txt").is_file():
                arrays["ids"] = np.array((path / "ids.txt").read_text(encoding="utf-8").split("\n"))
                arrays["ids"] = arrays["ids"][arrays["ids"] != ""]
            for name in ("ids", *VIEWS):
                f = path / f"{name}.npy"
                if name not in arrays and f.is_file():
                    arrays[name] = np.load(f, allow_pickle=False)
        else:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise VectorFileError(path, None, None, f"cannot read the arrays: {e}") from None
    for name in ("ids", *VIEWS):
        if name not in arrays:
            where = f"{name}.npy" + (" or ids.txt" if name == "ids" else "") if path.is_dir() else f"array {name!r}"
            raise VectorFileError(path, None, name, f"missing ({where}); the file has {sorted(arrays)}")
    ids = np.asarray(arrays["ids"]).astype(str)
    views = {}
    for name in VIEWS:
        v = np.asarray(arrays[name])
        if v.ndim != 2 or len(v) != len(ids):
            raise VectorFileError(path, None, name, f"expected {len(ids)} x d (one row per id), got shape {v.shape}")
        if not np.issubdtype(v.dtype, np.number):
            raise VectorFileError(path, None, name, f"expected numbers, got {v.dtype}")
        views[name] = v.astype(np.float32)
    return ids, views


def read_vectors(path: str | os.PathLike, pool: PreferencePool) -> PoolEmbeddings:
    """The pool's vectors from a file in one of the layouts above, in the pool's row order, checked.

    Raises
    ------
    VectorFileError
        Unreadable file, missing column or array, vectors of differing lengths or dimensions, an id twice, a
        non-finite value (row and view named), or pool ids the file lacks (how many, and the first).
    """
    from balpm.embed import PoolEmbeddings

    p = Path(path).expanduser()
    if not p.exists():
        raise VectorFileError(p, None, None, "no such file")
    if p.is_dir() or p.suffix.lower() == ".npz":
        ids, views = _read_arrays(p)
    elif p.suffix.lower() in (".parquet", ".pq"):
        ids, views = _read_parquet(p)
    else:
        raise VectorFileError(p, None, None, "unknown vectors file (expected .parquet, .npz or a folder of .npy)")
    dims = {k: v.shape[1] for k, v in views.items()}
    if len(set(dims.values())) != 1:
        raise VectorFileError(p, None, None, f"the three views differ in dimension: {dims}")
    row_of: dict[str, int] = {}
    for i, pid in enumerate(ids):
        if pid in row_of:
            raise VectorFileError(p, i + 1, "id", f"id {pid!r} twice (first at row {row_of[pid] + 1})")
        row_of[pid] = i
    pool_ids = np.asarray(pool.ids).astype(str)
    missing = [pid for pid in pool_ids if pid not in row_of]
    if missing:
        raise VectorFileError(p, None, "id", f"{len(missing)} of the pool's {len(pool_ids)} pair ids are not in the "
                                             f"file (first: {missing[0]!r}); ids come from `balpm validate`'s pool")
    take = np.array([row_of[pid] for pid in pool_ids], dtype=np.int64)
    for name, v in views.items():
        bad = np.flatnonzero(~np.isfinite(v).all(axis=1))
        if len(bad):
            raise VectorFileError(p, int(bad[0]) + 1, name, f"{len(bad)} row(s) hold NaN or infinite values")
    out = {k: np.ascontiguousarray(v[take]) for k, v in views.items()}
    stats = {"texts": 0, "cached": 0, "computed": 0, "seconds": 0.0, "file": str(p), "file_rows": int(len(ids))}
    return PoolEmbeddings(ids=pool_ids, prompt=out["prompt"], a=out["a"], b=out["b"], model_id=vectors_model_id(p),
                          stats=stats)
