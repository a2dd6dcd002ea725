"""Show an AnnotationSet of any size: plain Shapes when small, overview + live window when large.

napari's Shapes layer triangulates every polygon when it is added and redraws all of them at any
zoom, which takes seconds for 100 000 polygons. A large set is therefore shown as:

* an **overview** Image layer (RGBA): all annotations drawn once, filled and outlined in their
  colour, at the resolution at which the canvas shows the whole slide (between
  ``OVERVIEW_MIN_SIDE`` and ``overview_max_side`` pixels on a side), scaled and translated so
  that a raster pixel covers exactly the level-0 pixels under it;
* a **detail** Image layer: when zoomed in beyond the overview's resolution but with too many
  annotations in view to edit, the visible region drawn again at screen resolution (the
  overview is hidden meanwhile: under the translucent detail it would show every fill twice);
* an editable **Shapes** layer (the one other code sees as the rater's annotation layer) holding
  only the annotations inside the visible region plus a margin, once at most ``max_live_shapes``
  are in view. Edits there are merged back into the full set before the window moves and before
  :meth:`LargeAnnotationView.annotation_set` answers, so saving writes every annotation.

The window follows the camera (debounced); :meth:`LargeAnnotationView.refresh` does it at once.
The rasters are shown only while the Shapes layer is visible, and leave with it when it is removed.
Classes are renamed and recoloured in the whole set through the view (:meth:`rename_class`,
:meth:`recolor_class`). Whatever saves, counts or compares annotations asks for the whole set with
:func:`~napari_wsi_ml.viewer.annotation_layers.annotation_set_of_layer`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_wsi_ml.annotations.model import Annotation, AnnotationSet
from napari_wsi_ml.annotations.rasterize import BoxIndex, draw, raster_size
from napari_wsi_ml.coords import image_translate, layer_scale
from napari_wsi_ml.viewer import annotation_classes as classes
from napari_wsi_ml.viewer.annotation_layers import (
    VIEW_KEY,
    annotation_layer_data,
    annotation_set_from_layer,
    annotation_set_of_layer,
    groups_from_metadata,
)
from napari_wsi_ml.viewer.slide_layer import FINGERPRINT_KEY, KIND_KEY, layer_units

if TYPE_CHECKING:
    import napari
    import pandas as pd
    from napari.layers import Image, Shapes

INDEX_COLUMN = "annotation_index"  # feature: position in the full set, -1 for new shapes
RASTER_KIND = "annotation_raster"  # KIND_KEY of the overview and detail layers
# Most live shapes by default: napari's compiled triangulation (bermuda) fills a Shapes layer
# several times faster than its Python fallback (docs/benchmarks/annotations-display.md).
MAX_LIVE_SHAPES_COMPILED = 5000
MAX_LIVE_SHAPES_PYTHON = 1000
DEFAULT_OVERVIEW_MAX_SIDE = 2048
OVERVIEW_MIN_SIDE = 512
DEBOUNCE_MS = 150
_LAYER_EVENTS = ("data", "features", "edge_color", "face_color", "properties")


def bermuda_installed() -> bool:
    """Whether napari's optional compiled triangulation package can be imported."""
    return importlib.util.find_spec("bermuda") is not None


def compiled_triangulation() -> bool:
    """Whether napari triangulates shapes with its compiled ``bermuda`` backend."""
    if not bermuda_installed():
        return False
    from napari.utils.triangulation_backend import TriangulationBackend, get_backend

    return get_backend() in (TriangulationBackend.bermuda, TriangulationBackend.fastest_available)


def default_max_live_shapes() -> int:
    """How many annotations a live Shapes window holds by default, for napari's triangulation."""
    return MAX_LIVE_SHAPES_COMPILED if compiled_triangulation() else MAX_LIVE_SHAPES_PYTHON


