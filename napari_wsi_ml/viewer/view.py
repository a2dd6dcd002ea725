"""Open a slide and its annotation files in a napari viewer (``napari-wsi-ml view``)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_wsi_ml.viewer.slide_layer import FINGERPRINT_KEY, slide_layer_data

if TYPE_CHECKING:
    import napari

    from napari_wsi_ml.slide import Slide


def rater_from_filename(path: str | Path, slide_name: str) -> str:
    """The rater of ``<slide stem>.<rater>.xml`` (else the file's stem)."""
    stem = Path(path).stem
    prefix = f"{slide_name}."
    return stem[len(prefix) :] if stem.startswith(prefix) and len(stem) > len(prefix) else stem


def annotation_layer_for(slide: Slide, path: str | Path) -> tuple[Any, dict[str, Any], str]:
    """Read an annotation file and return its Shapes layer data on ``slide``.

    Raises:
        AnnotationFileError: The file cannot be read.
    """
    from napari_wsi_ml.annotations import read_annotations
    from napari_wsi_ml.viewer.annotation_layers import annotation_layer_data

    annotation_set = read_annotations(path)
    rater = annotation_set.rater or rater_from_filename(path, slide.name)
    return annotation_layer_data(
        annotation_set,
        mpp=slide.mpp,
        rater=rater,
        slide_path=str(slide.path),
        slide_fingerprint=slide.fingerprint,
        source_file=str(path),
    )


def view_layer_data(
    slide_path: str | Path, annotation_paths: Sequence[str | Path] = ()
) -> list[tuple[Any, dict[str, Any], str]]:
    """The slide's image layer data, then one Shapes layer per annotation file.

    Raises:
        SlideError: The slide cannot be opened.
        AnnotationFileError: An annotation file cannot be read.
    """
    from napari_wsi_ml.slide import open_slide

    slide = open_slide(slide_path)
    layers = [slide_layer_data(slide)]
    layers += [annotation_layer_for(slide, path) for path in annotation_paths]
    for _, kwargs, _ in layers:
        kwargs["metadata"].setdefault(FINGERPRINT_KEY, slide.fingerprint)
    return layers


def open_view(
    slide_path: str | Path, annotation_paths: Sequence[str | Path] = (), *, show: bool = True
) -> napari.Viewer:
    """A napari viewer showing the slide, its annotations and the Slide panel."""
    import napari
    from napari.utils.notifications import show_warning

    from napari_wsi_ml.viewer.demo import add_layer_data, dock_slide_panel
    from napari_wsi_ml.viewer.slide_layer import MPP_UNKNOWN_MESSAGE, show_scale_bar

    layer_data = view_layer_data(slide_path, annotation_paths)
    viewer = napari.Viewer(title=f"napari-wsi-ml — {Path(slide_path).name}", show=show)
    layers = add_layer_data(viewer, layer_data)
    show_scale_bar(viewer)
    dock_slide_panel(viewer)
    viewer.layers.selection.active = layers[0]
    if layers[0].metadata.get("mpp") is None:
        show_warning(f"{layers[0].name}: {MPP_UNKNOWN_MESSAGE}.")
    return viewer
