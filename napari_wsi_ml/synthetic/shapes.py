"""Irregular outlines for tissue, lesions, dust and pen strokes, in level-0 ``(x, y)``."""

from __future__ import annotations

import numpy as np
from shapely.geometry import LineString, Polygon


def irregular_blob(
    rng: np.random.Generator,
    centre: tuple[float, float],
    radius: float,
    *,
    roughness: float = 0.25,
    elongation: float = 1.0,
    n_vertices: int = 240,
) -> Polygon:
    """A closed, simple, star-shaped outline with a wavy, irregular boundary.

    Args:
        rng: Random source.
        centre: Centre ``(x, y)``.
        radius: Mean radius in level-0 pixels.
        roughness: Relative amplitude of the boundary's waves (0 gives an ellipse).
        elongation: Ratio of the long to the short axis.
        n_vertices: Number of vertices of the outline.
    """
    theta = np.linspace(0.0, 2.0 * np.pi, n_vertices, endpoint=False)
    r = np.ones_like(theta)
    for k in range(2, 13):
        amplitude = roughness * rng.uniform(0.3, 1.0) / k**1.1
        r += amplitude * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
    r = np.clip(r, 0.35, None)
    angle = rng.uniform(0, np.pi)
    stretch = np.sqrt(elongation)
    x = r * np.cos(theta) * stretch
    y = r * np.sin(theta) / stretch
    ca, sa = np.cos(angle), np.sin(angle)
    xs = centre[0] + radius * (ca * x - sa * y)
    ys = centre[1] + radius * (sa * x + ca * y)
    polygon = Polygon(np.column_stack([xs, ys]))
    return polygon if polygon.is_valid else polygon.buffer(0)


def pen_stroke(
    rng: np.random.Generator,
    start: tuple[float, float],
    length: float,
    width: float,
    heading: float,
) -> Polygon:
    """A gently curving band, like a marker line drawn on the glass (``heading`` in radians)."""
    t = np.linspace(0.0, 1.0, 48)
    angle = heading
    bend = rng.uniform(-0.6, 0.6)
    heading = angle + bend * np.sin(np.pi * t)
    step = length / (len(t) - 1)
    xs = start[0] + np.concatenate([[0.0], np.cumsum(step * np.cos(heading[:-1]))])
    ys = start[1] + np.concatenate([[0.0], np.cumsum(step * np.sin(heading[:-1]))])
    return LineString(np.column_stack([xs, ys])).buffer(width / 2.0, quad_segs=6)


def exterior_xy(polygon: Polygon) -> np.ndarray:
    """The exterior ring as an (N, 2) float array without the closing repeat."""
    return np.asarray(polygon.exterior.coords, dtype=np.float64)[:-1]
