"""Quality control flags a blurred region and a pen stroke, with a usable georeference."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from napari_wsi_ml.data import QC_FLAGS, plan_patch_read, quality_mask, random_patches
from napari_wsi_ml.slide import open_slide


def test_blurred_region_is_flagged_and_sharp_tissue_is_not(blurred_slide, pipeline_slide) -> None:
    with open_slide(pipeline_slide.path) as slide:
        sharp = quality_mask(slide)
    assert sharp.fraction("blur") == 0.0
    path, blur_box = blurred_slide
    with open_slide(path) as slide:
        qc = quality_mask(slide)
        tissue = slide.tissue_polygons()
    assert qc.downsample == (8.0, 8.0) and qc.flags.shape == (256, 384)
    assert qc.focus_level == 2  # downsample 4 = 1 µm/px
    blurred = qc.polygons("blur")
    box = shapely.box(*blur_box)
    assert box.intersection(tissue).area > 0.6 * box.area
    blurred_tissue = box.intersection(tissue)
    # most of the blurred tissue is flagged, and nothing far from it
    assert blurred.intersection(blurred_tissue).area > 0.6 * blurred_tissue.area
    assert blurred.difference(box.buffer(256)).area == 0
    assert np.nanmax(qc.focus[qc.mask("blur")]) < 4.0 < np.nanmin(sharp.focus)


def test_pen_stroke_is_flagged_and_excluded_from_sampling(pipeline_slide) -> None:
    pen = shapely.union_all([a.polygon for a in pipeline_slide.truth.artefacts if a.kind == "pen"])
    assert pen.area > 0
    with open_slide(pipeline_slide.path) as slide:
        qc = quality_mask(slide)
        flagged = qc.polygons("pen")
        assert flagged.intersection(pen).area > 0.8 * pen.area  # recall
        assert flagged.intersection(pen.buffer(24)).area > 0.9 * flagged.area  # precision
        assert qc.mask("pen").dtype == bool and qc.flags.dtype == np.uint8
        assert set(np.unique(qc.flags)) <= set(range(8))
        plan = plan_patch_read(slide, patch_size=32, target_mpp=0.5)
        patches = random_patches(
            slide,
            plan,
            300,
            qc=qc,
            tissue=slide.tissue_polygons(remove_pen=False),
            min_tissue=0.9,
            seed=2,
        )
    b = patches.boxes
    on_pen = shapely.area(shapely.intersection(shapely.box(*b.T), flagged)) / 64**2
    assert len(patches) == 300 and on_pen.max() <= 0.1 + 1e-9


def test_unknown_flag_is_refused(pipeline_slide) -> None:
    with open_slide(pipeline_slide.path) as slide:
        qc = quality_mask(slide)
    assert set(QC_FLAGS) == {"background", "blur", "pen"}
    assert 0.5 < qc.fraction("background") < 0.9
    with pytest.raises(ValueError, match="unknown QC flag"):
        qc.mask("folds")
