"""Whole slides as small images: output size, downscaling, the on-disk cache, canvases."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import shapely
from shapely import unary_union

from napari_wsi_ml.data.resolution import resize_patch
from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.training import whole_slide_data
from napari_wsi_ml.training.whole_slide_data import (
    SlideImageCache,
    SlideImageSpec,
    canvas_batch,
    canvas_size,
    downscale_slide,
    ink_mask,
    output_size,
    tissue_key,
    tissue_mask,
)


@pytest.fixture(scope="module")
def small_truth(tmp_path_factory):
    """A 1800 × 1300 px slide at 1 µm/px (pyramid factor 2) with a green pen stroke and dust."""
    from napari_wsi_ml.synthetic import generate_slide

    path = tmp_path_factory.mktemp("whole_slide_data") / "small.svs"
    return generate_slide(path, width=1800, height=1300, seed=4, mpp=1.0, tumour="large",
                          pen="green")  # fmt: skip


@pytest.fixture(scope="module")
def small_slide(small_truth):
    return small_truth.path


def test_output_size_by_resolution_by_size_and_fit():
    assert output_size((6000, 3000), mpp=(0.25, 0.25), target_mpp=4.0) == (375, 188)
    assert output_size((6000, 3000), mpp=(0.25, 0.5), target_mpp=4.0) == (375, 375)
    assert output_size((6000, 3000), mpp=None, max_size=600) == (600, 300)
    # larger than the canvas: shrunk to fit, aspect kept
    assert output_size((6000, 3000), mpp=(0.25, 0.25), target_mpp=1.0, fit=(512, 512)) == (
        512,
        256,
    )
    assert output_size((6000, 3000), mpp=(0.25, 0.25), target_mpp=4.0, fit=(512, 512)) == (
        375,
        188,
    )
    with pytest.raises(ConfigError, match="does not record its resolution"):
        output_size((6000, 3000), mpp=None, target_mpp=4.0)
    with pytest.raises(ConfigError, match="exactly one"):
        output_size((6000, 3000), mpp=(0.25, 0.25), target_mpp=4.0, max_size=100)


def test_spec_scale_and_cache_name():
    spec = SlideImageSpec("ab" * 32, (6000, 3000), (375, 188))
    assert spec.scale == (16.0, 3000 / 188)
    assert spec.cache_name == f"{'ab' * 16}-375x188-v1.npy"


def test_downscale_reads_the_coarsest_level_fine_enough(small_slide):
    with open_slide(small_slide) as slide:
        assert slide.level_downsamples[:3] == pytest.approx((1, 2, 4), rel=1e-3)
        size = output_size(slide.level_dimensions[0], mpp=slide.mpp, target_mpp=3.0)
        assert size == (600, 433)
        image = downscale_slide(slide, size)
        level = slide.read_region((0, 0), 1, slide.level_dimensions[1])  # 2 µm/px ≤ 3 µm/px
        expected = resize_patch(level, size)
        banded = downscale_slide(slide, size, max_read_pixels=1000)
    assert image.shape == (433, 600, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, expected)
    # in bands of one level row: the same up to the rounding of the row pass
    difference = np.abs(banded.astype(int) - image.astype(int))
    assert difference.max() <= 1 and difference.mean() < 0.2


def test_cache_makes_once_then_reads_and_remakes_bad_files(small_slide, tmp_path, monkeypatch):
    with open_slide(small_slide) as slide:
        spec = SlideImageSpec(slide.fingerprint, slide.level_dimensions[0], (150, 108))
    cache = SlideImageCache(tmp_path / "cache")
    assert cache.load(spec) is None
    made = np.array(cache.get(spec, small_slide))
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [spec.cache_name]
    assert made.shape == (108, 150, 3) and made.min() < 200  # tissue, not a blank image

    def no_reading(*args, **kwargs):
        raise AssertionError("the slide was opened although the image is cached")

    monkeypatch.setattr(whole_slide_data, "open_slide", no_reading)
    np.testing.assert_array_equal(cache.get(spec, small_slide), made)
    monkeypatch.undo()
    # another resolution is another file
    other = SlideImageSpec(spec.fingerprint, spec.level0_size, (75, 54))
    assert cache.get(other, small_slide).shape == (54, 75, 3)
    assert len(list((tmp_path / "cache").iterdir())) == 2
    # a truncated file and a file of another shape are made again
    path = cache.path(spec)
    path.write_bytes(path.read_bytes()[:100])
    assert cache.load(spec) is None
    np.testing.assert_array_equal(cache.get(spec, small_slide), made)
    np.save(path, np.zeros((5, 5, 3), np.uint8))
    np.testing.assert_array_equal(cache.get(spec, small_slide), made)
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        [spec.cache_name, other.cache_name]
    )  # no temporary file left
    # the cache refuses to file pixels of a changed slide under the old fingerprint
    changed = SlideImageSpec("0" * 64, spec.level0_size, spec.size)
    with pytest.raises(ConfigError, match="changed since the cohort was read"):
        cache.get(changed, small_slide)


def test_tissue_mask_paints_glass_pen_and_dust_white(small_truth, tmp_path):
    with open_slide(small_truth.path) as slide:
        tissue = slide.tissue_polygons()
        size = output_size(slide.level_dimensions[0], mpp=slide.mpp, target_mpp=4.0)
        plain = SlideImageSpec(slide.fingerprint, slide.level_dimensions[0], size)
        masked = SlideImageSpec(plain.fingerprint, plain.level0_size, size, tissue_key(tissue))
    cache = SlideImageCache(tmp_path)
    image, clean = cache.get(plain, small_truth.path), cache.get(masked, small_truth.path, tissue)
    assert masked.cache_name != plain.cache_name and len(list(tmp_path.iterdir())) == 2
    inside = tissue_mask(tissue, masked)
    hulls = unary_union([piece.convex_hull for piece in getattr(tissue, "geoms", [tissue])])
    rows, cols = np.nonzero(inside)
    centres = ((cols + 0.5) * masked.scale[0], (rows + 0.5) * masked.scale[1])
    assert shapely.contains_xy(hulls.buffer(2 * masked.scale[0]), *centres).all()
    np.testing.assert_array_equal(clean[inside], image[inside])  # tissue untouched
    assert (clean[~inside] == 255).all() and (image[~inside] < 200).any()
    sx, sy = masked.scale
    yy, xx = np.mgrid[: size[1], : size[0]]
    covered = {}
    for artefact in small_truth.artefacts:  # ink and dust off the tissue are gone
        on = shapely.contains_xy(artefact.polygon, (xx + 0.5) * sx, (yy + 0.5) * sy)
        off_tissue = on & ~shapely.contains_xy(hulls, (xx + 0.5) * sx, (yy + 0.5) * sy)
        assert (clean[off_tissue] == 255).all() and (image[off_tissue] < 250).any()
        covered[artefact.kind] = covered.get(artefact.kind, 0) + int(off_tissue.sum())
    assert covered["pen"] > 50 and covered["dust"] > 0
    with pytest.raises(ValueError, match="does not match"):
        SlideImageCache(tmp_path / "other").get(masked, small_truth.path, None)


@pytest.mark.parametrize("pen", ["blue", "green", "black"])
def test_ink_mask_finds_ink_across_tissue_and_leaves_h_and_e_alone(pen):
    """A stroke drawn across the tissue of each site's stain, rendered at 4 µm/px."""
    from napari_wsi_ml.synthetic.render import render_region
    from napari_wsi_ml.synthetic.scene import PEN_COLOURS, Artefact, make_scene
    from napari_wsi_ml.synthetic.shapes import pen_stroke

    d, (width, height) = 16.0, (150, 100)
    yy, xx = np.mgrid[:height, :width]
    x, y = (xx + 0.5) * d, (yy + 0.5) * d
    for site in range(4):
        scene = make_scene(2400, 1600, seed=site + 7, mpp=0.25, site=site, n_pieces=1)
        centre = scene.tissue[0].centroid
        stroke = pen_stroke(np.random.default_rng(site), (centre.x - 900, centre.y), 1800, 400, 0)
        scene = dataclasses.replace(scene, artefacts=(Artefact(stroke, "pen", PEN_COLOURS[pen]),))
        found = ink_mask(render_region(scene, 0, 0, width, height, d))
        ink = shapely.contains_xy(stroke, x, y)
        lesion = shapely.contains_xy(scene.lesions[0].polygon, x, y)
        on_tissue = shapely.contains_xy(scene.tissue[0], x, y)
        away = ~shapely.contains_xy(stroke.buffer(2 * d), x, y)  # beyond the stroke's rim
        assert (ink & on_tissue & ~lesion).sum() > 500 and (lesion & away).sum() > 50
        assert found[ink & ~lesion].mean() > 0.99  # on glass and on normal tissue
        assert not found[on_tissue & away].any()  # no tumour or normal tissue whitened
        if pen != "blue":  # dark blue ink over dense tumour stays (it looks like haematoxylin)
            assert found[ink].all()


