"""Heatmaps and the sample data in napari: cells on their patches, refused on another slide."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qtpy.QtWidgets import QApplication
from viewer_slides import DENSE_BOX_XY, SLIDES_DIR, SYNTH_MPP, TISSUE_BOX_XY

pytestmark = pytest.mark.gui

PLUGIN = "napari-wsi-ml"


@pytest.mark.parametrize("stride", [256, 128])
def test_heatmap_cells_land_on_their_patches(make_napari_viewer, synthetic_slide, stride) -> None:
    from napari_wsi_ml.inference import hematoxylin_density_heatmap
    from napari_wsi_ml.viewer.heatmap_layer import heatmap_layer_data

    viewer = make_napari_viewer()
    [slide_layer] = viewer.open(synthetic_slide, plugin=PLUGIN)
    slide = slide_layer.metadata["slide"]
    heatmap = hematoxylin_density_heatmap(slide, 256, stride)
    data, kwargs, _ = heatmap_layer_data(heatmap, slide)
    layer = viewer.add_image(data, **kwargs)
    centres = heatmap.cell_centres_xy()
    rows, cols = heatmap.grid_shape
    for i, j in [(0, 0), (rows - 1, cols - 1), (rows // 2, cols // 3)]:
        world = layer.data_to_world([i, j])
        expected = np.array([centres[i, j, 1], centres[i, j, 0]]) * SYNTH_MPP
        np.testing.assert_allclose(world, expected, atol=1e-6)
        # the same world point is the patch centre in the slide layer's data (level-0 + ½ px)
        np.testing.assert_allclose(
            slide_layer.world_to_data(world), expected / SYNTH_MPP - 0.5, atol=1e-6
        )
    # the dense region is the hot region; glass is transparent (the lowest value)
    values = heatmap.channel(0)
    hot = values > np.nanpercentile(values, 90)
    hot_xy = centres[hot]
    assert (hot_xy[:, 0] >= DENSE_BOX_XY[0] - 256).all() and (
        hot_xy[:, 0] <= DENSE_BOX_XY[2] + 256
    ).all()
    glass = centres[..., 0] > TISSUE_BOX_XY[2] + 256
    assert np.all(layer.data[glass] == layer.contrast_limits[0])
    assert layer.colormap.map(np.array([0.0]))[0, 3] == 0.0  # lowest value fully transparent


def test_heatmap_of_another_slide_is_refused(synthetic_slide: Path) -> None:
    from napari_wsi_ml.inference import HeatmapError, hematoxylin_density_heatmap
    from napari_wsi_ml.slide import open_slide
    from napari_wsi_ml.viewer.heatmap_layer import heatmap_layer_data

    with (
        open_slide(synthetic_slide) as slide,
        open_slide(SLIDES_DIR / "cmu-1-small-region.svs") as other,
    ):
        heatmap = hematoxylin_density_heatmap(slide, 512)
        with pytest.raises(HeatmapError, match="another slide"):
            heatmap_layer_data(heatmap, other)


def test_sample_data_gives_slide_heatmap_and_two_raters(
    make_napari_viewer, tmp_path: Path, monkeypatch
) -> None:
    from napari_wsi_ml.viewer import sample_data

    directory = tmp_path / "sample"
    files = sample_data.ensure_sample(directory, size=(4096, 3072))
    assert sorted(files.rater_paths) == ["rater1", "rater2"]
    assert sample_data.ensure_sample(directory, size=(4096, 3072)) == files  # cached
    monkeypatch.setenv("NAPARI_WSI_ML_SAMPLE_DIR", str(directory))
    viewer = make_napari_viewer(show=True)
    viewer.open_sample(PLUGIN, "synthetic_slide")
    names = [layer.name for layer in viewer.layers]
    assert names == ["sample_he", "hematoxylin-density: hematoxylin", "rater1", "rater2"]
    slide_layer, heat, rater1, rater2 = viewer.layers
    fingerprint = slide_layer.metadata["slide_fingerprint"]
    assert all(layer.metadata["slide_fingerprint"] == fingerprint for layer in viewer.layers)
    assert len(rater1.data) >= 1 and len(rater2.data) >= 1
    assert not np.allclose(rater1.edge_color[0], rater2.edge_color[0])
    np.testing.assert_allclose(rater1.scale, slide_layer.scale)
    # the raters' outlines lie on the hot part of the heatmap (both mark the tumour)
    outline = np.concatenate(rater1.data)  # level-0 (row, col)
    heat_index = np.round(heat.world_to_data(rater1.data_to_world(outline.mean(0)))).astype(int)
    assert heat.data[tuple(heat_index)] > np.percentile(heat.data, 75)
    for _ in range(20):
        QApplication.processEvents()


# --- an odd pyramid (downsample 2.0005 / 2.0007), stride = patch and patch / 2 -------------

ODD_SIZE = (4001, 3001)  # level 1: 2000 × 1500 (×2.0005, ×2.0007), level 2: 1000 × 750
ODD_MPP = 0.25
ODD_PATCH = 224


@pytest.fixture(scope="module")
def odd_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generic tiled TIFF with non-power-of-two downsamples that OpenSlide opens."""
    import tifffile

    path = tmp_path_factory.mktemp("odd") / "odd-pyramid.tiff"
    with tifffile.TiffWriter(path) as writer:
        for level in range(3):
            width, height = ODD_SIZE[0] // 2**level, ODD_SIZE[1] // 2**level
            image = np.full((height, width, 3), 240, np.uint8)
            image[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = (200, 120, 170)
            writer.write(
                image,
                tile=(256, 256),
                compression="zlib",
                photometric="rgb",
                subfiletype=0 if level == 0 else 1,
                resolution=(1e4 / ODD_MPP, 1e4 / ODD_MPP),
                resolutionunit="CENTIMETER",
            )
    return path


def one_hot_heatmap(slide, stride: float, hot: tuple[int, int]):
    """A heatmap over the whole slide, origin off the pixel grid, 0 except one cell of 1."""
    from napari_wsi_ml.inference import Heatmap

    origin = (13.5, 7.25)
    cols = int((slide.level_dimensions[0][0] - origin[0] - ODD_PATCH) // stride) + 1
    rows = int((slide.level_dimensions[0][1] - origin[1] - ODD_PATCH) // stride) + 1
    values = np.zeros((rows, cols), np.float32)
    values[hot] = 1.0
    return Heatmap(values, origin, stride, ODD_PATCH, ("tumour",), "one-hot", slide.fingerprint,
                   extra={"value_range": [0.0, 1.0]})  # fmt: skip


def test_cell_centres_on_an_odd_pyramid_in_world_and_on_screen(
    make_napari_viewer, odd_slide: Path
) -> None:
    from napari_wsi_ml.viewer.heatmap_layer import cell_at, heatmap_layer_data

    viewer = make_napari_viewer(show=True)
    [slide_layer] = viewer.open(odd_slide, plugin=PLUGIN)
    slide = slide_layer.metadata["slide"]
    assert slide.level_downsamples[1] == pytest.approx(2.0006, abs=2e-4)  # really odd
    hot = (5, 7)
    for stride in (ODD_PATCH, ODD_PATCH / 2):
        heatmap = one_hot_heatmap(slide, stride, hot)
        data, kwargs, _ = heatmap_layer_data(heatmap, slide, opacity=1.0)
        for other in viewer.layers[1:]:
            other.visible = False
        layer = viewer.add_image(data, **kwargs)
        centres = heatmap.cell_centres_xy()
        rows, cols = heatmap.grid_shape
        for i, j in [(0, 0), hot, (rows - 1, cols - 1), (rows // 2, cols // 3)]:
            expected = np.array([centres[i, j, 1], centres[i, j, 0]]) * ODD_MPP
            np.testing.assert_allclose(layer.data_to_world([i, j]), expected, atol=1e-9)
            # the inverse: the cell drawn at a patch centre is that patch's cell
            assert cell_at(heatmap, centres[i, j]) == (i, j)
        # on screen: the hot cell is a stride × stride square centred on its patch's centre
        viewer.scene.camera.center = tuple(np.array([centres[hot][1], centres[hot][0]]) * ODD_MPP)
        viewer.scene.camera.zoom = 80.0 / (stride * ODD_MPP)  # one cell ≈ 80 screen pixels
        for _ in range(5):
            QApplication.processEvents()
        shot = viewer.screenshot(canvas_only=True, flash=False)
        red = (shot[..., 0] > 150) & (shot[..., 1] < 80) & (shot[..., 2] < 80)
        rr, cc = np.nonzero(red)
        height, width = shot.shape[:2]
        assert abs(rr.mean() - height / 2) <= 1.0 and abs(cc.mean() - width / 2) <= 1.0
        assert rr.max() - rr.min() + 1 == pytest.approx(80, abs=2)
        assert cc.max() - cc.min() + 1 == pytest.approx(80, abs=2)
