"""Large annotation sets under Xvfb: overview raster in place, live shapes, edits merged, saved.

Run with ``xvfb-run -a -s "-screen 0 1920x1200x24" .venv/bin/pytest tests/gui``.
"""

from __future__ import annotations

from pathlib import Path

import annotation_views
import numpy as np
import pytest

from napari_wsi_ml.annotations import read_asap, write_asap
from napari_wsi_ml.annotations.model import Annotation, AnnotationSet, Group
from napari_wsi_ml.annotations.rasterize import BoxIndex, draw, raster_size
from napari_wsi_ml.viewer.large_annotations import (
    DEFAULT_OVERVIEW_MAX_SIDE,
    INDEX_COLUMN,
    LargeAnnotationView,
    add_annotation_set,
    camera_of,
    full_annotation_set,
    overview_downsample,
)

pytestmark = pytest.mark.gui

MPP = (0.5, 0.5)
EXTENT = (40_960.0, 40_960.0)
CELL, SIDE = 290.0, 120.0  # a 60 x 60 grid of 120-pixel squares: 3 600 annotations
GRID = 60  # squares reach x, y = 17 440; the slide extent beyond is empty
COLORS = {"tumor": "#FF0000", "stroma": "#00C000"}


def grid_set() -> AnnotationSet:
    """Squares at (40 + CELL * i, 40 + CELL * j), class alternating by column."""
    annotations = []
    for j in range(GRID):
        for i in range(GRID):
            x0, y0 = 40.0 + CELL * i, 40.0 + CELL * j
            ring = np.array([[x0, y0], [x0 + SIDE, y0], [x0 + SIDE, y0 + SIDE], [x0, y0 + SIDE]])
            cls = "tumor" if i % 2 == 0 else "stroma"
            annotations.append(Annotation(f"a{i}_{j}", "Polygon", ring, cls, COLORS[cls]))
    groups = {name: Group(name, color=color) for name, color in COLORS.items()}
    return AnnotationSet(annotations=annotations, groups=groups, rater="ann")


def bbox_hits(annotation_set: AnnotationSet, box: tuple[float, ...]) -> set[int]:
    """Brute force: annotations whose bounding box meets ``box`` (level-0 x0, y0, x1, y1)."""
    return {
        i
        for i, a in enumerate(annotation_set)
        if a.coordinates[:, 0].max() >= box[0]
        and a.coordinates[:, 0].min() <= box[2]
        and a.coordinates[:, 1].max() >= box[1]
        and a.coordinates[:, 1].min() <= box[3]
    }


def look_at(viewer, view: LargeAnnotationView, x0: float, y0: float, width: float) -> tuple:
    """Point the camera at level-0 (x0, y0) showing ``width`` level-0 pixels across; refresh."""
    return annotation_views.look_at(viewer, view, x0, y0, width, MPP)


def screen_rc(viewer, x: float, y: float) -> tuple[int, int]:
    """Canvas pixel (column, row) showing level-0 (x, y)."""
    height_px, width_px = viewer.canvas.size
    center_row, center_col = camera_of(viewer).center[-2:]
    zoom = camera_of(viewer).zoom
    return (
        int((x * MPP[0] - center_col) * zoom + width_px / 2),
        int((y * MPP[1] - center_row) * zoom + height_px / 2),
    )


