"""Bad slides give one clear SlideError naming the file, the reason and what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ml.errors import SlideError
from napari_wsi_ml.slide import open_slide

SLIDES_DIR = Path(__file__).resolve().parents[1] / "data" / "slides"

BAD_SLIDES = {
    "broken.svs": "not a valid TIFF",
    "unopenable.tiff": "Unsupported TIFF compression: 52479",
    "unreadable.svs": "Bogus marker length",
    "kidney-48-5.tif": "plain, untiled TIFF",
}


@pytest.mark.parametrize("name", sorted(BAD_SLIDES))
def test_bad_slide_gives_one_clear_error(name: str) -> None:
    path = SLIDES_DIR / name
    with pytest.raises(SlideError) as caught:
        open_slide(path)
    message = str(caught.value)
    assert str(path) in message
    assert BAD_SLIDES[name] in message
    assert any(hint in message for hint in ("re-export", "Re-copy", "convert it", "re-copy"))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SlideError, match="does not exist"):
        open_slide(tmp_path / "nothing.svs")
    with pytest.raises(SlideError, match="is a folder"):
        open_slide(tmp_path)


def test_damaged_tile_raises_slide_error_with_level_and_tile(
    tmp_path: Path, generated_svs: Path
) -> None:
    """A tile damaged after open raises SlideError naming file, level and tile; never blank."""
    copy = tmp_path / "damaged.svs"
    copy.write_bytes(generated_svs.read_bytes())
    slide = open_slide(copy, cache_bytes=0)
    level = slide.levels[0]
    reader = slide._tiff
    index = 3 * slide.geometries[0].tiles_across + 4  # tile (col 4, row 3)
    offset = int(reader._tiff_levels[0].offsets[index])
    count = int(reader._tiff_levels[0].bytecounts[index])
    with copy.open("r+b") as handle:
        handle.seek(offset)
        handle.write(b"\x00" * count)
    with pytest.raises(SlideError) as caught:
        np.asarray(level[3 * 256 + 10 : 3 * 256 + 20, 4 * 256 : 4 * 256 + 5])
    message = str(caught.value)
    assert str(copy) in message and "level 0" in message and "column 4, row 3" in message
    np.asarray(level[:10, :10])  # other tiles still read
    slide.close()


def test_importing_slide_does_not_import_qt_or_napari() -> None:
    code = (
        "import sys, napari_wsi_ml.slide, napari_wsi_ml.slide.tissue;"
        "import napari_wsi_ml.cli.slide_commands;"
        "qt = ('qtpy', 'napari', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6');"
        "bad = [m for m in qt if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
