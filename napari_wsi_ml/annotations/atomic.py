"""Atomic file saves: write to a temporary file in the same folder, then ``os.replace``."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from napari_wsi_ml.errors import SaveError


def _mode_for(path: Path) -> int:
    """Permission bits for the new file: the old file's, else the umask default."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_text(path: str | os.PathLike[str], chunks: Iterable[str]) -> Path:
    """Write text (UTF-8) atomically: either the whole new file or the previous one, intact.

    Args:
        path: Destination file.
        chunks: The text, in pieces (streamed, so large files need little memory).

    Returns:
        The destination path.

    Raises:
        SaveError: The folder is not writable, the disk is full, or any other OS error; the
            previous file (if any) is untouched and no temporary file is left behind.
    """
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as error:
        raise SaveError(
            f"Cannot save {path}: cannot create a file in {directory} ({error.strerror or error})."
            " The previous version, if any, is intact. Save to a writable folder."
        ) from error
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, _mode_for(path))
        os.replace(tmp_name, path)
    except OSError as error:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise SaveError(
            f"Cannot save {path}: {error.strerror or error}. The previous version, if any, is"
            " intact. Free some disk space or save to another folder."
        ) from error
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        raise
    return path
