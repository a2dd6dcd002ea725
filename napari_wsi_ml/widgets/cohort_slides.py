"""Open a predicted slide for review: its layers, its heatmap, the view on its peak.

The slide opens with its raters' files (``<slide stem>.<rater>.xml`` beside it) through the same
code as ``napari-wsi-ml view``, and its heatmap with the reviewed class. The slide reviewed
before is retired: the image layers opened for it (slide, heatmap) are removed, its other layers
(annotations, possibly edited) are only hidden. A slide already open is reused.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error

from napari_wsi_ml.coords import layer_scale
from napari_wsi_ml.errors import WsiMlError
from napari_wsi_ml.inference.cohort_review import rater_files
from napari_wsi_ml.inference.heatmap import Heatmap
from napari_wsi_ml.viewer.demo import add_layer_data
from napari_wsi_ml.viewer.heatmap_layer import (
    HEATMAP_KEY,
    heatmap_layer_data,
    is_heatmap_layer,
    show_heatmap,
)
from napari_wsi_ml.viewer.slide_layer import (
    FINGERPRINT_KEY,
    layers_of_slide,
    slide_image_layers,
)
from napari_wsi_ml.viewer.view import view_layer_data

if TYPE_CHECKING:
    import napari

    from napari_wsi_ml.inference.predictions import SlidePrediction

FIELD_PATCHES = 8  # the view on the peak is about this many patches across
FIELD_FALLBACK_PX = 2048  # level-0 px across when the heatmap is unknown


def retire(viewer: napari.Viewer, opened: Sequence[Any], keep: str | None) -> None:
    """Remove the image layers in ``opened`` and hide the other layers of their slides, except
    the slide ``keep`` (a fingerprint)."""
    fingerprints = {layer.metadata.get(FINGERPRINT_KEY) for layer in opened} - {keep}
    for layer in list(opened):
        if layer in viewer.layers and layer.metadata.get(FINGERPRINT_KEY) in fingerprints:
            viewer.layers.remove(layer)
    for fingerprint in fingerprints:
        for layer in layers_of_slide(viewer, fingerprint):
            layer.visible = False


def _heatmap_layer(
    viewer: napari.Viewer, slide_layer: Any, prediction: SlidePrediction, class_name: str
) -> tuple[Any, bool]:
    """The slide's heatmap layer showing ``class_name`` (reused or added), and whether added."""
    fingerprint = slide_layer.metadata[FINGERPRINT_KEY]
    for layer in layers_of_slide(viewer, fingerprint):
        if is_heatmap_layer(layer) and str(layer.metadata.get("source")) == str(prediction.heatmap):
            heatmap: Heatmap = layer.metadata[HEATMAP_KEY]
            if class_name in heatmap.class_names:
                show_heatmap(layer, channel=class_name)
            layer.visible = True
            return layer, False
    heatmap = Heatmap.load(prediction.heatmap)
    channel = class_name if class_name in heatmap.class_names else None
    data, kwargs, layer_type = heatmap_layer_data(
        heatmap, slide_layer.metadata["slide"], channel=channel
    )
    kwargs["metadata"]["source"] = str(prediction.heatmap)
    [layer] = add_layer_data(viewer, [(data, kwargs, layer_type)])
    return layer, True


def look_at_peak(
    viewer: napari.Viewer, slide_layer: Any, xy: Sequence[float], field: float
) -> None:
    """Centre the camera on level-0 ``xy`` with about ``field`` level-0 pixels across."""
    scale_row, scale_col = layer_scale(slide_layer.metadata.get("mpp"))
    viewer.scene.camera.center = (float(xy[1]) * scale_row, float(xy[0]) * scale_col)
    height, width = viewer.canvas.size
    viewer.scene.camera.zoom = float(min(height / scale_row, width / scale_col) / field)


def open_prediction(
    viewer: napari.Viewer,
    prediction: SlidePrediction,
    class_name: str,
    *,
    previous: Sequence[Any] = (),
) -> list[Any]:
    """Show a predicted slide at its most suspicious region (``peak_xy``).

    Args:
        viewer: The viewer.
        prediction: The slide's prediction (path, fingerprint, heatmap, peak).
        class_name: The heatmap class to show.
        previous: Image layers opened for the slide reviewed before (retired).

    Returns:
        The image layers now opened for review (to retire next time). Problems (unreadable
        slide, heatmap of another slide) are notifications; the viewer stays usable.
    """
    slide_layer = next(
        (
            layer
            for layer in slide_image_layers(viewer)
            if layer.metadata[FINGERPRINT_KEY] == prediction.fingerprint
        ),
        None,
    )
    opened = [layer for layer in previous if layer in viewer.layers]
    if slide_layer is None:
        try:
            layer_data = view_layer_data(prediction.path, rater_files(prediction.path))
        except WsiMlError as error:
            show_error(str(error))
            return opened
        retire(viewer, opened, keep=None)
        layers = add_layer_data(viewer, layer_data)
        slide_layer, opened = layers[0], [layers[0]]
    else:
        retire(viewer, opened, keep=slide_layer.metadata[FINGERPRINT_KEY])
        opened = [layer for layer in opened if layer in viewer.layers]
        for layer in layers_of_slide(viewer, slide_layer.metadata[FINGERPRINT_KEY]):
            layer.visible = True
    field = FIELD_FALLBACK_PX
    if prediction.heatmap is not None:
        try:
            heatmap_layer, added = _heatmap_layer(viewer, slide_layer, prediction, class_name)
        except WsiMlError as error:
            show_error(str(error))
        else:
            opened += [heatmap_layer] if added else []
            field = FIELD_PATCHES * max(heatmap_layer.metadata[HEATMAP_KEY].patch_size)
            viewer.layers.selection.active = heatmap_layer
    look_at_peak(viewer, slide_layer, prediction.peak_xy, field)
    return opened
