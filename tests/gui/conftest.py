"""Fixtures of the viewer tests: a synthetic pyramidal slide, a tile-read counter, notifications."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from viewer_slides import write_synthetic_slide


@pytest.fixture(scope="session")
def synthetic_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8192 × 6144 px, mpp 0.5, 3 levels (downsample 4): tissue left, glass right."""
    return write_synthetic_slide(tmp_path_factory.mktemp("slides") / "synthetic.tiff")


@pytest.fixture
def tile_reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, int, int]]]:
    """Every tile the slide reader fetches, as ``(level, col, row)``."""
    from napari_wsi_ml.slide import dask_levels

    reads: list[tuple[int, int, int]] = []
    original = dask_levels.CachedTiles.tile

    def counting_tile(self, level: int, col: int, row: int) -> np.ndarray:
        reads.append((level, col, row))
        return original(self, level, col, row)

    monkeypatch.setattr(dask_levels.CachedTiles, "tile", counting_tile)
    yield reads


@pytest.fixture
def notifications() -> Iterator[list[tuple[str, str]]]:
    """``(severity, message)`` of every napari notification shown during the test."""
    from napari.utils.notifications import notification_manager

    seen: list[tuple[str, str]] = []

    def record(event) -> None:
        notification = event.value if hasattr(event, "value") else event
        seen.append((str(notification.severity), str(notification.message)))

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)
