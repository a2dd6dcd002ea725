"""Direct tile decoding for tiled TIFF-family slides (Aperio SVS, generic tiled TIFF).

The raw bytes of a tile are read with ``os.pread`` (thread-safe, no shared file position) and
decoded by tifffile's codec (imagecodecs: libjpeg-turbo, OpenJPEG, zlib ...), which releases
the GIL, so the tiles of a viewport decode in parallel. Whether a level may use this path is
decided by :func:`napari_wsi_ml.slide.level_sources.choose_sources`, which checks the decoded
pixels against OpenSlide's.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from napari_wsi_ml.slide.geometry import LevelGeometry
from napari_wsi_ml.slide.openslide_tiles import decode_failure

DIRECT_VENDORS = frozenset({"aperio", "generic-tiff"})
"""OpenSlide vendors whose levels are plain tiled TIFF pages."""


@dataclass(frozen=True)
class _TiffLevel:
    offsets: np.ndarray
    bytecounts: np.ndarray
    decode: Callable[..., Any]
    jpegtables: bytes | None
    samples: int


class TiffTiles:
    """Reads tiles of the levels that map one-to-one to tiled, 8-bit RGB TIFF pages.

    Args:
        path: The slide file.
        levels: Geometry of every OpenSlide level.
        properties: OpenSlide properties (for the vendor).

    Attributes:
        direct_levels: Indices of the levels this reader can serve.
    """

    name = "tiff-direct"

    def __init__(
        self, path: Path, levels: list[LevelGeometry], properties: Mapping[str, str]
    ) -> None:
        self._path = path
        self._levels = levels
        self._tiff_levels: dict[int, _TiffLevel] = {}
        self._fd: int | None = None
        if properties.get("openslide.vendor") not in DIRECT_VENDORS:
            return
        try:
            with tifffile.TiffFile(path) as tif:
                for index, geometry in enumerate(levels):
                    page = _matching_page(tif, geometry)
                    if page is not None:
                        self._tiff_levels[index] = _TiffLevel(
                            offsets=np.asarray(page.dataoffsets, dtype=np.int64),
                            bytecounts=np.asarray(page.databytecounts, dtype=np.int64),
                            decode=page.decode,
                            jpegtables=page.jpegtables,
                            samples=page.samplesperpixel,
                        )
        except (tifffile.TiffFileError, ValueError, OSError, NotImplementedError):
            self._tiff_levels.clear()
        if self._tiff_levels:
            self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))

    @property
    def direct_levels(self) -> list[int]:
        """Levels this reader can serve."""
        return sorted(self._tiff_levels)

    def drop_level(self, level: int) -> None:
        """Stop serving ``level`` (its pixels did not match OpenSlide's)."""
        self._tiff_levels.pop(level, None)

    def read_tile(self, level: int, col: int, row: int) -> np.ndarray:
        """RGB tile ``(col, row)`` of ``level``, clipped at the level's edges."""
        geometry = self._levels[level]
        tiff_level = self._tiff_levels[level]
        _, _, w, h = geometry.tile_box(col, row)
        index = row * geometry.tiles_across + col
        bytecount = int(tiff_level.bytecounts[index])
        if bytecount == 0:  # a tile the scanner never wrote: OpenSlide shows it transparent
            return np.full((h, w, 3), 255, dtype=np.uint8)
        if self._fd is None:
            raise decode_failure(self._path, level, col, row, "the slide is closed")
        try:
            data = os.pread(self._fd, bytecount, int(tiff_level.offsets[index]))
            segment, _, _ = tiff_level.decode(data, index, jpegtables=tiff_level.jpegtables)
        except Exception as error:  # any codec failure is a damaged tile
            raise decode_failure(self._path, level, col, row, error) from error
        if segment is None or segment.shape[1] < h or segment.shape[2] < w:
            raise decode_failure(self._path, level, col, row, "the tile is truncated")
        return np.ascontiguousarray(segment[0, :h, :w, :3])

    def close(self) -> None:
        """Close the file descriptor."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _matching_page(tif: tifffile.TiffFile, geometry: LevelGeometry) -> tifffile.TiffPage | None:
    """The tiled 8-bit RGB(A) page with the level's size and tile size, if exactly one."""
    found = []
    for page in tif.pages:
        if not isinstance(page, tifffile.TiffPage) or not page.is_tiled:
            continue
        if (
            page.imagewidth == geometry.width
            and page.imagelength == geometry.height
            and page.tilewidth == geometry.tile_width
            and page.tilelength == geometry.tile_height
            and page.imagedepth == 1
            and page.bitspersample == 8
            and page.samplesperpixel in (3, 4)
            and page.planarconfig == tifffile.PLANARCONFIG.CONTIG
            and page.photometric in (tifffile.PHOTOMETRIC.RGB, tifffile.PHOTOMETRIC.YCBCR)
        ):
            found.append(page)
    return found[0] if len(found) == 1 else None
