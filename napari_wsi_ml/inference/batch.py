"""Inference over many slides: in this process, or one slide per task on a Dask cluster.

:func:`inference_jobs` turns slide files and/or a cohort CSV into :class:`InferenceJob` rows
(labels from the cohort) and reports every problem at once; :func:`run_inference` scores them
and writes ``<out>/predictions.csv`` (atomically, in the order of the jobs) with every slide
that succeeded. A slide that fails is reported and the others go on. Without a Dask client the
slides run one after the other in this process (the model loaded once, a progress bar per
patch); with one, each slide is a task (workers load the model once each, like
:mod:`napari_wsi_ml.data.extract`), and the bar counts slides as they finish.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_wsi_ml.errors import ConfigError, WsiMlError
from napari_wsi_ml.inference.predictions import SlidePrediction, write_predictions
from napari_wsi_ml.inference.runs import check_run
from napari_wsi_ml.inference.slide_inference import (
    InferenceJob,
    InferenceSettings,
    cached_run,
    infer_slide,
)

PREDICTIONS_FILE = "predictions.csv"


@dataclass
class InferenceResult:
    """What an inference wrote.

    Attributes:
        predictions: One per slide that succeeded, in job order.
        errors: Slide id → why it failed.
        predictions_csv: The table written (None when no slide succeeded).
    """

    predictions: list[SlidePrediction] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    predictions_csv: Path | None = None


def inference_jobs(
    slides: Sequence[str | os.PathLike[str]], cohort: str | os.PathLike[str] | None = None
) -> list[InferenceJob]:
    """The slides to score: the files given, labelled from ``cohort``; else the cohort's slides.

    A given file takes its label from the cohort row with the same path (or, failing that,
    the same slide id = file stem); files not in the cohort have no label.

    Raises:
        ConfigError: No slides, missing files, a bad cohort, or two slides with one id.
    """
    rows = []
    if cohort is not None:
        from napari_wsi_ml.data.cohort import read_cohort

        rows = list(read_cohort(cohort, check_files=not slides))
    if not slides:
        if cohort is None:
            raise ConfigError("infer: give slide files, or --cohort CSV.")
        jobs = [InferenceJob(r.slide, r.path, r.label or None) for r in rows]
    else:
        by_path = {r.path.resolve(): r for r in rows}
        by_id = {r.slide: r for r in rows}
        jobs = []
        for text in slides:
            path = Path(text)
            row = by_path.get(path.resolve()) or by_id.get(path.stem)
            slide = row.slide if row is not None else path.stem
            jobs.append(InferenceJob(slide, path, (row.label or None) if row else None))
    problems = [f"slide file '{j.path}' does not exist" for j in jobs if not j.path.is_file()]
    seen: set[str] = set()
    for job in jobs:
        if job.slide in seen:
            problems.append(f"two slides are called '{job.slide}'; rename one, or use a cohort")
        seen.add(job.slide)
    if problems:
        raise ConfigError(f"infer: {len(problems)} problem(s):\n" + "\n".join(problems))
    return jobs


def run_inference(
    run_dir: str | os.PathLike[str],
    jobs: Sequence[InferenceJob],
    out: str | os.PathLike[str],
    settings: InferenceSettings | None = None,
    *,
    client: Any = None,
    progress: bool = True,
    on_slide: Callable[[int, int], None] | None = None,
) -> InferenceResult:
    """Score ``jobs`` with the run, write heatmaps and ``predictions.csv`` under ``out``.

    Args:
        run_dir: The trained run.
        jobs: From :func:`inference_jobs`.
        out: Output folder (created).
        settings: Stride, batch size, device, TIFF export.
        client: A ``distributed.Client``; None runs in this process.
        progress: Show tqdm progress bars.
        on_slide: Called with ``(slides done, slides)`` after every slide.

    Raises:
        RunError: The run cannot be used (checked before any slide is read).
    """
    check_run(run_dir)
    settings = settings or InferenceSettings()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    run = str(Path(run_dir).resolve())
    if client is None:
        found = _run_local(run, jobs, out, settings, progress, on_slide)
    else:
        found = _run_distributed(run, jobs, out, settings, client, progress, on_slide)
    result = InferenceResult(errors={k: v for k, v in found.items() if isinstance(v, str)})
    result.predictions = [
        found[j.slide] for j in jobs if isinstance(found[j.slide], SlidePrediction)
    ]
    if result.predictions:
        result.predictions_csv = write_predictions(result.predictions, out / PREDICTIONS_FILE)
    return result


def _describe(error: BaseException) -> str:
    return str(error) if isinstance(error, WsiMlError) else f"{type(error).__name__}: {error}"


def _run_local(
    run: str,
    jobs: Sequence[InferenceJob],
    out: Path,
    settings: InferenceSettings,
    progress: bool,
    on_slide: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    from tqdm import tqdm

    cached_run(run, settings.device)  # an unusable run or device fails here, before any slide
    found: dict[str, Any] = {}
    slides = tqdm(total=len(jobs), unit="slide", desc="infer", disable=not progress)
    for number, job in enumerate(jobs, 1):
        patches = tqdm(unit="patch", desc=job.slide, leave=False, disable=not progress)

        def step(done: int, total: int, bar: Any = patches) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            found[job.slide] = infer_slide(run, job, out, settings, progress=step)
        except Exception as error:  # a slide's failure is reported; the others go on
            found[job.slide] = _describe(error)
        finally:
            patches.close()
        slides.update(1)
        if on_slide is not None:
            on_slide(number, len(jobs))
    slides.close()
    return found


def _run_distributed(
    run: str,
    jobs: Sequence[InferenceJob],
    out: Path,
    settings: InferenceSettings,
    client: Any,
    progress: bool,
    on_slide: Callable[[int, int], None] | None,
) -> dict[str, Any]:
    from distributed import as_completed
    from tqdm import tqdm

    futures = [client.submit(infer_slide, run, job, out, settings, pure=False) for job in jobs]
    by_key = {future.key: job for future, job in zip(futures, jobs, strict=True)}
    found: dict[str, Any] = {}
    bar = tqdm(total=len(jobs), unit="slide", desc="infer", disable=not progress)
    for number, future in enumerate(as_completed(futures), 1):
        job = by_key[future.key]
        try:
            found[job.slide] = future.result()
        except Exception as error:  # a worker's failure is reported per slide
            found[job.slide] = _describe(error)
        future.release()
        bar.update(1)
        if on_slide is not None:
            on_slide(number, len(jobs))
    bar.close()
    return found
