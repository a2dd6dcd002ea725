"""CLI sub-commands of the annotation layer: ``convert``."""

from __future__ import annotations

import argparse


def _convert(args: argparse.Namespace) -> int:
    """Convert an annotation file; formats from the content (input) and extension (output)."""
    from napari_wsi_ml.annotations.registry import (
        format_for_extension,
        sniff_format,
        write_annotations,
    )

    source = sniff_format(args.input)
    target = format_for_extension(args.output)
    annotation_set = source.read(args.input)
    print(
        f"Read {len(annotation_set)} annotation(s) in {len(annotation_set.class_names)} class(es)"
        f" from {args.input} ({source.name})."
    )
    for line in annotation_set.skipped:
        print(f"  skipped: {line}")
    for line in annotation_set.notes:
        print(f"  converted: {line}")
    notes = write_annotations(annotation_set, args.output)
    for line in notes:
        print(f"  converted: {line}")
    print(f"Wrote {len(annotation_set)} annotation(s) to {args.output} ({target.name}).")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's sub-commands."""
    parser = subparsers.add_parser(
        "convert",
        help="convert annotations between ASAP XML and QuPath GeoJSON",
        description=(
            "Convert an annotation file. The input format is recognised from its content, the"
            " output format from its extension (.xml, .geojson or .json). What the output"
            " format cannot hold is converted and listed."
        ),
    )
    parser.add_argument("input", help="ASAP .xml or GeoJSON file to read")
    parser.add_argument("output", help="file to write (.xml, .geojson or .json)")
    parser.set_defaults(handler=_convert)
