"""The embedding cache: vectors stored by (model settings, text hash) in checksummed chunk files.

Split from :mod:`balpm.embed` (which re-exports every name here) so each module stays readable; the cache needs
nothing of the model but its :attr:`balpm.embed.Embedder.cache_key`, ``dim`` and ``encode``.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from balpm.safeio import READ_ERRORS, DamagedFileError, atomic_write_bytes, quarantine, save_npz, verified

if TYPE_CHECKING:
    from balpm.embed import Embedder

Progress = Callable[[int, int], None]
"""``progress(done, total)``: called after every batch (tqdm on the CLI, ``st.progress`` in the app)."""

CHUNK_SIZE = 1024
"""Texts per cache chunk file: the unit of resumption after an interruption."""
_HASH_BYTES = 32  # hex characters kept of a text's sha256 (128 bits)


class EmbeddingModelError(ValueError):
    """A model name that cannot be resolved or loaded; the CLI and app print it without a traceback."""


def default_cache_dir() -> Path:
    """``$BALPM_CACHE_DIR`` or ``~/.cache/balpm``: one cache shared by the CLI, the app and notebooks."""
    env = os.environ.get("BALPM_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "balpm"


def text_hash(text: str) -> bytes:
    """128-bit hex digest of a text: the cache's content address (ASCII, so numpy ``S`` arrays keep it intact)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:_HASH_BYTES].encode("ascii")


def _hash_array(texts: Sequence[str]) -> np.ndarray:
    return np.array([text_hash(t) for t in texts], dtype=f"S{_HASH_BYTES}")



_FINGERPRINTS: dict[tuple[str, int, int], str] = {}
_FINGERPRINT_LOCK = threading.Lock()


def file_fingerprint(path: str | os.PathLike, block: int = 1 << 20) -> str:
    """Quick identity of a weights file: size + sha256 of its first and last MiB (content only, no mtime).

    Hashing a whole multi-GB checkpoint on every start would dominate a small run; a changed checkpoint
    virtually always changes its size or its head/tail. Memoised per process (keyed by path, size and mtime so
    that a rewritten file is hashed again).
    """
    p = Path(path).resolve()
    st = p.stat()
    memo_key = (str(p), st.st_size, st.st_mtime_ns)
    with _FINGERPRINT_LOCK:
        if memo_key in _FINGERPRINTS:
            return _FINGERPRINTS[memo_key]
    h = hashlib.sha256(str(st.st_size).encode())
    with open(p, "rb") as f:
        h.update(f.read(block))
        if st.st_size > block:
            f.seek(max(block, st.st_size - block))
            h.update(f.read(block))
    digest = h.hexdigest()[:16]
    with _FINGERPRINT_LOCK:
        _FINGERPRINTS[memo_key] = digest
    return digest


_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth", ".h5", ".msgpack")


def _folder_fingerprint(folder: Path, only: str | None = None) -> str:
    """Fingerprint of every weights file in a folder (or just ``only``), sorted by name."""
    files = [folder / only] if only else sorted(
        p for p in folder.iterdir() if p.is_file() and p.name.endswith(_WEIGHT_SUFFIXES)
    )
    if not files:
        raise EmbeddingModelError(f"no weights file (*.safetensors, *.bin, *.gguf) in model folder {folder}")
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode() + b"\0" + file_fingerprint(p).encode())
    return h.hexdigest()[:16]




