"""The Heatmaps panel in a real napari window: display controls, refusals, model review."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import shapely
from napari.layers import Layer
from qtpy.QtWidgets import QApplication
from viewer_slides import SYNTH_MPP, SYNTH_SIZE

from napari_wsi_ml.annotations import Annotation, AnnotationSet, read_annotations
from napari_wsi_ml.inference import Heatmap
from napari_wsi_ml.viewer.annotation_layers import annotation_layer_data, annotation_set_of_layer
from napari_wsi_ml.viewer.review_layers import is_model_layer
from napari_wsi_ml.viewer.slide_layer import FINGERPRINT_KEY
from napari_wsi_ml.viewer.slide_reader import open_slide_layer_data
from napari_wsi_ml.widgets.heatmap_panel import HeatmapPanel

pytestmark = pytest.mark.gui

CELL = 1024  # level-0 px: patch = stride of the gradient heatmap


@pytest.fixture
def panel_viewer(make_napari_viewer, synthetic_slide: Path):
    viewer = make_napari_viewer(show=True)
    slide_layer = viewer.add_layer(Layer.create(*open_slide_layer_data(synthetic_slide)))
    _, panel = viewer.window.add_plugin_dock_widget("napari-wsi-ml", "Heatmaps")
    assert isinstance(panel, HeatmapPanel)  # registered in napari.yaml
    return viewer, slide_layer, panel


def gradient_heatmap(fingerprint: str) -> Heatmap:
    """Two classes on a 6 × 8 grid of 1024 px cells: tumour = column / 7, normal = 1 − that."""
    tumour = np.tile(np.arange(8) / 7.0, (6, 1))
    values = np.stack([1.0 - tumour, tumour], axis=-1)
    return Heatmap(values, (0, 0), CELL, CELL, ("normal", "tumour"), "run", fingerprint,
                   extra={"value_range": [0.0, 1.0]})  # fmt: skip


def settle() -> None:
    for _ in range(10):
        QApplication.processEvents()


def canvas_pixel(viewer, shot: np.ndarray, world_rc) -> tuple[int, int]:
    """Screen pixel (row, col) of a world point: the camera centre is the canvas centre."""
    centre, zoom = np.asarray(viewer.scene.camera.center[-2:]), viewer.scene.camera.zoom
    row, col = (np.asarray(world_rc) - centre) * zoom + np.array(shot.shape[:2]) / 2
    return int(row), int(col)


def widget_pixels(widget) -> np.ndarray:
    """What a widget shows, as an (H, W, 4) uint8 array."""
    from qtpy.QtGui import QImage

    image = widget.grab().toImage().convertToFormat(QImage.Format.Format_RGBA8888)
    pointer = image.constBits()
    pointer.setsize(image.sizeInBytes())
    rows = np.frombuffer(pointer, np.uint8).reshape(image.height(), image.bytesPerLine())
    return rows[:, : image.width() * 4].reshape(image.height(), image.width(), 4).copy()


def test_threshold_class_opacity_colour_bar_and_cursor(panel_viewer, tmp_path: Path) -> None:
    viewer, slide_layer, panel = panel_viewer
    path = gradient_heatmap(slide_layer.metadata[FINGERPRINT_KEY]).save(tmp_path / "s.heatmap.npz")
    layer = panel.open_file(path)
    assert layer.name == "run: tumour"  # the first class that is not the background
    assert [panel.class_combo.itemText(k) for k in range(2)] == ["normal", "tumour"]
    assert panel.layer_combo.currentText() == "run: tumour"

    panel.threshold_spin.setValue(0.5)
    assert layer.metadata["threshold"] == 0.5 and panel.threshold_slider.value() == 500
    viewer.reset_view()
    layer.opacity = 1.0
    layer.visible = False
    settle()
    bare = viewer.screenshot(canvas_only=True, flash=False)
    layer.visible = True
    settle()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    for column in range(8):
        world = np.array([2.5 * CELL, (column + 0.5) * CELL]) * SYNTH_MPP
        r, c = canvas_pixel(viewer, shot, world)
        changed = np.abs(shot[r, c, :3].astype(int) - bare[r, c, :3]).max()
        if column / 7 < 0.5:  # below the threshold: the slide shows through untouched
            assert changed <= 2, (column, shot[r, c], bare[r, c])
        else:  # orange to red, opaque
            assert changed > 60 and shot[r, c, 0] > 180 and shot[r, c, 2] < 90, column

    # the colour bar: checkerboard grey below the threshold, red at the top, a dark mark at 0.5
    bar = widget_pixels(panel.canvas)[..., :3].astype(int)
    row = bar[np.argmax((np.abs(bar[..., 0] - bar[..., 1]) > 100).sum(axis=1))]
    dark = np.flatnonzero(row.max(axis=1) < 80)  # the frame's sides and the threshold mark
    left, right = dark.min(), dark.max()
    inside = row[left + 2 : right - 1]
    red = np.flatnonzero((inside[:, 0] > 180) & (inside[:, 1] < 80))
    grey = np.flatnonzero((np.ptp(inside, axis=1) < 10) & (inside[:, 0] > 150))
    assert len(red) > 5 and len(grey) > 0.3 * len(inside)
    assert grey.max() < red.min()  # transparent (checkerboard) left of the colours
    marks = dark[(dark > left + 2) & (dark < right - 2)]
    assert len(marks) and np.all(np.abs(marks - (left + right) / 2) < 0.03 * (right - left))

    panel.class_combo.setCurrentText("normal")
    assert layer.name == "run: normal" and panel.layer_combo.currentText() == "run: normal"
    np.testing.assert_allclose(layer.data, 1.0 - np.tile(np.arange(8) / 7.0, (6, 1)), atol=1e-6)
    assert layer.metadata["threshold"] == 0.5  # kept
    panel.opacity_slider.setValue(40)
    assert layer.opacity == pytest.approx(0.4)

    viewer.cursor.position = tuple(np.array([2.5 * CELL, 5.5 * CELL]) * SYNTH_MPP)
    text = panel.value_label.text()
    assert "normal 0.286" in text and "tumour 0.714" in text and "(5,632, 2,560) px" in text
    viewer.cursor.position = (-100.0, -100.0)
    assert "outside the heatmap" in panel.value_label.text()


def test_other_slide_refused_and_corrupt_files_reported(
    panel_viewer, tmp_path: Path, notifications
) -> None:
    viewer, slide_layer, panel = panel_viewer
    fingerprint = slide_layer.metadata[FINGERPRINT_KEY]
    other = gradient_heatmap("0" * 64).save(tmp_path / "other.heatmap.npz")
    assert panel.open_file(other) is None
    garbage = tmp_path / "garbage.heatmap.npz"
    garbage.write_bytes(b"PK\x03\x04 this is not a heatmap")
    good = gradient_heatmap(fingerprint).save(tmp_path / "good.heatmap.npz")
    truncated = tmp_path / "truncated.heatmap.npz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    assert panel.open_file(garbage) is None and panel.open_file(truncated) is None
    assert [layer.name for layer in viewer.layers] == [slide_layer.name]  # untouched
    errors = [message for severity, message in notifications if severity == "error"]
    assert any("another slide" in m and "refusing" in m for m in errors)
    assert any("garbage.heatmap.npz: not a readable heatmap file" in m for m in errors)
    assert any("truncated.heatmap.npz: not a readable heatmap file" in m for m in errors)

    run = tmp_path / "run"
    (run / "heatmaps").mkdir(parents=True)
    for source in (other, garbage, good):
        (run / "heatmaps" / source.name).write_bytes(source.read_bytes())
    added = panel.open_folder(run)
    assert [layer.name for layer in added] == ["run: tumour"]
    assert any("garbage.heatmap.npz" in m for s, m in notifications if s == "warning")


def box(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)


def test_model_layer_is_editable_saved_as_asap_and_compared(
    panel_viewer, tmp_path: Path, qtbot
) -> None:
    viewer, slide_layer, panel = panel_viewer
    meta = slide_layer.metadata
    raters = {"A": box(1400, 1800, 3000, 4000), "B": box(1700, 2100, 3200, 4200)}
    for name, xy in raters.items():
        data = annotation_layer_data(
            AnnotationSet([Annotation("r", "Polygon", xy, group="tumor")], rater=name),
            mpp=meta["mpp"], rater=name, slide_path=meta["slide_path"],
            slide_fingerprint=meta[FINGERPRINT_KEY],
        )  # fmt: skip
        viewer.add_layer(Layer.create(*data))
    # oracle scores: the fraction of each 256 px patch inside the true region
    truth = shapely.box(1500, 2000, 3100, 4100)
    ys, xs = np.mgrid[0 : SYNTH_SIZE[1] - 255 : 256, 0 : SYNTH_SIZE[0] - 255 : 256]
    fraction = shapely.area(shapely.intersection(shapely.box(xs, ys, xs + 256, ys + 256), truth))
    heatmap = Heatmap(fraction / 256**2, (0, 0), 256, 256, ("tumour",), "oracle",
                      meta[FINGERPRINT_KEY], extra={"value_range": [0.0, 1.0]})  # fmt: skip
    panel.open_file(heatmap.save(tmp_path / "oracle.heatmap.npz"))
    panel.threshold_spin.setValue(0.5)
    review = panel.review
    assert review.group_edit.text() == "tumor"  # matched to the raters' spelling
    assert review.min_area.suffix() == " µm²"
    model = review.make_model_layer()
    assert is_model_layer(model) and model.metadata["rater"] == "model"
    [polygon] = annotation_set_of_layer(model).annotations
    region = shapely.Polygon(polygon.coordinates)
    assert polygon.group == "tumor"
    assert region.intersection(truth).area / region.union(truth).area > 0.9

    # saved like any rater layer: ASAP XML through the plugin's writer
    target = tmp_path / "synthetic.model.xml"
    model.save(str(target), plugin="napari-wsi-ml")
    saved = read_annotations(target)
    assert saved.annotations[0].group == "tumor"
    np.testing.assert_array_equal(saved.annotations[0].coordinates, polygon.coordinates)

    # a pathologist's edit (the polygon moved 200 px right) is what gets compared
    model.data = [model.data[0] + np.array([0.0, 200.0])]
    edited = shapely.Polygon(annotation_set_of_layer(model).annotations[0].coordinates)
    review.compare()
    qtbot.waitUntil(lambda: review.worker is None, timeout=120_000)
    rows = {
        (review.table.item(r, 0).text(), review.table.item(r, 1).text()): review.table.item(r, 2)
        for r in range(review.table.rowCount())
    }
    for name, xy in raters.items():
        rater_region = shapely.Polygon(xy)
        dice = 2 * edited.intersection(rater_region).area / (edited.area + rater_region.area)
        assert rows[("dice", name)].text().startswith(f"{dice:.3f}")
    assert ("dice", "consensus") in rows and ("lesion_f1", "A") in rows
    spread = review.table.item(0, 3).text()
    inter = (
        2
        * shapely.Polygon(raters["A"]).intersection(shapely.Polygon(raters["B"])).area
        / (shapely.Polygon(raters["A"]).area + shapely.Polygon(raters["B"]).area)
    )
    assert f"{inter:.3f}" in spread
