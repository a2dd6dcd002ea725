"""The Agreement panel: inter-rater agreement of the open slide's rater layers (or files).

Pick raters, map class names, choose the grid, run (off the UI thread). The panel shows the
pairwise κ and Dice matrices, a table of every measure with its 95 % interval, adds the
disagreement map and the majority-vote consensus as layers of the slide, walks the
disagreement regions largest first, and exports the report (CSV, JSON, PNG).

The science is in :mod:`napari_wsi_ml.agreement`, layer placement in
:mod:`napari_wsi_ml.viewer.agreement_layers`; this widget builds, wires and delegates.
Dialogs are attributes (``folder_prompt``, ``file_prompt``) so that they can be replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_wsi_ml.agreement import Options, compute_agreement, read_rater_files
from napari_wsi_ml.agreement.figure import draw_matrices
from napari_wsi_ml.agreement.inputs import UNCLASSIFIED
from napari_wsi_ml.errors import WsiMlError
from napari_wsi_ml.viewer import agreement_layers as glue
from napari_wsi_ml.viewer.slide_layer import FINGERPRINT_KEY, active_slide_layer

if TYPE_CHECKING:
    import napari

    from napari_wsi_ml.agreement.report import AgreementReport

LAYER, FILE = "layer", "file"
RESULT_COLUMNS = ("scope", "metric", "pair", "value", "95% CI")


def compute_report(*, tissue_of: Any = None, **arguments: Any) -> AgreementReport:
    """Worker body: the slide's tissue when asked for, then every agreement measure."""
    region = tissue_of.tissue_polygons() if tissue_of is not None else None
    return compute_agreement(region=region, **arguments)


