"""Torch datasets of slide patches: fixed patch sets (map-style) and online random patches.

Each item is a dict:

- ``image``: ``(3, H, W)`` tensor, **uint8** 0–255 by default (cheap to move; convert on the
  device), or float32 in [0, 1] with ``dtype=torch.float32``;
- ``label``: int class index (``-1`` = unlabelled); ``slide``: the slide's name;
  ``slide_index``: its position in the dataset's ``slide_names``;
- ``xy``: ``(2,)`` int64 level-0 top-left corner ``(x, y)`` of the patch.

An unreadable patch (a tile that cannot be decoded) yields ``None``; :func:`collate_patches`
drops it and counts it in the batch's ``"skipped"``, and a warning names the patch.

Slides are opened lazily, once per process: in each data-loader worker, never inherited from
the parent (handles are dropped when pickled and by :func:`worker_init` after a fork).

Augmentation: a per-item ``transform`` runs in the worker, one patch at a time. The training
jobs instead leave the items plain and augment each collated batch as a whole on the training
device (:func:`napari_wsi_ml.training.loops.device_batches`): about a third of the CPU cost
per patch, and free on a GPU.

Determinism, for one ``seed`` (call :meth:`set_epoch` before each epoch):

- :class:`PatchDataset`: item ``i`` of epoch ``e`` has the same pixels and the same
  augmentation (its generator is seeded by ``(seed, e, i)``) whatever ``num_workers``; with
  :func:`make_loader` the shuffle order is drawn from ``(seed, e)``, so batches are identical
  for any number of workers.
- :class:`OnlinePatchDataset`: the patches of epoch ``e`` (coordinates, labels and
  augmentations) are drawn per shard from ``(seed, e, slide, shard)``, so the **set** of items
  of an epoch is the same for any ``num_workers`` and world size; their **order** (and so the
  batches) is reproducible for the same ``num_workers`` and world size.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from napari_wsi_ml.data._torch_color import to_float
from napari_wsi_ml.data._torch_loader import (
    DEFAULT_WORKER_CACHE_BYTES,
    SlidePool,
    collate_patches,
    distributed_rank,
    item_generator,
    make_loader,
    worker_init,
)
from napari_wsi_ml.data.patchset import PatchSet
from napari_wsi_ml.data.reading import read_patch
from napari_wsi_ml.data.resolution import ReadPlan
from napari_wsi_ml.data.sampling import RandomPatchSampler
from napari_wsi_ml.errors import ConfigError, SlideError

__all__ = [
    "OnlinePatchDataset",
    "PatchDataset",
    "Transform",
    "collate_patches",
    "make_loader",
    "worker_init",
]

log = logging.getLogger(__name__)

Transform = Callable[[torch.Tensor, torch.Generator], torch.Tensor]
"""Per-item transform: ``(3, H, W)`` uint8 image and its generator → image (e.g. Augmenter)."""


class _PatchSource:
    """What both datasets share: slide handles, the epoch, turning pixels into an item."""

    def __init__(
        self,
        *,
        seed: int,
        transform: Transform | None,
        dtype: torch.dtype,
        max_open: int,
        cache_bytes: int,
    ) -> None:
        if dtype not in (torch.uint8, torch.float32):
            raise ValueError(f"dtype must be torch.uint8 or torch.float32, got {dtype}.")
        self.seed, self.transform, self.dtype = int(seed), transform, dtype
        self._pool = SlidePool(max_open=max_open, cache_bytes=cache_bytes)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self) -> int:
        """The current epoch (shared with worker processes, persistent ones included)."""
        return int(self._epoch)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose patches/augmentations are produced next."""
        self._epoch.fill_(int(epoch))

    def reset_handles(self) -> None:
        """Forget open slides without closing them (a forked worker's inherited handles)."""
        self._pool = SlidePool(max_open=self._pool.max_open, cache_bytes=self._pool.cache_bytes)

    def close(self) -> None:
        """Close the slides this process opened."""
        self._pool.close()

    def _item(
        self,
        path: str,
        plan: ReadPlan,
        xy: np.ndarray,
        label: int,
        slide: tuple[str, int],
        keys: tuple[int, ...],
    ) -> dict[str, Any] | None:
        """The item of the patch at ``xy``; ``slide`` is (name, index), ``keys`` seed it."""
        handle = self._pool.get(path)
        try:
            pixels = read_patch(handle, (int(xy[0]), int(xy[1])), plan)
        except SlideError as error:
            log.warning("Skipped patch at %s of %s: %s", tuple(int(v) for v in xy), slide[0], error)
            return None
        image = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
        if self.transform is not None:
            image = self.transform(image, item_generator(*keys))
        if self.dtype == torch.float32:
            image = to_float(image).to(torch.float32)
        return {
            "image": image,
            "label": int(label),
            "slide": slide[0],
            "slide_index": slide[1],
            "xy": torch.as_tensor(np.asarray(xy, dtype=np.int64)),
        }


