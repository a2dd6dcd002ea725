"""Synthetic slides as OpenSlide sees them: metadata, pyramid, determinism, alignment, memory."""

from __future__ import annotations

import tracemalloc

import cv2
import numpy as np
import openslide
import pytest
from shapely.affinity import translate
from shapely.geometry import box

from napari_wsi_ml.synthetic import generate_slide


def _level_pixels(path, level: int, box: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """RGB of a level, or of the level-0 box ``(x0, y0, x1, y1)`` read at that level."""
    with openslide.OpenSlide(str(path)) as slide:
        if box is None:
            region = slide.read_region((0, 0), level, slide.level_dimensions[level])
        else:
            d = slide.level_downsamples[level]
            size = (round((box[2] - box[0]) / d), round((box[3] - box[1]) / d))
            region = slide.read_region(box[:2], level, size)
    return np.asarray(region.convert("RGB"))


def test_openslide_reads_aperio_metadata_and_exact_downsamples(synthetic_slide):
    truth = synthetic_slide.truth
    with openslide.OpenSlide(str(truth.path)) as slide:
        assert slide.properties["openslide.vendor"] == "aperio"
        assert float(slide.properties["openslide.mpp-x"]) == 0.25
        assert float(slide.properties["openslide.mpp-y"]) == 0.25
        assert slide.properties["aperio.AppMag"] == "40"
        dims = ((3072, 2048), (1536, 1024), (768, 512), (384, 256))
        assert slide.level_dimensions == dims
        assert slide.level_downsamples == (1.0, 2.0, 4.0, 8.0)
        assert set(slide.associated_images) == {"thumbnail", "label"}
        thumbnail = np.asarray(slide.associated_images["thumbnail"].convert("RGB"))
    assert thumbnail.shape == (512, 768, 3)
    assert thumbnail.min() < 150 < thumbnail.max()  # tissue on glass
    assert truth.level_dimensions == dims


def test_downsample_four_pyramid_on_divisible_size(tmp_path):
    truth = generate_slide(tmp_path / "d4.svs", width=4096, height=2048, seed=1, downsample=4)
    with openslide.OpenSlide(str(truth.path)) as slide:
        assert slide.level_downsamples == (1.0, 4.0, 16.0)
        assert slide.level_dimensions == ((4096, 2048), (1024, 512), (256, 128))


def test_odd_sizes_give_ceil_level_sizes(synthetic_alignment_slide):
    truth = synthetic_alignment_slide
    with openslide.OpenSlide(str(truth.path)) as slide:
        assert slide.level_dimensions == ((5003, 3001), (1251, 751), (313, 188))
        # OpenSlide derives downsamples from the sizes: close to, not exactly, powers of 4.
        np.testing.assert_allclose(slide.level_downsamples, (1, 4, 16), rtol=2e-3)
        assert float(slide.properties["openslide.mpp-x"]) == 0.25
    assert len(truth.lesions) == 1 and truth.label == "tumour"
    assert truth.downsample == 4


def test_same_seed_same_pixels_and_polygons_other_seed_differs(tmp_path):
    kwargs = {"width": 2048, "height": 1280, "tumour": "large", "pen": "blue"}
    a = generate_slide(tmp_path / "a.svs", seed=5, **kwargs)
    b = generate_slide(tmp_path / "b.svs", seed=5, **kwargs)
    c = generate_slide(tmp_path / "c.svs", seed=6, **kwargs)
    for level in range(len(a.level_dimensions)):
        assert np.array_equal(_level_pixels(a.path, level), _level_pixels(b.path, level))
    assert a.tissue.equals_exact(b.tissue, 0)
    assert [les.polygon.wkb for les in a.lesions] == [les.polygon.wkb for les in b.lesions]
    assert not np.array_equal(_level_pixels(a.path, 0), _level_pixels(c.path, 0))
    assert not a.tissue.equals(c.tissue)


def _mask(geometry, downsample: float, shape: tuple[int, int]) -> np.ndarray:
    """Pixels of a level whose centres lie in ``geometry`` (level-0 coordinates)."""
    mask = np.zeros(shape, dtype=np.uint8)
    for part in getattr(geometry, "geoms", [geometry]):
        rings = [np.asarray(part.exterior.coords)] + [np.asarray(r.coords) for r in part.interiors]
        pts = [np.round((r / downsample - 0.5) * 16).astype(np.int32) for r in rings]
        cv2.fillPoly(mask, pts, 1, cv2.LINE_8, 4)
    return mask.astype(bool)


@pytest.mark.parametrize("level", [0, 1, 2])
def test_truth_polygon_sits_on_tumour_texture_at_every_level(synthetic_alignment_slide, level):
    truth = synthetic_alignment_slide
    d = truth.downsample**level
    tumour = truth.lesions[0].polygon
    x0, y0, x1, y1 = (int(v) // 64 * 64 for v in tumour.buffer(80 * d).bounds)
    pixels = _level_pixels(truth.path, level, (x0, y0, x1 + 64, y1 + 64)).astype(np.float32)
    darkness = 255 - pixels.mean(axis=2)
    shift = (-x0, -y0)
    tumour = translate(tumour, *shift)
    inside = _mask(tumour.difference(tumour.buffer(-6 * d)), d, darkness.shape)
    outside = _mask(tumour.buffer(6 * d).difference(tumour), d, darkness.shape)
    frame = box(0, 0, x1 - x0, y1 - y0)
    stroma = translate(truth.tissue, *shift).intersection(frame).buffer(-8 * d)
    stroma_mask = _mask(stroma.difference(tumour.buffer(8 * d)), d, darkness.shape)
    # A band 6 level pixels wide just inside the polygon is clearly darker than the band just
    # outside it, which looks like the rest of the stroma; a level misaligned by a few pixels
    # would blur the two bands together.
    assert darkness[inside].mean() > darkness[outside].mean() + 25
    assert abs(darkness[outside].mean() - darkness[stroma_mask].mean()) < 8


def test_large_slide_is_written_with_bounded_memory(tmp_path):
    side = 20_000
    tracemalloc.start()
    try:
        truth = generate_slide(
            tmp_path / "big.svs",
            width=side,
            height=side,
            seed=2,
            tumour="small",
            n_pieces=1,
            tissue_scale=0.08,
            dust=False,
            workers=2,
        )
        _, peak = tracemalloc.get_traced_memory()
        print(f"peak traced memory: {peak / 1e6:.1f} MB")
    finally:
        tracemalloc.stop()
    full_level0 = side * side * 3
    assert peak < 100e6  # the full level 0 would need 1.2 GB
    assert peak < full_level0 / 12
    with openslide.OpenSlide(str(truth.path)) as slide:
        assert slide.level_dimensions[0] == (side, side)
        assert slide.level_count == 7
        centre = truth.tissue.centroid
        location = (int(centre.x) - 128, int(centre.y) - 128)
        tile = np.asarray(slide.read_region(location, 0, (256, 256)))
    assert tile[..., :3].mean() < 230  # tissue, not glass
