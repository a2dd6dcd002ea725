"""Vectorised bootstrap: resampled pattern counts, and percentile confidence intervals.

Resampling N units with replacement is the same as drawing the counts of each distinct
pattern from a multinomial distribution, so a thousand resamples of a million cells are a
``(B, P)`` matrix with P the number of distinct patterns (a few hundred at most).
"""

from __future__ import annotations

import numpy as np

LEVEL = 0.95


def resample_counts(counts: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_boot, P)`` bootstrap replicates of pattern ``counts`` (resampling units)."""
    counts = np.asarray(counts, dtype=float)
    total = round(float(counts.sum()))
    if total == 0:
        return np.zeros((n_boot, counts.size))
    return rng.multinomial(total, counts / counts.sum(), size=n_boot).astype(float)


def resample_groups(per_group: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Replicates of pooled counts when whole groups (slides) are resampled.

    Args:
        per_group: ``(G, P)`` counts (or any additive quantity) per group.
        n_boot: Number of replicates.
        rng: Seeded generator.

    Returns:
        ``(n_boot, P)``: for each replicate, the sum over G groups drawn with replacement.
    """
    per_group = np.asarray(per_group, dtype=float)
    n_groups = per_group.shape[0]
    multiplicity = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
    return multiplicity @ per_group


def percentile_ci(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (NaN replicates ignored)."""
    values = np.asarray(replicates, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (float("nan"), float("nan"))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return (float(low), float(high))


def estimate(value: float, replicates: np.ndarray) -> dict[str, object]:
    """``{"value": v, "ci": [low, high]}`` for JSON (NaN becomes ``None``)."""
    low, high = percentile_ci(replicates)
    return {"value": _finite(value), "ci": [_finite(low), _finite(high)]}


def _finite(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
