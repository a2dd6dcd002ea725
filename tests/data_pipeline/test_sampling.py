"""Grid and online random patches: tissue fractions checked against exact shapely areas."""

from __future__ import annotations

import numpy as np
import pytest
import shapely

from napari_wsi_ml.data import (
    RandomPatchSampler,
    grid_corners,
    grid_patches,
    plan_patch_read,
    quality_mask,
    random_patches,
    tissue_index,
)
from napari_wsi_ml.slide import open_slide


def exact_fraction(geometry, xy: np.ndarray, extent: tuple[int, int]) -> np.ndarray:
    """Fraction of each box inside ``geometry``, computed box by box with shapely."""
    out = []
    for x, y in np.asarray(xy, dtype=float):
        box = shapely.box(x, y, x + extent[0], y + extent[1])
        out.append(box.intersection(geometry).area / box.area)
    return np.array(out)


@pytest.fixture(scope="module")
def opened(pipeline_slide):
    with open_slide(pipeline_slide.path) as slide:
        yield slide


@pytest.mark.parametrize(("min_tissue", "use_qc"), [(0.4, False), (0.4, True), (0.9, True)])
def test_online_patches_always_meet_the_tissue_fraction(opened, min_tissue, use_qc) -> None:
    plan = plan_patch_read(opened, patch_size=64, target_mpp=0.5)
    qc = quality_mask(opened) if use_qc else None
    usable = opened.tissue_polygons()
    if qc is not None:
        assert qc.fraction("pen") > 0.01
        usable = usable.difference(qc.polygons())
    sampler = RandomPatchSampler(opened, plan, min_tissue=min_tissue, qc=qc, seed=3)
    patches = sampler.sample(400, epoch=0)
    assert len(patches) == 400 and not patches.notes
    fraction = exact_fraction(usable, patches.xy, plan.extent)
    assert fraction.min() >= min_tissue
    np.testing.assert_allclose(patches.coverage, fraction, atol=1e-9)
    # inside the slide, on whole level-1 pixels
    assert (patches.xy >= 0).all()
    assert (patches.xy + plan.extent <= opened.level_dimensions[0]).all()
    assert (patches.xy % 2 == 0).all()
    # spread over the tissue, not stuck in one place
    assert len(np.unique(patches.xy // 256, axis=0)) > 20  # of ~32 cells with tissue


def test_a_fresh_set_each_epoch_and_the_same_set_for_the_same_epoch(opened) -> None:
    plan = plan_patch_read(opened, patch_size=64, target_mpp=0.5)
    sampler = RandomPatchSampler(opened, plan, seed=5)
    first, again, second = (sampler.sample(100, epoch=e).xy for e in (0, 0, 1))
    np.testing.assert_array_equal(first, again)
    shared = {tuple(p) for p in first} & {tuple(p) for p in second}
    assert len(shared) < 5
    other_seed = random_patches(opened, plan, 100, seed=6, epoch=0).xy
    assert not np.array_equal(first, other_seed)
    rng_draw = sampler.sample(100, rng=np.random.default_rng(9)).xy
    np.testing.assert_array_equal(rng_draw, sampler.sample(100, rng=np.random.default_rng(9)).xy)


def test_scarce_tissue_returns_fewer_patches_with_a_note(opened) -> None:
    plan = plan_patch_read(opened, patch_size=64, target_mpp=0.5)
    tiny = shapely.box(1000, 1000, 1100, 1100)  # smaller than one patch (128 px)
    patches = random_patches(opened, plan, 10, tissue=tiny, min_tissue=0.9)
    assert len(patches) == 0 and "only 0 of 10" in patches.notes[0]


def test_grid_keeps_exactly_the_patches_meeting_the_fraction(opened) -> None:
    plan = plan_patch_read(opened, patch_size=64, target_mpp=0.5)
    tissue = opened.tissue_polygons()
    corners = grid_corners(opened.level_dimensions[0], plan, stride=32)
    assert len(corners) == 47 * 31  # (3072 - 128) / 64 + 1 by (2048 - 128) / 64 + 1
    exact = exact_fraction(tissue, corners, plan.extent)
    index = tissue_index(opened, plan, tissue=tissue)
    estimate = index.estimate(corners, plan.extent)
    assert np.abs(estimate - exact).max() < 0.05  # well inside the 0.1 exact-check margin
    patches = grid_patches(opened, plan, stride=32, index=index, min_tissue=0.4)
    expected = corners[exact >= 0.4]
    np.testing.assert_array_equal(patches.xy, expected)
    assert 200 < len(patches) < len(corners)
    assert (patches.labels == -1).all() and patches.counts() == {"unlabelled": len(patches)}
    everything = grid_patches(opened, plan, min_tissue=0.0)
    assert len(everything) == 24 * 16  # 3072 / 128 by 2048 / 128, no overlap


def test_grid_labels_and_manifest_rows(opened) -> None:
    plan = plan_patch_read(opened, patch_size=64, target_mpp=0.5)
    patches = grid_patches(
        opened, plan, label="tumour", label_names=("normal", "tumour"), min_tissue=0.5
    )
    assert set(patches.labels.tolist()) == {1}
    assert patches.counts() == {"normal": 0, "tumour": len(patches)}
    rows = patches.rows()
    assert rows[0]["label"] == "tumour" and rows[0]["level"] == 1 and rows[0]["mpp"] == 0.5
    assert (rows[0]["x"], rows[0]["y"]) == tuple(patches.xy[0].tolist())
    assert rows[0]["width"] == 128 and rows[0]["patch_width"] == 64
    frame = patches.to_frame()
    assert len(frame) == len(patches) and frame["coverage"].min() >= 0.5
    np.testing.assert_array_equal(patches.boxes[:, 2:] - patches.boxes[:, :2], 128)
