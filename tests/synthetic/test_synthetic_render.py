"""The renderer: seamless tiles, levels that look like downsamples of level 0."""

from __future__ import annotations

import numpy as np
import pytest

from napari_wsi_ml.synthetic import make_scene, render_region
from napari_wsi_ml.synthetic.tiff_writer import level_dimensions


@pytest.fixture(scope="module")
def scene():
    return make_scene(6000, 4000, seed=12, tumour="large", morphology="b", n_pieces=1)


def _tumour_window(scene, size: int) -> tuple[int, int]:
    point = scene.lesions[0].polygon.representative_point()
    return (int(point.x) - size // 2) // 64 * 64, (int(point.y) - size // 2) // 64 * 64


def test_regions_join_without_seams(scene):
    x, y = _tumour_window(scene, 512)
    whole = render_region(scene, x, y, 512, 256, 1)
    left = render_region(scene, x, y, 256, 256, 1)
    right = render_region(scene, x + 256, y, 256, 256, 1)
    assert np.array_equal(whole, np.hstack([left, right]))


@pytest.mark.parametrize("d", [2, 4, 8])
def test_levels_look_like_a_downsample_of_level_0(scene, d):
    x, y = _tumour_window(scene, 512)
    level0 = render_region(scene, x, y, 512, 512, 1).astype(np.float32)
    shrunk = level0.reshape(512 // d, d, 512 // d, d, 3).mean(axis=(1, 3))
    level = render_region(scene, x // d, y // d, 512 // d, 512 // d, d).astype(np.float32)
    assert np.abs(level.mean(axis=(0, 1)) - shrunk.mean(axis=(0, 1))).max() < 8
    # and the same places are dark: the coarse pictures correlate
    assert np.corrcoef(level.mean(axis=2).ravel(), shrunk.mean(axis=2).ravel())[0, 1] > 0.3


def test_tumour_is_darker_and_more_crowded_than_stroma(scene):
    x, y = _tumour_window(scene, 512)
    tumour = render_region(scene, x, y, 512, 512, 1).mean(axis=2)
    normal = make_scene(6000, 4000, seed=12, tumour="none", n_pieces=1)
    stroma = render_region(normal, x, y, 512, 512, 1).mean(axis=2)
    assert tumour.mean() < stroma.mean() - 50
    assert (tumour < 100).mean() > 4 * (stroma < 100).mean()  # nuclei cover much more


def test_level_dimensions_are_ceil_of_powers():
    assert level_dimensions(5003, 3001, 4) == [(5003, 3001), (1251, 751), (313, 188)]
    assert level_dimensions(4096, 4096, 2, min_size=1024) == [
        (4096, 4096),
        (2048, 2048),
        (1024, 1024),
    ]
