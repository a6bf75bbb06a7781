"""The walkthrough notebooks run top to bottom (quick mode) and are what ``notebooks/make_notebooks.py`` writes.

Each notebook executes in its own kernel (``python3``, registered by ``.ci/run``); the kernel inherits this
process's environment, so ``BALPM_CACHE_DIR`` (a temporary folder unless CI set one, see ``conftest.py``) keeps
the embedding cache out of the user's home and is shared by the three notebooks: the samples they draw are the
same, so embeddings are computed once per test session.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_notebooks_present():
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb", "02_reproduce_the_paper.ipynb", "03_label_by_hand.ipynb"]


def test_committed_notebooks_match_generator_and_have_no_outputs():
    done = subprocess.run([sys.executable, str(NB_DIR / "make_notebooks.py"), "--check"], capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs not stripped"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_quick_mode(path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("BALPM_NOTEBOOK_MODE", "quick")
    if "BALPM_CACHE_DIR" not in os.environ:  # conftest sets it; keep the isolation if run without conftest
        monkeypatch.setenv("BALPM_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NB_DIR)}})
    t0 = time.perf_counter()
    client.execute()  # raises CellExecutionError (with the cell and traceback) on any error
    print(f"{path.name}: {time.perf_counter() - t0:.0f}s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
