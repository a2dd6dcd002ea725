"""Camera helpers of the large-annotation tests: point the viewer at a level-0 region."""

from __future__ import annotations

from collections.abc import Sequence

from napari_wsi_ml.viewer.large_annotations import LargeAnnotationView, camera_of


def look_at(
    viewer,
    view: LargeAnnotationView,
    x0: float,
    y0: float,
    width: float,
    mpp: Sequence[float] = (0.5, 0.5),
) -> tuple[float, float, float, float]:
    """Show level-0 ``width`` pixels across from (x0, y0), refresh the view; the level-0 box."""
    height_px, width_px = viewer.canvas.size
    camera_of(viewer).zoom = width_px / (width * mpp[0])
    height = width * height_px / width_px
    camera_of(viewer).center = ((y0 + height / 2) * mpp[1], (x0 + width / 2) * mpp[0])
    view.refresh()
    return (x0, y0, x0 + width, y0 + height)
