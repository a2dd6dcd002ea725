"""The one place where level-0 ``(x, y)`` coordinates meet napari's ``(row, col)``.

Conventions:
    * At every API boundary a point is in level-0 pixels, ``(x, y)``, continuous: the pixel with
      index ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)`` (as in ASAP and OpenSlide).
    * napari layers of one slide share one ``scale`` of ``(mpp_y, mpp_x)`` µm per level-0 pixel
      (1.0 when the slide's mpp is unknown), so world coordinates are micrometres.
    * napari puts the centre of image pixel ``k`` at data coordinate ``k``. Image layers are
      therefore translated by half a level-0 pixel, so that world = continuous level-0 × mpp
      holds for images and shapes alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def xy_to_rowcol(xy: np.ndarray) -> np.ndarray:
    """Convert level-0 ``(x, y)`` points of shape (N, 2) to napari data ``(row, col)``."""
    points = np.asarray(xy, dtype=np.float64)
    return points[..., ::-1].copy()


def rowcol_to_xy(rowcol: np.ndarray) -> np.ndarray:
    """Convert napari data ``(row, col)`` points of shape (N, 2) to level-0 ``(x, y)``."""
    points = np.asarray(rowcol, dtype=np.float64)
    return points[..., ::-1].copy()


def layer_scale(mpp: Sequence[float] | None) -> tuple[float, float]:
    """napari ``scale`` ``(row, col)`` for a slide with ``mpp`` ``(x, y)`` µm/px, or unknown."""
    if mpp is None:
        return (1.0, 1.0)
    return (float(mpp[1]), float(mpp[0]))


def image_translate(mpp: Sequence[float] | None) -> tuple[float, float]:
    """napari ``translate`` of a level-0 image layer: half a pixel, in world units."""
    scale_row, scale_col = layer_scale(mpp)
    return (0.5 * scale_row, 0.5 * scale_col)
