"""Large annotation files opened, edited, counted, renamed and saved: the whole set, every time.

A file of more annotations than a live window holds is shown as an overview plus a window of the
annotations in view. Opening it (File menu, sessions), saving it (npe2 writers, session save,
autosave) and counting or renaming its classes must act on all of it, not on the window.
The live-window limit is lowered to 200 so that 3 000 squares are "large".
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from annotation_views import look_at
from napari.layers import Layer

from napari_wsi_ml.annotations import read_asap, read_geojson, write_asap
from napari_wsi_ml.annotations.model import Annotation, AnnotationSet, Group
from napari_wsi_ml.viewer import large_annotations
from napari_wsi_ml.viewer.annotation_layers import (
    annotation_set_from_layer,
    annotation_set_of_layer,
)
from napari_wsi_ml.viewer.large_annotations import view_of
from napari_wsi_ml.viewer.slide_reader import open_slide_layer_data
from napari_wsi_ml.widgets.classes_panel import ClassesPanel

pytestmark = pytest.mark.gui

PLUGIN = "napari-wsi-ml"
LIVE = 200
COLS, ROWS, CELL_X, CELL_Y, SIDE = 60, 50, 130.0, 120.0, 60.0  # 3 000 squares on 8192 x 6144
COLORS = {"tumor": "#E6194B", "stroma": "#3CB44B"}  # the classes panel's default colours
ZOOM = (2000.0, 2000.0, 1000.0)  # x0, y0, width: about 40 squares in view, < 200 in the window
MOVE_XY = np.array([3.0, 7.0])


def grid_set(rater: str) -> AnnotationSet:
    """Squares (i, j) at (40 + 130 i, 40 + 120 j), 60 px a side; tumor in even columns."""
    annotations = []
    for j in range(ROWS):
        for i in range(COLS):
            x0, y0 = 40.0 + CELL_X * i, 40.0 + CELL_Y * j
            ring = np.array([[x0, y0], [x0 + SIDE, y0], [x0 + SIDE, y0 + SIDE], [x0, y0 + SIDE]])
            name = "tumor" if i % 2 == 0 else "stroma"
            annotations.append(Annotation(f"a{i}_{j}", "Polygon", ring, name, COLORS[name]))
    groups = {name: Group(name, color=color) for name, color in COLORS.items()}
    return AnnotationSet(annotations=annotations, groups=groups, rater=rater)


def by_name(annotation_set: AnnotationSet) -> dict[str, Annotation]:
    return {a.name: a for a in annotation_set}


def move_first_live_shape(layer) -> str:
    """Move the window's first shape by MOVE_XY (level-0 px); the name of its annotation."""
    name = str(layer.features["name"].iloc[0])
    data = list(layer.data)
    data[0] = data[0] + MOVE_XY[::-1]
    layer.data = data
    return name


def draw_polygon(layer, xy: np.ndarray) -> None:
    """What napari's polygon tool does when a shape is finished."""
    layer.mode = "add_polygon"
    layer.add_polygons([xy[:, ::-1]])
    layer.mode = "pan_zoom"


def slide_viewer(make_napari_viewer, slide: Path):
    viewer = make_napari_viewer()
    viewer.add_layer(Layer.create(*open_slide_layer_data(slide)))
    return viewer


def session_panel(make_napari_viewer, slide: Path, folder: Path):
    """A viewer on the slide with alice's session started from ``folder``, window limit LIVE."""
    viewer = slide_viewer(make_napari_viewer, slide)
    panel = ClassesPanel(viewer)
    viewer.window.add_dock_widget(panel, name="Annotation classes")
    panel.max_live_shapes = LIVE
    panel.rater_edit.setText("alice")
    panel.folder_edit.setText(str(folder))
    panel.start_session()
    return viewer, panel


def class_row(panel: ClassesPanel, name: str) -> str:
    panel.stats_timer.timeout.emit()  # the debounce would fire 300 ms later
    rows = [panel.class_list.item(k).text() for k in range(panel.class_list.count())]
    [row] = [r for r in rows if f" {name} " in r]
    return " ".join(row.split())


