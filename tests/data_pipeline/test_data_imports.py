"""The pipeline's pure core imports neither Qt, napari nor torch."""

from __future__ import annotations

import subprocess
import sys


def test_data_core_is_qt_and_torch_free() -> None:
    code = (
        "import sys, napari_wsi_ml.data;"
        "bad = [m for m in ('qtpy', 'napari', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'torch')"
        " if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
