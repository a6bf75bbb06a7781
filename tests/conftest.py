"""Shared test fixtures.

Tests run on the embedded sample (``balpm/datasets/``, fixture ``sample_data``), so the README's test command
passes in a fresh clone with nothing beside it. The few tests that need the full shared data folder use the
``shared_data`` fixture (or carry ``@pytest.mark.shared_data``): they are marked ``shared_data`` and skipped,
with the reason, when :func:`balpm.data.data_dir` finds no folder. CI sets ``BALPM_REQUIRE_SHARED_DATA=1``:
there a missing folder fails those tests instead, so nothing skips silently where the data should be.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from balpm.data import data_dir, sample_dir

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The full data folder when one is visible (``BALPM_DATA_DIR``, else ``../shared/data``), else None.
SHARED_DATA: Path | None = data_dir()
REQUIRE_SHARED_DATA = os.environ.get("BALPM_REQUIRE_SHARED_DATA", "").strip().lower() in ("1", "true", "yes")


def _missing_reason() -> str | None:
    """Why the full data is unusable here, or None when it is there."""
    if SHARED_DATA is None:
        return "needs the full shared data folder: none found (set BALPM_DATA_DIR to it)"
    if not (SHARED_DATA / "hh-rlhf").is_dir() or not (SHARED_DATA / "qa-feedback").is_dir():
        return f"needs the full shared data folder: {SHARED_DATA} lacks hh-rlhf/ or qa-feedback/ (set BALPM_DATA_DIR)"
    return None


def _skip_or_fail(reason: str) -> None:
    if REQUIRE_SHARED_DATA:
        pytest.fail(f"BALPM_REQUIRE_SHARED_DATA=1 but this test {reason}", pytrace=False)
    pytest.skip(reason)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test that uses the ``shared_data`` fixture, so ``-m shared_data`` selects exactly them."""
    for item in items:
        if "shared_data" in getattr(item, "fixturenames", ()) and item.get_closest_marker("shared_data") is None:
            item.add_marker(pytest.mark.shared_data)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip (or, in CI, fail) a ``shared_data`` test before its fixtures run when the folder is absent."""
    if item.get_closest_marker("shared_data") is not None:
        reason = _missing_reason()
        if reason is not None:
            _skip_or_fail(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full shared data folder (read-only). Tests using it are marked ``shared_data`` (see the module doc)."""
    reason = _missing_reason()
    if reason is not None:
        _skip_or_fail(reason)
    assert SHARED_DATA is not None
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_data() -> Path:
    """The embedded sample folder, laid out like the shared one (``hh-rlhf/harmless-base-sample.jsonl.gz``,
    ``qa-feedback/dev_feedback-sample.json.gz``): real pairs that every machine has."""
    return sample_dir()


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the embedding cache of a test session out of the user's home unless CI chose a folder."""
    if "BALPM_CACHE_DIR" not in os.environ:
        os.environ["BALPM_CACHE_DIR"] = str(tmp_path_factory.mktemp("balpm-cache"))
