"""Tissue detection: a drawn slide with known truth, and real tiles class by class."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
import pytest
from shapely import Polygon
from shapely.affinity import scale, translate

from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.slide.tissue import mask_to_polygons, pen_mask, tissue_mask

TILES_DIR = Path(__file__).resolve().parents[1] / "data" / "tiles"


def ellipse(cx: float, cy: float, rx: float, ry: float) -> Polygon:
    circle = Polygon(
        [(np.cos(t), np.sin(t)) for t in np.linspace(0, 2 * np.pi, 256, endpoint=False)]
    )
    return translate(scale(circle, rx, ry, origin=(0, 0)), cx, cy)


@pytest.fixture(scope="module")
def drawn_slide(tmp_path_factory: pytest.TempPathFactory, write_slide) -> tuple[Path, object]:
    """6000 x 4000 px at 1 µm/px: two tissue blobs (one with a hole), dust, a blue pen stroke."""
    width, height = 6000, 4000
    truth = (
        ellipse(1800, 2000, 1200, 1500)
        .difference(ellipse(1800, 2000, 400, 500))
        .union(ellipse(4500, 1700, 900, 700))
    )
    rng = np.random.default_rng(3)
    tissue = np.zeros((height, width), np.uint8)
    for polygon in getattr(truth, "geoms", [truth]):
        cv2.fillPoly(tissue, [np.round(np.asarray(polygon.exterior.coords)).astype(np.int32)], 1)
        for hole in polygon.interiors:
            cv2.fillPoly(tissue, [np.round(np.asarray(hole.coords)).astype(np.int32)], 0)
    # H&E grain varies over ~4 px: drawn at quarter size and enlarged (uint8 throughout).
    grain = rng.normal(0, 20, (height // 4, width // 4, 1)).astype(np.float32)
    he = np.array([215, 140, 185], np.float32) + grain * np.array([1, 1.2, 0.6], np.float32)
    he = cv2.resize(np.clip(he, 0, 255).astype(np.uint8), (width, height))
    glass = np.clip(rng.normal(243, 2, (500, 500)), 0, 255).astype(np.uint8)  # glass noise
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[:] = np.tile(glass, (height // 500, width // 500))[..., None]
    np.copyto(rgb, he, where=tissue[..., None].astype(bool))
    for _ in range(40):  # faint dust specks on the background
        x, y = int(rng.integers(0, width)), int(rng.integers(3300, height))
        cv2.circle(rgb, (x, y), int(rng.integers(3, 12)), (185, 180, 175), -1)
    cv2.line(rgb, (3300, 3600), (5800, 2900), (40, 60, 170), 60)  # blue marker on glass
    path = tmp_path_factory.mktemp("tissue") / "drawn.svs"
    write_slide(path, rgb, (1, 4, 16), mpp=1.0)
    return path, truth


def test_tissue_polygons_match_truth(drawn_slide: tuple[Path, Polygon]) -> None:
    path, truth = drawn_slide
    with open_slide(path) as slide:
        assert slide.mpp == pytest.approx((1.0, 1.0))
        found = slide.tissue_polygons()
    iou = found.intersection(truth).area / found.union(truth).area
    assert iou >= 0.9, iou
    assert len(getattr(found, "geoms", [found])) == 2  # dust and pen dropped
    holes = [ring for p in getattr(found, "geoms", [found]) for ring in p.interiors]
    assert len(holes) == 1
    assert Polygon(holes[0]).area == pytest.approx(np.pi * 400 * 500, rel=0.1)
    assert found.contains(ellipse(1800, 2000, 1000, 1300).difference(ellipse(1800, 2000, 600, 700)))


def test_min_area_drops_the_small_blob(drawn_slide: tuple[Path, Polygon]) -> None:
    path, _ = drawn_slide
    with open_slide(path) as slide:
        found = slide.tissue_polygons(min_area_um2=3.0e6)  # the right blob is ~2.0e6 µm²
    assert found.geom_type == "Polygon" and found.centroid.x < 3000


def test_mask_to_polygons_scales_by_downsample() -> None:
    mask = np.zeros((40, 60), bool)
    mask[10:30, 10:50] = True
    mask[15:25, 20:30] = False
    polygon = mask_to_polygons(mask, downsample=(4.0, 2.0))
    minx, miny, maxx, maxy = polygon.bounds
    assert (minx, miny, maxx, maxy) == pytest.approx((42, 21, 198, 59))
    assert len(polygon.interiors) == 1
    assert polygon.area == pytest.approx((39 * 19 - 11 * 11) * 8, rel=0.02)


def _tiles() -> list[tuple[str, str, str, np.ndarray]]:
    out = []
    with (TILES_DIR / "labels.csv").open() as handle:
        for row in csv.DictReader(handle):
            image = cv2.imread(str(TILES_DIR / row["file"]), cv2.IMREAD_UNCHANGED)
            image = cv2.cvtColor(
                image, cv2.COLOR_BGRA2RGBA if image.shape[2] == 4 else cv2.COLOR_BGR2RGB
            )
            out.append((row["file"], row["label_from_filename"], row["pen_or_artifact"], image))
    return out


def test_real_tiles_class_by_class() -> None:
    fractions = {
        name: (label, pen, tissue_mask(img, min_object_px=50).mean())
        for name, label, pen, img in _tiles()
    }
    for name, (label, pen, fraction) in fractions.items():
        if label == "tissue":
            assert fraction > 0.4, (name, fraction)
        if label.startswith("almost_white") or (
            label == "no_tissue" and pen in ("", "line", "green")
        ):
            assert fraction < 0.03, (name, fraction)
    nuclei = [f for (label, pen, f) in fractions.values() if "nuclei" in label and not pen]
    assert np.median(nuclei) > 0.4


def test_pen_is_flagged_and_excluded() -> None:
    for name, _, pen, image in _tiles():
        if pen in ("green", "red") and name.startswith("no-tissue"):
            ink = pen_mask(image)
            assert ink.mean() > 0.3, name
            assert not (tissue_mask(image) & ink).any()
