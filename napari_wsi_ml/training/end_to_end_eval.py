"""Scoring whole slides with the end-to-end model, and their attention heatmaps.

A slide is scored on all its tissue patches (or a fixed seeded subset,
:func:`~.end_to_end_data.eval_tiles`): every rank encodes its block of each slide's tiles,
the features are gathered to rank 0, which runs the aggregator over the whole bag. The
attention heatmap is placed on the slide's patch grid as the patch classifier's heatmaps are
(origin ``(0, 0)``, stride = the grid step, size = the patch extent, level-0 pixels); cells
without a scored tile are NaN.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from napari_wsi_ml.data.dataset import PatchDataset
from napari_wsi_ml.inference import Heatmap
from napari_wsi_ml.jobs.feature_exchange import gather_rows, rank_and_world, row_counts
from napari_wsi_ml.models.end_to_end import EndToEndModel
from napari_wsi_ml.training.end_to_end_data import PlannedBatches, eval_tiles
from napari_wsi_ml.training.loops import autocast
from napari_wsi_ml.training.slide_data import CohortItem


@dataclass
class SlideScore:
    """A scored slide: class probabilities, and the attention of each scored tile."""

    probs: np.ndarray  # (C,)
    attention: np.ndarray  # (n,)
    xy: np.ndarray  # (n, 2) level-0 corners of the scored tiles


def _batches(
    items: Sequence[CohortItem], most: int | None, seed: int, batch_size: int
) -> list[list[int]]:
    """This rank's dataset indices to read, in batches that never mix slides."""
    rank, world = rank_and_world()
    batches, start = [], 0
    for number, item in enumerate(items):
        tiles = eval_tiles(len(item.patches), most, seed, number)
        mine = start + np.array_split(tiles, world)[rank]
        batches += [mine[i : i + batch_size].tolist() for i in range(0, len(mine), batch_size)]
        start += len(item.patches)
    return batches


@torch.no_grad()
def score_slides(
    model: EndToEndModel,
    items: Sequence[CohortItem],
    loader: torch.utils.data.DataLoader,
    sampler: PlannedBatches,
    *,
    most: int | None,
    seed: int,
    batch_size: int,
    device: torch.device,
    amp: bool = False,
) -> list[SlideScore] | None:
    """Scores of ``items`` on rank 0 (None on other ranks); every rank must call this.

    Args:
        model: The model (put in eval mode here, back in training mode after).
        items: The slides; ``loader`` reads a :class:`PatchDataset` over their patch sets.
        loader, sampler: From :func:`~.end_to_end_data.planned_loader`.
        most: At most this many tiles per slide (None: all its patches).
        seed: Seed of the tile subset.
        batch_size: Tiles encoded together.
        device: Where the model runs.
        amp: Mixed precision (CUDA only).
    """
    was_training = model.training
    model.eval()
    sampler.batches = _batches(items, most, seed, batch_size)
    features: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(items))}
    corners: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(items))}
    for batch in loader:
        if not len(batch["label"]):
            continue
        with autocast(device, amp):
            found = model.encode(batch["image"].to(device, non_blocking=True)).float()
        which = int(batch["slide_index"][0])
        features[which].append(found)
        corners[which].append(batch["xy"].to(device))
    scores: list[SlideScore] = []
    rank, _ = rank_and_world()
    for index in range(len(items)):
        local = _cat(features[index], (0, model.num_features), torch.float32, device)
        xy = _cat(corners[index], (0, 2), torch.int64, device)
        counts = row_counts(len(local), device)
        bag, bag_xy = gather_rows(local, counts=counts), gather_rows(xy, counts=counts)
        if rank != 0:
            continue
        logits, attention = model.aggregate(bag)
        scores.append(
            SlideScore(
                probs=torch.softmax(logits.float(), -1).cpu().numpy(),
                attention=attention.float().cpu().numpy(),
                xy=bag_xy.cpu().numpy(),
            )
        )
    model.train(was_training)
    return scores if rank == 0 else None


def _cat(parts: list[torch.Tensor], empty: tuple[int, int], dtype: torch.dtype, device):
    return torch.cat(parts) if parts else torch.zeros(empty, dtype=dtype, device=device)


def eval_dataset(items: Sequence[CohortItem], seed: int) -> PatchDataset:
    """The un-augmented tiles of ``items`` (dataset index order = slide order)."""
    return PatchDataset([item.patches for item in items], seed=seed)


def attention_heatmap(
    item: CohortItem, score: SlideScore, classes: Sequence[str], run_id: str
) -> Heatmap:
    """The attention of ``score``'s tiles on ``item``'s patch grid (see the module docstring)."""
    ex, ey = item.plan.extent
    sx, sy = item.level0_stride_xy
    cols = (item.size[0] - ex) // sx + 1
    rows = (item.size[1] - ey) // sy + 1
    values = np.full((rows, cols, 1), np.nan, dtype=np.float32)
    if len(score.xy):
        values[score.xy[:, 1] // sy, score.xy[:, 0] // sx, 0] = score.attention
    return Heatmap(
        values=values,
        origin=(0.0, 0.0),
        stride=(float(sx), float(sy)),
        patch_size=(float(ex), float(ey)),
        class_names=("attention",),
        run_id=run_id,
        slide_fingerprint=item.fingerprint,
        extra={
            "slide": item.slide,
            "kind": "attention",
            "read_plan": item.plan.to_dict(),
            "slide_scores": {c: float(p) for c, p in zip(classes, score.probs, strict=True)},
            "tiles_scored": len(score.xy),
        },
    )
