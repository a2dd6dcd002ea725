"""Stain colours: a Beer–Lambert H&E model with one stain profile per site (batch effects)."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class StainProfile:
    """How one site's lab stains and scans.

    Attributes:
        hematoxylin: Optical density per unit of haematoxylin, ``(R, G, B)``.
        eosin: Optical density per unit of eosin, ``(R, G, B)``.
        hematoxylin_gain: Multiplies every haematoxylin concentration.
        eosin_gain: Multiplies every eosin concentration.
        background: Transmitted light through bare glass, ``(R, G, B)`` in 0–255.
    """

    hematoxylin: tuple[float, float, float]
    eosin: tuple[float, float, float]
    hematoxylin_gain: float
    eosin_gain: float
    background: tuple[float, float, float]


SITE_PROFILES: tuple[StainProfile, ...] = (
    StainProfile((0.60, 0.75, 0.30), (0.07, 0.60, 0.25), 1.00, 1.00, (243.0, 243.0, 241.0)),
    StainProfile((0.70, 0.72, 0.24), (0.05, 0.50, 0.20), 1.20, 0.80, (239.0, 240.0, 245.0)),
    StainProfile((0.52, 0.78, 0.40), (0.10, 0.72, 0.34), 0.85, 1.30, (246.0, 242.0, 236.0)),
    StainProfile((0.66, 0.80, 0.36), (0.04, 0.66, 0.22), 1.10, 1.10, (241.0, 243.0, 243.0)),
)
"""Stain profiles of the synthetic sites; site ``i`` uses ``SITE_PROFILES[i % 4]``."""


def site_profile(site: int) -> StainProfile:
    """The stain profile of site number ``site``."""
    return SITE_PROFILES[site % len(SITE_PROFILES)]


def compose_rgb(
    profile: StainProfile,
    hematoxylin: np.ndarray,
    eosin: np.ndarray,
    extra_od: np.ndarray | None = None,
) -> np.ndarray:
    """Turn stain concentrations (H, W) into an RGB uint8 image (H, W, 3).

    Args:
        profile: The site's stain profile.
        hematoxylin: Haematoxylin concentration per pixel.
        eosin: Eosin concentration per pixel.
        extra_od: Optional (H, W, 3) optical density of non-stain matter (dust, ink).
    """
    minus_ln10 = -np.log(10.0)
    matrix = np.asarray(
        [
            np.asarray(profile.hematoxylin) * profile.hematoxylin_gain * minus_ln10,
            np.asarray(profile.eosin) * profile.eosin_gain * minus_ln10,
        ],
        dtype=np.float32,
    ).T  # (3, 2): log transmission per unit of H and E
    stains = cv2.merge([hematoxylin.astype(np.float32), eosin.astype(np.float32)])
    log_t = cv2.transform(stains, matrix)
    if extra_od is not None:
        log_t = cv2.scaleAdd(extra_od.astype(np.float32), float(minus_ln10), log_t)
    transmission = cv2.exp(log_t)
    rgb = cv2.multiply(transmission, (*profile.background, 0.0))
    return cv2.convertScaleAbs(rgb)  # rounds and saturates to uint8
