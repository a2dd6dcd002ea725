"""CLI sub-commands of the patch data pipeline: ``extract CONFIG``."""

from __future__ import annotations

import argparse
import dataclasses

from napari_wsi_ml.cli.arguments import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's sub-commands."""
    extract = subparsers.add_parser(
        "extract",
        help="extract patches (PNG folder or tar shards) and a manifest, in parallel on Dask",
        description=(
            "Sample patches from the slides an extraction config (YAML) names, read them at the "
            "target resolution and write them with a manifest CSV. Runs on a local Dask cluster "
            "(one worker per core) unless a scheduler address is given. See docs/patches.md."
        ),
    )
    extract.add_argument("config", help="extraction config (YAML)")
    extract.add_argument(
        "--scheduler", metavar="ADDRESS", help="existing dask scheduler, e.g. tcp://host:8786"
    )
    extract.add_argument(
        "--workers", type=positive_int, help="local worker processes (default: one per core)"
    )
    extract.add_argument("--quiet", action="store_true", help="no progress bar")
    extract.set_defaults(handler=run_extract)


def run_extract(args: argparse.Namespace) -> int:
    """Validate the config, run the extraction, print a summary; 1 if a slide failed."""
    from napari_wsi_ml.data.config import load_config
    from napari_wsi_ml.data.extract import extract

    config = load_config(args.config)
    if args.workers is not None:
        config = dataclasses.replace(config, workers=args.workers)
    result = extract(config, scheduler=args.scheduler, progress=not args.quiet)
    print(f"{result.patches} patches from {len(result.per_slide)} slides → {result.manifest}")
    if result.skipped:
        print(f"{result.skipped} patches skipped over unreadable tiles:")
        for slide, count in result.failed.items():
            if count:
                print(f"  {slide}: {count}")
    for slide, message in result.slide_errors.items():
        print(f"slide {slide} failed: {message}")
    return 1 if result.slide_errors else 0
