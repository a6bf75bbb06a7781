"""Atomic, checksummed files and the quarantine of damaged ones (balpm.safeio): real files, real damage."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from balpm.safeio import (
    _atomic_write,
    CHECKSUM_KEY,
    QUARANTINE_DIR,
    DamagedFileError,
    DamagedFileWarning,
    arrays_digest,
    atomic_write_bytes,
    atomic_write_text,
    load_npz,
    quarantine,
    save_npz,
)


def flip_byte(path: Path, at: float = 0.5) -> None:
    """XOR one byte at a relative position (damage that keeps the file's size)."""
    data = bytearray(path.read_bytes())
    data[int(len(data) * at)] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


ARRAYS = {
    "vectors": np.arange(600, dtype=np.float32).reshape(50, 12),
    "hashes": np.array([f"{i:032x}".encode() for i in range(50)], dtype="S32"),
    "name": np.array("model@1"),
    "flag": np.bool_(True),
    "empty": np.zeros((0, 3), np.int64),
}


def test_round_trip_keeps_every_array_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = save_npz(tmp_path / "sub" / "a.npz", ARRAYS)
    back = load_npz(path, required=("vectors", "hashes"))
    assert set(back) == set(ARRAYS)
    for k, v in ARRAYS.items():
        np.testing.assert_array_equal(back[k], v)
        assert back[k].dtype == np.asarray(v).dtype
    with np.load(path) as z:  # the checksum travels inside the file
        assert str(z[CHECKSUM_KEY]) == arrays_digest(ARRAYS)
    assert [p.name for p in path.parent.iterdir()] == ["a.npz"]


@pytest.mark.parametrize("damage", ["flip-start", "flip-middle", "flip-end", "truncate", "empty"])
def test_every_damage_is_a_damaged_file_error_naming_the_file(tmp_path: Path, damage: str) -> None:
    path = save_npz(tmp_path / "a.npz", ARRAYS)
    if damage == "truncate":
        truncate(path)
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        flip_byte(path, {"flip-start": 0.02, "flip-middle": 0.5, "flip-end": 0.97}[damage])
    with pytest.raises(DamagedFileError) as e:
        load_npz(path)
    assert str(path) in str(e.value) and e.value.path == path
    if damage == "empty":
        assert "not an .npz file" in str(e.value)


def test_checksum_catches_damage_that_zip_cannot_see(tmp_path: Path) -> None:
    """Content changed and the zip rewritten consistently (valid CRCs): only the content checksum knows."""
    path = save_npz(tmp_path / "a.npz", ARRAYS)
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["vectors"][3, 4] += 1.0
    np.savez(path, **arrays)
    with pytest.raises(DamagedFileError, match="checksum mismatch"):
        load_npz(path)


def test_files_without_checksum_still_load(tmp_path: Path) -> None:
    path = tmp_path / "old.npz"
    np.savez(path, vectors=ARRAYS["vectors"])
    np.testing.assert_array_equal(load_npz(path, required=("vectors",))["vectors"], ARRAYS["vectors"])
    with pytest.raises(DamagedFileError, match="missing arrays"):
        load_npz(path, required=("vectors", "hashes"))
    with pytest.raises(FileNotFoundError):
        load_npz(tmp_path / "absent.npz")


def test_atomic_write_replaces_whole_or_keeps_the_old_file(tmp_path: Path) -> None:
    p = tmp_path / "f.json"
    atomic_write_text(p, "old")
    atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"new"

    def dies_midway(f) -> None:
        f.write(b"half of a")
        raise KeyboardInterrupt("killed while writing")

    with pytest.raises(KeyboardInterrupt):  # the previous content stays, and no temporary file is left
        _atomic_write(p, dies_midway)
    assert p.read_bytes() == b"new"
    assert [q.name for q in tmp_path.iterdir()] == ["f.json"]


def test_quarantine_moves_aside_and_warns_once(tmp_path: Path) -> None:
    path = save_npz(tmp_path / "cache" / "c.npz", ARRAYS)
    with pytest.warns(DamagedFileWarning, match="recomputed") as rec:
        dest = quarantine(path, "checksum mismatch", "it will be recomputed")
    assert len(rec) == 1
    assert not path.exists() and dest is not None and dest.is_file()
    assert dest.parent == path.parent / QUARANTINE_DIR and dest.name.endswith("-c.npz")
    assert str(path) in str(rec[0].message) and str(dest) in str(rec[0].message)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second reporter finds it gone: silence, not a second warning
        assert quarantine(path, "checksum mismatch", "it will be recomputed") is None
