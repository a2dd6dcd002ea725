"""The slide cohort of the weakly supervised (slide-label) tasks: the ``data:`` section.

:func:`load_slide_cohort` reads a cohort CSV (:func:`~napari_wsi_ml.data.read_cohort`; the
``label`` column is the slide label), opens every slide once, plans its patch reads at
``target_mpp`` (:class:`~napari_wsi_ml.data.ReadPlan`), finds its tissue and the grid of tissue
patches (:func:`~napari_wsi_ml.data.grid_patches`), measures its lesion fraction
(:mod:`.slide_lesions`) and splits the slides into train / val / test by patient (stratified by
label, optionally holding out whole sites). Every problem is found before training starts and
reported at once in one :class:`~napari_wsi_ml.errors.ConfigError`: missing files, unknown
labels, a patient at two sites, duplicate slide ids, unreadable slides, slides without tissue
(or without a tissue patch), classes without slides, too few slides to split.

Coordinates are level-0 pixels ``(x, y)``, sizes ``(width, height)``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.config_schema import spec
from napari_wsi_ml.data import CohortSlide, PatchSet, ReadPlan, Split, split_slides
from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.jobs.manifest import sha256_json
from napari_wsi_ml.training.slide_probe import (
    SlideProbe,
    lenient_rows,
    probe_slide,
    read_cohort_table,
)

NORMAL = "normal"
"""The class put first when classes are taken from the cohort (the negative class)."""

PARTS = ("train", "val", "test")
MIN_SLIDES = 3

Progress = Callable[[int, int], Any]
"""``progress(done, total)`` after each slide is opened."""


@dataclass(frozen=True)
class SlideDataOptions:
    """The ``data:`` section of every slide-level task (sizes in output pixels at target_mpp)."""

    cohort: Path = field(metadata=spec(hint="a cohort CSV with path, label, patient columns"))
    classes: tuple[str, ...] = field(
        default=(), metadata=spec(hint="class order, e.g. [normal, tumour]; [] = labels found")
    )
    label_map: dict[str, str] = field(default_factory=dict)
    target_mpp: float | None = field(
        default=1.0, metadata=spec(gt=0, hint="µm/px, e.g. 1.0; null = level-0 pixels")
    )
    patch_size: int = field(default=64, metadata=spec(ge=8, le=2048, hint="e.g. 64"))
    stride: int | None = field(default=None, metadata=spec(ge=1, hint="e.g. 64; null = size"))
    min_tissue: float = field(default=0.4, metadata=spec(ge=0, le=1))
    max_patches_per_slide: int | None = field(default=None, metadata=spec(ge=1, hint="e.g. 500"))
    val_fraction: float = field(default=0.25, metadata=spec(ge=0, le=0.9))
    test_fraction: float = field(default=0.25, metadata=spec(ge=0, le=0.9))
    holdout_sites: tuple[str, ...] = ()
    num_workers: int = field(default=0, metadata=spec(ge=0, le=64))


def check_slide_data(options: SlideDataOptions) -> list[str]:
    """Cross-field problems of the ``data:`` section, each ``key: what is wrong; fix``."""
    problems = []
    if not options.holdout_sites and options.val_fraction + options.test_fraction >= 1:
        problems.append("data.val_fraction: val_fraction + test_fraction must be under 1")
    if len(set(options.classes)) != len(options.classes):
        problems.append(f"data.classes: {list(options.classes)} names a class twice")
    if options.classes and len(options.classes) < 2:
        problems.append("data.classes: give at least two classes, or [] to use the labels found")
    if options.classes:
        unknown = sorted({v for v in options.label_map.values()} - set(options.classes))
        if unknown:
            problems.append(
                f"data.label_map: maps to {unknown}, which are not in data.classes "
                f"({', '.join(options.classes)}); add them to classes or fix the map"
            )
    if len(set(options.holdout_sites)) != len(options.holdout_sites):
        problems.append("data.holdout_sites: a site is named twice")
    return problems


@dataclass
class CohortItem:
    """One slide of a slide-level cohort, opened and planned once.

    Attributes:
        slide: Slide id. path: The slide file. label: Class name (after ``label_map``).
        label_index: Index of ``label`` in the cohort's classes. patient, site: From the CSV.
        part: ``"train"``, ``"val"`` or ``"test"``.
        fingerprint: The slide's fingerprint. size: Level-0 ``(width, height)``.
        plan: How patches are read at ``target_mpp``. tissue: Level-0 tissue geometry.
        patches: Grid of tissue patches (level-0 corners), capped at ``max_patches_per_slide``;
            each labelled with the slide's class (``label_names`` = the cohort's classes).
        lesion_fraction: Lesion area / tissue area, or None when unknown.
        level0_patch, level0_stride: Patch size and grid step in level-0 pixels.
        annotations: The slide's annotation / truth files. raw_label: The CSV label.
        grid_patches: Number of tissue grid patches before the cap.
        patches_stride: The grid stride in output pixels (None: the patch size).
    """

    slide: str
    path: Path
    label: str
    label_index: int
    patient: str
    site: str
    part: str
    fingerprint: str
    size: tuple[int, int]
    plan: ReadPlan
    tissue: BaseGeometry
    patches: PatchSet
    lesion_fraction: float | None
    level0_patch: float
    level0_stride: float
    annotations: tuple[Path, ...] = ()
    raw_label: str = ""
    grid_patches: int = 0
    patches_stride: int | None = None

    @property
    def level0_stride_xy(self) -> tuple[int, int]:
        """The grid step ``(x, y)`` in level-0 pixels (what heatmaps use as their stride)."""
        return self.plan.level0_stride(self.patches_stride)


@dataclass
class SlideCohort:
    """The slides of a cohort with their split; ``classes`` is the label order."""

    items: list[CohortItem]
    classes: tuple[str, ...]
    split: Split | None = None
    source: Path | None = None
    options: SlideDataOptions | None = None

    def part(self, name: str) -> list[CohortItem]:
        """The slides of split ``name`` (``"train"``, ``"val"``, ``"test"``), in CSV order."""
        if name not in PARTS:
            raise ValueError(f"unknown split {name!r}; one of {', '.join(PARTS)}")
        return [item for item in self.items if item.part == name]

    def labels(self, items: list[CohortItem] | None = None) -> np.ndarray:
        """Label indices ``(N,)`` of ``items`` (default: every slide)."""
        chosen = self.items if items is None else items
        return np.array([item.label_index for item in chosen], dtype=np.int64)

    def manifest(self) -> dict[str, Any]:
        """The content of ``data.json``: slides, fingerprints, labels, split, patch counts."""
        options = self.options
        slides = [
            {
                "slide": item.slide,
                "path": str(item.path),
                "fingerprint": item.fingerprint,
                "label": item.label,
                "raw_label": item.raw_label,
                "patient": item.patient,
                "site": item.site,
                "part": item.part,
                "size": list(item.size),
                "read_plan": item.plan.to_dict(),
                "patches": len(item.patches),
                "grid_patches": item.grid_patches,
                "lesion_fraction": item.lesion_fraction,
                "annotations": [str(a) for a in item.annotations],
            }
            for item in self.items
        ]
        snapshot = [(s["slide"], s["annotations"]) for s in slides]
        return {
            "source": str(self.source) if self.source else None,
            "class_names": list(self.classes),
            "label_map": dict(options.label_map) if options else {},
            "split_by": "patient",
            "split": None
            if self.split is None
            else {
                "assignment": self.split.assignment,
                "seed": self.split.seed,
                "params": self.split.params,
            },
            "counts": {p: len(self.part(p)) for p in PARTS},
            "annotation_hash": sha256_json(snapshot),
            "slides": slides,
        }


def cohort_classes(options: SlideDataOptions, raw_labels: list[str]) -> tuple[str, ...]:
    """The class order: ``options.classes``, or the mapped labels found, sorted, normal first."""
    if options.classes:
        return tuple(options.classes)
    found = sorted({options.label_map.get(label, label) for label in raw_labels})
    return tuple(sorted(found, key=lambda name: (name != NORMAL, name)))


def split_cohort_slides(
    rows: list[CohortSlide], labels: list[str], options: SlideDataOptions, seed: int
) -> Split:
    """Patient-grouped split, stratified by class where the cohort allows it."""
    kwargs: dict[str, Any] = {
        "sites": [r.site for r in rows],
        "val": options.val_fraction,
        "test": 0.0 if options.holdout_sites else options.test_fraction,
        "holdout_sites": options.holdout_sites,
        "seed": seed,
    }
    columns = ([r.slide for r in rows], labels, [r.patient for r in rows])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" on small cohorts
        try:
            return split_slides(*columns, **kwargs)
        except ValueError:  # fewer slides of a class than stratified folds
            return split_slides(*columns, stratify=False, **kwargs)


def _split_problems(split: Split, labels: list[str], options: SlideDataOptions) -> list[str]:
    parts = [split.assignment[s] for s in split.assignment]
    problems = []
    train_classes = {label for label, part in zip(labels, parts, strict=True) if part == "train"}
    if missing := sorted(set(labels) - train_classes):
        problems.append(
            f"too few slides to split: no training slide of class(es) {', '.join(missing)}; "
            "add slides or lower data.val_fraction / data.test_fraction"
        )
    if options.val_fraction > 0 and "val" not in parts:
        problems.append("too few patients to split: the validation split is empty")
    wants_test = options.holdout_sites or options.test_fraction > 0
    if wants_test and "test" not in parts:
        problems.append("too few patients to split: the test split is empty")
    return problems


def load_slide_cohort(
    options: SlideDataOptions, seed: int, *, progress: Progress | None = None
) -> SlideCohort:
    """Read, check, open and split the cohort of ``options`` (see the module docstring).

    Raises:
        ConfigError: Listing every problem found, before any training.
    """
    problems = check_slide_data(options)
    table, found = read_cohort_table(options)
    problems.extend(found)
    rows = list(table) if table is not None else lenient_rows(options.cohort)
    probes = []
    for index, row in enumerate(rows):
        probes.append(probe_slide(row, options, seed, index))
        problems.extend(probes[-1].problems)
        if progress is not None:
            progress(index + 1, len(rows))
    if table is None:
        _raise(options, problems)
    classes = cohort_classes(options, [r.label for r in rows])
    names = [options.label_map.get(r.label, r.label) for r in rows]
    present = set(names)
    if empty := [c for c in classes if c not in present]:
        problems.append(f"class(es) {', '.join(empty)} have no slide in the cohort")
    if len(present) < 2 and rows:
        problems.append(f"only one class ({', '.join(present)}): a slide model needs two or more")
    split = None
    if len(rows) < MIN_SLIDES:
        problems.append(f"too few slides to split: {len(rows)} (need at least {MIN_SLIDES})")
    elif not problems:
        split = split_cohort_slides(rows, names, options, seed)
        problems.extend(_split_problems(split, names, options))
    if problems or split is None:
        _raise(options, problems)
    assert split is not None
    items = [
        _item(probe, name, classes, split.assignment[probe.row.slide], options)
        for probe, name in zip(probes, names, strict=True)
    ]
    return SlideCohort(items, classes, split, options.cohort, options)


def _raise(options: SlideDataOptions, problems: list[str]) -> None:
    listing = "\n".join(f"  - {p}" for p in problems)
    raise ConfigError(
        f"Slide cohort '{options.cohort}' has {len(problems)} problem(s); fix them all and "
        f"retry:\n{listing}"
    )


def _item(
    probe: SlideProbe, label: str, classes: tuple[str, ...], part: str, options: SlideDataOptions
) -> CohortItem:
    row, found = probe.row, dict(probe.item or {})
    plan: ReadPlan = found["plan"]
    patches: PatchSet = found.pop("patches")
    index = classes.index(label)
    return CohortItem(
        slide=row.slide,
        path=row.path,
        label=label,
        label_index=index,
        patient=row.patient,
        site=row.site,
        part=part,
        level0_patch=float(plan.extent[0]),
        level0_stride=float(plan.level0_stride(options.stride)[0]),
        annotations=row.annotations,
        raw_label=row.label,
        patches_stride=options.stride,
        patches=replace(  # every patch carries its slide's label (weak label)
            patches, labels=np.full(len(patches), index), label_names=classes, slide_name=row.slide
        ),
        **found,
    )
