"""2-D projections of a pool's prompt embeddings (UMAP) for the app's feature-space page, cached on disk.

Why a disk cache: a UMAP fit of a few thousand points costs seconds to tens of seconds on a laptop CPU (plus the
numba compilation of the first call in a process), and the page is opened again and again on the same pool.
The projection only depends on the vectors and the parameters, so it is fitted once per (embedding model, pool
ids, parameters) and read back afterwards, across reruns, sessions and server restarts. The file is written
atomically with a checksum (:mod:`balpm.safeio`); a damaged one is quarantined with one warning and refit.

Past ``max_points`` a seeded uniform sample of the rows is projected (and the caller is told which rows), because
UMAP's cost grows with N and a browser cannot usefully draw hundreds of thousands of WebGL markers anyway.

No streamlit here (the engine never imports it); the page adds ``st.cache_data`` on top of :func:`umap_coords`.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from balpm.safeio import DamagedFileError, ids_digest, load_npz, quarantine, save_npz

if TYPE_CHECKING:
    from balpm.embed import PoolEmbeddings

__all__ = ["umap_coords", "projection_cache_path", "sample_rows", "LAST_STATS"]

_FORMAT_VERSION = 1

#: What the last :func:`umap_coords` call in this process did (``cached``, ``seconds``, ``n``, ``path``): the page
#: shows it and tests read it, so neither has to time the call itself.
LAST_STATS: dict[str, Any] = {}


def _vectors_digest(x: np.ndarray) -> str:
    """Fingerprint of the vectors themselves: the same ids re-embedded with other settings must not hit."""
    return hashlib.sha256(np.ascontiguousarray(x, dtype=np.float32).tobytes()).hexdigest()


def sample_rows(n: int, max_points: int | None, seed: int) -> np.ndarray:
    """Sorted row indices of the points to project: all of them, or a seeded sample of ``max_points``."""
    if max_points is None or max_points <= 0 or n <= max_points:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng([int(seed), 7919])
    return np.sort(rng.choice(n, size=int(max_points), replace=False)).astype(np.int64)


def projection_cache_path(
    embeddings: PoolEmbeddings,
    *,
    seed: int,
    n_neighbors: int,
    min_dist: float,
    max_points: int | None,
    metric: str = "cosine",
    cache_dir: str | os.PathLike[str] | None = None,
) -> Path:
    """The cache file of one projection: keyed by model id, the ids' hash and every parameter."""
    if cache_dir is None:
        from balpm.embed import default_cache_dir

        cache_dir = Path(default_cache_dir()) / "umap"
    params = {"seed": int(seed), "n_neighbors": int(n_neighbors), "min_dist": float(min_dist),
              "max_points": None if not max_points else int(max_points), "metric": str(metric),
              "v": _FORMAT_VERSION}
    h = hashlib.sha256()
    h.update(str(getattr(embeddings, "model_id", "")).encode())
    h.update(ids_digest(np.asarray(embeddings.ids)).encode())
    h.update(json.dumps(params, sort_keys=True).encode())
    return Path(cache_dir) / f"umap-{h.hexdigest()[:24]}.npz"


def _fit_umap(x: np.ndarray, seed: int, n_neighbors: int, min_dist: float, metric: str) -> np.ndarray:
    """One UMAP fit → (n, 2) float32. Separate so tests can count fits."""
    n = len(x)
    if n == 0:
        return np.zeros((0, 2), np.float32)
    if n < 4:  # UMAP needs a neighbourhood graph; a handful of points is laid out on a line
        return np.column_stack([np.arange(n, dtype=np.float32), np.zeros(n, np.float32)])
    import umap  # slow import (numba): only when a fit is needed

    reducer = umap.UMAP(
        n_components=2,
        n_neighbors=int(max(2, min(n_neighbors, n - 1))),
        min_dist=float(min_dist),
        metric=metric,
        random_state=int(seed),  # reproducible layouts; UMAP is then single-threaded anyway
        n_jobs=1,
        init="spectral" if n > 16 else "random",
    )
    return np.asarray(reducer.fit_transform(np.asarray(x, dtype=np.float32)), dtype=np.float32)


def umap_coords(
    embeddings: PoolEmbeddings,
    seed: int = 0,
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    max_points: int | None = 50_000,
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    metric: str = "cosine",
) -> tuple[np.ndarray, np.ndarray]:
    """UMAP of the prompt embeddings of a pool, from the disk cache or fitted once and cached.

    Parameters
    ----------
    embeddings : PoolEmbeddings
        Uses ``.prompt`` (N, d), ``.ids`` (N,) and ``.model_id``.
    seed, n_neighbors, min_dist, metric
        UMAP parameters (``seed`` also draws the sample).
    max_points : int or None
        Past this many rows a seeded sample is projected; None or 0: always all rows.
    cache_dir : path, optional
        Default ``<balpm cache>/umap``. An unwritable folder is not an error (the fit is just not kept).

    Returns
    -------
    coords : (M, 2) float32
        Row ``j`` is the position of pool row ``sample_index[j]``.
    sample_index : (M,) int64
        Sorted pool rows that were projected (``arange(N)`` when ``N ≤ max_points``).
    """
    x_all = np.asarray(embeddings.prompt)
    n = len(x_all)
    if len(np.asarray(embeddings.ids)) != n:
        raise ValueError("embeddings.ids and embeddings.prompt disagree in length")
    index = sample_rows(n, max_points, seed)
    x = x_all[index]
    digest = _vectors_digest(x)
    path = projection_cache_path(embeddings, seed=seed, n_neighbors=n_neighbors, min_dist=min_dist,
                                 max_points=max_points, metric=metric, cache_dir=cache_dir)
    t0 = time.perf_counter()
    try:
        z = load_npz(path, required=("coords", "index", "digest"))
        if str(z["digest"]) == digest and np.array_equal(z["index"], index) and z["coords"].shape == (len(index), 2):
            coords = z["coords"].astype(np.float32)
            LAST_STATS.clear()
            LAST_STATS.update(cached=True, seconds=time.perf_counter() - t0, n=len(index), path=str(path))
            return coords, index
    except DamagedFileError as e:
        quarantine(path, e.reason, "the map is refit")
    except OSError:
        pass  # missing or unreadable: refit
    coords = _fit_umap(x, seed, n_neighbors, min_dist, metric)
    seconds = time.perf_counter() - t0
    try:
        save_npz(path, {"coords": coords, "index": index, "digest": np.array(digest)})
    except OSError:
        pass  # read-only cache: keep the result in memory only
    LAST_STATS.clear()
    LAST_STATS.update(cached=False, seconds=seconds, n=len(index), path=str(path))
    return coords, index
