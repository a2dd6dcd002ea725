"""Agreement results as napari layers of the slide, and where to look at a disagreement region.

Placement follows :mod:`napari_wsi_ml.coords`: world = continuous level-0 ``(x, y)`` × mpp.
Grid cell ``(i, j)`` covers level-0 ``x ∈ [x0 + j·w, x0 + (j+1)·w)`` and
``y ∈ [y0 + i·h, y0 + (i+1)·h)``. napari puts image pixel ``j`` on data ``[j − ½, j + ½)``, shown
at world ``data × scale + translate``; matching both gives, per axis,
``scale = w · mpp`` and ``translate = (x0 + w/2) · mpp``. Both are linear in the mpp, so
:func:`napari_wsi_ml.viewer.slide_layer.set_slide_mpp` keeps the map on the slide after an mpp
change.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_wsi_ml.coords import layer_scale, xy_to_rowcol
from napari_wsi_ml.viewer.annotation_layers import annotation_layer_data, annotation_set_of_layer
from napari_wsi_ml.viewer.slide_layer import FINGERPRINT_KEY, KIND_KEY, layer_units

if TYPE_CHECKING:
    from napari_wsi_ml.agreement.grid import Grid
    from napari_wsi_ml.agreement.report import AgreementReport
    from napari_wsi_ml.annotations.model import AnnotationSet

DISAGREEMENT_KIND = "agreement_disagreement"
CONSENSUS_KIND = "agreement_consensus"
REGION_KIND = "agreement_region"
OUTPUT_KEY = "agreement_output"
REVIEW_MARGIN = 1.5  # the region's box fills 1/1.5 of the canvas
DISSENT_COLORS = ((1.0, 0.85, 0.1, 0.55), (1.0, 0.45, 0.0, 0.7), (0.9, 0.0, 0.1, 0.85))

LayerDataTuple = tuple[Any, dict[str, Any], str]


def grid_placement(
    grid: Grid, mpp: Sequence[float] | None
) -> tuple[tuple[float, float], tuple[float, float]]:
    """napari ``(scale, translate)`` that put grid cell ``(i, j)`` on its level-0 square."""
    scale_row, scale_col = layer_scale(mpp)
    scale = (grid.cell_h * scale_row, grid.cell_w * scale_col)
    translate = (
        (grid.y0 + grid.cell_h / 2) * scale_row,
        (grid.x0 + grid.cell_w / 2) * scale_col,
    )
    return scale, translate


def output_metadata(kind: str, mpp: Sequence[float] | None, slide: dict[str, Any]) -> dict:
    """Metadata of a result layer: its kind, the slide's fingerprint and path, the mpp."""
    return {
        KIND_KEY: kind,
        OUTPUT_KEY: kind,
        FINGERPRINT_KEY: slide.get(FINGERPRINT_KEY),
        "slide_path": slide.get("slide_path"),
        "mpp": None if mpp is None else (float(mpp[0]), float(mpp[1])),
    }


def dissent_colormap(n_raters: int) -> Any:
    """Binned colormap: 0 dissenting raters transparent, then yellow → red."""
    from napari.utils.colormaps import Colormap

    top = max(n_raters - 1, 1)
    last = len(DISSENT_COLORS) - 1
    ramp = [DISSENT_COLORS[round(k * last / (top - 1)) if top > 1 else last] for k in range(top)]
    colors = [(0.0, 0.0, 0.0, 0.0), *ramp]
    controls = [0.0, *((k + 0.5) / top for k in range(top)), 1.0]
    return Colormap(colors=colors, controls=controls, interpolation="zero", name="dissent")


def disagreement_layer_data(
    report: AgreementReport, mpp: Sequence[float] | None, slide: dict[str, Any]
) -> LayerDataTuple:
    """The per-cell number of dissenting raters as an image layer placed on the slide.

    Cells that were not rated (outside the tissue) are 0 and therefore transparent.
    """
    dissent = np.nan_to_num(np.asarray(report.disagreement_map, dtype=np.float32), nan=0.0)
    scale, translate = grid_placement(report.grid_data.grid, mpp)
    top = max(len(report.raters) - 1, 1)
    kwargs = {
        "name": "disagreement (dissenting raters)",
        "scale": scale,
        "translate": translate,
        "units": layer_units(mpp),
        "colormap": dissent_colormap(len(report.raters)),
        "contrast_limits": (0.0, float(top)),
        "interpolation2d": "nearest",
        "blending": "translucent",
        "metadata": output_metadata(DISAGREEMENT_KIND, mpp, slide),
    }
    return dissent, kwargs, "image"


