"""Model review in napari: the "model" annotation layer, the raters beside it, result rows.

The model layer is an ordinary annotation layer (:mod:`napari_wsi_ml.viewer.annotation_layers`)
of the rater ``"model"``: a pathologist edits it like any rater layer and saves it as ASAP XML
(or GeoJSON, which also keeps holes) with the same writers. Its metadata says which heatmap,
class and threshold it came from (``MODEL_KEY``), so that review tools can tell it from raters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_wsi_ml.inference.review import MODEL_RATER, comparison_rows
from napari_wsi_ml.viewer.agreement_layers import rater_layers
from napari_wsi_ml.viewer.annotation_layers import annotation_layer_data
from napari_wsi_ml.viewer.slide_layer import FINGERPRINT_KEY

if TYPE_CHECKING:
    from napari_wsi_ml.annotations.model import AnnotationSet

MODEL_KEY = "review_model"  # metadata: {"run_id", "class", "group", "threshold"} of its heatmap
MODEL_EDGE_UM = 6.0  # outline width, so that it shows at slide-wide zoom
MODEL_EDGE_PX = 12.0  # the same when the mpp is unknown

LayerDataTuple = tuple[Any, dict[str, Any], str]


def model_layer_data(
    annotation_set: AnnotationSet,
    slide: Mapping[str, Any],
    *,
    run_id: str,
    class_name: str,
    group: str,
    threshold: float,
) -> LayerDataTuple:
    """The model's polygons as an editable annotation layer of ``slide`` (its layer metadata).

    Args:
        annotation_set: From :func:`napari_wsi_ml.inference.review.model_annotations`.
        slide: The slide layer's metadata (``slide_path``, fingerprint, ``mpp``).
        run_id: The heatmap's run.
        class_name: The heatmap class traced.
        group: The annotation class it was saved as.
        threshold: The threshold used.
    """
    data, kwargs, layer_type = annotation_layer_data(
        annotation_set,
        mpp=slide.get("mpp"),
        rater=MODEL_RATER,
        name=f"{MODEL_RATER}: {group} (≥ {threshold:.2f})",
        slide_path=slide.get("slide_path"),
        slide_fingerprint=slide.get(FINGERPRINT_KEY),
    )
    mpp = slide.get("mpp")
    count = len(data)
    kwargs["edge_width"] = MODEL_EDGE_UM / float(mpp[0]) if mpp else MODEL_EDGE_PX
    if count:
        kwargs["face_color"] = np.zeros((count, 4))  # the heatmap stays visible inside
    kwargs["metadata"][MODEL_KEY] = {
        "run_id": run_id,
        "class": class_name,
        "group": group,
        "threshold": float(threshold),
    }
    return data, kwargs, layer_type


def is_model_layer(layer: Any) -> bool:
    """Whether ``layer`` was made by :func:`model_layer_data`."""
    return bool((getattr(layer, "metadata", None) or {}).get(MODEL_KEY))


def model_layers(viewer: Any, fingerprint: str | None) -> list[Any]:
    """The model annotation layers of the slide ``fingerprint``, in layer order."""
    return [
        layer
        for layer in viewer.layers
        if is_model_layer(layer) and layer.metadata.get(FINGERPRINT_KEY) == fingerprint
    ]


def review_rater_layers(viewer: Any, fingerprint: str | None) -> list[Any]:
    """The raters' annotation layers of the slide (model layers and agreement outputs left out)."""
    return [layer for layer in rater_layers(viewer, fingerprint) if not is_model_layer(layer)]


def layer_classes(layer: Any) -> set[str]:
    """Class names of an annotation layer, cheaply: its groups and its shapes' classes."""
    names = {group.get("name") for group in layer.metadata.get("groups") or []}
    features = getattr(layer, "features", None)
    if features is not None and "class" in features:
        names |= set(features["class"])
    return {str(name) for name in names if name}


def _number(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _spread(row: Mapping[str, Any]) -> str:
    """The inter-rater range: one value for a single pair, else ``min–max (median m)``."""
    low, mid, high = row.get("raters_min"), row.get("raters_median"), row.get("raters_max")
    if mid is None:
        return ""
    if low == high:
        return f"{mid:.3f}"
    return f"{low:.3f}–{high:.3f} (median {mid:.3f})"


def comparison_table(
    comparison: Mapping[str, object], scope: str, metrics: Sequence[str] | None = None
) -> list[tuple[str, str, str, str]]:
    """Rows ``(metric, reference, value [CI], inter-rater range)`` of one scope."""
    table = []
    for row in comparison_rows(comparison, scope):
        if metrics is not None and row["metric"] not in metrics:
            continue
        value = _number(row["value"])
        if row.get("ci_low") is not None:
            value += f" [{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
        spread = _spread(row)
        table.append((str(row["metric"]), str(row["reference"]), value, spread))
    return table
