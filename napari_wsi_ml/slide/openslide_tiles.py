"""Tiles read through OpenSlide's ``read_region``: the path that works for every format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide

from napari_wsi_ml.errors import SlideError
from napari_wsi_ml.slide.geometry import LevelGeometry


def composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """Composite non-premultiplied RGBA (as OpenSlide returns it) on white; returns RGB uint8.

    ``out = round((rgb * a + 255 * (255 - a)) / 255)``; opaque pixels are returned unchanged and
    fully transparent ones (outside the scanned area) become white.
    """
    rgba = np.asarray(rgba)
    alpha = rgba[..., 3:4]
    if alpha.min() == 255:
        return np.ascontiguousarray(rgba[..., :3])
    a = alpha.astype(np.uint32)
    rgb = rgba[..., :3].astype(np.uint32)
    return ((rgb * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def decode_failure(path: Path, level: int, col: int, row: int, reason: object) -> SlideError:
    """The error raised when the pixels of one tile cannot be decoded."""
    return SlideError(
        f"Cannot decode the pixels of slide '{path}' at level {level}, tile (column {col}, "
        f"row {row}): {reason}. The file is damaged or uses an encoding this reader cannot "
        "decode; re-copy or re-export the slide from the scanner software."
    )


class OpenSlideTiles:
    """Reads level tiles with ``OpenSlide.read_region`` (thread-safe: OpenSlide locks inside).

    At a level whose downsample is not an integer, a tile that does not start at the origin has
    a fractional level-0 position, which OpenSlide interpolates; formats whose tiles this package
    decodes directly (:mod:`napari_wsi_ml.slide.tiff_tiles`) avoid that.
    """

    name = "openslide"

    def __init__(self, osr: openslide.OpenSlide, path: Path, levels: list[LevelGeometry]) -> None:
        self._osr = osr
        self._path = path
        self._levels = levels

    def read_tile(self, level: int, col: int, row: int) -> np.ndarray:
        """RGB tile ``(col, row)`` of ``level``, clipped at the level's edges."""
        geometry = self._levels[level]
        x, y, w, h = geometry.tile_box(col, row)
        location = (round(x * geometry.downsample), round(y * geometry.downsample))
        try:
            rgba = self._osr.read_region(location, level, (w, h))
        except openslide.OpenSlideError as error:
            raise decode_failure(self._path, level, col, row, error) from error
        return composite_on_white(np.asarray(rgba))

    def close(self) -> None:
        """Nothing to release: the OpenSlide handle belongs to the slide."""
