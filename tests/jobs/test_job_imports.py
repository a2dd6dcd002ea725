"""The job package's light modules import neither torch nor Qt; no module imports Qt/napari."""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import importlib, json, pkgutil, sys
import napari_wsi_ml.jobs, napari_wsi_ml.jobs.events, napari_wsi_ml.jobs.task
light = sorted(m for m in sys.modules if m.split('.')[0] == 'torch')
import napari_wsi_ml.jobs as jobs
for info in pkgutil.walk_packages(jobs.__path__, 'napari_wsi_ml.jobs.'):
    importlib.import_module(info.name)
importlib.import_module('napari_wsi_ml.config_schema')
gui = sorted(m for m in sys.modules if m.split('.')[0] in ('qtpy', 'PyQt6', 'PyQt5', 'napari'))
print(json.dumps({'torch_in_light': light, 'gui': gui}))
"""


def test_light_imports_and_no_gui() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True
    )
    report = json.loads(result.stdout)
    assert report["torch_in_light"] == []
    assert report["gui"] == []
