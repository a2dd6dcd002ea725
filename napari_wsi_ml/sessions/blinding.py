"""Blinded mode: while it is on, a rater sees and opens only their own annotations.

The coordinator turns it off. The rule lives here; the viewer stores who is blinded in the slide
layer's metadata under :data:`BLINDED_RATER_KEY`, so that every way of opening a file (the panel,
the File menu, drag and drop) asks the same question.
"""

from __future__ import annotations

import os
from pathlib import Path

from napari_wsi_ml.errors import WsiMlError
from napari_wsi_ml.sessions.naming import RECOVERY_SUFFIX, rater_from_filename

BLINDED_RATER_KEY = "blinded_rater"


class BlindedModeRefusal(WsiMlError):
    """Blinded mode refused to open another rater's annotations."""


def blinded_refusal(
    path: str | os.PathLike[str], slide_stem: str | None, blinded_rater: str | None
) -> str | None:
    """Why blinded mode refuses to open ``path``, or None when it may be opened.

    While blinded, only the rater's own ``<slide stem>.<rater>.xml`` (or its recovery file) may be
    opened: any other annotation file could hold another rater's work.
    """
    if not blinded_rater:
        return None
    if rater_from_filename(path, slide_stem) == blinded_rater:
        return None
    return (
        f"Blinded mode is on: {Path(path).name} is not {blinded_rater}'s annotation file, so it "
        "was not opened. Ask the study coordinator to turn blinded mode off to see it."
    )


def other_rater_files(
    folder: str | os.PathLike[str], slide_stem: str, rater: str
) -> dict[str, Path]:
    """The other raters' saved files for a slide in ``folder``: rater name → path."""
    found: dict[str, Path] = {}
    folder = Path(folder)
    if not folder.is_dir():
        return found
    for path in sorted(folder.glob(f"{slide_stem}.*.xml")):
        if path.name.endswith(RECOVERY_SUFFIX):
            continue
        other = rater_from_filename(path, slide_stem)
        if other is not None and other != rater:
            found[other] = path
    return found
