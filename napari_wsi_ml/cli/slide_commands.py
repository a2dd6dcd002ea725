"""CLI sub-commands of the slide layer: ``info SLIDE [--json]``."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add this group's sub-commands."""
    info = subparsers.add_parser(
        "info",
        help="show a slide's size, levels, tile sizes, mpp, vendor and fingerprint",
        description="Show what napari-wsi-ml reads from a whole-slide image.",
    )
    info.add_argument("slide", help="slide file (.svs, .tif, .ndpi, .mrxs, .dcm ...)")
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(handler=run_info)


def slide_info(path: str) -> dict[str, Any]:
    """The facts ``info`` prints, as a JSON-ready dict."""
    from napari_wsi_ml.slide import open_slide

    with open_slide(path) as slide:
        width, height = slide.level_dimensions[0]
        return {
            "path": str(slide.path),
            "name": slide.name,
            "vendor": slide.vendor,
            "width": width,
            "height": height,
            "mpp": list(slide.mpp) if slide.mpp is not None else None,
            "levels": [
                {
                    "level": index,
                    "width": w,
                    "height": h,
                    "downsample": ds,
                    "tile_width": tw,
                    "tile_height": th,
                    "reader": reader,
                }
                for index, ((w, h), ds, (tw, th), reader) in enumerate(
                    zip(
                        slide.level_dimensions,
                        slide.level_downsamples,
                        slide.level_tile_sizes,
                        slide.level_readers,
                        strict=True,
                    )
                )
            ],
            "associated_images": sorted(slide.associated_images),
            "fingerprint": slide.fingerprint,
        }


def format_info(info: dict[str, Any]) -> str:
    """Human-readable text of :func:`slide_info`'s dict."""
    mpp = info["mpp"]
    mpp_text = f"{mpp[0]:.4g} x {mpp[1]:.4g} µm/px" if mpp else "unknown"
    lines = [
        f"Slide:        {info['path']}",
        f"Vendor:       {info['vendor']}",
        f"Dimensions:   {info['width']} x {info['height']} px",
        f"mpp:          {mpp_text}",
        f"Levels:       {len(info['levels'])}",
    ]
    for level in info["levels"]:
        lines.append(
            f"  {level['level']}: {level['width']} x {level['height']} px, downsample "
            f"{level['downsample']:.4f}, tiles {level['tile_width']} x {level['tile_height']}"
            f" ({level['reader']})"
        )
    lines.append(f"Associated:   {', '.join(info['associated_images']) or 'none'}")
    lines.append(f"Fingerprint:  {info['fingerprint']}")
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    """Handler of ``info``: print the slide's facts (SlideError -> exit code 2)."""
    info = slide_info(args.slide)
    print(json.dumps(info, indent=2) if args.json else format_info(info))
    return 0
