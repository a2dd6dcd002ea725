"""CLI sub-commands of the viewer layer: ``view`` and ``demo``."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's sub-commands."""
    view = subparsers.add_parser(
        "view",
        help="open a slide (and annotation files) in napari",
        description="Open a whole-slide image in napari, with any ASAP XML / GeoJSON files "
        "as one Shapes layer each (named after the rater of <slide stem>.<rater>.xml).",
    )
    view.add_argument("slide", type=Path, help="slide file (any format OpenSlide opens)")
    view.add_argument("annotations", type=Path, nargs="*", help="annotation files")
    view.set_defaults(handler=_view)

    demo = subparsers.add_parser(
        "demo",
        help="open napari on the synthetic sample slide with two raters and a heatmap",
        description="Generate the sample slide once (cached), then open it in napari with two "
        "raters' annotations, a hematoxylin-density heatmap and the Slide panel.",
    )
    demo.add_argument(
        "--screenshot", type=Path, default=None, help="write a PNG of the window and exit"
    )
    demo.add_argument(
        "--no-show", action="store_true", help="do not run napari's event loop after setting up"
    )
    demo.set_defaults(handler=_demo)


def _view(args: argparse.Namespace) -> int:
    import napari

    from napari_wsi_ml.viewer.view import open_view

    open_view(args.slide, args.annotations)
    napari.run()
    return 0


def _demo(args: argparse.Namespace) -> int:
    from napari_wsi_ml.viewer.demo import run_demo

    return run_demo(args.screenshot, show=not args.no_show)