def overview_downsample(
    extent_wh: Sequence[float], canvas_hw: Sequence[int], max_side: int
) -> float:
    """Level-0 pixels per overview pixel: the canvas's resolution when it shows the whole
    ``extent_wh`` (finer is drawn when zooming in), within ``OVERVIEW_MIN_SIDE`` and
    ``max_side`` pixels on the overview's long side."""
    longest = max(extent_wh)
    fitted = max(extent_wh[0] / max(canvas_hw[1], 1), extent_wh[1] / max(canvas_hw[0], 1))
    finest = longest / max_side
    coarsest = longest / min(OVERVIEW_MIN_SIDE, max_side)
    return max(1.0, finest, min(fitted, coarsest))


def view_of(layer: Any) -> LargeAnnotationView | None:
    """The view showing ``layer`` (a Shapes layer made by :func:`add_annotation_set`), or None."""
    metadata = getattr(layer, "metadata", None) or {}
    view = metadata.get(VIEW_KEY)
    return view if isinstance(view, LargeAnnotationView) and view.shapes_layer is layer else None


def camera_of(viewer: napari.Viewer) -> Any:
    """The viewer's camera (``viewer.scene.camera`` from napari 0.9, ``viewer.camera`` before)."""
    scene = getattr(viewer, "scene", None)
    return scene.camera if scene is not None else viewer.camera


def visible_box_xy(viewer: napari.Viewer, mpp: Sequence[float] | None) -> tuple[float, ...]:
    """Level-0 ``(xmin, ymin, xmax, ymax)`` of what the canvas shows."""
    height, width = viewer.canvas.size
    zoom = float(camera_of(viewer).zoom)
    row, col = camera_of(viewer).center[-2:]
    scale_row, scale_col = layer_scale(mpp)
    half_w, half_h = width / (2.0 * zoom), height / (2.0 * zoom)
    return (
        (col - half_w) / scale_col,
        (row - half_h) / scale_row,
        (col + half_w) / scale_col,
        (row + half_h) / scale_row,
    )


