"""STAPLE (Warfield et al. 2004) for binary labels: a probabilistic consensus and each rater's
sensitivity and specificity, estimated by expectation-maximisation on grid cells.

Cells with identical decisions are grouped, so an iteration costs O(patterns), not O(cells).
Missing decisions (-1) do not contribute to a cell's likelihood.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from napari_wsi_ml.agreement.kappa import patterns

EPS = 1e-9


@dataclass
class StapleResult:
    """Estimated truth probability per cell and each rater's performance."""

    probability: np.ndarray
    sensitivity: np.ndarray
    specificity: np.ndarray
    prior: float
    iterations: int
    converged: bool


def staple(
    decisions: np.ndarray,
    *,
    prior: float | None = None,
    max_iter: int = 200,
    tol: float = 1e-8,
) -> StapleResult:
    """Run binary STAPLE.

    Args:
        decisions: ``(n_cells, n_raters)`` of 0/1, -1 for missing.
        prior: Fixed prevalence of the class; ``None`` estimates it too (latent-class EM).
        max_iter: Iteration cap.
        tol: Stop when no sensitivity/specificity moves more than this.
    """
    decisions = np.asarray(decisions, dtype=np.int64)
    pats, counts = patterns(decisions, 2)
    present = pats >= 0
    pos = (pats == 1).astype(float)
    neg = (pats == 0).astype(float)
    n_raters = decisions.shape[1]
    p = np.full(n_raters, 0.99)
    q = np.full(n_raters, 0.99)
    rated = counts @ present.astype(float)
    f = float((counts @ pos).sum() / max(rated.sum(), 1)) if prior is None else float(prior)
    converged = False
    it = 0
    for it in range(1, max_iter + 1):  # noqa: B007
        lp = np.log(np.clip(p, EPS, 1 - EPS))
        l1p = np.log(np.clip(1 - p, EPS, 1 - EPS))
        lq = np.log(np.clip(q, EPS, 1 - EPS))
        l1q = np.log(np.clip(1 - q, EPS, 1 - EPS))
        a = np.log(max(f, EPS)) + pos @ lp + neg @ l1p
        b = np.log(max(1 - f, EPS)) + neg @ lq + pos @ l1q
        w = 1.0 / (1.0 + np.exp(np.clip(b - a, -700, 700)))
        cw, cv = counts * w, counts * (1 - w)
        p_new = (cw @ pos) / np.maximum(cw @ present, EPS)
        q_new = (cv @ neg) / np.maximum(cv @ present, EPS)
        if prior is None:
            f = float(cw.sum() / counts.sum())
        delta = max(np.abs(p_new - p).max(), np.abs(q_new - q).max())
        p, q = p_new, q_new
        if delta < tol:
            converged = True
            break
    base = n_raters + 0
    codes = (decisions + 1) @ (3 ** np.arange(base))
    pat_codes = (pats + 1) @ (3 ** np.arange(base))
    probability = w[np.searchsorted(pat_codes, codes)]
    return StapleResult(probability, p, q, f, it, converged)
