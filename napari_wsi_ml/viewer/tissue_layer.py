"""The tissue outline of a slide (:meth:`Slide.tissue_polygons`) as a napari Shapes layer."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from napari_wsi_ml.coords import layer_scale, xy_to_rowcol
from napari_wsi_ml.viewer.slide_layer import KIND_KEY, layer_units, slide_metadata

if TYPE_CHECKING:
    from shapely.geometry.base import BaseGeometry

    from napari_wsi_ml.slide import Slide

TISSUE_KIND = "tissue"
TISSUE_COLOR = "#00c853"
EDGE_FRACTION = 1 / 1000  # outline width as a fraction of the slide width: visible zoomed out


def polygon_rings_xy(geometry: BaseGeometry) -> list[np.ndarray]:
    """Exterior and interior rings (level-0 ``(x, y)``, open) of a (multi)polygon."""
    polygons = getattr(geometry, "geoms", [geometry])
    rings: list[np.ndarray] = []
    for polygon in polygons:
        if polygon.is_empty:
            continue
        for ring in (polygon.exterior, *polygon.interiors):
            coords = np.asarray(ring.coords, dtype=np.float64)[:-1]
            if len(coords) >= 3:
                rings.append(coords)
    return rings


def tissue_layer_data(
    slide: Slide, geometry: BaseGeometry | None = None
) -> tuple[list[np.ndarray], dict[str, Any], str]:
    """Shapes layer data outlining the slide's tissue (holes drawn as their own outlines).

    Args:
        slide: The slide; its scale places the outlines on the tissue.
        geometry: Tissue polygons in level-0 ``(x, y)``; computed with
            ``slide.tissue_polygons()`` when omitted.
    """
    geometry = slide.tissue_polygons() if geometry is None else geometry
    rings = [xy_to_rowcol(ring) for ring in polygon_rings_xy(geometry)]
    kwargs = {
        "name": f"{slide.name} tissue",
        "shape_type": "polygon",
        "edge_color": TISSUE_COLOR,
        "face_color": "transparent",
        "edge_width": max(2.0, slide.level_dimensions[0][0] * EDGE_FRACTION),
        "scale": layer_scale(slide.mpp),
        "units": layer_units(slide.mpp),
        "metadata": {**slide_metadata(slide), KIND_KEY: TISSUE_KIND, "area_px": geometry.area},
    }
    return rings, kwargs, "shapes"
