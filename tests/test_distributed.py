"""Ray engine vs local engine on real HH-RLHF texts, a worker killed mid-run, and the out-of-core helpers.

The Ray tests share one local 2-CPU cluster (loopback, no dashboard, 200 MB object store); each Ray run starts
its own actor pool, which is most of their time on a busy 2-core machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from balpm.data import load_pool
from balpm.distributed import (
    chunked_uncertainty,
    load_pool_embeddings,
    ray_available,
    save_pool_embeddings,
)
from balpm.embed import EmbeddingCache, Embedder, PoolEmbeddings, embed_pool, embed_texts

needs_ray = pytest.mark.skipif(not ray_available(), reason="ray[data] is not installed (pip install -r requirements-ray.txt)")
EMBEDDER = {"model": "default", "batch_size": 16}


@pytest.fixture(scope="module")
def hh_pool(sample_data: Path):
    """40 real HH-RLHF harmless-base pairs: 20 for each Ray test, ~60 distinct texts each."""
    return load_pool(sample_data / "hh-rlhf" / "harmless-base-sample.jsonl.gz").subset(np.arange(40))


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return Embedder("default", device="cpu", batch_size=16)


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray cluster with 2 CPUs on loopback, shut down whatever the tests did."""
    os.environ["RAY_DISABLE_USAGE_STATS"] = "1"
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    try:
        yield ray
    finally:
        ray.shutdown()


