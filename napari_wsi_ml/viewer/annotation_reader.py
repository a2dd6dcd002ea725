"""npe2 reader: ASAP XML and GeoJSON annotations, opened onto the slide shown in the viewer.

The layer takes the open slide's scale (found with ``napari.current_viewer()``), so the shapes land
on the tissue; with no slide open it is drawn in pixels (scale 1) and a warning says so. A file too
large for one Shapes layer is added to that viewer directly, as an overview and a live window of
the annotations in view (see :mod:`napari_wsi_ml.viewer.large_annotations`), and the reader
returns napari's "nothing more to add" answer. Files that
are not annotations (a ``.json`` that is not GeoJSON, an XML that is not ASAP) are declined
(``None``) after reading only their first bytes. A malformed annotation file gives a notification
naming the file and the line, and adds nothing: the viewer and its other layers are untouched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_wsi_ml.errors import AnnotationFileError
from napari_wsi_ml.sessions.blinding import (
    BLINDED_RATER_KEY,
    BlindedModeRefusal,
    blinded_refusal,
)
from napari_wsi_ml.sessions.naming import rater_from_filename
from napari_wsi_ml.viewer.annotation_layers import LayerDataTuple, annotation_layer_data
from napari_wsi_ml.viewer.slide_layer import FINGERPRINT_KEY, active_slide_layer

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer, Shapes

    from napari_wsi_ml.annotations.model import AnnotationSet

SNIFF_BYTES = 65536
NO_SLIDE_WARNING = "No slide is open: {name} is drawn in pixels (scale 1); open its slide first."
NULL_LAYER: list[tuple[None]] = [(None,)]  # napari's "nothing to add" answer


def looks_like_annotations(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is worth reading as annotations, from its extension and first bytes."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".xml", ".geojson", ".json") or not path.is_file():
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(SNIFF_BYTES)
    except OSError:
        return False
    text = head.decode("utf-8", errors="ignore").lstrip("\ufeff \t\r\n")
    if suffix == ".xml":
        return "<ASAP_Annotations" in text
    if suffix == ".geojson":
        return True
    return text[:1] in "{[" and '"Feature' in text


def get_annotation_reader(path: str | list[str]) -> Callable[..., list] | None:
    """npe2 reader contribution: a reader for ASAP XML / GeoJSON files, else ``None``."""
    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    if not paths or not all(looks_like_annotations(p) for p in paths):
        return None
    return read_annotation_layers


def read_annotation_layers(path: str | list[str]) -> list:
    """Read annotation files onto the open slide; one Shapes layer per file.

    A file of more than :func:`~napari_wsi_ml.viewer.large_annotations.default_max_live_shapes`
    annotations is added to the current viewer here, as an overview and a live window
    (:func:`~napari_wsi_ml.viewer.large_annotations.add_annotation_set`), and returns no layer
    data; smaller files return ordinary layer data. A file that cannot be read, or that blinded
    mode refuses, is reported in a notification and adds no layer.
    """
    from napari.utils.notifications import show_error, show_warning

    from napari_wsi_ml.viewer import large_annotations

    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    viewer = _current_viewer()
    slide = active_slide_layer(viewer) if viewer is not None else None
    limit = large_annotations.default_max_live_shapes()
    layers: list[Any] = []
    added = 0
    for one in paths:
        try:
            annotation_set, options = read_annotation_file(one, slide)
        except AnnotationFileError as error:
            show_error(str(error))
            continue
        except BlindedModeRefusal as error:
            show_warning(str(error))
            continue
        if viewer is not None and len(annotation_set) > limit:
            large_annotations.add_annotation_set(
                viewer, annotation_set, max_live_shapes=limit, **options
            )
            added += 1
        else:
            options.pop("extent_wh")
            layers.append(annotation_layer_data(annotation_set, **options))
    if slide is None and (layers or added):
        show_warning(NO_SLIDE_WARNING.format(name=", ".join(Path(p).name for p in paths)))
    return layers or NULL_LAYER


def open_annotation_file(
    viewer: napari.Viewer,
    path: str | os.PathLike[str],
    *,
    max_live_shapes: int | None = None,
) -> Shapes:
    """Open an annotation file onto the viewer's active slide, however many annotations it holds.

    Returns:
        The rater's Shapes layer (a live window over an overview when the file is large).

    Raises:
        AnnotationFileError: The file is malformed (the message names the file and the line).
        BlindedModeRefusal: Blinded mode is on and the file may hold another rater's work.
    """
    from napari_wsi_ml.viewer.large_annotations import add_annotation_set

    annotation_set, options = read_annotation_file(path, active_slide_layer(viewer))
    view = add_annotation_set(viewer, annotation_set, max_live_shapes=max_live_shapes, **options)
    return view.shapes_layer


def read_annotation_file(
    path: str | os.PathLike[str], slide: Layer | None
) -> tuple[AnnotationSet, dict[str, Any]]:
    """One annotation file for ``slide`` (a slide image layer, or None), and how to show it.

    Returns:
        The annotations, and the keyword arguments (``mpp``, ``rater``, ``slide_path``,
        ``slide_fingerprint``, ``source_file``, ``extent_wh``) of
        :func:`~napari_wsi_ml.viewer.large_annotations.add_annotation_set`; all but
        ``extent_wh`` are also those of :func:`annotation_layer_data`.

    Raises:
        AnnotationFileError: The file is malformed (the message names the file and the line).
        BlindedModeRefusal: Blinded mode is on and the file may hold another rater's work.
    """
    from napari_wsi_ml.annotations import read_annotations

    path = Path(path)
    metadata = dict(slide.metadata) if slide is not None else {}
    slide_name = metadata.get("slide_name")
    refusal = blinded_refusal(path, slide_name, metadata.get(BLINDED_RATER_KEY))
    if refusal:
        raise BlindedModeRefusal(refusal)
    annotation_set = read_annotations(path)
    rater = annotation_set.rater or rater_from_filename(path, slide_name) or path.stem
    return annotation_set, {
        "mpp": metadata.get("mpp"),
        "rater": rater,
        "slide_path": metadata.get("slide_path"),
        "slide_fingerprint": metadata.get(FINGERPRINT_KEY),
        "source_file": str(path),
        "extent_wh": slide_extent(slide),
    }


def annotation_file_layer_data(path: str | os.PathLike[str], slide: Layer | None) -> LayerDataTuple:
    """Layer data for one annotation file on ``slide`` (a slide image layer, or None).

    Raises:
        AnnotationFileError: The file is malformed (the message names the file and the line).
        BlindedModeRefusal: Blinded mode is on and the file may hold another rater's work.
    """
    annotation_set, options = read_annotation_file(path, slide)
    options.pop("extent_wh")
    return annotation_layer_data(annotation_set, **options)


def slide_extent(slide: Layer | None) -> tuple[float, float] | None:
    """Level-0 ``(width, height)`` of a slide layer's slide, or None when unknown."""
    opened = (slide.metadata if slide is not None else {}).get("slide")
    dimensions = getattr(opened, "level_dimensions", None)
    return (float(dimensions[0][0]), float(dimensions[0][1])) if dimensions else None


def _current_viewer() -> napari.Viewer | None:
    import napari

    return napari.current_viewer()
