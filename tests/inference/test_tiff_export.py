"""Heatmap TIFFs: slide-sized pyramids that tifffile and OpenSlide open, cells over patches."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import openslide
import pytest
import tifffile

from napari_wsi_ml.errors import HeatmapError
from napari_wsi_ml.inference import Heatmap, export_heatmap_tiff, heatmap
from napari_wsi_ml.inference.tiff_export import heat_lut
from napari_wsi_ml.slide import open_slide


@pytest.fixture(scope="module")
def scored(odd_pyramid_tiff: Path) -> tuple[Heatmap, tuple[int, int], tuple[float, float]]:
    """A probability-like heatmap of the odd slide (purple fraction), stride = patch / 2."""

    def purple(patches: np.ndarray, xy: np.ndarray) -> np.ndarray:
        close = np.abs(patches.astype(int) - (80, 40, 130)).max(axis=-1) <= 40
        fraction = close.reshape(len(patches), -1).mean(axis=1)
        return np.stack([1 - fraction, fraction], axis=1)

    purple.value_range = (0.0, 1.0)  # type: ignore[attr-defined]
    with open_slide(odd_pyramid_tiff) as slide:
        result = heatmap(slide, purple, 32, 16, 1.5, class_names=("normal", "dense"))
        return result, slide.level_dimensions[0], slide.mpp


def sample_cells(result: Heatmap, n: int = 40) -> list[tuple[int, int]]:
    """Scored cells of both kinds plus unscored ones, deterministically."""
    values = result.channel("dense")
    rng = np.random.default_rng(0)
    picks = []
    for mask in (values > 0.9, (values > 0.05) & (values < 0.95), values < 0.05, np.isnan(values)):
        rows, cols = np.nonzero(mask)
        assert len(rows), "the fixture lacks a kind of cell"
        for k in rng.choice(len(rows), size=min(n // 4, len(rows)), replace=False):
            picks.append((int(rows[k]), int(cols[k])))
    return picks


def patch_centre(result: Heatmap, row: int, col: int) -> tuple[int, int]:
    x, y = result.cell_centres_xy()[row, col]
    return int(x), int(y)


def test_uint8_pyramid_opens_in_tifffile_and_openslide(scored, tmp_path: Path) -> None:
    result, size, mpp = scored
    path = export_heatmap_tiff(result, tmp_path / "dense.tif", size, mpp, channel="dense")
    with tifffile.TiffFile(path) as tif:
        pages = tif.pages
        assert pages[0].shape == (size[1], size[0]) and pages[0].dtype == np.uint8
        assert pages[0].is_tiled and pages[0].tilewidth == 256
        assert pages[0].compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert [p.shape for p in pages[1:3]] == [(1002, 1501), (501, 751)]
        assert max(pages[-1].shape) <= 256
        meta = json.loads(pages[0].description)
        assert meta["slide_fingerprint"] == result.slide_fingerprint
        assert meta["class_name"] == "dense" and meta["stride"] == list(result.stride)
        level0 = pages[0].asarray()
    with openslide.OpenSlide(str(path)) as osr:
        assert osr.dimensions == size
        assert float(osr.properties["openslide.mpp-x"]) == pytest.approx(mpp[0])
        assert osr.level_count == len(pages)
        values = result.channel("dense")
        for row, col in sample_cells(result):
            x, y = patch_centre(result, row, col)
            pixel = osr.read_region((x, y), 0, (1, 1)).getpixel((0, 0))
            expected = 0 if np.isnan(values[row, col]) else round(float(values[row, col]) * 255)
            assert pixel[:3] == (expected,) * 3, (row, col)
            assert level0[y, x] == expected
    # beyond the last cell (right edge): no data
    assert level0[:, -1].max() == 0


def test_each_cell_paints_the_stride_box_around_its_patch_centre(scored, tmp_path) -> None:
    result, size, mpp = scored
    path = export_heatmap_tiff(result, tmp_path / "float.tif", size, mpp, channel=1, mode="float32")
    image = tifffile.imread(path)  # level 0
    values = np.nan_to_num(result.channel("dense"), nan=0.0)
    half = int(result.stride[0] / 2)
    for row, col in sample_cells(result):
        x, y = patch_centre(result, row, col)
        box = image[y - half : y + half, x - half : x + half]
        assert (box == values[row, col]).all(), (row, col)


def test_rgba_is_colour_mapped_and_transparent_where_unscored(scored, tmp_path) -> None:
    result, size, mpp = scored
    path = export_heatmap_tiff(
        result, tmp_path / "rgba.tif", size, mpp, channel="dense", mode="rgba"
    )
    lut = heat_lut()
    values = result.channel("dense")
    with openslide.OpenSlide(str(path)) as osr:
        assert osr.dimensions == size
    level0 = tifffile.imread(path)
    assert level0.shape == (size[1], size[0], 4)
    for row, col in sample_cells(result):
        x, y = patch_centre(result, row, col)
        if np.isnan(values[row, col]):
            assert level0[y, x, 3] == 0
        else:
            assert tuple(level0[y, x]) == tuple(lut[round(float(values[row, col]) * 255)])
    assert lut[0, 3] == 0 and lut[255, 3] > 200  # low scores transparent, high ones opaque


def test_integer_fraction_of_level_0_keeps_asap_scale(scored, tmp_path) -> None:
    result, size, mpp = scored
    path = export_heatmap_tiff(
        result, tmp_path / "d4.tif", size, mpp, channel="dense", downsample=4
    )
    level0 = tifffile.imread(path)
    height, width = level0.shape
    assert (width, height) == (size[0] // 4, size[1] // 4)
    # ASAP overlays a likelihood map at scale slide_width // map_width == slide_height // map_height
    assert size[0] // width == size[1] // height == 4
    with tifffile.TiffFile(path) as tif:
        x_resolution = tif.pages[0].tags["XResolution"].value
    assert x_resolution[0] / x_resolution[1] == pytest.approx(1e4 / (mpp[0] * 4))
    values = result.channel("dense")
    for row, col in sample_cells(result):
        x, y = patch_centre(result, row, col)
        expected = 0 if np.isnan(values[row, col]) else round(float(values[row, col]) * 255)
        assert level0[y // 4, x // 4] == expected


def test_bad_requests(scored, tmp_path) -> None:
    result, size, mpp = scored
    with pytest.raises(HeatmapError, match=r"no class 'tumour'.*normal, dense"):
        export_heatmap_tiff(result, tmp_path / "x.tif", size, mpp, channel="tumour")
    with pytest.raises(HeatmapError, match="mode"):
        export_heatmap_tiff(result, tmp_path / "x.tif", size, mpp, mode="jpeg")  # type: ignore[arg-type]
    assert not list(tmp_path.iterdir()), "nothing is written on error"
