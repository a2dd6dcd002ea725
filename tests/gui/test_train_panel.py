"""The Train panel in a real napari window: real jobs in their own processes, followed live.

Runs the built-in ``smoke`` task (a small regression trained in its own process) from the
panel: progress and curves appear while it runs, the finished run is listed with the same
numbers as its metrics.json; a crashing job shows its error and log tail and the viewer keeps
working; a long run is cancelled and resumed; the open slide's annotation layer is exported for
a run; a run's heatmap is overlaid on its slide and another slide's is refused.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from napari.layers import Layer
from qtpy.QtWidgets import QApplication
from viewer_slides import DENSE_BOX_XY, SLIDES_DIR

from napari_wsi_ml.annotations import Annotation, AnnotationSet, read_asap
from napari_wsi_ml.inference import hematoxylin_density_heatmap
from napari_wsi_ml.jobs import cancel_run, list_runs, read_status
from napari_wsi_ml.jobs.run_dir import RunPaths
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.viewer.annotation_layers import annotation_layer_data
from napari_wsi_ml.viewer.heatmap_layer import HEATMAP_KIND
from napari_wsi_ml.viewer.slide_layer import FINGERPRINT_KEY, KIND_KEY
from napari_wsi_ml.viewer.slide_reader import open_slide_layer_data
from napari_wsi_ml.widgets.train_panel import TrainPanel, write_export

pytestmark = pytest.mark.gui

JOB_TIMEOUT_MS = 120_000


@pytest.fixture
def panel(make_napari_viewer, qtbot, tmp_path: Path):
    viewer = make_napari_viewer()
    panel = TrainPanel(viewer)
    viewer.window.add_dock_widget(panel, name="Train", area="right")
    panel.root_edit.setText(str(tmp_path / "runs"))
    yield panel
    for run in list_runs(panel.run_root()):  # leave no job behind
        if run.is_active:
            cancel_run(run.run_dir)
            qtbot.waitUntil(lambda r=run: not read_status(r.run_dir).is_active, timeout=60_000)


def choose_task(qtbot, panel: TrainPanel, task: str) -> None:
    panel.task_combo.setCurrentText(task)
    qtbot.waitUntil(lambda: panel.options_form is not None, timeout=JOB_TIMEOUT_MS)
    assert panel.start_button.isEnabled()


def set_smoke(qtbot, panel: TrainPanel, *, epochs: int, delay: float) -> None:
    choose_task(qtbot, panel, "smoke")
    panel.options_form.widget("epochs").value = epochs
    panel.options_form.widget("step_delay_s").value = delay
    assert not panel.uses_source  # smoke makes its own data


def start_and_wait_listed(qtbot, panel: TrainPanel) -> Path:
    panel.start_button.click()
    qtbot.waitUntil(lambda: panel.helper is None, timeout=JOB_TIMEOUT_MS)
    assert panel.run_dir is not None, panel.error_box.toPlainText()
    return panel.run_dir


def plotted_points(panel: TrainPanel) -> dict[str, list[tuple[float, float]]]:
    """Label → (x, y) points of every line drawn on the panel's figure."""
    points = {}
    for axes in panel.figure.axes:
        for line in axes.get_lines():
            points[line.get_label()] = list(zip(line.get_xdata(), line.get_ydata(), strict=True))
    return points


