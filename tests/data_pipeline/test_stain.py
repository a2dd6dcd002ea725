"""Stain normalisation in torch: Reinhard and Macenko against NumPy references written here,
known stain vectors, identity round trips and batching."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage.color import lab2rgb, rgb2lab

from napari_wsi_ml.data._torch_color import lab_to_rgb, rgb_to_lab
from napari_wsi_ml.data.stain import MacenkoNormalizer, ReinhardNormalizer, reference_patches
from tests.conftest import TILES_DIR

torch.set_num_threads(1)

H_VECTOR = np.array([0.65, 0.70, 0.29]) / np.linalg.norm([0.65, 0.70, 0.29])
E_VECTOR = np.array([0.07, 0.99, 0.11]) / np.linalg.norm([0.07, 0.99, 0.11])


def _tile(name: str, size: int = 192) -> np.ndarray:
    bgr = cv2.imread(str(TILES_DIR / name))
    return np.ascontiguousarray(bgr[:size, :size, ::-1])


@pytest.fixture(scope="module")
def source() -> np.ndarray:
    return _tile("medium-nuclei-score-level2.png")


@pytest.fixture(scope="module")
def target() -> np.ndarray:
    return _tile("tissue-level0-7352-11762-7864-12274.png")


def synthetic_he(h: np.ndarray, e: np.ndarray, seed: int, size: int = 128) -> np.ndarray:
    """Beer-Lambert image of two stains: a third pure H, a third pure E, a third mixed."""
    rng = np.random.default_rng(seed)
    ch, ce = rng.gamma(2.0, 0.35, (2, size, size))
    kind = rng.integers(0, 3, (size, size))
    ch[kind == 1], ce[kind == 2] = 0, 0
    od = ch[..., None] * h + ce[..., None] * e
    return np.clip(np.round(240 * np.exp(-od) - 1), 0, 255).astype(np.uint8)


def _angle(a: np.ndarray, b: np.ndarray) -> float:
    cos = a @ b / np.linalg.norm(a) / np.linalg.norm(b)
    return float(np.degrees(np.arccos(np.clip(cos, -1, 1))))


# --- NumPy reference implementations (textbook algorithms, one image at a time) ---


def numpy_reinhard(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    lab, ref = rgb2lab(image).reshape(-1, 3), rgb2lab(reference).reshape(-1, 3)
    out = (lab - lab.mean(0)) / lab.std(0, ddof=1) * ref.std(0, ddof=1) + ref.mean(0)
    return np.round(lab2rgb(out.reshape(image.shape)) * 255).astype(np.uint8)


def numpy_macenko_stains(image: np.ndarray, beta=0.15, alpha=1.0) -> np.ndarray:
    od = -np.log((image.reshape(-1, 3).astype(float) + 1) / 240)
    od_hat = od[~np.any(od < beta, axis=1)]
    _, vectors = np.linalg.eigh(np.cov(od_hat.T))
    plane = vectors[:, [2, 1]]
    plane *= np.where(plane.sum(0) < 0, -1, 1)
    projected = od_hat @ plane
    phi = np.arctan2(projected[:, 1], projected[:, 0])
    lo, hi = np.percentile(phi, alpha), np.percentile(phi, 100 - alpha)
    v1 = plane @ np.array([np.cos(lo), np.sin(lo)])
    v2 = plane @ np.array([np.cos(hi), np.sin(hi)])
    return np.stack([v1, v2] if v1[0] > v2[0] else [v2, v1], axis=1)


def numpy_macenko(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    def conc(img: np.ndarray, stains: np.ndarray) -> np.ndarray:
        od = -np.log((img.reshape(-1, 3).astype(float) + 1) / 240)
        return np.linalg.lstsq(stains, od.T, rcond=None)[0]

    ref_stains = numpy_macenko_stains(reference)
    ref_max = np.percentile(conc(reference, ref_stains), 99, axis=1)
    c = conc(image, numpy_macenko_stains(image))
    c *= (ref_max / np.percentile(c, 99, axis=1))[:, None]
    out = 240 * np.exp(-(ref_stains @ c)) - 1
    return np.clip(np.round(out.T.reshape(image.shape)), 0, 255).astype(np.uint8)


# --- tests ---


def test_lab_conversion_matches_scikit_image(source: np.ndarray) -> None:
    x = torch.from_numpy(source).permute(2, 0, 1).double() / 255
    np.testing.assert_allclose(rgb_to_lab(x).permute(1, 2, 0).numpy(), rgb2lab(source), atol=1e-4)
    lab = rgb2lab(source)
    back = lab_to_rgb(torch.from_numpy(lab).permute(2, 0, 1)).permute(1, 2, 0).numpy()
    np.testing.assert_allclose(back, lab2rgb(lab), atol=1e-4)


def test_reinhard_matches_reference_statistics_and_numpy(
    source: np.ndarray, target: np.ndarray
) -> None:
    norm = ReinhardNormalizer().fit(target)
    out = norm.transform(source)
    assert out.shape == (3, *source.shape[:2]) and out.dtype == torch.uint8
    lab = rgb2lab(out.permute(1, 2, 0).numpy()).reshape(-1, 3)
    ref = rgb2lab(target).reshape(-1, 3)
    np.testing.assert_allclose(lab.mean(0), ref.mean(0), atol=1.0)
    np.testing.assert_allclose(lab.std(0), ref.std(0), rtol=0.05)
    before = rgb2lab(source).reshape(-1, 3)
    assert np.abs(before.mean(0) - ref.mean(0)).max() > 5  # the test images really differ
    diff = np.abs(out.permute(1, 2, 0).numpy().astype(int) - numpy_reinhard(source, target))
    assert diff.max() <= 1


def test_reinhard_is_identity_on_its_reference(target: np.ndarray) -> None:
    out = ReinhardNormalizer().fit(target).transform(target).permute(1, 2, 0).numpy()
    assert np.abs(out.astype(int) - target).max() <= 1


def test_macenko_recovers_known_stain_vectors() -> None:
    h = np.array([0.55, 0.80, 0.25]) / np.linalg.norm([0.55, 0.80, 0.25])
    e = np.array([0.15, 0.95, 0.30]) / np.linalg.norm([0.15, 0.95, 0.30])
    for hv, ev, seed in [(H_VECTOR, E_VECTOR, 0), (h, e, 1)]:
        stains = MacenkoNormalizer().fit(synthetic_he(hv, ev, seed)).stain_matrix.numpy()
        assert _angle(stains[:, 0], hv) < 1.0 and _angle(stains[:, 1], ev) < 1.0


def test_macenko_restains_to_the_reference_vectors() -> None:
    h = np.array([0.55, 0.80, 0.25]) / np.linalg.norm([0.55, 0.80, 0.25])
    e = np.array([0.15, 0.95, 0.30]) / np.linalg.norm([0.15, 0.95, 0.30])
    norm = MacenkoNormalizer().fit(synthetic_he(H_VECTOR, E_VECTOR, 0))
    out = norm.transform(synthetic_he(h, e, 1)).permute(1, 2, 0).numpy()
    stains = MacenkoNormalizer().fit(out).stain_matrix.numpy()
    assert _angle(stains[:, 0], H_VECTOR) < 1.0 and _angle(stains[:, 1], E_VECTOR) < 1.0
    assert _angle(h, H_VECTOR) > 5 and _angle(e, E_VECTOR) > 5  # the source was other stains


def test_macenko_is_identity_on_its_reference() -> None:
    image = synthetic_he(H_VECTOR, E_VECTOR, 2)
    out = MacenkoNormalizer().fit(image).transform(image).permute(1, 2, 0).numpy()
    diff = np.abs(out.astype(int) - image)
    assert diff.mean() < 0.1 and diff.max() <= 1


def test_macenko_matches_numpy_reference_on_real_tiles(
    source: np.ndarray, target: np.ndarray
) -> None:
    norm = MacenkoNormalizer().fit(target)
    np.testing.assert_allclose(norm.stain_matrix.numpy(), numpy_macenko_stains(target), atol=1e-3)
    ours = norm.transform(source).permute(1, 2, 0).numpy().astype(int)
    diff = np.abs(ours - numpy_macenko(source, target))
    assert diff.mean() < 0.5 and diff.max() <= 3


def test_macenko_batches_equal_single_images_and_keep_dtype(
    source: np.ndarray, target: np.ndarray
) -> None:
    norm = MacenkoNormalizer().fit(target)
    blank = np.full_like(source, 245)
    batch = torch.from_numpy(np.stack([source, target, blank])).permute(0, 3, 1, 2)
    out = norm.transform(batch)
    assert out.shape == batch.shape and out.dtype == torch.uint8
    for i, image in enumerate(batch):
        assert (out[i].int() - norm.transform(image).int()).abs().max() <= 1
    assert (out[2].int() - 245).abs().max() <= 3  # no stain: left (nearly) as it was
    as_float = norm.transform(batch.float() / 255)
    assert as_float.dtype == torch.float32 and (as_float * 255 - out).abs().max() <= 1
    again = MacenkoNormalizer.from_dict(norm.to_dict())
    assert torch.equal(again.transform(batch), out)


def test_fit_to_a_slide(pipeline_slide) -> None:
    from napari_wsi_ml.data import plan_patch_read
    from napari_wsi_ml.slide import open_slide

    with open_slide(pipeline_slide.path) as slide:
        plan = plan_patch_read(slide, patch_size=128, target_mpp=0.5)
        patches = reference_patches(slide, plan, n=8, seed=1)
    assert patches.shape == (8, 128, 128, 3)
    stains = MacenkoNormalizer().fit(patches).stain_matrix.numpy()
    assert stains[0, 0] > stains[0, 1]  # haematoxylin absorbs more red than eosin
    assert ReinhardNormalizer().fit(patches).mean[0] < 90  # tissue, not background


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_normalisers_on_cuda(source: np.ndarray, target: np.ndarray) -> None:
    batch = torch.from_numpy(np.stack([source, target])).permute(0, 3, 1, 2)
    for norm in (MacenkoNormalizer().fit(target), ReinhardNormalizer().fit(target)):
        gpu = norm.transform(batch.cuda())
        assert gpu.device.type == "cuda"
        assert (gpu.cpu().int() - norm.transform(batch).int()).abs().max() <= 1
