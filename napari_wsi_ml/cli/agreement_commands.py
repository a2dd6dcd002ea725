"""CLI sub-commands of the agreement layer: ``napari-wsi-ml agree``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's sub-commands."""
    p = subparsers.add_parser(
        "agree",
        help="inter-rater agreement of annotation files (one slide, or a cohort CSV)",
        description="Cohen's/Fleiss' κ, Krippendorff's α, Dice/IoU, lesion F1, consensus and "
        "disagreement regions between raters. Files are named <slide stem>.<rater>.xml.",
    )
    p.add_argument("annotations", nargs="*", type=Path, help="one annotation file per rater")
    p.add_argument("--slide", type=Path, help="the slide the annotations belong to")
    p.add_argument("--cohort", type=Path, help="CSV with columns slide, rater, annotation")
    p.add_argument("--grid", type=float, default=256.0, help="grid cell size (default 256)")
    p.add_argument("--grid-units", choices=("px", "um"), default="px")
    p.add_argument("--grid-method", choices=("auto", "exact", "raster"), default="auto")
    p.add_argument("--tissue", action="store_true", help="restrict to the slide's tissue")
    p.add_argument(
        "--map",
        action="append",
        default=[],
        metavar="RATERCLASS=CANON",
        help="class mapping (repeatable); rater:class=CANON for one rater",
    )
    p.add_argument(
        "--min-region-area",
        type=float,
        help="drop disagreement regions smaller than this (px² or µm², as --grid-units; "
        "default one grid cell)",
    )
    p.add_argument(
        "--region-opening",
        type=float,
        help="remove disagreement slivers narrower than twice this (px or µm; default "
        "1/16 of the grid cell; 0 keeps them)",
    )
    p.add_argument("--weighting", choices=("linear", "quadratic"), help="ordinal Cohen's κ")
    p.add_argument("--iou-threshold", type=float, default=0.5, help="lesion match IoU")
    p.add_argument("--k", type=int, help="majority vote: at least k raters (default majority)")
    p.add_argument("--n-boot", type=int, default=1000, help="bootstrap replicates")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--allow-empty", action="store_true", help="empty sets = all background")
    p.add_argument("--compare", type=Path, help="another annotation file (e.g. a model's)")
    p.add_argument("--json", type=Path, help="write the JSON report here")
    p.add_argument("--csv", type=Path, help="write CSV tables into this folder")
    p.add_argument("--png", type=Path, help="write the κ / Dice heatmap figure here")
    p.add_argument("--consensus", type=Path, help="write the majority-vote consensus (ASAP XML)")
    p.set_defaults(handler=run_agree)


def run_agree(args: argparse.Namespace) -> int:
    """Handler of ``agree``."""
    from napari_wsi_ml.agreement.analysis import Options
    from napari_wsi_ml.agreement.inputs import parse_mapping
    from napari_wsi_ml.errors import AgreementInputError

    if args.n_boot < 1 or not 0 < args.iou_threshold <= 1:
        raise AgreementInputError("--n-boot must be >= 1 and --iou-threshold in (0, 1]")
    options = Options(
        grid=args.grid,
        grid_units=args.grid_units,
        weighting=args.weighting,
        iou_threshold=args.iou_threshold,
        k=args.k,
        n_boot=args.n_boot,
        seed=args.seed,
        grid_method=args.grid_method,
        min_region_area=args.min_region_area,
        region_opening=args.region_opening,
    )
    mapping = parse_mapping(args.map)
    if args.cohort is not None:
        if args.annotations or args.slide:
            raise AgreementInputError("give either --cohort CSV or --slide with files, not both")
        report = _cohort(args, options, mapping)
    else:
        if len(args.annotations) < 2:
            raise AgreementInputError("give at least two annotation files (one per rater)")
        report = _single(args.slide, args.annotations, args, options, mapping)
        if args.consensus is not None:
            _write_consensus(report, args.consensus)
    if args.json:
        report.to_json(args.json)
    if args.csv:
        report.to_csv(args.csv)
    if args.png:
        report.save_png(args.png)
    print(format_summary(report))
    return 0


def _single(slide_path, files, args, options, mapping, raters=None):
    from napari_wsi_ml.agreement.analysis import analyse
    from napari_wsi_ml.agreement.compare import compare_candidate
    from napari_wsi_ml.agreement.inputs import prepare_raters, read_rater_files

    mpp = extent = region = None
    if slide_path is not None:
        from napari_wsi_ml.slide import open_slide

        with open_slide(slide_path) as slide:
            mpp, extent = slide.mpp, slide.level_dimensions[0]
            region = slide.tissue_polygons() if args.tissue else None
    elif args.tissue:
        from napari_wsi_ml.errors import AgreementInputError

        raise AgreementInputError("--tissue needs --slide")
    sets = read_rater_files(files)
    for aset, name in zip(sets, raters or [], strict=False):
        aset.rater = name
    data = prepare_raters(
        sets,
        mapping=mapping,
        region=region,
        slide=str(slide_path) if slide_path else None,
        sources=[str(f) for f in files],
        allow_empty=args.allow_empty,
    )
    report = analyse(data, options, mpp=mpp, extent=extent)
    if args.compare is not None:
        (candidate,) = read_rater_files([args.compare])
        compare_candidate(
            data, report, candidate, mapping=mapping, options=options, mpp=mpp, extent=extent
        )
    return report


def _cohort(args, options, mapping):
    from tqdm import tqdm

    from napari_wsi_ml.agreement.cohort import pool_reports, read_cohort_csv

    cohort = read_cohort_csv(args.cohort)
    reports = {}
    for slide, entries in tqdm(cohort.items(), desc="slides", unit="slide", file=sys.stderr):
        files = [path for _, path in entries]
        sub = argparse.Namespace(**{**vars(args), "compare": None})
        slide_path = Path(slide) if Path(slide).exists() else None
        names = [rater for rater, _ in entries]
        reports[Path(slide).name] = _single(slide_path, files, sub, options, mapping, names)
    return pool_reports(
        reports, n_boot=options.n_boot, seed=options.seed, weighting=options.weighting
    )


def _write_consensus(report, path: Path) -> None:
    from napari_wsi_ml.agreement.consensus import consensus_annotations
    from napari_wsi_ml.annotations import write_asap

    path.parent.mkdir(parents=True, exist_ok=True)
    write_asap(consensus_annotations(report.consensus_regions, slide=report.slide), path)


def format_summary(report) -> str:
    """A plain-text table of the overall and per-class agreement."""
    lines = [
        f"slide: {report.slide or '(cohort)' if report.per_slide else report.slide}",
        f"raters: {', '.join(report.raters)}   classes: {', '.join(report.classes)}",
        "",
        f"{'scope':<16}{'metric':<20}{'pair':<24}{'value':>8}  95% CI",
    ]
    for row in report.metric_rows():
        value = "n/a" if row["value"] is None else f"{row['value']:.3f}"
        ci = "" if row["ci_low"] is None else f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]"
        lines.append(f"{row['scope']:<16}{row['metric']:<20}{row['pair']:<24}{value:>8}  {ci}")
    lines += [f"warning: {w}" for w in report.warnings]
    lines += [f"note: {n}" for n in report.notes[:20]]
    if len(report.notes) > 20:
        lines.append(f"note: ... and {len(report.notes) - 20} more (see the JSON report)")
    return "\n".join(lines)