class AgreementPanel(QWidget):
    """Dock widget: agreement between raters on the open slide."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.report: AgreementReport | None = None
        self.worker: Any = None
        self.region_index = -1
        self.n_boot = 1000
        self.folder_prompt: Callable[[], str | None] = self._ask_folder
        self.file_prompt: Callable[[], list[str]] = self._ask_files
        self._files: dict[str, Any] = {}  # path -> AnnotationSet
        self._context: dict[str, Any] = {}  # slide metadata and mpp of the last run
        self._build()
        self._connect()
        self.refresh_raters()

    # ----------------------------------------------------------------- build and wire
    def _build(self) -> None:
        self.slide_label = QLabel(wordWrap=True)
        self.rater_list = QListWidget(maximumHeight=110)
        self.add_files_button = QPushButton("Add files…")
        self.mapping_table = QTableWidget(0, 2, maximumHeight=130)
        self.mapping_table.setHorizontalHeaderLabels(["rater class", "canonical class"])
        self.mapping_table.horizontalHeader().setStretchLastSection(True)
        self.same_names_button = QPushButton("Same names")
        self.grid_size = QDoubleSpinBox()
        self.grid_size.setDecimals(1)
        self.grid_size.setRange(1.0, 1e6)
        self.grid_size.setValue(256.0)
        self.grid_units = QComboBox()
        self.grid_units.addItem("px", "px")
        self.grid_units.addItem("µm", "um")
        self.tissue_check = QCheckBox("Restrict to tissue")
        self.run_button = QPushButton("Run")
        self.busy = QProgressBar(maximumHeight=10)
        self.busy.setRange(0, 0)  # indeterminate: busy
        self.busy.setVisible(False)
        self.status_label = QLabel(wordWrap=True)
        self.scope_combo = QComboBox()
        self.figure = Figure(figsize=(5.0, 2.4), dpi=80)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(200)
        self.results_table = QTableWidget(0, len(RESULT_COLUMNS), minimumHeight=180)
        self.results_table.setHorizontalHeaderLabels(RESULT_COLUMNS)
        self.results_table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.next_button = QPushButton("Next disagreement", enabled=False)
        self.export_button = QPushButton("Export report…", enabled=False)
        self.region_label = QLabel(wordWrap=True)

        grid_row = QHBoxLayout()
        grid_row.addWidget(self.grid_size)
        grid_row.addWidget(self.grid_units)
        form = QFormLayout()
        form.addRow("Grid cell", grid_row)
        actions = QHBoxLayout()
        for button in (self.next_button, self.export_button):
            actions.addWidget(button)
        layout = QVBoxLayout(self)
        for widget in (self.slide_label, QLabel("Raters"), self.rater_list, self.add_files_button):
            layout.addWidget(widget)
        layout.addWidget(QLabel("Class mapping"))
        layout.addWidget(self.mapping_table)
        layout.addWidget(self.same_names_button)
        layout.addLayout(form)
        for widget in (self.tissue_check, self.run_button, self.busy, self.status_label):
            layout.addWidget(widget)
        layout.addWidget(self.scope_combo)
        layout.addWidget(self.canvas)
        layout.addWidget(self.results_table)
        layout.addLayout(actions)
        layout.addWidget(self.region_label)

    def _connect(self) -> None:
        self.viewer.layers.events.inserted.connect(self.refresh_raters)
        self.viewer.layers.events.removed.connect(self.refresh_raters)
        self.viewer.layers.selection.events.active.connect(self.refresh_raters)
        self.rater_list.itemChanged.connect(lambda _: self.refresh_mapping())
        self.add_files_button.clicked.connect(lambda: self.add_files(self.file_prompt()))
        self.same_names_button.clicked.connect(lambda: self.refresh_mapping(reset=True))
        self.run_button.clicked.connect(self.run)
        self.scope_combo.currentTextChanged.connect(self.draw_figure)
        self.next_button.clicked.connect(self.next_disagreement)
        self.export_button.clicked.connect(self.export_report)

    # ----------------------------------------------------------------- inputs
    def _slide(self) -> dict[str, Any]:
        layer = active_slide_layer(self.viewer)
        return {} if layer is None else dict(layer.metadata)

    def refresh_raters(self, *_: Any) -> None:
        """List the annotation layers of the open slide, and the added files (checkable)."""
        slide = self._slide()
        name = slide.get("slide_name")
        self.slide_label.setText(
            f"Slide: {name}" if name else "No slide open: all annotation layers"
        )
        self.tissue_check.setEnabled(bool(slide))
        checked = {key: on for key, on in self._items()}
        layers = glue.rater_layers(self.viewer, slide.get(FINGERPRINT_KEY))
        self.rater_list.blockSignals(True)
        self.rater_list.clear()
        for kind, label in [(LAYER, layer.name) for layer in layers] + [
            (FILE, path) for path in self._files
        ]:
            item = QListWidgetItem(label if kind == LAYER else f"file: {Path(label).name}")
            item.setData(Qt.ItemDataRole.UserRole, (kind, label))
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            on = checked.get((kind, label), True)
            item.setCheckState(Qt.CheckState.Checked if on else Qt.CheckState.Unchecked)
            self.rater_list.addItem(item)
        self.rater_list.blockSignals(False)
        self.refresh_mapping()

    def _items(self) -> list[tuple[tuple[str, str], bool]]:
        items = [self.rater_list.item(k) for k in range(self.rater_list.count())]
        return [
            (tuple(i.data(Qt.ItemDataRole.UserRole)), i.checkState() == Qt.CheckState.Checked)
            for i in items
        ]

    def checked_sources(self) -> list[tuple[str, str]]:
        """``(kind, layer name or file path)`` of the checked raters, in list order."""
        names = {layer.name for layer in self.viewer.layers}
        return [key for key, on in self._items() if on and (key[0] == FILE or key[1] in names)]

    def add_files(self, paths: list[str]) -> None:
        """Add annotation files (ASAP XML or GeoJSON) as raters; unreadable ones are reported."""
        for path in paths:
            try:
                (self._files[str(path)],) = read_rater_files([path])
            except WsiMlError as error:
                show_error(str(error))
        self.refresh_raters()

    def _classes_of(self, kind: str, label: str) -> set[str]:
        if kind == FILE:
            return {a.group or UNCLASSIFIED for a in self._files[label]}
        return glue.layer_class_names(self.viewer.layers[label])

    def refresh_mapping(self, *, reset: bool = False) -> None:
        """Rows for the union of the checked raters' class names; edits are kept."""
        kept = {} if reset else self.mapping()
        names = sorted(set().union(*(self._classes_of(*key) for key in self.checked_sources())))
        self.mapping_table.setRowCount(len(names))
        for row, name in enumerate(names):
            source = QTableWidgetItem(name)
            source.setFlags(source.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.mapping_table.setItem(row, 0, source)
            self.mapping_table.setItem(row, 1, QTableWidgetItem(kept.get(name, name)))

    def mapping(self) -> dict[str, str]:
        """Rater class → canonical class, for the rows whose canonical name differs."""
        pairs = {}
        for row in range(self.mapping_table.rowCount()):
            source, target = self.mapping_table.item(row, 0), self.mapping_table.item(row, 1)
            if source and target and target.text().strip() not in ("", source.text()):
                pairs[source.text()] = target.text().strip()
        return pairs

    # ----------------------------------------------------------------- run
    def run(self) -> None:
        """Compute agreement off the UI thread; results arrive in :meth:`show_report`."""
        if self.worker is not None:
            return
        sets, sources = [], []
        for kind, label in self.checked_sources():
            if kind == FILE:
                sets.append(self._files[label])
                sources.append(label)
            else:
                layer = self.viewer.layers[label]
                sets.append(glue.rater_set_from_layer(layer))
                sources.append(layer.metadata.get("source_file"))
        slide = self._slide()
        mpp = slide.get("mpp") if slide else self._layer_mpp()
        handle = slide.get("slide")
        self._context = {"slide": slide, "mpp": mpp}
        self.worker = thread_worker(compute_report, ignore_errors=True)(
            sets=sets,
            sources=sources,
            mapping=self.mapping(),
            slide=slide.get("slide_path"),
            options=Options(
                grid=self.grid_size.value(),
                grid_units=self.grid_units.currentData(),
                n_boot=self.n_boot,
            ),
            mpp=mpp,
            extent=handle.level_dimensions[0] if handle is not None else None,
            tissue_of=handle if self.tissue_check.isChecked() and handle is not None else None,
        )
        self.worker.returned.connect(self.show_report)
        self.worker.errored.connect(self._failed)
        self.worker.finished.connect(self._finished)
        self.busy.setVisible(True)
        self.run_button.setEnabled(False)
        self.status_label.setText("Computing agreement…")
        self.worker.start()

    def _layer_mpp(self) -> Any:
        for kind, label in self.checked_sources():
            if kind == LAYER and self.viewer.layers[label].metadata.get("mpp") is not None:
                return self.viewer.layers[label].metadata["mpp"]
        return None

    def _failed(self, error: Exception) -> None:
        message = (
            str(error) if isinstance(error, WsiMlError) else f"{type(error).__name__}: {error}"
        )
        self.status_label.setText("Agreement failed (see the notification).")
        show_error(f"Agreement: {message}")

    def _finished(self) -> None:
        self.worker = None
        self.busy.setVisible(False)
        self.run_button.setEnabled(True)

    # ----------------------------------------------------------------- results
    def show_report(self, report: AgreementReport) -> None:
        """Show the matrices and the table, and add the result layers to the slide."""
        self.report, self.region_index = report, -1
        self.scope_combo.blockSignals(True)
        self.scope_combo.clear()
        self.scope_combo.addItems(["overall", *report.classes])
        self.scope_combo.blockSignals(False)
        self.draw_figure("overall")
        self._fill_table(report.metric_rows())
        self._add_result_layers(report)
        count = len(report.disagreement_regions)
        self.next_button.setEnabled(count > 0)
        self.export_button.setEnabled(True)
        self.status_label.setText(
            f"{len(report.raters)} raters, {report.grid['rated_cells']:,} cells rated; "
            f"{count} disagreement regions."
        )
        self.region_label.setText("")
        for warning in report.warnings:
            show_warning(warning)

    def draw_figure(self, scope: str) -> None:
        """Pairwise κ and Dice matrices of ``scope`` (``overall`` or a class)."""
        if self.report is not None and scope:
            draw_matrices(self.figure, self.report, scope)
            self.canvas.draw_idle()

    def _fill_table(self, rows: list[dict[str, Any]]) -> None:
        self.results_table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            value = "n/a" if row["value"] is None else f"{row['value']:.3f}"
            low, high = row["ci_low"], row["ci_high"]
            ci = "" if low is None else f"[{low:.3f}, {high:.3f}]"
            for c, text in enumerate((row["scope"], row["metric"], row["pair"], value, ci)):
                self.results_table.setItem(r, c, QTableWidgetItem(text))
        self.results_table.resizeColumnsToContents()

    def _add_result_layers(self, report: AgreementReport) -> None:
        from napari.layers import Layer

        slide, mpp = self._context["slide"], self._context["mpp"]
        for layer in list(self.viewer.layers):
            meta = layer.metadata
            if meta.get(glue.OUTPUT_KEY) and meta.get(FINGERPRINT_KEY) == slide.get(
                FINGERPRINT_KEY
            ):
                self.viewer.layers.remove(layer)
        for build in (glue.disagreement_layer_data, glue.consensus_layer_data):
            self.viewer.add_layer(Layer.create(*build(report, mpp, slide)))

    def next_disagreement(self) -> None:
        """Centre and zoom the view on the next disagreement region (largest first)."""
        regions = self.report.disagreement_regions if self.report is not None else []
        if not regions:
            show_info("No disagreement region to show.")
            return
        self.region_index = (self.region_index + 1) % len(regions)
        region = regions[self.region_index]
        slide, mpp = self._context["slide"], self._context["mpp"]
        center, zoom = glue.region_view(region, mpp, self.viewer.canvas.size)
        self._show_region_outline(glue.region_layer_data(region, mpp, slide))
        camera = self.viewer.scene.camera
        camera.center = center
        camera.zoom = zoom
        area = region["area_px2"] * (mpp[0] * mpp[1] if mpp else 1.0)
        unit = "µm²" if mpp else "px²"
        self.region_label.setText(
            f"Region {self.region_index + 1} of {len(regions)}: {region['class']}, "
            f"{area:,.0f} {unit}, marked by {', '.join(region['raters_with']) or 'none'}"
        )

    def _show_region_outline(self, data: glue.LayerDataTuple) -> None:
        from napari.layers import Layer

        kind = data[1]["metadata"][glue.OUTPUT_KEY]
        for layer in self.viewer.layers:
            if layer.metadata.get(glue.OUTPUT_KEY) == kind:
                layer.data = data[0]
                return
        self.viewer.add_layer(Layer.create(*data))

    def export_report(self) -> None:
        """Write ``agreement.json``, the CSV tables and ``agreement.png`` into a chosen folder."""
        if self.report is None:
            show_warning("Run the agreement first.")
            return
        folder = self.folder_prompt()
        if not folder:
            return
        folder = Path(folder)
        try:
            self.report.to_json(folder / "agreement.json")
            self.report.to_csv(folder)
            self.report.save_png(folder / "agreement.png")
        except WsiMlError as error:
            show_error(str(error))
            return
        show_info(f"Agreement report written to {folder}")

    # ----------------------------------------------------------------- dialogs
    def _ask_folder(self) -> str | None:
        return QFileDialog.getExistingDirectory(self, "Export the agreement report to") or None

    def _ask_files(self) -> list[str]:
        paths, _ = QFileDialog.getOpenFileNames(
            self, "Rater annotation files", "", "Annotations (*.xml *.geojson *.json)"
        )
        return list(paths)
