"""Level choice, read sizes, errors, and patch pixels equal to OpenSlide's read + resize."""

from __future__ import annotations

import numpy as np
import openslide
import pytest

from napari_wsi_ml.data import PatchBatch, plan_patch_read, read_patch, read_patches, resize_patch
from napari_wsi_ml.errors import ConfigError, SlideError
from napari_wsi_ml.slide import open_slide
from tests.data_pipeline.pyramids import write_pyramid

# odd pyramid: downsamples 1, 3.001, 9.028 at 0.25 µm/px
ODD_CASES = [
    # target mpp, level, read side for a 64-px patch
    (0.25, 0, 64),
    (0.5, 0, 128),  # 2.0: level 1 (3.001) would be coarser -> level 0, 128 -> 64
    (0.75, 1, 64),  # 3.0 within 1 % of 3.001 -> level 1 read as is
    (1.0, 1, 85),  # 4.0 / 3.001 = 1.333
    (2.0, 1, 171),  # 8.0 / 3.001 = 2.666: level 2 (9.03) is too coarse
    (2.5, 2, 71),  # 10.0 / 9.028 = 1.108
]


@pytest.mark.parametrize(("mpp", "level", "read"), ODD_CASES)
def test_level_is_the_nearest_at_least_as_fine(odd_pyramid, mpp, level, read) -> None:
    with open_slide(odd_pyramid) as slide:
        assert slide.level_downsamples[1] == pytest.approx(3.001)
        plan = plan_patch_read(slide, patch_size=64, target_mpp=mpp)
        assert plan.level == level
        assert plan.read_size == (read, read)
        assert plan.patch_size == (64, 64)
        ds = slide.level_downsamples[level]
        assert plan.extent == (round(read * ds),) * 2
        # never coarser than asked (beyond the 1 % tolerance)
        assert ds <= mpp / 0.25 * 1.01
        # the next level would be coarser than asked
        if level + 1 < slide.level_count:
            assert slide.level_downsamples[level + 1] > mpp / 0.25 * 1.01


def test_zero_tolerance_refuses_a_slightly_coarser_level(odd_pyramid) -> None:
    with open_slide(odd_pyramid) as slide:
        assert plan_patch_read(slide, patch_size=64, target_mpp=0.75).level == 1
        plan = plan_patch_read(slide, patch_size=64, target_mpp=0.75, tolerance=0)
        assert plan.level == 0 and plan.read_size == (192, 192)


def test_power_of_two_levels_and_magnification(pipeline_slide) -> None:
    with open_slide(pipeline_slide.path) as slide:
        half = plan_patch_read(slide, patch_size=(256, 128), target_mpp=0.5)
        assert (half.level, half.read_size, half.extent) == (1, (256, 128), (512, 256))
        assert not half.needs_resize
        by_mag = plan_patch_read(slide, patch_size=(256, 128), magnification=20)
        assert by_mag == half  # 40× scan at 0.25 µm/px: 20× is 0.5 µm/px
        odd = plan_patch_read(slide, patch_size=100, target_mpp=1.5)  # downsample 6
        assert (odd.level, odd.read_size, odd.extent) == (2, (150, 150), (600, 600))


def test_read_patch_equals_openslide_read_plus_resize(pipeline_slide) -> None:
    rng = np.random.default_rng(0)
    osr = openslide.OpenSlide(str(pipeline_slide.path))
    with open_slide(pipeline_slide.path) as slide:
        for mpp in (0.25, 0.5, 0.6, 1.5):
            plan = plan_patch_read(slide, patch_size=96, target_mpp=mpp)
            xys = plan.snap(rng.uniform(0, 2048 - plan.extent[0], (6, 2)))
            batch = read_patches(slide, xys, plan)
            assert batch.failed == 0
            for (x, y), ours in zip(xys.tolist(), batch.images, strict=True):
                region = np.asarray(osr.read_region((x, y), plan.level, plan.read_size))
                assert (region[..., 3] == 255).all()
                expected = resize_patch(np.ascontiguousarray(region[..., :3]), plan.patch_size)
                assert expected.shape == (96, 96, 3)
                np.testing.assert_array_equal(ours, expected)
                np.testing.assert_array_equal(read_patch(slide, (x, y), plan), expected)
    osr.close()


def test_bad_requests_give_actionable_errors(pipeline_slide, tmp_path, level0_pixels) -> None:
    with open_slide(pipeline_slide.path) as slide:
        with pytest.raises(ConfigError, match=r"finer than slide .*allow_upsampling"):
            plan_patch_read(slide, patch_size=64, target_mpp=0.1)
        up = plan_patch_read(slide, patch_size=64, target_mpp=0.125, allow_upsampling=True)
        assert (up.level, up.read_size, up.extent) == (0, (32, 32), (32, 32))
        patch = read_patch(slide, (1000, 800), up)
        assert patch.shape == (64, 64, 3)
        with pytest.raises(ConfigError, match="exactly one"):
            plan_patch_read(slide, patch_size=64)
        with pytest.raises(ConfigError, match="exactly one"):
            plan_patch_read(slide, patch_size=64, target_mpp=0.5, magnification=20)
        with pytest.raises(ConfigError, match="patch_size"):
            plan_patch_read(slide, patch_size=0, target_mpp=0.5)
    bare = write_pyramid(
        tmp_path / "bare.svs", level0_pixels[:1024, :1024], (1, 2), mpp=None, magnification=None
    )
    with open_slide(bare) as slide:
        assert slide.mpp is None
        with pytest.raises(ConfigError, match=r"does not record its resolution.*mpp_override"):
            plan_patch_read(slide, patch_size=64, target_mpp=0.5)
        with pytest.raises(ConfigError, match=r"magnification.*base_magnification"):
            plan_patch_read(slide, patch_size=64, magnification=20)
        plan = plan_patch_read(slide, patch_size=64, target_mpp=0.5, mpp_override=0.25)
        assert (plan.level, plan.slide_mpp) == (1, (0.25, 0.25))
        plan = plan_patch_read(slide, patch_size=64, magnification=10, base_magnification=40)
        assert (plan.level, plan.read_size, plan.target_mpp) == (1, (128, 128), None)


def test_damaged_tile_skips_and_counts_only_its_patches(pipeline_slide, tmp_path) -> None:
    copy = tmp_path / "damaged.svs"
    copy.write_bytes(pipeline_slide.path.read_bytes())
    with open_slide(copy, cache_bytes=0) as slide:
        plan = plan_patch_read(slide, patch_size=64, target_mpp=0.25)
        page = slide._tiff._tiff_levels[0]  # damage level-0 tile (col 4, row 3)
        index = 3 * slide.geometries[0].tiles_across + 4
        offset, count = int(page.offsets[index]), int(page.bytecounts[index])
    with copy.open("r+b") as handle:
        handle.seek(offset)
        handle.write(b"\x00" * count)
    xys = np.array([[0, 0], [4 * 256 + 10, 3 * 256 + 10], [64, 64], [4 * 256 + 200, 3 * 256]])
    with open_slide(copy, cache_bytes=0) as slide:
        batch = read_patches(slide, xys, plan)
        assert isinstance(batch, PatchBatch)
        assert batch.ok.tolist() == [True, False, True, False]
        assert batch.failed == 2 and [i for i, _ in batch.errors] == [1, 3]
        assert "column 4, row 3" in batch.errors[0][1]
        assert (batch.images[1] == 255).all() and batch.good().shape == (2, 64, 64, 3)
        with pytest.raises(SlideError):
            read_patch(slide, xys[1], plan)
