"""npe2 reader: ASAP XML and GeoJSON annotations, opened onto the slide shown in the viewer.

The layer takes the open slide's scale (found with ``napari.current_viewer()``), so the shapes land
on the tissue; with no slide open it is drawn in pixels (scale 1) and a warning says so. Files that
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
    from napari.layers import Layer

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

    A file that cannot be read, or that blinded mode refuses, is reported in a notification and
    adds no layer.
    """
    from napari.utils.notifications import show_error, show_warning

    paths = [path] if isinstance(path, str | os.PathLike) else list(path)
    slide = _open_slide_layer()
    layers: list[Any] = []
    for one in paths:
        try:
            layers.append(annotation_file_layer_data(one, slide))
        except AnnotationFileError as error:
            show_error(str(error))
        except BlindedModeRefusal as error:
            show_warning(str(error))
    if slide is None and layers:
        show_warning(NO_SLIDE_WARNING.format(name=", ".join(Path(p).name for p in paths)))
    return layers or NULL_LAYER


def annotation_file_layer_data(path: str | os.PathLike[str], slide: Layer | None) -> LayerDataTuple:
    """Layer data for one annotation file on ``slide`` (a slide image layer, or None).

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
    return annotation_layer_data(
        annotation_set,
        mpp=metadata.get("mpp"),
        rater=rater,
        slide_path=metadata.get("slide_path"),
        slide_fingerprint=metadata.get(FINGERPRINT_KEY),
        source_file=str(path),
    )


def _open_slide_layer() -> Layer | None:
    """The slide image layer of the current viewer, if any."""
    import napari

    viewer = napari.current_viewer()
    return None if viewer is None else active_slide_layer(viewer)
