"""Leak-free splits: stratified by label, grouped by patient, optionally holding out sites.

Every slide of a patient lands in one split (scikit-learn's ``StratifiedGroupKFold``, with
shuffling seeded by ``seed``); held-out sites go to ``test`` whole, so a model is tested on
stains it never saw. A :class:`Split` is plain data, saved as JSON with a run.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

from napari_wsi_ml.annotations.atomic import atomic_write_text
from napari_wsi_ml.data.cohort import CohortTable
from napari_wsi_ml.errors import ConfigError

SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Which split every slide is in.

    Attributes:
        assignment: Slide id → ``"train"``, ``"val"`` or ``"test"``.
        patients: Slide id → patient id (kept to prove that no patient leaks).
        seed: Seed the split was drawn with.
        params: How it was drawn (fractions, held-out sites, method).
    """

    assignment: dict[str, str]
    patients: dict[str, str]
    seed: int
    params: dict = field(default_factory=dict)

    def slides(self, name: str) -> list[str]:
        """Slide ids in split ``name``, in input order."""
        return [s for s, part in self.assignment.items() if part == name]

    def counts(self) -> dict[str, int]:
        """Number of slides per split."""
        return {name: len(self.slides(name)) for name in SPLIT_NAMES}

    def validate(self) -> None:
        """Raise ConfigError when a patient is in two splits (or a split name is unknown)."""
        where: dict[str, set[str]] = {}
        for slide, part in self.assignment.items():
            if part not in SPLIT_NAMES:
                raise ConfigError(f"slide {slide!r} is in unknown split {part!r}")
            where.setdefault(self.patients[slide], set()).add(part)
        if leaks := {p: sorted(s) for p, s in where.items() if len(s) > 1}:
            listing = "; ".join(f"{p}: {', '.join(s)}" for p, s in leaks.items())
            raise ConfigError(f"patients are in several splits (data leak): {listing}")

    def to_json(self) -> str:
        """The split as JSON text."""
        document = {
            "assignment": self.assignment,
            "patients": self.patients,
            "seed": self.seed,
            "params": self.params,
        }
        return json.dumps(document, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Split:
        """Parse :meth:`to_json`'s output (and validate it)."""
        try:
            doc = json.loads(text)
            split = cls(
                dict(doc["assignment"]), dict(doc["patients"]), int(doc["seed"]), doc["params"]
            )
        except (ValueError, KeyError, TypeError) as error:
            raise ConfigError(f"not a split JSON document: {error}") from error
        split.validate()
        return split

    def save(self, path: str | os.PathLike) -> Path:
        """Write the JSON atomically."""
        return atomic_write_text(path, [self.to_json()])

    @classmethod
    def load(cls, path: str | os.PathLike) -> Split:
        """Read a split saved by :meth:`save`."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            raise ConfigError(f"Cannot read the split file '{path}': {error}") from error
        return cls.from_json(text)


def _pick(
    labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int, stratify: bool
) -> np.ndarray:
    """Boolean mask of about ``fraction`` of the rows, whole groups, stratified if asked."""
    n_groups = len(set(groups.tolist()))
    if fraction <= 0 or n_groups < 2:
        return np.zeros(len(labels), dtype=bool)
    chosen = np.zeros(len(labels), dtype=bool)
    if stratify:
        n_splits = int(min(max(2, round(1 / fraction)), n_groups))
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        _, held = next(folds.split(np.zeros(len(labels)), labels, groups))
    else:
        shuffle = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        _, held = next(shuffle.split(np.zeros(len(labels)), labels, groups))
    chosen[held] = True
    return chosen


def split_slides(
    slides: Sequence[str],
    labels: Sequence[str],
    patients: Sequence[str],
    *,
    sites: Sequence[str] | None = None,
    val: float = 0.15,
    test: float = 0.15,
    holdout_sites: Sequence[str] = (),
    seed: int = 0,
    stratify: bool = True,
) -> Split:
    """Split slides into train / val / test, grouped by patient and stratified by label.

    Args:
        slides: Slide ids (unique).
        labels: Label of each slide (stratification).
        patients: Patient of each slide (grouping).
        sites: Site of each slide (needed with ``holdout_sites``).
        val: Fraction of slides (of patients, roughly) for validation.
        test: Fraction for test; ignored when ``holdout_sites`` are given (they are the test).
        holdout_sites: Sites whose slides all go to test.
        seed: Seed; the same inputs and seed give the same split.
        stratify: Balance labels across splits (else plain grouped shuffling).
    """
    slides, labels, patients = list(slides), np.asarray(labels), np.asarray(patients)
    if not (len(slides) == len(labels) == len(patients)):
        raise ConfigError("slides, labels and patients must have the same length")
    if len(set(slides)) != len(slides):
        raise ConfigError("slide ids must be unique")
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ConfigError(f"val ({val}) and test ({test}) must be fractions summing under 1")
    part = np.array(["train"] * len(slides), dtype=object)
    if holdout_sites:
        if sites is None:
            raise ConfigError("holdout_sites needs the site of every slide")
        site_array = np.asarray(sites)
        if unknown := sorted(set(holdout_sites) - set(site_array.tolist())):
            raise ConfigError(f"held-out sites {unknown} are not in the cohort")
        part[np.isin(site_array, list(holdout_sites))] = "test"
    elif test > 0:
        part[_pick(labels, patients, test, seed, stratify)] = "test"
    rest = np.flatnonzero(part == "train")
    if val > 0 and len(rest):
        share = val / (1 - (0 if holdout_sites else test))
        held = _pick(labels[rest], patients[rest], share, seed + 1, stratify)
        part[rest[held]] = "val"
    params = {
        "val": val,
        "test": test,
        "holdout_sites": list(holdout_sites),
        "stratify": stratify,
        "method": "StratifiedGroupKFold" if stratify else "GroupShuffleSplit",
    }
    split = Split(
        dict(zip(slides, part.tolist(), strict=True)),
        dict(zip(slides, patients.tolist(), strict=True)),
        int(seed),
        params,
    )
    split.validate()
    return split


def split_cohort(cohort: CohortTable, **options: object) -> Split:
    """:func:`split_slides` on a cohort table (keyword options as there)."""
    return split_slides(
        [s.slide for s in cohort],
        [s.label for s in cohort],
        cohort.patients,
        sites=cohort.sites,
        **options,  # type: ignore[arg-type]
    )
