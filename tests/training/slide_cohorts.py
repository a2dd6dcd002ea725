"""Small synthetic slide cohorts for the slide-level task tests, generated once per session.

A cohort is written under pytest's base temporary folder the first time a test asks for it
and reused by every later test of the session (and by other test modules).
"""

from __future__ import annotations

from pathlib import Path

import pytest


def small_slide_cohort(
    tmp_path_factory: pytest.TempPathFactory, *, n_slides: int = 8, multiclass: bool = False
) -> Path:
    """Folder of an ``n_slides`` cohort (0.9–1.1 mm slides at 1 µm/px, 2 sites, truth files).

    Its ``manifest.csv`` is a cohort CSV (``tumour_fraction`` column, ``truth`` files); labels
    rotate large tumour / normal / small tumour (``tumour_a`` / ``tumour_b`` if multiclass).
    """
    from napari_wsi_ml.synthetic import generate_cohort

    name = f"slide_cohort_{n_slides}{'_multiclass' if multiclass else ''}"
    folder = tmp_path_factory.getbasetemp() / name
    if not (folder / "manifest.csv").is_file():
        generate_cohort(
            folder, n_slides=n_slides, seed=3, size=(900, 1100), n_sites=2, n_raters=0,
            mpp=1.0, multiclass=multiclass,
        )  # fmt: skip
    return folder