class LargeAnnotationView:
    """One rater's annotations in a viewer, editable at any size (see the module docstring).

    Attributes:
        shapes_layer: The editable Shapes layer (every annotation when small, else the window).
        overview_layer: The overview Image layer, or None for a small set.
        detail_layer: The screen-resolution Image layer, made when first needed, else None.
    """

    def __init__(
        self,
        viewer: napari.Viewer,
        annotation_set: AnnotationSet,
        *,
        mpp: Sequence[float] | None,
        rater: str | None = None,
        name: str | None = None,
        max_live_shapes: int | None = None,
        extent_wh: Sequence[float] | None = None,
        overview_max_side: int = DEFAULT_OVERVIEW_MAX_SIDE,
        margin: float = 0.5,
        layer_metadata: dict[str, Any] | None = None,
    ) -> None:
        self._viewer = viewer
        self._set = annotation_set
        self._mpp = mpp
        self._rater = rater if rater is not None else annotation_set.rater
        self._name = name or self._rater or "annotations"
        self._layer_metadata = dict(layer_metadata or {})
        if max_live_shapes is None:
            max_live_shapes = default_max_live_shapes()
        self.max_live_shapes = int(max_live_shapes)
        self._margin = float(margin)
        self._dirty = False
        self._loading_depth = 0
        self._timer: Any = None
        self.overview_layer: Image | None = None
        self.detail_layer: Image | None = None
        self.is_large = len(annotation_set) > self.max_live_shapes
        if not self.is_large:
            self._index = None
            self._live_ids = np.arange(len(annotation_set))
            self.shapes_layer = self._add_shapes(annotation_set)
            return
        self._index = BoxIndex(annotation_set)
        self._live_ids = np.zeros(0, dtype=np.int64)
        self._live = False
        self._extent = self._extent_wh(extent_wh)
        self._overview_ds = overview_downsample(self._extent, viewer.canvas.size, overview_max_side)
        self._overview_stale = False
        self.overview_layer = self._add_raster(self._render_overview(), self._overview_ds, (0, 0))
        self.overview_layer.name = f"{self._name} overview"
        self.shapes_layer = self._add_shapes(self._subset(self._live_ids))
        self.shapes_layer.events.visible.connect(self._on_visible)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        self._connect_camera()

    # ----------------------------------------------------------------------------- public API
    @property
    def live_ids(self) -> np.ndarray:
        """Positions in the full set of the annotations now in the Shapes layer, in layer order."""
        return self._live_ids.copy()

    @property
    def is_live(self) -> bool:
        """Whether the Shapes layer holds the (windowed) annotations rather than the overview."""
        return not self.is_large or self._live

    @property
    def overview_downsample(self) -> float | None:
        """Level-0 pixels per overview pixel, or None for a small set."""
        return self._overview_ds if self.is_large else None

    @property
    def loading(self) -> bool:
        """Whether the view is refilling the Shapes layer (its events then are not edits)."""
        return self._loading_depth > 0

    def annotation_set(self) -> AnnotationSet:
        """The full AnnotationSet, with every edit made in the Shapes layer merged in.

        For a large set this is the view's own set, edited in place as the window moves.
        """
        if not self.is_large:
            return annotation_set_from_layer(self.shapes_layer, rater=self._rater)
        self._merge()
        for group in groups_from_metadata(self.shapes_layer.metadata).values():
            self._set.groups[group.name] = group  # classes added or edited in the layer
        return self._set

    def _merged_members(self, name: str) -> list[Annotation]:
        """Annotations of class ``name`` in the whole set, after merging the window's edits."""
        self._merge()
        return [a for a in self._set.annotations if a.group == name]

    def rename_class(self, old: str, new: str) -> int:
        """Rename class ``old`` to ``new`` in the whole set and the window; returns how many."""
        if not self.is_large:
            return classes.rename_class(self.shapes_layer, old, new)
        members = self._merged_members(old)
        for annotation in members:
            annotation.group = new
        groups = {}
        for name, group in self._set.groups.items():
            group.name = new if name == old else group.name
            group.parent = new if group.parent == old else group.parent
            groups[group.name] = group
        self._set.groups = groups
        with self._loading():
            classes.rename_class(self.shapes_layer, old, new)
        return len(members)

    def recolor_class(self, name: str, color: str) -> int:
        """Give class ``name`` ``color`` in the whole set, the window and the rasters."""
        if not self.is_large:
            return classes.recolor_class(self.shapes_layer, name, color)
        members = self._merged_members(name)
        for annotation in members:
            annotation.color = color
        if name in self._set.groups:
            self._set.groups[name].color = color
        with self._loading():
            classes.recolor_class(self.shapes_layer, name, color)
        self._index = BoxIndex(self._set)
        self._overview_stale = True
        if not self.is_live:
            self.refresh()
        return len(members)

    def refresh(self) -> None:
        """Fit the layers to the current camera now: live shapes, detail raster or overview."""
        if not self.is_large:
            return
        box = visible_box_xy(self._viewer, self._mpp)
        visible = self._index.query(box)
        if len(visible) <= self.max_live_shapes:
            self._show_window(box, visible)
        else:
            self._show_rasters(box, visible)

    def close(self) -> None:
        """Stop following the camera (the layers stay)."""
        if self._timer is not None:
            self._timer.stop()
            camera_of(self._viewer).events.center.disconnect(self._schedule)
            camera_of(self._viewer).events.zoom.disconnect(self._schedule)
            self._viewer.layers.events.removed.disconnect(self._on_layer_removed)
            self._timer = None

    # ---------------------------------------------------------------------------- live window
    def _show_window(self, box: Sequence[float], visible: np.ndarray) -> None:
        self._live = True
        self.overview_layer.visible = False
        if self.detail_layer is not None:
            self.detail_layer.visible = False
        ids = self._window_ids(box, visible)
        if np.array_equal(ids, np.sort(self._live_ids)):
            return
        if self._dirty:
            self._merge()
            ids = self._window_ids(box, self._index.query(box))
            if np.array_equal(ids, np.sort(self._live_ids)):
                return
        self._load(ids)

    def _window_ids(self, box: Sequence[float], visible: np.ndarray) -> np.ndarray:
        """The visible annotations plus those within the margin, if not too many."""
        pad_w, pad_h = (box[2] - box[0]) * self._margin, (box[3] - box[1]) * self._margin
        window = self._index.query((box[0] - pad_w, box[1] - pad_h, box[2] + pad_w, box[3] + pad_h))
        return window if len(window) <= self.max_live_shapes else visible

    def _show_rasters(self, box: Sequence[float], visible: np.ndarray) -> None:
        if len(self._live_ids) or self._dirty:
            self._merge()
            self._load(np.zeros(0, dtype=np.int64))
        if self._overview_stale:
            self.overview_layer.data = self._render_overview()
            self._overview_stale = False
        self._live = False
        screen_ds = 1.0 / (float(camera_of(self._viewer).zoom) * layer_scale(self._mpp)[1])
        if screen_ds >= self._overview_ds * 0.75:
            self.overview_layer.visible = self.shapes_layer.visible
            if self.detail_layer is not None:
                self.detail_layer.visible = False
            return
        ds = max(1.0, screen_ds)
        origin = (max(0.0, box[0]), max(0.0, box[1]))
        far = (min(self._extent[0], box[2]), min(self._extent[1], box[3]))
        size = raster_size((far[0] - origin[0], far[1] - origin[1]), ds)
        raster = draw(self._index, origin_xy=origin, downsample=ds, size_wh=size, ids=visible)
        if self.detail_layer is None:
            self.detail_layer = self._add_raster(raster, ds, origin)
            self.detail_layer.name = f"{self._name} detail"
            self._viewer.layers.move(
                self._viewer.layers.index(self.detail_layer),
                self._viewer.layers.index(self.shapes_layer),
            )
        else:
            self._place(self.detail_layer, raster, ds, origin)
        self.detail_layer.visible = self.shapes_layer.visible
        self.overview_layer.visible = False  # under the translucent detail it would show twice

    def _load(self, ids: np.ndarray) -> None:
        """Put the annotations ``ids`` (positions in the full set) into the Shapes layer."""
        layer = self.shapes_layer
        data, kwargs, _ = annotation_layer_data(
            self._subset(ids), mpp=self._mpp, rater=self._rater, name=self._name
        )
        defaults = layer.feature_defaults.iloc[0].to_dict() if len(layer.feature_defaults) else {}
        with self._loading():
            layer.selected_data = set()
            layer.data = []
            layer.feature_defaults = {**_column_defaults(layer.features), INDEX_COLUMN: -1}
            if len(data):
                layer.add(
                    data,
                    shape_type=kwargs["shape_type"],
                    edge_width=kwargs["edge_width"],
                    edge_color=kwargs["edge_color"],
                    face_color=kwargs["face_color"],
                )
            layer.features = _feature_frame(kwargs["features"], ids)
            layer.feature_defaults = {
                **_column_defaults(layer.features),
                **defaults,
                INDEX_COLUMN: -1,
            }
        self._live_ids = np.asarray(ids, dtype=np.int64)
        self._dirty = False

    def _merge(self) -> None:
        """Write the Shapes layer's edits back into the full set (and re-index it)."""
        if not self.is_large or not self._dirty:
            return
        layer = self.shapes_layer
        edited = annotation_set_from_layer(layer, rater=self._rater)
        rows = np.asarray(layer.features[INDEX_COLUMN], dtype=np.float64)
        rows = np.where(np.isnan(rows), -1, rows).astype(np.int64)
        full = self._set.annotations
        keep = np.ones(len(full), dtype=bool)
        keep[self._live_ids] = False
        for row, position in enumerate(rows):
            if position >= 0:
                full[position] = edited.annotations[row]
                keep[position] = True
        new_position = np.cumsum(keep) - 1
        added = [a for a, position in zip(edited.annotations, rows, strict=True) if position < 0]
        self._set.annotations = [a for a, k in zip(full, keep, strict=True) if k] + added
        for group_name, group in edited.groups.items():
            self._set.groups.setdefault(group_name, group)
        first_added = int(keep.sum())
        positions = np.where(rows >= 0, new_position[np.maximum(rows, 0)], 0)
        positions[rows < 0] = first_added + np.arange(int((rows < 0).sum()))
        layer.features[INDEX_COLUMN] = positions
        self._live_ids = positions
        self._index = BoxIndex(self._set)
        self._overview_stale = True
        self._dirty = False

    # --------------------------------------------------------------------------- layers, events
    def _subset(self, ids: np.ndarray) -> AnnotationSet:
        return AnnotationSet(
            annotations=[self._set.annotations[i] for i in ids],
            groups=self._set.groups,
            rater=self._rater,
            slide=self._set.slide,
        )

    def _add_shapes(self, subset: AnnotationSet) -> Shapes:
        from napari.layers import Layer

        data, kwargs, layer_type = annotation_layer_data(
            subset, mpp=self._mpp, rater=self._rater, name=self._name
        )
        kwargs["metadata"].update(self._layer_metadata)
        if self.is_large:
            kwargs["features"] = _feature_frame(kwargs["features"], np.zeros(0, np.int64))
            kwargs["feature_defaults"] = {**_column_defaults(kwargs["features"]), INDEX_COLUMN: -1}
        layer = self._viewer.add_layer(Layer.create(data, kwargs, layer_type))
        layer.metadata[VIEW_KEY] = self
        for name in _LAYER_EVENTS:
            getattr(layer.events, name).connect(self._on_layer_edit)
        return layer

    def _add_raster(self, raster: np.ndarray, ds: float, origin: Sequence[float]) -> Image:
        metadata = {
            KIND_KEY: RASTER_KIND,
            "rater": self._rater,
            FINGERPRINT_KEY: self._layer_metadata.get(FINGERPRINT_KEY),
        }
        layer = self._viewer.add_image(
            raster,
            rgb=True,
            blending="translucent",
            units=layer_units(self._mpp),
            metadata=metadata,
        )
        self._place(layer, raster, ds, origin)
        return layer

    def _place(self, layer: Image, raster: np.ndarray, ds: float, origin: Sequence[float]) -> None:
        """Scale and translate a raster so that its pixel (u, v) covers its level-0 pixels."""
        scale_row, scale_col = layer_scale(self._mpp)
        half_row, half_col = image_translate(self._mpp)
        layer.data = raster
        layer.scale = (ds * scale_row, ds * scale_col)
        layer.translate = (
            origin[1] * scale_row + ds * half_row,
            origin[0] * scale_col + ds * half_col,
        )

    def _render_overview(self) -> np.ndarray:
        size = raster_size(self._extent, self._overview_ds)
        return draw(self._index, origin_xy=(0, 0), downsample=self._overview_ds, size_wh=size)

    def _extent_wh(self, extent_wh: Sequence[float] | None) -> tuple[float, float]:
        if extent_wh is not None:
            return (float(extent_wh[0]), float(extent_wh[1]))
        bounds = self._index.packed.bounds
        return (
            float(np.nanmax(bounds[:, 2], initial=1.0)),
            float(np.nanmax(bounds[:, 3], initial=1.0)),
        )

    def _connect_camera(self) -> None:
        from qtpy.QtCore import QTimer

        self._timer = QTimer()
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.refresh)
        camera_of(self._viewer).events.center.connect(self._schedule)
        camera_of(self._viewer).events.zoom.connect(self._schedule)

    def _schedule(self, _event: Any = None) -> None:
        if self._timer is not None:
            self._timer.start()

    def _on_visible(self, _event: Any = None) -> None:
        """Hide the rasters with the Shapes layer; show what the camera needs with it."""
        if self.shapes_layer.visible:
            self.refresh()
            return
        for layer in (self.overview_layer, self.detail_layer):
            if layer is not None:
                layer.visible = False

    def _on_layer_removed(self, event: Any) -> None:
        """Removing the Shapes layer removes the rasters and stops the view."""
        if event.value is not self.shapes_layer:
            return
        self.close()
        for layer in (self.overview_layer, self.detail_layer):
            if layer is not None and layer in self._viewer.layers:
                self._viewer.layers.remove(layer)

    def _on_layer_edit(self, _event: Any = None) -> None:
        if self._loading_depth == 0:
            self._dirty = True

    @contextmanager
    def _loading(self) -> Iterator[None]:
        self._loading_depth += 1
        try:
            yield
        finally:
            self._loading_depth -= 1


