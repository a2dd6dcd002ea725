"""The project's exceptions: one base class and one subclass per failure family.

Every message says which file, what is wrong and what to do, so that the CLI can print it
as-is (exit code 2, no traceback) and napari can show it as a notification.
"""

from __future__ import annotations


class WsiMlError(Exception):
    """Base class of every error this package raises on purpose."""


class SlideError(WsiMlError):
    """A slide cannot be opened or its pixels cannot be decoded."""


class AnnotationFileError(WsiMlError):
    """An annotation file is malformed, unsafe or of an unsupported kind."""


class AgreementInputError(WsiMlError):
    """Rater annotations cannot be compared (class mismatch, other slide, empty set)."""


class ConfigError(WsiMlError):
    """A job or extraction config is invalid."""


class HeatmapError(WsiMlError):
    """A heatmap file is corrupted, or a heatmap does not belong to the slide it is put on."""


class RunError(WsiMlError):
    """A folder is not a run directory, or a run cannot be resumed or cancelled."""


class SaveError(WsiMlError):
    """A file could not be written; the previous version is intact."""
