"""A synthetic cohort: several slides, patients and sites, with a manifest and raters' files.

Layout of the output folder (flat, so annotation files sit beside their slide)::

    manifest.csv                      one row per slide (see MANIFEST_COLUMNS)
    annotations.csv                   slide, rater, path: one row per annotation file
    slide_000.svs                     the slides
    slide_000.truth.xml               true lesions, ASAP XML
    slide_000.truth.geojson           tissue, lesions and artefacts, QuPath-style GeoJSON
    slide_000.rater1.xml …            simulated raters, ASAP XML
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_wsi_ml.annotations.atomic import atomic_write_text
from napari_wsi_ml.synthetic.slide import SyntheticSlide, generate_slide, write_annotations
from napari_wsi_ml.synthetic.tiff_writer import TILE, level_dimensions

MANIFEST_COLUMNS = (
    "slide",
    "path",
    "label",
    "patient",
    "site",
    "width",
    "height",
    "mpp",
    "tumour_fraction",
    "downsample",
    "level_count",
    "seed",
    "truth",
)
"""Columns of ``manifest.csv``; ``path`` and ``truth`` are relative to the manifest's folder."""


@dataclass(frozen=True)
class SlideSpec:
    """What one cohort slide will be, decided before anything is rendered."""

    name: str
    width: int
    height: int
    seed: int
    site: int
    patient: str
    tumour: str
    morphology: str
    pen: str | None
    downsample: int
    mpp: float
    multiclass: bool

    @property
    def tile_count(self) -> int:
        """Tiles over all pyramid levels (for progress bars)."""
        dims = level_dimensions(self.width, self.height, self.downsample)
        return sum(math.ceil(w / TILE) * math.ceil(h / TILE) for w, h in dims)


@dataclass(frozen=True)
class Cohort:
    """A generated cohort.

    Attributes:
        folder: Where everything was written.
        manifest: ``manifest.csv``.
        annotations: ``annotations.csv`` (slide, rater, path), for cohort agreement.
        slides: The slides, in manifest order.
    """

    folder: Path
    manifest: Path
    annotations: Path
    slides: list[SyntheticSlide]


def plan_cohort(
    n_slides: int = 8,
    *,
    seed: int = 0,
    size: int | tuple[int, int] = (4096, 10240),
    downsample: int = 2,
    n_sites: int = 3,
    multiclass: bool = False,
    mpp: float = 0.25,
) -> list[SlideSpec]:
    """Decide every slide of a cohort from ``seed``.

    Labels rotate through large tumour, normal and small tumour; some patients have two slides
    (always the first one; same site); sites go round-robin over patients; about a third of the
    slides carry a pen stroke.

    Args:
        n_slides: Number of slides.
        seed: Seed of the whole cohort.
        size: Longest level-0 side: a fixed value, or a ``(min, max)`` range to draw from.
        downsample: Pyramid factor, 2 or 4.
        n_sites: Number of sites (stain profiles).
        multiclass: Tumour slides are ``tumour_a`` / ``tumour_b`` (alternating).
        mpp: Micrometres per level-0 pixel.
    """
    rng = np.random.default_rng([seed, 0xC0407])
    lo, hi = (size, size) if isinstance(size, int) else size
    extents = ["large", "none", "small"]
    owners: list[tuple[str, int]] = []  # (patient, site) of each slide so far
    n_patients = n_tumour = 0
    specs = []
    for i in range(n_slides):
        repeat = i == 1 or rng.random() < 0.3
        if owners and repeat and (i < 2 or owners[-1] != owners[-2]):
            patient, site = owners[-1]  # a second slide of the previous patient
        else:
            patient, site = f"patient_{n_patients:03d}", n_patients % n_sites
            n_patients += 1
        owners.append((patient, site))
        longest = int(rng.integers(lo, hi + 1))
        shortest = int(longest / rng.uniform(1.2, 2.0))
        tumour = extents[i % 3]
        morphology = "ab"[n_tumour % 2] if multiclass else "ab"[int(rng.integers(0, 2))]
        n_tumour += tumour != "none"
        specs.append(
            SlideSpec(
                name=f"slide_{i:03d}",
                width=longest,
                height=shortest,
                seed=int(rng.integers(0, 2**31)),
                site=site,
                patient=patient,
                tumour=tumour,
                morphology=morphology,
                pen=("green", "blue", "black")[i % 3] if rng.random() < 0.33 else None,
                downsample=downsample,
                mpp=mpp,
                multiclass=multiclass,
            )
        )
    return specs


