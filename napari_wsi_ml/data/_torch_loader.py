"""DataLoader plumbing for the patch datasets: slide handles per worker, seeds, collation.

- :class:`SlidePool` keeps the slides a process has opened (least recently used closed first);
  datasets hold one and drop it when pickled, so every worker opens its own handles lazily.
- :func:`item_generator` gives the :class:`torch.Generator` of one item from integer keys, so
  augmentations depend on the item, never on which worker made it.
- :func:`collate_patches` drops unreadable items (``None``) and counts them in ``"skipped"``.
- :func:`make_loader` wires the above into a :class:`torch.utils.data.DataLoader`; its
  workers start by :func:`worker_start_method` (fork on Linux: a worker is ready at once,
  without re-importing torch; slides are fork-safe, see :mod:`napari_wsi_ml.slide`).
"""

from __future__ import annotations

import sys
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, Sampler, get_worker_info

if TYPE_CHECKING:
    from napari_wsi_ml.slide import Slide

DEFAULT_WORKER_CACHE_BYTES = 16 << 20
"""Tile cache of the slides a data-loader worker opens (per worker)."""


class SlidePool:
    """Open slides of this process, by path, at most ``max_open`` at a time."""

    def __init__(self, *, max_open: int = 16, cache_bytes: int = DEFAULT_WORKER_CACHE_BYTES):
        self.max_open, self.cache_bytes = max_open, cache_bytes
        self._open: OrderedDict[str, Slide] = OrderedDict()

    def get(self, path: str) -> Slide:
        """The open slide at ``path`` (opened on first use)."""
        slide = self._open.pop(path, None)
        if slide is None:
            from napari_wsi_ml.slide import open_slide

            slide = open_slide(path, cache_bytes=self.cache_bytes)
            while len(self._open) >= self.max_open:
                self._open.popitem(last=False)[1].close()
        self._open[path] = slide
        return slide

    def close(self) -> None:
        """Close every slide."""
        while self._open:
            self._open.popitem()[1].close()

    def __len__(self) -> int:
        return len(self._open)

    def __getstate__(self) -> dict:
        return {"max_open": self.max_open, "cache_bytes": self.cache_bytes}

    def __setstate__(self, state: dict) -> None:
        self.__init__(**state)  # type: ignore[misc]


def item_seed(*keys: int) -> int:
    """A 63-bit seed derived from integer ``keys`` (NumPy ``SeedSequence``)."""
    state = np.random.SeedSequence([int(k) for k in keys]).generate_state(1, np.uint64)[0]
    return int(state) >> 1


def item_generator(*keys: int) -> torch.Generator:
    """A CPU :class:`torch.Generator` seeded from integer ``keys``."""
    return torch.Generator().manual_seed(item_seed(*keys))


def worker_start_method() -> str:
    """How data-loader workers start: ``"fork"`` on Linux, ``"spawn"`` elsewhere.

    A forked worker inherits the imported modules (no seconds of re-importing torch per worker)
    and the parent's memory copy-on-write. It is safe here: the slide layer gives a forked
    child fresh tile-cache locks and decoder pool (``os.register_at_fork``), datasets drop
    inherited slide handles (:func:`worker_init`), and workers never touch CUDA. macOS and
    Windows spawn (fork is unsafe with macOS system frameworks and absent on Windows).
    """
    return "fork" if sys.platform.startswith("linux") else "spawn"


def worker_init(worker_id: int) -> None:
    """Per-worker setup: one torch thread, synchronous dask reads, the worker's own slides."""
    import dask

    torch.set_num_threads(1)
    dask.config.set(scheduler="synchronous")
    info = get_worker_info()
    reset = getattr(info.dataset, "reset_handles", None) if info is not None else None
    if reset is not None:
        reset()  # a forked worker must not share the parent's file handles


