"""From the ``data:`` section to labelled patch sets per split, and the run's ``data.json``.

Slides come from a cohort CSV (patients and sites from its columns) or from explicit lists
(each slide its own patient). With at least three slides, whole patients go to train / val /
test (:func:`~napari_wsi_ml.data.split_slides`); with fewer, the patches are split by square
blocks of the slide (4 patches a side), so neighbouring patches never straddle
two splits.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.annotations import AnnotationSet
from napari_wsi_ml.annotations.registry import read_annotations
from napari_wsi_ml.data import (
    PatchSet,
    ReadPlan,
    Split,
    annotation_patches,
    plan_patch_read,
    read_cohort,
    split_slides,
)
from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.training.options import PatchDataOptions, class_names

SPLITS = ("train", "val", "test")
BLOCK_PATCHES = 4
MIN_SLIDES_FOR_SLIDE_SPLIT = 3


@dataclass(frozen=True)
class SlideRecord:
    """One slide of the training data."""

    slide: str
    path: Path
    label: str
    patient: str
    site: str = ""
    annotations: tuple[Path, ...] = ()


@dataclass
class PreparedSlide:
    """A slide opened once: how to read it, its tissue, fingerprint and patches per split."""

    record: SlideRecord
    plan: ReadPlan
    tissue: BaseGeometry
    fingerprint: str
    size: tuple[int, int]
    patches: dict[str, PatchSet] = field(default_factory=dict)


def slide_records(data: PatchDataOptions) -> list[SlideRecord]:
    """The slides of the ``data:`` section (cohort CSV or explicit lists)."""
    if data.cohort is not None:
        cohort = read_cohort(data.cohort)
        return [
            SlideRecord(s.slide, s.path, s.label, s.patient, s.site, s.annotations) for s in cohort
        ]
    missing = [str(p) for p in (*data.slides, *data.annotations) if not Path(p).is_file()]
    if missing:
        raise ConfigError(f"data: these files do not exist: {', '.join(missing)}.")
    labels = data.slide_labels or ("",) * len(data.slides)
    return [
        SlideRecord(Path(p).stem, Path(p), label, Path(p).stem, "", (Path(a),))
        for p, a, label in zip(data.slides, data.annotations, labels, strict=True)
    ]


def load_annotations(paths: tuple[Path, ...]) -> AnnotationSet:
    """All annotations of ``paths`` in one set (the groups of the first file win)."""
    merged = AnnotationSet()
    for path in paths:
        part = read_annotations(path)
        for name, group in part.groups.items():
            merged.groups.setdefault(name, group)
        merged.add(part.annotations)
    return merged


def annotation_hash(records: list[SlideRecord]) -> str:
    """SHA-256 of every annotation file's bytes, in slide order (the annotation snapshot)."""
    digest = hashlib.sha256()
    for record in records:
        for path in record.annotations:
            digest.update(f"{record.slide}\0{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def split_records(records: list[SlideRecord], data: PatchDataOptions, seed: int) -> Split | None:
    """Patient-grouped split of the slides, or None when there are too few to split by slide.

    Stratified by slide label where the cohort allows it; a cohort too small for stratified
    folds is split by patient without stratification.
    """
    if len(records) < MIN_SLIDES_FOR_SLIDE_SPLIT:
        return None
    options: dict[str, Any] = {
        "sites": [r.site for r in records],
        "val": data.val_fraction,
        "test": 0.0 if data.holdout_sites else data.test_fraction,
        "holdout_sites": data.holdout_sites,
        "seed": seed,
    }
    columns = (
        [r.slide for r in records],
        [r.label or "unlabelled" for r in records],
        [r.patient for r in records],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class" on small cohorts
        try:
            return split_slides(*columns, **options)
        except ValueError:  # fewer slides of a label than stratified folds
            return split_slides(*columns, stratify=False, **options)


def _limit(patches: PatchSet, most: int | None, seed: int) -> PatchSet:
    """At most ``most`` patches of each class (a seeded random subset)."""
    if most is None:
        return patches
    rng = np.random.default_rng([seed, len(patches)])
    keep = np.zeros(len(patches), dtype=bool)
    for label in np.unique(patches.labels):
        where = np.flatnonzero(patches.labels == label)
        keep[rng.permutation(where)[:most]] = True
    return patches.subset(keep)


def _block_parts(patches: PatchSet, data: PatchDataOptions, seed: int) -> np.ndarray:
    """Split name of each patch, dealt per block of ``BLOCK_PATCHES`` patches a side.

    Blocks are shuffled (seeded); the first ``ceil(test_fraction · n)`` go to test, the next
    ``ceil(val_fraction · n)`` to val, the rest to train.
    """
    block = np.asarray(patches.plan.extent) * BLOCK_PATCHES
    blocks, inverse = np.unique(patches.xy // block, axis=0, return_inverse=True)
    n = len(blocks)
    n_test = math.ceil(data.test_fraction * n) if n > 2 else 0
    n_val = math.ceil(data.val_fraction * n) if n > 1 else 0
    part = np.full(n, "train", dtype=object)
    order = np.random.default_rng([seed, 0xB10C]).permutation(n)
    part[order[:n_test]] = "test"
    part[order[n_test : n_test + n_val]] = "val"
    return part[inverse.reshape(-1)]


def prepare_slides(
    records: list[SlideRecord], data: PatchDataOptions, split: Split | None, seed: int
) -> list[PreparedSlide]:
    """Open every slide, plan its reads and cut its annotation patches into the splits."""
    names = class_names(data)
    prepared = []
    for record in records:
        with open_slide(record.path) as slide:
            plan = plan_patch_read(slide, patch_size=data.patch_size, target_mpp=data.target_mpp)
            tissue = slide.tissue_polygons()
            annotation_set = load_annotations(record.annotations)

            def patches_at(stride: int | None, slide=slide, plan=plan, tissue=tissue) -> PatchSet:
                return annotation_patches(
                    slide,
                    annotation_set,  # noqa: B023 - used at once, inside this iteration
                    plan,
                    label_map=data.label_map,
                    rule=data.label_rule,
                    min_coverage=data.min_coverage,
                    stride=stride,
                    background_label=data.background_label,
                    min_tissue=data.min_tissue,
                    tissue=tissue,
                    label_names=names,
                    on_unknown="ignore",
                )

            item = PreparedSlide(
                record, plan, tissue, slide.fingerprint, tuple(slide.level_dimensions[0])
            )
            train = _limit(patches_at(data.stride), data.max_patches_per_class, seed)
            held = patches_at(data.eval_stride)
            if split is not None:
                part = split.assignment[record.slide]
                item.patches[part] = train if part == "train" else held
            else:
                item.patches["train"] = train.subset(_block_parts(train, data, seed) == "train")
                parts = _block_parts(held, data, seed)
                for name in ("val", "test"):
                    item.patches[name] = held.subset(parts == name)
        prepared.append(item)
    return prepared


def patch_sets(prepared: list[PreparedSlide], part: str) -> list[PatchSet]:
    """The non-empty patch sets of split ``part``."""
    return [p.patches[part] for p in prepared if part in p.patches and len(p.patches[part])]


def data_manifest(
    prepared: list[PreparedSlide],
    split: Split | None,
    data: PatchDataOptions,
    records: list[SlideRecord],
) -> dict[str, Any]:
    """The content of ``data.json``: slides, fingerprints, labels, splits, patch counts."""
    slides = []
    for item in prepared:
        rec = item.record
        slides.append(
            {
                "slide": rec.slide,
                "path": str(rec.path),
                "fingerprint": item.fingerprint,
                "label": rec.label,
                "patient": rec.patient,
                "site": rec.site,
                "annotations": [str(a) for a in rec.annotations],
                "size": list(item.size),
                "read_plan": item.plan.to_dict(),
                "patches": {part: p.counts() for part, p in item.patches.items()},
            }
        )
    return {
        "source": str(data.cohort) if data.cohort else "slides",
        "class_names": list(class_names(data)),
        "label_map": dict(data.label_map),
        "split_by": "patient" if split is not None else "block",
        "split": None
        if split is None
        else {
            "assignment": split.assignment,
            "seed": split.seed,
            "params": split.params,
        },
        "annotation_hash": annotation_hash(records),
        "slides": slides,
    }
