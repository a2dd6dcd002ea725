"""Session file names: ``<slide stem>.<rater>.xml`` and ``<slide stem>.<rater>.recovery.xml``."""

from __future__ import annotations

import os
import re
from pathlib import Path

from napari_wsi_ml.errors import WsiMlError

RECOVERY_SUFFIX = ".recovery.xml"
_RATER_PATTERN = re.compile(r"^[\w][\w \-]*$")


class SessionError(WsiMlError):
    """A session cannot be started (e.g. an unusable rater name or folder)."""


def validate_rater(rater: str) -> str:
    """The rater name, stripped; raises SessionError unless it is usable in a file name.

    Letters, digits, ``_``, ``-`` and spaces; no dots (the dot separates slide, rater and
    extension in ``<slide stem>.<rater>.xml``).
    """
    name = rater.strip()
    if not _RATER_PATTERN.match(name) or name.lower() == "recovery":
        raise SessionError(
            f"Rater name {rater!r} cannot be used in a file name: use letters, digits, '_', '-' "
            "or spaces (no dots or slashes), e.g. 'alice' or 'dr_smith'."
        )
    return name


def annotation_filename(slide_stem: str, rater: str) -> str:
    """``<slide stem>.<rater>.xml``."""
    return f"{slide_stem}.{rater}.xml"


def recovery_filename(slide_stem: str, rater: str) -> str:
    """``<slide stem>.<rater>.recovery.xml``."""
    return f"{slide_stem}.{rater}{RECOVERY_SUFFIX}"


def rater_from_filename(path: str | os.PathLike[str], slide_stem: str | None) -> str | None:
    """The rater of ``<slide stem>.<rater>.xml`` (or its recovery file), else None.

    Args:
        path: An annotation file.
        slide_stem: The slide's file stem; None matches any stem (the rater is then the part
            between the last two dots).
    """
    name = Path(path).name
    if name.endswith(RECOVERY_SUFFIX):
        name = name[: -len(RECOVERY_SUFFIX)] + ".xml"
    if not name.lower().endswith(".xml"):
        return None
    body = name[:-4]
    if slide_stem is None:
        stem, dot, rater = body.rpartition(".")
        return rater if dot and stem and rater else None
    prefix = slide_stem + "."
    if not body.startswith(prefix) or "." in body[len(prefix) :]:
        return None
    return body[len(prefix) :] or None
