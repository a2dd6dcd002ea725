"""Reading and probing the slides of a cohort CSV, collecting every problem on the way.

:func:`read_cohort_table` reads the CSV with :func:`~napari_wsi_ml.data.read_cohort` and turns
its error listing into problems; :func:`probe_slide` opens one slide and plans its patch reads,
finds its tissue and grid of tissue patches and measures its lesion fraction, or says why it
cannot. :func:`~napari_wsi_ml.training.slide_data.load_slide_cohort` reports all of it at once.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_wsi_ml.data import CohortSlide, CohortTable, grid_patches, plan_patch_read, read_cohort
from napari_wsi_ml.errors import ConfigError, SlideError, WsiMlError
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.training.slide_lesions import lesion_fraction

if TYPE_CHECKING:
    from napari_wsi_ml.training.slide_data import SlideDataOptions


def _allowed_raw_labels(options: SlideDataOptions) -> list[str] | None:
    if not options.classes:
        return None
    mapped = [raw for raw, name in options.label_map.items() if name in options.classes]
    return sorted({*options.classes, *mapped})


def _listed(error: ConfigError) -> list[str]:
    """The ``  - `` lines of a :func:`read_cohort` error (the problems it found)."""
    return [line[4:] for line in str(error).splitlines() if line.startswith("  - ")]


def read_cohort_table(options: SlideDataOptions) -> tuple[CohortTable | None, list[str]]:
    """The cohort table and the problems of the CSV itself (None when the table is unusable).

    A table with per-row problems (missing files, unknown labels) is read again without the
    file and label checks; one that still fails (e.g. a patient at two sites) gives None.
    """
    try:
        return read_cohort(options.cohort, labels=_allowed_raw_labels(options)), []
    except ConfigError as error:
        problems = _listed(error)
        if not problems:
            raise
    try:
        return read_cohort(options.cohort, check_files=False), problems
    except ConfigError:
        return None, problems


def lenient_rows(path: Path) -> list[CohortSlide]:
    """The slides of a CSV that :func:`read_cohort` refused, read only to probe their files."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            records = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    rows = []
    for record in records:
        cells = {(k or "").strip(): (v or "").strip() for k, v in record.items()}
        if not cells.get("path"):
            continue
        file = Path(os.path.expanduser(cells["path"]))
        file = file if file.is_absolute() else Path(path).parent / file
        slide = cells.get("slide") or file.stem
        rows.append(CohortSlide(slide, file, cells.get("label", ""), cells.get("patient", "")))
    return rows


@dataclass
class SlideProbe:
    """What opening one slide found (or the problems that prevented it)."""

    row: CohortSlide
    problems: list[str] = field(default_factory=list)
    item: dict[str, Any] | None = None


def probe_slide(row: CohortSlide, options: SlideDataOptions, seed: int, index: int) -> SlideProbe:
    """Open one slide: plan, tissue, grid patches, fingerprint, lesion fraction."""
    probe = SlideProbe(row)
    name = f"slide {row.slide!r} ('{row.path}')"
    if not row.path.is_file():
        return probe  # read_cohort reported it
    try:
        with open_slide(row.path) as slide:
            mpp = None if options.target_mpp is not None or slide.mpp else (1.0, 1.0)
            target = options.target_mpp or (slide.mpp[0] if slide.mpp else 1.0)
            plan = plan_patch_read(
                slide, patch_size=options.patch_size, target_mpp=target, mpp_override=mpp
            )
            tissue = slide.tissue_polygons()
            patches = None
            if not tissue.is_empty:
                patches = grid_patches(
                    slide, plan, stride=options.stride, min_tissue=options.min_tissue, tissue=tissue
                )
            fingerprint, size = slide.fingerprint, tuple(slide.level_dimensions[0])
    except SlideError as error:
        probe.problems.append(f"{name} cannot be read: {error}")
        return probe
    except WsiMlError as error:
        probe.problems.append(f"{name}: {error}")
        return probe
    if tissue.is_empty:
        probe.problems.append(f"{name} has no tissue (the tissue detector found none)")
        return probe
    if patches is None or not len(patches):
        probe.problems.append(
            f"{name} has no tissue patch with min_tissue {options.min_tissue:g} at "
            f"{options.patch_size} px; lower data.min_tissue or data.patch_size"
        )
        return probe
    total = len(patches)
    cap = options.max_patches_per_slide
    if cap is not None and total > cap:
        rng = np.random.default_rng([seed, index, 0x70C])
        patches = patches.subset(np.sort(rng.choice(total, cap, replace=False)))
    fraction, problem = lesion_fraction(row.extra, row.annotations, tissue, options.label_map)
    if problem:
        probe.problems.append(f"{name}: {problem}")
    probe.item = {
        "fingerprint": fingerprint,
        "size": size,
        "plan": plan,
        "tissue": tissue,
        "patches": patches,
        "grid_patches": total,
        "lesion_fraction": fraction,
    }
    return probe
