"""npe2 reader for whole-slide images (every format OpenSlide opens).

``get_slide_reader(path)`` answers ``None`` for what it cannot read and never raises. The reader
it returns opens the slide lazily (only a low-resolution level is read when napari adds the
layer). A slide that cannot be opened becomes an error notification naming the file and the
reason, and no layer: the viewer and its other layers are untouched.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari.utils.notifications import show_error, show_warning

from napari_wsi_ml.errors import SlideError
from napari_wsi_ml.viewer.slide_layer import MPP_UNKNOWN_MESSAGE, slide_layer_data

SLIDE_SUFFIXES = frozenset(
    {".svs", ".tif", ".tiff", ".ndpi", ".vms", ".vmu", ".scn", ".mrxs", ".svslide", ".bif", ".dcm"}
)
NO_LAYERS = [(None,)]  # npe2's "read, but nothing to show" sentinel

LayerDataTuple = tuple[Any, dict[str, Any], str]


def get_slide_reader(path: str | list[str]) -> Callable[..., list] | None:
    """The reader function for ``path`` if it is a slide file we may open, else ``None``."""
    if isinstance(path, list):
        if len(path) != 1:
            return None
        path = path[0]
    if not isinstance(path, str | os.PathLike):
        return None
    if Path(path).suffix.lower() not in SLIDE_SUFFIXES:
        return None
    return read_slide


def open_slide_layer_data(path: str | os.PathLike[str]) -> LayerDataTuple:
    """Open ``path`` and return its image layer data; raises :class:`SlideError`."""
    from napari_wsi_ml.slide import open_slide

    slide = open_slide(path)
    if slide.mpp is None:
        show_warning(f"{slide.name}: {MPP_UNKNOWN_MESSAGE}.")
    return slide_layer_data(slide)


def read_slide(path: str | list[str], **_: Any) -> list:
    """npe2 reader function: one multiscale image layer, or an error notification."""
    if isinstance(path, list):
        path = path[0]
    try:
        return [open_slide_layer_data(path)]
    except SlideError as error:
        show_error(str(error))
    except Exception as error:  # an unexpected decoder failure must not take napari down
        show_error(f"{path}: cannot open this slide ({type(error).__name__}: {error}).")
    return NO_LAYERS
