"""Slices of a level: the direct NumPy path equals dask's compute, numpy and OpenSlide."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import openslide
import pytest

from napari_wsi_ml.slide import dask_levels, open_slide, tile_window
from napari_wsi_ml.slide.openslide_tiles import composite_on_white
from napari_wsi_ml.slide.tile_window import TileWindow

INDICES: list[Any] = [
    np.s_[300:700, 250:1000],  # plain window over 2 x 4 tiles
    np.s_[300:700, 250:1000, :],
    np.s_[1200:, 1700:],  # bottom-right corner with partial tiles
    np.s_[-37:, :-5],
    np.s_[:, 512:768],  # one whole tile column
    np.s_[1000:5000, 10:20],  # stop past the edge is clipped, as numpy does
    np.s_[600:600, 3:9],  # empty
    np.s_[::2, 100:300],  # steps, integers, channel subsets, Ellipsis: ordinary dask
    np.s_[5, 100:300],
    np.s_[10:20, 30:40, 1],
    np.s_[10:20, 30:40, :2],
    np.s_[..., 0],
]


@pytest.fixture(scope="module")
def level0(generated_svs: Path) -> np.ndarray:
    osr = openslide.OpenSlide(str(generated_svs))
    pixels = composite_on_white(np.asarray(osr.read_region((0, 0), 0, osr.level_dimensions[0])))
    osr.close()
    return pixels


@pytest.mark.parametrize("index", INDICES, ids=str)
def test_slices_equal_numpy_dask_compute_and_openslide(
    generated_svs: Path, level0: np.ndarray, index: Any
) -> None:
    with open_slide(generated_svs, cache_bytes=8 << 20) as slide:
        level = slide.levels[0]
        plain = da.Array(level.dask, level.name, level.chunks, meta=level._meta)
        ours = level[index]
        assert ours.chunks == plain[index].chunks  # still chunked on the file's tile grid
        np.testing.assert_array_equal(np.asarray(ours), level0[index])
        np.testing.assert_array_equal(ours.compute(), level0[index])


def test_plain_slices_stay_windows_and_compose_like_napari(
    generated_svs: Path, level0: np.ndarray
) -> None:
    with open_slide(generated_svs, cache_bytes=8 << 20) as slide:
        window = slide.levels[0][slice(300, 1100, 1), slice(200, 1500, 1), slice(None)]
        assert isinstance(window, TileWindow)
        inner = window[100:400, -300:]
        assert isinstance(inner, TileWindow)
        np.testing.assert_array_equal(np.asarray(inner), level0[400:700, 1200:1500])
        assert window[:, :] is window  # napari's second, full slice
        assert not isinstance(window[::2], TileWindow) and not isinstance(window + 1, TileWindow)
        np.testing.assert_array_equal(
            np.asarray(window, dtype=np.int16), level0[300:1100, 200:1500]
        )


def test_revisited_window_reads_only_the_cache(generated_svs: Path) -> None:
    with open_slide(generated_svs, cache_bytes=8 << 20) as slide:
        window = slide.levels[0][300:700, 250:1000]  # rows 1-2, columns 0-3: 8 tiles
        np.asarray(window)
        assert (slide.cache.hits, slide.cache.misses, len(slide.cache)) == (0, 8, 8)
        again = np.asarray(slide.levels[0][300:700, 250:1000])
        assert (slide.cache.hits, slide.cache.misses, len(slide.cache)) == (8, 8, 8)
        assert again.flags.writeable and again.flags.owndata  # a new array, never a cached tile


def test_windows_above_the_bound_go_through_dask(
    generated_svs: Path, level0: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object) -> np.ndarray:
        raise AssertionError("the direct path was taken")

    monkeypatch.setattr(dask_levels.CachedTiles, "window", refuse)
    monkeypatch.setattr(tile_window, "WINDOW_MAX_BYTES", 300 * 300 * 3)
    with open_slide(generated_svs, cache_bytes=8 << 20) as slide:
        np.testing.assert_array_equal(
            np.asarray(slide.levels[0][:400, 100:900]), level0[:400, 100:900]
        )
        with pytest.raises(AssertionError, match="direct path"):
            np.asarray(slide.levels[0][:300, :300])


def test_window_graph_holds_only_its_tiles_and_works_with_dask(generated_svs: Path) -> None:
    with open_slide(generated_svs, cache_bytes=8 << 20) as slide:
        window = slide.levels[1][100:600, 200:700]  # level 1 is 900 x 700: rows 0-2, cols 0-2
        graph = window.__dask_graph__()
        assert len(graph.layers) == 1 and len(graph) == 9 == window.npartitions
        expected = np.asarray(slide.levels[1])[100:600, 200:700].astype(np.int64)
        assert (window.astype(np.int64) * 2).sum().compute() == 2 * expected.sum()
        np.testing.assert_array_equal(window.persist().compute(), expected)
