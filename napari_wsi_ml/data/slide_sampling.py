"""Sample one slide with a set of options: what the extraction tasks and the napari preview share.

:class:`SamplingOptions` gathers the resolution, strategy, tissue and QC settings (an
extraction config provides them with
:meth:`~napari_wsi_ml.data.config.ExtractionConfig.sampling_options`); :func:`sample_slide_patches`
runs quality control when asked, then the strategy, and returns the patches with the QC mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from napari_wsi_ml.data.annotation_sampling import annotation_patches
from napari_wsi_ml.data.patchset import PatchSet
from napari_wsi_ml.data.qc import EXCLUDED_BY_DEFAULT, QCMask, quality_mask
from napari_wsi_ml.data.regions import DEFAULT_EXCLUDE
from napari_wsi_ml.data.resolution import ReadPlan, plan_patch_read
from napari_wsi_ml.data.sampling import RandomPatchSampler, grid_patches, tissue_index
from napari_wsi_ml.errors import ConfigError

if TYPE_CHECKING:
    from napari_wsi_ml.annotations import AnnotationSet
    from napari_wsi_ml.slide import Slide


@dataclass(frozen=True)
class SamplingOptions:
    """How to sample patches of one slide (see ``docs/patches.md`` for each option)."""

    strategy: str = "grid"
    patch_size: int = 256
    target_mpp: float | None = 0.5
    magnification: float | None = None
    mpp_override: float | None = None
    base_magnification: float | None = None
    allow_upsampling: bool = False
    stride: int | None = None
    min_tissue: float = 0.4
    label_rule: str = "centre"
    min_coverage: float = 0.5
    drop_mixed: bool = False
    background_label: str | None = None
    n_patches: int = 100
    label_map: Mapping[str, str] = field(default_factory=dict)
    exclude_groups: tuple[str, ...] = DEFAULT_EXCLUDE
    qc: bool = False
    qc_exclude: tuple[str, ...] = EXCLUDED_BY_DEFAULT
    qc_mpp: float = 8.0
    focus_mpp: float = 1.0
    blur_threshold: float = 4.0
    blur_relative: float = 0.0
    seed: int = 0


@dataclass(frozen=True)
class SlideSample:
    """The patches of one slide, and the QC mask they avoided (None when QC was off)."""

    patches: PatchSet
    qc: QCMask | None


def plan_for(slide: Slide, options: SamplingOptions) -> ReadPlan:
    """The patch read plan of ``slide`` under ``options``."""
    return plan_patch_read(
        slide,
        patch_size=options.patch_size,
        target_mpp=options.target_mpp,
        magnification=options.magnification,
        mpp_override=options.mpp_override,
        base_magnification=options.base_magnification,
        allow_upsampling=options.allow_upsampling,
    )


def sample_slide_patches(
    slide: Slide,
    options: SamplingOptions,
    *,
    annotations: AnnotationSet | None = None,
    label: str | None = None,
    label_names: tuple[str, ...] | None = None,
    index: int = 0,
) -> SlideSample:
    """Sample ``slide``: QC first (if ``options.qc``), then ``options.strategy``.

    Args:
        slide: The slide.
        options: The sampling options.
        annotations: The annotations labelling the patches (strategy ``annotations``).
        label: Label of every patch for the grid and random strategies (e.g. the slide's).
        label_names: Class order; default from the label map (or ``label``).
        index: The slide's position in its cohort; random patches are drawn from
            ``(seed, index)``.

    Raises:
        ConfigError: A resolution the slide cannot give, annotation classes missing from the
            label map, or the annotations strategy without annotations.
    """
    plan = plan_for(slide, options)
    qc = None
    if options.qc:
        qc = quality_mask(
            slide,
            qc_mpp=options.qc_mpp,
            focus_mpp=options.focus_mpp,
            blur_threshold=options.blur_threshold,
            blur_relative=options.blur_relative,
        )
    if options.strategy == "annotations":
        if annotations is None:
            raise ConfigError(
                f"Slide '{slide.path}': the annotations strategy needs annotations; choose an "
                "annotation layer or file, or the grid strategy."
            )
        patches = annotation_patches(
            slide,
            annotations,
            plan,
            label_map=options.label_map,
            rule=options.label_rule,
            min_coverage=options.min_coverage,
            exclude=options.exclude_groups,
            drop_mixed=options.drop_mixed,
            stride=options.stride,
            background_label=options.background_label,
            min_tissue=options.min_tissue,
            qc=qc,
            label_names=label_names,
        )
        return SlideSample(patches, qc)
    usable = tissue_index(slide, plan, qc=qc, exclude=options.qc_exclude)
    if options.strategy == "grid":
        patches = grid_patches(
            slide,
            plan,
            stride=options.stride,
            min_tissue=options.min_tissue,
            index=usable,
            label=label,
            label_names=label_names,
        )
        return SlideSample(patches, qc)
    if options.strategy != "random":
        raise ConfigError(f"Unknown strategy {options.strategy!r}: use grid, annotations, random.")
    sampler = RandomPatchSampler(
        slide,
        plan,
        min_tissue=options.min_tissue,
        index=usable,
        seed=options.seed,
        label=label,
        label_names=label_names,
    )
    rng = np.random.default_rng([options.seed, index])
    return SlideSample(sampler.sample(options.n_patches, rng=rng), qc)
