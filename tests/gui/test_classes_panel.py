"""The classes panel in a real napari window: draw with a class, save, reopen, recover, blind."""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from napari.layers import Layer
from qtpy.QtWidgets import QApplication

from napari_wsi_ml.annotations import Annotation, AnnotationSet, Group, read_asap, write_asap
from napari_wsi_ml.viewer.slide_reader import open_slide_layer_data
from napari_wsi_ml.widgets.classes_panel import ClassesPanel

pytestmark = pytest.mark.gui

SLIDES_DIR = Path(__file__).resolve().parents[1] / "data" / "slides"  # see tests/data/PROVENANCE.md
MPP = 0.499  # cmu-1-small-region.svs
PLUGIN = "napari-wsi-ml"
# a triangle, in level-0 (x, y) pixels of the slide
TRIANGLE_XY = np.array([[300.25, 400.5], [900.75, 420.0], [600.5, 1100.125]])


@pytest.fixture
def slide_path(tmp_path: Path) -> Path:
    """A copy of a real slide in a folder of its own (sessions save beside it)."""
    path = tmp_path / "case-17.svs"
    shutil.copy(SLIDES_DIR / "cmu-1-small-region.svs", path)
    return path


def open_viewer(make_napari_viewer, slide_path: Path, rater: str = "alice"):
    """A viewer showing the slide, with a classes panel docked, rater typed in."""
    viewer = make_napari_viewer()
    viewer.add_layer(Layer.create(*open_slide_layer_data(slide_path)))
    panel = ClassesPanel(viewer)
    viewer.window.add_dock_widget(panel, name="Annotation classes")
    panel.rater_edit.setText(rater)
    return viewer, panel


def press(viewer, key: str) -> None:
    """A key press on the canvas, as a person types it."""
    from qtpy.QtCore import Qt
    from qtpy.QtTest import QTest

    canvas = viewer.window._qt_viewer.canvas.native
    canvas.setFocus()
    QTest.keyClick(canvas, getattr(Qt.Key, f"Key_{key}"))
    QApplication.processEvents()


def draw_polygon(layer, xy: np.ndarray) -> None:
    """What napari's polygon tool does when a shape is finished: add it to the layer."""
    layer.mode = "add_polygon"
    layer.add_polygons([xy[:, ::-1]])
    layer.mode = "pan_zoom"


def test_draw_with_active_class_save_and_reopen(make_napari_viewer, slide_path: Path) -> None:
    viewer, panel = open_viewer(make_napari_viewer, slide_path)
    panel.start_session()
    layer = panel.layer
    assert layer.name == "alice" and tuple(layer.scale) == (MPP, MPP)
    press(viewer, "2")
    assert panel.active_class == "stroma"
    draw_polygon(layer, TRIANGLE_XY)
    assert list(layer.features["class"]) == ["stroma"]
    assert layer.edge_color[0].tolist() == pytest.approx([0x3C / 255, 0xB4 / 255, 0x4B / 255, 1])
    panel.save()
    saved = read_asap(slide_path.with_name("case-17.alice.xml"))
    assert [(a.type, a.group, a.color) for a in saved] == [("Polygon", "stroma", "#3CB44B")]
    assert np.abs(saved.annotations[0].coordinates - TRIANGLE_XY).max() < 1e-3
    assert set(saved.groups) >= {"tumor", "stroma", "necrosis", "other"}

    other = make_napari_viewer()
    other.add_layer(Layer.create(*open_slide_layer_data(slide_path)))
    [reopened] = other.open(str(slide_path.with_name("case-17.alice.xml")), plugin=PLUGIN)
    assert reopened.name == "alice" and list(reopened.features["class"]) == ["stroma"]
    assert np.allclose(reopened.data[0], TRIANGLE_XY[:, ::-1], atol=1e-3)
    assert tuple(reopened.scale) == (MPP, MPP)


def test_class_counts_areas_rename_and_recolour(make_napari_viewer, slide_path: Path) -> None:
    viewer, panel = open_viewer(make_napari_viewer, slide_path)
    panel.start_session()
    panel.add_class("immune", "#911EB4")
    press(viewer, "5")
    square = np.array([[100.0, 100.0], [200.0, 100.0], [200.0, 200.0], [100.0, 200.0]])
    draw_polygon(panel.layer, square)
    draw_polygon(panel.layer, square + 300)
    panel.stats_timer.timeout.emit()  # the debounce would fire 300 ms later
    row = panel.class_list.item(4).text()
    assert "immune" in row and "· 2 ·" in row.replace("  ", " ")
    assert "4,980 µm²" in row  # 2 × 100 px × 100 px × 0.499² µm²/px²
    panel.rename_active_class("lymphocytes")
    assert list(panel.layer.features["class"]) == ["lymphocytes", "lymphocytes"]
    panel.recolor_active_class("#00FFFF")
    assert panel.layer.edge_color[:, :3].tolist() == [[0.0, 1.0, 1.0]] * 2
    panel.save()
    saved = read_asap(panel.session.annotation_path)
    assert {(a.group, a.color) for a in saved} == {("lymphocytes", "#00FFFF")}
    assert saved.groups["lymphocytes"].color == "#00FFFF"


