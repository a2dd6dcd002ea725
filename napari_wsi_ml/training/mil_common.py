"""Pieces shared by the patch-scoring slide tasks: patch pixels, scoring, heatmaps.

- :class:`PatchPixels`: the pixels of every cohort slide's grid patches, read once and held in
  memory when they fit (else read again on each request).
- :func:`score_patches`: softmax probabilities of patches, in batches, without gradients.
- :func:`cohort_heatmap`: per-patch values of a cohort slide as a georeferenced
  :class:`~napari_wsi_ml.inference.Heatmap`, on the same grid convention as the patch
  classifier's heatmaps (cell ``(i, j)`` = the patch with level-0 top-left corner
  ``(j · stride_x, i · stride_y)``; origin ``(0, 0)``; NaN where no patch was scored).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from napari_wsi_ml.data.reading import read_patches
from napari_wsi_ml.inference import Heatmap
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.training.loops import autocast
from napari_wsi_ml.training.slide_data import CohortItem


class PatchPixels:
    """uint8 ``(n, H, W, 3)`` pixels of the grid patches of cohort slides.

    Args:
        items: The cohort slides (their ``patches`` are read).
        cache_bytes: Hold every slide's pixels in memory when they fit in this many bytes
            (0: never; patches are then read from the slide at every request).
        progress: Called ``progress(done, total)`` after each slide is read into the cache.
    """

    def __init__(
        self,
        items: Sequence[CohortItem],
        *,
        cache_bytes: int = 0,
        progress: Callable[[int, int], Any] | None = None,
    ) -> None:
        self.items = list(items)
        self.failed: dict[str, int] = {}
        need = sum(len(i.patches) * int(np.prod(i.plan.patch_size)) * 3 for i in self.items)
        self.cached = 0 < need <= cache_bytes
        self._cache: list[np.ndarray] = []
        if self.cached:
            for index in range(len(self.items)):
                self._cache.append(self._read(index, None))
                if progress is not None:
                    progress(index + 1, len(self.items))

    @property
    def nbytes(self) -> int:
        """Bytes held in memory."""
        return sum(a.nbytes for a in self._cache)

    def _read(self, index: int, which: np.ndarray | None) -> np.ndarray:
        item = self.items[index]
        xy = item.patches.xy if which is None else item.patches.xy[which]
        with open_slide(item.path) as slide:
            batch = read_patches(slide, xy, item.plan)
        if batch.failed:  # damaged tiles: those patches stay white; the count is reported
            self.failed[item.slide] = self.failed.get(item.slide, 0) + batch.failed
        return batch.images

    def get(self, index: int, which: np.ndarray | None = None) -> np.ndarray:
        """Pixels of slide ``index``'s patches ``which`` (indices; None: all), in order."""
        if self.cached:
            pixels = self._cache[index]
            return pixels if which is None else pixels[np.asarray(which)]
        return self._read(index, None if which is None else np.asarray(which))


def to_tensor(pixels: np.ndarray) -> torch.Tensor:
    """uint8 ``(n, H, W, 3)`` → uint8 ``(n, 3, H, W)`` tensor."""
    return torch.from_numpy(np.ascontiguousarray(pixels)).permute(0, 3, 1, 2).contiguous()


@torch.no_grad()
def score_patches(
    model: nn.Module,
    pixels: np.ndarray,
    device: torch.device,
    *,
    batch_size: int = 128,
    amp: bool = False,
) -> np.ndarray:
    """Softmax probabilities ``(n, C)`` of the patches ``pixels`` (eval mode, restored after)."""
    was_training = model.training
    model.eval()
    out = []
    try:
        for start in range(0, len(pixels), batch_size):
            images = to_tensor(pixels[start : start + batch_size]).to(device, non_blocking=True)
            with autocast(device, amp):
                logits = model(images)
            out.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
    finally:
        model.train(was_training)
    if not out:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(out).astype(np.float32)


def cohort_heatmap(
    item: CohortItem,
    values: np.ndarray,
    class_names: Sequence[str],
    run_id: str,
    *,
    extra: dict[str, Any] | None = None,
) -> Heatmap:
    """Place per-patch ``values`` ``(n, C)`` of ``item.patches`` on the slide's patch grid."""
    values = np.asarray(values, dtype=np.float32).reshape(len(item.patches), -1)
    ex, ey = item.plan.extent
    sx, sy = item.level0_stride_xy
    cols = (item.size[0] - ex) // sx + 1
    rows = (item.size[1] - ey) // sy + 1
    grid = np.full((rows, cols, values.shape[1]), np.nan, dtype=np.float32)
    xy = item.patches.xy
    if len(xy):
        grid[xy[:, 1] // sy, xy[:, 0] // sx] = values
    return Heatmap(
        values=grid,
        origin=(0.0, 0.0),
        stride=(float(sx), float(sy)),
        patch_size=(float(ex), float(ey)),
        class_names=tuple(class_names),
        run_id=run_id,
        slide_fingerprint=item.fingerprint,
        extra={"slide": item.slide, "read_plan": item.plan.to_dict(), **(extra or {})},
    )


def heatmap_path(folder: Path, slide: str, kind: str = "") -> Path:
    """``<folder>/<slide>.heatmap.npz`` (or ``<slide>.<kind>.heatmap.npz``)."""
    return Path(folder) / (f"{slide}.{kind}.heatmap.npz" if kind else f"{slide}.heatmap.npz")
