"""Shared fixtures: paths to the real test data in tests/data (see tests/data/PROVENANCE.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

DATA_DIR = Path(__file__).parent / "data"
SLIDES_DIR = DATA_DIR / "slides"
ANNOTATIONS_DIR = DATA_DIR / "annotations"
TILES_DIR = DATA_DIR / "tiles"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """tests/data."""
    return DATA_DIR


# --- Synthetic slides, generated once per session (napari_wsi_ml.synthetic) ---


@pytest.fixture(scope="session")
def synthetic_slide(tmp_path_factory: pytest.TempPathFactory):
    """One 3072 × 2048 synthetic slide (downsample 2, large tumour, pen, dust) with truth and
    three raters' ASAP files beside it: a ``napari_wsi_ml.synthetic.SyntheticSlide``."""
    from napari_wsi_ml.synthetic import generate_slide, write_annotations

    folder = tmp_path_factory.mktemp("synthetic_slide")
    truth = generate_slide(
        folder / "slide_test.svs", width=3072, height=2048, seed=7, tumour="large", pen="green"
    )
    return write_annotations(truth, n_raters=3, seed=7)


@pytest.fixture(scope="session")
def synthetic_alignment_slide(tmp_path_factory: pytest.TempPathFactory):
    """The 5003 × 3001, downsample-4 slide with exactly one tumour polygon
    (``truth.lesions[0]``): a ``napari_wsi_ml.synthetic.SlideTruth``."""
    from napari_wsi_ml.synthetic import generate_alignment_slide

    folder = tmp_path_factory.mktemp("synthetic_alignment")
    return generate_alignment_slide(folder / "alignment.svs", seed=3)


@pytest.fixture(scope="session")
def synthetic_cohort(tmp_path_factory: pytest.TempPathFactory):
    """A 4-slide cohort (2048–3072 px, 2 sites, 3 raters each): a
    ``napari_wsi_ml.synthetic.Cohort`` with ``manifest.csv`` and ``annotations.csv``."""
    from napari_wsi_ml.synthetic import generate_cohort

    folder = tmp_path_factory.mktemp("synthetic_cohort")
    return generate_cohort(folder, n_slides=4, seed=11, size=(2048, 3072), n_sites=2)
