"""ASAP splines: a smooth closed curve through the control points (Catmull-Rom)."""

from __future__ import annotations

import numpy as np

SAMPLES_PER_SEGMENT = 16


def catmull_rom_closed(
    control_points: np.ndarray, *, samples_per_segment: int = SAMPLES_PER_SEGMENT
) -> np.ndarray:
    """Densify a closed uniform Catmull-Rom spline through ``control_points``.

    Args:
        control_points: (N, 2) level-0 ``(x, y)``; a repeated closing point is ignored.
        samples_per_segment: Vertices per control-point segment (the curve passes exactly
            through every control point).

    Returns:
        (N * samples_per_segment, 2) vertices of the closed curve, not repeating the first.
    """
    points = np.asarray(control_points, dtype=np.float64).reshape(-1, 2)
    if len(points) > 1 and np.array_equal(points[0], points[-1]):
        points = points[:-1]
    if len(points) < 3:
        return points.copy()
    p0 = np.roll(points, 1, axis=0)[:, None, :]
    p1 = points[:, None, :]
    p2 = np.roll(points, -1, axis=0)[:, None, :]
    p3 = np.roll(points, -2, axis=0)[:, None, :]
    t = (np.arange(samples_per_segment) / samples_per_segment)[None, :, None]
    curve = 0.5 * (
        2 * p1
        + (p2 - p0) * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
        + (3 * p1 - p0 - 3 * p2 + p3) * t**3
    )
    return curve.reshape(-1, 2)