class EmbeddingCache:
    """Content-addressed store of vectors: ``directory/embeddings/<namespace>/<chunk>.npz``.

    The namespace hashes :attr:`Embedder.cache_key` (model identity, pooling, max length, truncation side,
    dtype, normalisation), so a changed model or setting never serves old vectors. Each chunk holds ``hashes``
    (``S32`` text digests) and ``vectors`` (float32) with a checksum of both, and is written to a temporary file
    then ``os.replace``-d (:func:`balpm.safeio.save_npz`): a reader never sees half a chunk, and a run killed
    midway keeps every chunk it finished. Concurrent writers only ever add files, so they cannot corrupt each
    other. A chunk found damaged (unreadable, checksum mismatch, wrong shapes) is moved into ``quarantine/``
    beside it with one :class:`balpm.safeio.DamagedFileWarning`, and its texts are embedded again: the cache
    heals itself instead of failing every later run.
    """

    def __init__(self, directory: str | os.PathLike | None = None) -> None:
        self.directory = Path(directory).expanduser() if directory is not None else default_cache_dir()

    @staticmethod
    def namespace(key: dict[str, Any]) -> str:
        """Folder name of one cache key (hash of its canonical JSON)."""
        return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]

    def folder(self, key: dict[str, Any]) -> Path:
        return self.directory / "embeddings" / self.namespace(key)

    def _chunks(self, key: dict[str, Any]) -> list[Path]:
        folder = self.folder(key)
        return sorted(folder.glob("chunk-*.npz")) if folder.is_dir() else []

    def lookup(self, key: dict[str, Any], hashes: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
        """Vectors of the texts whose hashes are given: ``(found (n,) bool, vectors (n, dim) float32)``.

        Streams the chunks one at a time and keeps only the rows asked for, so memory stays at one chunk plus
        the answer however large the cache grows. Only chunks that serve a wanted text are read whole and
        verified; a damaged one is quarantined and its texts reported missing (so they are recomputed).
        """
        hashes = np.asarray(hashes, dtype=f"S{_HASH_BYTES}")
        n = len(hashes)
        found = np.zeros(n, dtype=bool)
        vectors = np.zeros((n, dim), dtype=np.float32)
        if n == 0:
            return found, vectors
        want, inverse = np.unique(hashes, return_inverse=True)
        got = np.zeros(len(want), dtype=bool)
        rows = np.zeros((len(want), dim), dtype=np.float32)
        for path in self._chunks(key):
            try:
                with np.load(path, allow_pickle=False) as z:
                    h = z["hashes"]  # a first look: chunks that serve nothing are not read further
                    if h.ndim != 1 or h.dtype != want.dtype:
                        raise DamagedFileError(path, f"hashes are {h.dtype}{h.shape}, not S{_HASH_BYTES} digests")
                    pos = np.minimum(np.searchsorted(want, h), len(want) - 1)
                    if not ((want[pos] == h) & ~got[pos]).any():
                        continue
                    arrays = {k: h if k == "hashes" else z[k] for k in z.files}
                h, v = _chunk_arrays(path, verified(path, arrays), dim)  # checksum (or, for old chunks, shapes)
            except FileNotFoundError:
                continue  # moved or cleared by another process meanwhile
            except READ_ERRORS as e:
                reason = e.reason if isinstance(e, DamagedFileError) else f"unreadable ({type(e).__name__}: {e})"
                quarantine(path, reason, "its texts are embedded again", stacklevel=2)
                continue
            hit = (want[pos] == h) & ~got[pos]
            rows[pos[hit]] = v[hit]
            got[pos[hit]] = True
            if got.all():
                break
        found[:] = got[inverse]
        vectors[:] = rows[inverse]
        return found, vectors

    def write_chunk(self, key: dict[str, Any], hashes: np.ndarray, vectors: np.ndarray) -> Path:
        """Store one chunk atomically and checksummed (:func:`balpm.safeio.save_npz`)."""
        folder = self.folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        meta = folder / "key.json"
        if not meta.exists():
            atomic_write_bytes(meta, json.dumps(key, indent=1, sort_keys=True).encode())
        name = f"chunk-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.npz"
        save_npz(folder / name, {"hashes": np.asarray(hashes, dtype=f"S{_HASH_BYTES}"),
                                 "vectors": np.ascontiguousarray(vectors, dtype=np.float32)})
        return folder / name

    def embed(
        self,
        embedder: Embedder,
        texts: Sequence[str],
        progress: Progress | None = None,
        chunk_size: int = CHUNK_SIZE,
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Vectors for ``texts`` (float32, input order), encoding only the texts not cached yet.

        New vectors are written in chunks of ``chunk_size`` texts as each completes, so an interrupted call
        (an exception, Ctrl-C, a closed browser tab) resumes from its last finished chunk.
        Returns ``(vectors, stats)`` with stats ``texts`` (unique), ``cached``, ``computed``, ``seconds``.
        """
        t0 = time.perf_counter()
        texts = list(texts)
        hashes = _hash_array(texts)
        uniq, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
        key = embedder.cache_key
        found, vecs = self.lookup(key, uniq, embedder.dim)
        missing = np.flatnonzero(~found)
        total, cached = len(uniq), int(found.sum())
        if progress is not None and total:
            progress(cached, total)  # shows at once how much the cache already holds
        done = cached
        for s in range(0, len(missing), chunk_size):
            part = missing[s : s + chunk_size]
            base = done

            def _p(d: int, _n: int, base: int = base) -> None:
                if progress is not None:
                    progress(base + d, total)

            v = embedder.encode([texts[first[j]] for j in part], progress=_p)
            self.write_chunk(key, uniq[part], v)
            vecs[part] = v
            done += len(part)
        stats = {"texts": total, "cached": cached, "computed": int(len(missing)),
                 "seconds": time.perf_counter() - t0}
        return vecs[inverse.reshape(-1)], stats

    def clear(self, key: dict[str, Any] | None = None) -> None:
        """Delete one namespace (or the whole embedding cache)."""
        import shutil

        target = self.folder(key) if key is not None else self.directory / "embeddings"
        shutil.rmtree(target, ignore_errors=True)


def _chunk_arrays(path: Path, z: dict[str, np.ndarray], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(hashes, vectors)`` of a verified chunk; :class:`balpm.safeio.DamagedFileError` if they do not fit.

    Chunks written before checksums existed carry none: their shapes are checked instead (one ``S32`` hash per
    row of ``dim`` float32 values), so an old cache keeps serving without a recompute.
    """
    if "hashes" not in z or "vectors" not in z:
        raise DamagedFileError(path, f"holds {sorted(z)}, not hashes and vectors")
    h, v = z["hashes"], z["vectors"]
    if h.ndim != 1 or h.dtype != np.dtype(f"S{_HASH_BYTES}") or v.shape != (len(h), dim) or v.dtype != np.float32:
        raise DamagedFileError(path, f"hashes {h.dtype}{h.shape} and vectors {v.dtype}{v.shape} do not fit "
                                     f"a chunk of {dim}-d vectors")
    return h, v
