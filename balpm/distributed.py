"""Past one machine: embedding on a Ray cluster, and out-of-core pools (memory-mapped embeddings, chunked scoring).

Ray engine (:func:`embed_pool_ray`, :func:`embed_texts_ray`)
------------------------------------------------------------
The pool's texts are the local engine's (:func:`pool_texts_ray`: a conversational pool goes through the workers'
model's chat template). The driver deduplicates them, hashes them and asks the
:class:`balpm.embed.EmbeddingCache` which are already cached; only the missing ones go to Ray. They become a Ray
Data dataset of ``(row, text)`` blocks of ``chunk_size`` texts (``ray.data.from_items``, built on the driver: no
read tasks), mapped by :class:`_EmbedReplica` — a callable class holding one :class:`balpm.embed.Embedder` per
actor (``concurrency=num_workers``; ``num_gpus=1`` per replica when the cluster has GPUs, else
``num_cpus_per_worker`` CPUs and as many torch threads). Every finished block comes back to the driver, which
writes it as one cache chunk (the very format and atomic ``os.replace`` of the local engine) before asking for the
next. Hence:

- a worker that dies mid-block is restarted by Ray (``max_restarts``) and its block re-run (``max_task_retries``);
- a driver that dies keeps every chunk it wrote: the rerun skips those texts (they are cache hits);
- the cache needs no shared filesystem: workers never touch it (one writer, the driver). Vectors travel back
  through the object store (1.5 KB per text at d = 384, far less than the text sent out).

The cache key depends on where the vectors are computed (bf16 on GPU, fp32 on CPU), so the driver learns it
from a one-off probe task with the workers' resources (one extra model load) instead of guessing it locally, and
every block carries its worker's cache namespace, checked against the probe's (a mixed-GPU cluster that would
pick different dtypes must pass ``dtype=`` explicitly).

Out-of-core pools
-----------------
A 1M-pair pool at d = 384 is 4.6 GB of float32 (prompt, a, b). :func:`save_pool_embeddings` writes a folder of
plain ``.npy`` files that :func:`load_pool_embeddings` memory-maps (``.npz``, the format of
``PoolEmbeddings.save``, cannot be memory-mapped); :func:`chunked_uncertainty` scores the pool with a
:class:`balpm.model.PreferenceEnsemble` in row chunks, keeping only ``(N,)`` results; ``balpm.neighbors``
already reads memmaps in chunks and switches to an approximate index (IVF) past its ``approx_threshold``
(:func:`balpm.neighbors.graph_fidelity` checks its radii and balls against exact search). Figures:
``benchmarks/scale.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from balpm.embed import (
    CHUNK_SIZE,
    EmbeddingCache,
    PoolEmbeddings,
    Progress,
    _hash_array,
    pool_embeddings_from,
    pool_texts,
)
from balpm.vectors import conversational

if TYPE_CHECKING:  # annotations only
    from balpm.data import PreferencePool
    from balpm.model import PreferenceEnsemble

__all__ = [
    "embed_texts_ray",
    "embed_pool_ray",
    "pool_texts_ray",
    "ray_available",
    "save_pool_embeddings",
    "load_pool_embeddings",
    "chunked_uncertainty",
]


def ray_available() -> bool:
    """Whether ``ray.data`` imports (Ray is an optional dependency: ``requirements-ray.txt`` / ``.[ray]``)."""
    try:
        import ray.data  # noqa: F401
    except ImportError:
        return False
    return True


# ---------------------------------------------------------------------------------------------------- Ray


def _namespace(key: dict[str, Any]) -> str:
    return EmbeddingCache.namespace(key)


#: a marker file path; when set, one replica of the next Ray run kills itself once (tests and drills)
CRASH_ONCE_ENV = "BALPM_RAY_CRASH_ONCE"


class _EmbedReplica:
    """One :class:`Embedder` per Ray actor; ``__call__`` embeds one block of ``{"row", "text"}``.

    ``crash_once`` (set from the environment variable :data:`CRASH_ONCE_ENV`) is a fault-injection hook for
    tests and drills: the first replica to see a batch while the marker file does not exist creates it and kills
    its own process (``os._exit``), as a lost node would.
    """

    def __init__(self, embedder_kwargs: dict[str, Any], threads: int | None = None,
                 crash_once: str | None = None) -> None:
        import torch

        from balpm.embed import Embedder

        if threads:
            torch.set_num_threads(int(threads))
        self.embedder = Embedder(**embedder_kwargs)
        self.ns = _namespace(self.embedder.cache_key)
        self.crash_once = crash_once

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if self.crash_once is not None:
            try:
                fd = os.open(self.crash_once, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                pass
            else:
                os.write(fd, f"{os.getpid()}\n".encode())
                os.close(fd)
                os._exit(1)
        texts = [str(t) for t in batch["text"]]
        vectors = self.embedder.encode(texts)
        return {"row": np.asarray(batch["row"], dtype=np.int64), "vector": vectors,
                "ns": np.array([self.ns] * len(texts))}


def _probe(embedder_kwargs: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Cache key and width of the embedder as the workers will build it (runs as a Ray task on a worker)."""
    from balpm.embed import Embedder

    e = Embedder(**embedder_kwargs)
    return e.cache_key, e.dim