def test_smoke_run_shows_progress_curves_and_finishes(qtbot, panel: TrainPanel) -> None:
    # 48 training samples / batch 16 = 3 steps an epoch; 0.15 s a step: ~2 s a run
    set_smoke(qtbot, panel, epochs=4, delay=0.15)
    run_dir = start_and_wait_listed(qtbot, panel)
    assert panel.timer.isActive()
    qtbot.waitUntil(lambda: panel.progress.value() > 0, timeout=JOB_TIMEOUT_MS)
    qtbot.waitUntil(lambda: len(plotted_points(panel).get("val_loss", [])) >= 1, timeout=60_000)
    assert panel.state == "running"
    assert "step" in panel.progress_label.text()
    qtbot.waitUntil(lambda: panel.state == "finished", timeout=JOB_TIMEOUT_MS)

    assert panel.progress.value() == 1000
    assert not panel.timer.isActive()
    assert panel.error_box.isHidden()
    history = json.loads(RunPaths(run_dir).metrics.read_text())["history"]
    assert [row["epoch"] for row in history] == [0, 1, 2, 3]
    points = plotted_points(panel)
    for name in ("train_loss", "val_loss", "lr"):
        np.testing.assert_allclose(
            points[name], [(row["epoch"], row[name]) for row in history], rtol=1e-12
        )
    assert points["lr"][0][1] > points["lr"][-1][1]  # the step schedule halves it
    (row,) = panel.run_list.runs
    assert (row.run_dir, row.status, row.task) == (run_dir, "finished", "smoke")
    assert panel.run_list.item(0, 2).text() == "finished"
    assert "best val_loss" in panel.metrics_label.text()
    assert not panel.cancel_button.isEnabled() and not panel.resume_button.isEnabled()


def test_crashing_job_shows_error_and_log_tail_and_viewer_survives(
    qtbot, panel: TrainPanel, tmp_path: Path, notifications
) -> None:
    missing = tmp_path / "no-such-cohort.csv"
    choose_task(qtbot, panel, "patch_classifier")
    panel.from_csv.setChecked(True)
    panel.csv_edit.setText(str(missing))
    run_dir = start_and_wait_listed(qtbot, panel)
    qtbot.waitUntil(lambda: panel.state == "failed", timeout=JOB_TIMEOUT_MS)

    report = panel.error_box.toPlainText()
    assert not panel.error_box.isHidden()
    assert str(missing) in report.splitlines()[0]
    log_tail = RunPaths(run_dir).log.read_text().splitlines()[-5:]
    assert "last lines of log.txt" in report
    assert all(line in report for line in log_tail)
    assert any(sev == "error" and "failed" in msg for sev, msg in notifications)
    assert panel.run_list.status_of(run_dir).status == "failed"
    assert panel.resume_button.isEnabled()
    # the viewer still works
    viewer = panel.viewer
    layer = viewer.add_image(np.zeros((16, 16)), name="after the crash")
    QApplication.processEvents()
    assert viewer.layers[-1] is layer


def test_config_error_is_shown_before_anything_runs(qtbot, panel: TrainPanel) -> None:
    choose_task(qtbot, panel, "patch_classifier")
    panel.from_layer.setChecked(True)  # no slide open: no annotation layer to train from
    panel.start_button.click()
    assert panel.helper is None and panel.run_dir is None
    assert "no annotation layer chosen" in panel.error_box.toPlainText()
    assert panel.run_list.runs == []


def test_cancel_then_resume_a_long_run(qtbot, panel: TrainPanel) -> None:
    set_smoke(qtbot, panel, epochs=500, delay=0.05)
    run_dir = start_and_wait_listed(qtbot, panel)
    qtbot.waitUntil(lambda: (panel.trace.step or 0) >= 3, timeout=JOB_TIMEOUT_MS)
    assert panel.cancel_button.isEnabled()
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: panel.state == "cancelled", timeout=JOB_TIMEOUT_MS)
    assert panel.run_list.status_of(run_dir).status == "cancelled"
    assert RunPaths(run_dir).checkpoint("last").is_file()
    stopped_at = panel.trace.step
    assert stopped_at is not None and stopped_at < panel.trace.total

    panel.resume_button.click()
    assert panel.run_dir == run_dir
    qtbot.waitUntil(lambda: (panel.trace.step or 0) > stopped_at + 2, timeout=JOB_TIMEOUT_MS)
    assert panel.state == "running"
    panel.cancel_button.click()
    qtbot.waitUntil(lambda: panel.state == "cancelled", timeout=JOB_TIMEOUT_MS)


