"""Turn OpenSlide's refusals into one clear :class:`SlideError` saying what to do."""

from __future__ import annotations

from pathlib import Path

import tifffile

from napari_wsi_ml.errors import SlideError

SUPPORTED = ".svs .tif .tiff .ndpi .vms .vmu .scn .mrxs .svslide .bif .dcm"

_CONVERT = (
    "convert it to a tiled pyramidal TIFF, e.g. `vips tiffsave IN.tif OUT.tif --tile "
    "--pyramid --compression jpeg --Q 90`"
)


def missing_file_error(path: Path) -> SlideError:
    """The error for a path that does not exist or is not a file."""
    what = "is a folder, not a slide file" if path.is_dir() else "does not exist"
    return SlideError(f"Slide '{path}' {what}. Check the path (and that the disk is mounted).")


def unsupported_error(path: Path, reason: object) -> SlideError:
    """The error for a file OpenSlide refuses, with a diagnosis of what the file is."""
    return SlideError(f"Cannot open slide '{path}': {_diagnose(path, reason)}")


def _diagnose(path: Path, reason: object) -> str:
    text = str(reason).strip() or "unknown reason"
    if "Unsupported or missing image file" not in text:
        return (
            f"OpenSlide reports: {text}. The file may be damaged or use a variant OpenSlide "
            "does not support; re-export it from the scanner software or " + _CONVERT + "."
        )
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            tiled = bool(page.is_tiled)
            pages = len(tif.pages)
    except Exception:  # not a TIFF at all (or a truncated one)
        return (
            "it is not a whole-slide image OpenSlide recognises (not a valid TIFF or slide "
            f"container; it may be truncated or corrupted). Supported formats: {SUPPORTED}. "
            "Re-copy the file, or re-export it from the scanner software."
        )
    if not tiled:
        return (
            f"it is a plain, untiled TIFF ({pages} page(s)), not a whole-slide image; "
            "to view it here, " + _CONVERT + "."
        )
    return (
        "it is a tiled TIFF that OpenSlide does not recognise as a whole-slide image; "
        + _CONVERT
        + "."
    )
