"""The Cohort review panel: a model's slide predictions, sortable, with ROC curves.

Open a ``predictions.csv`` (or the folder ``napari-wsi-ml infer --out`` wrote). The table sorts by
score, uncertainty, error (``|label − score|``) and disagreement (model vs raters, computed off
the UI thread for slides whose raters' files lie beside them). A double-click opens the slide
with its raters and its heatmap and centres the view on the most suspicious region. The ROC
curves of the labelled slides come with pointwise 95 % bands and the AUC's DeLong interval.

The numbers are in :mod:`napari_wsi_ml.inference.cohort_review`, the curves in
:mod:`napari_wsi_ml.evaluation.roc`; this widget builds, wires and delegates.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from napari_wsi_ml.errors import WsiMlError
from napari_wsi_ml.evaluation.roc_figure import draw_roc
from napari_wsi_ml.inference.cohort_review import (
    cohort_rows,
    default_class,
    predictions_file,
    resolve_slide_paths,
    roc_curves,
    score_classes,
    slide_disagreement,
)
from napari_wsi_ml.inference.predictions import SlidePrediction, read_predictions
from napari_wsi_ml.widgets.cohort_slides import open_prediction

if TYPE_CHECKING:
    import napari

COLUMNS = ("slide", "label", "predicted", "score", "uncertainty", "error", "disagreement")
DISAGREEMENT_COLUMN = COLUMNS.index("disagreement")
INDEX_ROLE = Qt.ItemDataRole.UserRole
MIN_WIDTH = 620  # px: every column visible


class NumberItem(QTableWidgetItem):
    """A table cell that sorts by its number; empty cells sort below every number."""

    def __init__(self, value: float | None) -> None:
        super().__init__("" if value is None else f"{value:.3f}")
        self.value = float("-inf") if value is None else float(value)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return self.value < getattr(other, "value", float("-inf"))


def disagreements(
    predictions: list[SlidePrediction], class_name: str, threshold: float
) -> Iterator[tuple[int, float | None, str | None]]:
    """Worker body: ``(index, disagreement or None, problem or None)`` slide after slide."""
    for index, prediction in enumerate(predictions):
        try:
            result = slide_disagreement(prediction, class_name, threshold)
        except WsiMlError as error:
            yield index, None, f"{prediction.slide}: {error}"
            continue
        yield index, None if result is None else result[0], None


class CohortPanel(QWidget):
    """Dock widget: review a cohort's predictions slide by slide."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.predictions: list[SlidePrediction] = []
        self.source: Path | None = None
        self.worker: Any = None
        self.opened: list[Any] = []  # image layers this panel added for the slide on view
        self.file_prompt: Callable[[], str | None] = self._ask_file
        self._disagreement: dict[int, float | None] = {}
        self._build()
        self._connect()

    # ----------------------------------------------------------------- build and wire
    def _build(self) -> None:
        self.open_button = QPushButton("Open predictions…")
        self.source_label = QLabel("No predictions open.", wordWrap=True)
        self.class_combo = QComboBox()
        self.threshold = QDoubleSpinBox(decimals=2, minimum=0.0, maximum=1.0, value=0.5)
        self.threshold.setSingleStep(0.05)
        self.threshold.setToolTip("Heatmap threshold of the model's polygons (disagreement)")
        self.table = QTableWidget(0, len(COLUMNS), minimumHeight=220, minimumWidth=MIN_WIDTH)
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
        self.table.setSortingEnabled(True)
        self.status_label = QLabel(wordWrap=True)
        self.figure = Figure(figsize=(4.6, 4.0), dpi=80)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(320)
        form = QFormLayout()
        form.addRow("Class", self.class_combo)
        form.addRow("Threshold", self.threshold)
        layout = QVBoxLayout(self)
        layout.addWidget(self.open_button)
        layout.addWidget(self.source_label)
        layout.addLayout(form)
        layout.addWidget(self.table)
        layout.addWidget(self.status_label)
        layout.addWidget(self.canvas)

    def _connect(self) -> None:
        self.open_button.clicked.connect(lambda: self.open_predictions(self.file_prompt()))
        self.class_combo.currentTextChanged.connect(lambda _: self.refresh())
        self.threshold.editingFinished.connect(self.compute_disagreement)
        self.table.cellDoubleClicked.connect(lambda row, _: self.open_row(row))

    # ----------------------------------------------------------------- predictions
    def open_predictions(self, path: str | Path | None) -> bool:
        """Read a predictions table (or a folder holding ``predictions.csv``) and show it."""
        if not path:
            return False
        try:
            table = predictions_file(path)
            predictions = resolve_slide_paths(read_predictions(table), table)
        except WsiMlError as error:
            show_error(str(error))
            return False
        self.predictions, self.source = predictions, table
        labelled = sum(p.label is not None for p in predictions)
        self.source_label.setText(
            f"{len(predictions)} slides ({labelled} with a label) from {self.source}"
        )
        self.class_combo.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItems(score_classes(predictions))
        self.class_combo.setCurrentText(default_class(predictions) or "")
        self.class_combo.blockSignals(False)
        self.refresh()
        return True

    def refresh(self) -> None:
        """Fill the table and draw the ROC curves for the chosen class; then disagreement."""
        class_name = self.class_combo.currentText()
        self.table.setSortingEnabled(False)
        rows = cohort_rows(self.predictions, class_name)
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            name = QTableWidgetItem(row.slide)
            name.setData(INDEX_ROLE, row.index)
            cells = [
                name,
                QTableWidgetItem(row.label or ""),
                QTableWidgetItem(row.predicted),
                NumberItem(row.score),
                NumberItem(row.uncertainty),
                NumberItem(row.error),
                NumberItem(None),
            ]
            for c, item in enumerate(cells):
                self.table.setItem(r, c, item)
        self.table.setSortingEnabled(True)
        self.table.resizeColumnsToContents()
        draw_roc(self.figure, roc_curves(self.predictions), title="Slide-level ROC")
        self.canvas.draw_idle()
        self.compute_disagreement()

    def row_of(self, index: int) -> int:
        """The table row (after any sorting) of prediction ``index``."""
        for row in range(self.table.rowCount()):
            if self.table.item(row, 0).data(INDEX_ROLE) == index:
                return row
        raise KeyError(index)

    def prediction_at(self, row: int) -> SlidePrediction:
        """The prediction shown in table row ``row``."""
        return self.predictions[self.table.item(row, 0).data(INDEX_ROLE)]

    # ----------------------------------------------------------------- disagreement
    def compute_disagreement(self) -> None:
        """Model vs raters of every slide with raters' files, off the UI thread."""
        if self.worker is not None:
            self.worker.quit()
        if not self.predictions:
            return
        self._disagreement, problems = {}, []
        worker = thread_worker(disagreements, ignore_errors=True)(
            self.predictions, self.class_combo.currentText(), self.threshold.value()
        )
        worker.yielded.connect(
            lambda item: self.worker is worker and self._show_disagreement(*item, problems)
        )
        worker.errored.connect(lambda error: show_error(f"Disagreement: {error}"))
        worker.finished.connect(lambda: self._disagreement_done(worker, problems))
        self.worker = worker
        self.status_label.setText("Computing model vs raters…")
        worker.start()

    def _show_disagreement(
        self, index: int, value: float | None, problem: str | None, problems: list[str]
    ) -> None:
        if problem:
            problems.append(problem)
        self._disagreement[index] = value
        self.table.setSortingEnabled(False)
        self.table.setItem(self.row_of(index), DISAGREEMENT_COLUMN, NumberItem(value))
        self.table.setSortingEnabled(True)

    def _disagreement_done(self, worker: Any, problems: list[str]) -> None:
        if self.worker is worker:
            self.worker = None
        done = sum(v is not None for v in self._disagreement.values())
        self.status_label.setText(
            f"Disagreement (1 − mean Dice vs raters) for {done} of {len(self.predictions)} "
            "slides; the others have no heatmap or no raters' files beside the slide."
        )
        for problem in problems[:3]:
            show_error(problem)

    # ----------------------------------------------------------------- opening a slide
    def open_row(self, row: int) -> None:
        """Open the slide of a table row at its most suspicious region."""
        prediction = self.prediction_at(row)
        self.opened = open_prediction(
            self.viewer, prediction, self.class_combo.currentText(), previous=self.opened
        )
        x, y = prediction.peak_xy
        self.status_label.setText(
            f"{prediction.slide}: most suspicious region at ({x:,.0f}, {y:,.0f}) px"
        )

    def _ask_file(self) -> str | None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Slide predictions", "", "Predictions (predictions.csv *.csv)"
        )
        return path or None
