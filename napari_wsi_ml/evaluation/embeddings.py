"""Label-free quality of an embedding matrix ``(N samples, D dimensions)``.

- :func:`rankme`: the effective rank of Garrido et al. (2023), "RankMe: Assessing the
  downstream performance of pretrained self-supervised representations by their rank":
  with the singular values ``σ`` of the embedding matrix and ``p_k = σ_k / Σ σ``,
  ``RankMe = exp(−Σ p_k log p_k)`` (``0 log 0 = 0``). It lies in ``[1, min(N, D)]``: a matrix
  whose r non-zero singular values are equal scores exactly r; a collapsed embedding (every
  sample on one direction) scores 1. The matrix is not centred, as in the paper.
- :func:`mean_abs_offdiagonal_correlation`: the mean absolute Pearson correlation between
  pairs of embedding dimensions: 0 for decorrelated dimensions, 1 when every dimension
  repeats the same signal (redundancy). Constant ("dead") dimensions have no correlation and
  are left out; :func:`dead_dimensions` counts them.
- :func:`embedding_quality` gathers them into one JSON-ready dict.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEAD_STD = 1e-8
"""A dimension whose standard deviation is at most this (relative to the largest) is dead."""


def _matrix(embeddings: np.ndarray) -> np.ndarray:
    z = np.asarray(embeddings, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"embeddings must be a 2-D (N, D) matrix, got shape {z.shape}")
    if z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"embeddings must have samples and dimensions, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("embeddings must be finite")
    return z


def singular_value_distribution(embeddings: np.ndarray) -> np.ndarray:
    """The singular values of ``embeddings`` normalised to sum to 1, largest first.

    Raises:
        ValueError: Not a finite non-empty 2-D matrix, or an all-zero one.
    """
    sigma = np.linalg.svd(_matrix(embeddings), compute_uv=False)
    total = sigma.sum()
    if total <= 0:
        raise ValueError("an all-zero embedding matrix has no rank")
    return sigma / total


def rankme(embeddings: np.ndarray) -> float:
    """RankMe effective rank of an ``(N, D)`` embedding matrix (see the module docstring)."""
    p = singular_value_distribution(embeddings)
    p = p[p > 0]
    return float(np.exp(-(p * np.log(p)).sum()))


def dead_dimensions(embeddings: np.ndarray) -> np.ndarray:
    """Boolean ``(D,)``: dimensions that do not vary over the samples."""
    std = _matrix(embeddings).std(axis=0)
    return std <= DEAD_STD * max(float(std.max()), 1e-300)


def correlation_matrix(embeddings: np.ndarray) -> np.ndarray:
    """Pearson correlations ``(D', D')`` between the live (non-constant) dimensions."""
    z = _matrix(embeddings)
    live = z[:, ~dead_dimensions(z)]
    if live.shape[1] == 0 or z.shape[0] < 2:
        return np.zeros((0, 0))
    centred = live - live.mean(axis=0)
    scaled = centred / np.linalg.norm(centred, axis=0)
    return np.clip(scaled.T @ scaled, -1.0, 1.0)


def mean_abs_offdiagonal_correlation(embeddings: np.ndarray) -> float | None:
    """Mean ``|corr(i, j)|`` over pairs ``i ≠ j`` of live dimensions; None with fewer than two."""
    corr = correlation_matrix(embeddings)
    d = corr.shape[0]
    if d < 2:
        return None
    off = np.abs(corr[~np.eye(d, dtype=bool)])
    return float(off.mean())


def embedding_quality(embeddings: np.ndarray) -> dict[str, Any]:
    """RankMe, its fraction of the largest possible rank, correlation and dead dimensions.

    Returns:
        ``{"n": N, "dim": D, "rankme": float, "rankme_fraction": rankme / min(N, D),
        "mean_abs_offdiagonal_correlation": float | None, "dead_dimensions": int}``.
    """
    z = _matrix(embeddings)
    n, d = z.shape
    rank = rankme(z)
    return {
        "n": int(n),
        "dim": int(d),
        "rankme": rank,
        "rankme_fraction": rank / min(n, d),
        "mean_abs_offdiagonal_correlation": mean_abs_offdiagonal_correlation(z),
        "dead_dimensions": int(dead_dimensions(z).sum()),
    }
