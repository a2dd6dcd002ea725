"""Synthetic H&E slides and cohorts: deterministic, seeded, with truth and simulated raters.

Pure core (no Qt). Slides are Aperio-style pyramidal JPEG SVS files that OpenSlide opens with
``openslide.mpp-x``; every level is rendered from one scene description, tile by tile.
"""

from __future__ import annotations

from napari_wsi_ml.synthetic.cohort import (
    MANIFEST_COLUMNS,
    Cohort,
    SlideSpec,
    generate_cohort,
    plan_cohort,
)
from napari_wsi_ml.synthetic.raters import (
    DEFAULT_RATERS,
    RaterProfile,
    simulate_rater,
    simulate_raters,
)
from napari_wsi_ml.synthetic.render import render_region
from napari_wsi_ml.synthetic.scene import Lesion, Scene, make_scene
from napari_wsi_ml.synthetic.slide import (
    ALIGNMENT_SIZE,
    SyntheticSlide,
    generate_alignment_slide,
    generate_benchmark_slide,
    generate_slide,
    write_annotations,
)
from napari_wsi_ml.synthetic.truth import (
    GROUP_COLOURS,
    MORPHOLOGY_GROUPS,
    TUMOUR_GROUP,
    SlideTruth,
    read_truth_geojson,
    write_truth_geojson,
)

__all__ = [
    "ALIGNMENT_SIZE",
    "DEFAULT_RATERS",
    "GROUP_COLOURS",
    "MANIFEST_COLUMNS",
    "MORPHOLOGY_GROUPS",
    "TUMOUR_GROUP",
    "Cohort",
    "Lesion",
    "RaterProfile",
    "Scene",
    "SlideSpec",
    "SlideTruth",
    "SyntheticSlide",
    "generate_alignment_slide",
    "generate_benchmark_slide",
    "generate_cohort",
    "generate_slide",
    "make_scene",
    "plan_cohort",
    "read_truth_geojson",
    "render_region",
    "simulate_rater",
    "simulate_raters",
    "write_annotations",
    "write_truth_geojson",
]
