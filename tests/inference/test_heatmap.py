"""Heatmap georeference, file format, slide check, and the hematoxylin-density measure."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from odd_slide import DENSE_BOX_XY, MPP, TISSUE_BOX_XY

from napari_wsi_ml.inference import (
    Heatmap,
    HeatmapError,
    hematoxylin_density_heatmap,
    napari_heatmap_transform,
)


def make_heatmap(**overrides: object) -> Heatmap:
    fields: dict[str, object] = {
        "values": np.arange(12, dtype=np.float32).reshape(3, 4, 1) / 12,
        "origin": (10.0, 20.0),
        "stride": (64.0, 32.0),
        "patch_size": (128.0, 64.0),
        "class_names": ("tumour",),
        "run_id": "run-1",
        "slide_fingerprint": "abc123",
    }
    fields.update(overrides)
    return Heatmap(**fields)  # type: ignore[arg-type]


def test_cell_centres_are_patch_centres() -> None:
    heatmap = make_heatmap()
    centres = heatmap.cell_centres_xy()
    assert centres.shape == (3, 4, 2)
    # cell (row 2, col 3): patch top-left (10 + 3*64, 20 + 2*32), size (128, 64)
    assert tuple(centres[2, 3]) == (10 + 192 + 64, 20 + 64 + 32)


@pytest.mark.parametrize("stride_fraction", [1.0, 0.5])
@pytest.mark.parametrize("mpp", [(0.2527, 0.2531), None])
def test_napari_transform_puts_cell_centres_on_patch_centres(stride_fraction, mpp) -> None:
    patch = 224.0
    heatmap = make_heatmap(
        stride=(patch * stride_fraction,) * 2, patch_size=(patch, patch), origin=(7.0, 3.0)
    )
    scale, translate = napari_heatmap_transform(heatmap, mpp)
    rows, cols = heatmap.grid_shape
    ii, jj = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
    # napari: world = data index * scale + translate (pixel centre at integer index)
    world_row = ii * scale[0] + translate[0]
    world_col = jj * scale[1] + translate[1]
    mpp_x, mpp_y = (1.0, 1.0) if mpp is None else mpp
    centres = heatmap.cell_centres_xy()
    np.testing.assert_allclose(world_col, centres[..., 0] * mpp_x, rtol=0, atol=1e-9)
    np.testing.assert_allclose(world_row, centres[..., 1] * mpp_y, rtol=0, atol=1e-9)


def test_save_load_round_trip(tmp_path: Path) -> None:
    heatmap = make_heatmap(values=np.where(np.eye(3, 4)[..., None] > 0, np.nan, 0.25))
    path = heatmap.save(tmp_path / "h.npz")
    loaded = Heatmap.load(path)
    np.testing.assert_array_equal(loaded.values, heatmap.values)
    assert loaded.metadata() == heatmap.metadata()
    assert not list(tmp_path.glob(".h.npz.*")), "temporary file left behind"


def test_corrupted_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(HeatmapError, match=r"broken\.npz.*not a readable heatmap"):
        Heatmap.load(path)


def test_pickled_payload_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pickled.npz"
    np.savez(path, values=np.zeros((1, 1, 1)), metadata=np.array([{"a": 1}], dtype=object))
    with pytest.raises(HeatmapError, match="not a readable heatmap"):
        Heatmap.load(path)


def test_other_slide_is_refused() -> None:
    with pytest.raises(HeatmapError, match=r"another slide.*refusing"):
        make_heatmap().check_slide("ffff0000", "CMU-1")
    make_heatmap().check_slide("abc123")


@pytest.mark.parametrize("stride", [150, 75])
def test_hematoxylin_density_lands_on_the_dense_region(odd_pyramid_tiff: Path, stride) -> None:
    from napari_wsi_ml.slide import open_slide

    patch = 150
    with open_slide(odd_pyramid_tiff) as slide:
        assert slide.level_downsamples[2] != 9.0  # odd pyramid (3001 // 9 = 333)
        heatmap = hematoxylin_density_heatmap(slide, patch, stride, level=2)
        assert heatmap.slide_fingerprint == slide.fingerprint
        assert slide.mpp == pytest.approx((MPP, MPP))
    values = heatmap.channel("hematoxylin")
    assert heatmap.grid_shape == ((2003 - patch) // stride + 1, (3001 - patch) // stride + 1)
    origins = heatmap.patch_origins_xy()
    x0, y0 = origins[..., 0], origins[..., 1]
    x1, y1 = x0 + patch, y0 + patch

    def fully_inside(box: tuple[int, int, int, int]) -> np.ndarray:
        return (x0 >= box[0]) & (x1 <= box[2]) & (y0 >= box[1]) & (y1 <= box[3])

    def fully_outside(box: tuple[int, int, int, int]) -> np.ndarray:
        return (x1 <= box[0]) | (x0 >= box[2]) | (y1 <= box[1]) | (y0 >= box[3])

    dense = fully_inside(DENSE_BOX_XY)
    stroma = fully_inside(TISSUE_BOX_XY) & fully_outside(DENSE_BOX_XY)
    glass = fully_outside(TISSUE_BOX_XY)
    assert dense.sum() >= 20 and stroma.sum() >= 20 and glass.sum() >= 10
    assert np.isnan(values[glass]).all()
    assert np.isfinite(values[dense | stroma]).all()
    assert values[dense].min() > 2 * values[stroma].max()
    # thresholding halfway recovers the dense box: centroid within half a patch
    centres = heatmap.cell_centres_xy()
    hot = np.nan_to_num(values) > (values[dense].min() + values[stroma].max()) / 2
    centroid = centres[hot].mean(axis=0)
    expected = np.array(
        [(DENSE_BOX_XY[0] + DENSE_BOX_XY[2]) / 2, (DENSE_BOX_XY[1] + DENSE_BOX_XY[3]) / 2]
    )
    assert np.abs(centroid - expected).max() <= patch / 2
