"""Geometry of one pyramid level: size, tile grid and downsample."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LevelGeometry:
    """One level of a slide pyramid.

    Attributes:
        width: Level width in level pixels.
        height: Level height in level pixels.
        tile_width: Width of the file's tiles at this level (the dask chunk width).
        tile_height: Height of the file's tiles at this level (the dask chunk height).
        downsample: Level-0 pixels per level pixel, as OpenSlide reports it.
    """

    width: int
    height: int
    tile_width: int
    tile_height: int
    downsample: float

    @property
    def tiles_across(self) -> int:
        """Number of tile columns."""
        return -(-self.width // self.tile_width)

    @property
    def tiles_down(self) -> int:
        """Number of tile rows."""
        return -(-self.height // self.tile_height)

    def tile_box(self, col: int, row: int) -> tuple[int, int, int, int]:
        """Level-pixel box ``(x, y, width, height)`` of tile ``(col, row)``, clipped at edges."""
        x = col * self.tile_width
        y = row * self.tile_height
        return x, y, min(self.tile_width, self.width - x), min(self.tile_height, self.height - y)

    def chunks(self) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int]]:
        """dask chunks ``(rows, cols, channels)`` on the tile grid."""
        rows = tuple(
            min(self.tile_height, self.height - y) for y in range(0, self.height, self.tile_height)
        )
        cols = tuple(
            min(self.tile_width, self.width - x) for x in range(0, self.width, self.tile_width)
        )
        return rows, cols, (3,)
