"""Annotation sessions: one rater on one slide, saved files, recovery files and blinded mode.

Pure core: no Qt, no napari.
"""

from __future__ import annotations

from napari_wsi_ml.sessions.blinding import (
    BLINDED_RATER_KEY,
    BlindedModeRefusal,
    blinded_refusal,
    other_rater_files,
)
from napari_wsi_ml.sessions.naming import (
    SessionError,
    annotation_filename,
    rater_from_filename,
    recovery_filename,
    validate_rater,
)
from napari_wsi_ml.sessions.session import (
    Session,
    autosave,
    discard_recovery,
    load_recovery,
    load_saved,
    needs_recovery,
    save,
)

__all__ = [
    "BLINDED_RATER_KEY",
    "BlindedModeRefusal",
    "Session",
    "SessionError",
    "annotation_filename",
    "autosave",
    "blinded_refusal",
    "discard_recovery",
    "load_recovery",
    "load_saved",
    "needs_recovery",
    "other_rater_files",
    "rater_from_filename",
    "recovery_filename",
    "save",
    "validate_rater",
]
