"""Patch batches of a :class:`~.grid.ScoringGrid`, read region by region on a reader thread.

The grid is cut into blocks of cells whose patches fit in about ``region_px`` read-level pixels
a side. Each block's tissue cells are read as **one** region of the read level, from which
every patch is sliced (overlapping patches share the pixels read once) and resized to the
output size exactly as :func:`~napari_wsi_ml.data.read_patch` would: a patch at level-0
``(x, y)`` starts at read-level pixel ``round(x / downsample)``. Batches of ``batch_size``
patches are filled across blocks and handed over through a queue of ``prefetch`` batches, so
the next batch is read while the current one is scored, and at most
``prefetch + 2`` batches and one region are in memory at any time.

A region over an undecodable tile is retried patch by patch; the patches that still fail are
skipped (their cells stay NaN) and counted.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from napari_wsi_ml.data.reading import read_patches
from napari_wsi_ml.data.resolution import resize_patch
from napari_wsi_ml.errors import SlideError
from napari_wsi_ml.inference.grid import ScoringGrid

if TYPE_CHECKING:
    from napari_wsi_ml.data.reading import RegionReader

DEFAULT_REGION_PX = 2048
"""Side of a region read at once, in read-level pixels (about 12 MB of RGB)."""

_DONE = object()


@dataclass
class PatchBatch:
    """Patches read together, with their cells.

    Attributes:
        images: ``(N, H, W, 3)`` uint8 patches at the output size.
        xy: ``(N, 2)`` int64 level-0 top-left corners ``(x, y)``.
        rows: ``(N,)`` grid rows of the patches.
        cols: ``(N,)`` grid columns.
    """

    images: np.ndarray
    xy: np.ndarray
    rows: np.ndarray
    cols: np.ndarray

    def __len__(self) -> int:
        return len(self.xy)


@dataclass
class ReadStats:
    """What the reader did: regions read, patches skipped over unreadable tiles."""

    regions: int = 0
    largest_region: tuple[int, int] = (0, 0)
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


class _BatchBuilder:
    """Fills fixed-size batches with patches, yielding each full one."""

    def __init__(self, grid: ScoringGrid, batch_size: int) -> None:
        width, height = grid.plan.patch_size
        self.batch_size = batch_size
        self.shape = (batch_size, height, width, 3)
        self._new()

    def _new(self) -> None:
        self.images = np.empty(self.shape, dtype=np.uint8)
        self.xy = np.empty((self.batch_size, 2), dtype=np.int64)
        self.cells = np.empty((self.batch_size, 2), dtype=np.int64)
        self.count = 0

    def add(self, image: np.ndarray, xy: np.ndarray, cell: tuple[int, int]) -> PatchBatch | None:
        """Add one patch; the batch when it is full."""
        self.images[self.count] = image
        self.xy[self.count] = xy
        self.cells[self.count] = cell
        self.count += 1
        return self.flush() if self.count == self.batch_size else None

    def flush(self) -> PatchBatch | None:
        """The patches gathered so far as a batch (None when there are none)."""
        if self.count == 0:
            return None
        n = self.count
        batch = PatchBatch(self.images[:n], self.xy[:n], self.cells[:n, 0], self.cells[:n, 1])
        self._new()
        return batch


class RegionBatches:
    """Batches of the ``cells`` (boolean ``(rows, cols)``) of ``grid``, read on a thread.

    Iterate it once; :attr:`stats` is complete when the iteration ends. Leaving the loop early
    (or an exception in it) stops the reader thread.
    """

    def __init__(
        self,
        slide: RegionReader,
        grid: ScoringGrid,
        cells: np.ndarray,
        *,
        batch_size: int,
        prefetch: int = 2,
        region_px: int = DEFAULT_REGION_PX,
    ) -> None:
        if batch_size < 1 or prefetch < 1 or region_px < 1:
            raise ValueError("batch_size, prefetch and region_px must be at least 1")
        self.slide, self.grid, self.cells = slide, grid, np.asarray(cells, dtype=bool)
        self.batch_size, self.prefetch, self.region_px = batch_size, prefetch, region_px
        self.stats = ReadStats()

    def __iter__(self) -> Generator[PatchBatch, None, None]:
        handoff: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()
        thread = threading.Thread(
            target=self._produce, args=(handoff, stop), name="heatmap-reader", daemon=True
        )
        thread.start()
        try:
            while True:
                item = handoff.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while thread.is_alive():  # unblock a reader waiting on a full queue
                with contextlib.suppress(queue.Empty):
                    handoff.get(timeout=0.05)
            thread.join()

    # -- reader thread ------------------------------------------------------------------
    def _produce(self, handoff: queue.Queue, stop: threading.Event) -> None:
        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    handoff.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            builder = _BatchBuilder(self.grid, self.batch_size)
            for block in self.grid.blocks(self.grid.cells_per_region(self.region_px)):
                for batch in self._block_batches(block, builder):
                    if not put(batch):
                        return
            last = builder.flush()
            if last is not None and not put(last):
                return
            put(_DONE)
        except BaseException as error:  # handed to the consuming thread
            put(error)

    def _block_batches(
        self, block: tuple[slice, slice], builder: _BatchBuilder
    ) -> Iterator[PatchBatch]:
        rows, cols = np.nonzero(self.cells[block])
        if len(rows) == 0:
            return
        rows, cols = rows + block[0].start, cols + block[1].start
        xy = self.grid.corners(rows, cols)
        for image, k in self._patches(xy):
            batch = builder.add(image, xy[k], (rows[k], cols[k]))
            if batch is not None:
                yield batch

    def _patches(self, xy: np.ndarray) -> Iterator[tuple[np.ndarray, int]]:
        """``(patch, index)`` of each corner of ``xy`` that can be read."""
        plan = self.grid.plan
        ds = plan.level_downsample
        start = np.round(xy / ds).astype(np.int64)  # read-level pixel of each corner
        origin = start.min(axis=0)
        size = start.max(axis=0) - origin + np.asarray(plan.read_size)
        # the level-0 location whose read-level pixel is `origin` (read_region rounds it back)
        location = (round(float(origin[0]) * ds), round(float(origin[1]) * ds))
        try:
            region = self.slide.read_region(location, plan.level, (int(size[0]), int(size[1])))
        except SlideError:
            yield from self._single_patches(xy)
            return
        self._count_region(region.shape)
        rw, rh = plan.read_size
        for k, (ox, oy) in enumerate((start - origin).tolist()):
            pixels = region[oy : oy + rh, ox : ox + rw]
            yield resize_patch(pixels, plan.patch_size), k

    def _single_patches(self, xy: np.ndarray) -> Iterator[tuple[np.ndarray, int]]:
        batch = read_patches(self.slide, xy, self.grid.plan)
        self.stats.skipped += batch.failed
        room = max(0, 20 - len(self.stats.errors))
        self.stats.errors.extend(message for _, message in batch.errors[:room])
        for k in np.flatnonzero(batch.ok).tolist():
            yield batch.images[k], k

    def _count_region(self, shape: tuple[int, ...]) -> None:
        self.stats.regions += 1
        height, width = shape[:2]
        old = self.stats.largest_region
        self.stats.largest_region = (max(old[0], width), max(old[1], height))