def test_ink_masked_images_have_their_own_cache_file(small_truth, tmp_path):
    with open_slide(small_truth.path) as slide:
        size = output_size(slide.level_dimensions[0], mpp=slide.mpp, target_mpp=4.0)
        plain = SlideImageSpec(slide.fingerprint, slide.level_dimensions[0], size)
    inked = dataclasses.replace(plain, ink=True)
    assert inked.cache_name.endswith("-i-v1.npy") and inked.cache_name != plain.cache_name
    cache = SlideImageCache(tmp_path)
    image, clean = cache.get(plain, small_truth.path), cache.get(inked, small_truth.path)
    assert len(list(tmp_path.iterdir())) == 2
    sx, sy = plain.scale
    yy, xx = np.mgrid[: size[1], : size[0]]
    (pen,) = [a.polygon for a in small_truth.artefacts if a.kind == "pen"]
    on_pen = shapely.contains_xy(pen, (xx + 0.5) * sx, (yy + 0.5) * sy)
    assert on_pen.sum() > 50 and (image[on_pen] < 200).any() and (clean[on_pen] == 255).all()
    changed = (clean != image).any(axis=2)
    np.testing.assert_array_equal(changed, ink_mask(image) & (image < 255).any(axis=2))
    centres = ((xx + 0.5) * sx, (yy + 0.5) * sy)
    near = shapely.contains_xy(pen.buffer(4 * sx), *centres)  # the stroke and its JPEG fringe
    assert not changed[~near].any()  # tissue, tumour, dust and glass elsewhere untouched


def test_canvas_pads_white_and_places_images():
    first = np.zeros((3, 5, 3), np.uint8)
    second = np.full((4, 2, 3), 7, np.uint8)
    assert canvas_size([(5, 3), (2, 4)], canvas=None, multiple=4) == (8, 4)
    assert canvas_size([(5, 3)], canvas=16, multiple=4) == (16, 16)
    batch = canvas_batch([first, second], (8, 4), offsets=[(0, 0), (6, 0)])
    assert batch.shape == (2, 3, 4, 8)
    assert (batch[0, :, :3, :5] == 0).all() and (batch[0, :, 3:, :] == 255).all()
    assert (batch[0, :, :, 5:] == 255).all()
    assert (batch[1, :, :, 6:] == 7).all() and (batch[1, :, :, :6] == 255).all()
    with pytest.raises(ValueError, match="does not fit"):
        canvas_batch([first], (4, 4))
