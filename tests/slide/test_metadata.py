"""Metadata of a Slide: mpp, properties, associated images, thumbnail, fingerprint, levels."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import openslide
import pytest

from napari_wsi_ml.slide import open_slide

SLIDES_DIR = Path(__file__).resolve().parents[1] / "data" / "slides"


def test_mpp_known_and_unknown() -> None:
    with open_slide(SLIDES_DIR / "cmu-1-small-region.svs") as slide:
        assert slide.mpp == pytest.approx((0.499, 0.499))
        assert slide.vendor == "aperio"
        assert slide.name == "cmu-1-small-region"
    with open_slide(SLIDES_DIR / "tcga-cr-7395-01a-01-ts1.svs") as slide:
        assert slide.mpp is None
        assert slide.level_downsamples[1] == pytest.approx(2.0005, abs=1e-4)


def test_associated_images_are_rgb_and_equal_openslide() -> None:
    path = SLIDES_DIR / "cmu-1-small-region.svs"
    osr = openslide.OpenSlide(str(path))
    with open_slide(path) as slide:
        assert sorted(slide.associated_images) == ["label", "macro", "thumbnail"]
        for name, image in osr.associated_images.items():
            ours = slide.associated_images[name]
            assert ours.dtype == np.uint8 and ours.shape == (image.height, image.width, 3)
            np.testing.assert_array_equal(ours, np.asarray(image.convert("RGB")))
        with pytest.raises(KeyError):
            slide.associated_images["nope"]
    osr.close()


def test_thumbnail_fits_and_looks_like_the_slide() -> None:
    with open_slide(SLIDES_DIR / "cmu-1-small-region.svs") as slide:
        thumb = slide.thumbnail(256)
        assert max(thumb.shape[:2]) == 256 and thumb.shape[2] == 3
        assert thumb.shape[1] == round(2220 / (2967 / 256))
        level = np.asarray(slide.levels[0]).astype(float)
        assert abs(thumb.mean() - level.mean()) < 2.0


def test_best_level_for_downsample_matches_openslide() -> None:
    path = SLIDES_DIR / "boxes.tiff"
    osr = openslide.OpenSlide(str(path))
    with open_slide(path) as slide:
        for d in (0.5, 1, 1.9, 2, 3, 4.016, 4.02, 8.0, 8.1, 100):
            assert slide.best_level_for_downsample(d) == osr.get_best_level_for_downsample(d), d
    osr.close()


def test_fingerprint_is_stable_and_content_based(tmp_path: Path) -> None:
    source = SLIDES_DIR / "cmu-1-small-region.svs"
    copy = tmp_path / "renamed.svs"
    shutil.copyfile(source, copy)
    with open_slide(source) as a, open_slide(copy) as b, open_slide(SLIDES_DIR / "small.svs") as c:
        assert a.fingerprint == b.fingerprint
        assert len(a.fingerprint) == 64
        assert a.fingerprint != c.fingerprint


def test_fingerprint_changes_when_the_tail_changes(tmp_path: Path) -> None:
    copy = tmp_path / "edited.svs"
    shutil.copyfile(SLIDES_DIR / "cmu-1-small-region.svs", copy)
    with open_slide(copy) as slide:
        before = slide.fingerprint
    data = bytearray(copy.read_bytes())
    data[-10] ^= 0xFF
    copy.write_bytes(bytes(data))
    with open_slide(copy) as slide:
        assert slide.fingerprint != before


def test_opening_a_huge_level_graph_is_instant(generated_svs: Path) -> None:
    """The dask graph is blockwise: its size does not grow with the number of tiles."""
    with open_slide(generated_svs) as slide:
        graph = slide.levels[0].__dask_graph__()
        assert len(graph.layers) == 1
        (layer,) = graph.layers.values()
        assert not layer.is_materialized()
