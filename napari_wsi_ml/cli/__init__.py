"""The ``napari-wsi-ml`` console command.

Each sub-command group lives in its own module with a ``register(subparsers)`` function that
adds its parsers and sets ``handler`` on them; heavy imports happen inside the handlers so that
``--help`` stays fast. A :class:`~napari_wsi_ml.errors.WsiMlError` is printed as one line to
stderr with exit code 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from napari_wsi_ml import __version__
from napari_wsi_ml.cli import (
    agreement_commands,
    annotation_commands,
    data_commands,
    inference_commands,
    job_commands,
    slide_commands,
    synthetic_commands,
    viewer_commands,
)
from napari_wsi_ml.errors import WsiMlError

COMMAND_GROUPS = (
    viewer_commands,
    slide_commands,
    synthetic_commands,
    annotation_commands,
    agreement_commands,
    data_commands,
    job_commands,
    inference_commands,
)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="napari-wsi-ml",
        description="Whole-slide images, multi-rater annotations and agreement, in napari.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in COMMAND_GROUPS:
        group.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except WsiMlError as error:
        print(f"napari-wsi-ml: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("napari-wsi-ml: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
