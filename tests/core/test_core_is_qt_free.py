"""The pure core never imports Qt or napari (DESIGN: usable from scripts, notebooks, clusters)."""

from __future__ import annotations

import json
import subprocess
import sys

import napari_wsi_ml

CORE_PACKAGES = (
    "slide",
    "annotations",
    "agreement",
    "synthetic",
    "sessions",
    "inference",
    "evaluation",
    "cli",
)

# Runs in a fresh interpreter: imports every core module in turn and records, for each, the GUI
# modules present right after it was imported (so the first offender is named).
PROBE = """
import importlib, json, pkgutil, sys
GUI = ('qtpy', 'PyQt5', 'PyQt6', 'PySide2', 'PySide6', 'napari', 'vispy', 'magicgui')
names = ['napari_wsi_ml', 'napari_wsi_ml.errors', 'napari_wsi_ml.coords']
for package in %r:
    module = importlib.import_module('napari_wsi_ml.' + package)
    names.append(module.__name__)
    names += [i.name for i in pkgutil.walk_packages(module.__path__, module.__name__ + '.')
              if not i.name.endswith('.__main__')]
report = {}
for name in names:
    importlib.import_module(name)
    report[name] = sorted(m for m in sys.modules if m.split('.')[0] in GUI)
print(json.dumps(report))
"""


def test_core_modules_import_neither_qt_nor_napari() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE % (CORE_PACKAGES,)],
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout)
    assert len(report) > 40, "the probe found too few modules to be meaningful"
    offenders = {name: gui for name, gui in report.items() if gui}
    assert not offenders, f"first core module importing GUI code: {next(iter(offenders.items()))}"


def test_package_version_is_set() -> None:
    assert napari_wsi_ml.__version__.count(".") == 2
