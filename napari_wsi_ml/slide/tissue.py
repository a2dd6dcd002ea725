"""Tissue detection on low-resolution RGB images: masks, pen marks, level-0 polygons.

The functions on arrays (:func:`tissue_mask`, :func:`pen_mask`, :func:`mask_to_polygons`) are
usable on any RGB image; :func:`slide_tissue_polygons` applies them to a slide at about
8 µm/px (or at most ~2k px a side when the slide's mpp is unknown).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import cv2
import numpy as np
from shapely import MultiPolygon, Polygon, make_valid
from shapely.geometry.base import BaseGeometry
from skimage.filters import threshold_otsu

if TYPE_CHECKING:
    from napari_wsi_ml.slide.reader import Slide

WHITE_THRESHOLD = 220
"""A pixel is background when all three channels exceed this."""


def _as_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] not in (3, 4):
        raise ValueError(f"expected an (H, W, 3) or (H, W, 4) image, got shape {image.shape}")
    if image.shape[2] == 4:  # composite RGBA on white
        alpha = image[..., 3:4].astype(np.float32) / 255
        return np.round(image[..., :3] * alpha + 255 * (1 - alpha)).astype(np.uint8)
    return image.astype(np.uint8, copy=False)


def pen_mask(rgb: np.ndarray) -> np.ndarray:
    """Pixels of blue, green, red or black marker ink (boolean ``(H, W)``).

    Inks are told from H&E and IHC stains by hue and saturation (OpenCV HSV, hue 0-179):
    blue 95-130 with saturation > 0.3, green 35-95 with saturation > 0.15, red within 8 of
    0/180 with saturation > 0.45, black value < 0.2 (darker than any nucleus).
    """
    hsv = cv2.cvtColor(_as_rgb(rgb), cv2.COLOR_RGB2HSV)
    hue = hsv[..., 0]
    sat = hsv[..., 1].astype(np.float32) / 255
    val = hsv[..., 2].astype(np.float32) / 255
    blue = (hue >= 95) & (hue <= 130) & (sat > 0.3) & (val < 0.9)
    green = (hue >= 35) & (hue < 95) & (sat > 0.15)
    red = ((hue <= 8) | (hue >= 172)) & (sat > 0.45)
    black = val < 0.2
    return blue | green | red | black


def tissue_mask(
    rgb: np.ndarray,
    *,
    white_threshold: int = WHITE_THRESHOLD,
    min_saturation: float = 0.05,
    max_saturation_threshold: float = 0.12,
    remove_pen: bool = True,
    min_object_px: int = 0,
    max_hole_px: int = 0,
) -> np.ndarray:
    """Boolean tissue mask of an RGB (or RGBA) image.

    Background is every pixel whose three channels exceed ``white_threshold``, or whose
    saturation is below an Otsu threshold (kept between ``min_saturation`` and
    ``max_saturation_threshold``, so an all-tissue image is not split in two). Marker ink is
    removed (see :func:`pen_mask`), then objects smaller than ``min_object_px`` (dust) and holes
    smaller than ``max_hole_px`` are dropped.
    """
    rgb = _as_rgb(rgb)
    not_white = ~np.all(rgb > white_threshold, axis=2)
    sat = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)[..., 1].astype(np.float32) / 255
    threshold = min_saturation
    if sat.size > 1 and np.ptp(sat) > 0:
        threshold = float(np.clip(threshold_otsu(sat), min_saturation, max_saturation_threshold))
    mask = not_white & (sat >= threshold)
    if remove_pen:
        ink = pen_mask(rgb)
        ink = cv2.dilate(ink.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        mask &= ~ink
    if min_object_px > 0:
        mask = _drop_small_components(mask, min_object_px)
    if max_hole_px > 0:
        mask = ~_drop_small_components(~mask, max_hole_px)
    return mask


def _drop_small_components(mask: np.ndarray, min_px: int) -> np.ndarray:
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), 8)
    keep = np.zeros(count, dtype=bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_px
    return keep[labels]


def mask_to_polygons(
    mask: np.ndarray,
    *,
    downsample: tuple[float, float] = (1.0, 1.0),
    min_area: float = 0.0,
) -> BaseGeometry:
    """Polygons with holes of a boolean mask, in level-0 ``(x, y)``.

    Args:
        mask: Boolean ``(H, W)`` mask at some level; pixel ``(col, row)`` covers
            ``[col, col + 1) x [row, row + 1)`` there.
        downsample: Level-0 pixels per mask pixel, ``(x, y)``.
        min_area: Outer rings (and holes) with a smaller level-0 area are dropped.

    Returns:
        A shapely Polygon or MultiPolygon (empty when nothing is found).
    """
    contours, hierarchy = cv2.findContours(
        np.ascontiguousarray(mask, dtype=np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE
    )
    if hierarchy is None:
        return MultiPolygon()
    sx, sy = downsample

    def ring(contour: np.ndarray) -> np.ndarray:
        points = contour[:, 0, :].astype(np.float64) + 0.5  # pixel centres
        return points * (sx, sy)

    polygons = []
    for index, (_, _, first_child, parent) in enumerate(hierarchy[0]):
        if parent != -1 or len(contours[index]) < 3:
            continue
        holes = []
        child = first_child
        while child != -1:
            if len(contours[child]) >= 3:
                hole = Polygon(ring(contours[child]))
                if hole.area >= min_area:
                    holes.append(hole.exterior.coords)
            child = hierarchy[0][child][0]
        polygon = make_valid(Polygon(ring(contours[index]), holes))
        if polygon.area >= min_area and not polygon.is_empty:
            polygons.append(polygon)
    if not polygons:
        return MultiPolygon()
    merged = make_valid(MultiPolygon(_flatten(polygons)))
    return (
        merged.geoms[0] if isinstance(merged, MultiPolygon) and len(merged.geoms) == 1 else merged
    )


def _flatten(geometries: list[BaseGeometry]) -> list[Polygon]:
    out: list[Polygon] = []
    for geometry in geometries:
        if isinstance(geometry, Polygon):
            out.append(geometry)
        elif hasattr(geometry, "geoms"):
            out.extend(_flatten(list(geometry.geoms)))
    return [p for p in out if isinstance(p, Polygon) and not p.is_empty]


def slide_tissue_polygons(
    slide: Slide,
    *,
    target_mpp: float = 8.0,
    max_side_px: int = 2048,
    min_area_um2: float = 20_000.0,
    min_area_px: float | None = None,
    remove_pen: bool = True,
) -> BaseGeometry:
    """Tissue of a slide as level-0 polygons with holes, computed on a low-resolution image.

    Args:
        slide: The slide.
        target_mpp: Resolution to detect at, µm/px (used when the slide knows its mpp).
        max_side_px: Longest side of the detection image (used when mpp is unknown, and as
            an upper bound).
        min_area_um2: Smallest tissue piece (and hole) kept, µm² (when mpp is known).
        min_area_px: Smallest piece kept in level-0 pixels²; overrides ``min_area_um2``.
        remove_pen: Exclude marker ink.
    """
    width, height = slide.level_dimensions[0]
    longest = max(width, height)
    side = max_side_px
    if slide.mpp is not None:
        side = min(side, max(64, round(longest * min(slide.mpp) / target_mpp)))
    image = slide.thumbnail(min(side, longest))
    sx, sy = width / image.shape[1], height / image.shape[0]
    if min_area_px is None:
        mpp = slide.mpp or (1.0, 1.0)
        min_area_px = (
            min_area_um2 / (mpp[0] * mpp[1]) if slide.mpp is not None else 0.0005 * width * height
        )
    min_px = max(1, round(min_area_px / (sx * sy)))
    mask = tissue_mask(image, remove_pen=remove_pen, min_object_px=min_px, max_hole_px=min_px)
    return mask_to_polygons(mask, downsample=(sx, sy), min_area=min_area_px)
