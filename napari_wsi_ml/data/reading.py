"""Reading patches: the level region of a :class:`ReadPlan`, resized with :func:`resize_patch`.

A damaged tile inside a slide fails only the patches that touch it: :func:`read_patches`
skips and counts them (:class:`PatchBatch`), so that a long run goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from napari_wsi_ml.data.resolution import ReadPlan, resize_patch
from napari_wsi_ml.errors import SlideError


class RegionReader(Protocol):
    """Anything with :meth:`napari_wsi_ml.slide.Slide.read_region`'s signature."""

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """RGB ``(h, w, 3)`` uint8 of ``level`` from level-0 ``location`` ``(x, y)``."""
        ...


def read_patch(slide: RegionReader, xy: Sequence[int], plan: ReadPlan) -> np.ndarray:
    """The ``(H, W, 3)`` uint8 patch whose level-0 top-left corner is ``xy`` ``(x, y)``.

    Raises:
        SlideError: A tile under the patch cannot be decoded.
    """
    region = slide.read_region((int(xy[0]), int(xy[1])), plan.level, plan.read_size)
    return np.ascontiguousarray(resize_patch(region, plan.patch_size))


@dataclass
class PatchBatch:
    """Patches read together, with those that could not be read marked and explained.

    Attributes:
        images: ``(N, H, W, 3)`` uint8; the rows of failed patches are white.
        ok: ``(N,)`` bool, False where a tile under the patch could not be decoded.
        errors: ``(index, message)`` for every failed patch.
    """

    images: np.ndarray
    ok: np.ndarray
    errors: list[tuple[int, str]] = field(default_factory=list)

    @property
    def failed(self) -> int:
        """Number of patches that could not be read."""
        return int((~self.ok).sum())

    def good(self) -> np.ndarray:
        """The images of the patches read, ``(N_ok, H, W, 3)``."""
        return self.images[self.ok]


def read_patches(slide: RegionReader, xys: np.ndarray, plan: ReadPlan) -> PatchBatch:
    """Read the patches at level-0 top-left corners ``xys`` ``(N, 2)``, in order.

    A patch over an undecodable tile is skipped (white, ``ok`` False, message kept); any other
    error propagates.
    """
    xys = np.asarray(xys, dtype=np.int64).reshape(-1, 2)
    width, height = plan.patch_size
    images = np.full((len(xys), height, width, 3), 255, dtype=np.uint8)
    ok = np.ones(len(xys), dtype=bool)
    errors: list[tuple[int, str]] = []
    for index, (x, y) in enumerate(xys.tolist()):
        try:
            images[index] = read_patch(slide, (x, y), plan)
        except SlideError as error:
            ok[index] = False
            errors.append((index, str(error)))
    return PatchBatch(images, ok, errors)
