"""The fast rasteriser: the reference rasteriser's pixels, its queries, overlaps filled."""

from __future__ import annotations

import numpy as np
import pytest

from napari_wsi_ml.annotations import rasterize as fast
from napari_wsi_ml.annotations.model import Annotation, AnnotationSet
from napari_wsi_ml.annotations.rasterize import BoxIndex, _batchable, draw, pack
from napari_wsi_ml.annotations.spatial_index import AnnotationIndex, pack_annotations, rasterize

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


def test_pack_matches_the_reference_packing() -> None:
    annotation_set = mixed_set()
    fast, reference = pack(annotation_set), pack_annotations(annotation_set)
    for name in ("vertices", "offsets", "bounds", "kinds", "color_index", "colors"):
        np.testing.assert_array_equal(getattr(fast, name), getattr(reference, name), err_msg=name)


@pytest.mark.parametrize(
    "box", [(0, 0, 500, 500), (2500, 4000, 3100, 9000), (-900, -900, -600, -600), (0, 0, 1e6, 1e6)]
)
def test_query_matches_the_tree(box: tuple[float, float, float, float]) -> None:
    annotation_set = mixed_set()
    expected = AnnotationIndex(annotation_set).query(box)
    assert BoxIndex(annotation_set).query(box).tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("origin", "downsample", "size"),
    [
        ((0.0, 0.0), 10.0, (1000, 1000)),  # the whole set, ~1 raster pixel per small polygon
        ((1234.5, -300.25), 3.7, (900, 700)),  # polygons cut by every edge of the raster
        ((5000.0, 5000.0), 0.5, (500, 400)),  # finer than level 0
        ((0.0, 0.0), 41.0, (250, 250)),  # everything a few pixels across: boxes share pixels
    ],
)
@pytest.mark.parametrize("subset", [False, True])
@pytest.mark.parametrize("threads", [1, 2])
def test_pixels_equal_the_reference_rasteriser(
    origin: tuple[float, float],
    downsample: float,
    size: tuple[int, int],
    subset: bool,
    threads: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fast, "PARALLEL_MIN_VERTICES", 0 if threads == 2 else 10**9)
    annotation_set = mixed_set()
    ids = np.arange(0, len(annotation_set), 3) if subset else None
    where = {"origin_xy": origin, "downsample": downsample, "size_wh": size, "ids": ids}
    expected = rasterize(AnnotationIndex(annotation_set), **where)
    drawn = draw(BoxIndex(annotation_set), **where)
    assert (expected[..., 3] > 0).sum() > 1000
    np.testing.assert_array_equal(drawn, expected)


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
