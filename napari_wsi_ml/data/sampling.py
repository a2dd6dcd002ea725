"""Tissue-driven patch sampling: a regular grid over tissue, and online random patches.

Both keep only patches whose usable-tissue fraction (tissue minus QC-flagged area; see
:class:`~napari_wsi_ml.data.tissue_index.TissueIndex`) is at least ``min_tissue``. Random
patches are checked exactly (shapely areas), so every one of them meets the fraction; grid
patches are checked exactly wherever the raster estimate is within 0.1 of the threshold.
Patch corners are level-0 ``(x, y)``, on whole pixels of the read level, patches inside the slide.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.data.patchset import UNLABELLED, PatchSet
from napari_wsi_ml.data.qc import EXCLUDED_BY_DEFAULT, QCMask
from napari_wsi_ml.data.resolution import ReadPlan
from napari_wsi_ml.data.tissue_index import TissueIndex

if TYPE_CHECKING:
    from napari_wsi_ml.slide import Slide

DEFAULT_MIN_TISSUE = 0.4


def usable_area(
    slide: Slide,
    *,
    tissue: BaseGeometry | None = None,
    qc: QCMask | None = None,
    exclude: Sequence[str] = EXCLUDED_BY_DEFAULT,
) -> BaseGeometry:
    """Tissue (``tissue`` or the slide's tissue polygons) minus QC flags ``exclude``, level-0."""
    area = slide.tissue_polygons() if tissue is None else tissue
    if qc is not None and exclude:
        flagged = qc.polygons(tuple(exclude))
        if not flagged.is_empty:
            area = area.difference(flagged)
    return area


def tissue_index(
    slide: Slide,
    plan: ReadPlan,
    *,
    tissue: BaseGeometry | None = None,
    qc: QCMask | None = None,
    exclude: Sequence[str] = EXCLUDED_BY_DEFAULT,
) -> TissueIndex:
    """The :class:`TissueIndex` of ``slide``'s usable area for patches of ``plan``."""
    area = usable_area(slide, tissue=tissue, qc=qc, exclude=exclude)
    return TissueIndex(area, slide.level_dimensions[0], plan.extent)


def _labels(n: int, label: str | None, label_names: Sequence[str] | None) -> tuple:
    names = tuple(label_names) if label_names is not None else ((label,) if label else ())
    if label is None:
        return np.full(n, UNLABELLED, dtype=np.int64), names
    if label not in names:
        raise ValueError(f"label {label!r} is not in label_names {names}")
    return np.full(n, names.index(label), dtype=np.int64), names


def grid_corners(slide_size: tuple[int, int], plan: ReadPlan, stride: object = None) -> np.ndarray:
    """Level-0 corners ``(N, 2)`` of the regular grid from ``(0, 0)`` (patches inside the slide).

    ``stride`` is in output pixels (int or ``(x, y)``; None: the patch size, no overlap).
    """
    sx, sy = plan.level0_stride(stride)  # type: ignore[arg-type]
    ex, ey = plan.extent
    xs = np.arange(0, slide_size[0] - ex + 1, sx, dtype=np.int64)
    ys = np.arange(0, slide_size[1] - ey + 1, sy, dtype=np.int64)
    gx, gy = np.meshgrid(xs, ys)
    return np.column_stack([gx.ravel(), gy.ravel()])


def grid_patches(
    slide: Slide,
    plan: ReadPlan,
    *,
    stride: int | tuple[int, int] | None = None,
    min_tissue: float = DEFAULT_MIN_TISSUE,
    tissue: BaseGeometry | None = None,
    qc: QCMask | None = None,
    index: TissueIndex | None = None,
    label: str | None = None,
    label_names: Sequence[str] | None = None,
) -> PatchSet:
    """Grid patches over tissue with at least ``min_tissue`` usable fraction.

    Args:
        slide: The slide.
        plan: From :func:`~napari_wsi_ml.data.resolution.plan_patch_read`.
        stride: Step in output pixels (int or ``(x, y)``); None = patch size (no overlap).
        min_tissue: Minimum usable-tissue fraction of a patch (0 keeps every grid patch).
        tissue: Tissue geometry (level-0); default the slide's tissue polygons.
        qc: A QC mask whose blur and pen flags are excluded.
        index: A prebuilt tissue index (then ``tissue`` and ``qc`` are ignored).
        label: Label of every patch (e.g. the slide label), or None.
        label_names: Class names (default ``(label,)``).
    """
    index = index or tissue_index(slide, plan, tissue=tissue, qc=qc)
    corners = grid_corners(slide.level_dimensions[0], plan, stride)
    keep, fraction = index.meets(corners, plan.extent, min_tissue)
    labels, names = _labels(int(keep.sum()), label, label_names)
    return PatchSet(corners[keep], labels, names, plan, slide.name, str(slide.path), fraction[keep])


class RandomPatchSampler:
    """Online random patches inside tissue: a fresh set every epoch, nothing stored on disk.

    Build it once per slide (it rasterises the usable area), then call :meth:`sample` every
    epoch. Every patch returned has an exact usable-tissue fraction ≥ ``min_tissue``.
    """

    def __init__(
        self,
        slide: Slide,
        plan: ReadPlan,
        *,
        min_tissue: float = DEFAULT_MIN_TISSUE,
        tissue: BaseGeometry | None = None,
        qc: QCMask | None = None,
        index: TissueIndex | None = None,
        seed: int = 0,
        label: str | None = None,
        label_names: Sequence[str] | None = None,
    ) -> None:
        self.plan, self.min_tissue, self.seed = plan, float(min_tissue), int(seed)
        self.label, self.label_names = label, label_names
        self.slide_name, self.slide_path = slide.name, str(slide.path)
        self.index = index or tissue_index(slide, plan, tissue=tissue, qc=qc)
        self._limit = np.asarray(slide.level_dimensions[0]) - plan.extent  # last corner
        self._cells = self._eligible_cells()

    def _eligible_cells(self) -> np.ndarray:
        """Corners ``(K, 2)`` (level-0) of raster cells where a qualifying corner may lie."""
        if (self._limit < 0).any():
            return np.zeros((0, 2))
        cell = self.index.cell
        xs = np.arange(0, self._limit[0] + 1, cell)
        ys = np.arange(0, self._limit[1] + 1, cell)
        gx, gy = np.meshgrid(xs, ys)
        corners = np.column_stack([gx.ravel(), gy.ravel()])
        estimate = self.index.estimate(corners, self.plan.extent)
        # moving a corner within one cell changes the fraction by at most cell/extent per axis
        slack = cell / min(self.plan.extent) * 2 + 0.1
        return corners[estimate >= self.min_tissue - slack]

    def sample(self, n: int, *, epoch: int = 0, rng: np.random.Generator | None = None) -> PatchSet:
        """``n`` random patches (fewer, with a note, if tissue is too scarce).

        Args:
            n: Number of patches.
            epoch: Seeds the draw with ``(seed, epoch)``: same epoch, same patches.
            rng: A generator to draw from instead (e.g. one per data-loader worker).
        """
        rng = rng or np.random.default_rng([self.seed, int(epoch)])
        found: list[np.ndarray] = []
        fractions: list[np.ndarray] = []
        total, tries = 0, 0
        while total < n and len(self._cells) and tries < 50:
            tries += 1
            batch = max(64, 2 * (n - total))
            picks = self._cells[rng.integers(0, len(self._cells), batch)]
            xy = picks + rng.uniform(0, self.index.cell, (batch, 2))
            xy = np.minimum(self._floor_snap(xy), self._floor_snap(self._limit[None, :]))
            keep, fraction = self.index.meets(xy, self.plan.extent, self.min_tissue, exact=True)
            found.append(xy[keep])
            fractions.append(fraction[keep])
            total += int(keep.sum())
        xy = np.concatenate(found)[:n] if found else np.zeros((0, 2), np.int64)
        frac = np.concatenate(fractions)[:n] if fractions else np.zeros(0)
        notes = () if len(xy) == n else (f"only {len(xy)} of {n} patches meet the tissue fraction",)
        labels, names = _labels(len(xy), self.label, self.label_names)
        return PatchSet(xy, labels, names, self.plan, self.slide_name, self.slide_path, frac, notes)

    def _floor_snap(self, xy: np.ndarray) -> np.ndarray:
        step = self.plan.alignment
        return (np.floor(np.asarray(xy, dtype=np.float64) / step) * step).astype(np.int64)


def random_patches(
    slide: Slide,
    plan: ReadPlan,
    n: int,
    *,
    seed: int = 0,
    epoch: int = 0,
    min_tissue: float = DEFAULT_MIN_TISSUE,
    tissue: BaseGeometry | None = None,
    qc: QCMask | None = None,
    label: str | None = None,
    label_names: Sequence[str] | None = None,
) -> PatchSet:
    """``n`` online random patches of ``slide`` for ``epoch`` (see :class:`RandomPatchSampler`)."""
    sampler = RandomPatchSampler(
        slide,
        plan,
        min_tissue=min_tissue,
        tissue=tissue,
        qc=qc,
        seed=seed,
        label=label,
        label_names=label_names,
    )
    return sampler.sample(n, epoch=epoch)
