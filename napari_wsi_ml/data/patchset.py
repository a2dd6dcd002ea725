"""A set of patches of one slide: level-0 corners, labels and how to read them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from napari_wsi_ml.data.resolution import ReadPlan

UNLABELLED = -1
"""Label index of patches without a label."""


@dataclass(frozen=True)
class PatchSet:
    """Patches of one slide.

    Attributes:
        xy: ``(N, 2)`` int64 level-0 top-left corners ``(x, y)``; each patch covers
            ``plan.extent`` level-0 pixels from there.
        labels: ``(N,)`` int64 indices into ``label_names`` (:data:`UNLABELLED` = none).
        label_names: Class names, index order.
        plan: How the patches are read (level, sizes, resolution).
        slide_name: The slide's name (file stem, or a cohort's slide id).
        slide_path: The slide file, if known.
        coverage: ``(N,)`` fraction of each patch that is usable tissue (grid and random
            sampling) or covered by its label (annotation sampling); NaN where unknown.
        notes: What the sampler skipped or could not do, for reports.
    """

    xy: np.ndarray
    labels: np.ndarray
    label_names: tuple[str, ...]
    plan: ReadPlan
    slide_name: str
    slide_path: str | None = None
    coverage: np.ndarray | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        xy = np.asarray(self.xy, dtype=np.int64).reshape(-1, 2)
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(labels) != len(xy):
            raise ValueError(f"{len(xy)} corners but {len(labels)} labels")
        fraction = self.coverage
        fraction = np.full(len(xy), np.nan) if fraction is None else np.asarray(fraction, float)
        object.__setattr__(self, "xy", xy)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "coverage", fraction)
        object.__setattr__(self, "label_names", tuple(self.label_names))
        object.__setattr__(self, "notes", tuple(self.notes))

    def __len__(self) -> int:
        return len(self.xy)

    @property
    def boxes(self) -> np.ndarray:
        """``(N, 4)`` float level-0 boxes ``(x0, y0, x1, y1)``."""
        ex, ey = self.plan.extent
        return np.column_stack([self.xy, self.xy + np.array([ex, ey])]).astype(np.float64)

    @property
    def centres(self) -> np.ndarray:
        """``(N, 2)`` float level-0 patch centres ``(x, y)``."""
        return self.xy + np.asarray(self.plan.extent, dtype=np.float64) / 2

    def counts(self) -> dict[str, int]:
        """Number of patches per class name (and ``"unlabelled"`` if any)."""
        out = {name: int((self.labels == i).sum()) for i, name in enumerate(self.label_names)}
        missing = int((self.labels == UNLABELLED).sum())
        if missing:
            out["unlabelled"] = missing
        return out

    def subset(self, selection: np.ndarray | Sequence[int]) -> PatchSet:
        """The patches picked by a boolean mask or index array."""
        index = np.asarray(selection)
        return replace(
            self,
            xy=self.xy[index],
            labels=self.labels[index],
            coverage=self.coverage[index],  # type: ignore[index]
        )

    def label_name(self, index: int) -> str:
        """The name of label ``index`` (``""`` when unlabelled)."""
        return self.label_names[index] if index != UNLABELLED else ""

    def rows(self) -> list[dict[str, Any]]:
        """Manifest rows: slide, x, y, level, mpp, width/height (level-0), label, ..."""
        plan = self.plan
        mpp = plan.target_mpp[0] if plan.target_mpp is not None else None
        common = {
            "slide": self.slide_name,
            "path": self.slide_path or "",
            "level": plan.level,
            "mpp": mpp,
            "width": plan.extent[0],
            "height": plan.extent[1],
            "patch_width": plan.patch_size[0],
            "patch_height": plan.patch_size[1],
        }
        return [
            {
                **common,
                "x": int(x),
                "y": int(y),
                "label": self.label_name(int(label)),
                "label_index": int(label),
                "coverage": float(frac),
            }
            for (x, y), label, frac in zip(
                self.xy.tolist(), self.labels.tolist(), self.coverage, strict=True
            )
        ]

    def to_frame(self) -> Any:
        """The manifest rows as a pandas DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.rows())
