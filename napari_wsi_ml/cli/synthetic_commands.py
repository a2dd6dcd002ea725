"""CLI sub-commands of the synthetic layer: ``sample-data OUTDIR``."""

from __future__ import annotations

import argparse

from napari_wsi_ml.cli.arguments import positive_int
from napari_wsi_ml.errors import SaveError


def _size(text: str) -> int | tuple[int, int]:
    """``"8192"`` or ``"4096-10240"`` (a range to draw from)."""
    try:
        if "-" in text:
            lo, hi = (int(v) for v in text.split("-", 1))
            if not 256 <= lo <= hi:
                raise ValueError
            return (lo, hi)
        value = int(text)
        if value < 256:
            raise ValueError
        return value
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}: give pixels (e.g. 8192) or a range (e.g. 4096-10240), >= 256"
        ) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's sub-commands."""
    sample = subparsers.add_parser(
        "sample-data",
        help="generate a synthetic H&E cohort: slides, manifest, truth and raters' ASAP XML",
        description=(
            "Generate a deterministic synthetic cohort into OUTDIR: pyramidal JPEG SVS slides, "
            "manifest.csv, annotations.csv, <slide>.truth.xml/.truth.geojson and "
            "<slide>.<rater>.xml for each simulated rater."
        ),
    )
    sample.add_argument("outdir", help="output folder (created if needed)")
    sample.add_argument(
        "--slides", type=positive_int, default=8, help="number of slides (default 8)"
    )
    sample.add_argument(
        "--size",
        type=_size,
        default=(4096, 10240),
        help="longest side in pixels, or a range MIN-MAX (default 4096-10240)",
    )
    sample.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    sample.add_argument("--raters", type=int, default=3, choices=(0, 1, 2, 3))
    sample.add_argument("--downsample", type=int, default=2, choices=(2, 4))
    sample.add_argument("--sites", type=positive_int, default=3, help="number of sites (default 3)")
    sample.add_argument(
        "--multiclass", action="store_true", help="label tumour slides tumour_a / tumour_b"
    )
    sample.set_defaults(handler=run_sample_data)


def run_sample_data(args: argparse.Namespace) -> int:
    """Generate the cohort with a progress bar and print where it went."""
    from pathlib import Path

    from tqdm import tqdm

    from napari_wsi_ml.synthetic import generate_cohort, plan_cohort

    options = {
        "seed": args.seed,
        "size": args.size,
        "downsample": args.downsample,
        "n_sites": args.sites,
        "multiclass": args.multiclass,
    }
    total = sum(spec.tile_count for spec in plan_cohort(args.slides, **options))
    outdir = Path(args.outdir)
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise SaveError(
            f"Cannot create {outdir}: {error.strerror or error}. Choose another folder."
        ) from error
    with tqdm(total=total, unit="tile", desc="sample-data") as bar:
        cohort = generate_cohort(
            outdir, n_slides=args.slides, n_raters=args.raters, on_tile=bar.update, **options
        )
    print(f"{len(cohort.slides)} slides written to {outdir}; manifest: {cohort.manifest}")
    return 0
