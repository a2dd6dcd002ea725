"""The Heatmaps panel: a model's heatmaps on the open slide, and their review.

Open a ``.heatmap.npz`` or a run / inference folder (its ``heatmaps/`` of the open slide); pick
the heatmap layer and its class; set the threshold (cells below it are transparent) and the
opacity; read the colour bar and the scores under the cursor. A heatmap of another slide is
refused and an unreadable file reported, both as notifications, and the viewer is left as it
was. The Review box below turns the thresholded heatmap into a "model" annotation layer and
compares it with the raters (:mod:`napari_wsi_ml.widgets.review_section`).

Layer placement is in :mod:`napari_wsi_ml.viewer.heatmap_layer`; this widget builds, wires and
delegates. Dialogs are attributes (``file_prompt``, ``folder_prompt``) so that they can be
replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QVBoxLayout,
    QWidget,
)

from napari_wsi_ml.coords import layer_scale
from napari_wsi_ml.errors import HeatmapError
from napari_wsi_ml.inference.heatmap import Heatmap
from napari_wsi_ml.viewer.heatmap_layer import (
    HEATMAP_KEY,
    THRESHOLD_KEY,
    heat_rgba,
    heatmap_contrast_limits,
    heatmap_layer_data,
    is_heatmap_layer,
    scores_at,
    show_heatmap,
)
from napari_wsi_ml.viewer.slide_layer import FINGERPRINT_KEY, active_slide_layer
from napari_wsi_ml.widgets.review_section import ReviewSection

if TYPE_CHECKING:
    import napari

SLIDER_STEPS = 1000
HEATMAP_PATTERN = "*.heatmap.npz"


def draw_colorbar(
    figure: Figure, low: float, high: float, threshold: float | None, label: str
) -> None:
    """A horizontal colour bar of the heat colours over a checkerboard (transparency shows).

    Values below ``threshold`` are drawn transparent, as on the slide; a line marks it.
    """
    figure.clear()
    axes = figure.add_axes((0.04, 0.5, 0.92, 0.3))
    fraction = np.linspace(0.0, 1.0, 256)
    rgba = heat_rgba(fraction)
    if threshold is not None and high > low:
        rgba[fraction < (threshold - low) / (high - low), 3] = 0.0
    checker = np.where((np.arange(256) // 8 + np.arange(2)[:, None]) % 2 == 0, 0.8, 1.0)
    background = np.repeat(checker[:, :, None], 3, axis=2)
    alpha = rgba[None, :, 3:4]
    image = background * (1 - alpha) + rgba[None, :, :3] * alpha
    axes.imshow(image, aspect="auto", extent=(low, high, 0, 1), interpolation="nearest")
    if threshold is not None and low < threshold <= high:
        axes.axvline(threshold, color="black", linewidth=1.5)
    axes.set_yticks([])
    axes.set_xlim(low, high)
    axes.set_xlabel(label, fontsize=8, labelpad=1)
    axes.tick_params(labelsize=7, length=2, pad=1)


def folder_heatmaps(folder: Path) -> list[Path]:
    """``*.heatmap.npz`` in ``folder/heatmaps`` and in ``folder`` itself, sorted."""
    found = set(folder.glob(HEATMAP_PATTERN)) | set((folder / "heatmaps").glob(HEATMAP_PATTERN))
    return sorted(found)


class HeatmapPanel(QWidget):
    """Dock widget: heatmaps of the open slide, their display and their review."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.file_prompt: Callable[[], str | None] = self._ask_file
        self.folder_prompt: Callable[[], str | None] = self._ask_folder
        self._build()
        self._connect()
        self.refresh()

    # ----------------------------------------------------------------- build and wire
    def _build(self) -> None:
        self.slide_label = QLabel(wordWrap=True)
        self.open_file_button = QPushButton("Open heatmap…")
        self.open_folder_button = QPushButton("Open run folder…")
        self.layer_combo = QComboBox()
        self.class_combo = QComboBox()
        self.threshold_slider = QSlider(Qt.Orientation.Horizontal)
        self.threshold_slider.setRange(0, SLIDER_STEPS)
        self.threshold_spin = QDoubleSpinBox(decimals=3)
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal)
        self.opacity_slider.setRange(0, 100)
        self.figure = Figure(figsize=(3.6, 0.75), dpi=90)
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setFixedHeight(70)
        self.value_label = QLabel("Move the cursor over the heatmap.", wordWrap=True)
        self.review = ReviewSection(self.viewer, self.current_layer)

        buttons = QHBoxLayout()
        buttons.addWidget(self.open_file_button)
        buttons.addWidget(self.open_folder_button)
        threshold_row = QHBoxLayout()
        threshold_row.addWidget(self.threshold_slider)
        threshold_row.addWidget(self.threshold_spin)
        form = QFormLayout()
        form.addRow("Heatmap", self.layer_combo)
        form.addRow("Class", self.class_combo)
        form.addRow("Threshold", threshold_row)
        form.addRow("Opacity", self.opacity_slider)
        layout = QVBoxLayout(self)
        layout.addWidget(self.slide_label)
        layout.addLayout(buttons)
        layout.addLayout(form)
        layout.addWidget(self.canvas)
        layout.addWidget(self.value_label)
        layout.addWidget(self.review)
        layout.addStretch(1)

    def _connect(self) -> None:
        self.viewer.layers.events.inserted.connect(self.refresh)
        self.viewer.layers.events.removed.connect(self.refresh)
        self.viewer.layers.selection.events.active.connect(self._on_active)
        self.viewer.cursor.events.position.connect(self._on_cursor)
        self.open_file_button.clicked.connect(lambda: self.open_file(self.file_prompt()))
        self.open_folder_button.clicked.connect(lambda: self.open_folder(self.folder_prompt()))
        self.layer_combo.currentIndexChanged.connect(lambda _: self.show_layer())
        self.class_combo.currentTextChanged.connect(self.set_class)
        self.threshold_slider.valueChanged.connect(self._slider_moved)
        self.threshold_spin.valueChanged.connect(self.set_threshold)
        self.opacity_slider.valueChanged.connect(self._opacity_moved)

    # ----------------------------------------------------------------- opening
    def _slide_layer(self) -> Any:
        return active_slide_layer(self.viewer)

    def open_file(self, path: str | Path | None) -> Any:
        """Load a heatmap file onto the open slide; returns the new layer (None if refused)."""
        if not path:
            return None
        slide_layer = self._slide_layer()
        if slide_layer is None:
            show_warning("Open the slide first, then its heatmap.")
            return None
        try:
            heatmap = Heatmap.load(path)
            data = heatmap_layer_data(heatmap, slide_layer.metadata["slide"], threshold=None)
        except HeatmapError as error:
            show_error(str(error))
            return None
        from napari.layers import Layer

        layer = self.viewer.add_layer(Layer.create(*data))
        self.viewer.layers.selection.active = layer
        return layer

    def open_folder(self, folder: str | Path | None) -> list[Any]:
        """Load the open slide's heatmaps from a run or inference folder; returns the layers."""
        if not folder:
            return []
        slide_layer = self._slide_layer()
        if slide_layer is None:
            show_warning("Open the slide first, then its heatmaps.")
            return []
        fingerprint, slide = slide_layer.metadata[FINGERPRINT_KEY], slide_layer.metadata["slide"]
        mine, unreadable = [], []
        for path in folder_heatmaps(Path(folder)):
            try:
                heatmap = Heatmap.load(path)
            except HeatmapError:
                unreadable.append(path.name)
                continue
            if heatmap.slide_fingerprint == fingerprint:
                mine.append(heatmap)
        if unreadable:
            show_warning(f"Skipped unreadable heatmap file(s): {', '.join(unreadable)}")
        if not mine:
            show_warning(f"{folder}: no heatmap of {slide.name} (looked in heatmaps/).")
            return []
        from napari.layers import Layer

        layers = [self.viewer.add_layer(Layer.create(*heatmap_layer_data(h, slide))) for h in mine]
        self.viewer.layers.selection.active = layers[-1]
        show_info(f"{len(layers)} heatmap(s) of {slide.name} opened.")
        return layers

    # ----------------------------------------------------------------- state
    def heatmap_layers(self) -> list[Any]:
        """The heatmap layers of the open slide."""
        slide_layer = self._slide_layer()
        fingerprint = None if slide_layer is None else slide_layer.metadata[FINGERPRINT_KEY]
        return [
            layer
            for layer in self.viewer.layers
            if is_heatmap_layer(layer) and layer.metadata.get(FINGERPRINT_KEY) == fingerprint
        ]

    def current_layer(self) -> Any:
        """The heatmap layer chosen in the panel, or None."""
        name = self.layer_combo.currentText()
        return next((la for la in self.heatmap_layers() if la.name == name), None)

    def refresh(self, *_: Any) -> None:
        """List the open slide's heatmap layers, keeping the choice when possible."""
        slide_layer = self._slide_layer()
        self.slide_label.setText(
            "No slide open." if slide_layer is None else f"Slide: {slide_layer.name}"
        )
        chosen = self.layer_combo.currentText()
        names = [layer.name for layer in self.heatmap_layers()]
        self.layer_combo.blockSignals(True)
        self.layer_combo.clear()
        self.layer_combo.addItems(names)
        if chosen in names:
            self.layer_combo.setCurrentText(chosen)
        self.layer_combo.blockSignals(False)
        self.show_layer()

    def _on_active(self, *_: Any) -> None:
        active = self.viewer.layers.selection.active
        if is_heatmap_layer(active) and active.name != self.layer_combo.currentText():
            self.refresh()
            self.layer_combo.setCurrentText(active.name)
        elif not is_heatmap_layer(active):
            self.refresh()

    def show_layer(self) -> None:
        """Set the controls from the chosen layer (class, threshold, opacity, colour bar)."""
        layer = self.current_layer()
        enabled = layer is not None
        for widget in (self.class_combo, self.threshold_slider, self.threshold_spin):
            widget.setEnabled(enabled)
        self.opacity_slider.setEnabled(enabled)
        self.review.setEnabled(enabled)
        if layer is None:
            self.figure.clear()
            self.canvas.draw_idle()
            return
        heatmap: Heatmap = layer.metadata[HEATMAP_KEY]
        low, high = layer.contrast_limits
        threshold = layer.metadata.get(THRESHOLD_KEY)
        for widget in (self.class_combo, self.threshold_slider, self.threshold_spin):
            widget.blockSignals(True)
        self.class_combo.clear()
        self.class_combo.addItems(list(heatmap.class_names))
        self.class_combo.setCurrentText(layer.metadata["class_name"])
        self.threshold_spin.setRange(low, high)
        self.threshold_spin.setSingleStep((high - low) / 100)
        value = low if threshold is None else threshold
        self.threshold_spin.setValue(value)
        self.threshold_slider.setValue(round((value - low) / (high - low) * SLIDER_STEPS))
        for widget in (self.class_combo, self.threshold_slider, self.threshold_spin):
            widget.blockSignals(False)
        self.opacity_slider.blockSignals(True)
        self.opacity_slider.setValue(round(layer.opacity * 100))
        self.opacity_slider.blockSignals(False)
        self.draw_colorbar()
        self.review.refresh()

    def draw_colorbar(self) -> None:
        """Redraw the colour bar of the chosen layer."""
        layer = self.current_layer()
        if layer is None:
            return
        low, high = layer.contrast_limits
        draw_colorbar(
            self.figure, low, high, layer.metadata.get(THRESHOLD_KEY), layer.metadata["class_name"]
        )
        self.canvas.draw_idle()

    # ----------------------------------------------------------------- controls
    def set_class(self, name: str) -> None:
        """Show another class of the chosen heatmap (its threshold is kept when in range)."""
        layer = self.current_layer()
        if layer is None or not name or name == layer.metadata["class_name"]:
            return
        heatmap: Heatmap = layer.metadata[HEATMAP_KEY]
        low, high = heatmap_contrast_limits(heatmap, heatmap.class_names.index(name))
        threshold = layer.metadata.get(THRESHOLD_KEY)
        keep = threshold if threshold is not None and low <= threshold <= high else None
        show_heatmap(layer, channel=name, threshold=keep)
        self.refresh()
        self.layer_combo.setCurrentText(layer.name)

    def set_threshold(self, value: float) -> None:
        """Hide the cells of the chosen layer scoring below ``value``."""
        layer = self.current_layer()
        if layer is None:
            return
        low, high = layer.contrast_limits
        threshold = None if value <= low else float(value)
        show_heatmap(layer, threshold=threshold)
        self.threshold_slider.blockSignals(True)
        self.threshold_slider.setValue(round((value - low) / (high - low) * SLIDER_STEPS))
        self.threshold_slider.blockSignals(False)
        self.draw_colorbar()

    def _slider_moved(self, step: int) -> None:
        low, high = self.threshold_spin.minimum(), self.threshold_spin.maximum()
        self.threshold_spin.setValue(low + (high - low) * step / SLIDER_STEPS)

    def _opacity_moved(self, percent: int) -> None:
        layer = self.current_layer()
        if layer is not None:
            layer.opacity = percent / 100.0

    def _on_cursor(self, *_: Any) -> None:
        self.show_value_at(self.viewer.cursor.position)

    def show_value_at(self, world: Any) -> None:
        """Write the chosen heatmap's scores at a world position into the value label."""
        layer = self.current_layer()
        if layer is None or world is None or len(world) < 2:
            return
        heatmap: Heatmap = layer.metadata[HEATMAP_KEY]
        scale_row, scale_col = layer_scale(layer.metadata.get("mpp"))
        xy = (float(world[-1]) / scale_col, float(world[-2]) / scale_row)
        scores = scores_at(heatmap, xy)
        if scores is None:
            self.value_label.setText(f"({xy[0]:,.0f}, {xy[1]:,.0f}) px: outside the heatmap")
            return
        shown = layer.metadata["class_name"]
        parts = [
            f"<b>{name} {value:.3f}</b>" if name == shown else f"{name} {value:.3f}"
            for name, value in scores.items()
            if np.isfinite(value)
        ]
        text = " · ".join(parts) if parts else "not scored"
        self.value_label.setText(f"{text}  at ({xy[0]:,.0f}, {xy[1]:,.0f}) px")

    # ----------------------------------------------------------------- dialogs
    def _ask_file(self) -> str | None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Heatmap file", "", "Heatmaps (*.heatmap.npz *.npz)"
        )
        return path or None

    def _ask_folder(self) -> str | None:
        return QFileDialog.getExistingDirectory(self, "Run or inference folder") or None
