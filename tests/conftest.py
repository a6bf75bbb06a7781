"""Shared test fixtures. Tests read small subsets of the real files in ../shared/data (never copies)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BALPM_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real preference data folder; tests that need it fail loudly if it is missing."""
    assert SHARED_DATA.is_dir(), f"real data folder not found: {SHARED_DATA} (set BALPM_DATA_DIR)"
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the embedding cache of a test session out of the user's home unless CI chose a folder."""
    if "BALPM_CACHE_DIR" not in os.environ:
        os.environ["BALPM_CACHE_DIR"] = str(tmp_path_factory.mktemp("balpm-cache"))