def test_file_menu_opens_large_file_and_writers_save_all(
    make_napari_viewer, synthetic_slide: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari.plugins.io import save_layers

    monkeypatch.setattr(large_annotations, "default_max_live_shapes", lambda: LIVE)
    original = grid_set("bob")
    path = tmp_path / "synthetic.bob.xml"
    write_asap(original, path)
    viewer = slide_viewer(make_napari_viewer, synthetic_slide)
    slide = viewer.layers[0]

    assert viewer.open(str(path), plugin=PLUGIN) == []  # the reader added the layers itself
    assert [layer.name for layer in viewer.layers] == ["synthetic", "bob overview", "bob"]
    layer = viewer.layers["bob"]
    view = view_of(layer)
    assert view.is_large and layer.nshapes == 0  # the whole slide in view: the overview
    assert layer.metadata["slide_fingerprint"] == slide.metadata["slide_fingerprint"]
    assert tuple(layer.scale) == tuple(slide.scale) == (0.5, 0.5)
    ds = view.overview_downsample  # the slide's 8192 x 6144 at the canvas's resolution
    assert view.overview_layer.data.shape[:2] == (np.ceil(6144 / ds), np.ceil(8192 / ds))

    look_at(viewer, view, *ZOOM)
    assert 0 < layer.nshapes <= LIVE
    moved = move_first_live_shape(layer)
    assert len(annotation_set_from_layer(layer)) == layer.nshapes < 3000  # the window only

    xml, geojson = tmp_path / "saved.xml", tmp_path / "saved.geojson"
    assert save_layers(str(xml), [layer], plugin=PLUGIN) == [str(xml)]
    assert save_layers(str(geojson), [layer], plugin=PLUGIN) == [str(geojson)]
    before = by_name(original)
    for saved in (read_asap(xml), read_geojson(geojson)):
        assert len(saved) == 3000
        after = by_name(saved)
        assert set(after) == set(before)
        np.testing.assert_allclose(
            after[moved].coordinates[:4], before[moved].coordinates + MOVE_XY, atol=1e-3
        )
        far = after["a59_49"].coordinates[:4]  # never in the window
        np.testing.assert_array_equal(far, before["a59_49"].coordinates)
        assert sum(a.group == "tumor" for a in saved) == 1500

    write_asap(grid_set("carol"), tmp_path / "synthetic.carol.xml")  # File > Open, no plugin named
    viewer.window._qt_viewer._qt_open([str(tmp_path / "synthetic.carol.xml")], stack=False)
    assert [layer.name for layer in viewer.layers][-2:] == ["carol overview", "carol"]
    assert len(annotation_set_of_layer(viewer.layers["carol"])) == 3000


def test_session_of_a_large_file_saves_autosaves_and_recovers_all(
    make_napari_viewer, synthetic_slide: Path, tmp_path: Path
) -> None:
    original = grid_set("alice")
    write_asap(original, tmp_path / "synthetic.alice.xml")
    viewer, panel = session_panel(make_napari_viewer, synthetic_slide, tmp_path)
    view = view_of(panel.layer)
    assert view.is_large and view.max_live_shapes == LIVE
    assert len(annotation_set_of_layer(panel.layer)) == 3000
    assert "tumor · 1500 · 1.350 mm²" in class_row(panel, "tumor")  # 1500 x 60² px x 0.25 µm²

    look_at(viewer, view, *ZOOM)
    assert 0 < panel.layer.nshapes <= LIVE
    moved = move_first_live_shape(panel.layer)
    panel.pick_class(1)  # stroma
    triangle = np.array([[2100.0, 2030.0], [2150.0, 2030.0], [2120.0, 2100.0]])
    draw_polygon(panel.layer, triangle)
    assert "stroma · 1501 ·" in class_row(panel, "stroma")
    panel.save()
    saved = by_name(read_asap(tmp_path / "synthetic.alice.xml"))
    assert len(saved) == 3001
    np.testing.assert_allclose(
        saved[moved].coordinates, by_name(original)[moved].coordinates + MOVE_XY, atol=1e-3
    )
    [drawn] = [a for a in saved.values() if a.name not in by_name(original)]
    assert (drawn.group, drawn.color) == ("stroma", COLORS["stroma"])
    np.testing.assert_allclose(drawn.coordinates, triangle, atol=1e-3)

    look_at(viewer, view, 5000.0, 3000.0, 1000.0)  # the window moves elsewhere
    deleted = str(panel.layer.features["name"].iloc[0])
    panel.layer.selected_data = {0}
    panel.layer.remove_selected()
    panel.autosave()
    recovered = by_name(read_asap(tmp_path / "synthetic.alice.recovery.xml"))
    assert len(recovered) == 3000 and deleted not in recovered and moved in recovered

    panel.autosave_timer.stop()
    panel.deleteLater()  # a crash: the recovery file is newer than the saved file
    viewer2 = slide_viewer(make_napari_viewer, synthetic_slide)
    panel2 = ClassesPanel(viewer2)
    panel2.max_live_shapes = LIVE
    panel2.recovery_prompt = lambda session: True
    panel2.rater_edit.setText("alice")
    panel2.folder_edit.setText(str(tmp_path))
    panel2.start_session()
    back = by_name(annotation_set_of_layer(panel2.layer))
    assert view_of(panel2.layer).is_large and len(back) == 3000 and deleted not in back
    np.testing.assert_allclose(back[moved].coordinates, recovered[moved].coordinates)


def test_rename_and_recolour_apply_to_the_whole_set(
    make_napari_viewer, synthetic_slide: Path, tmp_path: Path
) -> None:
    write_asap(grid_set("alice"), tmp_path / "synthetic.alice.xml")
    viewer, panel = session_panel(make_napari_viewer, synthetic_slide, tmp_path)
    view = view_of(panel.layer)
    look_at(viewer, view, *ZOOM)
    panel.pick_class(0)  # tumor
    panel.rename_active_class("lesion")
    whole = annotation_set_of_layer(panel.layer)
    assert sum(a.group == "lesion" for a in whole) == 1500
    assert not any(a.group == "tumor" for a in whole)
    assert "tumor" not in whole.groups and whole.groups["lesion"].color == COLORS["tumor"]
    assert "tumor" not in set(panel.layer.features["class"])
    assert "lesion · 1500 ·" in class_row(panel, "lesion")
    look_at(viewer, view, 6000.0, 4000.0, 1000.0)  # a window loaded after the rename
    assert set(panel.layer.features["class"]) == {"lesion", "stroma"}

    look_at(viewer, view, 0.0, 0.0, 8192.0)  # zoomed out: the overview
    assert not view.is_live
    panel.pick_class(1)  # stroma
    panel.recolor_active_class("#0000FF")
    overview = view.overview_layer.data  # pixel (r, c) centred on level-0 ds (r, c) + ds / 2
    row, col0, col1 = (round(v / view.overview_downsample - 0.5) for v in (70.0, 70.0, 200.0))
    assert tuple(overview[row, col1, :3]) == (0, 0, 255)  # square (1, 0), centre (200, 70)
    assert tuple(overview[row, col0, :3]) == (0xE6, 0x19, 0x4B)  # square (0, 0): lesion
    panel.save()
    saved = read_asap(tmp_path / "synthetic.alice.xml")
    assert {(a.group, a.color) for a in saved} == {("lesion", "#E6194B"), ("stroma", "#0000FF")}
    assert sum(a.group == "stroma" for a in saved) == 1500
    assert saved.groups["stroma"].color == "#0000FF" and "tumor" not in saved.groups

    panel.layer.visible = False  # hiding the rater's layer hides the rasters with it
    assert not view.overview_layer.visible
    viewer.layers.remove(panel.layer)
    assert "alice overview" not in [layer.name for layer in viewer.layers]


def test_default_window_size_follows_napari_triangulation(monkeypatch: pytest.MonkeyPatch) -> None:
    from napari.utils.triangulation_backend import TriangulationBackend, set_backend

    previous = set_backend(TriangulationBackend.fastest_available)
    try:
        monkeypatch.setattr(large_annotations, "bermuda_installed", lambda: True)
        assert large_annotations.default_max_live_shapes() == 5000
        monkeypatch.setattr(large_annotations, "bermuda_installed", lambda: False)
        assert large_annotations.default_max_live_shapes() == 1000
        monkeypatch.setattr(large_annotations, "bermuda_installed", lambda: True)
        set_backend(TriangulationBackend.pure_python)  # chosen in napari's preferences
        assert large_annotations.default_max_live_shapes() == 1000
    finally:
        set_backend(previous)
