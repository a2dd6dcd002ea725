"""Class activation maps of the whole-slide CNN as georeferenced :class:`Heatmap` files.

Convention (level-0 pixels ``(x, y)``). The slide image (scale ``(sx, sy)`` level-0 pixels per
image pixel, :class:`~.whole_slide_data.SlideImageSpec`) sits at the canvas' top-left corner.
Feature cell ``(i, j)`` is centred on continuous image coordinate ``(S·j + o + ½, S·i + o + ½)``
(:class:`~napari_wsi_ml.models.whole_slide.CellGeometry`: ``S`` = 32, ``o`` = 0 for timm's
ResNets), so the heatmap has

- ``stride`` = ``patch_size`` = ``(S·sx, S·sy)``: a cell's footprint is the level-0 area of one
  feature cell (its receptive field is larger; the footprint is what the cell summarises);
- ``origin`` = ``((o + ½ − S/2)·sx, (o + ½ − S/2)·sy)`` (about half a cell left of and above the
  slide), so that ``origin + j·stride + patch_size/2`` is the cell's centre in level-0.

Only cells whose centre lies on the slide image are kept (padding is dropped). Values are, per
cell, the softmax over classes of the class activations ``W·f + b`` — the prediction the model
would make for a slide made of that cell alone — in [0, 1] (``extra["value_range"]``).
"""

from __future__ import annotations

import math

import numpy as np

from napari_wsi_ml.inference import Heatmap
from napari_wsi_ml.models.whole_slide import CellGeometry
from napari_wsi_ml.training.whole_slide_data import SlideImageSpec


def cells_on_image(length: int, geometry: CellGeometry, available: int) -> int:
    """How many cells (of ``available``) have their centre on an image of ``length`` pixels."""
    count = math.ceil((length - geometry.offset - 0.5) / geometry.stride)
    return max(0, min(count, available))


def softmax(values: np.ndarray, axis: int = 0) -> np.ndarray:
    """Numerically stable softmax of float ``values`` along ``axis``."""
    shifted = values - values.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def cam_heatmap(
    cam: np.ndarray,
    spec: SlideImageSpec,
    geometry: CellGeometry,
    *,
    class_names: tuple[str, ...],
    run_id: str,
    slide: str,
    pooling: str,
) -> Heatmap:
    """The :class:`Heatmap` of one slide's class activations ``cam`` ``(C, h, w)`` (logits)."""
    rows = cells_on_image(spec.size[1], geometry, cam.shape[1])
    cols = cells_on_image(spec.size[0], geometry, cam.shape[2])
    logits = np.asarray(cam[:, :rows, :cols], dtype=np.float64)
    values = softmax(logits, axis=0).transpose(1, 2, 0).astype(np.float32)
    sx, sy = spec.scale
    first = geometry.offset + 0.5 - geometry.stride / 2
    step = (geometry.stride * sx, geometry.stride * sy)
    return Heatmap(
        values=values,
        origin=(first * sx, first * sy),
        stride=step,
        patch_size=step,
        class_names=class_names,
        run_id=run_id,
        slide_fingerprint=spec.fingerprint,
        extra={
            "slide": slide,
            "kind": "class_activation_map",
            "pooling": pooling,
            "values": "softmax over classes of the per-cell class activations",
            "value_range": [0.0, 1.0],
            "image_size": list(spec.size),
            "image_scale": [sx, sy],
            "cell_stride_px": geometry.stride,
            "cell_offset_px": geometry.offset,
            "cam_logit_range": [float(logits.min()), float(logits.max())] if logits.size else [],
        },
    )
