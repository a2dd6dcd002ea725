"""The Review box of the Heatmaps panel: thresholded heatmap → "model" layer → vs raters.

"Make model annotations" traces the chosen heatmap class at the layer's threshold into smoothed
polygons (:func:`napari_wsi_ml.inference.review.model_annotations`) and adds them as an
editable "model" annotation layer. "Compare with raters" measures the newest model layer of the
slide (with any edits) against the slide's rater layers and their consensus, beside the
inter-rater range (:func:`napari_wsi_ml.inference.review.compare_with_raters`), off the UI
thread.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
)

from napari_wsi_ml.agreement import Options
from napari_wsi_ml.errors import WsiMlError
from napari_wsi_ml.inference.review import (
    PolygonOptions,
    compare_with_raters,
    matching_class,
    model_annotations,
)
from napari_wsi_ml.viewer.agreement_layers import rater_set_from_layer
from napari_wsi_ml.viewer.annotation_layers import annotation_set_of_layer
from napari_wsi_ml.viewer.heatmap_layer import HEATMAP_KEY, THRESHOLD_KEY
from napari_wsi_ml.viewer.review_layers import (
    MODEL_KEY,
    comparison_table,
    layer_classes,
    model_layer_data,
    model_layers,
    review_rater_layers,
)
from napari_wsi_ml.viewer.slide_layer import FINGERPRINT_KEY, active_slide_layer

if TYPE_CHECKING:
    import napari

TABLE_COLUMNS = ("metric", "vs", "model [95% CI]", "between raters")
N_BOOT = 200


class ReviewSection(QGroupBox):
    """Model polygons from the chosen heatmap, and their agreement with the raters."""

    def __init__(self, viewer: napari.Viewer, current_layer: Callable[[], Any]) -> None:
        super().__init__("Review")
        self.viewer = viewer
        self.current_layer = current_layer
        self.worker: Any = None
        self.comparison: dict[str, Any] | None = None
        self._matched: tuple | None = None  # (layer, class, raters) the class was matched for
        self._build()
        self._connect()

    def _build(self) -> None:
        self.min_area = QDoubleSpinBox(decimals=0, maximum=1e12, value=5000.0)
        self.smoothing = QDoubleSpinBox(decimals=2, maximum=10.0, value=0.5, singleStep=0.25)
        self.smoothing.setSuffix(" cells")
        self.group_edit = QLineEdit()
        self.group_edit.setToolTip("Annotation class of the model's polygons (match the raters')")
        self.make_button = QPushButton("Make model annotations")
        self.compare_button = QPushButton("Compare with raters")
        self.busy = QProgressBar(maximumHeight=10)
        self.busy.setRange(0, 0)
        self.busy.setVisible(False)
        self.status_label = QLabel(wordWrap=True)
        self.table = QTableWidget(0, len(TABLE_COLUMNS), minimumHeight=260, minimumWidth=440)
        self.table.setHorizontalHeaderLabels(TABLE_COLUMNS)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setStretchLastSection(True)
        form = QFormLayout()
        form.addRow("Minimum area", self.min_area)
        form.addRow("Smoothing", self.smoothing)
        form.addRow("As class", self.group_edit)
        buttons = QHBoxLayout()
        buttons.addWidget(self.make_button)
        buttons.addWidget(self.compare_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        for widget in (self.busy, self.status_label, self.table):
            layout.addWidget(widget)

    def _connect(self) -> None:
        self.make_button.clicked.connect(self.make_model_layer)
        self.compare_button.clicked.connect(self.compare)

    # ----------------------------------------------------------------- state
    def _slide(self) -> dict[str, Any]:
        layer = active_slide_layer(self.viewer)
        return {} if layer is None else dict(layer.metadata)

    def refresh(self) -> None:
        """Units of the minimum area, and the raters' class that the heatmap class matches."""
        layer = self.current_layer()
        if layer is None:
            return
        slide = self._slide()
        self.min_area.setSuffix(" µm²" if slide.get("mpp") is not None else " px²")
        class_name = layer.metadata["class_name"]
        raters = review_rater_layers(self.viewer, slide.get(FINGERPRINT_KEY))
        key = (layer.name, class_name, tuple(r.name for r in raters))
        if self._matched == key:
            return  # nothing changed: keep what the user typed
        self._matched = key
        names = sorted(set().union(*(layer_classes(r) for r in raters))) if raters else []
        self.group_edit.setText(matching_class(class_name, names) or class_name)

    def threshold(self) -> float:
        """The chosen layer's threshold; the middle of its range when it has none."""
        layer = self.current_layer()
        value = layer.metadata.get(THRESHOLD_KEY)
        low, high = layer.contrast_limits
        return (low + high) / 2.0 if value is None else float(value)

    # ----------------------------------------------------------------- model layer
    def make_model_layer(self) -> Any:
        """Add the thresholded heatmap as an editable "model" annotation layer; returns it."""
        from napari.layers import Layer

        layer, slide = self.current_layer(), self._slide()
        if layer is None or not slide:
            return None
        heatmap = layer.metadata[HEATMAP_KEY]
        class_name = layer.metadata["class_name"]
        group = self.group_edit.text().strip() or class_name
        threshold = self.threshold()
        options = PolygonOptions(
            threshold=threshold, min_area=self.min_area.value(), smoothing=self.smoothing.value()
        )
        model = model_annotations(
            heatmap,
            {class_name: group},
            options,
            mpp=slide.get("mpp"),
            slide=slide.get("slide_path"),
        )
        data = model_layer_data(
            model,
            slide,
            run_id=heatmap.run_id,
            class_name=class_name,
            group=group,
            threshold=threshold,
        )
        added = self.viewer.add_layer(Layer.create(*data))
        self.status_label.setText(
            f"{len(model)} polygon(s) of {class_name} ≥ {threshold:.3f} as '{group}' in layer "
            f"'{added.name}': edit it, save it as ASAP XML (File ▸ Save Selected Layers)."
        )
        return added

    # ----------------------------------------------------------------- comparison
    def compare(self) -> None:
        """Measure the newest model layer against the raters, off the UI thread."""
        if self.worker is not None:
            return
        slide = self._slide()
        fingerprint = slide.get(FINGERPRINT_KEY)
        models = model_layers(self.viewer, fingerprint)
        raters = review_rater_layers(self.viewer, fingerprint)
        if not models:
            show_info("Make the model annotations first.")
            return
        if len(raters) < 2:
            show_info(
                f"Comparing needs two or more rater layers on this slide; {len(raters)} open."
            )
            return
        model_layer = models[-1]
        handle = slide.get("slide")
        self._scope = model_layer.metadata[MODEL_KEY]["group"]
        self.worker = thread_worker(compare_with_raters, ignore_errors=True)(
            annotation_set_of_layer(model_layer),
            [rater_set_from_layer(layer) for layer in raters],
            mpp=slide.get("mpp"),
            extent=None if handle is None else handle.level_dimensions[0],
            options=Options(n_boot=N_BOOT),
        )
        self.worker.returned.connect(self.show_comparison)
        self.worker.errored.connect(self._failed)
        self.worker.finished.connect(self._finished)
        self.busy.setVisible(True)
        self.compare_button.setEnabled(False)
        self.status_label.setText(f"Comparing '{model_layer.name}' with {len(raters)} raters…")
        self.worker.start()

    def show_comparison(self, result: tuple[Any, dict[str, Any]]) -> None:
        """Fill the table with the model's class: each rater, the consensus, the raters' range."""
        report, self.comparison = result
        rows = comparison_table(self.comparison, self._scope)
        if not rows:
            self.table.setRowCount(0)
            self.status_label.setText(
                f"The raters have no class '{self._scope}': set 'As class' to one of theirs "
                f"({', '.join(report.classes)}) and make the model annotations again."
            )
            return
        self.table.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                self.table.setItem(r, c, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()
        self.status_label.setText(
            f"Model vs {len(report.raters)} raters and their consensus, class "
            f"'{self._scope}' (consensus: ≥ {report.consensus.get('majority_k')} raters)."
        )

    def _failed(self, error: Exception) -> None:
        message = (
            str(error) if isinstance(error, WsiMlError) else f"{type(error).__name__}: {error}"
        )
        self.status_label.setText("Comparison failed (see the notification).")
        show_error(f"Review: {message}")

    def _finished(self) -> None:
        self.worker = None
        self.busy.setVisible(False)
        self.compare_button.setEnabled(True)
