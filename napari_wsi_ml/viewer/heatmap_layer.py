"""A :class:`~napari_wsi_ml.inference.Heatmap` as a napari image layer on its slide.

Cell ``(i, j)``'s centre lands on the centre of the patch it scored (see
:func:`napari_wsi_ml.inference.napari_heatmap_transform`). Low values are transparent, so the
tissue shows through where the score is low; cells without a score (NaN) are fully transparent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.colormaps import Colormap

from napari_wsi_ml.inference.heatmap import Heatmap, napari_heatmap_transform
from napari_wsi_ml.viewer.slide_layer import KIND_KEY, slide_metadata

if TYPE_CHECKING:
    from napari_wsi_ml.slide import Slide

HEATMAP_KIND = "heatmap"

# Transparent at the low end, then yellow → orange → red with rising opacity.
HEAT_COLORMAP = Colormap(
    colors=[
        [1.0, 1.0, 0.0, 0.0],
        [1.0, 0.85, 0.0, 0.35],
        [1.0, 0.45, 0.0, 0.75],
        [0.85, 0.0, 0.0, 0.95],
    ],
    controls=[0.0, 0.25, 0.6, 1.0],
    name="wsi-ml heat (transparent low)",
)


def heatmap_contrast_limits(heatmap: Heatmap, channel: int) -> tuple[float, float]:
    """``extra["value_range"]`` if stated (e.g. probabilities), else the data range."""
    stated = heatmap.extra.get("value_range")
    if stated is not None:
        low, high = (float(v) for v in stated)  # type: ignore[union-attr]
        return low, high
    values = heatmap.values[:, :, channel]
    if not np.isfinite(values).any():
        return 0.0, 1.0
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    return (low, high) if high > low else (low, low + 1.0)


def heatmap_layer_data(
    heatmap: Heatmap,
    slide: Slide,
    *,
    channel: int | str = 0,
    opacity: float = 0.7,
) -> tuple[np.ndarray, dict[str, Any], str]:
    """napari image layer data for one class of ``heatmap`` over ``slide``.

    Raises:
        HeatmapError: The heatmap was computed on another slide.
    """
    heatmap.check_slide(slide.fingerprint, slide.name)
    index = heatmap.class_names.index(channel) if isinstance(channel, str) else int(channel)
    low, high = heatmap_contrast_limits(heatmap, index)
    values = np.nan_to_num(heatmap.values[:, :, index], nan=low)
    scale, translate = napari_heatmap_transform(heatmap, slide.mpp)
    metadata = {
        **slide_metadata(slide),
        KIND_KEY: HEATMAP_KIND,
        "heatmap": heatmap.metadata(),
        "class_name": heatmap.class_names[index],
    }
    kwargs = {
        "name": f"{heatmap.run_id}: {heatmap.class_names[index]}",
        "scale": scale,
        "translate": translate,
        "colormap": HEAT_COLORMAP,
        "contrast_limits": (low, high),
        "opacity": opacity,
        "interpolation2d": "nearest",
        "blending": "translucent",
        "units": ("um", "um") if slide.mpp is not None else ("pixel", "pixel"),
        "metadata": metadata,
    }
    return values, kwargs, "image"
