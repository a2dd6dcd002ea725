"""The lazy dask pyramid: one array per level, one chunk per file tile, served via the cache."""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import dask.array as da
import numpy as np

from napari_wsi_ml.slide.geometry import LevelGeometry
from napari_wsi_ml.slide.level_sources import TileSource
from napari_wsi_ml.slide.tile_cache import TileCache


class CachedTiles:
    """Tiles of all levels of one slide, decoded by their source and kept in a shared cache.

    Args:
        owner: Hashable token unique to the slide (first element of every cache key).
        sources: One tile source per level.
        cache: The byte-bounded cache.
    """

    def __init__(self, owner: Hashable, sources: Sequence[TileSource], cache: TileCache) -> None:
        self._owner = owner
        self._sources = list(sources)
        self.cache = cache

    def tile(self, level: int, col: int, row: int) -> np.ndarray:
        """Read-only RGB tile ``(col, row)`` of ``level`` (from the cache when present)."""
        key = (self._owner, level, col, row)
        tile = self.cache.get(key)
        if tile is None:
            tile = self.cache.put(key, self._sources[level].read_tile(level, col, row))
        return tile


def level_array(tiles: CachedTiles, level: int, geometry: LevelGeometry, name: str) -> da.Array:
    """A lazy ``(H, W, 3)`` uint8 dask array of one level, chunked on the tile grid.

    Built with ``map_blocks`` and an explicit name: the graph is one blockwise layer that is
    never materialised whole, so opening a 100k x 100k level costs well under a millisecond and
    reading a viewport touches only the tasks of its tiles.
    """

    def read_block(block_id: tuple[int, int, int] | None = None) -> np.ndarray:
        if block_id is None:  # dask probing the function for meta
            return np.empty((0, 0, 3), dtype=np.uint8)
        row, col, _ = block_id
        return tiles.tile(level, col, row)

    return da.map_blocks(
        read_block,
        chunks=geometry.chunks(),
        dtype=np.uint8,
        meta=np.empty((0, 0, 0), dtype=np.uint8),
        name=name,
    )
