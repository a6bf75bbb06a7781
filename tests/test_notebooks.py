"""The walkthrough notebooks: each is a jupytext percent script paired with its ``.ipynb``, and both run.

The scripts (``notebooks/01_quickstart.py`` …) are what people edit and review; ``notebooks/jupytext.toml`` pairs
each with its notebook, and ``jupytext --sync notebooks/0*.py`` rewrites the notebook. These tests fail when a
pair differs (a script edited without syncing, or a notebook edited in Jupyter without jupytext), when a committed
notebook holds outputs, and when a notebook does not run top to bottom in quick mode.

Each notebook executes in its own kernel (``python3``, registered by ``.ci/run``) started in ``notebooks/`` (so
``import _setup`` works as it does in Jupyter); the kernel inherits this process's environment, so
``BALPM_CACHE_DIR`` (a temporary folder unless CI set one, see ``conftest.py``) keeps the embedding cache out of
the user's home and is shared by the three notebooks: the samples they draw are the same, so embeddings are
computed once per test session. ``BALPM_DATA_DIR=none`` hides any data folder: quick mode needs only the sample
embedded in balpm.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.config import load_jupytext_config
from jupytext.formats import long_form_one_format
from nbclient import NotebookClient

NB_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
SCRIPTS = sorted(NB_DIR.glob("[0-9][0-9]_*.py"))


def paired_script_text(notebook: Path) -> str:
    """The percent script jupytext writes for ``notebook`` under its folder's jupytext.toml (what --sync writes)."""
    config = load_jupytext_config(str(notebook.parent))
    assert config is not None, f"no jupytext configuration found for {notebook.parent}"
    fmt = long_form_one_format("py:percent")
    config.set_default_format_options(fmt)
    return jupytext.writes(nbformat.read(notebook, as_version=4), fmt=fmt)


def pair_difference(script: Path) -> str:
    """A unified diff between ``script`` and the script its paired notebook stands for ('' when in sync)."""
    notebook = script.with_suffix(".ipynb")
    if not notebook.exists():
        return f"{script.name} has no paired notebook {notebook.name}"
    expected = paired_script_text(notebook).splitlines(keepends=True)
    actual = script.read_text(encoding="utf-8").splitlines(keepends=True)
    return "".join(difflib.unified_diff(expected, actual, f"{notebook.name} (as a script)", script.name, n=1))


def test_every_notebook_has_its_script():
    assert [p.name for p in NOTEBOOKS] == [
        "01_quickstart.ipynb", "02_reproduce_the_paper.ipynb", "03_label_by_hand.ipynb"]
    assert [p.with_suffix(".ipynb") for p in SCRIPTS] == NOTEBOOKS
    assert not (NB_DIR / "make_notebooks.py").exists(), "the scripts are the source now: no generator of strings"


def test_jupytext_pairs_notebooks_with_percent_scripts():
    config = load_jupytext_config(str(NB_DIR))
    assert config is not None and config.formats in ("ipynb,py:percent", ["ipynb,py:percent"]), config


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_script_and_notebook_are_in_sync(script: Path):
    diff = pair_difference(script)
    assert diff == "", f"out of sync (run: jupytext --sync notebooks/{script.name}):\n{diff}"


@pytest.mark.parametrize("edit", ["markdown", "code", "new cell"])
def test_the_sync_check_sees_any_edit_to_a_script(tmp_path: Path, edit: str):
    """The check above is not vacuous: one character changed in a copy of a script makes the pair differ."""
    for name in ("jupytext.toml", "01_quickstart.py", "01_quickstart.ipynb"):
        shutil.copy(NB_DIR / name, tmp_path / name)
    script = tmp_path / "01_quickstart.py"
    assert pair_difference(script) == ""
    text = script.read_text(encoding="utf-8")
    if edit == "markdown":
        text = text.replace("# ## 1. A real pool", "# ## 1. A real  pool", 1)
    elif edit == "code":
        text = text.replace("SWEEP_SEEDS = range(5)", "SWEEP_SEEDS = range(6)", 1)
    else:
        text += "\n# %%\nprint('one more cell')\n"
    script.write_text(text, encoding="utf-8")
    assert pair_difference(script) != ""


def test_committed_notebooks_have_no_outputs():
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        for cell in nb.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name}: outputs not stripped"


def test_setup_refuses_an_unknown_mode():
    """The notebooks' shared first cell names the variable and the values it accepts."""
    env = {**os.environ, "BALPM_NOTEBOOK_MODE": "fast"}
    done = subprocess.run([sys.executable, "-c", "import _setup"], cwd=NB_DIR, env=env, capture_output=True,
                          text=True)
    assert done.returncode != 0
    assert "BALPM_NOTEBOOK_MODE must be 'quick' or 'full', not 'fast'" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_in_quick_mode(path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("BALPM_NOTEBOOK_MODE", "quick")
    monkeypatch.setenv("BALPM_DATA_DIR", "none")  # the embedded sample only: no data folder needed
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
