"""CLI sub-command of inference: ``infer RUN_DIR SLIDE... [--cohort CSV] [--out FOLDER]``.

Exit codes: 0 every slide scored, 1 some slide failed (the others are in predictions.csv),
2 unusable run, slides or options.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from napari_wsi_ml.cli.arguments import positive_int


def _fraction(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"invalid fraction {text!r}: give a number in [0, 1]")
    return value


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's sub-commands."""
    infer = subparsers.add_parser(
        "infer",
        help="heatmaps and slide predictions of a trained run, for many slides",
        description=(
            "Score every tissue patch of each slide with a trained run (patch size, resolution "
            "and classes as trained), write FOLDER/heatmaps/<slide>.heatmap.npz and "
            "FOLDER/predictions.csv (slide scores, prediction, uncertainty, most suspicious "
            "region). Runs in this process, on a local Dask cluster (--workers) or on an "
            "existing one (--scheduler). See docs/inference.md."
        ),
    )
    infer.add_argument("run_dir", metavar="RUN_DIR", help="the training run directory")
    infer.add_argument("slides", nargs="*", metavar="SLIDE", help="slide files")
    add = infer.add_argument
    add(
        "--cohort",
        metavar="CSV",
        help="cohort CSV: the slides' labels (all its slides if none given)",
    )
    add("--out", metavar="FOLDER", help="output folder (default: RUN_DIR/inference)")
    add("--scheduler", metavar="ADDRESS", help="existing dask scheduler, e.g. tcp://host:8786")
    add("--workers", type=positive_int, metavar="N", help="use a local Dask cluster of N processes")
    add(
        "--stride",
        type=positive_int,
        metavar="PX",
        help="patch step, output px (default: as trained)",
    )
    add("--batch-size", type=positive_int, default=64, metavar="N", help="patches per model call")
    add(
        "--min-tissue",
        type=_fraction,
        metavar="F",
        help="min. tissue fraction (default: as trained)",
    )
    add("--device", choices=("auto", "cpu", "cuda"), default="auto", help="where the model runs")
    add(
        "--tiff",
        choices=("uint8", "float32", "rgba"),
        help="also write FOLDER/tiff/<slide>.<class>.tif pyramids for ASAP / OpenSlide viewers",
    )
    add("--quiet", action="store_true", help="no progress bar")
    infer.set_defaults(handler=run_infer)


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    """None (this process), a local cluster's client, or the scheduler's."""
    if scheduler is None and workers is None:
        yield None
        return
    if scheduler is None:
        from napari_wsi_ml.data.extract import local_client

        with local_client(workers) as client:
            yield client
        return
    from distributed import Client

    from napari_wsi_ml.errors import ConfigError

    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, TimeoutError) as error:
        raise ConfigError(
            f"infer: cannot reach the Dask scheduler at {scheduler!r} ({error}). Start it "
            "(dask scheduler), check the address, or leave --scheduler out to run locally."
        ) from error
    with client:
        yield client


def run_infer(args: argparse.Namespace) -> int:
    """Score the slides, print a summary; 1 if a slide failed."""
    from napari_wsi_ml.inference.batch import inference_jobs, run_inference
    from napari_wsi_ml.inference.runs import check_run
    from napari_wsi_ml.inference.slide_inference import InferenceSettings

    check_run(args.run_dir)
    jobs = inference_jobs(args.slides, args.cohort)
    out = Path(args.out) if args.out else Path(args.run_dir) / "inference"
    settings = InferenceSettings(
        stride=args.stride,
        batch_size=args.batch_size,
        min_tissue=args.min_tissue,
        device=args.device,
        tiff=args.tiff is not None,
        tiff_mode=args.tiff or "uint8",
    )
    with _client(args.scheduler, args.workers) as client:
        result = run_inference(
            args.run_dir, jobs, out, settings, client=client, progress=not args.quiet
        )
    for prediction in result.predictions:
        label = f" (label {prediction.label})" if prediction.label else ""
        print(
            f"{prediction.slide}: {prediction.predicted}{label}, uncertainty "
            f"{prediction.uncertainty:.2f}"
        )
    for slide, message in result.errors.items():
        print(f"slide {slide} failed: {message}")
    done = len(result.predictions)
    target = result.predictions_csv or "(no predictions.csv: no slide succeeded)"
    print(f"{done} of {len(jobs)} slides scored → {target}")
    return 1 if result.errors else 0
