"""Fixtures of the inference tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from odd_slide import write_odd_pyramid


@pytest.fixture(scope="session")
def odd_pyramid_tiff(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generic tiled TIFF (3 levels, downsample ≈ 3) that OpenSlide opens, mpp 0.5."""
    return write_odd_pyramid(tmp_path_factory.mktemp("slides") / "odd-pyramid.tiff")
