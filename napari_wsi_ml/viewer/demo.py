"""The demo: the sample slide, two raters and a heatmap in a real napari window.

With ``screenshot`` set it frames a region where the tumour and both raters' outlines are
visible, waits until the visible tiles are drawn, writes the picture and closes napari.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_wsi_ml.viewer.slide_layer import KIND_KEY, SLIDE_KIND, show_scale_bar

if TYPE_CHECKING:
    import napari

WINDOW_SIZE = (1600, 1000)
SETTLE_TIMEOUT_S = 60.0


def add_layer_data(viewer: napari.Viewer, layer_data: Sequence[tuple[Any, dict, str]]) -> list:
    """Add ``(data, kwargs, layer_type)`` tuples to the viewer; returns the layers."""
    from napari.layers import Layer

    layers = []
    for data, kwargs, layer_type in layer_data:
        layers.append(viewer.add_layer(Layer.create(data, kwargs, layer_type)))
    return layers


def dock_slide_panel(viewer: napari.Viewer) -> Any:
    """Dock the plugin's Slide panel on the right; returns the widget."""
    _, widget = viewer.window.add_plugin_dock_widget("napari-wsi-ml", "Slide")
    return widget


def frame_world_box(viewer: napari.Viewer, box_min: Sequence[float], box_max: Sequence[float]):
    """Centre the camera on a world ``(row, col)`` box and zoom so that it fills the canvas."""
    lo, hi = np.asarray(box_min, float), np.asarray(box_max, float)
    canvas_h, canvas_w = viewer.window._qt_viewer.canvas.size
    viewer.scene.camera.center = tuple((lo + hi) / 2.0)
    viewer.scene.camera.zoom = float(min(canvas_h / (hi[0] - lo[0]), canvas_w / (hi[1] - lo[1])))


def wait_until_drawn(viewer: napari.Viewer, timeout_s: float = SETTLE_TIMEOUT_S) -> bool:
    """Process Qt events until every layer reports its visible data loaded (then a few more).

    Returns:
        Whether everything was loaded before ``timeout_s``.
    """
    from qtpy.QtWidgets import QApplication

    deadline = time.monotonic() + timeout_s
    calm = 0
    while time.monotonic() < deadline:
        QApplication.processEvents()
        calm = calm + 1 if all(layer.loaded for layer in viewer.layers) else 0
        if calm >= 10:
            return True
        time.sleep(0.05)
    return False


def slide_layer_of(viewer: napari.Viewer) -> Any:
    """The first slide image layer of the viewer."""
    return next(layer for layer in viewer.layers if layer.metadata.get(KIND_KEY) == SLIDE_KIND)


def build_demo_viewer(*, show: bool = True) -> tuple[napari.Viewer, Any]:
    """A viewer with the sample slide, its raters and heatmap, and the Slide panel docked.

    Returns:
        The viewer and the sample's :class:`~napari_wsi_ml.viewer.sample_data.SampleFiles`.
    """
    import napari

    from napari_wsi_ml.viewer.sample_data import ensure_sample, sample_layer_data

    files = ensure_sample()
    viewer = napari.Viewer(title="napari-wsi-ml demo", show=show)
    viewer.window.resize(*WINDOW_SIZE)
    add_layer_data(viewer, sample_layer_data(files))
    show_scale_bar(viewer)
    dock_slide_panel(viewer)
    viewer.layers.selection.active = slide_layer_of(viewer)
    return viewer, files


def run_demo(screenshot: Path | None = None, *, show: bool = True) -> int:
    """Open the demo viewer; with ``screenshot``, save a picture of it and quit."""
    import napari

    from napari_wsi_ml.viewer.sample_data import focus_box_xy

    viewer, files = build_demo_viewer(show=show or screenshot is not None)
    wait_until_drawn(viewer, timeout_s=10.0)
    slide_layer = slide_layer_of(viewer)
    (x0, y0), (x1, y1) = focus_box_xy(files)
    scale_row, scale_col = slide_layer.scale[-2:]
    frame_world_box(viewer, (y0 * scale_row, x0 * scale_col), (y1 * scale_row, x1 * scale_col))
    if screenshot is not None:
        wait_until_drawn(viewer)
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        viewer.screenshot(str(screenshot), canvas_only=False)
        print(f"wrote {screenshot}")
        viewer.close()
        return 0
    if show:
        napari.run()
    return 0
