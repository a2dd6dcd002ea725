"""The table of training runs under a folder, with their status, progress and best metric.

Rows are :class:`~napari_wsi_ml.jobs.status.RunStatus` (from
:func:`~napari_wsi_ml.jobs.api.list_runs`), newest first; the selection survives a refresh.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem, QWidget

from napari_wsi_ml.jobs.status import RunStatus

COLUMNS = ("run", "task", "status", "progress", "best")
STATUS_COLOURS = {
    "running": "#4FC3F7",
    "queued": "#B0BEC5",
    "finished": "#81C784",
    "failed": "#E57373",
    "cancelled": "#FFB74D",
    "interrupted": "#FFB74D",
}


def progress_text(run: RunStatus) -> str:
    """``"37 %"`` or ``"epoch 2, 37 %"``; empty before the first progress event."""
    if run.fraction is None:
        return ""
    percent = f"{100 * run.fraction:.0f} %"
    return percent if run.epoch is None else f"epoch {run.epoch}, {percent}"


def best_text(run: RunStatus) -> str:
    """``"val_loss 0.0123 (epoch 4)"`` from metrics.json's ``best``; empty when none."""
    best = run.best or {}
    metric, value = best.get("metric"), best.get("value")
    if metric is None or not isinstance(value, int | float):
        return ""
    epoch = best.get("epoch")
    return f"{metric} {value:.4g}" + (f" (epoch {epoch})" if epoch is not None else "")


class RunList(QTableWidget):
    """Dock-sized table of runs; ``selected_run_dir()`` is the selected run's folder."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(0, len(COLUMNS), parent)
        self.runs: list[RunStatus] = []
        self.setHorizontalHeaderLabels(COLUMNS)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().setVisible(False)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)

    def set_runs(self, runs: Sequence[RunStatus]) -> None:
        """Show ``runs`` newest first; keeps the selected run selected, without signals."""
        selected = self.selected_run_dir()
        self.runs = sorted(runs, key=lambda run: (run.started or "", run.run_id), reverse=True)
        self.blockSignals(True)
        self.setRowCount(len(self.runs))
        for row, run in enumerate(self.runs):
            texts = (run.run_id, run.task or "", run.status, progress_text(run), best_text(run))
            for column, text in enumerate(texts):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, str(run.run_dir))
                if column == 0 and run.message:
                    item.setToolTip(run.message)
                if column == 2 and run.status in STATUS_COLOURS:
                    item.setForeground(QColor(STATUS_COLOURS[run.status]))
                self.setItem(row, column, item)
            if selected is not None and run.run_dir == selected:
                self.selectRow(row)
        self.blockSignals(False)

    def selected_run_dir(self) -> Path | None:
        """The folder of the selected run, or None."""
        rows = self.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.item(rows[0].row(), 0)
        return Path(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def status_of(self, run_dir: Path) -> RunStatus | None:
        """The listed state of ``run_dir``, or None when it is not listed."""
        return next((run for run in self.runs if run.run_dir == run_dir), None)

    def select_run(self, run_dir: Path) -> None:
        """Select the row of ``run_dir`` (emits the selection signal)."""
        for row, run in enumerate(self.runs):
            if run.run_dir == run_dir:
                self.selectRow(row)
                return
