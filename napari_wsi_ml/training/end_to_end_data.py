"""Which tiles end-to-end training reads: slides per step, K tiles per slide, each rank's share.

Everything is a pure function of ``(seed, epoch, step)``, so a resumed run reads exactly the
tiles an uninterrupted one does, and every rank computes the same plan without talking:

- an epoch visits the training slides once, in an order drawn from ``(seed, epoch)``, in steps
  of ``slides_per_step`` slides (the last step may hold fewer);
- each slide of a step contributes ``min(K, its patches)`` tiles drawn without replacement
  from its grid of tissue patches, from ``(seed, epoch, step, slide)``;
- the step's tiles, in slide order, are cut into ``world_size`` contiguous blocks (sizes differ
  by at most one); rank ``r`` reads and encodes block ``r``.

Tiles are items of one :class:`~napari_wsi_ml.data.dataset.PatchDataset` over the slides'
patch sets; :class:`PlannedBatches` feeds a DataLoader the index lists of a plan. Tiles are
augmented one by one by the dataset (seeded by the seed, the epoch and the tile), not as a batch
on the device as the patch classifier does: a tile then looks the same whichever process reads
it, so a multi-process step sees exactly the single-process step's tiles.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from napari_wsi_ml.data.dataset import PatchDataset, collate_patches, worker_init


@dataclass(frozen=True)
class Step:
    """One optimisation step's slides and tiles.

    Attributes:
        slides: ``(B,)`` positions of the step's slides in the training list.
        tiles: ``(T,)`` dataset indices of all the step's tiles, slide after slide.
        groups: ``(T,)`` position (0..B-1) in ``slides`` of each tile's slide.
    """

    slides: np.ndarray
    tiles: np.ndarray
    groups: np.ndarray

    def share(self, rank: int, world_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Rank ``rank``'s contiguous block of ``(tiles, groups)``."""
        blocks = np.array_split(np.arange(len(self.tiles)), world_size)[rank]
        return self.tiles[blocks], self.groups[blocks]


def steps_per_epoch(n_slides: int, slides_per_step: int) -> int:
    """Steps of one pass over ``n_slides`` training slides."""
    return math.ceil(n_slides / slides_per_step)


def epoch_steps(
    patch_counts: Sequence[int],
    *,
    tiles_per_slide: int,
    slides_per_step: int,
    seed: int,
    epoch: int,
) -> list[Step]:
    """The steps of epoch ``epoch`` (see the module docstring).

    Args:
        patch_counts: Number of tissue patches of each training slide, in dataset order (slide
            ``i``'s patches are dataset items ``sum(patch_counts[:i])`` onwards).
        tiles_per_slide: K.
        slides_per_step: B.
        seed: The run's seed.
        epoch: The epoch.
    """
    counts = np.asarray(patch_counts, dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    order = np.random.default_rng([seed, epoch, 0xE2E]).permutation(len(counts))
    steps = []
    for number, begin in enumerate(range(0, len(order), slides_per_step)):
        slides = order[begin : begin + slides_per_step]
        tiles, groups = [], []
        for group, slide in enumerate(slides.tolist()):
            rng = np.random.default_rng([seed, epoch, number, slide, 0x711E])
            k = min(tiles_per_slide, int(counts[slide]))
            tiles.append(starts[slide] + np.sort(rng.choice(counts[slide], k, replace=False)))
            groups.append(np.full(k, group, dtype=np.int64))
        steps.append(Step(slides, np.concatenate(tiles), np.concatenate(groups)))
    return steps


def eval_tiles(n_patches: int, most: int | None, seed: int, slide: int) -> np.ndarray:
    """The patches (sorted positions) a slide is scored on: all, or a fixed seeded subset."""
    if most is None or n_patches <= most:
        return np.arange(n_patches)
    rng = np.random.default_rng([seed, slide, 0xE7A1])
    return np.sort(rng.choice(n_patches, most, replace=False))


class PlannedBatches(Sampler[list[int]]):
    """A batch sampler that yields the index lists set in :attr:`batches` (may change per epoch)."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []

    def __iter__(self) -> Iterator[list[int]]:
        return iter(list(self.batches))

    def __len__(self) -> int:
        return len(self.batches)


def planned_loader(dataset: PatchDataset, num_workers: int) -> tuple[DataLoader, PlannedBatches]:
    """A DataLoader over ``dataset`` that reads the batches its :class:`PlannedBatches` holds."""
    sampler = PlannedBatches()
    options: dict[str, Any] = {}
    if num_workers > 0:
        options = {
            "worker_init_fn": worker_init,
            "persistent_workers": True,
            "prefetch_factor": 2,
            # a fork of a process that ran threaded slide reads can deadlock in the child
            "multiprocessing_context": "spawn",
        }
    loader = DataLoader(
        dataset,
        batch_sampler=sampler,
        # its own generator: starting an epoch must not draw from the global RNG, or a
        # resumed run's dropout would differ from an uninterrupted one's
        generator=torch.Generator().manual_seed(0),
        num_workers=num_workers,
        collate_fn=collate_patches,
        pin_memory=torch.cuda.is_available(),
        **options,
    )
    return loader, sampler
