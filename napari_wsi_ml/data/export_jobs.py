"""The slides an extraction config names, and the checks run on them before any work starts.

:func:`slide_jobs` turns the config's cohort CSV (or its list of slides and annotation files)
into :class:`SlideJob` rows; :func:`preflight` opens every slide once, plans its patch reads
and reads its annotation files, and reports every problem at once (a slide that cannot be
opened, a target resolution it cannot give, annotation classes missing from the label map).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from napari_wsi_ml.annotations import AnnotationSet, read_annotations
from napari_wsi_ml.data.annotation_sampling import label_names_for
from napari_wsi_ml.data.cohort import read_cohort
from napari_wsi_ml.data.config import ExtractionConfig
from napari_wsi_ml.data.regions import unknown_classes
from napari_wsi_ml.data.slide_sampling import plan_for
from napari_wsi_ml.errors import ConfigError, WsiMlError


@dataclass(frozen=True)
class SlideJob:
    """One slide to extract patches from.

    Attributes:
        slide: Unique slide id (cohort ``slide`` column, or the file stem).
        path: The slide file.
        label: Slide-level label (``""`` when unknown); grid and random patches carry it.
        patient: Patient id (``""`` when unknown).
        site: Site id (``""`` when unknown).
        annotations: Annotation files whose areas label the patches (annotations strategy).
        index: Position in the cohort (orders the manifest, seeds random sampling).
    """

    slide: str
    path: Path
    label: str = ""
    patient: str = ""
    site: str = ""
    annotations: tuple[Path, ...] = ()
    index: int = 0


def slide_jobs(config: ExtractionConfig) -> list[SlideJob]:
    """The slides of ``config``, in order.

    Raises:
        ConfigError: The cohort CSV has problems, or slide files are missing (all listed).
    """
    if config.cohort is not None:
        table = read_cohort(config.cohort)
        return [
            SlideJob(s.slide, s.path, s.label, s.patient, s.site, s.annotations, i)
            for i, s in enumerate(table)
        ]
    files = config.annotation_files
    jobs = []
    for i, path in enumerate(config.slides):
        if isinstance(files, dict):
            notes = (files[path.stem],) if path.stem in files else ()
        else:
            notes = (files[i],) if i < len(files) else ()
        jobs.append(SlideJob(path.stem, path, annotations=notes, index=i))
    problems = [f"slide file '{j.path}' does not exist" for j in jobs if not j.path.is_file()]
    if isinstance(files, dict):
        stems = {j.slide for j in jobs}
        problems += [
            f"annotation_files names slide {k!r}, not in slides" for k in files if k not in stems
        ]
    problems += [
        f"annotation file '{a}' does not exist"
        for j in jobs
        for a in j.annotations
        if not a.is_file()
    ]
    if len({j.slide for j in jobs}) != len(jobs):
        problems.append("two slides share a file name; rename one, or use a cohort CSV")
    _raise(config, problems)
    return jobs


def label_names(config: ExtractionConfig, jobs: list[SlideJob]) -> tuple[str, ...]:
    """Class names, index order: from the label map (annotations), else the slide labels."""
    if config.strategy == "annotations":
        return label_names_for(config.label_map, config.sampling.get("background_label"))
    labels = [config.label_map.get(j.label, j.label) for j in jobs if j.label]
    return tuple(sorted(set(labels)))


def read_job_annotations(job: SlideJob) -> AnnotationSet:
    """All annotations of ``job``'s files, as one set."""
    merged = AnnotationSet(slide=job.slide)
    for path in job.annotations:
        merged.add(read_annotations(path))
    return merged


def preflight(config: ExtractionConfig, jobs: list[SlideJob]) -> None:
    """Open every slide, plan its reads and check its annotations; raise with every problem."""
    from napari_wsi_ml.slide import open_slide

    problems: list[str] = []
    for job in jobs:
        try:
            with open_slide(job.path, cache_bytes=0) as slide:
                plan_for(slide, config.sampling_options())
        except WsiMlError as error:
            problems.append(f"slide {job.slide!r}: {error}")
        if config.strategy != "annotations":
            continue
        if not job.annotations:
            problems.append(f"slide {job.slide!r}: no annotation file to label patches from")
            continue
        try:
            annotations = read_job_annotations(job)
        except WsiMlError as error:
            problems.append(f"slide {job.slide!r}: {error}")
            continue
        unknown = unknown_classes(annotations, config.label_map, config.exclude_groups)
        if unknown:
            listing = ", ".join(f"{g!r} ({n})" for g, n in unknown.items())
            problems.append(
                f"slide {job.slide!r}: annotation classes not in label_map: {listing}; add "
                "them to label_map, or to exclude_groups"
            )
    _raise(config, problems)


def _raise(config: ExtractionConfig, problems: list[str]) -> None:
    if problems:
        listing = "\n".join(f"{config.source}: {p}" for p in problems)
        raise ConfigError(
            f"{config.source}: {len(problems)} problem(s) with the slides to extract:\n{listing}"
        )
