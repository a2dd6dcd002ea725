"""The rasteriser: pixels where polygons are, box queries, overlaps filled, threads agree."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from napari_wsi_ml.annotations import rasterize as fast
from napari_wsi_ml.annotations.colors import hex_to_rgb
from napari_wsi_ml.annotations.model import Annotation, AnnotationSet
from napari_wsi_ml.annotations.rasterize import BoxIndex, _batchable, draw, pack

TYPES = ["Polygon"] * 6 + ["Rectangle", "Spline", "Dot", "PointSet", "Measurement"]
COLORS = ["#FF0000", "#00c000", "#00C000", "#0000FF"]  # two spellings of one colour


def mixed_set(n: int = 1500, seed: int = 3) -> AnnotationSet:
    """Overlapping polygons of all sizes (some leaving the raster), lines, dots, colours."""
    rng = np.random.default_rng(seed)
    annotations = []
    for i in range(n):
        kind = TYPES[rng.integers(len(TYPES))]
        count = 1 if kind == "Dot" else int(rng.integers(1, 14))
        centre = rng.uniform(-500, 10_500, 2)
        points = centre + rng.normal(0, rng.uniform(3, 300), (count, 2))
        color = COLORS[rng.integers(len(COLORS))]
        annotations.append(Annotation(f"a{i}", kind, points, color=color))
    big = np.array([[500.0, 500.0], [9000.0, 700.0], [8000.0, 9500.0], [300.0, 8000.0]])
    annotations.append(Annotation("tissue", "Polygon", big, color="#FFFF00"))
    annotations.append(Annotation("empty", "Polygon", np.zeros((0, 2))))
    return AnnotationSet(annotations=annotations)


def test_pack_keeps_kinds_and_one_palette_entry_per_colour() -> None:
    annotation_set = mixed_set()
    packed = pack(annotation_set)
    assert len(packed.colors) == len({a.color.upper() for a in annotation_set})
    for i, annotation in enumerate(annotation_set):
        assert tuple(packed.colors[packed.color_index[i]]) == hex_to_rgb(annotation.color)
        points = annotation.type.value in ("Dot", "PointSet")
        assert packed.kinds[i] == (0 if annotation.type.is_area else 2 if points else 1)


@pytest.mark.parametrize(
    "box", [(0, 0, 500, 500), (2500, 4000, 3100, 9000), (-900, -900, -600, -600), (0, 0, 1e6, 1e6)]
)
def test_query_matches_brute_force_with_empty_annotations(
    box: tuple[float, float, float, float],
) -> None:
    annotation_set = mixed_set()
    expected = [
        i
        for i, a in enumerate(annotation_set)
        if len(a.coordinates)
        and a.coordinates[:, 0].max() >= box[0]
        and a.coordinates[:, 0].min() <= box[2]
        and a.coordinates[:, 1].max() >= box[1]
        and a.coordinates[:, 1].min() <= box[3]
    ]
    assert BoxIndex(annotation_set).query(box).tolist() == expected


def star_polygons(n: int = 600, seed: int = 9) -> AnnotationSet:
    """Simple (star-shaped) polygons of four colours, overlapping, many crossing the raster."""
    rng = np.random.default_rng(seed)
    annotations = []
    for i in range(n):
        centre = rng.uniform(-300, 6300, 2)
        angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 12))))
        radii = rng.uniform(10, 250) * rng.uniform(0.5, 1.0, len(angles))
        ring = centre + radii[:, None] * np.c_[np.cos(angles), np.sin(angles)]
        color = COLORS[rng.integers(len(COLORS))]
        if shapely.Polygon(ring).is_valid:  # nearly equal angles can make an edge cross itself
            annotations.append(Annotation(f"s{i}", "Polygon", ring, color=color))
    return AnnotationSet(annotations=annotations)


@pytest.mark.parametrize(
    ("origin", "downsample", "size"),
    [
        ((0.0, 0.0), 10.0, (600, 600)),  # the whole set, small polygons a few pixels across
        ((1234.5, -300.25), 3.7, (900, 700)),  # polygons cut by every edge of the raster
        ((0.0, 0.0), 41.0, (150, 150)),  # everything a few pixels across: boxes share pixels
    ],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_pixels_are_drawn_where_the_polygons_are(
    origin: tuple[float, float],
    downsample: float,
    size: tuple[int, int],
    threads: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fast, "PARALLEL_MIN_VERTICES", 0 if threads == 2 else 10**9)
    annotation_set = star_polygons()
    where = {"origin_xy": origin, "downsample": downsample, "size_wh": size, "outline": False}
    drawn = draw(BoxIndex(annotation_set), **where)[..., 3] > 0
    union = shapely.union_all([shapely.Polygon(a.coordinates) for a in annotation_set])
    rows, cols = np.mgrid[0 : size[1], 0 : size[0]]
    xs, ys = (cols + 0.5) * downsample + origin[0], (rows + 0.5) * downsample + origin[1]
    # cv2 rounds vertices and span ends in fixed point: centres within about half a pixel of an
    # edge may fall either way; every other centre inside must be drawn
    surely_inside = shapely.contains_xy(union.buffer(-0.6 * downsample), xs, ys)
    assert surely_inside.sum() > 1000
    assert not np.any(surely_inside & ~drawn)
    extra = drawn & ~shapely.contains_xy(union, xs, ys)  # pixels that edges cross, no further
    distance = shapely.distance(union, shapely.points(xs[extra], ys[extra]))
    assert np.all(distance <= downsample * np.sqrt(2))


def test_a_polygon_just_left_of_the_raster_leaves_no_line_on_its_edge() -> None:
    # cv2 clamps spans left of the image into column 0; only the pixel that the polygon's
    # rightmost vertex lies in may be drawn
    ring = np.array([[-62.2, 1198.3], [-113.0, 1231.5], [-213.3, 1106.2], [-178.9, 1046.9],
                     [-62.8, 1014.6], [2.0, 1070.9]])  # fmt: skip
    annotation_set = AnnotationSet(annotations=[Annotation("p", "Polygon", ring)])
    where = {"origin_xy": (0.0, 0.0), "downsample": 3.7, "size_wh": (100, 400), "outline": False}
    drawn = draw(BoxIndex(annotation_set), **where)[..., 3] > 0
    assert drawn.sum() <= 1 and not drawn[:, 1:].any()


@pytest.mark.parametrize(
    ("origin", "downsample", "size"),
    [((0.0, 0.0), 10.0, (1000, 1000)), ((5000.0, 5000.0), 0.5, (500, 400))],
)
def test_two_threads_draw_the_pixels_of_one(
    origin: tuple[float, float],
    downsample: float,
    size: tuple[int, int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    annotation_set = mixed_set()  # lines, dots and self-crossing polygons too
    index = BoxIndex(annotation_set)
    ids = np.arange(0, len(annotation_set), 3)
    where = {"origin_xy": origin, "downsample": downsample, "size_wh": size}
    monkeypatch.setattr(fast, "PARALLEL_MIN_VERTICES", 10**9)
    serial, serial_subset = draw(index, **where), draw(index, **where, ids=ids)
    monkeypatch.setattr(fast, "PARALLEL_MIN_VERTICES", 0)
    np.testing.assert_array_equal(draw(index, **where), serial)
    np.testing.assert_array_equal(draw(index, **where, ids=ids), serial_subset)
    assert (serial[..., 3] > 0).sum() > 1000 and (serial_subset[..., 3] > 0).sum() > 1000


def test_overlapping_fills_are_the_union_of_single_fills() -> None:
    # Checked against each polygon drawn alone: one cv2 call for many polygons XORs overlaps.
    rng = np.random.default_rng(5)
    annotations = []
    for i in range(400):
        centre = rng.uniform(0, 2000, 2)
        angles = np.sort(rng.uniform(0, 2 * np.pi, 7))
        ring = centre + rng.uniform(5, 120) * np.c_[np.cos(angles), np.sin(angles)]
        annotations.append(Annotation(f"p{i}", "Polygon", ring, color="#FF0000"))
    annotation_set = AnnotationSet(annotations=annotations)
    where = {"origin_xy": (0.0, 0.0), "downsample": 4.0, "size_wh": (520, 520), "outline": False}
    filled = draw(BoxIndex(annotation_set), **where)[..., 3] > 0
    union = np.zeros_like(filled)
    for annotation in annotations:
        alone = BoxIndex(AnnotationSet(annotations=[annotation]))
        union |= draw(alone, **where)[..., 3] > 0
    assert union.sum() > 50_000
    np.testing.assert_array_equal(filled, union)


def test_batchable_boxes_share_no_pixel() -> None:
    rng = np.random.default_rng(11)
    corner = rng.integers(-20, 200, (300, 2))
    boxes = np.c_[corner, corner + rng.integers(0, 12, (300, 2))]
    boxes[:5, 2:] += 150  # a few large boxes: filled alone, they leave the small ones batchable
    candidates = rng.random(300) < 0.9
    batchable = _batchable(boxes, 180, 190, candidates)
    assert not np.any(batchable & ~candidates)
    clipped = np.c_[np.maximum(boxes[:, :2], 0), np.minimum(boxes[:, 2:], [189, 179])]
    chosen = clipped[batchable]
    for i, a in enumerate(chosen):
        others = np.delete(chosen, i, axis=0)
        meets = (others[:, 0] <= a[2]) & (others[:, 2] >= a[0])
        meets &= (others[:, 1] <= a[3]) & (others[:, 3] >= a[1])
        meets &= (others[:, 0] <= others[:, 2]) & (others[:, 1] <= others[:, 3])
        assert not (meets.any() and a[0] <= a[2] and a[1] <= a[3])
    assert 30 < batchable.sum() < candidates.sum()
    assert not batchable[:5].any()
