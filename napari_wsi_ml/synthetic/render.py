"""Render any region of any pyramid level of a :class:`~napari_wsi_ml.synthetic.scene.Scene`.

Pixel ``k`` of a level with downsample ``d`` covers level-0 ``[k·d, (k+1)·d)`` and is evaluated
at its centre ``(k + 0.5)·d``. Polygons are filled with anti-aliased edges at the level's own
resolution; textures are pure functions of level-0 position whose details finer than a pixel are
replaced by their mean, so each level looks like a downsample of level 0 and lines up with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
from shapely.geometry import Polygon

from napari_wsi_ml.synthetic.noise import fractal_noise, hash_unit, upsampled_field, value_noise
from napari_wsi_ml.synthetic.scene import Scene
from napari_wsi_ml.synthetic.stain import compose_rgb

_SHIFT = 4  # cv2 sub-pixel bits


@dataclass(frozen=True)
class Nuclei:
    """A population of nuclei on a jittered lattice (sizes in µm).

    Attributes:
        spacing: Lattice spacing.
        presence: Probability that a lattice cell holds a nucleus.
        radius: Mean radius.
        radius_spread: Relative spread of the radius (pleomorphism).
        aspect: Maximum ratio of long to short axis.
        darkness: Mean haematoxylin concentration of a nucleus.
        darkness_spread: Relative spread of the darkness.
        salt: Seed offset of this population.
    """

    spacing: float
    presence: float
    radius: float
    radius_spread: float
    aspect: float
    darkness: float
    darkness_spread: float
    salt: int


STROMA_NUCLEI = Nuclei(22.0, 0.5, 2.4, 0.2, 3.0, 0.75, 0.2, 101)
GLANDULAR_NUCLEI = Nuclei(9.5, 0.95, 3.4, 0.35, 1.4, 1.15, 0.2, 202)
SOLID_NUCLEI = Nuclei(10.5, 0.98, 4.4, 0.45, 1.25, 1.35, 0.2, 303)
LUMENS = Nuclei(55.0, 0.9, 15.0, 0.35, 1.5, 1.0, 0.0, 404)


def _rings_px(polygon: Polygon, x0: float, y0: float, downsample: float) -> tuple[list, list]:
    """Exterior and interior rings in cv2 fixed-point pixel coordinates of the target grid."""
    scale = float(1 << _SHIFT)

    def convert(coords: object) -> np.ndarray:
        xy = np.asarray(coords, dtype=np.float64)[:-1]
        px = (xy / downsample - (x0, y0) - 0.5) * scale
        return np.round(px).astype(np.int32)

    return [convert(polygon.exterior.coords)], [convert(r.coords) for r in polygon.interiors]


_PAD = 2  # drawing margin: cv2 anti-aliases edges where it clips shapes at the canvas border
_AA_GROWTH = 0.7  # cv2's anti-aliased fill grows shapes by about this many pixels
_MEAN_H_ABSORPTION = 0.65  # typical optical density of one unit of haematoxylin


@lru_cache(maxsize=4096)
def _eroded(polygon: Polygon, amount: float) -> Polygon | None:
    """``polygon`` shrunk by ``amount`` level-0 px (so cv2's anti-aliasing restores its area)."""
    shrunk = polygon.buffer(-amount)
    if shrunk.is_empty:
        return None
    if isinstance(shrunk, Polygon):
        return shrunk
    return max(shrunk.geoms, key=lambda g: g.area)


def _fill(
    polygons: list[Polygon], x0: int, y0: int, shape: tuple[int, int], d: float
) -> np.ndarray:
    """Anti-aliased coverage (float32 0–1) of the union of ``polygons`` on the target grid."""
    canvas = np.zeros((shape[0] + 2 * _PAD, shape[1] + 2 * _PAD), dtype=np.uint8)
    for original in polygons:
        polygon = _eroded(original, _AA_GROWTH * d)
        if polygon is None:
            continue
        exterior, holes = _rings_px(polygon, x0 - _PAD, y0 - _PAD, d)
        cv2.fillPoly(canvas, exterior, 255, cv2.LINE_AA, _SHIFT)
        if holes:
            cv2.fillPoly(canvas, holes, 0, cv2.LINE_AA, _SHIFT)
    inner = canvas[_PAD:-_PAD, _PAD:-_PAD]
    return inner.astype(np.float32) * np.float32(1.0 / 255.0)


def _nuclei(
    pop: Nuclei,
    xs: np.ndarray,
    ys: np.ndarray,
    mpp: float,
    d: float,
    seed: int,
    *,
    stain: bool = True,
) -> np.ndarray:
    """Haematoxylin of one nucleus population on the pixel grid with centres ``xs`` × ``ys``.

    Nuclei sit at random in the cells of two offset lattices (level-0 spacing ``pop.spacing``)
    and are drawn as anti-aliased ellipses; where they shrink below a few pixels they fade into
    their mean, which is what a downsample of level 0 shows: for a stain (``stain=True``) the
    concentration whose transmitted light equals the mean light through nuclei and gaps, else
    the mean coverage.
    """
    s = pop.spacing / mpp
    r_mean = pop.radius / mpp
    cover = pop.presence * np.pi * r_mean**2 * (1 + pop.radius_spread**2 / 3) / s**2
    covered = 1 - np.exp(-cover)  # overlapping nuclei hide each other
    mean_dark = covered * pop.darkness
    if stain:
        light = 1 - covered * (1 - 10 ** (-pop.darkness * _MEAN_H_ABSORPTION))
        mean_dark = -np.log10(light) / _MEAN_H_ABSORPTION
    blend = float(np.clip((d - s / 8) / (s / 8), 0, 1))
    shape = (len(ys), len(xs))
    if blend == 1:
        return np.full(shape, min(mean_dark, 1.0), dtype=np.float32)
    canvas = np.zeros((shape[0] + 2 * _PAD, shape[1] + 2 * _PAD), dtype=np.uint8)
    reach = r_mean * (1 + pop.radius_spread) * np.sqrt(pop.aspect)
    origin = (xs[0] - d / 2 - _PAD * d, ys[0] - d / 2 - _PAD * d)
    fixed = float(1 << _SHIFT)
    for lattice in range(2):
        offset = lattice * s / 2
        ci = np.arange(
            np.floor((xs[0] - reach - offset) / s), np.floor((xs[-1] + reach - offset) / s) + 1
        )
        cj = np.arange(
            np.floor((ys[0] - reach - offset) / s), np.floor((ys[-1] + reach - offset) / s) + 1
        )
        gy, gx = np.meshgrid(cj.astype(np.int64), ci.astype(np.int64), indexing="ij")
        salt = seed * 1000003 + pop.salt * 16 + lattice * 8
        u = [hash_unit(gx, gy, salt + k).ravel() for k in range(7)]
        keep = u[5] < pop.presence / 2
        radius = r_mean * (1 + pop.radius_spread * (2 * u[0] - 1))
        aspect = 1 + (pop.aspect - 1) * u[1]
        half_long = np.maximum(radius * np.sqrt(aspect) - 0.6 * d, 0.1 * d)  # AA growth
        half_short = np.maximum(radius / np.sqrt(aspect) - 0.6 * d, 0.1 * d)
        cx = ((gx.ravel() + u[2]) * s + offset - origin[0]) / d - 0.5
        cy = ((gy.ravel() + u[3]) * s + offset - origin[1]) / d - 0.5
        angle = 180.0 * u[4]
        value = np.clip(
            np.round(128 * pop.darkness * (1 + pop.darkness_spread * (2 * u[6] - 1))), 0, 255
        )
        ints = np.round(np.column_stack([cx, cy, half_long / d, half_short / d]) * fixed).astype(
            np.int64
        )[keep]
        for (x0, y0, ax, ay), theta, v in zip(
            ints.tolist(), angle[keep].tolist(), value[keep].tolist(), strict=True
        ):
            cv2.ellipse(canvas, (x0, y0), (ax, ay), theta, 0, 360, int(v), -1, cv2.LINE_AA, _SHIFT)
    out = canvas[_PAD:-_PAD, _PAD:-_PAD].astype(np.float32) * np.float32(1 / 128)
    return out if blend == 0 else (1 - blend) * out + blend * np.float32(min(mean_dark, 1.0))


def _smooth_factor(d: float) -> int:
    """Step at which smooth fields are sampled: coarse at fine levels, every pixel at coarse."""
    return 8 if d <= 2 else (4 if d <= 4 else 1)


def _fibres(x: int, y: int, width: int, height: int, d: float, mpp: float, seed: int) -> np.ndarray:
    """Wavy, broken collagen-fibre texture with mean 0 and amplitude up to 1."""
    wavelength = 7.0 / mpp
    amplitude = float(np.clip(2.0 - 4.0 * d / wavelength, 0, 1))
    if amplitude == 0:
        return np.zeros((height, width), dtype=np.float32)
    k = 2 * np.pi / wavelength
    angle = np.pi * float(hash_unit(np.array(seed), np.array(17), 99))
    factor = _smooth_factor(d)

    def warp(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        bend = value_noise(xs, ys, 120 / mpp, seed + 12) * (90 * k / mpp)
        return bend + value_noise(xs, ys, 25 / mpp, seed + 13) * (8 * k / mpp)

    def strength(xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        return value_noise(xs, ys, 18 / mpp, seed + 14) * amplitude

    xs = (x + np.arange(width) + 0.5) * d
    ys = (y + np.arange(height) + 0.5) * d
    phase = upsampled_field(warp, x, y, width, height, d, factor)
    phase += (np.cos(angle) * k * xs).astype(np.float32)[None, :]
    phase += (np.sin(angle) * k * ys).astype(np.float32)[:, None]
    np.sin(phase, out=phase)
    phase *= upsampled_field(strength, x, y, width, height, d, factor)
    return phase


_BACKGROUND_CACHE: dict[tuple, np.ndarray] = {}


def _background(scene: Scene, height: int, width: int) -> np.ndarray:
    """A read-only tile of bare glass."""
    key = (scene.stain, height, width)
    if key not in _BACKGROUND_CACHE:
        zeros = np.zeros((height, width), dtype=np.float32)
        tile = compose_rgb(scene.stain, zeros, zeros)
        tile.setflags(write=False)
        _BACKGROUND_CACHE[key] = tile
    return _BACKGROUND_CACHE[key]


def render_region(
    scene: Scene, x: int, y: int, width: int, height: int, downsample: float
) -> np.ndarray:
    """Render pixels ``[x, x + width) × [y, y + height)`` of the level with ``downsample``.

    Args:
        scene: What to draw.
        x: First column, in pixels of that level.
        y: First row, in pixels of that level.
        width: Number of columns.
        height: Number of rows.
        downsample: Level-0 pixels per pixel of that level (1 for level 0).

    Returns:
        RGB uint8 array (height, width, 3); it may be a shared read-only array for bare glass.
        Pixels beyond the slide are rendered like any other.
    """
    d = float(downsample)
    shape = (height, width)
    bounds = (x * d, y * d, (x + width) * d, (y + height) * d)

    def hits(polygon: Polygon) -> bool:
        b = polygon.bounds
        return b[0] < bounds[2] and b[2] > bounds[0] and b[1] < bounds[3] and b[3] > bounds[1]

    tissue_polys = [p for p in scene.tissue if hits(p)]
    artefacts = [a for a in scene.artefacts if hits(a.polygon)]
    if not tissue_polys and not artefacts:
        return _background(scene, height, width)
    hema = np.zeros(shape, dtype=np.float32)
    eosin = np.zeros(shape, dtype=np.float32)
    if tissue_polys:
        tissue = _fill(tissue_polys, x, y, shape, d)
        if tissue.any():
            hema, eosin = _tissue(scene, tissue, hits, x, y, width, height, d)
    extra = None
    if artefacts:
        extra = np.zeros((*shape, 3), dtype=np.float32)
        for artefact in artefacts:
            mask = _fill([artefact.polygon], x, y, shape, d)
            extra += mask[..., None] * np.asarray(artefact.optical_density, dtype=np.float32)
    return compose_rgb(scene.stain, hema, eosin, extra)


def _tissue(scene: Scene, tissue: np.ndarray, hits, x, y, width, height, d) -> tuple:
    """Haematoxylin and eosin concentrations of the tissue in the region."""
    shape = (height, width)
    mpp, seed = scene.mpp, scene.seed
    factor = _smooth_factor(d)
    xs = (x + np.arange(width) + 0.5) * d
    ys = (y + np.arange(height) + 0.5) * d

    def thickness(cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
        return 0.8 + 0.4 * fractal_noise(cx, cy, 600 / mpp, seed + 1, octaves=3, pixel=d)

    def tumour_eosin(cx: np.ndarray, cy: np.ndarray) -> np.ndarray:
        return 0.8 + 0.4 * value_noise(cx, cy, 30 / mpp, seed + 5)

    eosin = _fibres(x, y, width, height, d, mpp, seed)
    eosin *= np.float32(0.34 * 0.45)
    eosin += np.float32(0.34 * 0.55)
    hema = _nuclei(STROMA_NUCLEI, xs, ys, mpp, d, seed)
    hema += np.float32(0.05)
    for morphology, nuclei, base_h, base_e in (
        ("a", GLANDULAR_NUCLEI, 0.14, 0.30),
        ("b", SOLID_NUCLEI, 0.30, 0.20),
    ):
        lesions = [les.polygon for les in scene.lesions if les.morphology == morphology]
        lesions = [p for p in lesions if hits(p)]
        if not lesions:
            continue
        mask = _fill(lesions, x, y, shape, d)
        if not mask.any():
            continue
        tumour_h = _nuclei(nuclei, xs, ys, mpp, d, seed) + np.float32(base_h)
        tumour_e = upsampled_field(tumour_eosin, x, y, width, height, d, factor) * np.float32(
            base_e
        )
        if morphology == "a":
            lumen = np.clip(_nuclei(LUMENS, xs, ys, mpp, d, seed, stain=False), 0, 1)
            tumour_h += lumen * (np.float32(0.02) - tumour_h)
            tumour_e += lumen * (np.float32(0.08) - tumour_e)
        hema += mask * (tumour_h - hema)
        eosin += mask * (tumour_e - eosin)
    weight = upsampled_field(thickness, x, y, width, height, d, factor)
    weight *= tissue
    hema *= weight
    eosin *= weight
    return hema, eosin