def _same_label_names(names: Sequence[tuple[str, ...]]) -> tuple[str, ...]:
    distinct = {tuple(n) for n in names if n}
    if len(distinct) > 1:
        raise ConfigError(f"Patch sets disagree on class names: {sorted(distinct)}.")
    return distinct.pop() if distinct else ()


class PatchDataset(_PatchSource, Dataset):
    """Map-style dataset over fixed patch sets of any number of slides.

    Args:
        patch_sets: One :class:`PatchSet` per slide (each with ``slide_path``).
        transform: Per-item transform, e.g. :class:`~napari_wsi_ml.data.augment.Augmenter`;
            its generator is seeded by ``(seed, epoch, index)``.
        seed: Seed of the augmentations (and of :func:`make_loader`'s shuffle).
        dtype: ``torch.uint8`` (default) or ``torch.float32`` images.
        max_open: Slides kept open per process.
        cache_bytes: Tile cache of each open slide.
    """

    def __init__(
        self,
        patch_sets: Sequence[PatchSet],
        *,
        transform: Transform | None = None,
        seed: int = 0,
        dtype: torch.dtype = torch.uint8,
        max_open: int = 16,
        cache_bytes: int = DEFAULT_WORKER_CACHE_BYTES,
    ) -> None:
        super().__init__(
            seed=seed, transform=transform, dtype=dtype, max_open=max_open, cache_bytes=cache_bytes
        )
        missing = [p.slide_name for p in patch_sets if not p.slide_path]
        if missing:
            raise ConfigError(f"Patch sets without a slide file: {missing}.")
        self.patch_sets = list(patch_sets)
        self.slide_names = [p.slide_name for p in self.patch_sets]
        self.label_names = _same_label_names([p.label_names for p in self.patch_sets])
        self._starts = np.cumsum([0] + [len(p) for p in self.patch_sets])

    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def labels(self) -> np.ndarray:
        """``(len,)`` labels of all items, in index order (for class weights or samplers)."""
        return np.concatenate([p.labels for p in self.patch_sets] or [np.zeros(0, np.int64)])

    def locate(self, index: int) -> tuple[int, int]:
        """``(patch set, row)`` of item ``index``."""
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} patches")
        which = int(np.searchsorted(self._starts, index, side="right")) - 1
        return which, int(index - self._starts[which])

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        which, row = self.locate(int(index))
        patches = self.patch_sets[which]
        return self._item(
            str(patches.slide_path),
            patches.plan,
            patches.xy[row],
            int(patches.labels[row]),
            (patches.slide_name, which),
            (self.seed, self.epoch, int(index)),
        )