def test_autosave_recovery_after_a_crash(make_napari_viewer, qtbot, slide_path: Path) -> None:
    viewer, panel = open_viewer(make_napari_viewer, slide_path)
    panel.autosave_interval_ms = 100
    panel.start_session()
    press(viewer, "1")
    draw_polygon(panel.layer, TRIANGLE_XY)
    recovery = slide_path.with_name("case-17.alice.recovery.xml")
    qtbot.waitUntil(recovery.is_file, timeout=3000)
    panel.autosave_timer.stop()
    draw_polygon(panel.layer, TRIANGLE_XY + 50)  # after the last autosave: lost in the crash
    panel.deleteLater()  # the crash: no save, no close event
    qtbot.wait(10)

    asked = []
    _viewer2, panel2 = open_viewer(make_napari_viewer, slide_path)
    panel2.recovery_prompt = lambda session: asked.append(session.recovery_path) or True
    panel2.start_session()
    assert asked == [recovery]
    assert len(panel2.layer.data) == 1 and list(panel2.layer.features["class"]) == ["tumor"]
    assert np.allclose(panel2.layer.data[0], TRIANGLE_XY[:, ::-1], atol=1e-3)
    panel2.save()
    assert not recovery.exists()
    assert len(read_asap(slide_path.with_name("case-17.alice.xml"))) == 1


def test_closing_the_panel_autosaves(make_napari_viewer, slide_path: Path) -> None:
    _viewer, panel = open_viewer(make_napari_viewer, slide_path)
    panel.start_session()
    draw_polygon(panel.layer, TRIANGLE_XY)
    panel.close()
    recovered = read_asap(slide_path.with_name("case-17.alice.recovery.xml"))
    assert len(recovered) == 1 and recovered.annotations[0].group == "tumor"


def test_blinded_mode_hides_and_refuses_other_raters(
    make_napari_viewer, slide_path: Path, notifications
) -> None:
    bob_file = slide_path.with_name("case-17.bob.xml")
    bob = AnnotationSet([Annotation("b", "Polygon", TRIANGLE_XY, group="tumor")], rater="bob")
    bob.groups["tumor"] = Group("tumor", color="#E6194B")
    write_asap(bob, bob_file)
    viewer, panel = open_viewer(make_napari_viewer, slide_path)
    panel.start_session()
    bob_layer = panel.open_file(str(bob_file))
    assert bob_layer is not None and bob_layer.name == "bob" and bob_layer.visible
    panel.blinded_check.setChecked(True)
    assert not bob_layer.visible and panel.layer.visible
    viewer.layers.remove(bob_layer)
    names = [layer.name for layer in viewer.layers]
    assert panel.open_file(str(bob_file)) is None
    assert viewer.open(str(bob_file), plugin=PLUGIN) == []
    assert [layer.name for layer in viewer.layers] == names
    assert sum("Blinded mode is on" in message for _, message in notifications) == 2

    panel.unblind_confirm = lambda: False
    panel.blinded_check.setChecked(False)
    assert panel.blinded_check.isChecked()
    assert panel.open_file(str(bob_file)) is None
    panel.unblind_confirm = lambda: True
    panel.blinded_check.setChecked(False)
    assert not panel.blinded_check.isChecked()
    assert panel.open_file(str(bob_file)).visible


def test_bad_file_notifies_and_leaves_layers(make_napari_viewer, slide_path, notifications) -> None:
    viewer, panel = open_viewer(make_napari_viewer, slide_path)
    panel.start_session()
    draw_polygon(panel.layer, TRIANGLE_XY)
    bad = slide_path.with_name("bomb.xml")
    bad.write_text(
        '<?xml version="1.0"?>\n<!DOCTYPE a [<!ENTITY a "aaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>\n<ASAP_Annotations>&b;</ASAP_Annotations>\n'
    )
    before = [(layer.name, len(layer.data)) for layer in viewer.layers]
    assert panel.open_file(str(bad)) is None
    assert [(layer.name, len(layer.data)) for layer in viewer.layers] == before
    assert any("bomb.xml" in message for _, message in notifications)


def test_failed_save_keeps_the_old_file(
    make_napari_viewer, slide_path: Path, notifications, monkeypatch: pytest.MonkeyPatch
) -> None:
    _viewer, panel = open_viewer(make_napari_viewer, slide_path)
    panel.start_session()
    draw_polygon(panel.layer, TRIANGLE_XY)
    panel.save()
    saved = slide_path.with_name("case-17.alice.xml")
    before = saved.read_bytes()
    draw_polygon(panel.layer, TRIANGLE_XY + 10)

    def disk_full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    panel.save()
    monkeypatch.undo()
    assert saved.read_bytes() == before
    assert any("No space left" in m and "intact" in m for _, m in notifications), notifications
