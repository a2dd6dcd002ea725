"""Deterministic hashing and smooth noise, evaluated at any level-0 position.

Everything the renderer draws is a pure function of level-0 coordinates and integer seeds, so a
tile can be rendered at any pyramid level, in any order, and always agrees with its neighbours
and with the levels above and below it.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

_U32 = np.uint32


def hash_u32(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """A well-mixed uint32 hash of integer lattice coordinates and a salt."""
    with np.errstate(over="ignore"):
        h = np.asarray(ix).astype(np.int64).astype(_U32) * _U32(0x8DA6B343)
        h ^= np.asarray(iy).astype(np.int64).astype(_U32) * _U32(0xD8163841)
        h ^= _U32(salt & 0xFFFFFFFF)
        h ^= h >> _U32(16)
        h *= _U32(0x7FEB352D)
        h ^= h >> _U32(15)
        h *= _U32(0x846CA68B)
        h ^= h >> _U32(16)
    return h


def hash_unit(ix: np.ndarray, iy: np.ndarray, salt: int) -> np.ndarray:
    """Uniform floats in ``[0, 1)`` hashed from lattice coordinates (float64)."""
    return hash_u32(ix, iy, salt).astype(np.float64) * (1.0 / 4294967296.0)


def _interp_weights(coords: np.ndarray, spacing: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Smooth-step weights between lattice nodes: (node index from 0, weight of next, first)."""
    u = coords / spacing
    base = np.floor(u)
    f = u - base
    f = f * f * (3.0 - 2.0 * f)
    first = int(base[0]) if coords.size else 0
    return (base - first).astype(np.intp), f.astype(np.float32), first


def value_noise(xs: np.ndarray, ys: np.ndarray, spacing: float, salt: int) -> np.ndarray:
    """Smooth value noise in ``[0, 1]`` on the grid of level-0 points ``xs`` × ``ys``.

    Args:
        xs: Level-0 x of each output column (1-D, increasing).
        ys: Level-0 y of each output row (1-D, increasing).
        spacing: Lattice spacing in level-0 pixels (the feature size).
        salt: Seed of this noise field.

    Returns:
        Float32 array (len(ys), len(xs)).
    """
    ix, fx, x0 = _interp_weights(np.asarray(xs, dtype=np.float64), spacing)
    iy, fy, y0 = _interp_weights(np.asarray(ys, dtype=np.float64), spacing)
    gy, gx = np.meshgrid(
        np.arange(y0, y0 + iy[-1] + 2), np.arange(x0, x0 + ix[-1] + 2), indexing="ij"
    )
    lattice = hash_unit(gx, gy, salt).astype(np.float32)
    along_x = lattice[:, ix] * (1 - fx) + lattice[:, ix + 1] * fx  # (n_nodes_y, len(xs))
    rows = along_x[iy]
    rows *= (1 - fy)[:, None]
    rows += along_x[iy + 1] * fy[:, None]
    return rows


def fractal_noise(
    xs: np.ndarray, ys: np.ndarray, spacing: float, salt: int, *, octaves: int, pixel: float
) -> np.ndarray:
    """Sum of value-noise octaves, normalised to ``[0, 1]`` with mean 0.5.

    Octaves finer than two output pixels (``pixel`` level-0 px each) are replaced by their mean,
    so a coarse pyramid level shows what a downsample of level 0 would show, without aliasing.
    """
    total = np.zeros((len(ys), len(xs)), dtype=np.float32)
    norm = 0.0
    amplitude = 1.0
    for octave in range(octaves):
        size = spacing / (2**octave)
        if size >= 2.0 * pixel:
            total += amplitude * value_noise(xs, ys, size, salt + 7919 * octave)
        else:
            total += amplitude * 0.5
        norm += amplitude
        amplitude *= 0.5
    return total / norm


def upsampled_field(
    field: Callable[[np.ndarray, np.ndarray], np.ndarray],
    x: int,
    y: int,
    width: int,
    height: int,
    downsample: float,
    factor: int,
) -> np.ndarray:
    """Evaluate a smooth ``field(xs, ys)`` every ``factor`` pixels and interpolate linearly.

    The coarse samples lie at level pixels ``x + factor·(j − ½)``, a lattice shared by every
    region whose origin is a multiple of ``factor``, so neighbouring tiles join seamlessly.

    Args:
        field: Function of level-0 column and row coordinates returning (len(ys), len(xs)).
        x: First column of the region, in pixels of the level.
        y: First row of the region.
        width: Columns of the region.
        height: Rows of the region.
        downsample: Level-0 pixels per pixel of the level.
        factor: Sampling step in pixels of the level (1 evaluates every pixel).

    Returns:
        Float32 array (height, width).
    """
    if factor <= 1:
        xs = (x + np.arange(width) + 0.5) * downsample
        ys = (y + np.arange(height) + 0.5) * downsample
        return field(xs, ys).astype(np.float32, copy=False)
    nx = -(-(width + 2 * factor) // factor)
    ny = -(-(height + 2 * factor) // factor)
    xs = (x + factor * (np.arange(nx) - 0.5)) * downsample
    ys = (y + factor * (np.arange(ny) - 0.5)) * downsample
    coarse = field(xs, ys).astype(np.float32, copy=False)
    fine = cv2.resize(coarse, (nx * factor, ny * factor), interpolation=cv2.INTER_LINEAR)
    return fine[factor : factor + height, factor : factor + width]
