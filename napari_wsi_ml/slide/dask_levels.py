"""The lazy dask pyramid: one array per level, one chunk per file tile, served via the cache."""

from __future__ import annotations

import os
import threading
from collections.abc import Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor

import dask.array as da
import numpy as np

from napari_wsi_ml.slide.geometry import LevelGeometry
from napari_wsi_ml.slide.level_sources import TileSource
from napari_wsi_ml.slide.tile_cache import TileCache
from napari_wsi_ml.slide.tile_window import TileWindow

_decoders: ThreadPoolExecutor | None = None
_decoders_lock = threading.Lock()


def _decoder_pool() -> ThreadPoolExecutor:
    """The process-wide pool that decodes a window's missing tiles (codecs release the GIL)."""
    global _decoders
    with _decoders_lock:
        if _decoders is None:
            _decoders = ThreadPoolExecutor(
                max_workers=max(2, os.cpu_count() or 1), thread_name_prefix="slide-tiles"
            )
        return _decoders


def _forget_pool_in_child() -> None:
    """A forked child inherits the pool without its threads (and maybe a held lock): restart."""
    global _decoders, _decoders_lock
    _decoders = None
    _decoders_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_pool_in_child)


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
            tile = self._decode(key)
        return tile

    def _decode(self, key: tuple[Hashable, int, int, int]) -> np.ndarray:
        _, level, col, row = key
        return self.cache.put(key, self._sources[level].read_tile(level, col, row))

    def window(self, level: int, geometry: LevelGeometry, rows: range, cols: range) -> np.ndarray:
        """A new RGB array of the level pixels ``rows x cols`` (step-1 ranges inside the level).

        The cached tiles are found under one cache lock and copied straight into the result;
        the missing ones are read with :meth:`tile`, in parallel on a shared thread pool (which
        also finds tiles another thread has decoded meanwhile). Decoding only on the pool keeps
        long-lived tiles and the callers' short-lived results in different malloc arenas,
        which keeps the heap from fragmenting (about 40 MiB over a full cache, against
        200-300 MiB when callers decode too).
        """
        th, tw = geometry.tile_height, geometry.tile_width
        grid = [
            (col, row)
            for row in range(rows.start // th, (rows.stop - 1) // th + 1)
            for col in range(cols.start // tw, (cols.stop - 1) // tw + 1)
        ]
        tiles = self.cache.get_many([(self._owner, level, col, row) for col, row in grid])
        missing = [i for i, tile in enumerate(tiles) if tile is None]
        if missing:  # even one tile: cached tiles then stay apart from callers' heap arenas
            decoded = _decoder_pool().map(
                lambda col_row: self.tile(level, *col_row), [grid[i] for i in missing]
            )
            for i, tile in zip(missing, decoded, strict=True):
                tiles[i] = tile
        out = np.empty((len(rows), len(cols), 3), dtype=np.uint8)
        for (col, row), tile in zip(grid, tiles, strict=True):
            y0, x0 = row * th, col * tw
            ya, yb = max(y0, rows.start), min(y0 + th, rows.stop)
            xa, xb = max(x0, cols.start), min(x0 + tw, cols.stop)
            out[ya - rows.start : yb - rows.start, xa - cols.start : xb - cols.start] = tile[
                ya - y0 : yb - y0, xa - x0 : xb - x0
            ]
        return out


def level_array(tiles: CachedTiles, level: int, geometry: LevelGeometry, name: str) -> TileWindow:
    """A lazy ``(H, W, 3)`` uint8 dask array of one level, chunked on the tile grid.

    Built with ``map_blocks`` and an explicit name: the graph is one blockwise layer that is
    never materialised whole, so opening a 100k x 100k level costs well under a millisecond and
    computing a region touches only the tasks of its tiles. Converting the level, or a plain
    slice of it, to NumPy takes the direct path of :class:`TileWindow`.
    """

    def read_block(block_id: tuple[int, int, int] | None = None) -> np.ndarray:
        if block_id is None:  # dask probing the function for meta
            return np.empty((0, 0, 3), dtype=np.uint8)
        row, col, _ = block_id
        return tiles.tile(level, col, row)

    blocks = da.map_blocks(
        read_block,
        chunks=geometry.chunks(),
        dtype=np.uint8,
        meta=np.empty((0, 0, 0), dtype=np.uint8),
        name=name,
    )
    return TileWindow.wrap(
        blocks, tiles, level, geometry, range(geometry.height), range(geometry.width)
    )
