"""Fixtures of the viewer tests: a synthetic pyramidal slide and a tile-read counter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

SYNTH_SIZE = (8192, 6144)  # (width, height) level 0
SYNTH_MPP = 0.5
TISSUE_BOX_XY = (800, 1000, 3800, 5000)  # x0, y0, x1, y1: pink tissue; the right half is glass
DENSE_BOX_XY = (1600, 2000, 3000, 4000)  # purple, hematoxylin-rich, inside the tissue
PINK, PURPLE, GLASS = (230, 150, 195), (90, 45, 135), (244, 244, 244)


def render_level(width: int, height: int) -> np.ndarray:
    """The synthetic slide rendered at ``width`` × ``height`` (pixel centres sampled)."""
    xs = (np.arange(width) + 0.5) * (SYNTH_SIZE[0] / width)
    ys = (np.arange(height) + 0.5) * (SYNTH_SIZE[1] / height)
    image = np.empty((height, width, 3), np.uint8)
    image[:] = GLASS
    for (x0, y0, x1, y1), colour in ((TISSUE_BOX_XY, PINK), (DENSE_BOX_XY, PURPLE)):
        rows = np.flatnonzero((ys >= y0) & (ys < y1))
        cols = np.flatnonzero((xs >= x0) & (xs < x1))
        image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = colour
    return image


def write_synthetic_slide(path: Path, *, mpp: float | None = SYNTH_MPP) -> Path:
    """A JPEG-tiled generic TIFF pyramid (downsample 4) that OpenSlide opens."""
    resolution = (
        {"resolutionunit": "NONE"}
        if mpp is None
        else {"resolution": (1e4 / mpp, 1e4 / mpp), "resolutionunit": "CENTIMETER"}
    )
    with tifffile.TiffWriter(path) as writer:
        for level in range(3):
            width, height = SYNTH_SIZE[0] // 4**level, SYNTH_SIZE[1] // 4**level
            writer.write(
                render_level(width, height),
                tile=(256, 256),
                compression="jpeg",
                photometric="rgb",
                subfiletype=0 if level == 0 else 1,
                **resolution,
            )
    return path


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
