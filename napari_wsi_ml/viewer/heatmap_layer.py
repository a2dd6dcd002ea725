"""A :class:`~napari_wsi_ml.inference.Heatmap` as a napari image layer on its slide.

Cell ``(i, j)``'s centre lands on the centre of the patch it scored (see
:func:`napari_wsi_ml.inference.napari_heatmap_transform`). Low values are transparent, so the
tissue shows through where the score is low; cells without a score (NaN) are fully transparent,
and so are cells below the layer's threshold. The layer shows one class at a time; the whole
heatmap rides along in its metadata (``HEATMAP_KEY``) so that the class can be switched.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from napari.utils.colormaps import Colormap

from napari_wsi_ml.inference.heatmap import Heatmap, napari_heatmap_transform
from napari_wsi_ml.inference.review import positive_class
from napari_wsi_ml.viewer.slide_layer import KIND_KEY, slide_metadata

if TYPE_CHECKING:
    from napari.layers import Image

    from napari_wsi_ml.slide import Slide

HEATMAP_KIND = "heatmap"
HEATMAP_KEY = "heatmap_object"  # metadata: the Heatmap itself (every class)
THRESHOLD_KEY = "threshold"  # metadata: cells below it are transparent (None: no threshold)

HEAT_COLORS = np.array(
    [
        [1.0, 1.0, 0.0, 0.0],
        [1.0, 0.85, 0.0, 0.35],
        [1.0, 0.45, 0.0, 0.75],
        [0.85, 0.0, 0.0, 0.95],
    ]
)
HEAT_CONTROLS = np.array([0.0, 0.25, 0.6, 1.0])

# Transparent at the low end, then yellow → orange → red with rising opacity.
HEAT_COLORMAP = Colormap(
    colors=HEAT_COLORS, controls=HEAT_CONTROLS, name="wsi-ml heat (transparent low)"
)


def heat_rgba(fraction: np.ndarray | float) -> np.ndarray:
    """RGBA of the heat colours at ``fraction`` ∈ [0, 1] of the contrast range."""
    values = np.atleast_1d(np.asarray(fraction, dtype=np.float64))
    return np.stack([np.interp(values, HEAT_CONTROLS, HEAT_COLORS[:, k]) for k in range(4)], -1)


def threshold_colormap(fraction: float) -> Colormap:
    """The heat colours, fully transparent below ``fraction`` of the contrast range.

    Colours at and above the threshold are those of :data:`HEAT_COLORMAP`: a threshold hides
    cells, it never recolours the others.
    """
    if fraction <= 0.0:
        return HEAT_COLORMAP
    fraction = min(float(fraction), 1.0)
    above = HEAT_CONTROLS[fraction < HEAT_CONTROLS]
    controls = np.r_[0.0, fraction, fraction, above]
    colors = np.vstack([[0, 0, 0, 0], [0, 0, 0, 0], heat_rgba(fraction), heat_rgba(above)])
    if controls[-1] != 1.0:  # the threshold is at the very top: only the top value is shown
        controls, colors = np.r_[controls, 1.0], np.vstack([colors, heat_rgba(1.0)])
    return Colormap(colors=colors, controls=controls, name=f"wsi-ml heat ≥ {fraction:.3f}")


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


def default_channel(heatmap: Heatmap) -> int:
    """The class shown first: the first that is not the background (``extra["background"]``
    when the heatmap states it, else a class named like one; see
    :func:`~napari_wsi_ml.inference.review.positive_class`)."""
    stated = heatmap.extra.get("background")
    return positive_class(heatmap.class_names, str(stated) if stated else None)


def channel_index(heatmap: Heatmap, channel: int | str) -> int:
    """Index of a class given by name or index."""
    return heatmap.class_names.index(channel) if isinstance(channel, str) else int(channel)


def _display(
    heatmap: Heatmap, index: int, threshold: float | None
) -> tuple[np.ndarray, tuple[float, float], Colormap]:
    """Layer data, contrast limits and colormap of one class with an optional threshold."""
    low, high = heatmap_contrast_limits(heatmap, index)
    values = np.nan_to_num(heatmap.values[:, :, index], nan=low)
    fraction = 0.0 if threshold is None else (threshold - low) / (high - low)
    return values, (low, high), threshold_colormap(fraction)


def heatmap_layer_data(
    heatmap: Heatmap,
    slide: Slide,
    *,
    channel: int | str | None = None,
    opacity: float = 0.7,
    threshold: float | None = None,
) -> tuple[np.ndarray, dict[str, Any], str]:
    """napari image layer data for one class of ``heatmap`` over ``slide``.

    Args:
        heatmap: The scores and their georeference.
        slide: The slide it was computed on.
        channel: The class shown (name or index); default :func:`default_channel`.
        opacity: Layer opacity.
        threshold: Cells scoring below it are transparent (None: only the lowest values are).

    Raises:
        HeatmapError: The heatmap was computed on another slide.
    """
    heatmap.check_slide(slide.fingerprint, slide.name)
    index = default_channel(heatmap) if channel is None else channel_index(heatmap, channel)
    values, limits, colormap = _display(heatmap, index, threshold)
    scale, translate = napari_heatmap_transform(heatmap, slide.mpp)
    metadata = {
        **slide_metadata(slide),
        KIND_KEY: HEATMAP_KIND,
        "heatmap": heatmap.metadata(),
        "class_name": heatmap.class_names[index],
        HEATMAP_KEY: heatmap,
        THRESHOLD_KEY: threshold,
    }
    kwargs = {
        "name": layer_name(heatmap, index),
        "scale": scale,
        "translate": translate,
        "colormap": colormap,
        "contrast_limits": limits,
        "opacity": opacity,
        "interpolation2d": "nearest",
        "blending": "translucent",
        "units": ("um", "um") if slide.mpp is not None else ("pixel", "pixel"),
        "metadata": metadata,
    }
    return values, kwargs, "image"


def layer_name(heatmap: Heatmap, index: int) -> str:
    """``"<run id>: <class>"``."""
    return f"{heatmap.run_id}: {heatmap.class_names[index]}"


def is_heatmap_layer(layer: Any) -> bool:
    """Whether ``layer`` shows a heatmap made by :func:`heatmap_layer_data`."""
    metadata = getattr(layer, "metadata", None) or {}
    return metadata.get(KIND_KEY) == HEATMAP_KIND and isinstance(metadata.get(HEATMAP_KEY), Heatmap)


def show_heatmap(layer: Image, *, channel: int | str | None = None, **change: Any) -> None:
    """Switch a heatmap layer's class and/or threshold (``threshold=None`` removes it).

    The layer keeps its place, scale, translate and opacity; only what it shows changes.
    """
    heatmap: Heatmap = layer.metadata[HEATMAP_KEY]
    name = layer.metadata["class_name"] if channel is None else channel
    index = channel_index(heatmap, name)
    threshold = change.get("threshold", layer.metadata.get(THRESHOLD_KEY))
    values, limits, colormap = _display(heatmap, index, threshold)
    if heatmap.class_names[index] != layer.metadata["class_name"]:
        layer.data = values
        layer.name = layer_name(heatmap, index)
    layer.contrast_limits_range = limits
    layer.contrast_limits = limits
    layer.colormap = colormap
    layer.metadata["class_name"] = heatmap.class_names[index]
    layer.metadata[THRESHOLD_KEY] = threshold


def cell_at(heatmap: Heatmap, xy: Sequence[float]) -> tuple[int, int] | None:
    """``(row, col)`` of the cell drawn at level-0 ``xy``, None outside the grid.

    The cell drawn at a point is the one whose centre is nearest along each axis (napari draws
    image pixel ``k`` over data ``[k − ½, k + ½)``), so with a stride smaller than the patch
    the point lies in that cell's patch and in its neighbours'.
    """
    col = int(
        np.floor((xy[0] - heatmap.origin[0] - heatmap.patch_size[0] / 2) / heatmap.stride[0] + 0.5)
    )
    row = int(
        np.floor((xy[1] - heatmap.origin[1] - heatmap.patch_size[1] / 2) / heatmap.stride[1] + 0.5)
    )
    rows, cols = heatmap.grid_shape
    return (row, col) if 0 <= row < rows and 0 <= col < cols else None


def scores_at(heatmap: Heatmap, xy: Sequence[float]) -> dict[str, float] | None:
    """Class → score of the cell drawn at level-0 ``xy`` (NaN where unscored), None outside."""
    cell = cell_at(heatmap, xy)
    if cell is None:
        return None
    values = heatmap.values[cell[0], cell[1]]
    return {name: float(v) for name, v in zip(heatmap.class_names, values, strict=True)}