@pytest.fixture
def large_view(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    view = add_annotation_set(
        viewer, grid_set(), mpp=MPP, rater="ann", max_live_shapes=200, extent_wh=EXTENT
    )
    return viewer, view


def test_small_sets_are_plain_shapes(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    small = AnnotationSet(annotations=grid_set().annotations[:50], rater="ann")
    view = add_annotation_set(viewer, small, mpp=MPP, rater="ann")
    assert not view.is_large and view.overview_layer is None
    assert view.shapes_layer.nshapes == 50 and len(viewer.layers) == 1
    np.testing.assert_allclose(view.shapes_layer.scale, (0.5, 0.5))
    assert len(full_annotation_set(view.shapes_layer)) == 50


@pytest.mark.parametrize(
    ("canvas_hw", "expected"),
    [
        ((900, 1300), 40_960.0 / 900),  # fitted: the extent shown at the canvas's resolution
        ((100, 100), 40_960.0 / 512),  # never coarser than 512 pixels a side
        ((4000, 4000), 20.0),  # never finer than 2048 pixels a side
    ],
)
def test_overview_resolution_follows_the_canvas(canvas_hw, expected: float) -> None:
    ds = overview_downsample(EXTENT, canvas_hw, DEFAULT_OVERVIEW_MAX_SIDE)
    assert ds == pytest.approx(expected)
    assert overview_downsample((300.0, 200.0), canvas_hw, DEFAULT_OVERVIEW_MAX_SIDE) == 1.0


def test_overview_pixels_land_on_their_polygons(large_view) -> None:
    viewer, view = large_view
    overview = view.overview_layer
    assert view.is_large and not view.is_live
    ds = view.overview_downsample
    assert ds == overview_downsample(EXTENT, viewer.canvas.size, DEFAULT_OVERVIEW_MAX_SIDE)
    assert 20.0 <= ds <= 80.0
    width, height = raster_size(EXTENT, ds)
    assert overview.data.shape == (height, width, 4)
    # The same pixels as the rasteriser draws for these annotations over the whole slide.
    reference = draw(BoxIndex(grid_set()), origin_xy=(0, 0), downsample=ds, size_wh=(width, height))
    np.testing.assert_array_equal(overview.data, reference)
    # Square (i, j) = (10, 7) covers level-0 x in [2940, 3060), y in [2070, 2190). Its centre,
    # taken to world µm and back through each layer, is the same point in both layers.
    centre_xy = np.array([3000.0, 2130.0])
    world = centre_xy[::-1] * np.array(MPP[::-1])
    np.testing.assert_allclose(view.shapes_layer.world_to_data(world), centre_xy[::-1])
    raster_rc = np.asarray(overview.world_to_data(world))
    np.testing.assert_allclose(raster_rc, centre_xy[::-1] / ds - 0.5, atol=1e-9)
    row, col = np.rint(raster_rc).astype(int)
    assert tuple(overview.data[row, col, :3]) == (255, 0, 0)  # tumor (even column)
    next_col = round((3000.0 + CELL) / ds - 0.5)
    assert tuple(overview.data[row, next_col, :3]) == (0, 192, 0)  # next square: stroma
    gap = (np.array([2130.0, 3060.0 + 85.0]) / ds - 0.5).round().astype(int)  # between squares
    assert overview.data[gap[0], gap[1], 3] == 0


def test_overview_is_drawn_on_screen_where_the_polygons_are(large_view) -> None:
    viewer, view = large_view
    look_at(viewer, view, 0.0, 0.0, 16_000.0)  # > 1,000 annotations in view: rasters, no shapes
    assert not view.is_live and view.shapes_layer.nshapes == 0
    # Finer than the overview: the detail raster alone (both translucent rasters would show
    # each fill twice, darker than its colour).
    assert view.detail_layer.visible and not view.overview_layer.visible
    screenshot = viewer.screenshot(canvas_only=True, flash=False)
    height_px, width_px = viewer.canvas.size
    px_per_level0 = width_px / 16_000.0
    assert screenshot.shape[:2] == (height_px, width_px)
    for i, j in [(3, 2), (20, 15), (41, 30)]:
        cx, cy = 40.0 + CELL * i + SIDE / 2, 40.0 + CELL * j + SIDE / 2
        pixel = screenshot[int(cy * px_per_level0), int(cx * px_per_level0), :3].astype(int)
        expected = np.array((255, 0, 0) if i % 2 == 0 else (0, 192, 0))
        assert np.abs(pixel - expected * 120 / 255).max() < 40, (i, j, pixel)
        gap = screenshot[int(cy * px_per_level0), int((cx + CELL / 2) * px_per_level0), :3]
        assert gap.max() < 30  # the canvas background between squares


def test_zoomed_in_shows_exactly_the_annotations_in_the_window(large_view) -> None:
    viewer, view = large_view
    box = look_at(viewer, view, 10_000.0, 12_000.0, 1_600.0)
    assert view.is_live and not view.overview_layer.visible
    pad_w, pad_h = 0.5 * (box[2] - box[0]), 0.5 * (box[3] - box[1])
    window = (box[0] - pad_w, box[1] - pad_h, box[2] + pad_w, box[3] + pad_h)
    full = view.annotation_set()
    expected = bbox_hits(full, window)
    assert 0 < len(expected) <= 200
    assert set(view.live_ids.tolist()) == expected
    layer = view.shapes_layer
    assert layer.nshapes == len(expected)
    assert layer.features[INDEX_COLUMN].tolist() == view.live_ids.tolist()
    for row, position in enumerate(view.live_ids):
        np.testing.assert_allclose(layer.data[row], full.annotations[position].coordinates[:, ::-1])
    # On screen: each live square's face colour (25 % opaque) at its centre, black between.
    screenshot = viewer.screenshot(canvas_only=True, flash=False)
    shown = 0
    for position in view.live_ids:
        annotation = full.annotations[position]
        cx, cy = annotation.coordinates.mean(axis=0)
        col, row = screen_rc(viewer, cx, cy)
        if 0 <= row < screenshot.shape[0] and 0 <= col < screenshot.shape[1]:
            expected = np.array((255, 0, 0) if annotation.group == "tumor" else (0, 192, 0))
            pixel = screenshot[row, col, :3].astype(int)
            assert np.abs(pixel - 0.25 * expected).max() < 25, (position, pixel)
            gap_col, _ = screen_rc(viewer, cx + CELL / 2, cy)
            if gap_col < screenshot.shape[1]:
                assert screenshot[row, gap_col, :3].max() < 30
            shown += 1
    assert shown >= 10


def test_edits_in_the_window_are_merged_and_saved(large_view, tmp_path: Path) -> None:
    viewer, view = large_view
    total = len(view.annotation_set())
    look_at(viewer, view, 10_000.0, 12_000.0, 1_600.0)
    layer = view.shapes_layer
    moved_position = int(view.live_ids[0])
    deleted_position = int(view.live_ids[1])
    moved_name = view.annotation_set().annotations[moved_position].name
    deleted_name = view.annotation_set().annotations[deleted_position].name
    before = view.annotation_set().annotations[moved_position].coordinates.copy()
    data = list(layer.data)
    data[0] = data[0] + np.array([30.0, 10.0])  # (row, col): y + 30, x + 10
    layer.data = data
    layer.selected_data = {1}
    layer.remove_selected()
    new_ring = np.array([[12_100.0, 10_100.0], [12_100.0, 10_200.0], [12_200.0, 10_150.0]])
    layer.add_polygons([new_ring])

    look_at(viewer, view, 0.0, 0.0, EXTENT[0])  # zoom out: the edits go back into the full set
    assert not view.is_live and view.shapes_layer.nshapes == 0
    merged = view.annotation_set()
    assert len(merged) == total  # one deleted, one added
    by_name = {a.name: a for a in merged}
    assert deleted_name not in by_name
    np.testing.assert_allclose(
        by_name[moved_name].coordinates, before + np.array([10.0, 30.0]), atol=1e-3
    )
    added = merged.annotations[-1]
    np.testing.assert_allclose(added.coordinates, new_ring[:, ::-1], atol=1e-3)
    # The overview is drawn again with the new polygon in it.
    centre = np.array([10_150.0, 12_150.0]) / view.overview_downsample - 0.5
    assert view.overview_layer.data[round(centre[1]), round(centre[0]), 3] > 0

    path = tmp_path / "slide.ann.xml"
    write_asap(full_annotation_set(view.shapes_layer), path)
    saved = read_asap(path)
    assert len(saved) == total
    saved_names = [a.name for a in saved]
    assert moved_name in saved_names and deleted_name not in saved_names
    assert {a.group for a in saved} >= {"tumor", "stroma"}
