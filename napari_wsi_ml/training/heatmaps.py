"""Patch-probability maps of evaluated slides, as georeferenced :class:`Heatmap` files.

The grid is :func:`~napari_wsi_ml.data.grid_corners`' (from level-0 ``(0, 0)``, step = the
stride in level-0 pixels), so cell ``(i, j)`` is the patch with top-left corner
``(j · stride_x, i · stride_y)``: origin ``(0, 0)``, spacing = stride, size = the plan's extent.
Only tissue patches are scored; other cells are NaN.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from napari_wsi_ml.data import grid_patches
from napari_wsi_ml.data.dataset import PatchDataset
from napari_wsi_ml.inference import Heatmap
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.training.data_setup import PreparedSlide
from napari_wsi_ml.training.loops import patch_loader, predict


def heatmap_from_predictions(
    probs: np.ndarray,
    xy: np.ndarray,
    item: PreparedSlide,
    stride: tuple[int, int],
    class_names: tuple[str, ...],
    run_id: str,
) -> Heatmap:
    """Place patch probabilities ``(N, C)`` at their level-0 corners ``xy`` on the grid."""
    ex, ey = item.plan.extent
    sx, sy = stride
    cols = (item.size[0] - ex) // sx + 1
    rows = (item.size[1] - ey) // sy + 1
    values = np.full((rows, cols, len(class_names)), np.nan, dtype=np.float32)
    if len(xy):
        values[xy[:, 1] // sy, xy[:, 0] // sx] = probs
    return Heatmap(
        values=values,
        origin=(0.0, 0.0),
        stride=(float(sx), float(sy)),
        patch_size=(float(ex), float(ey)),
        class_names=class_names,
        run_id=run_id,
        slide_fingerprint=item.fingerprint,
        extra={"slide": item.record.slide, "read_plan": item.plan.to_dict()},
    )


def slide_heatmap(
    model: nn.Module,
    item: PreparedSlide,
    *,
    stride: int | None,
    min_tissue: float,
    class_names: tuple[str, ...],
    run_id: str,
    device: torch.device,
    batch_size: int,
    num_workers: int = 0,
    amp: bool = False,
) -> tuple[Heatmap, dict[str, Any]]:
    """Score every tissue grid patch of one slide; the heatmap and the raw predictions."""
    with open_slide(item.record.path) as slide:
        patches = grid_patches(
            slide, item.plan, stride=stride, min_tissue=min_tissue, tissue=item.tissue
        )
        level0_stride = item.plan.level0_stride(stride)
    dataset = PatchDataset([patches]) if len(patches) else None
    if dataset is None:
        result = {"probs": np.zeros((0, len(class_names))), "xy": np.zeros((0, 2), np.int64)}
    else:
        loader, _ = patch_loader(
            dataset, batch_size=batch_size, num_workers=num_workers, seed=0, shuffle=False
        )
        result = predict(model, loader, device, amp=amp)
        dataset.close()
    heatmap = heatmap_from_predictions(
        result["probs"], result["xy"], item, level0_stride, class_names, run_id
    )
    return heatmap, result


def heatmap_path(folder: Path, slide: str) -> Path:
    """``heatmaps/<slide>.heatmap.npz``."""
    return folder / f"{slide}.heatmap.npz"
