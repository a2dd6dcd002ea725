"""``open_slide`` and :class:`Slide`: a whole-slide image as a lazy, cached dask pyramid."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from functools import cached_property
from os import PathLike
from pathlib import Path
from types import TracebackType
from typing import Any

import cv2
import dask.array as da
import numpy as np
import openslide

from napari_wsi_ml.errors import SlideError
from napari_wsi_ml.slide.associated import AssociatedImages
from napari_wsi_ml.slide.dask_levels import CachedTiles, level_array
from napari_wsi_ml.slide.fingerprint import slide_fingerprint
from napari_wsi_ml.slide.geometry import LevelGeometry
from napari_wsi_ml.slide.level_sources import choose_sources
from napari_wsi_ml.slide.open_errors import missing_file_error, unsupported_error
from napari_wsi_ml.slide.openslide_tiles import OpenSlideTiles
from napari_wsi_ml.slide.tiff_tiles import TiffTiles
from napari_wsi_ml.slide.tile_cache import TileCache, default_cache

DEFAULT_TILE_SIZE = 256
_slide_ids = itertools.count()


def open_slide(path: str | PathLike[str], *, cache_bytes: int | None = None) -> Slide:
    """Open a whole-slide image.

    Args:
        path: The slide file (any format OpenSlide reads).
        cache_bytes: Byte bound of a tile cache private to this slide; None shares the
            process-wide cache (see :func:`~napari_wsi_ml.slide.set_default_cache_bytes`).

    Raises:
        SlideError: The file is missing, not a slide, or its pixels cannot be decoded.
    """
    return Slide(path, cache_bytes=cache_bytes)


class Slide:
    """A whole-slide image: metadata plus one lazy dask array per pyramid level.

    Coordinates are level-0 pixels ``(x, y)`` and sizes ``(width, height)`` unless a docstring
    says otherwise. Pixels equal OpenSlide's ``read_region`` composited on white.
    """

    def __init__(self, path: str | PathLike[str], *, cache_bytes: int | None = None) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise missing_file_error(self.path)
        try:
            self._osr = openslide.OpenSlide(str(self.path))
        except (openslide.OpenSlideError, OSError) as error:
            raise unsupported_error(self.path, error) from error
        self._closed = False
        try:
            self._open_pyramid(cache_bytes)
        except BaseException:
            self._osr.close()
            raise

    def _open_pyramid(self, cache_bytes: int | None) -> None:
        self.properties: dict[str, str] = dict(self._osr.properties)
        self.geometries = [self._level_geometry(i) for i in range(self._osr.level_count)]
        self._tiff = TiffTiles(self.path, self.geometries, self.properties)
        try:
            self._sources = choose_sources(
                self.geometries, OpenSlideTiles(self._osr, self.path, self.geometries), self._tiff
            )
        except BaseException:
            self._tiff.close()
            raise
        self._owner = next(_slide_ids)
        cache = default_cache() if cache_bytes is None else TileCache(cache_bytes)
        self._tiles = CachedTiles(self._owner, self._sources, cache)
        self.levels: list[da.Array] = [
            level_array(self._tiles, i, g, f"slide-{self._owner}-{self.name}-level{i}")
            for i, g in enumerate(self.geometries)
        ]

    def _level_geometry(self, level: int) -> LevelGeometry:
        width, height = self._osr.level_dimensions[level]
        prefix = f"openslide.level[{level}]"
        return LevelGeometry(
            width=width,
            height=height,
            tile_width=int(self.properties.get(f"{prefix}.tile-width", DEFAULT_TILE_SIZE)),
            tile_height=int(self.properties.get(f"{prefix}.tile-height", DEFAULT_TILE_SIZE)),
            downsample=float(self._osr.level_downsamples[level]),
        )

    @property
    def name(self) -> str:
        """The file name without its extension."""
        return self.path.stem

    @property
    def level_count(self) -> int:
        """Number of pyramid levels."""
        return len(self.geometries)

    @property
    def level_dimensions(self) -> tuple[tuple[int, int], ...]:
        """``(width, height)`` of every level."""
        return tuple((g.width, g.height) for g in self.geometries)

    @property
    def level_downsamples(self) -> tuple[float, ...]:
        """Level-0 pixels per level pixel, for every level (as OpenSlide reports them)."""
        return tuple(g.downsample for g in self.geometries)

    @property
    def level_tile_sizes(self) -> tuple[tuple[int, int], ...]:
        """``(width, height)`` of the file's tiles (= the dask chunks) at every level."""
        return tuple((g.tile_width, g.tile_height) for g in self.geometries)

    @property
    def level_readers(self) -> tuple[str, ...]:
        """Which reader decodes each level: ``"tiff-direct"`` or ``"openslide"``."""
        return tuple(source.name for source in self._sources)

    @property
    def vendor(self) -> str:
        """OpenSlide's vendor name (``aperio``, ``generic-tiff``, ``dicom`` ...)."""
        return self.properties.get("openslide.vendor", "unknown")

    @property
    def mpp(self) -> tuple[float, float] | None:
        """Micrometres per level-0 pixel ``(x, y)``, or None when the slide does not say."""
        try:
            x = float(self.properties["openslide.mpp-x"])
            y = float(self.properties["openslide.mpp-y"])
        except (KeyError, ValueError):
            return None
        if not (math.isfinite(x) and math.isfinite(y) and x > 0 and y > 0):
            return None
        return (x, y)

    @cached_property
    def associated_images(self) -> Mapping[str, np.ndarray]:
        """Associated images (label, macro ...) by name, as RGB arrays decoded on access."""
        return AssociatedImages(self._osr, self.path)

    @cached_property
    def fingerprint(self) -> str:
        """A stable content hash of the file (see :func:`slide_fingerprint`)."""
        return slide_fingerprint(self.path, self.properties)

    @property
    def cache(self) -> TileCache:
        """The tile cache this slide reads through."""
        return self._tiles.cache

    def best_level_for_downsample(self, downsample: float) -> int:
        """The most detailed level whose downsample is at most ``downsample`` (as OpenSlide)."""
        best = 0
        for index, level_ds in enumerate(self.level_downsamples):
            if level_ds <= downsample * (1 + 1e-9):
                best = index
        return best

    def read_region(
        self, location: tuple[int, int], level: int, size: tuple[int, int]
    ) -> np.ndarray:
        """RGB pixels ``(h, w, 3)`` of ``level`` from level-0 ``location`` ``(x, y)``.

        ``size`` is ``(width, height)`` in level pixels. The level-0 location is rounded to the
        nearest level pixel (OpenSlide would interpolate a fractional one); the part outside
        the slide is white.
        """
        if not 0 <= level < self.level_count:
            raise SlideError(
                f"Slide '{self.path}' has no level {level} (0..{self.level_count - 1})."
            )
        g = self.geometries[level]
        x = round(location[0] / g.downsample)
        y = round(location[1] / g.downsample)
        w, h = int(size[0]), int(size[1])
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, g.width), min(y + h, g.height)
        if x0 < x1 and y0 < y1:
            out[y0 - y : y1 - y, x0 - x : x1 - x] = np.asarray(self.levels[level][y0:y1, x0:x1])
        return out

    def thumbnail(self, max_size: int | tuple[int, int] = 1024) -> np.ndarray:
        """RGB image of the whole slide fitting in ``max_size`` (an int, or ``(width, height)``)."""
        max_w, max_h = (max_size, max_size) if isinstance(max_size, int) else max_size
        width, height = self.level_dimensions[0]
        scale = max(width / max_w, height / max_h, 1.0)
        level = self.best_level_for_downsample(scale)
        image = np.asarray(self.levels[level])
        out_w = max(1, round(width / scale))
        out_h = max(1, round(height / scale))
        if image.shape[1] == out_w and image.shape[0] == out_h:
            return image.copy()
        return cv2.resize(image, (out_w, out_h), interpolation=cv2.INTER_AREA)

    def tissue_polygons(self, **options: Any) -> Any:
        """Tissue as level-0 shapely (Multi)Polygon with holes.

        Keyword options are those of :func:`napari_wsi_ml.slide.tissue.slide_tissue_polygons`.
        """
        from napari_wsi_ml.slide.tissue import slide_tissue_polygons

        return slide_tissue_polygons(self, **options)

    def close(self) -> None:
        """Release the file handles and this slide's cached tiles."""
        if self._closed:
            return
        self._closed = True
        self._tiff.close()
        self._osr.close()
        self._tiles.cache.discard_owner(self._owner)

    def __enter__(self) -> Slide:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        w, h = self.level_dimensions[0]
        return f"Slide({str(self.path)!r}, {w}x{h}, levels={self.level_count})"