class OnlinePatchDataset(_PatchSource, IterableDataset):
    """Online random patches: fresh coordinates inside tissue every epoch, nothing on disk.

    Every epoch draws ``patches_per_slide`` patches of each slide in shards of ``shard_size``;
    shards are shuffled, dealt round-robin to the (rank, worker) pairs, and read ``mix`` shards
    at a time in a shuffled order, so batches mix slides.

    Args:
        samplers: One :class:`RandomPatchSampler` per slide (built once, in the parent).
        patches_per_slide: Patches drawn per slide and epoch.
        labeller: Optional ``PatchSet → PatchSet`` relabelling each shard (e.g. from
            annotations); default: the samplers' labels.
        shard_size: Patches per shard (the unit of seeding and of work per worker).
        mix: Shards read together (and shuffled) by a worker.
        seed, transform, dtype, max_open, cache_bytes: As for :class:`PatchDataset`.
        rank: This process's rank and ``world_size`` the number of processes; default from
            :mod:`torch.distributed` when initialised, else 0 and 1.
    """

    def __init__(
        self,
        samplers: Sequence[RandomPatchSampler],
        *,
        patches_per_slide: int,
        labeller: Callable[[PatchSet], PatchSet] | None = None,
        shard_size: int = 16,
        mix: int = 8,
        seed: int = 0,
        transform: Transform | None = None,
        dtype: torch.dtype = torch.uint8,
        max_open: int = 16,
        cache_bytes: int = DEFAULT_WORKER_CACHE_BYTES,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__(
            seed=seed, transform=transform, dtype=dtype, max_open=max_open, cache_bytes=cache_bytes
        )
        if patches_per_slide < 1 or shard_size < 1 or mix < 1:
            raise ConfigError("patches_per_slide, shard_size and mix must be positive.")
        self.samplers, self.labeller = list(samplers), labeller
        self.patches_per_slide, self.shard_size, self.mix = patches_per_slide, shard_size, mix
        self.slide_names = [s.slide_name for s in self.samplers]
        self.label_names = _same_label_names([tuple(s.label_names or ()) for s in self.samplers])
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        """Patches per epoch over all processes (fewer where tissue is scarce)."""
        return len(self.samplers) * self.patches_per_slide

    def shards(self) -> list[tuple[int, int, int]]:
        """``(slide, shard, count)`` of every shard of an epoch."""
        per_slide = math.ceil(self.patches_per_slide / self.shard_size)
        out = []
        for slide in range(len(self.samplers)):
            for shard in range(per_slide):
                count = min(self.shard_size, self.patches_per_slide - shard * self.shard_size)
                out.append((slide, shard, count))
        return out

    def _my_shards(self, epoch: int) -> list[tuple[int, int, int]]:
        rank, world = _rank_and_world(self.rank, self.world_size)
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        shards = self.shards()
        order = np.random.default_rng([self.seed, epoch]).permutation(len(shards))
        return [shards[i] for i in order[rank * workers + worker :: world * workers]]

    def shard_patches(self, epoch: int, slide: int, shard: int, count: int) -> PatchSet:
        """The patches of one shard (drawn from ``(seed, epoch, slide, shard)``)."""
        rng = np.random.default_rng([self.seed, epoch, slide, shard])
        patches = self.samplers[slide].sample(count, rng=rng)
        return self.labeller(patches) if self.labeller is not None else patches

    def __iter__(self) -> Iterator[dict[str, Any] | None]:
        epoch = self.epoch
        mine = self._my_shards(epoch)
        for start in range(0, len(mine), self.mix):
            jobs = []
            for slide, shard, count in mine[start : start + self.mix]:
                patches = self.shard_patches(epoch, slide, shard, count)
                jobs += [(slide, shard, k, patches) for k in range(len(patches))]
            first = mine[start]
            order = np.random.default_rng([self.seed, epoch, first[0], first[1], 1])
            for j in order.permutation(len(jobs)).tolist():
                slide, shard, k, patches = jobs[j]
                yield self._item(
                    str(patches.slide_path),
                    patches.plan,
                    patches.xy[k],
                    int(patches.labels[k]),
                    (self.slide_names[slide], slide),
                    (self.seed, epoch, slide, shard, k),
                )


def _rank_and_world(rank: int | None, world: int | None) -> tuple[int, int]:
    if rank is not None and world is not None:
        return rank, world
    return distributed_rank()
