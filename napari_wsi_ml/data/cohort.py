"""Cohort tables: one row per slide with its label, patient, site and annotation files.

A cohort CSV (``napari_wsi_ml.synthetic``'s ``manifest.csv`` is one) has the columns ``path``,
``label`` and ``patient``, and optionally ``slide`` (default: the file stem), ``site``
(default ``""``, unknown) and ``annotations`` (annotation files separated by ``;``; a
``truth`` column is read the same way). Relative paths are resolved against the CSV's folder;
other columns are kept in :attr:`CohortSlide.extra`. :func:`read_cohort` checks everything and
reports every problem at once.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from napari_wsi_ml.errors import ConfigError

REQUIRED_COLUMNS = ("path", "label", "patient")
ANNOTATION_COLUMNS = ("annotations", "truth")


@dataclass(frozen=True)
class CohortSlide:
    """One slide of a cohort.

    Attributes:
        slide: Unique slide id (the ``slide`` column, or the file stem).
        path: The slide file (absolute).
        label: Slide-level label.
        patient: Patient id (splits keep a patient's slides together).
        site: Site id, ``""`` when unknown.
        annotations: Annotation files (absolute).
        extra: Other columns, as text.
    """

    slide: str
    path: Path
    label: str
    patient: str
    site: str = ""
    annotations: tuple[Path, ...] = ()
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CohortTable:
    """The slides of a cohort, in file order."""

    source: Path | None
    slides: tuple[CohortSlide, ...]

    def __len__(self) -> int:
        return len(self.slides)

    def __iter__(self) -> Iterator[CohortSlide]:
        return iter(self.slides)

    def __getitem__(self, slide: str) -> CohortSlide:
        for row in self.slides:
            if row.slide == slide:
                return row
        raise KeyError(slide)

    @property
    def labels(self) -> list[str]:
        """Distinct labels, sorted."""
        return sorted({s.label for s in self.slides})

    @property
    def patients(self) -> list[str]:
        """Patient of every slide, in order."""
        return [s.patient for s in self.slides]

    @property
    def sites(self) -> list[str]:
        """Site of every slide, in order."""
        return [s.site for s in self.slides]


def _resolve(folder: Path, text: str) -> Path:
    path = Path(os.path.expanduser(text.strip()))
    return path if path.is_absolute() else folder / path


def read_cohort(
    path: str | os.PathLike,
    *,
    labels: Sequence[str] | None = None,
    check_files: bool = True,
) -> CohortTable:
    """Read and check a cohort CSV.

    Args:
        path: The CSV file.
        labels: Allowed labels; None allows any.
        check_files: Check that every slide and annotation file exists.

    Raises:
        ConfigError: Listing every problem: missing columns, empty cells, missing files,
            unknown labels, duplicate slide ids, patients found at two sites.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in reader.fieldnames or []]
            records = [{(k or "").strip(): (v or "") for k, v in r.items()} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise ConfigError(f"Cannot read the cohort CSV '{path}': {error}.") from error
    if missing := [c for c in REQUIRED_COLUMNS if c not in columns]:
        raise ConfigError(
            f"Cohort CSV '{path}' lacks the columns {', '.join(missing)} (it has: "
            f"{', '.join(columns) or 'none'}). Required: {', '.join(REQUIRED_COLUMNS)}."
        )
    problems: list[str] = []
    slides: list[CohortSlide] = []
    known = {c for c in (*REQUIRED_COLUMNS, "slide", "site", *ANNOTATION_COLUMNS)}
    for line, record in enumerate(records, start=2):
        empty = [c for c in REQUIRED_COLUMNS if not record.get(c, "").strip()]
        if empty:
            problems.append(f"line {line}: empty {', '.join(empty)}")
            continue
        file = _resolve(path.parent, record["path"])
        notes = [a for c in ANNOTATION_COLUMNS for a in record.get(c, "").split(";") if a.strip()]
        row = CohortSlide(
            slide=record.get("slide", "").strip() or file.stem,
            path=file,
            label=record["label"].strip(),
            patient=record["patient"].strip(),
            site=record.get("site", "").strip(),
            annotations=tuple(_resolve(path.parent, a) for a in notes),
            extra={k: v for k, v in record.items() if k not in known},
        )
        problems.extend(_row_problems(row, line, labels, check_files))
        slides.append(row)
    if not records:
        problems.append("no slide rows")
    problems.extend(_table_problems(slides))
    if problems:
        listing = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(
            f"Cohort CSV '{path}' has {len(problems)} problem(s); fix them all and retry:\n"
            f"{listing}"
        )
    return CohortTable(path, tuple(slides))


def _row_problems(
    row: CohortSlide, line: int, labels: Sequence[str] | None, check_files: bool
) -> list[str]:
    problems = []
    if check_files and not row.path.is_file():
        problems.append(f"line {line}: slide file '{row.path}' does not exist")
    if check_files:
        problems.extend(
            f"line {line}: annotation file '{a}' does not exist"
            for a in row.annotations
            if not a.is_file()
        )
    if labels is not None and row.label not in labels:
        problems.append(
            f"line {line}: unknown label {row.label!r} (allowed: {', '.join(map(repr, labels))})"
        )
    return problems


def _table_problems(slides: list[CohortSlide]) -> list[str]:
    problems = []
    seen: dict[str, int] = {}
    for row in slides:
        seen[row.slide] = seen.get(row.slide, 0) + 1
    problems.extend(f"slide id {s!r} appears {n} times" for s, n in seen.items() if n > 1)
    sites: dict[str, set[str]] = {}
    for row in slides:
        if row.site:
            sites.setdefault(row.patient, set()).add(row.site)
    problems.extend(
        f"patient {p!r} is at several sites ({', '.join(sorted(s))}); a patient belongs to one"
        for p, s in sites.items()
        if len(s) > 1
    )
    return problems
