"""A session is one rater annotating one slide; where its files live and how they are written.

Annotations are saved as ``<slide stem>.<rater>.xml`` beside the slide, or in a project folder
when one is chosen. Autosaves go to ``<slide stem>.<rater>.recovery.xml`` in the same folder;
a recovery file newer than the saved file means work was not saved (a crash, a killed viewer),
and is offered back when the session starts again. Every write is atomic (temporary file, then
rename): a failed write leaves the previous file as it was.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from napari_wsi_ml.annotations.model import AnnotationSet
from napari_wsi_ml.errors import SaveError
from napari_wsi_ml.sessions.naming import annotation_filename, recovery_filename, validate_rater


@dataclass(frozen=True)
class Session:
    """One rater on one slide.

    Attributes:
        slide_path: The slide file.
        rater: The rater's name (see :func:`validate_rater`).
        project_folder: Where annotations are saved; None saves them beside the slide.
    """

    slide_path: Path
    rater: str
    project_folder: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "slide_path", Path(self.slide_path))
        object.__setattr__(self, "rater", validate_rater(self.rater))
        if self.project_folder is not None:
            object.__setattr__(self, "project_folder", Path(self.project_folder))

    @property
    def slide_stem(self) -> str:
        """The slide's file name without its extension."""
        return self.slide_path.stem

    @property
    def folder(self) -> Path:
        """The folder of the saved and recovery files."""
        return self.project_folder if self.project_folder is not None else self.slide_path.parent

    @property
    def annotation_path(self) -> Path:
        """``<folder>/<slide stem>.<rater>.xml``."""
        return self.folder / annotation_filename(self.slide_stem, self.rater)

    @property
    def recovery_path(self) -> Path:
        """``<folder>/<slide stem>.<rater>.recovery.xml``."""
        return self.folder / recovery_filename(self.slide_stem, self.rater)


def needs_recovery(session: Session) -> bool:
    """Whether a recovery file exists that is newer than the saved file (or there is none)."""
    try:
        recovered = session.recovery_path.stat().st_mtime_ns
    except OSError:
        return False
    try:
        saved = session.annotation_path.stat().st_mtime_ns
    except OSError:
        return True
    return recovered > saved


def load_saved(session: Session) -> AnnotationSet | None:
    """The rater's saved annotations, or None when there are none yet."""
    return _read(session, session.annotation_path)


def load_recovery(session: Session) -> AnnotationSet | None:
    """The autosaved annotations, or None when there is no recovery file."""
    return _read(session, session.recovery_path)


def _read(session: Session, path: Path) -> AnnotationSet | None:
    from napari_wsi_ml.annotations import read_asap

    if not path.is_file():
        return None
    annotation_set = read_asap(path)
    annotation_set.rater = session.rater
    annotation_set.slide = str(session.slide_path)
    return annotation_set


def save(session: Session, annotation_set: AnnotationSet) -> Path:
    """Save the rater's annotations (atomically) and drop the now older recovery file.

    Raises:
        SaveError: The file could not be written; the previous one is intact.
    """
    _write(annotation_set, session.annotation_path)
    discard_recovery(session)
    return session.annotation_path


def autosave(session: Session, annotation_set: AnnotationSet) -> Path:
    """Write the recovery file (atomically).

    Raises:
        SaveError: The file could not be written; the previous one is intact.
    """
    _write(annotation_set, session.recovery_path)
    return session.recovery_path


def discard_recovery(session: Session) -> None:
    """Delete the recovery file, if any."""
    try:
        session.recovery_path.unlink()
    except FileNotFoundError:
        pass
    except OSError as error:
        raise SaveError(
            f"Could not delete the recovery file {session.recovery_path}: {error.strerror}. "
            "Delete it by hand, or it will be offered again next time."
        ) from error


def _write(annotation_set: AnnotationSet, path: Path) -> None:
    from napari_wsi_ml.annotations import write_asap

    if not path.parent.is_dir():
        raise SaveError(
            f"Could not save {path}: the folder {path.parent} does not exist. Choose another "
            "project folder."
        )
    try:
        write_asap(annotation_set, path)
    except SaveError:
        raise
    except OSError as error:
        reason = error.strerror or str(error)
        raise SaveError(
            f"Could not save {path}: {reason}. The previous file is intact; choose a folder you "
            "can write to, or free some disk space, and save again."
        ) from error