def collate_patches(items: Sequence[dict[str, Any] | None]) -> dict[str, Any]:
    """Stack items into a batch; ``None`` items (unreadable patches) are dropped and counted.

    Returns:
        ``image`` ``(B, 3, H, W)``, ``label`` ``(B,)`` int64, ``xy`` ``(B, 2)`` int64 level-0
        corners, ``slide_index`` ``(B,)`` int64, ``slide`` (B names) and ``skipped`` (int).
    """
    good = [item for item in items if item is not None]
    batch: dict[str, Any] = {
        "image": torch.stack([item["image"] for item in good]) if good else torch.empty(0),
        "label": torch.tensor([item["label"] for item in good], dtype=torch.int64),
        "xy": torch.stack([item["xy"] for item in good])
        if good
        else torch.empty(0, 2, dtype=torch.int64),
        "slide_index": torch.tensor([item["slide_index"] for item in good], dtype=torch.int64),
        "slide": [item["slide"] for item in good],
        "skipped": len(items) - len(good),
    }
    return batch


class EpochShuffleSampler(Sampler[int]):
    """Indices of a map-style dataset in an order drawn from ``(seed, dataset.epoch)``.

    The order depends on the epoch number only (not on how many epochs ran before), so a
    resumed run sees the same order as an uninterrupted one. With ``world_size`` processes,
    rank ``r`` takes every ``world_size``-th index of that order from position ``r``.
    """

    def __init__(self, dataset: Any, seed: int = 0, *, rank: int = 0, world_size: int = 1):
        self.dataset, self.seed, self.rank, self.world_size = dataset, int(seed), rank, world_size

    def __len__(self) -> int:
        return len(range(self.rank, len(self.dataset), self.world_size))

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, int(self.dataset.epoch)])
        order = rng.permutation(len(self.dataset))[self.rank :: self.world_size]
        return iter(order.tolist())


def distributed_rank() -> tuple[int, int]:
    """``(rank, world_size)`` of this process (``(0, 1)`` without :mod:`torch.distributed`)."""
    dist = torch.distributed
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    num_workers: int = 0,
    shuffle: bool | None = None,
    seed: int = 0,
    drop_last: bool = False,
    pin_memory: bool | None = None,
    prefetch_factor: int | None = None,
    persistent_workers: bool = True,
    multiprocessing_context: str | None = None,
) -> DataLoader:
    """A DataLoader with :func:`collate_patches`, :func:`worker_init` and a seeded shuffle.

    Args:
        dataset: A :class:`~napari_wsi_ml.data.dataset.PatchDataset` or
            :class:`~napari_wsi_ml.data.dataset.OnlinePatchDataset`.
        batch_size: Items per batch (a batch may be smaller when items were unreadable).
        num_workers: Worker processes (0: read in this process).
        shuffle: Shuffle a map-style dataset (default True for it; never for iterable ones).
        seed: Seed of the shuffle order, with the dataset's epoch (see
            :class:`EpochShuffleSampler`); under :mod:`torch.distributed` each rank gets its
            share of that order.
        drop_last: Drop the last incomplete batch.
        pin_memory: Pin batches (default: when CUDA is available).
        prefetch_factor: Batches prefetched per worker (DataLoader default when None).
        persistent_workers: Keep workers (and their open slides) between epochs; the
            datasets' :meth:`set_epoch` still reaches them (the epoch is in shared memory).
        multiprocessing_context: How workers start (default :func:`worker_start_method`);
            ``"spawn"`` gives each worker a clean interpreter (scripts then need an
            ``if __name__ == "__main__":`` guard).
    """
    iterable = isinstance(dataset, IterableDataset)
    shuffle = (not iterable) if shuffle is None else shuffle
    options: dict[str, Any] = {}
    if num_workers > 0:
        options["worker_init_fn"] = worker_init
        options["persistent_workers"] = persistent_workers
        options["multiprocessing_context"] = multiprocessing_context or worker_start_method()
        if prefetch_factor is not None:
            options["prefetch_factor"] = prefetch_factor
    if shuffle and not iterable:
        rank, world = distributed_rank()
        options["sampler"] = EpochShuffleSampler(dataset, seed, rank=rank, world_size=world)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_patches,
        drop_last=drop_last,
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        **options,
    )
