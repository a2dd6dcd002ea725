"""The Patch sampler panel: sampling parameters, a preview of the patches and QC mask, counts.

Thin: the panel collects :class:`~napari_wsi_ml.data.slide_sampling.SamplingOptions`, runs
:func:`~napari_wsi_ml.data.slide_sampling.sample_slide_patches` off the UI thread, and shows the
result with :mod:`napari_wsi_ml.viewer.patch_layers`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari.qt.threading import thread_worker
from napari.utils.notifications import show_error
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from napari_wsi_ml.data.annotation_sampling import label_names_for
from napari_wsi_ml.data.config import STRATEGIES
from napari_wsi_ml.data.regions import DEFAULT_EXCLUDE
from napari_wsi_ml.data.slide_sampling import SamplingOptions, SlideSample, sample_slide_patches
from napari_wsi_ml.viewer.annotation_layers import (
    annotation_set_of_layer,
    groups_from_metadata,
    is_annotation_layer,
)
from napari_wsi_ml.viewer.patch_layers import (
    PATCHES_KIND,
    QC_KIND,
    label_colors,
    patch_layer_data,
    qc_layer_data,
)
from napari_wsi_ml.viewer.slide_layer import (
    FINGERPRINT_KEY,
    KIND_KEY,
    active_slide_layer,
    layers_of_slide,
    slide_metadata,
)

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

NO_LABELS = "(none)"


class PatchSamplerPanel(QWidget):
    """Dock widget: preview the patches a sampling strategy takes from the open slide."""

    def __init__(self, napari_viewer: napari.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.worker: Any = None
        self.last_sample: SlideSample | None = None
        self._qc_kinds: tuple[str, ...] = ()
        self._build()
        self._wire()
        self.refresh()

    def _build(self) -> None:
        self.slide_label = QLabel()
        self.strategy = QComboBox()
        self.strategy.addItems(STRATEGIES)
        self.patch_size = _spin(16, 4096, 256, " px")
        self.target_mpp = QDoubleSpinBox()
        self.target_mpp.setDecimals(2)
        self.target_mpp.setRange(0.05, 64.0)
        self.target_mpp.setValue(0.5)
        self.target_mpp.setSuffix(" µm/px")
        self.target_mpp.setMinimumWidth(120)
        self.stride = _spin(0, 4096, 0, " px")
        self.stride.setSpecialValueText("patch size")
        self.min_tissue = QDoubleSpinBox()
        self.min_tissue.setRange(0.0, 1.0)
        self.min_tissue.setSingleStep(0.05)
        self.min_tissue.setValue(0.4)
        self.n_patches = _spin(1, 100_000, 200, "")
        self.label_source = QComboBox()
        self.label_rule = QComboBox()
        self.label_rule.addItems(("centre", "coverage"))
        self.background = QLineEdit("normal")
        self.background.setPlaceholderText("label of unannotated tissue (empty: none)")
        self.qc_enabled = QCheckBox("Run quality control")
        self.qc_blur = QCheckBox("avoid blur")
        self.qc_pen = QCheckBox("avoid pen marks")
        self.qc_show = QCheckBox("show QC mask")
        for box in (self.qc_blur, self.qc_pen, self.qc_show):
            box.setChecked(True)
        self.preview_button = QPushButton("Preview")
        self.status = QLabel()
        self.counts = QLabel()
        for label in (self.slide_label, self.status, self.counts):
            label.setWordWrap(True)
        form = QFormLayout()
        for text, widget in (
            ("Slide:", self.slide_label),
            ("Strategy:", self.strategy),
            ("Patch size:", self.patch_size),
            ("Target:", self.target_mpp),
            ("Stride:", self.stride),
            ("Min tissue:", self.min_tissue),
            ("Patches (random):", self.n_patches),
            ("Labels from:", self.label_source),
            ("Label rule:", self.label_rule),
            ("Background:", self.background),
        ):
            form.addRow(text, widget)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        for widget in (self.qc_enabled, self.qc_blur, self.qc_pen, self.qc_show):
            layout.addWidget(widget)
        for widget in (self.preview_button, self.status, self.counts):
            layout.addWidget(widget)
        layout.addStretch(1)

    def _wire(self) -> None:
        self.viewer.layers.selection.events.active.connect(self.refresh)
        self.viewer.layers.events.inserted.connect(self.refresh)
        self.viewer.layers.events.removed.connect(self.refresh)
        self.strategy.currentTextChanged.connect(self._strategy_changed)
        self.qc_enabled.toggled.connect(self._strategy_changed)
        self.preview_button.clicked.connect(self.preview)

    def slide_layer(self) -> Layer | None:
        """The slide image layer the preview is for."""
        return active_slide_layer(self.viewer)

    def annotation_layers(self) -> list[Layer]:
        """The annotation layers of the open slide."""
        layer = self.slide_layer()
        if layer is None:
            return []
        fingerprint = layer.metadata[FINGERPRINT_KEY]
        return [la for la in layers_of_slide(self.viewer, fingerprint) if is_annotation_layer(la)]

    def refresh(self, *_: Any) -> None:
        """Show the open slide and list its annotation layers as label sources."""
        layer = self.slide_layer()
        self.slide_label.setText(layer.metadata["slide_name"] if layer else "no slide open")
        current = self.label_source.currentText()
        self.label_source.blockSignals(True)
        self.label_source.clear()
        self.label_source.addItems([NO_LABELS, *(la.name for la in self.annotation_layers())])
        if current in [self.label_source.itemText(i) for i in range(self.label_source.count())]:
            self.label_source.setCurrentText(current)
        elif self.label_source.count() > 1:
            self.label_source.setCurrentIndex(1)
        self.label_source.blockSignals(False)
        self._strategy_changed()

    def _strategy_changed(self, *_: Any) -> None:
        strategy = self.strategy.currentText()
        self.n_patches.setEnabled(strategy == "random")
        self.stride.setEnabled(strategy != "random")
        for widget in (self.label_source, self.label_rule, self.background):
            widget.setEnabled(strategy == "annotations")
        for widget in (self.qc_blur, self.qc_pen, self.qc_show):
            widget.setEnabled(self.qc_enabled.isChecked())
        self.preview_button.setEnabled(self.slide_layer() is not None and self.worker is None)

    def options(self, label_map: dict[str, str]) -> SamplingOptions:
        """The sampling options the panel's fields describe."""
        exclude = tuple(
            k for k, box in (("blur", self.qc_blur), ("pen", self.qc_pen)) if box.isChecked()
        )
        layer = self.slide_layer()
        mpp = layer.metadata.get("mpp") if layer is not None else None
        slide_mpp = layer.metadata["slide"].mpp if layer is not None else None
        return SamplingOptions(
            strategy=self.strategy.currentText(),
            patch_size=self.patch_size.value(),
            target_mpp=self.target_mpp.value(),
            mpp_override=float(mpp[0]) if mpp is not None and slide_mpp is None else None,
            stride=self.stride.value() or None,
            min_tissue=self.min_tissue.value(),
            label_rule=self.label_rule.currentText(),
            background_label=self.background.text().strip() or None,
            n_patches=self.n_patches.value(),
            label_map=label_map,
            qc=self.qc_enabled.isChecked(),
            qc_exclude=exclude,
        )

    def preview(self, *_: Any) -> None:
        """Sample the open slide off the UI thread, then show the patches (and QC mask)."""
        layer = self.slide_layer()
        if layer is None or self.worker is not None:
            return
        source = self._source_layer()
        annotations = annotation_set_of_layer(source) if source is not None else None
        label_map = {}
        if annotations is not None:
            label_map = {c: c for c in annotations.class_names if c not in DEFAULT_EXCLUDE}
        options = self.options(label_map)
        self._qc_kinds = options.qc_exclude or ("background",)
        names = label_names_for(label_map, options.background_label) if label_map else None
        worker = thread_worker(sample_slide_patches, ignore_errors=True)(
            layer.metadata["slide"], options, annotations=annotations, label_names=names
        )
        worker.returned.connect(lambda sample: self._show(layer, source, sample))
        worker.errored.connect(self._failed)
        worker.finished.connect(self._finished)
        self.worker = worker
        self.status.setText("Sampling…")
        self.preview_button.setEnabled(False)
        worker.start()

    def _source_layer(self) -> Layer | None:
        if self.strategy.currentText() != "annotations":
            return None
        name = self.label_source.currentText()
        return next((la for la in self.annotation_layers() if la.name == name), None)

    def _show(self, layer: Layer, source: Layer | None, sample: SlideSample) -> None:
        self.last_sample = sample
        fingerprint = layer.metadata[FINGERPRINT_KEY]
        for old in list(layers_of_slide(self.viewer, fingerprint)):
            if old.metadata.get(KIND_KEY) in (PATCHES_KIND, QC_KIND):
                self.viewer.layers.remove(old)
        mpp = layer.metadata.get("mpp")
        metadata = {**slide_metadata(layer.metadata["slide"]), "mpp": mpp}
        known = {}
        if source is not None:
            known = {n: g.color for n, g in groups_from_metadata(source.metadata).items()}
        if sample.qc is not None and self.qc_show.isChecked():
            data, kwargs, _ = qc_layer_data(
                sample.qc,
                mpp=mpp,
                kinds=self._qc_kinds,
                name=f"{layer.name} QC mask",
                metadata=metadata,
            )
            self.viewer.add_image(data, **kwargs)
        patches = sample.patches
        colors = label_colors(patches.label_names, known)
        data, kwargs, _ = patch_layer_data(patches, mpp=mpp, colors=colors, metadata=metadata)
        self.viewer.add_shapes(data, **kwargs)
        self.viewer.layers.selection.active = layer
        counts = patches.counts()
        self.counts.setText(
            "\n".join(f"{name}: {count:,}" for name, count in counts.items()) or "no patches"
        )
        shown = kwargs["metadata"]["shown"]
        more = f" ({shown:,} drawn)" if shown < len(patches) else ""
        level = patches.plan.level
        self.status.setText(f"{len(patches):,} patches, read at level {level}{more}.")

    def _failed(self, error: Exception) -> None:
        self.status.setText("Preview failed.")
        show_error(f"Patch preview failed: {error}")

    def _finished(self) -> None:
        self.worker = None
        self._strategy_changed()


def _spin(lo: int, hi: int, value: int, suffix: str) -> QSpinBox:
    box = QSpinBox()
    box.setRange(lo, hi)
    box.setValue(value)
    box.setSuffix(suffix)
    return box
