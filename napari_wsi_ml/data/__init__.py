"""The patch data pipeline (pure core: no Qt, and no torch in the modules imported here).

Coordinates are level-0 ``(x, y)`` pixels (a patch by its top-left corner), sizes
``(width, height)``.

- Resolution and reading: :func:`plan_patch_read` → :class:`ReadPlan`; :func:`read_patch`,
  :func:`read_patches` (damaged tiles skipped and counted in a :class:`PatchBatch`),
  :func:`resize_patch`.
- Sampling, each returning a :class:`PatchSet`: :func:`grid_patches`,
  :func:`annotation_patches`, :func:`random_patches` / :class:`RandomPatchSampler` (online,
  a fresh set per epoch); tissue fractions via :class:`TissueIndex`.
- Quality control: :func:`quality_mask` → :class:`QCMask`.
- Cohorts and splits: :func:`read_cohort` → :class:`CohortTable`; :func:`split_slides`,
  :func:`split_cohort` → :class:`Split`.

The torch datasets, augmentation and stain normalisation live in :mod:`.dataset`,
:mod:`.augment` and :mod:`.stain` (imported explicitly; they need torch).
"""

from __future__ import annotations

from napari_wsi_ml.data.annotation_sampling import annotation_patches, label_names_for
from napari_wsi_ml.data.cohort import CohortSlide, CohortTable, read_cohort
from napari_wsi_ml.data.patchset import UNLABELLED, PatchSet
from napari_wsi_ml.data.qc import QC_FLAGS, QCMask, quality_mask
from napari_wsi_ml.data.reading import PatchBatch, read_patch, read_patches
from napari_wsi_ml.data.regions import DEFAULT_EXCLUDE, ClassRegions, class_regions
from napari_wsi_ml.data.resolution import ReadPlan, plan_patch_read, resize_patch
from napari_wsi_ml.data.sampling import (
    RandomPatchSampler,
    grid_corners,
    grid_patches,
    random_patches,
    tissue_index,
    usable_area,
)
from napari_wsi_ml.data.splits import SPLIT_NAMES, Split, split_cohort, split_slides
from napari_wsi_ml.data.tissue_index import TissueIndex

__all__ = [
    "DEFAULT_EXCLUDE",
    "QC_FLAGS",
    "SPLIT_NAMES",
    "UNLABELLED",
    "ClassRegions",
    "CohortSlide",
    "CohortTable",
    "PatchBatch",
    "PatchSet",
    "QCMask",
    "RandomPatchSampler",
    "ReadPlan",
    "Split",
    "TissueIndex",
    "annotation_patches",
    "class_regions",
    "grid_corners",
    "grid_patches",
    "label_names_for",
    "plan_patch_read",
    "quality_mask",
    "random_patches",
    "read_cohort",
    "read_patch",
    "read_patches",
    "resize_patch",
    "split_cohort",
    "split_slides",
    "tissue_index",
    "usable_area",
]
