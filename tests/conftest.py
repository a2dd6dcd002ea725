"""Shared fixtures: paths to the real test data in tests/data (see tests/data/PROVENANCE.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA_DIR = Path(__file__).parent / "data"
SLIDES_DIR = DATA_DIR / "slides"
ANNOTATIONS_DIR = DATA_DIR / "annotations"
TILES_DIR = DATA_DIR / "tiles"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data."""
    return DATA_DIR
