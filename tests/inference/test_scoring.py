"""``heatmap()``: which patches, which pixels, in which batches, with how much read ahead."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from odd_slide import TISSUE_BOX_XY
from shapely.geometry import Polygon, box

from napari_wsi_ml.data import grid_patches
from napari_wsi_ml.data.reading import read_patch
from napari_wsi_ml.errors import ConfigError, HeatmapError, SlideError
from napari_wsi_ml.inference import heatmap
from napari_wsi_ml.inference import regions as regions_module
from napari_wsi_ml.inference.grid import scoring_plan
from napari_wsi_ml.slide import open_slide

CMU = Path(__file__).resolve().parents[1] / "data" / "slides" / "cmu-1-small-region.svs"


def mean_colour(patches: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """Three scores per patch: its mean R, G, B in [0, 1]."""
    return patches.reshape(len(patches), -1, 3).mean(axis=1) / 255


@pytest.mark.parametrize(
    ("mpp", "patch", "stride", "level"),
    [
        (1.5, 32, None, None),  # level 1 (downsample 3.002), read as is
        (2.0, 16, 7, None),  # level 1, 21 px resized to 16, odd stride
        (None, 24, 12, 2),  # level 2 (downsample 9.017) at its own resolution
    ],
)
def test_every_patch_is_read_exactly_as_read_patch(odd_pyramid_tiff, mpp, patch, stride, level):
    seen: list[tuple[int, np.ndarray]] = []
    with open_slide(odd_pyramid_tiff) as slide:
        plan = scoring_plan(slide, patch, mpp, level=level)

        def check(patches: np.ndarray, xy: np.ndarray) -> np.ndarray:
            for image, corner in zip(patches, xy, strict=True):
                np.testing.assert_array_equal(image, read_patch(slide, corner, plan))
            seen.append((len(xy), xy.copy()))
            return mean_colour(patches, xy)

        result = heatmap(
            slide, check, patch, stride, mpp, level=level, batch_size=13, region_px=150
        )
        expected = grid_patches(slide, plan, stride=stride, min_tissue=0.4)
    sizes = [n for n, _ in seen]
    assert sizes[:-1] == [13] * (len(sizes) - 1) and 1 <= sizes[-1] <= 13
    corners = np.concatenate([xy for _, xy in seen])
    # the same patches as the training grid of tissue patches, each scored once
    assert sorted(map(tuple, corners.tolist())) == sorted(map(tuple, expected.xy.tolist()))
    scored = np.isfinite(result.values[..., 0])
    assert scored.sum() == len(expected) == result.extra["patches_scored"]
    origins = result.patch_origins_xy()[scored]
    assert sorted(map(tuple, origins.astype(int).tolist())) == sorted(map(tuple, corners.tolist()))
    assert result.patch_size == plan.extent and result.origin == (0.0, 0.0)
    assert result.stride == plan.level0_stride(stride)


def test_result_does_not_depend_on_batch_or_region_size(odd_pyramid_tiff) -> None:
    with open_slide(odd_pyramid_tiff) as slide:
        first = heatmap(slide, mean_colour, 32, 16, 1.5, batch_size=5, region_px=64)
        second = heatmap(slide, mean_colour, 32, 16, 1.5, batch_size=256, region_px=4096)
    np.testing.assert_array_equal(first.values, second.values)
    assert np.isfinite(first.values).any() and np.isnan(first.values).any()


def test_glass_is_nan_and_tissue_is_scored(odd_pyramid_tiff) -> None:
    with open_slide(odd_pyramid_tiff) as slide:
        result = heatmap(slide, mean_colour, 32, None, 1.5, class_names=("r", "g", "b"))
    origins = result.patch_origins_xy()
    x0, y0 = origins[..., 0], origins[..., 1]
    x1, y1 = x0 + result.patch_size[0], y0 + result.patch_size[1]
    bx0, by0, bx1, by1 = TISSUE_BOX_XY
    inside = (x0 >= bx0) & (x1 <= bx1) & (y0 >= by0) & (y1 <= by1)
    outside = (x1 <= bx0) | (x0 >= bx1) | (y1 <= by0) | (y0 >= by1)
    assert inside.sum() > 100 and outside.sum() > 50
    assert np.isfinite(result.values[inside]).all()
    assert np.isnan(result.values[outside]).all()
    assert result.class_names == ("r", "g", "b")


def test_names_run_id_and_value_range_come_from_the_score_function(odd_pyramid_tiff) -> None:
    class Scorer:
        class_names = ("normal", "dense")
        run_id = "run-42"
        value_range = (0.0, 1.0)

        def __call__(self, patches: np.ndarray, xy: np.ndarray) -> np.ndarray:
            red = mean_colour(patches, xy)[:, :1]
            return np.hstack([red, 1 - red])

    with open_slide(odd_pyramid_tiff) as slide:
        result = heatmap(slide, Scorer(), 32, None, 1.5)
        fingerprint = slide.fingerprint
    assert result.class_names == ("normal", "dense") and result.run_id == "run-42"
    assert result.extra["value_range"] == [0.0, 1.0]
    assert result.slide_fingerprint == fingerprint
    assert result.extra["read_plan"]["level"] == 1


def test_the_reader_runs_ahead_but_only_by_prefetch_batches(odd_pyramid_tiff, monkeypatch):
    produced = [0]
    original = regions_module._BatchBuilder.flush

    def counting_flush(self):
        batch = original(self)
        produced[0] += batch is not None
        return batch

    monkeypatch.setattr(regions_module._BatchBuilder, "flush", counting_flush)
    ahead: list[int] = []

    def slow(patches: np.ndarray, xy: np.ndarray) -> np.ndarray:
        time.sleep(0.01)  # let the reader fill the queue
        ahead.append(produced[0] - (len(ahead) + 1))
        return mean_colour(patches, xy)

    with open_slide(odd_pyramid_tiff) as slide:
        result = heatmap(slide, slow, 32, None, 1.5, batch_size=16, prefetch=2, region_px=200)
    assert len(ahead) > 20
    # queued (≤ 2) + one finished, waiting to be queued: never more
    assert max(ahead) <= 3
    assert max(ahead) >= 2, "the reader never read ahead of the scoring"
    assert result.extra["patches_scored"] > 300


def test_regions_are_bounded(odd_pyramid_tiff, monkeypatch) -> None:
    sizes: list[tuple[int, int]] = []
    with open_slide(odd_pyramid_tiff) as slide:
        original = slide.read_region

        def recording(location, level, size):
            sizes.append(tuple(size))
            return original(location, level, size)

        monkeypatch.setattr(slide, "read_region", recording)
        heatmap(slide, mean_colour, 16, 8, 1.5, region_px=100)
    # a region holds whole patches: at most region_px + one patch (16 px) a side
    assert len(sizes) > 10
    assert max(max(s) for s in sizes) <= 100 + 16


class DamagedSlide:
    """A slide whose pixels in a level-0 box cannot be decoded."""

    def __init__(self, slide, damaged: tuple[int, int, int, int]) -> None:
        self._slide, self.damaged = slide, box(*damaged)

    def __getattr__(self, name: str):
        return getattr(self._slide, name)

    def read_region(self, location, level, size):
        ds = self._slide.level_downsamples[level]
        read = box(location[0], location[1], location[0] + size[0] * ds, location[1] + size[1] * ds)
        if read.intersection(self.damaged).area > 0:
            raise SlideError("Cannot decode the pixels of tile (3, 4): damaged.")
        return self._slide.read_region(location, level, size)


def test_patches_over_undecodable_tiles_are_skipped_and_counted(odd_pyramid_tiff) -> None:
    damaged = (1200, 700, 1500, 1000)
    with open_slide(odd_pyramid_tiff) as slide:
        result = heatmap(DamagedSlide(slide, damaged), mean_colour, 32, None, 1.5)  # type: ignore[arg-type]
        whole = heatmap(slide, mean_colour, 32, None, 1.5)
    origins = result.patch_origins_xy()
    x0, y0 = origins[..., 0], origins[..., 1]
    size = result.patch_size[0]
    touching = (
        (x0 < damaged[2]) & (x0 + size > damaged[0]) & (y0 < damaged[3]) & (y0 + size > damaged[1])
    )
    scored_before = np.isfinite(whole.values[..., 0])
    lost = touching & scored_before
    assert lost.sum() >= 9
    assert np.isnan(result.values[lost]).all()
    np.testing.assert_array_equal(result.values[~touching], whole.values[~touching])
    assert result.extra["unreadable_patches"] == lost.sum()
    assert "damaged" in result.extra["unreadable_examples"][0]


def test_a_bad_score_shape_is_a_clear_error_and_stops_the_reader(odd_pyramid_tiff) -> None:
    with open_slide(odd_pyramid_tiff) as slide:
        with pytest.raises(HeatmapError, match=r"shape \(7, 2, 2\).*expected \(7, C\)"):
            heatmap(slide, lambda p, xy: np.zeros((len(p), 2, 2)), 32, None, 1.5, batch_size=7)
        with pytest.raises(HeatmapError, match=r"shape \(3, 1\) for 4 patches"):
            heatmap(slide, lambda p, xy: np.zeros((3, 1)), 32, None, 1.5, batch_size=4)
    time.sleep(0.2)
    assert not [t for t in threading.enumerate() if t.name == "heatmap-reader"]


def test_a_failing_score_function_stops_the_reader(odd_pyramid_tiff) -> None:
    def failing(patches: np.ndarray, xy: np.ndarray) -> np.ndarray:
        raise RuntimeError("model exploded")

    with open_slide(odd_pyramid_tiff) as slide, pytest.raises(RuntimeError, match="exploded"):
        heatmap(slide, failing, 16, 8, 1.5, batch_size=4, prefetch=1)
    time.sleep(0.2)
    assert not [t for t in threading.enumerate() if t.name == "heatmap-reader"]


def test_progress_counts_tissue_patches(odd_pyramid_tiff) -> None:
    calls: list[tuple[int, int]] = []
    with open_slide(odd_pyramid_tiff) as slide:
        result = heatmap(
            slide,
            mean_colour,
            32,
            None,
            1.5,
            batch_size=50,
            progress=lambda d, t: calls.append((d, t)),
        )
    total = result.extra["patches_scored"]
    assert calls[-1] == (total, total)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert len(calls) == -(-total // 50)


def test_without_tissue_nothing_is_scored(odd_pyramid_tiff) -> None:
    with open_slide(odd_pyramid_tiff) as slide:
        result = heatmap(slide, mean_colour, 32, None, 1.5, tissue=Polygon())
        everything = heatmap(slide, mean_colour, 32, None, 1.5, min_tissue=0)
    assert np.isnan(result.values).all() and result.extra["patches_scored"] == 0
    assert np.isfinite(everything.values).all()


def test_impossible_requests_are_config_errors(odd_pyramid_tiff) -> None:
    with open_slide(odd_pyramid_tiff) as slide:
        with pytest.raises(ConfigError, match="does not fit"):
            heatmap(slide, mean_colour, 4000, None, None)
        with pytest.raises(ConfigError, match="coarser than"):
            heatmap(slide, mean_colour, 32, None, 1.0, level=2)
        with pytest.raises(ConfigError, match="no level 5"):
            heatmap(slide, mean_colour, 32, None, None, level=5)


def test_real_aperio_slide_at_a_target_resolution() -> None:
    with open_slide(CMU) as slide:
        result = heatmap(slide, mean_colour, 56, 28, 1.0)  # level 0 at 0.499 µm/px, resized
        plan = scoring_plan(slide, 56, 1.0)
    assert plan.level == 0 and plan.read_size == (112, 112) and plan.extent == (112, 112)
    assert result.stride == (56.0, 56.0)
    scored = result.values[np.isfinite(result.values[..., 0])]
    # H&E tissue: pink-purple, clearly darker than glass in green
    assert len(scored) > 500 and np.median(scored[:, 1]) < 0.8
