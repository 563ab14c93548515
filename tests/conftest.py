"""Shared fixtures: where the real test data lives, and how its absence is handled."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _require(path: Path) -> Path:
    """Return `path`, or skip (fail under CI=true) when the shared data is not there."""
    if path.exists():
        return path
    message = f"real test data not found at {path} (see ../shared/data/SOURCES.md)"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message + "; CI must have it")
    pytest.skip(message)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder beside the checkout."""
    return _require(SHARED_DATA)


@pytest.fixture(scope="session")
def shared_media(shared_data: Path) -> Path:
    """../shared/data/media: real talking-head, no-face and silent-audio clips."""
    return _require(shared_data / "media")


@pytest.fixture(scope="session")
def shared_mfn(shared_data: Path) -> Path:
    """../shared/data/mfn: the Memory Fusion Network release's YouTube and MMMO HDF5 features."""
    return _require(shared_data / "mfn")
