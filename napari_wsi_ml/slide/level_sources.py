"""Choose, per level and once at open time, which reader serves the level's tiles."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from napari_wsi_ml.errors import SlideError
from napari_wsi_ml.slide.geometry import LevelGeometry
from napari_wsi_ml.slide.openslide_tiles import OpenSlideTiles
from napari_wsi_ml.slide.tiff_tiles import TiffTiles


class TileSource(Protocol):
    """Something that decodes one RGB tile of one level."""

    name: str

    def read_tile(self, level: int, col: int, row: int) -> np.ndarray:
        """RGB uint8 tile ``(col, row)`` of ``level``, shape ``(h, w, 3)``, clipped at edges."""
        ...


def probe_tiles(geometry: LevelGeometry) -> list[tuple[int, int]]:
    """Tiles ``(col, row)`` whose OpenSlide pixels are exact, to compare readers against.

    The first tile always is (its level-0 position is the origin); the middle tile is added
    when the level's downsample is an integer, so its level-0 position is exact too.
    """
    tiles = [(0, 0)]
    ds = geometry.downsample
    if abs(ds - round(ds)) < 1e-9 and (geometry.tiles_across > 1 or geometry.tiles_down > 1):
        tiles.append((geometry.tiles_across // 2, geometry.tiles_down // 2))
    return tiles


def choose_sources(
    levels: list[LevelGeometry], openslide_tiles: OpenSlideTiles, tiff_tiles: TiffTiles
) -> list[TileSource]:
    """One tile source per level: direct TIFF decoding where it equals OpenSlide, else OpenSlide.

    Reading the probe tiles through OpenSlide also finds slides that open but cannot be
    decoded, so those fail here, at open time, with a :class:`SlideError`.

    Raises:
        SlideError: OpenSlide cannot decode a probe tile.
    """
    direct = set(tiff_tiles.direct_levels)
    sources: list[TileSource] = []
    for level, geometry in enumerate(levels):
        source: TileSource = openslide_tiles
        probes = probe_tiles(geometry)
        expected = [openslide_tiles.read_tile(level, col, row) for col, row in probes]
        if level in direct:
            try:
                same = all(
                    np.array_equal(tiff_tiles.read_tile(level, col, row), reference)
                    for (col, row), reference in zip(probes, expected, strict=True)
                )
            except SlideError:
                same = False
            if same:
                source = tiff_tiles
            else:
                tiff_tiles.drop_level(level)
        sources.append(source)
    return sources
