"""Heatmaps and inference (pure core; never imports torch until a run is loaded).

- :func:`heatmap`: score every tissue patch of a slide with any ``score_fn`` (batched,
  streamed region by region, memory bounded) → :class:`Heatmap` with its georeference;
  :func:`napari_heatmap_transform` puts its cells on their patches in napari.
- :func:`load_run` → :class:`RunModel`: a trained run as a score function (loaders by task
  name in :data:`RUN_LOADERS`); :func:`score_slide` scores a slide at the run's settings.
- :class:`SlidePrediction`, :func:`predict_slide`, :func:`write_predictions`,
  :func:`read_predictions`: slide scores, prediction, uncertainty, most suspicious region.
- :func:`export_heatmap_tiff`: a pyramidal TIFF overlay for ASAP and OpenSlide-based viewers.
- :func:`hematoxylin_density_heatmap`: a stain measure as a heatmap.

Many slides at once, locally or on Dask: :mod:`napari_wsi_ml.inference.batch`
(``napari-wsi-ml infer``).
"""

from __future__ import annotations

from napari_wsi_ml.inference.heatmap import Heatmap, HeatmapError, napari_heatmap_transform
from napari_wsi_ml.inference.hematoxylin import hematoxylin_density_heatmap
from napari_wsi_ml.inference.predictions import (
    SlidePrediction,
    normalised_entropy,
    predict_slide,
    read_predictions,
    slide_probabilities,
    top_k_scores,
    write_predictions,
)
from napari_wsi_ml.inference.runs import RUN_LOADERS, RunModel, load_run
from napari_wsi_ml.inference.scoring import ScoreFn, heatmap
from napari_wsi_ml.inference.slide_inference import score_slide
from napari_wsi_ml.inference.tiff_export import export_heatmap_tiff

__all__ = [
    "RUN_LOADERS",
    "Heatmap",
    "HeatmapError",
    "RunModel",
    "ScoreFn",
    "SlidePrediction",
    "export_heatmap_tiff",
    "heatmap",
    "hematoxylin_density_heatmap",
    "load_run",
    "napari_heatmap_transform",
    "normalised_entropy",
    "predict_slide",
    "read_predictions",
    "score_slide",
    "slide_probabilities",
    "top_k_scores",
    "write_predictions",
]
