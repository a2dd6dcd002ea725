"""Batched torch augmentation: colour conversions against scikit-image and OpenCV, ranges,
dihedral symmetries and seeding."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage.color import hed2rgb, rgb2hed

from napari_wsi_ml.data._torch_color import hed_to_rgb, rgb_to_hed
from napari_wsi_ml.data.augment import (
    AugmentConfig,
    Augmenter,
    adjust_brightness_contrast,
    color_jitter,
    flip_rotate,
    hed_jitter,
    scale_stains,
    shift_hue_value,
)
from tests.conftest import TILES_DIR

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tile() -> np.ndarray:
    """A real H&E tile, RGB uint8 (256 × 256)."""
    bgr = cv2.imread(str(TILES_DIR / "medium-nuclei-score-level2.png"))
    return np.ascontiguousarray(bgr[:256, :256, ::-1])


def _tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous()


def _numpy(images: torch.Tensor) -> np.ndarray:
    return images.permute(0, 2, 3, 1).numpy()


def test_hed_conversions_match_scikit_image(tile: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    pixels = np.concatenate([tile, rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)], axis=0)
    ours = _numpy(rgb_to_hed(_tensor(pixels[None]).double() / 255))[0]
    reference = rgb2hed(pixels)
    np.testing.assert_allclose(ours, reference, atol=1e-4)
    back = _numpy(hed_to_rgb(torch.from_numpy(reference).permute(2, 0, 1)[None]))[0]
    np.testing.assert_allclose(back, hed2rgb(reference), atol=1e-4)


@pytest.mark.parametrize(
    ("hue_scale", "forward", "backward"),
    [
        (180, cv2.COLOR_RGB2HSV, cv2.COLOR_HSV2RGB),
        (256, cv2.COLOR_RGB2HSV_FULL, cv2.COLOR_HSV2RGB_FULL),
    ],
    ids=["hsv-180", "hsv-full-256"],
)
def test_hue_value_shift_matches_opencv_8bit_hsv(
    tile: np.ndarray, hue_scale: int, forward: int, backward: int
) -> None:
    shifts = [(32, -32), (-32, 32), (11, 5)]
    images = np.stack([tile] * len(shifts))
    hue = torch.tensor([h for h, _ in shifts], dtype=torch.float32)
    value = torch.tensor([v for _, v in shifts], dtype=torch.float32)
    ours = _numpy(shift_hue_value(_tensor(images), hue, value, hue_scale=hue_scale)).astype(int)
    for image, (dh, dv), out in zip(images, shifts, ours, strict=True):
        hsv = cv2.cvtColor(image, forward).astype(int)
        hsv[..., 0] = (hsv[..., 0] + dh) % hue_scale
        hsv[..., 2] = np.clip(hsv[..., 2] + dv, 0, 255)
        expected = cv2.cvtColor(hsv.astype(np.uint8), backward).astype(int)
        diff = np.abs(out - expected)
        assert diff.mean() < 1.0 and np.percentile(diff, 99) <= 4  # OpenCV quantises H and S
    # the other unit convention is far off: the units are really those of OpenCV
    wrong = _numpy(shift_hue_value(_tensor(images[:1]), 32.0, 0.0, hue_scale=436 - hue_scale))
    hsv = cv2.cvtColor(images[0], forward).astype(int)
    hsv[..., 0] = (hsv[..., 0] + 32) % hue_scale
    expected = cv2.cvtColor(hsv.astype(np.uint8), backward).astype(int)
    assert np.abs(wrong[0].astype(int) - expected).mean() > 5


def test_brightness_contrast_formula(tile: np.ndarray) -> None:
    x = tile.astype(np.float64) / 255
    out = adjust_brightness_contrast(_tensor(x[None]).float(), 1.2, 0.7)[0].permute(1, 2, 0)
    bright = np.clip(x * 1.2, 0, 1)
    mean = (bright @ np.array([0.299, 0.587, 0.114])).mean()
    expected = np.clip((bright - mean) * 0.7 + mean, 0, 1)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)


def test_colour_jitter_draws_stay_in_the_paper_ranges() -> None:
    grey = torch.full((400, 3, 4, 4), 100, dtype=torch.uint8)
    gen = torch.Generator().manual_seed(1)
    out = color_jitter(grey.float() / 255, gen, contrast=(1, 1), hue=0, value=0)
    factor = out[:, 0, 0, 0] * 255 / 100
    assert factor.min() >= 0.65 - 1e-4 and factor.max() <= 1.35 + 1e-4
    assert factor.min() < 0.7 and factor.max() > 1.3  # the whole range is used
    out = color_jitter(grey.float() / 255, gen, brightness=(1, 1), contrast=(1, 1), hue=0)
    shift = out[:, 0, 0, 0] * 255 - 100  # grey: a value shift moves all channels alike
    assert shift.abs().max() <= 32 + 1e-3 and shift.min() < -28 and shift.max() > 28


def test_flip_rotate_gives_each_image_one_of_the_eight_symmetries() -> None:
    images = torch.arange(64 * 3 * 5 * 5, dtype=torch.float32).reshape(64, 3, 5, 5)
    out = flip_rotate(images, torch.Generator().manual_seed(0))
    seen = set()
    for src, dst in zip(images, out, strict=True):
        candidates = [torch.rot90(src, k, (-2, -1)) for k in range(4)]
        candidates += [c.flip(-1) for c in candidates]
        matches = [i for i, c in enumerate(candidates) if torch.equal(c, dst)]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == set(range(8))
    wide = torch.rand(16, 3, 4, 6)
    assert flip_rotate(wide, torch.Generator().manual_seed(0)).shape == wide.shape


def test_hed_scaling_scales_the_haematoxylin_channel(tile: np.ndarray) -> None:
    x = _tensor(tile[None]).double() / 255
    hed = rgb_to_hed(x)
    out = scale_stains(x, torch.tensor([1.05, 1.0, 1.0]), 0.0)
    inside = (hed > 0.01).all(dim=1) & (x > 0.02).all(dim=1)  # no clamping of stains or RGB
    ratio = rgb_to_hed(out)[:, 0][inside] / hed[:, 0][inside]
    assert torch.allclose(ratio, torch.full_like(ratio, 1.05), atol=1e-6)
    jittered = hed_jitter(_tensor(tile[None]), torch.Generator().manual_seed(0))
    assert jittered.dtype == torch.uint8 and not torch.equal(jittered, _tensor(tile[None]))


def test_augmenter_is_seeded_and_keeps_shape_and_dtype(tile: np.ndarray) -> None:
    batch = _tensor(np.stack([tile[:64, :64]] * 4))
    aug = Augmenter()
    a = aug(batch, torch.Generator().manual_seed(5))
    b = aug(batch, torch.Generator().manual_seed(5))
    c = aug(batch, torch.Generator().manual_seed(6))
    assert a.shape == batch.shape and a.dtype == torch.uint8
    assert torch.equal(a, b) and not torch.equal(a, c)
    as_float = aug(batch.float() / 255, torch.Generator().manual_seed(5))
    assert as_float.dtype == torch.float32
    assert (as_float * 255 - a.float()).abs().max() <= 1.0  # same draws for either dtype
    single = aug(batch[0], torch.Generator().manual_seed(5))
    assert single.shape == batch[0].shape
    config = AugmentConfig(hue=16.0, hed=False)
    assert AugmentConfig.from_dict(config.to_dict()) == config


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_augmenter_on_cuda_matches_cpu(tile: np.ndarray) -> None:
    batch = _tensor(np.stack([tile[:64, :64]] * 4)).float() / 255
    cpu = Augmenter()(batch, torch.Generator().manual_seed(3))
    gpu = Augmenter()(batch.cuda(), torch.Generator().manual_seed(3))
    assert gpu.device.type == "cuda"
    assert (gpu.cpu() - cpu).abs().max() < 1e-4
