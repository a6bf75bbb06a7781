"""Pools shared by the data-layer tests (the full shared files: tests using them need shared_data)."""

from __future__ import annotations

from pathlib import Path

import pytest

from balpm.data import PreferencePool, load_pool


@pytest.fixture(scope="module")
def hh(shared_data: Path) -> PreferencePool:
    return load_pool("hh-rlhf")


@pytest.fixture(scope="module")
def qa(shared_data: Path) -> PreferencePool:
    return load_pool("qa-feedback")
