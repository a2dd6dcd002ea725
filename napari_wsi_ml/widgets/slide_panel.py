"""The Slide panel: what the active slide is, its mpp (settable), and tissue detection."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import (
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_wsi_ml.viewer.slide_layer import (
    FINGERPRINT_KEY,
    active_slide_layer,
    set_slide_mpp,
)
from napari_wsi_ml.viewer.tissue_layer import tissue_layer_data

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

WARNING_STYLE = "color: #ffb300; font-weight: bold;"


def describe_levels(metadata: dict[str, Any]) -> str:
    """One line per pyramid level: index, width × height, downsample."""
    slide = metadata["slide"]
    lines = [
        f"{index}: {w:,} × {h:,} px  (×{downsample:.4g})"
        for index, ((w, h), downsample) in enumerate(
            zip(slide.level_dimensions, slide.level_downsamples, strict=True)
        )
    ]
    return "\n".join(lines)


class SlidePanel(QWidget):
    """Dock widget showing the active slide; sets its mpp and detects its tissue."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self._worker: Any = None
        self._build()
        self._wire()
        self.refresh()

    def _build(self) -> None:
        self.name_label = QLabel()
        self.size_label = QLabel()
        self.levels_label = QLabel()
        self.mpp_label = QLabel()
        self.mpp_input = QDoubleSpinBox()
        self.mpp_input.setDecimals(4)
        self.mpp_input.setRange(0.01, 100.0)
        self.mpp_input.setSingleStep(0.05)
        self.mpp_input.setValue(0.25)
        self.mpp_input.setSuffix(" µm/px")
        self.mpp_button = QPushButton("Set mpp")
        self.tissue_button = QPushButton("Detect tissue")
        self.status_label = QLabel()
        for label in (self.name_label, self.levels_label, self.status_label):
            label.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Slide:", self.name_label)
        form.addRow("Size:", self.size_label)
        form.addRow("Levels:", self.levels_label)
        form.addRow("mpp:", self.mpp_label)
        mpp_row = QHBoxLayout()
        mpp_row.addWidget(self.mpp_input)
        mpp_row.addWidget(self.mpp_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(mpp_row)
        layout.addWidget(self.tissue_button)
        layout.addWidget(self.status_label)
        layout.addStretch(1)

    def _wire(self) -> None:
        self.viewer.layers.selection.events.active.connect(self.refresh)
        self.viewer.layers.events.inserted.connect(self.refresh)
        self.viewer.layers.events.removed.connect(self.refresh)
        self.mpp_button.clicked.connect(self.apply_mpp)
        self.tissue_button.clicked.connect(self.detect_tissue)

    def slide_layer(self) -> Layer | None:
        """The slide image layer this panel shows."""
        return active_slide_layer(self.viewer)

    def refresh(self, *_: Any) -> None:
        """Show the active slide's properties."""
        layer = self.slide_layer()
        for widget in (self.mpp_input, self.mpp_button, self.tissue_button):
            widget.setEnabled(layer is not None)
        if layer is None:
            self.name_label.setText("no slide open")
            for label in (self.size_label, self.levels_label, self.mpp_label):
                label.setText("")
            return
        metadata = layer.metadata
        width, height = metadata["slide"].level_dimensions[0]
        self.name_label.setText(metadata["slide_name"])
        self.size_label.setText(f"{width:,} × {height:,} px")
        self.levels_label.setText(describe_levels(metadata))
        mpp = metadata.get("mpp")
        if mpp is None:
            self.mpp_label.setText("unknown — scale is in pixels")
            self.mpp_label.setStyleSheet(WARNING_STYLE)
        else:
            self.mpp_label.setText(f"{mpp[0]:.4g} × {mpp[1]:.4g} µm/px")
            self.mpp_label.setStyleSheet("")
            self.mpp_input.setValue(float(mpp[0]))

    def apply_mpp(self, *_: Any) -> None:
        """Give every layer of the active slide the mpp typed in the field."""
        layer = self.slide_layer()
        if layer is None:
            return
        value = float(self.mpp_input.value())
        count = set_slide_mpp(self.viewer, layer.metadata[FINGERPRINT_KEY], (value, value))
        show_info(f"{layer.metadata['slide_name']}: mpp set to {value:g} µm/px ({count} layers).")
        self.refresh()

    def detect_tissue(self, *_: Any) -> None:
        """Detect tissue off the UI thread, then add it as an outline layer."""
        layer = self.slide_layer()
        if layer is None or self._worker is not None:
            return
        slide = layer.metadata["slide"]
        self.tissue_button.setEnabled(False)
        self.status_label.setText("Detecting tissue…")
        worker = thread_worker(slide.tissue_polygons)()
        worker.returned.connect(lambda geometry: self._add_tissue(layer, geometry))
        worker.errored.connect(self._tissue_failed)
        worker.finished.connect(self._tissue_finished)
        self._worker = worker
        worker.start()

    def _add_tissue(self, layer: Layer, geometry: Any) -> None:
        data, kwargs, _ = tissue_layer_data(layer.metadata["slide"], geometry)
        mpp = layer.metadata.get("mpp")  # may have been set in this panel since opening
        kwargs["scale"] = tuple(layer.scale)
        kwargs["metadata"]["mpp"] = mpp
        kwargs["units"] = tuple(str(u) for u in layer.units)
        self.viewer.add_shapes(data, **kwargs)
        self.status_label.setText(f"Tissue: {len(data)} outline(s).")

    def _tissue_failed(self, error: Exception) -> None:
        self.status_label.setText("Tissue detection failed.")
        show_error(f"Tissue detection failed: {error}")

    def _tissue_finished(self) -> None:
        self._worker = None
        self.tissue_button.setEnabled(self.slide_layer() is not None)
