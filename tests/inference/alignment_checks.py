"""Oracles and measures of the alignment tests: is a thresholded heatmap where the truth is?"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import shapely
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.coords import layer_scale
from napari_wsi_ml.inference import Heatmap, napari_heatmap_transform


def coverage_oracle(
    truth: BaseGeometry, extent: tuple[int, int]
) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Score = fraction of the patch at level-0 corner ``xy`` (size ``extent``) inside ``truth``.

    It looks only at the coordinates it is given, so a heatmap built from it is right exactly
    when the heatmap puts every score where its patch is.
    """
    shapely.prepare(truth)

    def score(patches: np.ndarray, xy: np.ndarray) -> np.ndarray:
        assert patches.dtype == np.uint8 and patches.ndim == 4 and patches.shape[3] == 3
        boxes = shapely.box(xy[:, 0], xy[:, 1], xy[:, 0] + extent[0], xy[:, 1] + extent[1])
        full = extent[0] * extent[1]
        within = shapely.contains(truth, boxes)
        edge = shapely.intersects(truth, boxes) & ~within
        inside = np.where(within, float(full), 0.0)
        inside[edge] = shapely.area(shapely.intersection(boxes[edge], truth))
        return (inside / full)[:, None]

    return score


def colour_oracle(colour: tuple[int, int, int], tolerance: int = 40):
    """Score = fraction of the patch's pixels within ``tolerance`` of ``colour`` (per channel).

    It looks only at the pixels, so it checks that each patch was read where it belongs.
    """
    target = np.asarray(colour, dtype=np.int16)

    def score(patches: np.ndarray, xy: np.ndarray) -> np.ndarray:
        close = np.abs(patches.astype(np.int16) - target).max(axis=-1) <= tolerance
        return close.reshape(len(patches), -1).mean(axis=1)[:, None]

    return score


def _hot_runs(values: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(row, first col, last col)`` of every horizontal run of cells ≥ ``threshold``."""
    hot = np.nan_to_num(values, nan=-np.inf) >= threshold
    padded = np.zeros((hot.shape[0], hot.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = hot
    rows, starts = np.nonzero(np.diff(padded, axis=1) == 1)
    _, stops = np.nonzero(np.diff(padded, axis=1) == -1)
    return rows, starts, stops - 1


def hot_region(heatmap: Heatmap, threshold: float = 0.5, channel: int = 0) -> BaseGeometry:
    """Level-0 union of the cells at or above ``threshold``: each cell is the stride box
    centred on its patch's centre (what a pixel of the napari layer covers)."""
    rows, first, last = _hot_runs(heatmap.values[:, :, channel], threshold)
    (ox, oy), (sx, sy) = heatmap.origin, heatmap.stride
    cx = ox + heatmap.patch_size[0] / 2
    cy = oy + heatmap.patch_size[1] / 2
    return shapely.union_all(
        shapely.box(
            cx + first * sx - sx / 2, cy + rows * sy - sy / 2,
            cx + last * sx + sx / 2, cy + rows * sy + sy / 2,
        )
    )  # fmt: skip


def hot_region_through_napari(
    heatmap: Heatmap, mpp: tuple[float, float] | None, threshold: float = 0.5, channel: int = 0
) -> BaseGeometry:
    """As :func:`hot_region`, but placed as napari places the layer's pixels, then taken back
    to level 0 the way the slide layers' world is defined (world = level-0 × layer scale)."""
    rows, first, last = _hot_runs(heatmap.values[:, :, channel], threshold)
    (scale_r, scale_c), (shift_r, shift_c) = napari_heatmap_transform(heatmap, mpp)
    # napari: image pixel (i, j) spans data [i - 0.5, i + 0.5] × [j - 0.5, j + 0.5];
    # world = data × scale + translate
    top, bottom = (rows - 0.5) * scale_r + shift_r, (rows + 0.5) * scale_r + shift_r
    left, right = (first - 0.5) * scale_c + shift_c, (last + 0.5) * scale_c + shift_c
    world_r, world_c = layer_scale(mpp)
    return shapely.union_all(
        shapely.box(left / world_c, top / world_r, right / world_c, bottom / world_r)
    )


def iou(a: BaseGeometry, b: BaseGeometry) -> float:
    """Intersection over union of two areas."""
    return float(a.intersection(b).area / a.union(b).area)


def centroid_error(a: BaseGeometry, b: BaseGeometry) -> float:
    """Distance between the centroids, level-0 px."""
    return float(a.centroid.distance(b.centroid))
