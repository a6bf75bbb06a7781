"""Files written whole or not at all, and read back only when they hold what was written.

Why this module: caches (embedding chunks, kNN graphs) and the learner's saved state can always be rebuilt from
the pool and the label database, so a damaged copy must neither stop a run nor be trusted. Every balpm file write
goes through :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`save_npz` (a temporary file in the
same folder, ``fsync``, then ``os.replace``, which is atomic on POSIX and Windows), so a reader sees the old file or
the new one, never half of one, whatever kills the writer.

Checksums: :func:`save_npz` stores ``__sha256__``, the sha256 of the arrays' names, dtypes, shapes and bytes, in the
``.npz`` itself; :func:`load_npz` recomputes it and raises :class:`DamagedFileError` (a ``ValueError``) on any
mismatch or on anything numpy or zipfile cannot read (``BadZipFile``, ``EOFError``, a bad header...). Files written
before checksums existed (no ``__sha256__``) still load: zip's own CRC-32 is checked on read, and callers check the
shapes they expect.

Damaged caches: :func:`quarantine` moves a damaged file into a ``quarantine/`` folder beside it and reports it with
``warnings.warn(..., DamagedFileWarning)``. Why Python warnings and not logging: a library must not configure
logging handlers, so a logged message would be lost unless the application set one up, while a warning reaches the
CLI's stderr, a notebook's cell output and pytest (``pytest.warns``) with no setup, and the app can record it
(``warnings.catch_warnings``). It is reported once because the file is moved away: the next run no longer sees it
(and a second process that finds it already moved says nothing).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "CHECKSUM_KEY",
    "QUARANTINE_DIR",
    "READ_ERRORS",
    "DamagedFileError",
    "DamagedFileWarning",
    "atomic_write_bytes",
    "atomic_write_text",
    "arrays_digest",
    "ids_digest",
    "sha256_file",
    "save_npz",
    "load_npz",
    "verified",
    "quarantine",
]

CHECKSUM_KEY = "__sha256__"
"""Name of the 0-d string array that holds an ``.npz``'s content checksum (:func:`arrays_digest`)."""

QUARANTINE_DIR = "quarantine"
"""Folder, beside a damaged file, that :func:`quarantine` moves it into."""

READ_ERRORS: tuple[type[BaseException], ...] = (
    OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, zlib.error, SyntaxError,
)
"""What reading a damaged ``.npz`` or JSON file can raise (``SyntaxError``: ``ast.literal_eval`` of flipped text)."""


class DamagedFileError(ValueError):
    """A file that exists but does not hold what was written (checksum mismatch, unreadable, wrong shapes).

    ``path`` and ``reason`` are kept separately so that a caller can quarantine the file and say what happens next.
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class DamagedFileWarning(UserWarning):
    """A damaged file was moved aside (:func:`quarantine`) and what it held will be rebuilt."""


# ------------------------------------------------------------------------------------------------- writing
def _fsync_dir(folder: Path) -> None:
    """Make a rename durable across a power cut (POSIX only; Windows cannot open a folder)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _atomic_write(path: Path, write: Any, suffix: str = "") -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then ``os.replace`` it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the target's name in the temporary one: a writer that cleans up after a killed one can tell whose it was
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".tmp-{path.name}-", suffix=suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Replace ``path`` with ``data`` atomically (temp file in the same folder, fsync, ``os.replace``)."""
    return _atomic_write(Path(path), lambda f: f.write(data))


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """:func:`atomic_write_bytes` of UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


# ------------------------------------------------------------------------------------------------- checksums
def sha256_file(path: str | os.PathLike[str], block: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(block), b""):
            h.update(chunk)
    return h.hexdigest()


