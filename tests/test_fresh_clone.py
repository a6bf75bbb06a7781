"""The fresh-machine check (issue 15): a clone of the committed repository, with no data folder beside it and no
``BALPM_DATA_DIR``, validates the built-in pool, runs two simulated rounds and opens the app's first page, all on
the embedded sample.

It uses the current virtual environment (no ``pip install``); ``PYTHONPATH`` and the working directory make the
clone's own ``balpm`` the one imported (asserted), so what is tested is what ``git clone`` gives a newcomer.
Only committed files count: a file someone forgot to ``git add`` fails here even though the checkout works.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]

APP_FIRST_PAGE = """
from streamlit.testing.v1 import AppTest
at = AppTest.from_file("app.py", default_timeout=300)
at.run()
assert not at.exception, at.exception
print("APP-OK", " | ".join(m.value for m in at.sidebar.markdown))
print("SUMMARY", " | ".join(c.value for c in at.code))
"""


@pytest.fixture(scope="module")
def clone(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A clone of HEAD in an empty folder and the environment of a machine with no data folder."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs git and a git checkout")
    base = tmp_path_factory.mktemp("fresh")
    dest = base / "balpm"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(REPO), str(dest)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BALPM_") or k == "BALPM_CACHE_DIR"}
    env.update(PYTHONPATH=str(dest), BALPM_SESSIONS_DIR=str(base / "sessions"), PYTHONUNBUFFERED="1",
               STREAMLIT_BROWSER_GATHER_USAGE_STATS="false")
    assert not (base / "shared").exists()  # nothing beside the clone
    return dest, env


def _run(clone: tuple[Path, dict[str, str]], *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    dest, env = clone
    return subprocess.run([sys.executable, *args], cwd=dest, env=env, capture_output=True, text=True, timeout=timeout)


def test_clone_imports_its_own_balpm_and_finds_no_data(clone: tuple[Path, dict[str, str]]) -> None:
    r = _run(clone, "-c", "import balpm, balpm.data as d; print(balpm.__file__); print(d.data_dir())")
    assert r.returncode == 0, r.stderr
    where, data = r.stdout.split()
    assert Path(where).resolve().is_relative_to(clone[0].resolve()) and data == "None"


def test_validate_on_the_sample(clone: tuple[Path, dict[str, str]]) -> None:
    r = _run(clone, "-m", "balpm", "validate", "hh-rlhf:harmless-base")
    assert r.returncode == 0, r.stderr
    assert "pool: hh-rlhf:harmless-base (embedded sample, 600 of 2,303 pairs" in r.stdout and "pairs: 600" in r.stdout
    r = _run(clone, "-m", "balpm", "validate", "hh-rlhf:helpful-online")  # no sample: says what to set
    assert r.returncode == 2 and "BALPM_DATA_DIR" in r.stderr and "Traceback" not in r.stderr


def test_two_round_run_on_the_sample(clone: tuple[Path, dict[str, str]]) -> None:
    out = clone[0] / "runs" / "quick"
    r = _run(clone, "-m", "balpm", "run", "--quiet", "--dataset", "hh-rlhf:harmless-base", "--max-pairs", "80",
             "--max-length", "64", "--initial", "8", "--batch-size", "8", "--rounds", "2", "--n-members", "2",
             "--hidden", "16", "--max-epochs", "3", "--seed", "0", "--out", str(out))
    assert r.returncode == 0, r.stderr
    info = json.loads((out / "config.json").read_text())
    assert info["resolved"]["finished"] is not None and info["resolved"]["n_train"] + info["resolved"]["n_test"] <= 80
    metrics = pd.read_csv(out / "metrics.csv")
    assert sorted(metrics["round"].unique()) == [0, 1, 2] and set(metrics["dataset"]) == {"hh-rlhf:harmless-base"}


def test_app_first_page_opens_the_demo_on_the_sample(clone: tuple[Path, dict[str, str]]) -> None:
    r = _run(clone, "-c", APP_FIRST_PAGE)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "APP-OK" in r.stdout and "demo" in r.stdout
    assert "pool: sample:hh-rlhf:harmless-base (embedded sample, 600 of 2,303 pairs" in r.stdout  # the Pool page
    demo = json.loads((Path(clone[1]["BALPM_SESSIONS_DIR"]) / "demo" / "session.json").read_text())
    assert demo["pool"]["dataset"] == "sample:hh-rlhf:harmless-base"  # session.json nests the pool settings