def generate_cohort(
    folder: str | os.PathLike,
    *,
    n_slides: int = 8,
    seed: int = 0,
    size: int | tuple[int, int] = (4096, 10240),
    downsample: int = 2,
    n_sites: int = 3,
    n_raters: int = 3,
    multiclass: bool = False,
    mpp: float = 0.25,
    workers: int | None = None,
    on_tile: Callable[[int], None] | None = None,
) -> Cohort:
    """Generate a cohort into ``folder`` (created if needed); see :func:`plan_cohort`.

    Args:
        folder: Output folder.
        n_slides: Number of slides.
        seed: Seed of the whole cohort: same seed, same files.
        size: Longest level-0 side, fixed or a ``(min, max)`` range.
        downsample: Pyramid factor, 2 or 4.
        n_sites: Number of sites.
        n_raters: Simulated raters per slide (at most 3 with the default profiles).
        multiclass: Two tumour morphologies as two classes.
        mpp: Micrometres per level-0 pixel.
        workers: Render threads per slide.
        on_tile: Called with the number of tiles rendered, for progress bars.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    specs = plan_cohort(
        n_slides,
        seed=seed,
        size=size,
        downsample=downsample,
        n_sites=n_sites,
        multiclass=multiclass,
        mpp=mpp,
    )
    slides = []
    for spec in specs:
        truth = generate_slide(
            folder / f"{spec.name}.svs",
            width=spec.width,
            height=spec.height,
            seed=spec.seed,
            mpp=spec.mpp,
            downsample=spec.downsample,
            site=spec.site,
            tumour=spec.tumour,
            morphology=spec.morphology,
            multiclass=spec.multiclass,
            pen=spec.pen,
            patient=spec.patient,
            workers=workers,
            on_tile=on_tile,
        )
        slides.append(write_annotations(truth, n_raters=n_raters, seed=seed))
    manifest = write_manifest(slides, folder / "manifest.csv")
    annotations = write_annotation_index(slides, folder / "annotations.csv")
    return Cohort(folder, manifest, annotations, slides)


def _csv_text(header: tuple[str, ...], rows: list[tuple]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def write_manifest(slides: list[SyntheticSlide], path: str | os.PathLike) -> Path:
    """Write ``manifest.csv`` (columns :data:`MANIFEST_COLUMNS`), paths relative to its folder."""
    path = Path(path)
    rows = []
    for slide in slides:
        t = slide.truth
        rows.append(
            (
                t.name,
                os.path.relpath(t.path, path.parent),
                t.label,
                t.patient,
                t.site,
                t.width,
                t.height,
                f"{t.mpp:g}",
                f"{t.tumour_fraction:.6f}",
                t.downsample,
                len(t.level_dimensions),
                t.seed,
                os.path.relpath(slide.truth_xml, path.parent),
            )
        )
    return atomic_write_text(path, [_csv_text(MANIFEST_COLUMNS, rows)])


def write_annotation_index(slides: list[SyntheticSlide], path: str | os.PathLike) -> Path:
    """Write ``annotations.csv``: slide, rater, path (relative) for every rater's file."""
    path = Path(path)
    rows = [
        (slide.truth.name, rater, os.path.relpath(xml, path.parent))
        for slide in slides
        for rater, xml in slide.rater_xml.items()
    ]
    return atomic_write_text(path, [_csv_text(("slide", "rater", "path"), rows)])
