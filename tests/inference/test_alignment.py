"""Heatmaps line up: a thresholded heatmap covers the truth (IoU ≥ 0.9, centroid ≤ ½ patch).

Oracles score from what the heatmap hands them: :func:`coverage_oracle` from the level-0
coordinates (is every score put where its patch is?), :func:`colour_oracle` from the pixels
(was every patch read where it belongs?). Each case is checked in level-0 coordinates and
through the napari layer's transform, at stride = patch and stride = patch / 2, on a synthetic
slide with odd sizes and a downsample-4 pyramid, on CMU-1-Small-Region.svs (real Aperio, with
its detected tissue), on the TCGA slide (downsample 2.0005) and on a generic TIFF with
downsamples 3.002 and 9.017.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from alignment_checks import (
    centroid_error,
    colour_oracle,
    coverage_oracle,
    hot_region,
    hot_region_through_napari,
    iou,
)
from odd_slide import DENSE_BOX_XY, PURPLE
from shapely.geometry import box

from napari_wsi_ml.inference import Heatmap, heatmap
from napari_wsi_ml.inference.grid import scoring_plan
from napari_wsi_ml.slide import open_slide

SLIDES_DIR = Path(__file__).resolve().parents[1] / "data" / "slides"  # see PROVENANCE.md
MIN_IOU = 0.9


def assert_aligned(result: Heatmap, truth, mpp) -> None:
    patch = max(result.patch_size)
    for region in (hot_region(result), hot_region_through_napari(result, mpp)):
        assert iou(region, truth) >= MIN_IOU, f"IoU {iou(region, truth):.3f}"
        assert centroid_error(region, truth) <= patch / 2, f"{centroid_error(region, truth):.1f}"


@pytest.mark.parametrize("half_stride", [False, True], ids=["stride=patch", "stride=patch/2"])
@pytest.mark.parametrize(
    ("mpp", "patch"),
    [(1.0, 16), (1.25, 16)],
    ids=["level-1 as is", "level-1 resized"],
)
def test_synthetic_tumour(synthetic_alignment_slide, mpp, patch, half_stride) -> None:
    truth = synthetic_alignment_slide
    assert (truth.width % 2, truth.height % 2, truth.downsample) == (1, 1, 4)
    with open_slide(truth.path) as slide:
        assert slide.level_downsamples[1] != 4.0  # OpenSlide's average of 5003/1251, 3001/751
        plan = scoring_plan(slide, patch, mpp)
        assert plan.level == 1
        result = heatmap(
            slide,
            coverage_oracle(truth.tumour, plan.extent),
            patch,
            patch // 2 if half_stride else patch,
            mpp,
        )
        slide_mpp = slide.mpp
    expected_stride = plan.extent[0] // 2 if half_stride else plan.extent[0]
    assert result.stride == (expected_stride, expected_stride)
    assert result.patch_size == plan.extent
    assert_aligned(result, truth.tumour, slide_mpp)


def test_the_measures_catch_a_shift_of_half_a_patch(synthetic_alignment_slide) -> None:
    truth = synthetic_alignment_slide
    with open_slide(truth.path) as slide:
        plan = scoring_plan(slide, 16, 1.0)
        result = heatmap(slide, coverage_oracle(truth.tumour, plan.extent), 16, 16, 1.0)
    shifted = replace(result, origin=(result.patch_size[0] / 2, result.patch_size[1] / 2))
    assert centroid_error(hot_region(shifted), truth.tumour) > result.patch_size[0] / 2


@pytest.mark.parametrize("half_stride", [False, True], ids=["stride=patch", "stride=patch/2"])
def test_cmu_small_region_tissue(half_stride) -> None:
    with open_slide(SLIDES_DIR / "cmu-1-small-region.svs") as slide:
        tissue = slide.tissue_polygons()
        plan = scoring_plan(slide, 16, 2.0)  # level 0 (the only one), 64 px resized to 16
        assert plan.read_size == (64, 64) and plan.extent == (64, 64)
        result = heatmap(
            slide, coverage_oracle(tissue, plan.extent), 16, 8 if half_stride else 16, 2.0
        )
        slide_mpp = slide.mpp
    assert_aligned(result, tissue, slide_mpp)


@pytest.mark.parametrize("half_stride", [False, True], ids=["stride=patch", "stride=patch/2"])
def test_tcga_downsample_2_0005_without_mpp(half_stride) -> None:
    with open_slide(SLIDES_DIR / "tcga-cr-7395-01a-01-ts1.svs") as slide:
        assert slide.mpp is None and slide.level_downsamples[1] == pytest.approx(2.0005, abs=1e-4)
        tissue = slide.tissue_polygons()
        plan = scoring_plan(slide, 32, None, level=1)
        result = heatmap(
            slide,
            coverage_oracle(tissue, plan.extent),
            32,
            16 if half_stride else 32,
            None,
            level=1,
        )
    assert result.patch_size == (64.0, 64.0)
    assert_aligned(result, tissue, None)


@pytest.mark.parametrize("half_stride", [False, True], ids=["stride=patch", "stride=patch/2"])
@pytest.mark.parametrize(("mpp", "patch", "level"), [(1.5, 16, 1), (4.5, 8, 2)])
def test_odd_downsample_tiff_pixels(odd_pyramid_tiff: Path, mpp, patch, level, half_stride) -> None:
    dense = box(*DENSE_BOX_XY)
    with open_slide(odd_pyramid_tiff) as slide:
        assert slide.level_downsamples[level] not in (3.0, 9.0)
        assert scoring_plan(slide, patch, mpp).level == level
        result = heatmap(
            slide, colour_oracle(PURPLE), patch, patch // 2 if half_stride else patch, mpp
        )
        slide_mpp = slide.mpp
    assert_aligned(result, dense, slide_mpp)
