"""Small pyramidal slides generated once per session with tifffile."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

APERIO_DESCRIPTION = (
    "Aperio Image Library v12.0.0\n{w}x{h} (256x256) JPEG/RGB Q=90|AppMag = 40|MPP = {mpp}"
)


def textured_rgb(width: int, height: int, seed: int) -> np.ndarray:
    """H&E-ish texture on white: blurred noise blobs with pink and purple tones."""
    rng = np.random.default_rng(seed)
    noise = rng.random((height // 8 + 1, width // 8 + 1)).astype(np.float32)
    field = cv2.resize(cv2.GaussianBlur(noise, (0, 0), 3), (width, height))
    tissue = field > np.quantile(field, 0.45)
    grain = rng.normal(0, 18, (height, width, 1)).astype(np.float32)
    pink = np.array([225, 150, 190], np.float32) + grain
    purple = np.array([120, 70, 150], np.float32) + grain
    mix = (field[..., None] - field.min()) / (np.ptp(field) + 1e-6)
    rgb = pink * (1 - mix) + purple * mix
    rgb[~tissue] = 245 + rng.normal(0, 3, (int((~tissue).sum()), 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def write_pyramid(
    path: Path, base: np.ndarray, downsamples: tuple[int, ...], mpp: float = 0.25
) -> Path:
    """Write an Aperio-style tiled JPEG pyramid (one tiled page per level)."""
    height, width = base.shape[:2]
    with tifffile.TiffWriter(path, bigtiff=False) as tif:
        for index, ds in enumerate(downsamples):
            level = (
                base
                if ds == 1
                else cv2.resize(base, (width // ds, height // ds), interpolation=cv2.INTER_AREA)
            )
            tif.write(
                level,
                tile=(256, 256),
                compression="jpeg",
                compressionargs={"level": 90},
                photometric="rgb",
                description=APERIO_DESCRIPTION.format(w=width, h=height, mpp=mpp)
                if index == 0
                else None,
                subfiletype=0 if index == 0 else 1,
                metadata=None,
            )
    return path


@pytest.fixture(scope="session")
def generated_svs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 1800 x 1400 three-level (1, 2, 4) JPEG-tiled Aperio-style slide with partial tiles."""
    path = tmp_path_factory.mktemp("slides") / "generated.svs"
    return write_pyramid(path, textured_rgb(1800, 1400, seed=7), (1, 2, 4))


@pytest.fixture(scope="session")
def write_slide():
    """The pyramid writer, for tests that draw their own slide."""
    return write_pyramid
