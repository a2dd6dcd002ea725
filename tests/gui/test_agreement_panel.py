"""The Agreement panel in a real napari window: two raters on a synthetic slide."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import shapely
from napari.layers import Layer
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication
from viewer_slides import SYNTH_MPP

from napari_wsi_ml.annotations import Annotation, AnnotationSet
from napari_wsi_ml.viewer.agreement_layers import CONSENSUS_KIND, DISAGREEMENT_KIND, OUTPUT_KEY
from napari_wsi_ml.viewer.annotation_layers import annotation_layer_data
from napari_wsi_ml.viewer.slide_layer import FINGERPRINT_KEY
from napari_wsi_ml.viewer.slide_reader import open_slide_layer_data
from napari_wsi_ml.widgets.agreement_panel import AgreementPanel

pytestmark = pytest.mark.gui

CELL = 256  # px
A_BOX = (1000, 1000, 3000, 3000)  # level-0 x0, y0, x1, y1
B_BOX = (1600, 1000, 3200, 2600)


def box_annotation(bounds, group: str) -> Annotation:
    x0, y0, x1, y1 = bounds
    return Annotation("r", "Polygon", [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], group=group)


def add_rater(viewer, slide_layer, rater: str, bounds, group: str = "tumor"):
    meta = slide_layer.metadata
    data = annotation_layer_data(
        AnnotationSet([box_annotation(bounds, group)], rater=rater),
        mpp=meta["mpp"],
        rater=rater,
        slide_path=meta["slide_path"],
        slide_fingerprint=meta[FINGERPRINT_KEY],
    )
    return viewer.add_layer(Layer.create(*data))


@pytest.fixture
def panel_viewer(make_napari_viewer, synthetic_slide: Path):
    viewer = make_napari_viewer()
    slide_layer = viewer.add_layer(Layer.create(*open_slide_layer_data(synthetic_slide)))
    add_rater(viewer, slide_layer, "A", A_BOX)
    add_rater(viewer, slide_layer, "B", B_BOX)
    panel = AgreementPanel(viewer)
    panel.n_boot = 200
    viewer.window.add_dock_widget(panel, name="Agreement")
    viewer.layers.selection.active = slide_layer
    return viewer, panel


def run_panel(qtbot, panel: AgreementPanel) -> None:
    panel.run_button.click()
    assert panel.worker is not None and not panel.busy.isHidden()
    qtbot.waitUntil(lambda: panel.worker is None, timeout=120_000)
    QApplication.processEvents()


def table_value(panel: AgreementPanel, scope: str, metric: str, pair: str) -> str:
    table = panel.results_table
    for row in range(table.rowCount()):
        cells = [table.item(row, c).text() for c in range(3)]
        if cells == [scope, metric, pair]:
            return table.item(row, 3).text()
    raise AssertionError(f"no row {scope} / {metric} / {pair}")


def output_layer(viewer, kind: str):
    (layer,) = [la for la in viewer.layers if la.metadata.get(OUTPUT_KEY) == kind]
    return layer


def test_panel_computes_dice_adds_layers_and_jumps_to_disagreement(panel_viewer, qtbot, tmp_path):
    viewer, panel = panel_viewer
    assert [panel.rater_list.item(k).text() for k in range(panel.rater_list.count())] == ["A", "B"]
    assert panel.mapping_table.rowCount() == 1 and panel.mapping_table.item(0, 1).text() == "tumor"
    run_panel(qtbot, panel)

    a, b = shapely.box(*A_BOX), shapely.box(*B_BOX)
    dice = 2 * a.intersection(b).area / (a.area + b.area)
    assert table_value(panel, "overall", "dice", "A vs B") == f"{dice:.3f}"
    assert (
        table_value(panel, "tumor", "iou", "A vs B")
        == f"{a.intersection(b).area / a.union(b).area:.3f}"
    )
    assert panel.report.metrics["overall"]["dice"]["pairs"]["A vs B"]["value"] == pytest.approx(
        dice
    )
    assert panel.canvas.figure.axes  # the κ / Dice matrices were drawn

    # disagreement map: one image pixel per 256-px cell, on the slide in world µm
    dmap = output_layer(viewer, DISAGREEMENT_KIND)
    assert tuple(dmap.scale) == pytest.approx((CELL * SYNTH_MPP,) * 2)
    assert tuple(dmap.translate) == pytest.approx((CELL / 2 * SYNTH_MPP,) * 2)
    # cell (row 5, col 4) spans x 1024..1280, y 1280..1536: only rater A there
    centre_world = ((5.5 * CELL) * SYNTH_MPP, (4.5 * CELL) * SYNTH_MPP)
    assert dmap.world_to_data(centre_world) == pytest.approx((5.0, 4.0))
    corner_world = (5 * CELL * SYNTH_MPP, 4 * CELL * SYNTH_MPP)  # the cell's top-left corner
    assert dmap.world_to_data(corner_world) == pytest.approx((4.5, 3.5))
    assert dmap.data[5, 4] == 1  # one dissenting rater
    assert dmap.data[6, 8] == 0  # x 2048..2304, y 1536..1792: both raters agree

    # consensus (2 of 2): the intersection of the boxes, in world µm
    consensus = output_layer(viewer, CONSENSUS_KIND)
    assert tuple(consensus.scale) == pytest.approx((SYNTH_MPP, SYNTH_MPP))
    world = np.array([consensus.data_to_world(v) for v in np.concatenate(consensus.data)])
    x0, y0, x1, y1 = a.intersection(b).bounds
    assert world.min(axis=0) == pytest.approx((y0 * SYNTH_MPP, x0 * SYNTH_MPP))
    assert world.max(axis=0) == pytest.approx((y1 * SYNTH_MPP, x1 * SYNTH_MPP))

    # "Next disagreement" centres the camera on the largest region's centroid (A minus B)
    cx, cy = a.difference(b).centroid.coords[0]
    panel.next_button.click()
    assert tuple(viewer.scene.camera.center[-2:]) == pytest.approx((cy * SYNTH_MPP, cx * SYNTH_MPP))
    assert "Region 1 of 2" in panel.region_label.text() and "A" in panel.region_label.text()
    panel.next_button.click()
    cx, cy = b.difference(a).centroid.coords[0]
    assert tuple(viewer.scene.camera.center[-2:]) == pytest.approx((cy * SYNTH_MPP, cx * SYNTH_MPP))

    folder = tmp_path / "report"
    panel.folder_prompt = lambda: str(folder)
    panel.export_button.click()
    report = json.loads((folder / "agreement.json").read_text())
    assert report["overall"]["dice"]["pairs"]["A vs B"]["value"] == pytest.approx(dice)
    assert (folder / "metrics.csv").read_text().startswith("scope,metric,pair")
    assert (folder / "agreement.png").read_bytes()[:4] == b"\x89PNG"

    # a second run replaces the result layers instead of piling them up
    run_panel(qtbot, panel)
    assert sum(bool(la.metadata.get(OUTPUT_KEY)) for la in viewer.layers) == 2


def test_disjoint_classes_notify_and_add_no_layer(panel_viewer, qtbot, notifications):
    viewer, panel = panel_viewer
    add_rater(viewer, viewer.layers[0], "C", A_BOX, group="necrosis")
    viewer.layers.selection.active = viewer.layers[0]
    panel.rater_list.item(1).setCheckState(Qt.CheckState.Unchecked)  # B out: A vs C
    names = [panel.mapping_table.item(r, 0).text() for r in range(panel.mapping_table.rowCount())]
    assert names == ["necrosis", "tumor"]
    before = len(viewer.layers)
    run_panel(qtbot, panel)
    errors = [m for severity, m in notifications if "error" in severity.lower()]
    assert any("share no class" in m and "'necrosis'" in m and "'tumor'" in m for m in errors)
    assert len(viewer.layers) == before
    assert panel.run_button.isEnabled() and panel.busy.isHidden()

    panel.mapping_table.item(0, 1).setText("tumor")  # map necrosis onto tumor: now comparable
    run_panel(qtbot, panel)
    assert table_value(panel, "overall", "dice", "A vs C") == "1.000"
