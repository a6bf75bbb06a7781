"""Where pools come from: built-in names, folders, save_to_disk, the CLI's validate (balpm.data.sources)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from balpm.cli import main
from balpm.data import PoolFormatError, data_dir, load_pool

from data_helpers import GOOD, HH_SAMPLE, TRL, head_gzip, write_lines


def test_hh_builtin_counts_and_speed(shared_data: Path) -> None:
    t0 = time.perf_counter()
    pool = load_pool("hh-rlhf")
    elapsed = time.perf_counter() - t0
    assert elapsed < 4.0  # target well under 2 s; slack for a shared machine
    # 8,552 rows: 36 chosen == rejected, 17 with different prompts, 11 with a blank final reply
    assert pool.report.dropped == {"identical completions": 36, "prompts differ": 17, "empty completion": 11}
    assert len(pool) == 8552 - 64 == pool.report.kept
    assert pool.pairs["id"].is_unique
    assert list(pool.pairs.columns[:7]) == ["id", "prompt", "completion_a", "completion_b", "label", "source", "group"]
    assert str(pool.pairs["label"].dtype) == "Int8"
    assert set(pool.pairs["source"]) == {
        "hh-rlhf:harmless-base", "hh-rlhf:helpful-base", "hh-rlhf:helpful-online", "hh-rlhf:helpful-rejection-sampled"
    }
    one = load_pool("hh-rlhf:helpful-online")
    assert len(one) == (pool.pairs["source"] == "hh-rlhf:helpful-online").sum()


def test_builtin_needs_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, shared_data: Path) -> None:
    monkeypatch.setenv("BALPM_DATA_DIR", str(tmp_path / "nowhere"))
    assert data_dir() == tmp_path / "nowhere"
    with pytest.raises(PoolFormatError, match="BALPM_DATA_DIR"):
        load_pool("hh-rlhf")
    monkeypatch.delenv("BALPM_DATA_DIR")
    assert data_dir().resolve() == shared_data.resolve()
    with pytest.raises(PoolFormatError, match="unknown hh-rlhf split"):
        load_pool("hh-rlhf:nope")
    with pytest.raises(PoolFormatError, match="no such file or built-in"):
        load_pool(tmp_path / "missing.jsonl")


def test_hf_save_to_disk(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_list(TRL[:5]).save_to_disk(str(tmp_path / "ds"))
    pool = load_pool(tmp_path / "ds")
    assert len(pool) == 5 and pool.report.format == "trl"
    assert pool.ids.tolist() == load_pool(write_lines(tmp_path / "t.jsonl", TRL[:5])).ids.tolist()


def test_folder_of_files(sample_data: Path, tmp_path: Path) -> None:
    head_gzip(sample_data / HH_SAMPLE, tmp_path / "a.jsonl.gz", 5)
    write_lines(tmp_path / "b.v2.jsonl", TRL[:3])
    pool = load_pool(tmp_path)
    assert len(pool) == 8 and set(pool.pairs["source"]) == {"a.jsonl.gz", "b.v2.jsonl"}
    assert pool.report.format == "hh-rlhf+trl"


def test_cli_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write_lines(tmp_path / "good.jsonl", [GOOD, GOOD | {"prompt": "q", "label": None}])
    assert main(["validate", str(good)]) == 0
    out = capsys.readouterr().out
    assert "pairs: 2" in out and "1 unlabelled" in out
    bad = write_lines(tmp_path / "bad.jsonl", [GOOD, GOOD | {"prompt": "q", "label": 7}])
    assert main(["validate", str(bad)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == "" and "\n" not in err and "Traceback" not in err
    assert f"{bad}:2: field 'label':" in err


def test_cli_validate_subprocess(shared_data: Path, tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("balpm")
    r = subprocess.run([str(exe), "validate", "qa-feedback"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "pairs: 2616" in r.stdout and "tie: 384" in r.stdout
    r = subprocess.run([str(exe), "validate", str(tmp_path / "nope.jsonl")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "nope.jsonl" in r.stderr


def test_strict_reaches_every_command_that_reads_a_pool(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write_lines(tmp_path / "dups.jsonl", [GOOD, GOOD | {"prompt": "q"}, GOOD])
    assert len(load_pool(f)) == 2
    for argv in (["validate"], ["embed", "--no-cache", "--quiet"], ["run", "--quiet", "--out", str(tmp_path / "run"), "--dataset"]):
        assert main([*argv, str(f), "--strict"]) == 2, argv
        err = capsys.readouterr().err
        assert f"{f}:3:" in err and "duplicate pair" in err and "Traceback" not in err, argv
