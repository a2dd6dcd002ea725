"""The Cohort review panel in a real napari window: a small cohort of predicted slides."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import shapely
import tifffile
from qtpy.QtWidgets import QApplication

from napari_wsi_ml.annotations import Annotation, AnnotationSet, write_asap
from napari_wsi_ml.evaluation.roc import roc_points
from napari_wsi_ml.inference import Heatmap
from napari_wsi_ml.inference.predictions import predict_slide, write_predictions
from napari_wsi_ml.inference.review import PolygonOptions, score_polygons
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.viewer.heatmap_layer import is_heatmap_layer
from napari_wsi_ml.viewer.slide_layer import FINGERPRINT_KEY, slide_image_layers
from napari_wsi_ml.widgets.cohort_panel import COLUMNS, CohortPanel

pytestmark = pytest.mark.gui

SIZE, MPP, PATCH = (2048, 1536), 0.5, 256
# slide: label, tumour score given to the prediction, hot cell (row, col) and its score,
# raters' tumour boxes (None: no raters' files)
SLIDES = {
    "t1": ("tumour", 0.95, (2, 5), 0.95, [(1150, 400, 1700, 900), (1250, 450, 1750, 950)]),
    "t2": ("tumour", 0.60, (4, 2), 0.80, None),
    "n1": ("normal", 0.70, (1, 1), 0.70, []),  # raters found nothing; the model did
    "n2": ("normal", 0.10, (3, 6), 0.15, None),
}


@dataclass
class CohortFiles:
    folder: Path
    truth: dict[str, tuple]
    heatmaps: dict[str, Heatmap]


def write_slide(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    with tifffile.TiffWriter(path) as writer:
        for level in range(2):
            width, height = SIZE[0] // 4**level, SIZE[1] // 4**level
            image = np.full((height, width, 3), 240, np.uint8)
            image[height // 8 : -height // 8, width // 8 : -width // 8] = (225, 150, 195)
            image[rng.integers(0, height, 50), rng.integers(0, width, 50)] = (90, 45, 135)
            writer.write(
                image,
                tile=(256, 256),
                compression="zlib",
                photometric="rgb",
                subfiletype=0 if level == 0 else 1,
                resolution=(1e4 / MPP, 1e4 / MPP),
                resolutionunit="CENTIMETER",
            )


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> CohortFiles:
    folder = tmp_path_factory.mktemp("cohort")
    (folder / "out" / "heatmaps").mkdir(parents=True)
    predictions, heatmaps = [], {}
    for seed, (name, (label, score, hot, hot_score, raters)) in enumerate(SLIDES.items()):
        path = folder / f"{name}.tiff"
        write_slide(path, seed)
        with open_slide(path) as slide:
            fingerprint = slide.fingerprint
        values = np.full((SIZE[1] // PATCH, SIZE[0] // PATCH, 2), np.nan, np.float32)
        values[1:-1, 1:-1, 1] = 0.05
        values[hot[0], hot[1], 1] = hot_score
        values[..., 0] = 1.0 - values[..., 1]
        heatmap = Heatmap(values, (0, 0), PATCH, PATCH, ("normal", "tumour"), "run-7",
                          fingerprint, extra={"value_range": [0.0, 1.0]})  # fmt: skip
        target = heatmap.save(folder / "out" / "heatmaps" / f"{name}.heatmap.npz")
        heatmaps[name] = heatmap
        predictions.append(
            predict_slide(heatmap, slide=name, path=path, label=label, background="normal",
                          scores={"normal": 1 - score, "tumour": score}, heatmap_path=target)
        )  # fmt: skip
        for k, rater in enumerate(["A", "B"] if raters is not None else []):
            boxes = raters[k : k + 1]
            annotations = [
                Annotation(
                    "t", "Polygon", np.asarray(shapely.box(*b).exterior.coords)[:-1], group="tumor"
                )
                for b in boxes
            ]
            write_asap(AnnotationSet(annotations, rater=rater), folder / f"{name}.{rater}.xml")
    write_asap(AnnotationSet(rater="truth"), folder / "t2.truth.xml")  # not a rater
    write_predictions(predictions, folder / "out" / "predictions.csv")
    return CohortFiles(folder, SLIDES, heatmaps)


def column(panel: CohortPanel, name: str) -> list[str]:
    c = COLUMNS.index(name)
    return [panel.table.item(r, c).text() for r in range(panel.table.rowCount())]


def test_table_sorting_disagreement_roc_and_opening_slides(
    make_napari_viewer, cohort: CohortFiles, qtbot, notifications
) -> None:
    viewer = make_napari_viewer(show=True)
    _, panel = viewer.window.add_plugin_dock_widget("napari-wsi-ml", "Cohort review")
    assert isinstance(panel, CohortPanel)  # registered in napari.yaml
    assert not panel.open_predictions(cohort.folder / "t1.A.xml")  # not a predictions table
    assert any("lacks the column" in m for s, m in notifications if s == "error")
    assert panel.table.rowCount() == 0

    assert panel.open_predictions(cohort.folder / "out")  # the folder infer wrote
    assert panel.class_combo.currentText() == "tumour"
    panel.table.sortItems(COLUMNS.index("score"), order=_descending())
    assert column(panel, "slide") == ["t1", "n1", "t2", "n2"]
    panel.table.sortItems(COLUMNS.index("error"), order=_descending())
    assert column(panel, "slide")[:2] == ["n1", "t2"]  # |0 − 0.7|, |1 − 0.6|
    assert column(panel, "error")[:2] == ["0.700", "0.400"]

    qtbot.waitUntil(lambda: panel.worker is None, timeout=60_000)
    disagreement = dict(zip(column(panel, "slide"), column(panel, "disagreement"), strict=True))
    assert disagreement["t2"] == "" and disagreement["n2"] == ""  # no raters' files
    assert disagreement["n1"] == "1.000"  # the model marked a region, both raters nothing
    model = score_polygons(cohort.heatmaps["t1"], "tumour", PolygonOptions(threshold=0.5))
    dices = []
    for b in SLIDES["t1"][4]:
        rater = shapely.box(*b)
        dices.append(2 * model.intersection(rater).area / (model.area + rater.area))
    assert disagreement["t1"] == f"{1 - np.mean(dices):.3f}"
    panel.table.sortItems(COLUMNS.index("disagreement"), order=_descending())
    assert column(panel, "slide")[:2] == ["n1", "t1"]

    # ROC: the curve is the empirical one, with a shaded band and the AUC in the legend
    axes = panel.figure.axes[0]
    labels = np.array([1, 1, 0, 0], bool)
    fpr, tpr, _ = roc_points(labels, np.array([0.95, 0.60, 0.70, 0.10]))
    curve = axes.lines[1]
    np.testing.assert_allclose(curve.get_xdata(), fpr)
    np.testing.assert_allclose(curve.get_ydata(), tpr)
    assert len(axes.collections) == 1  # the band
    assert "AUC 0.750" in axes.get_legend().get_texts()[0].get_text()

    # double-click a row: the slide, its raters, its heatmap; the view on the peak
    row = column(panel, "slide").index("t1")
    panel.table.cellDoubleClicked.emit(row, 0)
    for _ in range(10):
        QApplication.processEvents()
    names = [layer.name for layer in viewer.layers]
    assert names[:3] == ["t1", "A", "B"] and names[3] == "run-7: tumour"
    heat = viewer.layers[3]
    peak = cohort.heatmaps["t1"].cell_centres_xy()[SLIDES["t1"][2]]
    np.testing.assert_allclose(viewer.scene.camera.center[-2:], peak[::-1] * MPP)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    centre = shot[shot.shape[0] // 2, shot.shape[1] // 2]
    red = int(centre[0]) - max(int(centre[1]), int(centre[2]))
    assert red > 100, centre  # the red peak cell fills the middle
    # another slide: the first one's image layers go, its annotation layers are hidden
    row = column(panel, "slide").index("n1")
    panel.table.cellDoubleClicked.emit(row, 0)
    assert "t1" not in [layer.name for layer in viewer.layers] and heat not in viewer.layers
    assert not viewer.layers["A"].visible and not viewer.layers["B"].visible
    [slide_layer] = slide_image_layers(viewer)
    assert slide_layer.name == "n1"
    heat = next(la for la in viewer.layers if is_heatmap_layer(la))
    assert heat.metadata[FINGERPRINT_KEY] == slide_layer.metadata[FINGERPRINT_KEY]
    assert heat.visible and heat.name == "run-7: tumour"


def _descending():
    from qtpy.QtCore import Qt

    return Qt.SortOrder.DescendingOrder
