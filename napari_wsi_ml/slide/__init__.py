"""Slide reading (pure core, no Qt): whole-slide images as lazy, cached dask pyramids.

Public API: :func:`open_slide`, :class:`Slide`, :class:`TileCache`, :func:`default_cache`,
:func:`set_default_cache_bytes`; tissue detection lives in :mod:`napari_wsi_ml.slide.tissue`.
"""

from __future__ import annotations

from napari_wsi_ml.slide.reader import Slide, open_slide
from napari_wsi_ml.slide.tile_cache import (
    DEFAULT_CACHE_BYTES,
    TileCache,
    default_cache,
    set_default_cache_bytes,
)

__all__ = [
    "DEFAULT_CACHE_BYTES",
    "Slide",
    "TileCache",
    "default_cache",
    "open_slide",
    "set_default_cache_bytes",
]