@needs_ray
@pytest.mark.ray
def test_ray_matches_local_resumes_from_and_feeds_the_same_cache(
    ray_cluster, hh_pool, minilm: Embedder, tmp_path: Path
) -> None:
    from balpm.distributed import embed_pool_ray

    pool = hh_pool.subset(np.arange(20))
    ref = embed_pool(pool, minilm, cache_dir=False)
    cache = tmp_path / "cache"
    # a previous (local) run got through a few prompts: Ray must only compute the rest
    embed_texts(list(pool.prompt_texts())[:8], minilm, cache_dir=cache)
    calls: list[tuple[int, int]] = []
    emb = embed_pool_ray(pool, EMBEDDER, cache_dir=cache, num_workers=2, chunk_size=16,
                         progress=lambda d, t: calls.append((d, t)))
    total = ref.stats["texts"]
    assert total >= 55
    assert (emb.stats["cached"], emb.stats["computed"]) == (8, total - 8)
    assert emb.stats["engine"] == "ray" and 1 <= emb.stats["blocks"] <= -(-(total - 8) // 16)
    assert calls[0] == (8, total) and calls[-1] == (total, total)  # Ray may merge small output blocks
    assert emb.model_id == minilm.model_id and list(emb.ids) == list(ref.ids)
    for name in ("prompt", "a", "b"):
        got, want = getattr(emb, name), getattr(ref, name)
        assert got.dtype == np.float32 and got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    # same cache format and key: the local engine now finds every text
    local = embed_pool(pool, minilm, cache_dir=cache)
    assert local.stats["computed"] == 0
    np.testing.assert_array_equal(local.a, emb.a)


@needs_ray
@pytest.mark.ray
def test_ray_run_survives_a_killed_worker(ray_cluster, hh_pool, minilm: Embedder, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from balpm.distributed import CRASH_ONCE_ENV, embed_pool_ray

    pool = hh_pool.subset(np.arange(20, 40))
    marker = tmp_path / "crashed"
    monkeypatch.setenv(CRASH_ONCE_ENV, str(marker))  # the drill is armed from outside the public signature
    emb = embed_pool_ray(pool, EMBEDDER, cache_dir=tmp_path / "cache", num_workers=2, chunk_size=16)
    assert marker.exists(), "no worker was killed: the test proves nothing"
    pid = int(marker.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # that worker process really is gone
    ref = embed_pool(pool, minilm, cache_dir=False)
    assert emb.stats["computed"] == ref.stats["texts"]
    for name in ("prompt", "a", "b"):
        np.testing.assert_allclose(getattr(emb, name), getattr(ref, name), atol=1e-5, rtol=0)
    # every block reached the cache exactly once per text
    texts = list(pool.prompt_texts()) + list(pool.pair_texts("a")) + list(pool.pair_texts("b"))
    found, _ = EmbeddingCache(tmp_path / "cache").lookup(minilm.cache_key,
                                                         np.unique([t for t in _hashes(texts)]), minilm.dim)
    assert found.all()


def _hashes(texts: list[str]) -> list[bytes]:
    from balpm.embed import text_hash

    return [text_hash(t) for t in texts]


def test_cli_accepts_engine_and_address() -> None:
    from balpm.cli import build_parser

    args = build_parser().parse_args(["embed", "pool.jsonl", "--engine", "ray", "--address", "auto",
                                      "--workers", "3"])
    assert (args.engine, args.address, args.workers) == ("ray", "auto", 3)
    assert build_parser().parse_args(["embed", "pool.jsonl"]).engine == "local"


@needs_ray
@pytest.mark.ray
def test_cli_ray_engine_prints_the_local_summary_line_and_writes_out(ray_cluster, tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``balpm embed --engine ray`` prints the local engine's line (one function prints both) plus where it ran."""
    import re

    from balpm.cli import main

    args = ["embed", "hh-rlhf:harmless-base", "--max-pairs", "4", "--out", str(tmp_path / "run"), "--quiet",
            "--cache-dir", str(tmp_path / "cache"), "--engine", "ray", "--workers", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"4 pairs -> 12 unique texts: 0 cached, 12 computed in \d+\.\d+s on Ray, 1 workers "
                        r"\(\d+\.\d texts/s\); dim 384", out[0]), out
    assert out[1] == f"wrote {tmp_path / 'run' / 'embeddings.npz'}"
    assert PoolEmbeddings.load(tmp_path / "run" / "embeddings.npz").a.shape == (4, 384)
    assert main(args[:2] + args[2:4] + args[6:]) == 0  # no --out: the same line, every text now cached
    assert re.fullmatch(r"4 pairs -> 12 unique texts: 12 cached, 0 computed in \d+\.\d+s on Ray, 1 workers "
                        r"\(all cached\); dim 384", capsys.readouterr().out.strip())


def _chat_decoder(tmp_path: Path) -> Path:
    """test_embed's tiny random decoder (MiniLM's tokenizer), given a chat template: a model whose texts differ from
    the plain rendering of a conversation."""
    from test_embed import _tiny_decoder  # the decoder helper of tests/test_embed.py
    from transformers import AutoTokenizer

    folder = _tiny_decoder(tmp_path, "llama")
    tok = AutoTokenizer.from_pretrained(folder)
    tok.chat_template = ("{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }} [/{{ m['role'] }}]{% endfor %}"
                         "{% if add_generation_prompt %}[assistant]{% endif %}")
    tok.save_pretrained(folder)
    return folder


@needs_ray
@pytest.mark.ray
def test_ray_embeds_a_conversational_pool_through_the_chat_template_as_local_does(ray_cluster, hh_pool,
                                                                                   tmp_path: Path) -> None:
    """Both engines embed ``pool_texts(pool, embedder)``: a conversational pool goes through a decoder's chat template
    on Ray too. Before, the Ray engine built ``pool_texts(pool)`` without the embedder (plain texts), so its vectors
    of a conversational pool differed from the local engine's."""
    import json

    from balpm.distributed import embed_pool_ray, pool_texts_ray
    from balpm.embed import pool_texts

    rows = [{"prompt": [{"role": "user", "content": p}], "chosen": [{"role": "assistant", "content": a}],
             "rejected": [{"role": "assistant", "content": b}]}  # real HH pairs in the trl conversational layout
            for p, a, b in hh_pool.pairs[["prompt", "completion_a", "completion_b"]].head(6).itertuples(index=False)]
    f = tmp_path / "chat.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pool = load_pool(f)
    model = _chat_decoder(tmp_path)
    local = Embedder(str(model), device="cpu", batch_size=8, max_length=64)
    want = pool_texts(pool, local)
    assert want != pool_texts(pool) and want[0].startswith("[user]")  # the template applies
    kw = {"model": str(model), "batch_size": 8, "max_length": 64}
    assert pool_texts_ray(pool, kw) == want
    assert pool_texts_ray(hh_pool, kw) == pool_texts(hh_pool)  # a plain pool: plain texts, no task
    ref = embed_pool(pool, local, cache_dir=False)
    emb = embed_pool_ray(pool, kw, cache_dir=False, num_workers=1)
    for name in ("prompt", "a", "b"):
        np.testing.assert_allclose(getattr(emb, name), getattr(ref, name), atol=1e-5, rtol=0)


# ------------------------------------------------------------------------------------------- out of core


def _synthetic_embeddings(n: int = 500, d: int = 16, seed: int = 0) -> PoolEmbeddings:
    rng = np.random.default_rng(seed)
    p = rng.normal(size=(n, d)).astype(np.float32)
    return PoolEmbeddings(ids=np.array([f"id{i}" for i in range(n)]), prompt=p,
                          a=p + rng.normal(size=p.shape).astype(np.float32),
                          b=p + rng.normal(size=p.shape).astype(np.float32), model_id="m@1", stats={"texts": 3 * n})


def test_pool_embeddings_round_trip_memory_mapped(tmp_path: Path) -> None:
    emb = _synthetic_embeddings()
    folder = save_pool_embeddings(emb, tmp_path / "emb", chunk_rows=64)
    back = load_pool_embeddings(folder)
    assert isinstance(back.prompt, np.memmap) and not back.prompt.flags.writeable
    for name in ("ids", "prompt", "a", "b"):
        np.testing.assert_array_equal(getattr(back, name), getattr(emb, name))
    assert back.model_id == "m@1" and back.stats == {"texts": 1500}
    save_pool_embeddings(emb.subset(np.arange(10)), folder)  # overwrite in place
    assert len(load_pool_embeddings(folder, mmap_mode=None)) == 10
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folders left behind


def test_chunked_uncertainty_equals_whole_pool_scoring() -> None:
    from balpm.model import PreferenceEnsemble
    from balpm.uncertainty import summarize

    emb = _synthetic_embeddings(300)
    labels = (np.random.default_rng(1).uniform(size=300) < 0.5).astype(float)
    ens = PreferenceEnsemble(n_members=3, hidden=(32,), max_epochs=2, seed=0).fit(emb.a, emb.b, labels)
    whole = summarize(ens.predict_member_proba(emb.a, emb.b))
    parts = chunked_uncertainty(ens, emb.a, emb.b, chunk_rows=64)
    assert set(parts) == set(whole)
    for k in whole:
        np.testing.assert_allclose(parts[k], whole[k], rtol=1e-12, atol=1e-12)


def test_graph_fidelity_recall_is_one_for_an_exact_graph_and_measured_for_hnsw() -> None:
    """What ``knn_recall_sample`` (folded into ``graph_fidelity``) measured, now read from ``graph_fidelity``."""
    from balpm.neighbors import build_knn_graph, graph_fidelity

    X = _synthetic_embeddings(2000, d=8).prompt
    exact = build_knn_graph(X, k=5, exact=True)
    assert graph_fidelity(X, exact, n_queries=200)["recall"] == 1.0  # ties at r_k count as found
    approx = build_knn_graph(X, k=5, exact=False, method="hnsw", ef_search=8, hnsw_m=4)
    r = graph_fidelity(X, approx, n_queries=200)
    assert 0.5 < r["recall"] < 1.0 and r["queries"] == 200
    assert -1e-5 < r["radius_err_median"] <= r["radius_err_p99"] <= r["radius_err_max"]  # r_k only grows
    assert 0 < r["radius_err_over_10pct"] < 1
