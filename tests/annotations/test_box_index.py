"""The box index and rasteriser: queries against brute force, pixels where polygons are."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from napari_wsi_ml.annotations.model import Annotation, AnnotationSet
from napari_wsi_ml.annotations.rasterize import BoxIndex, draw, pack, raster_size


def square(x0: float, y0: float, side: float) -> np.ndarray:
    return np.array([[x0, y0], [x0 + side, y0], [x0 + side, y0 + side], [x0, y0 + side]])


def random_set(n: int, seed: int = 1) -> AnnotationSet:
    rng = np.random.default_rng(seed)
    annotations = []
    for i in range(n):
        centre = rng.uniform(0, 10_000, 2)
        points = centre + rng.normal(0, 40, (int(rng.integers(3, 12)), 2))
        annotations.append(Annotation(f"a{i}", "Polygon", points, color="#FF0000"))
    return AnnotationSet(annotations=annotations)


def test_pack_keeps_every_vertex_and_bounds() -> None:
    annotation_set = random_set(200)
    packed = pack(annotation_set)
    for i, annotation in enumerate(annotation_set):
        own = packed.vertices[packed.offsets[i] : packed.offsets[i + 1]]
        np.testing.assert_array_equal(own, annotation.coordinates)
        np.testing.assert_array_equal(packed.bounds[i, :2], annotation.coordinates.min(axis=0))
        np.testing.assert_array_equal(packed.bounds[i, 2:], annotation.coordinates.max(axis=0))


@pytest.mark.parametrize("box", [(0, 0, 500, 500), (2500, 4000, 3100, 9000), (-50, -50, -1, -1)])
def test_query_matches_brute_force(box: tuple[float, float, float, float]) -> None:
    annotation_set = random_set(2000)
    index = BoxIndex(annotation_set)
    expected = [
        i
        for i, a in enumerate(annotation_set)
        if a.coordinates[:, 0].max() >= box[0]
        and a.coordinates[:, 0].min() <= box[2]
        and a.coordinates[:, 1].max() >= box[1]
        and a.coordinates[:, 1].min() <= box[3]
    ]
    assert index.query(box).tolist() == expected


def test_empty_annotations_are_never_returned() -> None:
    annotation_set = AnnotationSet(
        annotations=[
            Annotation("empty", "Polygon", np.zeros((0, 2))),
            Annotation("a", "Polygon", square(10, 10, 5)),
        ]
    )
    assert BoxIndex(annotation_set).query((0, 0, 100, 100)).tolist() == [1]


def test_raster_pixels_cover_the_polygon() -> None:
    # A 16 x 16 level-0 square at (102, 62), drawn at downsample 10 from origin (50, 20): in
    # raster pixels it spans u in [4.7, 6.3], v in [3.7, 5.3] (pixel centres at integers), so
    # exactly pixels u = 5..6, v = 4..5 have their centre inside.
    annotation_set = AnnotationSet(
        annotations=[Annotation("r", "Polygon", square(102, 62, 16), color="#00FF00")]
    )
    index = BoxIndex(annotation_set)
    where = {"origin_xy": (50, 20), "downsample": 10, "size_wh": (20, 12)}
    fill = draw(index, **where, outline=False)
    expected = np.zeros((12, 20), dtype=bool)
    expected[4:6, 5:7] = True
    np.testing.assert_array_equal(fill[..., 3] > 0, expected)
    assert tuple(fill[4, 5]) == (0, 255, 0, 120)
    outlined = draw(index, **where)
    assert np.array_equal(outlined[..., 3] > 0, expected)
    assert tuple(outlined[4, 5]) == (0, 255, 0, 255)


def test_raster_of_a_disc_is_centred_where_the_disc_is() -> None:
    # Every pixel whose centre lies inside the polygon is drawn; cv2 also draws the pixels its
    # edges cross (never more than a pixel outside), and the drawn area is centred on the disc.
    angles = np.linspace(0, 2 * np.pi, 90, endpoint=False)
    centre, radius, ds, origin = np.array([3217.3, 1841.9]), 400.0, 7.3, (1000.0, 500.0)
    ring = centre + radius * np.c_[np.cos(angles), np.sin(angles)]
    polygon = shapely.Polygon(ring)
    index = BoxIndex(AnnotationSet(annotations=[Annotation("c", "Polygon", ring)]))
    fill = draw(index, origin_xy=origin, downsample=ds, size_wh=(500, 400), outline=False)
    rows, cols = np.mgrid[0:400, 0:500]
    xs, ys = (cols + 0.5) * ds + origin[0], (rows + 0.5) * ds + origin[1]
    inside = shapely.contains_xy(polygon, xs, ys)
    drawn = fill[..., 3] > 0
    assert not np.any(inside & ~drawn)
    extra = drawn & ~inside
    assert np.all(shapely.distance(polygon, shapely.points(xs[extra], ys[extra])) <= ds)
    drawn_xy = np.argwhere(drawn)[:, ::-1].mean(axis=0)
    np.testing.assert_allclose(drawn_xy, (centre - origin) / ds - 0.5, atol=0.2)


def test_overlapping_polygons_fill_their_union() -> None:
    # cv2 XORs overlaps of polygons filled in one call; overlapping ones must still be filled.
    annotation_set = AnnotationSet(
        annotations=[
            Annotation("a", "Polygon", square(10, 10, 50), color="#0000FF"),
            Annotation("b", "Polygon", square(30, 30, 50), color="#0000FF"),
        ]
    )
    raster = draw(BoxIndex(annotation_set), origin_xy=(0, 0), downsample=1, size_wh=(100, 100))
    assert raster[45, 45, 3] > 0  # inside both
    assert raster[15, 15, 3] > 0 and raster[75, 75, 3] > 0
    assert raster[5, 5, 3] == 0 and raster[15, 75, 3] == 0


def test_dots_lines_and_colours() -> None:
    annotation_set = AnnotationSet(
        annotations=[
            Annotation("d", "Dot", [[50.5, 20.5]], color="#FF8000"),
            Annotation("m", "Measurement", [[0.5, 80.5], [99.5, 80.5]], color="#123456"),
        ]
    )
    raster = draw(BoxIndex(annotation_set), origin_xy=(0, 0), downsample=1, size_wh=(100, 100))
    assert tuple(raster[20, 50]) == (255, 128, 0, 255)
    assert tuple(raster[80, 10]) == (0x12, 0x34, 0x56, 255)
    assert raster[60, 50, 3] == 0  # a measurement is a line, not an area


def test_raster_size_rounds_up() -> None:
    assert raster_size((1000, 999), 10) == (100, 100)
    assert raster_size((1001, 1), 10) == (101, 1)
