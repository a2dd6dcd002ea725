"""Geometry of annotations: spline areas, types, repairs and µm² areas."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import Polygon

from napari_wsi_ml.annotations import (
    Annotation,
    annotation_geometry,
    area_px2,
    area_um2,
    read_asap,
    valid_geometries,
    valid_geometry,
)
from napari_wsi_ml.annotations.spline import catmull_rom_closed
from tests.conftest import ANNOTATIONS_DIR


def _circle(n: int, r: float, cx: float = 500.0, cy: float = 300.0) -> np.ndarray:
    t = np.arange(n) / n * 2 * np.pi
    return np.c_[cx + r * np.cos(t), cy + r * np.sin(t)]


def test_spline_circle_area_close_to_pi_r2() -> None:
    spline = Annotation("c", "Spline", _circle(8, 200.0))
    polygon = Annotation("p", "Polygon", _circle(8, 200.0))
    circle = np.pi * 200.0**2
    assert area_px2(spline) == pytest.approx(circle, rel=0.015)
    assert abs(area_px2(spline) - circle) < abs(area_px2(polygon) - circle) / 5


def test_spline_passes_through_control_points() -> None:
    points = _circle(8, 50.0)
    curve = catmull_rom_closed(points, samples_per_segment=10)
    assert np.allclose(curve[::10], points)


def test_spline_area_of_real_file_matches_direct_computation() -> None:
    spline = read_asap(ANNOTATIONS_DIR / "asap" / "CMU-1_classification.xml").annotations[0]
    direct = Polygon(catmull_rom_closed(spline.coordinates)).area
    control_polygon = Polygon(spline.coordinates).area
    assert area_px2(spline) == pytest.approx(direct)
    assert area_px2(spline) != pytest.approx(control_polygon, rel=1e-4)


def test_types_to_geometry() -> None:
    assert annotation_geometry(Annotation("d", "Dot", [[1, 2]])).geom_type == "Point"
    assert annotation_geometry(Annotation("d", "Dot", [[1, 2], [3, 4]])).geom_type == "MultiPoint"
    assert (
        annotation_geometry(Annotation("s", "PointSet", [[1, 2], [3, 4]])).geom_type == "MultiPoint"
    )
    line = annotation_geometry(Annotation("m", "Measurement", [[0, 0], [3, 4]]))
    assert line.geom_type == "LineString" and line.length == 5
    rect = Annotation("r", "Rectangle", [[0, 0], [4, 0], [4, 2], [0, 2]])
    assert area_px2(rect) == 8
    holed = Annotation(
        "h",
        "Polygon",
        [[0, 0], [10, 0], [10, 10], [0, 10]],
        holes=[[[2, 2], [4, 2], [4, 4], [2, 4]]],
    )
    assert area_px2(holed) == 96


def test_repairs_are_reported() -> None:
    bowtie = Annotation("bow", "Polygon", [[0, 0], [10, 10], [10, 0], [0, 10]])
    line = Annotation("flat", "Polygon", [[0, 0], [1, 1]])
    good = Annotation("ok", "Polygon", [[0, 0], [1, 0], [0, 1]])
    geometries, repairs = valid_geometries([bowtie, line, good])
    assert [r.annotation for r in repairs] == ["bow", "flat"]
    assert "Self-intersection" in repairs[0].problem
    assert geometries[0].is_valid and geometries[0].area == pytest.approx(50)
    assert geometries[1].is_empty and geometries[2].area == 0.5
    assert valid_geometry(good)[1] is None


def test_area_um2_with_mpp() -> None:
    square = Annotation("s", "Polygon", [[0, 0], [100, 0], [100, 100], [0, 100]])
    assert area_um2(square, 0.5) == pytest.approx(2500.0)
    assert area_um2(square, (0.25, 0.5)) == pytest.approx(1250.0)
    assert area_um2(square, None) is None
    assert area_um2(Annotation("d", "Dot", [[1, 1]]), 0.5) == 0