def ids_digest(ids: Any) -> str:
    """sha256 of a sequence of ids as strings (NUL-separated): the identity of a pool's rows, in order."""
    h = hashlib.sha256()
    for i in ids:
        h.update(str(i).encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def arrays_digest(arrays: Mapping[str, Any]) -> str:
    """sha256 of named arrays (name, dtype, shape and bytes, by name; :data:`CHECKSUM_KEY` left out).

    Content, not file bytes: the same arrays give the same digest whatever zip layout numpy writes.
    """
    h = hashlib.sha256()
    for name in sorted(arrays):
        if name == CHECKSUM_KEY:
            continue
        a = np.ascontiguousarray(arrays[name])
        if a.dtype.hasobject:
            raise TypeError(f"array {name!r} has dtype object: not storable without pickle")
        h.update(json.dumps([name, a.dtype.str, list(a.shape)]).encode("utf-8") + b"\0")
        if a.nbytes:
            h.update(a.reshape(-1).view(np.uint8))
    return h.hexdigest()


# ------------------------------------------------------------------------------------------------- npz
def save_npz(path: str | os.PathLike[str], arrays: Mapping[str, Any]) -> Path:
    """Write arrays to an uncompressed ``.npz`` atomically, with their checksum (:data:`CHECKSUM_KEY`).

    Uncompressed because caches must load fast; the checksum, not compression, is what detects damage.
    """
    arrs = {k: np.asarray(v) for k, v in arrays.items()}
    if CHECKSUM_KEY in arrs:
        raise ValueError(f"{CHECKSUM_KEY!r} is reserved for the checksum")
    arrs[CHECKSUM_KEY] = np.array(arrays_digest(arrs))
    return _atomic_write(Path(path), lambda f: np.savez(f, **arrs), suffix=".npz")


def load_npz(path: str | os.PathLike[str], required: Iterable[str] = ()) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` (read into memory), verified against its stored checksum.

    Files without a checksum (written before balpm stored one) are accepted as they are; zip's CRC-32 still
    catches most flipped bytes, and the caller checks the shapes it needs.

    Raises
    ------
    FileNotFoundError, PermissionError, IsADirectoryError
        The file is not there or not readable by us: not damage (e.g. another process moved it).
    DamagedFileError
        Unreadable, a checksum mismatch, or one of ``required`` missing.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # not there or not ours to read: not damage
    except READ_ERRORS as e:
        if _head(path) != b"PK\x03\x04":  # numpy's own message would talk about pickles
            raise DamagedFileError(path, "not an .npz file (no zip header)") from e
        raise DamagedFileError(path, f"unreadable ({type(e).__name__}: {e})") from e
    return verified(path, arrays, required)


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(4)
    except OSError:
        return b""


def verified(path: str | os.PathLike[str], arrays: dict[str, np.ndarray], required: Iterable[str] = ()
             ) -> dict[str, np.ndarray]:
    """``arrays`` (every array of the ``.npz`` at ``path``, as read) without the checksum, once verified.

    For a caller that already holds the file open (:func:`load_npz` is the usual way in).
    """
    arrays = dict(arrays)
    stored = arrays.pop(CHECKSUM_KEY, None)
    if stored is not None:
        if stored.shape != () or str(stored) != arrays_digest(arrays):
            raise DamagedFileError(path, "checksum mismatch: the content is not what was written")
    missing = [k for k in required if k not in arrays]
    if missing:
        raise DamagedFileError(path, f"missing arrays {missing}")
    return arrays


# ------------------------------------------------------------------------------------------------- quarantine
def quarantine(path: str | os.PathLike[str], reason: str, then: str, *, warn: bool = True,
               stacklevel: int = 2) -> Path | None:
    """Move a damaged file or folder into ``quarantine/`` beside it and warn once (:class:`DamagedFileWarning`).

    Parameters
    ----------
    path
        The damaged file (or folder).
    reason
        What is wrong with it (e.g. :attr:`DamagedFileError.reason`).
    then
        What happens next, for the message (e.g. ``"its texts are embedded again"``).
    warn
        False when the caller reports the damage itself (the learner state, shown in the page).

    Returns
    -------
    Path or None
        Where the file went; None when it had already gone (another process moved it first: it said so) or
        could not be moved (then the warning says so).
    """
    path = Path(path)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    dest = path.parent / QUARANTINE_DIR / f"{stamp}-{path.name}"
    moved: Path | None = dest
    try:
        dest.parent.mkdir(exist_ok=True)
        os.replace(path, dest)
    except FileNotFoundError:
        if not path.exists():
            return None  # already moved by someone else, who reported it
        moved = None
        where = "it could not be moved aside"
    except OSError as e:
        moved = None
        where = f"it could not be moved aside ({e})"
    else:
        where = f"moved to {dest}"
    if warn:
        warnings.warn(f"damaged file {path}: {reason}; {where}; {then}", DamagedFileWarning, stacklevel=stacklevel + 1)
    return moved
