"""A dask array of a rectangle of one level whose NumPy conversion copies cached tiles directly.

napari shows a viewport with ``np.asarray(level[rows, cols])``. For an ordinary dask array that
costs a slicing graph, then a compute: graph optimisation, one task per tile on the threaded
scheduler, a concatenation and a defensive copy; several milliseconds even when every tile is
cached. A :class:`TileWindow` is a dask array like the one dask's slicing gives (same chunks on
the file's tile grid, same values from ``compute``), but its graph is generated on demand, so
slicing costs the same for any window, and converting it to NumPy calls the window reader once:
it copies the cached tiles into a new array and decodes the missing ones in parallel.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import pairwise
from typing import Any, Protocol

import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph

from napari_wsi_ml.slide.geometry import LevelGeometry

WINDOW_MAX_BYTES = 256 << 20
"""Largest window converted directly; bigger ones go through dask's scheduler chunk by chunk."""

_META = np.empty((0, 0, 3), dtype=np.uint8)


class TileReader(Protocol):
    """Reads the tiles of a slide (see :class:`napari_wsi_ml.slide.dask_levels.CachedTiles`)."""

    def tile(self, level: int, col: int, row: int) -> np.ndarray:
        """Read-only RGB tile ``(col, row)`` of ``level``."""
        ...

    def window(self, level: int, geometry: LevelGeometry, rows: range, cols: range) -> np.ndarray:
        """A new RGB array of the level pixels ``rows x cols``."""
        ...


class TileWindow(da.Array):
    """The level pixels ``rows x cols`` of one level, as a dask array with a direct NumPy path.

    Plain slices (step 1, all three channels, not empty) of a window are windows again; any
    other operation gives an ordinary :class:`dask.array.Array`.
    """

    _tiles: TileReader
    _level: int
    _level_name: str
    _geometry: LevelGeometry
    _rows: range
    _cols: range

    @classmethod
    def wrap(
        cls,
        array: da.Array,
        tiles: TileReader,
        level: int,
        geometry: LevelGeometry,
        rows: range,
        cols: range,
    ) -> TileWindow:
        """``array`` (a dask array of exactly ``rows x cols`` of ``level``) as a window."""
        window = cls(array.dask, array.name, array.chunks, meta=array._meta)
        return window._bind(tiles, level, array.name, geometry, rows, cols)

    def _bind(
        self,
        tiles: TileReader,
        level: int,
        level_name: str,
        geometry: LevelGeometry,
        rows: range,
        cols: range,
    ) -> TileWindow:
        self._tiles, self._level, self._level_name = tiles, level, level_name
        self._geometry, self._rows, self._cols = geometry, rows, cols
        return self

    def __getitem__(self, index: Any) -> da.Array:
        window = plain_window(index, len(self._rows), len(self._cols))
        if window is None:
            return super().__getitem__(index)
        rows, cols = self._rows[window[0]], self._cols[window[1]]
        if (rows, cols) == (self._rows, self._cols):
            return self
        if not rows or not cols:
            return super().__getitem__(index)
        g = self._geometry
        tasks = WindowTasks(self._level_name, self._tiles, self._level, g, rows, cols)
        chunks = (axis_chunks(rows, g.tile_height), axis_chunks(cols, g.tile_width), (3,))
        graph = HighLevelGraph.from_collections(tasks.name, tasks, dependencies=())
        window = TileWindow(graph, tasks.name, chunks, meta=_META)
        return window._bind(self._tiles, self._level, self._level_name, g, rows, cols)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if len(self._rows) * len(self._cols) * 3 > WINDOW_MAX_BYTES or 0 in self.shape:
            return super().__array__(dtype=dtype, copy=copy)
        pixels = self._tiles.window(self._level, self._geometry, self._rows, self._cols)
        return pixels if dtype is None else pixels.astype(dtype, copy=False)


class WindowTasks(Mapping):
    """The dask tasks of a window, made on demand: ``(name, i, j, 0)`` -> crop of one tile."""

    def __init__(
        self,
        level_name: str,
        tiles: TileReader,
        level: int,
        geometry: LevelGeometry,
        rows: range,
        cols: range,
    ) -> None:
        self.name = f"{level_name}/{rows.start}-{rows.stop}/{cols.start}-{cols.stop}"
        self._tiles, self._level, self._geometry = tiles, level, geometry
        self._rows, self._cols = rows, cols
        self._first = (rows.start // geometry.tile_height, cols.start // geometry.tile_width)
        self._shape = (
            (rows.stop - 1) // geometry.tile_height - self._first[0] + 1,
            (cols.stop - 1) // geometry.tile_width - self._first[1] + 1,
        )

    def __getitem__(self, key: object) -> tuple[Any, ...]:
        if not (isinstance(key, tuple) and len(key) == 4 and key[0] == self.name):
            raise KeyError(key)
        _, i, j, k = key
        if not (0 <= i < self._shape[0] and 0 <= j < self._shape[1] and k == 0):
            raise KeyError(key)
        row, col = self._first[0] + i, self._first[1] + j
        g = self._geometry
        y0, x0 = row * g.tile_height, col * g.tile_width
        ys = slice(max(y0, self._rows.start) - y0, min(y0 + g.tile_height, self._rows.stop) - y0)
        xs = slice(max(x0, self._cols.start) - x0, min(x0 + g.tile_width, self._cols.stop) - x0)
        return (_crop, self._tiles, self._level, col, row, ys, xs)

    def __iter__(self) -> Iterator[tuple[str, int, int, int]]:
        for i in range(self._shape[0]):
            for j in range(self._shape[1]):
                yield (self.name, i, j, 0)

    def __len__(self) -> int:
        return self._shape[0] * self._shape[1]


def _crop(tiles: TileReader, level: int, col: int, row: int, ys: slice, xs: slice) -> np.ndarray:
    return tiles.tile(level, col, row)[ys, xs]


def axis_chunks(span: range, tile: int) -> tuple[int, ...]:
    """Chunk sizes of a non-empty ``span`` of pixels cut on a grid of ``tile`` pixels."""
    edges = [span.start, *range((span.start // tile + 1) * tile, span.stop, tile), span.stop]
    return tuple(b - a for a, b in pairwise(edges))


def plain_window(index: Any, height: int, width: int) -> tuple[slice, slice] | None:
    """Row and column slices (step 1, clipped) when ``index`` selects a rectangle with all
    three channels; None for anything else (integers, steps, Ellipsis, arrays, None ...)."""
    if not isinstance(index, tuple):
        index = (index,)
    if len(index) > 3 or not all(isinstance(item, slice) for item in index):
        return None
    index = index + (slice(None),) * (3 - len(index))
    bounds = []
    for item, size in zip(index, (height, width, 3), strict=True):
        if item.step not in (None, 1):
            return None
        start, stop, _ = item.indices(size)
        bounds.append(slice(start, max(start, stop)))
    if (bounds[2].start, bounds[2].stop) != (0, 3):
        return None
    return bounds[0], bounds[1]
