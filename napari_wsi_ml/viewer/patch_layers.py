"""Sampled patches and QC masks as napari layers of a slide (the patch sampler's preview).

Patches become a Shapes layer of rectangles in level-0 ``(row, col)`` data with the slide's
scale, so a patch's corner lands at world ``level-0 × mpp`` µm like every shape of the slide.
The QC mask becomes an Image layer: mask pixel ``(col, row)`` covers level-0
``[col·dx, (col+1)·dx) × [row·dy, (row+1)·dy)``, and napari centres pixel ``k`` on data ``k``,
so the layer's scale is ``downsample × mpp`` and its translate half a mask pixel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from napari_wsi_ml.coords import layer_scale, xy_to_rowcol
from napari_wsi_ml.data.patchset import UNLABELLED, PatchSet
from napari_wsi_ml.data.qc import EXCLUDED_BY_DEFAULT, QCMask
from napari_wsi_ml.viewer.slide_layer import KIND_KEY, layer_units

PATCHES_KIND = "patch_preview"
QC_KIND = "qc_mask"
PALETTE = ("#00E5FF", "#FF1744", "#76FF03", "#FFEA00", "#D500F9", "#FF9100", "#2979FF")
UNLABELLED_COLOR = "#B0BEC5"
MAX_RECTANGLES = 20_000
LayerDataTuple = tuple[Any, dict[str, Any], str]


def label_colors(
    label_names: Sequence[str], known: Mapping[str, str] | None = None
) -> dict[str, str]:
    """``"#RRGGBB"`` per label: its ``known`` colour (e.g. its annotation class), else a palette."""
    known = known or {}
    free = [c for c in PALETTE if c.upper() not in {v.upper() for v in known.values()}]
    colors = {}
    for i, name in enumerate(label_names):
        colors[name] = known.get(name) or free[i % len(free)]
    return colors


def patch_rectangles(patches: PatchSet) -> list[np.ndarray]:
    """One ``(4, 2)`` ``(row, col)`` rectangle per patch, level-0 pixels (corners clockwise)."""
    x0, y0, x1, y1 = patches.boxes.T
    corners = np.stack(
        [np.column_stack(c) for c in ((x0, y0), (x1, y0), (x1, y1), (x0, y1))], axis=1
    )
    return [xy_to_rowcol(box) for box in corners]


def patch_layer_data(
    patches: PatchSet,
    *,
    mpp: Sequence[float] | None,
    colors: Mapping[str, str],
    metadata: Mapping[str, Any] | None = None,
    max_rectangles: int = MAX_RECTANGLES,
    seed: int = 0,
) -> LayerDataTuple:
    """A Shapes layer tuple of the patch outlines, coloured by label.

    More than ``max_rectangles`` patches are thinned to a random subset (napari draws tens of
    thousands of shapes slowly); ``metadata["shown"]`` says how many are drawn.
    """
    shown = patches
    if len(patches) > max_rectangles:
        pick = np.random.default_rng(seed).choice(len(patches), max_rectangles, replace=False)
        shown = patches.subset(np.sort(pick))
    names = [shown.label_name(int(i)) if i != UNLABELLED else "" for i in shown.labels]
    edges = [colors.get(name, UNLABELLED_COLOR) for name in names]
    width_px = max(2.0, min(shown.plan.extent) / 24) if len(shown) else 2.0
    kwargs = {
        "name": f"{patches.slide_name} patches",
        "shape_type": "rectangle",
        "edge_color": edges or "white",
        "face_color": "transparent",
        "edge_width": width_px,
        "scale": layer_scale(mpp),
        "units": layer_units(mpp),
        "features": {"label": names},
        "metadata": {
            **(metadata or {}),
            KIND_KEY: PATCHES_KIND,
            "patches": len(patches),
            "shown": len(shown),
        },
    }
    return patch_rectangles(shown), kwargs, "shapes"


def qc_scale_translate(
    qc: QCMask, mpp: Sequence[float] | None
) -> tuple[tuple[float, float], tuple[float, float]]:
    """napari ``(scale, translate)`` ``(row, col)`` that put the QC mask on its slide."""
    row_mpp, col_mpp = layer_scale(mpp)
    scale = (qc.downsample[1] * row_mpp, qc.downsample[0] * col_mpp)
    return scale, (0.5 * scale[0], 0.5 * scale[1])


def qc_layer_data(
    qc: QCMask,
    *,
    mpp: Sequence[float] | None,
    kinds: Sequence[str] = EXCLUDED_BY_DEFAULT,
    name: str = "QC mask",
    metadata: Mapping[str, Any] | None = None,
) -> LayerDataTuple:
    """An Image layer tuple: 1 where QC flagged ``kinds`` (what sampling avoids), else 0."""
    scale, translate = qc_scale_translate(qc, mpp)
    kwargs = {
        "name": name,
        "scale": scale,
        "translate": translate,
        "units": layer_units(mpp),
        "colormap": "green",
        "contrast_limits": (0.0, 1.0),
        "blending": "additive",
        "opacity": 0.6,
        "metadata": {**(metadata or {}), KIND_KEY: QC_KIND, "kinds": list(kinds)},
    }
    return qc.mask(tuple(kinds)).astype(np.float32), kwargs, "image"
