"""Top-k instance selection and slide aggregation of top-k MIL (Campanella et al., 2019).

Class 0 is the negative class (``normal``); the others are lesion classes. A patch's
*suspicion* is ``1 − p(class 0)``: the probability that it shows any lesion. This is the
multi-class reading of Campanella et al.'s tumour probability, by which they rank the tiles of
every slide, positive or negative.

Training selection (every epoch, per slide, from the current model's probabilities):

- ``"not_normal"`` (default, Campanella's rule): the ``k`` most suspicious patches of every
  slide, trained with the slide's label. On a lesion slide these are the patches most likely
  to show its lesion; on a normal slide they are its hardest negatives.
- ``"own_class"``: the ``k`` patches most probable for the slide's own class. Identical to the
  default for lesion slides of a binary task, but on normal slides it picks the most normal
  patches, which teach little; it can help a multi-class task tell lesion types apart.

Slide prediction (labels unknown): the patches are ranked by suspicion; ``"max"`` takes the
probability vector of the most suspicious patch (Campanella's max-pooling; for two classes the
slide's lesion score is the largest patch lesion probability), ``"top_k_mean"`` the mean vector
of the ``k`` most suspicious patches. Both are probability vectors (they sum to one).
"""

from __future__ import annotations

import numpy as np

SELECTIONS = ("not_normal", "own_class")
AGGREGATIONS = ("max", "top_k_mean")


def suspicion(probs: np.ndarray) -> np.ndarray:
    """``1 − p(class 0)`` of each patch ``(n,)`` from probabilities ``(n, C)``."""
    return 1.0 - np.asarray(probs, dtype=np.float64)[:, 0]


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` highest ``scores`` (all when fewer), highest first; ties by index."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    order = np.lexsort((np.arange(len(scores)), -scores))
    return order[: min(k, len(scores))]


def select_training_patches(probs: np.ndarray, label: int, k: int, rule: str) -> np.ndarray:
    """The patch indices of one slide to train on this epoch (see the module docstring)."""
    probs = np.asarray(probs, dtype=np.float64)
    if rule == "not_normal":
        return top_k_indices(suspicion(probs), k)
    if rule == "own_class":
        return top_k_indices(probs[:, label], k)
    raise ValueError(f"unknown selection rule {rule!r}; one of {', '.join(SELECTIONS)}")


def slide_probabilities(probs: np.ndarray, how: str, k: int = 1) -> np.ndarray:
    """A slide's class probabilities ``(C,)`` from its patches' ``(n, C)``."""
    probs = np.asarray(probs, dtype=np.float64)
    if len(probs) == 0:
        raise ValueError("a slide without scored patches has no prediction")
    if how == "max":
        return probs[top_k_indices(suspicion(probs), 1)[0]]
    if how == "top_k_mean":
        return probs[top_k_indices(suspicion(probs), k)].mean(axis=0)
    raise ValueError(f"unknown aggregation {how!r}; one of {', '.join(AGGREGATIONS)}")
