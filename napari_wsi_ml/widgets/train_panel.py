"""The Train panel: configure a training job, start it in its own process, follow it live.

Task and parameters (forms generated from the task's config dataclasses), the data source (one
annotation layer of the open slide, exported to ASAP XML, or a cohort CSV), the run folder;
Start / Cancel / Resume; a progress bar with ETA and the live loss and metric curves, read from
the run's ``events.jsonl`` by a one-second timer (incremental: only new lines are read); the
runs under the folder with their status; a failed run's error and the last lines of its log;
"Overlay heatmap" puts a run's heatmap on the open slide.

The job runs in another process (:mod:`napari_wsi_ml.jobs`), so the viewer stays responsive
and survives a crashing job. Dialogs are attributes (``folder_prompt``, ``csv_prompt``) so that
they can be replaced.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QProcess, QTimer
from qtpy.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from napari_wsi_ml.annotations import AnnotationSet, write_asap
from napari_wsi_ml.errors import ConfigError, WsiMlError
from napari_wsi_ml.inference import Heatmap
from napari_wsi_ml.jobs import RunHandle, cancel_run, list_runs, resume_job
from napari_wsi_ml.jobs.task import task_names
from napari_wsi_ml.viewer.annotation_layers import annotation_set_of_layer, is_annotation_layer
from napari_wsi_ml.viewer.run_follower import RunFollower
from napari_wsi_ml.viewer.run_plots import RunTrace, draw_run_curves
from napari_wsi_ml.viewer.slide_layer import FINGERPRINT_KEY, active_slide_layer, layers_of_slide
from napari_wsi_ml.widgets.config_form import ConfigForm
from napari_wsi_ml.widgets.job_client import DESCRIPTIONS, helper_command, helper_output
from napari_wsi_ml.widgets.run_list import RunList

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

SOURCE_FIELDS = ("cohort", "slides", "annotations", "slide_labels")
DEFAULT_TASK = "patch_classifier"
POLL_MS = 1000
LIST_EVERY = 5  # polls between refreshes of the run list while a run is active
STOPPED = ("cancelled", "failed", "interrupted")


def write_export(export: tuple[AnnotationSet, Path]) -> Path:
    """Write the annotations a run trains from as ASAP XML (atomically); returns the path."""
    annotations, path = export
    path.parent.mkdir(parents=True, exist_ok=True)
    write_asap(annotations, path)
    return path


class TrainPanel(QWidget):
    """Dock widget: start, follow, cancel and resume training runs."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.helper: QProcess | None = None  # a job being validated and started
        self.options_form: ConfigForm | None = None
        self.data_form: ConfigForm | None = None
        self.started_here: set[Path] = set()
        self.uses_source = False  # the task reads slides: a data source is asked for
        self.handle: RunHandle | None = None  # the job last resumed here (its process)
        self.run_dir: Path | None = None  # the run shown
        self.follower: RunFollower | None = None
        self.folder_prompt: Callable[[], str | None] = self._ask_folder
        self.csv_prompt: Callable[[], str | None] = self._ask_csv
        self._announce = False
        self._polls = 0
        self._build()
        self._connect()
        self.set_task(self.task_combo.currentText())
        self.refresh_layers()
        self.refresh_runs()

    # ----------------------------------------------------------------- build and wire
    def _build(self) -> None:
        self.task_combo = QComboBox()
        self.task_combo.addItems(task_names())
        if DEFAULT_TASK in task_names():
            self.task_combo.setCurrentText(DEFAULT_TASK)
        self.options_area = QScrollArea(widgetResizable=True)
        self.data_area = QScrollArea(widgetResizable=True)
        self.from_layer = QRadioButton("This slide's annotations", checked=True)
        self.from_csv = QRadioButton("Cohort CSV")
        self.layer_combo = QComboBox()
        self.csv_edit = QLineEdit(placeholderText="cohort.csv")
        self.csv_button = QPushButton("…", maximumWidth=30)
        self.source_box = QWidget()
        csv_row = QHBoxLayout()
        csv_row.addWidget(self.csv_edit)
        csv_row.addWidget(self.csv_button)
        source = QFormLayout(self.source_box)
        source.addRow(self.from_layer, self.layer_combo)
        source.addRow(self.from_csv, csv_row)
        data_tab = QWidget()
        data_layout = QVBoxLayout(data_tab)
        data_layout.setContentsMargins(0, 0, 0, 0)
        data_layout.addWidget(self.source_box)
        data_layout.addWidget(self.data_area)
        self.tabs = QTabWidget(maximumHeight=260)
        self.tabs.addTab(self.options_area, "Parameters")
        self.tabs.addTab(data_tab, "Data")
        self.root_edit = QLineEdit(str(Path.home() / "napari-wsi-ml-runs"))
        self.root_button = QPushButton("…", maximumWidth=30)
        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Cancel", enabled=False)
        self.resume_button = QPushButton("Resume", enabled=False)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress_label = QLabel(wordWrap=True)
        self.figure = Figure(figsize=(5.0, 3.0), dpi=80)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(250)
        self.run_list = RunList()
        self.run_list.setMinimumHeight(90)
        self.run_list.setMaximumHeight(170)
        self.refresh_button = QPushButton("Refresh")
        self.overlay_button = QPushButton("Overlay heatmap", enabled=False)
        self.metrics_label = QLabel(wordWrap=True)
        self.error_box = QPlainTextEdit(readOnly=True, visible=False, maximumHeight=160)

        top = QFormLayout()
        top.addRow("Task", self.task_combo)
        root_row = QHBoxLayout()
        root_row.addWidget(self.root_edit)
        root_row.addWidget(self.root_button)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.cancel_button, self.resume_button):
            buttons.addWidget(button)
        run_buttons = QHBoxLayout()
        run_buttons.addWidget(self.refresh_button)
        run_buttons.addWidget(self.overlay_button)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.tabs)
        layout.addWidget(QLabel("Run folder"))
        layout.addLayout(root_row)
        layout.addLayout(buttons)
        for widget in (self.progress, self.progress_label, self.canvas, self.error_box):
            layout.addWidget(widget)
        layout.addWidget(QLabel("Runs"))
        layout.addWidget(self.run_list)
        layout.addLayout(run_buttons)
        layout.addWidget(self.metrics_label)
        self.timer = QTimer(self)
        self.timer.setInterval(POLL_MS)
        self.show_run(None)

    def _connect(self) -> None:
        self.viewer.layers.events.inserted.connect(self.refresh_layers)
        self.viewer.layers.events.removed.connect(self.refresh_layers)
        self.viewer.layers.selection.events.active.connect(self.refresh_layers)
        self.task_combo.currentTextChanged.connect(self.set_task)
        self.csv_button.clicked.connect(self._choose_csv)
        self.root_button.clicked.connect(self._choose_root)
        self.root_edit.editingFinished.connect(self.refresh_runs)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.cancel)
        self.resume_button.clicked.connect(self.resume)
        self.refresh_button.clicked.connect(self.refresh_runs)
        self.run_list.itemSelectionChanged.connect(self._run_selected)
        self.overlay_button.clicked.connect(self.overlay_heatmap)
        self.timer.timeout.connect(self.poll)

    # ----------------------------------------------------------------- configuration
    def set_task(self, name: str) -> None:
        """Build the parameter and data forms of task ``name`` (described by a helper process)."""
        self.start_button.setEnabled(False)
        self.options_form = self.data_form = None
        if name in DESCRIPTIONS:
            self._show_forms(DESCRIPTIONS[name])
            return
        self.options_area.setWidget(QLabel(f"Loading the parameters of {name}…"))
        self._call_helper(["describe", name], self._show_forms)

    def _show_forms(self, description: dict[str, Any]) -> None:
        DESCRIPTIONS[description["task"]] = description
        if description["task"] != self.task_combo.currentText():
            return  # the user chose another task meanwhile
        self.options_form = ConfigForm(description["options"])
        self.data_form = ConfigForm(description["data"], skip=SOURCE_FIELDS)
        self.options_area.setWidget(self.options_form.native)
        self.data_area.setWidget(self.data_form.native)
        names = {field["name"] for field in description["data"]}
        self.uses_source = bool(names & {"cohort", "slides"})
        self.source_box.setVisible(self.uses_source)
        self.start_button.setEnabled(self.helper is None)

    def refresh_layers(self, *_: Any) -> None:
        """List the annotation layers (raters, consensus) of the open slide."""
        current = self.layer_combo.currentText()
        self.layer_combo.clear()
        self.layer_combo.addItems([layer.name for layer in self.annotation_layers()])
        if current:
            self.layer_combo.setCurrentText(current)

    def annotation_layers(self) -> list[Layer]:
        """The annotation layers of the open slide."""
        slide = active_slide_layer(self.viewer)
        if slide is None:
            return []
        return [
            layer
            for layer in layers_of_slide(self.viewer, slide.metadata[FINGERPRINT_KEY])
            if is_annotation_layer(layer)
        ]

    def run_root(self) -> Path:
        """The folder the runs go in (and are listed from)."""
        return Path(self.root_edit.text()).expanduser()

    def job_config(self) -> tuple[dict[str, Any], tuple[AnnotationSet, Path] | None]:
        """The job config the panel describes, and the annotations to export for it.

        Raises:
            ConfigError: No annotation layer or cohort CSV chosen, or a field is not valid YAML.
        """
        assert self.options_form is not None and self.data_form is not None
        task = self.task_combo.currentText()
        data = self.data_form.values()
        export = None
        if self.uses_source and self.from_csv.isChecked():
            if not self.csv_edit.text().strip():
                raise ConfigError("data.cohort: choose a cohort CSV file (Data tab).")
            data["cohort"] = str(Path(self.csv_edit.text().strip()).expanduser())
        elif self.uses_source:
            export = self._export_of_layer()
            data["slides"] = [export[0].slide]
            data["annotations"] = [str(export[1])]
        config = {
            "job": {"task": task, "output_dir": str(self.run_root())},
            "data": data,
            task: self.options_form.values(),
        }
        return config, export

    def _export_of_layer(self) -> tuple[AnnotationSet, Path]:
        name = self.layer_combo.currentText()
        layer = next((la for la in self.annotation_layers() if la.name == name), None)
        slide = active_slide_layer(self.viewer)
        if layer is None or slide is None:
            raise ConfigError(
                "data: no annotation layer chosen. Open a slide with rater or consensus "
                "annotations, or choose 'Cohort CSV' (Data tab)."
            )
        annotations = annotation_set_of_layer(layer)
        annotations.slide = slide.metadata["slide_path"]
        stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"{slide.metadata['slide_name']}.{name}")
        path = self.run_root() / "inputs" / f"{time.strftime('%Y%m%d-%H%M%S')}-{stem}.xml"
        return annotations, path

    # ----------------------------------------------------------------- start, cancel, resume
    def start(self) -> None:
        """Export the chosen annotations, then validate and start the job in a helper process."""
        if self.helper is not None or self.options_form is None:
            return
        try:
            config, export = self.job_config()
            if export is not None:
                write_export(export)
        except WsiMlError as error:
            self._refused(error)
            return
        arguments = ["start", "--run-root", str(self.run_root())]
        self.helper = self._call_helper(arguments, self._launched, stdin=json.dumps(config))
        self.start_button.setEnabled(False)
        self.progress_label.setText("Starting (validating the config)…")

    def resume(self) -> None:
        """Resume the shown run from its last checkpoint."""
        if self.run_dir is None:
            return
        try:
            self._launched(resume_job(self.run_dir))
        except WsiMlError as error:
            self._refused(error)

    def cancel(self) -> None:
        """Ask the shown run to stop after its next checkpoint."""
        if self.run_dir is None:
            return
        try:
            asked = cancel_run(self.run_dir)
        except WsiMlError as error:
            show_error(str(error))
            return
        self.progress_label.setText("Cancelling (after the next checkpoint)…" if asked else "")
        self.cancel_button.setEnabled(False)
        if not asked:
            show_info(f"{self.run_dir.name} is not running.")

    def _call_helper(
        self, arguments: list[str], done: Callable[[Any], None], *, stdin: str = ""
    ) -> QProcess:
        """Run a job_client helper; ``done(answer)`` on success, else the error is shown."""
        process = QProcess(self)
        process.finished.connect(lambda code, _status: self._helper_finished(process, code, done))
        process.start(*helper_command(*arguments))
        process.write(stdin.encode())
        process.closeWriteChannel()
        return process

    def _helper_finished(self, process: QProcess, code: int, done: Callable[[Any], None]) -> None:
        out = bytes(process.readAllStandardOutput()).decode("utf-8", "replace")
        err = bytes(process.readAllStandardError()).decode("utf-8", "replace")
        process.deleteLater()
        if process is self.helper:
            self.helper = None
            self.start_button.setEnabled(self.options_form is not None)
        try:
            answer = helper_output(code, out, err)
        except WsiMlError as error:
            self._refused(error)
            return
        done(answer)

    def _launched(self, started: RunHandle | dict[str, Any]) -> None:
        """A job resumed (its handle) or started (the helper's answer): show and follow it."""
        self.handle = started if isinstance(started, RunHandle) else None
        run_dir = started.run_dir if isinstance(started, RunHandle) else Path(started["run_dir"])
        self.started_here.add(run_dir)
        self.refresh_runs()
        self.show_run(run_dir)
        self.run_list.blockSignals(True)
        self.run_list.select_run(run_dir)
        self.run_list.blockSignals(False)

    def _refused(self, error: Exception) -> None:
        message = (
            str(error) if isinstance(error, WsiMlError) else f"{type(error).__name__}: {error}"
        )
        self.progress_label.setText("Not started: see the message below.")
        self.error_box.setPlainText(message)
        self.error_box.setVisible(True)
        show_error(f"Train: {message}")

    # ----------------------------------------------------------------- following a run
    def show_run(self, run_dir: Path | None) -> None:
        """Show ``run_dir``'s curves, progress and state, and follow it while it runs."""
        self.run_dir = run_dir
        self.follower = RunFollower(run_dir, self.handle) if run_dir is not None else None
        self._announce = run_dir in self.started_here
        self.error_box.setVisible(False)
        self.metrics_label.setText("")
        self.progress.setValue(0)
        self.progress_label.setText("" if run_dir is None else run_dir.name)
        self.poll(redraw=True)
        if run_dir is not None:
            self.timer.start()

    @property
    def state(self) -> str:
        """The shown run's state (``""`` when none is shown)."""
        return self.follower.state if self.follower is not None else ""

    @property
    def trace(self) -> RunTrace:
        """What the shown run's events said so far."""
        return self.follower.trace if self.follower is not None else RunTrace()

    def poll(self, *, redraw: bool = False) -> None:
        """Read the run's new events; update progress, curves and, once it ended, its outcome."""
        follower = self.follower
        if follower is None:
            self._draw()
            self.timer.stop()
            return
        events, changed = follower.poll()
        if redraw or any(event.kind == "metric" for event in events):
            self._draw()
        if follower.trace.fraction is not None:
            self.progress.setValue(round(1000 * follower.trace.fraction))
        progress = follower.trace.progress_text()
        self.progress_label.setText(f"{follower.run_dir.name}: {follower.state} · {progress}")
        self._polls += 1
        if changed or self._polls % LIST_EVERY == 0:
            self.refresh_runs()
        if changed and not follower.active:
            self._ended(follower)
        self._update_buttons()

    def _ended(self, follower: RunFollower) -> None:
        self.timer.stop()
        state, name = follower.state, follower.run_dir.name
        self.metrics_label.setText(follower.metrics_text())
        self.overlay_button.setEnabled(bool(follower.heatmap_files()))
        failed = state in ("failed", "interrupted")
        if failed:
            self.error_box.setPlainText(follower.error_report())
            self.error_box.setVisible(True)
        if not self._announce:
            return
        self._announce = False
        if failed:
            reason = follower.trace.errors[-1] if follower.trace.errors else "see the Train panel"
            show_error(f"Training run {name} {state}: {reason}")
        elif state == "cancelled":
            show_warning(f"Training run {name} was cancelled; Resume continues it.")
        else:
            show_info(f"Training run {name} {state}.")

    def _draw(self) -> None:
        title = self.run_dir.name if self.run_dir is not None else ""
        draw_run_curves(self.figure, self.trace, title=title)
        self.canvas.draw_idle()

    def _update_buttons(self) -> None:
        self.cancel_button.setEnabled(self.follower is not None and self.follower.active)
        self.resume_button.setEnabled(self.state in STOPPED)

    def refresh_runs(self, *_: Any) -> None:
        """List the runs under the run folder with their status."""
        self.run_list.set_runs(list_runs(self.run_root()))

    def _run_selected(self) -> None:
        run_dir = self.run_list.selected_run_dir()
        if run_dir is not None and run_dir != self.run_dir:
            self.show_run(run_dir)

    # ----------------------------------------------------------------- heatmaps
    def overlay_heatmap(self) -> None:
        """Add the shown run's heatmap of the open slide; another slide's is refused.

        A heatmap of several classes is shown class by class, all but the first (the
        background class of a classifier); a one-class heatmap is shown as it is.
        """
        from napari.layers import Layer

        from napari_wsi_ml.viewer.heatmap_layer import heatmap_layer_data

        slide_layer = active_slide_layer(self.viewer)
        if slide_layer is None:
            show_warning("Open the slide the heatmap was computed on first.")
            return
        refusals = []
        files = self.follower.heatmap_files() if self.follower is not None else []
        for path in files:
            try:
                heatmap = Heatmap.load(path)
                classes = heatmap.class_names[1:] or heatmap.class_names  # not the background
                layers = [
                    heatmap_layer_data(heatmap, slide_layer.metadata["slide"], channel=name)
                    for name in classes
                ]
            except WsiMlError as error:
                refusals.append(str(error))
                continue
            for data in layers:
                self.viewer.add_layer(Layer.create(*data))
            return
        show_error(refusals[0] if refusals else "This run has no heatmap.")

    # ----------------------------------------------------------------- dialogs
    def _choose_csv(self) -> None:
        path = self.csv_prompt()
        if path:
            self.csv_edit.setText(path)
            self.from_csv.setChecked(True)

    def _choose_root(self) -> None:
        folder = self.folder_prompt()
        if folder:
            self.root_edit.setText(folder)
            self.refresh_runs()

    def _ask_folder(self) -> str | None:
        return QFileDialog.getExistingDirectory(self, "Folder of the training runs") or None

    def _ask_csv(self) -> str | None:
        path, _ = QFileDialog.getOpenFileName(self, "Cohort CSV", "", "CSV (*.csv)")
        return path or None
