"""The Patch sampler panel in a real napari window: preview on a synthetic slide with a rater."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from napari.layers import Layer
from qtpy.QtWidgets import QApplication
from viewer_slides import DENSE_BOX_XY, SYNTH_MPP, TISSUE_BOX_XY

from napari_wsi_ml.annotations import Annotation, AnnotationSet
from napari_wsi_ml.data.slide_sampling import SamplingOptions, sample_slide_patches
from napari_wsi_ml.viewer.annotation_layers import annotation_layer_data, hex_to_rgba
from napari_wsi_ml.viewer.patch_layers import PATCHES_KIND, QC_KIND
from napari_wsi_ml.viewer.slide_layer import FINGERPRINT_KEY, KIND_KEY
from napari_wsi_ml.viewer.slide_reader import open_slide_layer_data
from napari_wsi_ml.widgets.patch_sampler_panel import PatchSamplerPanel

pytestmark = pytest.mark.gui

TUMOUR_COLOUR = "#D0021B"


@pytest.fixture
def panel_viewer(make_napari_viewer, synthetic_slide: Path):
    viewer = make_napari_viewer()
    slide_layer = viewer.add_layer(Layer.create(*open_slide_layer_data(synthetic_slide)))
    x0, y0, x1, y1 = DENSE_BOX_XY
    tumour = Annotation("t", "Polygon", [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], group="tumor")
    annotations = AnnotationSet([tumour], rater="rater1")
    annotations.groups["tumor"] = annotations.groups.get("tumor") or _group("tumor")
    meta = slide_layer.metadata
    data = annotation_layer_data(
        annotations,
        mpp=meta["mpp"],
        rater="rater1",
        slide_path=meta["slide_path"],
        slide_fingerprint=meta[FINGERPRINT_KEY],
    )
    viewer.add_layer(Layer.create(*data))
    panel = PatchSamplerPanel(viewer)
    viewer.window.add_dock_widget(panel, name="Patch sampler")
    viewer.layers.selection.active = slide_layer
    panel.strategy.setCurrentText("annotations")
    panel.patch_size.setValue(128)
    panel.target_mpp.setValue(1.0)  # 2 × the slide's 0.5 µm/px: 256 level-0 px per patch
    panel.background.setText("normal")
    return viewer, panel, slide_layer, annotations


def _group(name: str):
    from napari_wsi_ml.annotations import Group

    return Group(name, color=TUMOUR_COLOUR)


def run_preview(qtbot, panel: PatchSamplerPanel) -> None:
    panel.preview_button.click()
    assert panel.worker is not None
    qtbot.waitUntil(lambda: panel.worker is None, timeout=60_000)
    QApplication.processEvents()


def layer_of(viewer, kind: str):
    (layer,) = [la for la in viewer.layers if la.metadata.get(KIND_KEY) == kind]
    return layer


def test_preview_rectangles_land_on_patches_coloured_by_label(qtbot, panel_viewer) -> None:
    viewer, panel, slide_layer, annotations = panel_viewer
    assert panel.label_source.currentText() == "rater1"
    run_preview(qtbot, panel)
    options = SamplingOptions(
        strategy="annotations",
        patch_size=128,
        target_mpp=1.0,
        background_label="normal",
        label_map={"tumor": "tumor"},
    )
    slide = slide_layer.metadata["slide"]
    expected = sample_slide_patches(
        slide, options, annotations=annotations, label_names=("normal", "tumor")
    ).patches
    assert expected.counts()["tumor"] > 10 and expected.counts()["normal"] > 10
    shapes = layer_of(viewer, PATCHES_KIND)
    assert len(shapes.data) == len(expected)
    # top-left corner of every rectangle, in world µm = level-0 (x, y) × mpp
    world_top_left = np.array([shapes.data_to_world(box.min(axis=0)) for box in shapes.data])
    np.testing.assert_allclose(world_top_left, expected.xy[:, ::-1] * SYNTH_MPP)
    world_bottom_right = np.array([shapes.data_to_world(box.max(axis=0)) for box in shapes.data])
    np.testing.assert_allclose(world_bottom_right - world_top_left, 256 * SYNTH_MPP)
    # tumour patches take the class colour of the rater's layer; normal ones another colour
    tumour = expected.labels == expected.label_names.index("tumor")
    np.testing.assert_allclose(
        shapes.edge_color[tumour], [hex_to_rgba(TUMOUR_COLOUR)] * tumour.sum()
    )
    normal_colours = np.unique(shapes.edge_color[~tumour], axis=0)
    assert len(normal_colours) == 1 and not np.allclose(
        normal_colours[0], hex_to_rgba(TUMOUR_COLOUR)
    )
    # tumour patch centres lie inside the annotated box
    centres = expected.centres[tumour]
    x0, y0, x1, y1 = DENSE_BOX_XY
    assert ((centres >= (x0, y0)) & (centres <= (x1, y1))).all()
    assert panel.counts.text() == f"normal: {expected.counts()['normal']}\ntumor: {tumour.sum()}"
    assert shapes.metadata[FINGERPRINT_KEY] == slide_layer.metadata[FINGERPRINT_KEY]


def test_qc_mask_lands_on_the_slide(qtbot, panel_viewer) -> None:
    viewer, panel, _, _ = panel_viewer
    panel.strategy.setCurrentText("grid")
    panel.qc_enabled.setChecked(True)
    panel.qc_blur.setChecked(False)
    panel.qc_pen.setChecked(False)  # nothing to avoid: the mask shows background instead
    run_preview(qtbot, panel)
    qc_layer = layer_of(viewer, QC_KIND)
    qc = panel.last_sample.qc
    assert qc is not None and qc_layer.data.shape == qc.flags.shape
    # mask pixel (row 0, col 0) starts at world (0, 0); pixel k's edges at k × downsample × mpp
    np.testing.assert_allclose(qc_layer.data_to_world((-0.5, -0.5)), (0.0, 0.0), atol=1e-9)
    far = np.array(qc.flags.shape) - 0.5
    slide_w, slide_h = qc.slide_size
    np.testing.assert_allclose(
        qc_layer.data_to_world(far), (slide_h * SYNTH_MPP, slide_w * SYNTH_MPP)
    )
    # the tissue's left edge (x = 800 px) is where background stops, within one mask pixel
    row = int(((TISSUE_BOX_XY[1] + TISSUE_BOX_XY[3]) / 2) / qc.downsample[1])
    first_tissue = int(np.argmin(qc_layer.data[row] > 0))
    edge_um = qc_layer.data_to_world((row, first_tissue - 0.5))[1]
    assert abs(edge_um - TISSUE_BOX_XY[0] * SYNTH_MPP) <= qc.downsample[0] * SYNTH_MPP
    assert (qc_layer.data[row, first_tissue:] == 0).any()
    grid = layer_of(viewer, PATCHES_KIND)
    assert len(grid.data) == len(panel.last_sample.patches) > 0


def test_bad_target_is_a_notification_and_preview_again_replaces_layers(
    qtbot, panel_viewer, notifications
) -> None:
    viewer, panel, _, _ = panel_viewer
    panel.target_mpp.setValue(0.1)  # finer than the slide's 0.5 µm/px
    run_preview(qtbot, panel)
    assert any("finer than slide" in message for _, message in notifications)
    assert panel.status.text() == "Preview failed."
    panel.target_mpp.setValue(1.0)
    run_preview(qtbot, panel)
    run_preview(qtbot, panel)
    assert sum(la.metadata.get(KIND_KEY) == PATCHES_KIND for la in viewer.layers) == 1
