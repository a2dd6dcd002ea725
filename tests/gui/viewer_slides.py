"""Slides for the viewer tests: a synthetic pyramid with known regions, and tests/data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

SLIDES_DIR = Path(__file__).resolve().parents[1] / "data" / "slides"
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
