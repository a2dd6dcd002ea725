"""The slide reader in a real napari window: scale, what a person sees, bad files, mpp, reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qtpy.QtWidgets import QApplication
from viewer_slides import (
    DENSE_BOX_XY,
    SLIDES_DIR,
    SYNTH_MPP,
    SYNTH_SIZE,
    TISSUE_BOX_XY,
    write_synthetic_slide,
)

pytestmark = pytest.mark.gui

PLUGIN = "napari-wsi-ml"
BAD_SLIDES = ["broken.svs", "unreadable.svs", "unopenable.tiff", "kidney-48-5.tif"]


def settle(viewer, rounds: int = 30) -> None:
    """Let napari slice, load and draw."""
    for _ in range(rounds):
        QApplication.processEvents()
    assert all(layer.loaded for layer in viewer.layers)


def world_to_canvas(viewer, world_rowcol: np.ndarray) -> np.ndarray:
    """Canvas pixel (row, col) of world points, for a 2D view."""
    canvas_size = np.asarray(viewer.window._qt_viewer.canvas.size)
    centre = np.asarray(viewer.scene.camera.center[-2:])
    return (np.asarray(world_rowcol) - centre) * viewer.scene.camera.zoom + canvas_size / 2


def canvas_crop(shot: np.ndarray, viewer, box_xy, scale) -> np.ndarray:
    """The screenshot pixels inside a level-0 (x0, y0, x1, y1) box, shrunk by 10 % a side."""
    x0, y0, x1, y1 = box_xy
    dx, dy = 0.1 * (x1 - x0), 0.1 * (y1 - y0)
    corners = np.array([[y0 + dy, x0 + dx], [y1 - dy, x1 - dx]]) * np.asarray(scale)
    (r0, c0), (r1, c1) = np.round(world_to_canvas(viewer, corners)).astype(int)
    return shot[r0:r1, c0:c1, :3]


def block_means(image: np.ndarray, block: int = 10) -> np.ndarray:
    """Mean colour of each ``block`` × ``block`` tile of an image (edges cropped)."""
    rows, cols = image.shape[0] // block, image.shape[1] // block
    tiles = image[: rows * block, : cols * block].astype(float)
    return tiles.reshape(rows, block, cols, block, -1).mean(axis=(1, 3))


def test_synthetic_slide_opens_in_micrometres_and_tissue_is_visible(
    make_napari_viewer, synthetic_slide: Path, tile_reads
) -> None:
    viewer = make_napari_viewer(show=True)
    [layer] = viewer.open(synthetic_slide, plugin=PLUGIN)
    assert layer.name == "synthetic" and layer.multiscale and layer.rgb
    np.testing.assert_allclose(layer.scale, (SYNTH_MPP, SYNTH_MPP))
    np.testing.assert_allclose(layer.translate, (SYNTH_MPP / 2, SYNTH_MPP / 2))
    assert [str(u) for u in layer.units] == ["micrometer", "micrometer"]
    assert tuple(layer.contrast_limits) == (0, 255)
    assert layer.metadata["slide_fingerprint"] == layer.metadata["slide"].fingerprint
    settle(viewer)
    # opening and the first frame read only the two low-resolution levels
    assert tile_reads and {level for level, _, _ in tile_reads} <= {1, 2}
    shot = viewer.screenshot(canvas_only=True, flash=False)
    tissue = canvas_crop(shot, viewer, (TISSUE_BOX_XY[0], 1100, 1500, 4900), layer.scale)
    dense = canvas_crop(shot, viewer, DENSE_BOX_XY, layer.scale)
    glass = canvas_crop(shot, viewer, (4500, 1000, 7800, 5000), layer.scale)
    assert tissue.size and dense.size and glass.size
    np.testing.assert_allclose(tissue.reshape(-1, 3).mean(0), (230, 150, 195), atol=12)
    np.testing.assert_allclose(dense.reshape(-1, 3).mean(0), (90, 45, 135), atol=12)
    assert glass.min() >= 225  # glass stays white: no tissue drawn where there is none


def test_real_svs_matches_its_pixels_on_screen(make_napari_viewer) -> None:
    viewer = make_napari_viewer(show=True)
    [layer] = viewer.open(SLIDES_DIR / "cmu-1-small-region.svs", plugin=PLUGIN)
    np.testing.assert_allclose(layer.scale, (0.499, 0.499), atol=1e-3)
    settle(viewer)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    slide = layer.metadata["slide"]
    width, height = slide.level_dimensions[0]
    seen = canvas_crop(shot, viewer, (0, 0, width, height), layer.scale)
    # the slide's own pixels at the same size (nearest neighbour), same 10 % margins
    level = np.asarray(slide.levels[-1])
    rows = np.linspace(0.1, 0.9, seen.shape[0], endpoint=False) * level.shape[0]
    cols = np.linspace(0.1, 0.9, seen.shape[1], endpoint=False) * level.shape[1]
    expected = level[rows.astype(int)][:, cols.astype(int)]
    non_white = expected.min(axis=-1) < 200
    assert 0.2 < non_white.mean() < 0.95  # this slide has tissue and background
    shown_non_white = seen.min(axis=-1) < 200
    assert (shown_non_white == non_white).mean() > 0.9
    # colours agree once sub-pixel sampling differences are averaged out (10 × 10 px blocks)
    assert np.abs(block_means(seen) - block_means(expected)).mean() < 6


@pytest.mark.parametrize("name", BAD_SLIDES)
def test_bad_slide_is_a_notification_and_the_viewer_keeps_running(
    make_napari_viewer, synthetic_slide: Path, notifications, name: str
) -> None:
    viewer = make_napari_viewer()
    [good] = viewer.open(synthetic_slide, plugin=PLUGIN)
    assert viewer.open(SLIDES_DIR / name, plugin=PLUGIN) == []
    assert list(viewer.layers) == [good]
    errors = [message for severity, message in notifications if severity == "error"]
    assert len(errors) == 1 and name in errors[0]
    assert any(word in errors[0] for word in ("Cannot open", "Cannot decode"))
    # the other layer still draws
    viewer.reset_view()
    settle(viewer)


def test_unknown_mpp_is_announced_and_settable_in_the_slide_panel(
    make_napari_viewer, notifications
) -> None:
    from napari_wsi_ml.widgets.slide_panel import SlidePanel

    viewer = make_napari_viewer()
    [layer] = viewer.open(SLIDES_DIR / "tcga-cr-7395-01a-01-ts1.svs", plugin=PLUGIN)
    assert any(
        severity == "warning" and "mpp unknown" in message and "tcga-cr-7395" in message
        for severity, message in notifications
    )
    np.testing.assert_allclose(layer.scale, (1, 1))
    outline = viewer.add_shapes(
        [np.array([[100.0, 100.0], [100.0, 900.0], [700.0, 900.0]])],
        shape_type="polygon",
        metadata={"slide_fingerprint": layer.metadata["slide_fingerprint"], "mpp": None},
    )
    unrelated = viewer.add_points([[5.0, 5.0]])
    panel = SlidePanel(viewer)
    viewer.layers.selection.active = layer
    assert panel.mpp_label.text().startswith("unknown")
    assert "4,443 × 3,567" in panel.size_label.text()
    assert "×2.0" in panel.levels_label.text()
    panel.mpp_input.setValue(0.25)
    panel.mpp_button.click()
    np.testing.assert_allclose(layer.scale, (0.25, 0.25))
    np.testing.assert_allclose(layer.translate, (0.125, 0.125))
    np.testing.assert_allclose(outline.scale, (0.25, 0.25))
    np.testing.assert_allclose(unrelated.scale, (1, 1))
    assert [str(u) for u in layer.units] == ["micrometer", "micrometer"]
    assert panel.mpp_label.text().startswith("0.25")
    # the outline's world coordinates moved with the tissue: vertex (100, 900) px → µm
    np.testing.assert_allclose(outline.data_to_world([100.0, 900.0]), (25.0, 225.0))


def test_detect_tissue_runs_off_the_ui_thread_and_adds_an_outline(
    make_napari_viewer, synthetic_slide: Path, qtbot
) -> None:
    from napari_wsi_ml.widgets.slide_panel import SlidePanel

    viewer = make_napari_viewer()
    [layer] = viewer.open(synthetic_slide, plugin=PLUGIN)
    panel = SlidePanel(viewer)
    panel.tissue_button.click()
    qtbot.waitUntil(lambda: len(viewer.layers) == 2, timeout=30_000)
    qtbot.waitUntil(lambda: panel._worker is None, timeout=5_000)
    tissue = viewer.layers[-1]
    assert tissue.name == "synthetic tissue"
    np.testing.assert_allclose(tissue.scale, layer.scale)
    vertices = np.concatenate(tissue.data)  # level-0 (row, col)
    x0, y0, x1, y1 = TISSUE_BOX_XY
    tolerance = 0.02 * SYNTH_SIZE[0]
    assert vertices[:, 1].min() == pytest.approx(x0, abs=tolerance)
    assert vertices[:, 1].max() == pytest.approx(x1, abs=tolerance)
    assert vertices[:, 0].min() == pytest.approx(y0, abs=tolerance)
    assert vertices[:, 0].max() == pytest.approx(y1, abs=tolerance)


def box_edges(shot: np.ndarray, row: int) -> np.ndarray:
    """Canvas columns where a row of the screenshot turns dark or light."""
    dark = shot[row, :, :3].mean(axis=-1) < 128
    return np.flatnonzero(np.diff(dark.astype(int)))


def test_boxes_levels_are_aligned(make_napari_viewer) -> None:
    viewer = make_napari_viewer(show=True)
    [layer] = viewer.open(SLIDES_DIR / "boxes.tiff", plugin=PLUGIN)
    assert layer.metadata["slide"].level_downsamples[3] == pytest.approx(8.086, abs=1e-3)
    viewer.reset_view()
    settle(viewer)
    shots = {}
    for level in (0, 2, 3):
        layer.locked_data_level = level
        settle(viewer)
        assert layer.data_level == level
        shots[level] = viewer.screenshot(canvas_only=True, flash=False)
    height = shots[0].shape[0]
    for row in (int(height * 0.45), int(height * 0.55)):
        reference = box_edges(shots[0], row)
        assert len(reference) >= 2
        pixel = viewer.scene.camera.zoom * layer.scale[-1]  # canvas px per level-0 px
        for level in (2, 3):
            edges = box_edges(shots[level], row)
            assert len(edges) == len(reference)
            # within one pixel of that level (its downsample in level-0 px) on screen: an edge
            # inside a low-resolution pixel is blended there and may threshold to either side
            tolerance = pixel * layer.metadata["slide"].level_downsamples[level] + 1
            assert np.abs(edges - reference).max() <= tolerance


def test_slide_without_mpp_in_a_synthetic_file_shows_pixels(make_napari_viewer, tmp_path) -> None:
    path = write_synthetic_slide(tmp_path / "no-mpp.tiff", mpp=None)
    viewer = make_napari_viewer()
    [layer] = viewer.open(path, plugin=PLUGIN)
    assert layer.metadata["mpp"] is None
    assert [str(u) for u in layer.units] == ["pixel", "pixel"]