def consensus_layer_data(
    report: AgreementReport, mpp: Sequence[float] | None, slide: dict[str, Any]
) -> LayerDataTuple:
    """The majority-vote consensus as an annotation Shapes layer (one polygon per part)."""
    from napari_wsi_ml.agreement.consensus import consensus_annotations

    k = report.consensus.get("majority_k")
    annotations = consensus_annotations(report.consensus_regions, slide=report.slide)
    data, kwargs, layer_type = annotation_layer_data(
        annotations,
        mpp=mpp,
        rater="consensus",
        name=f"consensus (≥ {k} of {len(report.raters)} raters)",
        slide_path=slide.get("slide_path"),
        slide_fingerprint=slide.get(FINGERPRINT_KEY),
    )
    kwargs["metadata"][OUTPUT_KEY] = CONSENSUS_KIND  # still an annotation layer: saves as ASAP
    return data, kwargs, layer_type


def region_layer_data(
    region: dict[str, Any], mpp: Sequence[float] | None, slide: dict[str, Any]
) -> LayerDataTuple:
    """The outline of one disagreement region (exterior rings), to show which one is reviewed."""
    geometry = region["geometry"]
    rings = [
        xy_to_rowcol(np.asarray(p.exterior.coords)[:-1])
        for p in getattr(geometry, "geoms", [geometry])
    ]
    kwargs = {
        "name": "disagreement region",
        "shape_type": "polygon",
        "edge_color": "#00E5FF",
        "face_color": "transparent",
        "edge_width": 3.0,
        "scale": layer_scale(mpp),
        "units": layer_units(mpp),
        "metadata": output_metadata(REGION_KIND, mpp, slide),
    }
    return rings, kwargs, "shapes"


def region_view(
    region: dict[str, Any], mpp: Sequence[float] | None, canvas_size: Sequence[int]
) -> tuple[tuple[float, float], float]:
    """Camera ``(center (row, col) in world units, zoom)`` showing a disagreement region.

    The centre is the region's centroid; the zoom fits its bounding box with a margin.
    """
    scale_row, scale_col = layer_scale(mpp)
    x, y = region["centroid"]
    minx, miny, maxx, maxy = region["bbox"]
    height = max((maxy - miny) * scale_row, 1e-9) * REVIEW_MARGIN
    width = max((maxx - minx) * scale_col, 1e-9) * REVIEW_MARGIN
    zoom = min(canvas_size[0] / height, canvas_size[1] / width)
    return (y * scale_row, x * scale_col), float(zoom)


def rater_layers(viewer: Any, fingerprint: str | None) -> list[Any]:
    """Annotation layers a rater drew on the slide ``fingerprint`` (every slide when ``None``).

    Layers this panel made (consensus, region outlines) and model layers are left out.
    """
    from napari_wsi_ml.viewer.annotation_layers import is_annotation_layer
    from napari_wsi_ml.viewer.review_layers import is_model_layer

    return [
        layer
        for layer in viewer.layers
        if is_annotation_layer(layer)
        and not is_model_layer(layer)
        and not layer.metadata.get(OUTPUT_KEY)
        and (fingerprint is None or layer.metadata.get(FINGERPRINT_KEY) == fingerprint)
    ]


def rater_set_from_layer(layer: Any) -> AnnotationSet:
    """The layer's whole annotation set (also behind a windowed large layer), named after its
    rater (else the layer's name)."""
    annotation_set = annotation_set_of_layer(layer)
    annotation_set.rater = layer.metadata.get("rater") or layer.name
    return annotation_set


def layer_class_names(layer: Any) -> set[str]:
    """Class names used in an annotation layer (``unclassified`` for annotations without one)."""
    from napari_wsi_ml.agreement.inputs import UNCLASSIFIED

    return {
        annotation.group if annotation.group else UNCLASSIFIED
        for annotation in annotation_set_of_layer(layer).annotations
    }