_PROBED: dict[tuple, tuple[dict[str, Any], int]] = {}
"""Probe answers per (Ray job, embedder kwargs, replica resources, local weights fingerprint): a second run on
the same cluster skips the extra model load; changed weights on disk change the fingerprint and probe again."""


def _cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))


def embed_texts_ray(
    texts: Sequence[str],
    embedder_kwargs: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike | None | Literal[False] = None,
    *,
    address: str | None = None,
    num_workers: int = 2,
    num_cpus_per_worker: float = 1.0,
    use_gpus: bool | None = None,
    chunk_size: int = CHUNK_SIZE,
    max_restarts: int = 3,
    max_task_retries: int = 3,
    progress: Progress | None = None,
    ray_init_kwargs: dict[str, Any] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Embed texts on a Ray cluster through the shared cache format; returns ``(vectors, stats)`` like
    :func:`balpm.embed.embed_texts`.

    Parameters
    ----------
    texts
        Texts to embed (duplicates are embedded once).
    embedder_kwargs
        Keyword arguments of :class:`balpm.embed.Embedder`, built on each worker (``device`` is set to
        ``"cuda"`` when replicas get a GPU, ``"cpu"`` otherwise, unless given).
    cache_dir
        Cache folder on the driver (None = ``default_cache_dir()``, False = no cache). Workers never read or
        write it, so it need not be shared between nodes.
    address
        Ray cluster address (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``); None joins the Ray already
        initialised in this process or starts a local one (shut down again at the end).
    num_workers
        Embedder replicas (Ray actors).
    num_cpus_per_worker
        CPUs reserved per replica when it has no GPU (also its torch thread count).
    use_gpus
        One GPU per replica; None = whenever the cluster reports GPUs.
    chunk_size
        Texts per Ray input block and per ``map_batches`` batch (the unit of retry); every output block Ray
        hands back (one batch, or a few small ones merged) is written as one cache chunk (the unit of resumption).
    max_restarts, max_task_retries
        Ray actor restarts and block retries after a replica dies (finite so a crash loop fails, not hangs).
    progress
        ``progress(done, total)`` over unique texts, after each block written.
    ray_init_kwargs
        Extra ``ray.init`` arguments when this call starts or joins the cluster.

    Returns
    -------
    vectors : (len(texts), d) float32 in input order
    stats : dict with ``texts`` (unique), ``cached``, ``computed``, ``seconds``, ``engine`` (``"ray"``),
        ``workers``, ``gpus_per_worker``, ``probe_seconds``, ``blocks``.
    """
    t0 = time.perf_counter()
    texts = _check_ray_inputs(texts, num_workers, chunk_size)
    with _ray_joined(address, ray_init_kwargs):
        gpus, res, kw = _replica_resources(embedder_kwargs, use_gpus, num_cpus_per_worker)
        uniq, first, inverse = np.unique(_hash_array(texts), return_index=True, return_inverse=True)
        cache = None if cache_dir is False else EmbeddingCache(cache_dir)
        t_probe = time.perf_counter()
        key, dim, model_id, found, vecs = _probe_and_look_up(kw, res, cache, uniq, max_task_retries)
        probe_s = time.perf_counter() - t_probe
        missing = np.flatnonzero(~found)
        total, cached = len(uniq), int(found.sum())
        if progress is not None:
            progress(cached, total)
        n_blocks = 0
        if len(missing):
            ds = _embedding_dataset([texts[first[j]] for j in missing], missing, kw, res,
                                    threads=None if gpus else max(1, int(num_cpus_per_worker)),
                                    chunk_size=chunk_size, num_workers=num_workers, max_restarts=max_restarts,
                                    max_task_retries=max_task_retries)
            vecs, n_blocks = _collect_blocks(ds, key, cache, uniq, found, vecs, progress)
        if vecs is None:  # no texts at all, cache bypassed
            vecs = np.zeros((0, 0), np.float32)
        stats = {"texts": total, "cached": cached, "computed": int(len(missing)),
                 "seconds": time.perf_counter() - t0, "engine": "ray", "workers": int(num_workers),
                 "gpus_per_worker": 1 if gpus else 0, "probe_seconds": probe_s, "blocks": n_blocks,
                 "model_id": model_id}
        return vecs[inverse.reshape(-1)], stats


@contextmanager
def _ray_joined(address: str | None, ray_init_kwargs: dict[str, Any] | None) -> Iterator[None]:
    """Ray, joined or started for the block: started here (``ray.init``) means shut down again on the way out."""
    import ray

    os.environ.setdefault("RAY_DISABLE_USAGE_STATS", "1")
    started = False
    if not ray.is_initialized():
        ray.init(**({"address": address, "include_dashboard": False, "log_to_driver": False}
                    | dict(ray_init_kwargs or {})))
        started = True
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _replica_resources(embedder_kwargs: dict[str, Any] | None, use_gpus: bool | None,
                       num_cpus_per_worker: float) -> tuple[bool, dict[str, Any], dict[str, Any]]:
    """``(gpus, Ray resources per replica, embedder kwargs)``: one GPU each when asked or when the cluster has
    any (device "cuda"), else ``num_cpus_per_worker`` CPUs (device "cpu"), unless the kwargs name a device."""
    gpus = _cluster_gpus() > 0 if use_gpus is None else bool(use_gpus)
    kw = dict(embedder_kwargs or {})
    kw.setdefault("device", "cuda" if gpus else "cpu")
    return gpus, ({"num_gpus": 1} if gpus else {"num_cpus": num_cpus_per_worker}), kw

def _check_ray_inputs(texts: Sequence[str], num_workers: int, chunk_size: int) -> list[str]:
    """``texts`` as a list, after refusing what Ray would fail on later, far from the cause: a non-text, no
    worker, an empty chunk."""
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts[{i}] is {type(t).__name__}, expected str")
    if num_workers < 1:
        raise ValueError(f"num_workers must be >= 1, got {num_workers}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return texts


def _probe_and_look_up(
    kw: dict[str, Any], res: dict[str, Any], cache: EmbeddingCache | None, uniq: np.ndarray, max_task_retries: int
) -> tuple[dict[str, Any] | None, int | None, str, np.ndarray, np.ndarray | None]:
    """The workers' cache key (from a probe task with their resources, memoised per job) and the cache hits.

    Returns ``(key, dim, model_id, found (len(uniq),) bool, vectors of the hits or None)``; key and dim are None
    when there is no cache or nothing to embed.
    """
    import ray

    key: dict[str, Any] | None = None
    dim: int | None = None
    if cache is not None and len(uniq):
        memo = (ray.get_runtime_context().get_job_id(), json.dumps(kw, sort_keys=True, default=str),
                json.dumps(res, sort_keys=True), _local_model_id(kw))
        if memo not in _PROBED:
            _PROBED[memo] = ray.get(ray.remote(**res)(_probe).options(max_retries=max_task_retries).remote(kw))
        key, dim = _PROBED[memo]
        found, vecs = cache.lookup(key, uniq, dim)
    else:
        found, vecs = np.zeros(len(uniq), bool), None
    model_id = key["model_id"] if key is not None else _local_model_id(kw)
    if model_id is None:  # a hub model without cache: ask a worker what it loaded
        model_id = ray.get(ray.remote(**res)(_probe).remote(kw))[0]["model_id"]
    return key, dim, model_id, found, vecs


def _embedding_dataset(texts: list[str], rows: np.ndarray, kw: dict[str, Any], res: dict[str, Any], *,
                       threads: int | None, chunk_size: int, num_workers: int, max_restarts: int,
                       max_task_retries: int) -> Any:
    """The Ray Data pipeline: ``(row, text)`` blocks of ``chunk_size`` mapped by a pool of :class:`_EmbedReplica`.

    The crash drill of :class:`_EmbedReplica` is armed by the environment variable :data:`CRASH_ONCE_ENV` (a
    marker file path), read here on the driver, so no test hook sits in the public signature.
    """
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = False
    items = [{"row": int(j), "text": t} for j, t in zip(rows, texts)]
    with warnings.catch_warnings():
        # Ray 2.60 names no parameter for actor restarts/retries yet; the **ray_remote_args path warns
        warnings.filterwarnings("ignore", message=".*ray_remote_args.*deprecated")
        return ray.data.from_items(items, override_num_blocks=-(-len(items) // chunk_size)).map_batches(
            _EmbedReplica,
            fn_constructor_kwargs={"embedder_kwargs": kw, "threads": threads,
                                   "crash_once": os.environ.get(CRASH_ONCE_ENV) or None},
            batch_size=chunk_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=int(num_workers)),
            max_restarts=int(max_restarts),
            max_task_retries=int(max_task_retries),
            **res,
        )


def _collect_blocks(ds: Any, key: dict[str, Any] | None, cache: EmbeddingCache | None, uniq: np.ndarray,
                    found: np.ndarray, vecs: np.ndarray | None, progress: Progress | None) -> tuple[np.ndarray, int]:
    """Write each block Ray hands back as one cache chunk and into ``vecs`` (``found`` updated in place).

    Returns ``(vecs, blocks)``. Raises RuntimeError when a worker used another cache namespace than the probe or
    Ray lost a block without raising (never return zeros as vectors).
    """
    total = len(uniq)
    done, n_blocks = int(found.sum()), 0
    expect_ns = _namespace(key) if key is not None else None
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy", prefetch_batches=1):
        rows = np.asarray(batch["row"], dtype=np.int64)
        v = np.asarray(batch["vector"], dtype=np.float32)
        ns = {str(x) for x in batch["ns"]}
        if expect_ns is not None and ns != {expect_ns}:
            raise RuntimeError(
                f"a worker computed under cache namespace {sorted(ns)} but the probe under {expect_ns}: "
                "the replicas differ (e.g. GPUs picking different dtypes); pass dtype= explicitly"
            )
        if vecs is None:
            vecs = np.zeros((total, v.shape[1]), np.float32)
        if cache is not None:
            cache.write_chunk(key, uniq[rows], v)
        vecs[rows] = v
        found[rows] = True
        done += len(rows)
        n_blocks += 1
        if progress is not None:
            progress(done, total)
    if not found.all():
        raise RuntimeError(f"Ray returned {int(found.sum())} of {total} texts")
    return vecs, n_blocks


def embed_pool_ray(
    pool: PreferencePool,
    embedder_kwargs: dict[str, Any] | None = None,
    cache_dir: str | os.PathLike | None | Literal[False] = None,
    *,
    address: str | None = None,
    num_workers: int = 2,
    progress: Progress | None = None,
    **kwargs: Any,
) -> PoolEmbeddings:
    """:func:`balpm.embed.embed_pool` on a Ray cluster: same :class:`PoolEmbeddings`, same cache.

    ``embedder_kwargs`` are :class:`balpm.embed.Embedder` arguments (an Embedder object is not shipped: each
    worker builds its own). Other keyword arguments go to :func:`embed_texts_ray`.
    """
    kw = dict(embedder_kwargs or {})
    with _ray_joined(address, kwargs.get("ray_init_kwargs")):
        texts = pool_texts_ray(pool, kw, use_gpus=kwargs.get("use_gpus"))
        vecs, stats = embed_texts_ray(texts, kw, cache_dir, address=address, num_workers=num_workers,
                                      progress=progress, **kwargs)
    return pool_embeddings_from(pool, vecs, str(stats.pop("model_id")), stats)


def _pool_texts_task(embedder_kwargs: dict[str, Any], pool: PreferencePool) -> list[str]:
    """:func:`balpm.embed.pool_texts` with the Embedder a replica builds (runs as a Ray task on a worker)."""
    from balpm.embed import Embedder

    return pool_texts(pool, Embedder(**embedder_kwargs))


def pool_texts_ray(pool: PreferencePool, embedder_kwargs: dict[str, Any] | None = None, *,
                   use_gpus: bool | None = None) -> list[str]:
    """What the Ray engine embeds for ``pool``: :func:`balpm.embed.pool_texts` with the workers' embedder, the same
    texts as the local engine's (:func:`balpm.embed.embed_pool`).

    A conversational pool's texts depend on the model (a decoder's chat template), which only a worker loads: they
    are built by one task on a worker with a replica's resources (one extra model load, the pool shipped once).
    Every other pool's are the plain texts, built here. Needs Ray joined (:func:`embed_pool_ray` does it).
    """
    if not conversational(pool):
        return pool_texts(pool)
    import ray

    _, res, kw = _replica_resources(embedder_kwargs, use_gpus, 1.0)
    return ray.get(ray.remote(**res)(_pool_texts_task).remote(kw, pool))


def _local_model_id(kw: dict[str, Any]) -> str | None:
    """``Embedder.model_id`` of a local model without loading it (name + weights fingerprint); None for hub names."""
    from balpm.embed import _folder_fingerprint, _resolve_model

    spec = _resolve_model(kw.get("model", "default"))
    if spec.local:
        return f"{spec.name}@{_folder_fingerprint(Path(spec.path), spec.gguf_file)}"
    return None


# ------------------------------------------------------------------------------------------ out of core

_NPY_ARRAYS = ("ids", "prompt", "a", "b")


def save_pool_embeddings(emb: PoolEmbeddings, folder: str | os.PathLike, chunk_rows: int = 65536) -> Path:
    """Write ``folder/{ids,prompt,a,b}.npy`` + ``meta.json``, memory-mappable by :func:`load_pool_embeddings`.

    Arrays are streamed in row chunks (the source may itself be a memmap larger than RAM); the folder is built
    under a temporary name and renamed into place, so a reader never sees half of it.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".tmp-{folder.name}-"))
    try:
        np.save(tmp / "ids.npy", np.asarray(emb.ids).astype(str))
        for name in ("prompt", "a", "b"):
            src = getattr(emb, name)
            out = np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=np.float32, shape=src.shape)
            for s in range(0, src.shape[0], chunk_rows):
                out[s : s + chunk_rows] = src[s : s + chunk_rows]
            out.flush()
            del out
        (tmp / "meta.json").write_text(json.dumps({"model_id": emb.model_id, "stats": emb.stats}, default=str))
        if folder.exists():
            old = folder.with_name(f".old-{folder.name}-{os.getpid()}")
            os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def load_pool_embeddings(path: str | os.PathLike, mmap_mode: Literal["r", "r+", "c"] | None = "r") -> PoolEmbeddings:
    """Load a folder written by :func:`save_pool_embeddings` (memory-mapped by default) or a ``.npz``.

    With ``mmap_mode`` the vectors stay on disk and pages are read on access, so a pool larger than RAM can be
    scored and searched chunk by chunk. An ``.npz`` (``PoolEmbeddings.save``) is always read into memory.
    """
    path = Path(path)
    if path.is_file():
        return PoolEmbeddings.load(path)
    meta = json.loads((path / "meta.json").read_text())
    arrs = {name: np.load(path / f"{name}.npy", mmap_mode=None if name == "ids" else mmap_mode,
                          allow_pickle=False) for name in _NPY_ARRAYS}
    return PoolEmbeddings(ids=arrs["ids"], prompt=arrs["prompt"], a=arrs["a"], b=arrs["b"],
                          model_id=str(meta["model_id"]), stats=dict(meta.get("stats", {})))


def chunked_uncertainty(
    ensemble: PreferenceEnsemble, emb_a: np.ndarray, emb_b: np.ndarray, chunk_rows: int = 65536,
    progress: Progress | None = None,
) -> dict[str, np.ndarray]:
    """BALD and friends of every pair, scored ``chunk_rows`` pairs at a time (inputs may be memmaps).

    Only the ``(N,)`` outputs of :func:`balpm.uncertainty.summarize` are kept, never the ``(E, N)`` member
    probabilities of the whole pool nor more than one chunk of embeddings.
    """
    from balpm.uncertainty import summarize

    n = emb_a.shape[0]
    out: dict[str, np.ndarray] = {}
    for s in range(0, n, chunk_rows):
        a = np.ascontiguousarray(emb_a[s : s + chunk_rows], dtype=np.float32)
        b = np.ascontiguousarray(emb_b[s : s + chunk_rows], dtype=np.float32)
        part = summarize(ensemble.predict_member_proba(a, b))
        for k, v in part.items():
            if k not in out:
                out[k] = np.empty(n, dtype=np.asarray(v).dtype)
            out[k][s : s + len(a)] = v
        if progress is not None:
            progress(min(n, s + chunk_rows), n)
    return out
