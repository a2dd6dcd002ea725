"""Heatmaps (pure core): georeferenced patch scores, their file format and stain measures."""

from __future__ import annotations

from napari_wsi_ml.inference.heatmap import Heatmap, HeatmapError, napari_heatmap_transform
from napari_wsi_ml.inference.hematoxylin import hematoxylin_density_heatmap

__all__ = ["Heatmap", "HeatmapError", "hematoxylin_density_heatmap", "napari_heatmap_transform"]