def test_this_slides_annotations_are_exported_for_the_run(
    qtbot, panel: TrainPanel, synthetic_slide: Path
) -> None:
    viewer = panel.viewer
    slide_layer = viewer.add_layer(Layer.create(*open_slide_layer_data(synthetic_slide)))
    x0, y0, x1, y1 = DENSE_BOX_XY
    tumour = Annotation("t", "Polygon", [[x0, y0], [x1, y0], [x1, y1], [x0, y1]], group="tumor")
    meta = slide_layer.metadata
    data = annotation_layer_data(
        AnnotationSet([tumour], rater="consensus"),
        mpp=meta["mpp"],
        rater="consensus",
        slide_path=meta["slide_path"],
        slide_fingerprint=meta[FINGERPRINT_KEY],
    )
    viewer.add_layer(Layer.create(*data))
    viewer.add_image(np.zeros((8, 8)), name="not an annotation layer")
    choose_task(qtbot, panel, "patch_classifier")
    assert [panel.layer_combo.itemText(i) for i in range(panel.layer_combo.count())] == [
        data[1]["name"]
    ]
    panel.options_form.widget("epochs").value = 2
    config, export = panel.job_config()

    xml = Path(config["data"]["annotations"][0])
    assert config["data"]["slides"] == [str(synthetic_slide)]
    assert config["patch_classifier"]["epochs"] == 2
    assert config["job"] == {"task": "patch_classifier", "output_dir": str(panel.run_root())}
    assert xml.parent == panel.run_root() / "inputs" and xml.name.endswith(".xml")
    assert write_export(export) == xml
    (written,) = read_asap(xml).annotations
    assert written.group == "tumor"
    np.testing.assert_array_equal(written.coordinates, tumour.coordinates)


def test_overlay_heatmap_of_a_run_and_refusal_of_another_slides(
    qtbot, panel: TrainPanel, synthetic_slide: Path, tmp_path: Path, notifications
) -> None:
    config = tmp_path / "smoke.yaml"
    config.write_text("job: {task: smoke}\nsmoke: {epochs: 1}\n")
    subprocess.run(
        [sys.executable, "-m", "napari_wsi_ml.jobs", "train", str(config), "--run-root", "runs"],
        cwd=panel.run_root().parent,
        check=True,
        capture_output=True,
    )
    viewer = panel.viewer
    [slide_layer] = viewer.open(synthetic_slide, plugin="napari-wsi-ml")
    panel.refresh_runs()
    (run,) = panel.run_list.runs
    heatmaps = RunPaths(run.run_dir).heatmaps
    density = hematoxylin_density_heatmap(slide_layer.metadata["slide"], 512)
    h = density.channel(0) / np.nanmax(density.channel(0))
    heatmap = dataclasses.replace(  # a two-class classifier's map: normal, tumour
        density, values=np.stack([1 - h, h], axis=-1), class_names=("normal", "tumour")
    )
    heatmap.save(heatmaps / "synthetic.heatmap.npz")
    panel.run_list.selectRow(0)
    assert panel.run_dir == run.run_dir and panel.state == "finished"
    assert panel.overlay_button.isEnabled()

    count = len(viewer.layers)
    panel.overlay_button.click()
    assert len(viewer.layers) == count + 1  # the tumour class only, not the background
    layer = viewer.layers[-1]
    assert layer.metadata[KIND_KEY] == HEATMAP_KIND
    assert layer.metadata["class_name"] == "tumour"
    assert layer.metadata[FINGERPRINT_KEY] == slide_layer.metadata[FINGERPRINT_KEY]
    assert layer.metadata["heatmap"]["run_id"] == heatmap.run_id
    scored = np.isfinite(h)
    assert scored.sum() >= 20  # the tissue's cells
    np.testing.assert_allclose(layer.data[scored], h[scored], rtol=1e-6)

    with open_slide(SLIDES_DIR / "cmu-1-small-region.svs") as other:
        hematoxylin_density_heatmap(other, 512).save(heatmaps / "synthetic.heatmap.npz")
    count = len(viewer.layers)
    panel.overlay_button.click()
    assert len(viewer.layers) == count
    assert any(sev == "error" and "another slide" in msg for sev, msg in notifications)
