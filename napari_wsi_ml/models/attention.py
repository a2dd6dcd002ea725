"""Gated attention pooling and the attention-MIL slide classifier (Ilse et al., 2018).

A slide is a *bag* of patch feature vectors. :class:`GatedAttention` scores every patch,

    a_i = softmax_i( w · (tanh(V h_i) ⊙ sigmoid(U h_i)) ),

and pools the bag into ``Σ a_i h_i``. :class:`AttentionMil` embeds the patch features, pools
them with gated attention and classifies the pooled vector (one logit per class, multi-class).

Both accept one bag ``(N, D)`` or a padded batch of bags ``(B, N, D)`` with a boolean
``mask`` (True = a real patch). Masked patches get attention exactly 0; the weights of every
bag sum to 1 over its real patches (a bag without any real patch pools to zeros). Pooling is
invariant to the order of the patches.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

__all__ = ["AttentionMil", "AttentionMilOutput", "GatedAttention"]


def _as_batch(
    x: torch.Tensor, mask: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(B, N, D)`` features, ``(B, N)`` mask and whether the input was a single bag."""
    single = x.dim() == 2
    if single:
        x = x.unsqueeze(0)
        mask = None if mask is None else mask.unsqueeze(0)
    if x.dim() != 3:
        raise ValueError(f"features must be (N, D) or (B, N, D), got shape {tuple(x.shape)}")
    if mask is None:
        mask = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    elif mask.shape != x.shape[:2]:
        raise ValueError(f"mask must have shape {tuple(x.shape[:2])}, got {tuple(mask.shape)}")
    return x, mask.to(torch.bool), single


class GatedAttention(nn.Module):
    """Gated attention pooling of a bag of instance vectors.

    Args:
        in_features: Size ``D`` of each instance vector.
        hidden: Size of the attention network's hidden layer.
        dropout: Dropout on the gated hidden layer (training only).
    """

    def __init__(self, in_features: int, hidden: int = 128, *, dropout: float = 0.0) -> None:
        super().__init__()
        self.value = nn.Linear(in_features, hidden)
        self.gate = nn.Linear(in_features, hidden)
        self.score = nn.Linear(hidden, 1)
        self.dropout = nn.Dropout(dropout)

    def scores(self, x: torch.Tensor) -> torch.Tensor:
        """Unnormalised attention scores ``(..., N)`` of instances ``(..., N, D)``."""
        hidden = torch.tanh(self.value(x)) * torch.sigmoid(self.gate(x))
        return self.score(self.dropout(hidden)).squeeze(-1)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pool a bag.

        Args:
            x: ``(N, D)`` one bag, or ``(B, N, D)`` padded bags.
            mask: ``(N,)`` / ``(B, N)`` bool, True for real instances (default: all real).

        Returns:
            ``pooled`` ``(D,)`` / ``(B, D)`` and ``weights`` ``(N,)`` / ``(B, N)``: attention
            summing to 1 over each bag's real instances, 0 on masked ones.
        """
        batch, valid, single = _as_batch(x, mask)
        scores = self.scores(batch).float().masked_fill(~valid, float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        weights = torch.where(valid, weights, torch.zeros_like(weights))  # empty bags: 0, not NaN
        pooled = torch.einsum("bn,bnd->bd", weights.to(batch.dtype), batch)
        if single:
            return pooled[0], weights[0]
        return pooled, weights


class AttentionMilOutput(NamedTuple):
    """What :class:`AttentionMil` returns.

    Attributes:
        logits: ``(C,)`` or ``(B, C)`` slide logits.
        attention: ``(N,)`` or ``(B, N)`` attention weights of the patches.
    """

    logits: torch.Tensor
    attention: torch.Tensor


class AttentionMil(nn.Module):
    """Attention-MIL classifier: embed patches, gated-attention pooling, linear classifier.

    The slide logits equal the attention-weighted mean of the per-patch logits
    (:meth:`instance_logits`), which therefore show what each patch contributes.

    Args:
        in_features: Size of each patch feature vector.
        num_classes: Number of slide classes.
        embed_dim: Size of the patch embedding (a linear layer + ReLU).
        attention_dim: Hidden size of the gated attention.
        dropout: Dropout on the embeddings and in the attention network (training only).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        embed_dim: int = 128,
        attention_dim: int = 128,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        self.in_features, self.num_classes = int(in_features), int(num_classes)
        self.embed = nn.Sequential(
            nn.Linear(in_features, embed_dim), nn.ReLU(), nn.Dropout(dropout)
        )
        self.attention = GatedAttention(embed_dim, attention_dim, dropout=dropout)
        self.classifier = nn.Linear(embed_dim, num_classes)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> AttentionMilOutput:
        """Slide logits and patch attention of ``x`` ``(N, D)`` or ``(B, N, D)`` (+ ``mask``)."""
        pooled, weights = self.attention(self.embed(x), mask)
        return AttentionMilOutput(self.classifier(pooled), weights)

    def instance_logits(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., N, C)`` logits of each patch on its own (the classifier on its embedding)."""
        return self.classifier(self.embed(x))
