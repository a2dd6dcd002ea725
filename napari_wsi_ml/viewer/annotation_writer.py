"""npe2 writers: a Shapes layer of annotations saved as ASAP XML or GeoJSON (atomically).

A layer that is a live window over a very large set saves the whole set, edits included
(:func:`~napari_wsi_ml.viewer.annotation_layers.annotation_set_of_layer`).
"""

from __future__ import annotations

from typing import Any

from napari_wsi_ml.viewer.annotation_layers import annotation_set_of_layer


def write_asap_xml(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Save one Shapes layer as ASAP XML at ``path``; returns ``[path]``.

    Raises:
        SaveError: The file could not be written; a previous file at ``path`` is intact.
    """
    from napari_wsi_ml.annotations import write_asap

    write_asap(annotation_set_of_layer(data, attributes), path)
    return [path]


def write_geojson(path: str, data: Any, attributes: dict[str, Any]) -> list[str]:
    """Save one Shapes layer as QuPath GeoJSON at ``path``; returns ``[path]``.

    Splines are written as the polygons they draw, as GeoJSON has no splines.

    Raises:
        SaveError: The file could not be written; a previous file at ``path`` is intact.
    """
    from napari_wsi_ml.annotations import write_geojson as write_geojson_file

    write_geojson_file(annotation_set_of_layer(data, attributes), path)
    return [path]
