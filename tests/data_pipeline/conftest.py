"""Slides for the data-pipeline tests: a synthetic slide, an odd pyramid and a blurred copy."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import shapely

from tests.data_pipeline.pyramids import write_pyramid


@pytest.fixture(scope="session")
def pipeline_slide(tmp_path_factory: pytest.TempPathFactory):
    """A 3072 × 2048 synthetic slide (0.25 µm/px, downsample 2, large tumour, green pen), with
    its truth ASAP file: a ``napari_wsi_ml.synthetic.SyntheticSlide``."""
    from napari_wsi_ml.synthetic import generate_slide, write_annotations

    folder = tmp_path_factory.mktemp("pipeline_slide")
    truth = generate_slide(
        folder / "pipeline.svs", width=3072, height=2048, seed=21, tumour="large", pen="green"
    )
    return write_annotations(truth, n_raters=0, seed=21)


@pytest.fixture(scope="session")
def level0_pixels(pipeline_slide) -> np.ndarray:
    """Level 0 of ``pipeline_slide`` as one RGB array."""
    from napari_wsi_ml.slide import open_slide

    with open_slide(pipeline_slide.path) as slide:
        return np.asarray(slide.levels[0])


@pytest.fixture(scope="session")
def odd_pyramid(tmp_path_factory: pytest.TempPathFactory, level0_pixels: np.ndarray) -> Path:
    """A 2001 × 1501 slide with levels of downsample 1, ≈3.001 and ≈9.01 (odd sizes)."""
    folder = tmp_path_factory.mktemp("odd_pyramid")
    return write_pyramid(folder / "odd.svs", level0_pixels[:1501, :2001], (1, 3, 9))


BLUR_SIDE = 768
"""Side (level-0 px) of the blurred square in ``blurred_slide``."""


@pytest.fixture(scope="session")
def blurred_slide(
    tmp_path_factory: pytest.TempPathFactory, pipeline_slide, level0_pixels: np.ndarray
) -> tuple[Path, tuple[int, int, int, int]]:
    """``pipeline_slide`` re-written with a square of tissue out of focus (Gaussian σ = 8 px):
    the file and the square's level-0 ``(x0, y0, x1, y1)``."""
    tissue = pipeline_slide.truth.tissue
    candidates = [
        (x, y) for x in range(0, 3072 - BLUR_SIDE, 256) for y in range(0, 2048 - BLUR_SIDE, 256)
    ]
    x0, y0 = max(
        candidates,
        key=lambda c: (
            shapely.box(c[0], c[1], c[0] + BLUR_SIDE, c[1] + BLUR_SIDE).intersection(tissue).area
        ),
    )
    x1, y1 = x0 + BLUR_SIDE, y0 + BLUR_SIDE
    image = level0_pixels.copy()
    image[y0:y1, x0:x1] = cv2.GaussianBlur(image[y0:y1, x0:x1], (0, 0), 8)
    folder = tmp_path_factory.mktemp("blurred")
    return write_pyramid(folder / "blurred.svs", image, (1, 2, 4, 8)), (x0, y0, x1, y1)
