"""The classes panel: a rater's annotation session on the open slide, and the classes they draw.

Session controls (rater, project folder, start, open, save, blinded mode) sit above the list of
classes with their colours, counts and areas. Number keys 1–9 pick the active class; shapes drawn
afterwards take its name and colour. A rater's layer of any size is shown through
:func:`~napari_wsi_ml.viewer.large_annotations.add_annotation_set` (an overview plus a live window
when large); saving, autosaving, counting, renaming and recolouring act on the whole set. Work is
autosaved to a recovery file every
``autosave_interval_ms`` and when the panel closes; starting the session again offers it back.

The rules live in :mod:`napari_wsi_ml.sessions` and :mod:`napari_wsi_ml.viewer.annotation_classes`;
this widget builds, wires and delegates. Dialogs are attributes (``recovery_prompt``,
``unblind_confirm``, ``name_prompt``, ``color_prompt``) so that they can be replaced.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error, show_info, show_warning
from qtpy.QtCore import QTimer
from qtpy.QtGui import QColor, QFont, QIcon, QPixmap
from qtpy.QtWidgets import (
    QApplication,
    QCheckBox,
    QColorDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from napari_wsi_ml import sessions
from napari_wsi_ml.annotations.model import AnnotationSet, Group
from napari_wsi_ml.errors import WsiMlError
from napari_wsi_ml.sessions.statistics import AreaCache, class_statistics, format_area
from napari_wsi_ml.viewer import annotation_classes as classes
from napari_wsi_ml.viewer.annotation_layers import annotation_set_of_layer, is_annotation_layer
from napari_wsi_ml.viewer.annotation_reader import open_annotation_file, slide_extent
from napari_wsi_ml.viewer.large_annotations import add_annotation_set, view_of
from napari_wsi_ml.viewer.slide_layer import FINGERPRINT_KEY, active_slide_layer

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer, Shapes

DEFAULT_CLASSES = (
    Group("tumor", color="#E6194B"),
    Group("stroma", color="#3CB44B"),
    Group("necrosis", color="#4363D8"),
    Group("other", color="#F58231"),
)
PALETTE = ("#E6194B", "#3CB44B", "#4363D8", "#F58231", "#911EB4", "#42D4F4", "#F032E6", "#BFEF45")
AUTOSAVE_INTERVAL_MS = 30_000
STATS_DEBOUNCE_MS = 300
CLASS_KEYS = tuple(str(n) for n in range(1, 10))


class ClassesPanel(QWidget):
    """Annotation session and classes of one rater on the open slide."""

    def __init__(self, napari_viewer: napari.Viewer, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.viewer = napari_viewer
        self.session: sessions.Session | None = None
        self.layer: Shapes | None = None
        self.active_class: str | None = None
        self.autosave_interval_ms = AUTOSAVE_INTERVAL_MS
        self.max_live_shapes: int | None = None  # None: the default for napari's triangulation
        self.recovery_prompt: Callable[[sessions.Session], bool] = self._ask_recovery
        self.unblind_confirm: Callable[[], bool] = self._ask_unblind
        self.name_prompt: Callable[[str, str], str | None] = self._ask_name
        self.color_prompt: Callable[[str], str | None] = self._ask_color
        self._groups: list[Group] = [Group(g.name, color=g.color) for g in DEFAULT_CLASSES]
        self._dirty = False
        self._areas = AreaCache()
        self._build()
        self._connect()

    # ----------------------------------------------------------------- build and wire
    def _build(self) -> None:
        self.rater_edit = QLineEdit(placeholderText="your name, e.g. alice")
        self.folder_edit = QLineEdit(placeholderText="beside the slide")
        self.folder_button = QPushButton("…")
        self.start_button = QPushButton("Start session")
        self.open_button = QPushButton("Open…")
        self.save_button = QPushButton("Save")
        self.blinded_check = QCheckBox("Blinded mode (hide other raters)")
        self.status_label = QLabel("No session: open a slide, type your name, start.")
        self.status_label.setWordWrap(True)
        self.class_list = QListWidget()
        self.add_button = QPushButton("Add")
        self.rename_button = QPushButton("Rename")
        self.color_button = QPushButton("Colour")
        self.autosave_timer = QTimer(self)
        self.stats_timer = QTimer(self, singleShot=True, interval=STATS_DEBOUNCE_MS)

        folder_row = QHBoxLayout()
        folder_row.addWidget(self.folder_edit)
        folder_row.addWidget(self.folder_button)
        form = QFormLayout()
        form.addRow("Rater", self.rater_edit)
        form.addRow("Project folder", folder_row)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.open_button, self.save_button):
            buttons.addWidget(button)
        class_buttons = QHBoxLayout()
        for button in (self.add_button, self.rename_button, self.color_button):
            class_buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        layout.addWidget(self.blinded_check)
        layout.addWidget(self.status_label)
        layout.addWidget(QLabel("Classes (keys 1–9 pick the class you draw with)"))
        layout.addWidget(self.class_list)
        layout.addLayout(class_buttons)
        self._refresh_classes()

    def _connect(self) -> None:
        self.folder_button.clicked.connect(self._choose_folder)
        self.start_button.clicked.connect(self.start_session)
        self.open_button.clicked.connect(self._open_dialog)
        self.save_button.clicked.connect(self.save)
        self.blinded_check.toggled.connect(self.set_blinded)
        self.class_list.currentRowChanged.connect(self.pick_class)
        self.add_button.clicked.connect(lambda: self.add_class())
        self.rename_button.clicked.connect(lambda: self.rename_active_class())
        self.color_button.clicked.connect(lambda: self.recolor_active_class())
        self.autosave_timer.timeout.connect(self.autosave)
        self.stats_timer.timeout.connect(self._refresh_classes)
        self.viewer.layers.events.inserted.connect(self._on_layer_inserted)
        QApplication.instance().aboutToQuit.connect(self.autosave)
        for number, key in enumerate(CLASS_KEYS):
            self.viewer.bind_key(key, self._class_key(number), overwrite=True)

    # ----------------------------------------------------------------- session
    def start_session(self) -> None:
        """Start (or resume) the rater's session on the active slide, offering recovery."""
        slide = active_slide_layer(self.viewer)
        if slide is None:
            show_warning("Open a slide first: a session is one rater on one slide.")
            return
        folder = self.folder_edit.text().strip() or None
        try:
            session = sessions.Session(slide.metadata["slide_path"], self.rater_edit.text(), folder)
            annotation_set = self._session_annotations(session)
        except WsiMlError as error:
            show_error(str(error))
            return
        self.session = session
        self._attach(self._rater_layer(session, slide, annotation_set))
        self.autosave_timer.setInterval(self.autosave_interval_ms)
        self.autosave_timer.start()
        self.set_blinded(self.blinded_check.isChecked())
        self.status_label.setText(
            f"{session.rater} on {session.slide_stem}: {session.annotation_path}"
        )

    def _session_annotations(self, session: sessions.Session) -> AnnotationSet:
        if sessions.needs_recovery(session) and self.recovery_prompt(session):
            recovered = sessions.load_recovery(session)
            if recovered is not None:
                self._dirty = True
                return recovered
        saved = sessions.load_saved(session)
        if saved is None:
            saved = AnnotationSet(rater=session.rater, slide=str(session.slide_path))
        if not saved.groups:
            for group in self._groups:
                saved.groups[group.name] = Group(group.name, color=group.color)
        return saved

    def _rater_layer(
        self, session: sessions.Session, slide: Layer, annotation_set: AnnotationSet
    ) -> Shapes:
        for layer in self._annotation_layers(slide.metadata.get(FINGERPRINT_KEY)):
            if layer.metadata.get("rater") == session.rater:
                self.viewer.layers.remove(layer)
        view = add_annotation_set(
            self.viewer,
            annotation_set,
            mpp=slide.metadata.get("mpp"),
            rater=session.rater,
            max_live_shapes=self.max_live_shapes,
            extent_wh=slide_extent(slide),
            slide_path=str(session.slide_path),
            slide_fingerprint=slide.metadata.get(FINGERPRINT_KEY),
            source_file=str(session.annotation_path),
        )
        layer = view.shapes_layer
        layer.mode = "pan_zoom"
        return layer

    def _attach(self, layer: Shapes) -> None:
        self.layer = layer
        self._groups = list(classes.layer_groups(layer).values()) or self._groups
        classes.set_layer_groups(layer, self._groups)
        layer.events.data.connect(self._on_data)
        for number, key in enumerate(CLASS_KEYS):
            layer.bind_key(key, self._class_key(number), overwrite=True)
        self.pick_class(0 if self._groups else -1)
        self._refresh_classes()

    def save(self) -> None:
        """Save the rater's layer to ``<slide stem>.<rater>.xml`` (atomically)."""
        if self.session is None or self.layer is None:
            show_warning("Start a session before saving.")
            return
        annotation_set = self._annotation_set()
        try:
            path = sessions.save(self.session, annotation_set)
        except WsiMlError as error:
            show_error(str(error))
            return
        self._dirty = False
        show_info(f"Saved {len(annotation_set)} annotations to {path}")

    def autosave(self) -> None:
        """Write the recovery file if anything changed since the last save or autosave."""
        if self.session is None or self.layer is None or not self._dirty:
            return
        try:
            sessions.autosave(self.session, self._annotation_set())
        except WsiMlError as error:
            show_warning(f"Autosave failed: {error}")
            return
        self._dirty = False

    def closeEvent(self, event: Any) -> None:
        """Autosave before the panel goes away."""
        self.autosave_timer.stop()
        self.autosave()
        super().closeEvent(event)

    def open_file(self, path: str) -> Layer | None:
        """Open an annotation file onto the active slide (refused for others while blinded).

        Returns:
            The file's Shapes layer (a live window over an overview when the file is large).
        """
        try:
            return open_annotation_file(self.viewer, path, max_live_shapes=self.max_live_shapes)
        except sessions.BlindedModeRefusal as error:
            show_warning(str(error))
        except WsiMlError as error:
            show_error(str(error))
        return None

    # ----------------------------------------------------------------- blinded mode
    def set_blinded(self, on: bool) -> None:
        """Hide other raters' layers and refuse to open their files; turning off asks first."""
        slide = active_slide_layer(self.viewer)
        was_blinded = slide is not None and slide.metadata.get(sessions.BLINDED_RATER_KEY)
        if not on and was_blinded and not self.unblind_confirm():
            self._set_checked(True)
            return
        self._set_checked(on)
        rater = self.session.rater if self.session is not None else None
        if slide is not None:
            slide.metadata[sessions.BLINDED_RATER_KEY] = rater if on else None
        if on:
            for layer in self._other_rater_layers():
                layer.visible = False

    def _set_checked(self, on: bool) -> None:
        self.blinded_check.blockSignals(True)
        self.blinded_check.setChecked(on)
        self.blinded_check.blockSignals(False)

    def _on_layer_inserted(self, event: Any) -> None:
        if self.blinded_check.isChecked() and event.value in self._other_rater_layers():
            event.value.visible = False

    # ----------------------------------------------------------------- classes
    def pick_class(self, index: int) -> None:
        """Make class ``index`` (0-based) the one new shapes take; selected shapes take it too."""
        if not 0 <= index < len(self._groups):
            return
        group = self._groups[index]
        self.active_class = group.name
        if self.layer is not None:
            if self.layer.mode == "select" and self.layer.selected_data:
                classes.apply_class(self.layer, sorted(self.layer.selected_data), group)
                self._changed()
            classes.set_drawing_class(self.layer, group)
        self.class_list.blockSignals(True)
        self.class_list.setCurrentRow(index)
        self.class_list.blockSignals(False)

    def add_class(self, name: str | None = None, color: str | None = None) -> None:
        """Add a class (asks for a name when none is given)."""
        name = name or self.name_prompt("New class", "")
        if not name or name in [g.name for g in self._groups]:
            return
        color = color or PALETTE[len(self._groups) % len(PALETTE)]
        self._groups.append(Group(name, color=color))
        if self.layer is not None:
            classes.set_layer_groups(self.layer, self._groups)
        self._refresh_classes()

    def rename_active_class(self, new_name: str | None = None) -> None:
        """Rename the active class, on every shape of it too."""
        old = self.active_class
        new_name = new_name or (old and self.name_prompt("Rename class", old))
        if not old or not new_name or new_name in [g.name for g in self._groups]:
            return
        if self.layer is not None:
            view = view_of(self.layer)
            if view is not None:
                view.rename_class(old, new_name)
            else:
                classes.rename_class(self.layer, old, new_name)
            self._groups = list(classes.layer_groups(self.layer).values())
            self._changed()
        else:
            self._groups = [
                Group(new_name, color=g.color) if g.name == old else g for g in self._groups
            ]
        self.active_class = new_name
        self.pick_class([g.name for g in self._groups].index(new_name))
        self._refresh_classes()

    def recolor_active_class(self, color: str | None = None) -> None:
        """Give the active class, and its shapes, a new colour."""
        group = next((g for g in self._groups if g.name == self.active_class), None)
        color = color or (group and self.color_prompt(group.color))
        if group is None or not color:
            return
        group.color = color
        if self.layer is not None:
            view = view_of(self.layer)
            if view is not None:
                view.recolor_class(group.name, color)
            else:
                classes.recolor_class(self.layer, group.name, color)
            self._changed()
        self.pick_class(self._groups.index(group))
        self._refresh_classes()

    def _class_key(self, number: int) -> Callable[[Any], None]:
        def pick(_: Any) -> None:
            self.pick_class(number)

        return pick

    def _on_data(self, event: Any) -> None:
        view = view_of(self.layer)
        if view is not None and view.loading:
            return  # the live window moved: shapes came from the set, nobody drew them
        if getattr(event, "action", None) == "added" and self.active_class is not None:
            group = next(g for g in self._groups if g.name == self.active_class)
            classes.apply_class(self.layer, list(event.data_indices), group)
        if getattr(event, "action", None) in ("added", "changed", "removed"):
            self._changed()

    def _changed(self) -> None:
        self._dirty = True
        self.stats_timer.start()

    def _refresh_classes(self) -> None:
        stats = {}
        if self.layer is not None:
            stats = class_statistics(
                self._annotation_set(), self.layer.metadata.get("mpp"), self._areas
            )
        self.class_list.blockSignals(True)
        self.class_list.clear()
        for number, group in enumerate(self._groups):
            text = f"{number + 1}  {group.name}" if number < 9 else f"   {group.name}"
            if group.name in stats:
                one = stats[group.name]
                text += f"   ·  {one.count}  ·  {format_area(one.area_um2, one.area_px)}"
            item = QListWidgetItem(_swatch(group.color), text)
            if group.name == self.active_class:
                font = QFont(item.font())
                font.setBold(True)
                item.setFont(font)
            self.class_list.addItem(item)
        names = [g.name for g in self._groups]
        if self.active_class in names:
            self.class_list.setCurrentRow(names.index(self.active_class))
        self.class_list.blockSignals(False)

    # ----------------------------------------------------------------- helpers
    def _annotation_set(self) -> AnnotationSet:
        rater = self.session.rater if self.session is not None else None
        return annotation_set_of_layer(self.layer, rater=rater)

    def _annotation_layers(self, fingerprint: str | None) -> list[Layer]:
        return [
            layer
            for layer in self.viewer.layers
            if is_annotation_layer(layer) and layer.metadata.get(FINGERPRINT_KEY) == fingerprint
        ]

    def _other_rater_layers(self) -> list[Layer]:
        slide = active_slide_layer(self.viewer)
        own = self.session.rater if self.session is not None else None
        fingerprint = slide.metadata.get(FINGERPRINT_KEY) if slide is not None else None
        return [
            layer
            for layer in self._annotation_layers(fingerprint)
            if layer is not self.layer and layer.metadata.get("rater") != own
        ]

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Project folder")
        if folder:
            self.folder_edit.setText(folder)

    def _open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Open annotations", "", "Annotations (*.xml *.geojson *.json)"
        )
        if path:
            self.open_file(path)

    def _ask_recovery(self, session: sessions.Session) -> bool:
        answer = QMessageBox.question(
            self,
            "Recover unsaved annotations?",
            f"{session.recovery_path.name} holds work newer than {session.annotation_path.name} "
            "(the viewer was closed without saving). Restore it?",
        )
        return answer == QMessageBox.StandardButton.Yes

    def _ask_unblind(self) -> bool:
        answer = QMessageBox.question(
            self,
            "Turn blinded mode off?",
            "This shows every rater's annotations. Only the study coordinator should do this.",
        )
        return answer == QMessageBox.StandardButton.Yes

    def _ask_name(self, title: str, current: str) -> str | None:
        name, ok = QInputDialog.getText(self, title, "Class name", text=current)
        return name.strip() if ok and name.strip() else None

    def _ask_color(self, current: str) -> str | None:
        color = QColorDialog.getColor(QColor(current), self, "Class colour")
        return color.name().upper() if color.isValid() else None


def _swatch(color: str) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)
