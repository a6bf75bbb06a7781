"""balpm.projection: the UMAP disk cache must really skip the fit, and large pools must be sampled."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from balpm import projection


def _emb(n: int, d: int = 16, seed: int = 0, model_id: str = "test-model") -> SimpleNamespace:
    """Three separated clusters, so UMAP has structure to find; ids as the pool would give them."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=6.0, size=(3, d))
    x = centers[np.arange(n) % 3] + rng.normal(size=(n, d))
    return SimpleNamespace(prompt=x.astype(np.float32), ids=np.array([f"id{i:05d}" for i in range(n)]),
                           model_id=model_id)


@pytest.fixture
def count_fits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record every real UMAP fit (by size) while still running it."""
    calls: list[int] = []
    real = projection._fit_umap

    def spy(x: np.ndarray, *a: object) -> np.ndarray:
        calls.append(len(x))
        return real(x, *a)

    monkeypatch.setattr(projection, "_fit_umap", spy)
    return calls


def test_cache_hit_returns_identical_coords_without_refit(tmp_path: Path, count_fits: list[int]) -> None:
    emb = _emb(120)
    coords, index = projection.umap_coords(emb, seed=3, n_neighbors=10, min_dist=0.1, cache_dir=tmp_path)
    assert count_fits == [120]
    assert coords.shape == (120, 2) and coords.dtype == np.float32 and np.isfinite(coords).all()
    np.testing.assert_array_equal(index, np.arange(120))
    assert projection.LAST_STATS["cached"] is False
    assert len(list(tmp_path.glob("umap-*.npz"))) == 1

    again, index2 = projection.umap_coords(emb, seed=3, n_neighbors=10, min_dist=0.1, cache_dir=tmp_path)
    assert count_fits == [120], "a cache hit must not refit"
    assert projection.LAST_STATS["cached"] is True
    np.testing.assert_array_equal(again, coords)
    np.testing.assert_array_equal(index2, index)


def test_cache_key_separates_params_model_and_vectors(tmp_path: Path, count_fits: list[int]) -> None:
    emb = _emb(60)
    projection.umap_coords(emb, seed=0, n_neighbors=8, cache_dir=tmp_path)
    projection.umap_coords(emb, seed=0, n_neighbors=9, cache_dir=tmp_path)  # other parameter
    projection.umap_coords(_emb(60, model_id="other-model"), seed=0, n_neighbors=8, cache_dir=tmp_path)
    assert len(count_fits) == 3
    # same ids and model id, other vectors (e.g. re-embedded with another max length): the stale file is refitted
    moved = _emb(60, seed=1)
    projection.umap_coords(moved, seed=0, n_neighbors=8, cache_dir=tmp_path)
    assert len(count_fits) == 4 and projection.LAST_STATS["cached"] is False
    projection.umap_coords(moved, seed=0, n_neighbors=8, cache_dir=tmp_path)
    assert len(count_fits) == 4 and projection.LAST_STATS["cached"] is True


def test_samples_past_max_points(tmp_path: Path, count_fits: list[int]) -> None:
    emb = _emb(300)
    coords, index = projection.umap_coords(emb, seed=5, n_neighbors=10, max_points=100, cache_dir=tmp_path)
    assert count_fits == [100]
    assert coords.shape == (100, 2) and index.shape == (100,)
    assert np.all(np.diff(index) > 0) and index.min() >= 0 and index.max() < 300  # sorted, unique, in range
    # the sample is a function of the seed: asking again (cache hit) and recomputing the sample agree
    _, index2 = projection.umap_coords(emb, seed=5, n_neighbors=10, max_points=100, cache_dir=tmp_path)
    np.testing.assert_array_equal(index2, index)
    np.testing.assert_array_equal(projection.sample_rows(300, 100, 5), index)
    assert count_fits == [100]
    # at or under the cap nothing is sampled
    np.testing.assert_array_equal(projection.sample_rows(100, 100, 5), np.arange(100))
    np.testing.assert_array_equal(projection.sample_rows(300, None, 5), np.arange(300))


def test_tiny_pools_and_corrupt_cache(tmp_path: Path) -> None:
    for n in (0, 1, 3):
        coords, index = projection.umap_coords(_emb(n), cache_dir=tmp_path)
        assert coords.shape == (n, 2) and len(index) == n
    emb = _emb(40)
    path = projection.projection_cache_path(emb, seed=0, n_neighbors=15, min_dist=0.1, max_points=50_000,
                                            cache_dir=tmp_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an npz")  # a torn write from another process must not break the page
    from balpm.safeio import DamagedFileWarning

    with pytest.warns(DamagedFileWarning, match="not an .npz file"):
        coords, _ = projection.umap_coords(emb, cache_dir=tmp_path)
    assert coords.shape == (40, 2) and projection.LAST_STATS["cached"] is False


@pytest.mark.parametrize("how", ["truncate", "flip"])
def test_damaged_cache_is_quarantined_once_and_refit(tmp_path: Path, count_fits: list[int], how: str) -> None:
    """Issue 10 case 9: a damaged UMAP cache raised BadZipFile into the Feature space page; now it heals."""
    import warnings

    from balpm.safeio import QUARANTINE_DIR, DamagedFileWarning

    emb = _emb(60)
    first, _ = projection.umap_coords(emb, seed=1, n_neighbors=10, cache_dir=tmp_path)
    path = Path(projection.LAST_STATS["path"])
    data = bytearray(path.read_bytes())
    if how == "truncate":
        del data[len(data) // 2 :]
    else:
        data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.warns(DamagedFileWarning, match="refit") as rec:
        coords, _ = projection.umap_coords(emb, seed=1, n_neighbors=10, cache_dir=tmp_path)
    assert len([w for w in rec if issubclass(w.category, DamagedFileWarning)]) == 1
    assert len(count_fits) == 2 and np.array_equal(coords, first)  # refit, and seeded: the same map
    assert len(list((path.parent / QUARANTINE_DIR).iterdir())) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error", DamagedFileWarning)
        projection.umap_coords(emb, seed=1, n_neighbors=10, cache_dir=tmp_path)
    assert len(count_fits) == 2 and projection.LAST_STATS["cached"] is True
