"""Pixels of Slide.levels equal OpenSlide's read_region (composited on white) at every level."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pytest

from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.slide.openslide_tiles import composite_on_white

SLIDES_DIR = Path(__file__).resolve().parents[1] / "data" / "slides"

REAL_SLIDES = {
    "cmu-1-small-region.svs": ("tiff-direct",),
    "tcga-cr-7395-01a-01-ts1.svs": ("tiff-direct", "tiff-direct"),
    "boxes.tiff": ("tiff-direct",) * 4,
    "boxes_0.dcm": ("openslide",),
}


def openslide_level(osr: openslide.OpenSlide, level: int) -> np.ndarray:
    """A whole level read by OpenSlide from the origin (exact for any downsample)."""
    rgba = np.asarray(osr.read_region((0, 0), level, osr.level_dimensions[level]))
    return composite_on_white(rgba)


def assert_levels_equal_openslide(path: Path) -> None:
    with open_slide(path, cache_bytes=64 << 20) as slide:
        osr = openslide.OpenSlide(str(path))
        assert slide.level_dimensions == osr.level_dimensions
        assert slide.level_downsamples == pytest.approx(osr.level_downsamples)
        for level in range(slide.level_count):
            ours = np.asarray(slide.levels[level])
            assert ours.dtype == np.uint8 and ours.shape[2] == 3
            np.testing.assert_array_equal(
                ours, openslide_level(osr, level), err_msg=f"level {level}"
            )
        osr.close()


@pytest.mark.parametrize("name", sorted(REAL_SLIDES))
def test_every_level_of_real_slides_equals_openslide(name: str) -> None:
    assert_levels_equal_openslide(SLIDES_DIR / name)


@pytest.mark.parametrize("name", sorted(REAL_SLIDES))
def test_reader_chosen_per_level(name: str) -> None:
    with open_slide(SLIDES_DIR / name) as slide:
        assert slide.level_readers == REAL_SLIDES[name]


def test_generated_pyramid_equals_openslide(generated_svs: Path) -> None:
    assert_levels_equal_openslide(generated_svs)


def test_regions_at_edges_and_across_partial_tiles(generated_svs: Path) -> None:
    rng = np.random.default_rng(0)
    osr = openslide.OpenSlide(str(generated_svs))
    with open_slide(generated_svs, cache_bytes=32 << 20) as slide:
        assert slide.level_readers == ("tiff-direct",) * 3
        for level, (width, height) in enumerate(slide.level_dimensions):
            ds = int(slide.level_downsamples[level])
            boxes = [
                (width - 37, height - 53, 37, 53),
                (0, 0, 1, 1),
                (width // 3, height // 3, width // 3, 20),
            ]
            for _ in range(20):
                w = int(rng.integers(1, min(width, 500)))
                h = int(rng.integers(1, min(height, 500)))
                x, y = rng.integers(0, width - w + 1), rng.integers(0, height - h + 1)
                boxes.append((int(x), int(y), int(w), int(h)))
            for x, y, w, h in boxes:
                expected = composite_on_white(
                    np.asarray(osr.read_region((x * ds, y * ds), level, (w, h)))
                )
                np.testing.assert_array_equal(
                    np.asarray(slide.levels[level][y : y + h, x : x + w]), expected
                )
                np.testing.assert_array_equal(
                    slide.read_region((x * ds, y * ds), level, (w, h)), expected
                )
    osr.close()


def test_read_region_pads_outside_with_white(generated_svs: Path) -> None:
    with open_slide(generated_svs) as slide:
        out = slide.read_region((1700, 1300), 0, (200, 150))
        assert out.shape == (150, 200, 3)
        assert (out[100:, :] == 255).all() and (out[:, 100:] == 255).all()
        np.testing.assert_array_equal(
            out[:100, :100], np.asarray(slide.levels[0][1300:1400, 1700:1800])
        )


def test_chunks_follow_the_file_tile_grid() -> None:
    with open_slide(SLIDES_DIR / "cmu-1-small-region.svs") as slide:
        level = slide.levels[0]
        assert level.shape == (2967, 2220, 3)
        assert set(level.chunks[0][:-1]) == {240} and level.chunks[0][-1] == 2967 - 12 * 240
        assert set(level.chunks[1][:-1]) == {240} and level.chunks[1][-1] == 2220 - 9 * 240
    with open_slide(SLIDES_DIR / "tcga-cr-7395-01a-01-ts1.svs") as slide:
        assert slide.level_tile_sizes == ((256, 256), (256, 256))
        assert slide.levels[1].chunksize == (256, 256, 3)