def _feature_frame(columns: dict[str, list[Any]], ids: np.ndarray) -> pd.DataFrame:
    """The layer's feature table plus the position of each shape's annotation in the full set."""
    import pandas as pd

    frame = pd.DataFrame({key: pd.Series(values, dtype=object) for key, values in columns.items()})
    frame[INDEX_COLUMN] = np.asarray(ids, dtype=np.int64)
    return frame


def _column_defaults(features: Any) -> dict[str, Any]:
    """Defaults for new shapes' feature values: empty strings / bytes, like a drawn shape."""
    return {key: b"" if key in ("xy", "holes") else "" for key in features if key != INDEX_COLUMN}


def add_annotation_set(
    viewer: napari.Viewer,
    annotation_set: AnnotationSet,
    *,
    mpp: Sequence[float] | None,
    rater: str | None = None,
    name: str | None = None,
    max_live_shapes: int | None = None,
    extent_wh: Sequence[float] | None = None,
    slide_path: str | None = None,
    slide_fingerprint: str | None = None,
    source_file: str | None = None,
) -> LargeAnnotationView:
    """Show ``annotation_set`` in ``viewer``: plain Shapes up to ``max_live_shapes`` annotations,
    else an overview raster plus editable Shapes for what is in view.

    Args:
        viewer: The napari viewer.
        annotation_set: Annotations in level-0 (x, y); large sets are edited in place.
        mpp: The slide's µm per level-0 pixel (x, y), or None when unknown.
        rater: Whose annotations (layer name), defaults to ``annotation_set.rater``.
        name: Layer name, defaults to the rater.
        max_live_shapes: Most annotations held by the Shapes layer at once; None for
            :func:`default_max_live_shapes`.
        extent_wh: The slide's level-0 (width, height); defaults to the annotations' extent.
        slide_path: Path of the slide, kept in the layer's metadata.
        slide_fingerprint: The slide's fingerprint, kept in the layers' metadata.
        source_file: The file the annotations were read from, kept in the metadata.

    Returns:
        The view; its ``annotation_set()`` is the full, edited set to save.
    """
    first = len(viewer.layers) == 0
    metadata = {"source_file": source_file, FINGERPRINT_KEY: slide_fingerprint}
    if slide_path is not None:
        metadata["slide_path"] = slide_path
    view = LargeAnnotationView(
        viewer,
        annotation_set,
        mpp=mpp,
        rater=rater,
        name=name,
        max_live_shapes=max_live_shapes,
        extent_wh=extent_wh,
        layer_metadata=metadata,
    )
    if first:
        viewer.reset_view()
    view.refresh()
    return view


def full_annotation_set(layer: Any) -> AnnotationSet:
    """Every annotation behind a Shapes layer (see :func:`annotation_set_of_layer`)."""
    return annotation_set_of_layer(layer)
