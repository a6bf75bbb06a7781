"""Your own embeddings (issue 11 item 3): vectors read from Parquet, .npz or a folder of .npy, checked and located."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from balpm.data import load_pool
from balpm.embed import PoolEmbeddings
from balpm.vectors import VectorFileError


@pytest.fixture(scope="module")
def pool():
    return load_pool("sample:qa-feedback").subset(np.arange(40))


def _vectors(ids: np.ndarray, d: int = 6, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.normal(size=(len(ids), d)).astype(np.float32) for k in ("prompt", "a", "b")}


def _parquet(path: Path, ids, v: dict[str, np.ndarray]) -> Path:
    pd.DataFrame({"id": ids, **{k: list(x) for k, x in v.items()}}).to_parquet(path)
    return path


def test_vectors_from_every_layout_follow_the_pool_order(pool, tmp_path: Path) -> None:
    ids = np.asarray(pool.ids).astype(str)
    extra = np.array([f"other-{i}" for i in range(5)])
    all_ids = np.concatenate([ids, extra])
    v = _vectors(all_ids)
    order = np.random.default_rng(1).permutation(len(all_ids))  # any row order, more pairs than the pool
    shuffled = {k: x[order] for k, x in v.items()}
    pq = _parquet(tmp_path / "v.parquet", all_ids[order], shuffled)
    npz = tmp_path / "v.npz"
    np.savez(npz, ids=all_ids[order], **shuffled)
    folder = tmp_path / "vecs"
    folder.mkdir()
    (folder / "ids.txt").write_text("\n".join(all_ids[order]) + "\n", encoding="utf-8")
    for k, x in shuffled.items():
        np.save(folder / f"{k}.npy", x)
    got = [PoolEmbeddings.from_file(f, pool) for f in (pq, npz, folder)]
    for emb in got:
        assert list(emb.ids) == list(ids) and emb.dim == 6
        for k in ("prompt", "a", "b"):
            np.testing.assert_array_equal(getattr(emb, k), v[k][: len(ids)])
        assert emb.model_id.startswith("file:")
    assert len({e.model_id for e in got}) == 3  # each file its own identity
    v2 = {k: x.copy() for k, x in shuffled.items()}
    v2["a"][0, 0] += 1
    other = PoolEmbeddings.from_file(_parquet(tmp_path / "v2.parquet", all_ids[order], v2), pool)
    again = PoolEmbeddings.from_file(_parquet(tmp_path / "v3.parquet", all_ids[order], shuffled), pool)
    assert other.model_id.split("@")[1] != got[0].model_id.split("@")[1]  # other vectors: other identity
    assert again.model_id.split("@")[1] == got[0].model_id.split("@")[1]  # same bytes: same identity


def test_bad_vector_files_are_located(pool, tmp_path: Path) -> None:
    ids = np.asarray(pool.ids).astype(str)
    v = _vectors(ids)

    def err(path: Path) -> VectorFileError:
        with pytest.raises(VectorFileError) as e:
            PoolEmbeddings.from_file(path, pool)
        return e.value

    e = err(_parquet(tmp_path / "missing.parquet", ids[1:], {k: x[1:] for k, x in v.items()}))
    assert e.field == "id" and "1 of the pool's 40" in str(e) and ids[0] in str(e)
    nan = {k: x.copy() for k, x in v.items()}
    nan["b"][7, 2] = np.nan
    e = err(_parquet(tmp_path / "nan.parquet", ids, nan))
    assert (e.line, e.field) == (8, "b"), str(e)
    ragged = pd.DataFrame({"id": ids, **{k: list(x) for k, x in v.items()}})
    ragged.at[4, "a"] = v["a"][4][:5]
    ragged.to_parquet(tmp_path / "ragged.parquet")
    e = err(tmp_path / "ragged.parquet")
    assert (e.line, e.field) == (5, "a") and "fixed length" in str(e), str(e)
    np.savez(tmp_path / "dims.npz", ids=ids, prompt=v["prompt"], a=v["a"][:, :4], b=v["b"])
    assert "dimension" in str(err(tmp_path / "dims.npz"))
    twice = np.concatenate([ids, ids[:1]])
    e = err(_parquet(tmp_path / "twice.parquet", twice, _vectors(twice)))
    assert (e.line, e.field) == (41, "id"), str(e)
    np.savez(tmp_path / "noids.npz", prompt=v["prompt"], a=v["a"], b=v["b"])
    assert err(tmp_path / "noids.npz").field == "ids"


def test_cli_embed_from_file(pool, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from balpm.cli import main

    src = tmp_path / "pool.jsonl"
    pool.pairs[["id", "prompt", "completion_a", "completion_b", "label"]].to_json(src, orient="records", lines=True)
    ids = np.asarray(pool.ids).astype(str)
    v = _vectors(ids, d=3)
    f = _parquet(tmp_path / "v.parquet", ids, v)
    assert main(["embed", str(src), "--from-file", str(f), "--out", str(tmp_path / "out")]) == 0
    assert "dim 3" in capsys.readouterr().out
    emb = PoolEmbeddings.load(tmp_path / "out" / "embeddings.npz")
    np.testing.assert_array_equal(emb.b, v["b"])
    assert emb.model_id.startswith("file:v.parquet@")
    _parquet(tmp_path / "short.parquet", ids[:-1], {k: x[:-1] for k, x in v.items()})
    assert main(["embed", str(src), "--from-file", str(tmp_path / "short.parquet")]) == 2
    assert "short.parquet: field 'id': 1 of the pool's 40" in capsys.readouterr().err
