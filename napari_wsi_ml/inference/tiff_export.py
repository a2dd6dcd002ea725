"""Heatmaps as pyramidal TIFFs that whole-slide viewers overlay on the slide.

The TIFF's level 0 covers the slide's level 0 pixel for pixel (``downsample=1``) or at an
integer fraction of it (``downsample=d``: ``floor(width / d) × floor(height / d)`` pixels, each
covering ``d × d`` level-0 pixels). Every pixel takes the value of the heatmap cell whose centre
is nearest to the pixel's centre, i.e. each cell paints the ``stride × stride`` box centred on
the centre of its patch, as the napari layer shows it; pixels beyond the grid, or of unscored
cells, are 0 (transparent in ``rgba``). The file is a tiled (256 px), zlib-compressed pyramid
(each level half the previous, in the main IFD chain, ``subfiletype`` reduced-resolution), with
resolution tags in the slide's µm/px and the georeference as JSON in the ImageDescription. It is
written tile by tile from the cell grid, so memory does not depend on the slide's size.

Modes, and who reads them:

- ``"uint8"``: one class, one channel, the class's value range mapped to 0–255. ASAP's
  visualisation panel overlays it as a likelihood map (it needs the slide's size divided by an
  integer); OpenSlide reads it as a generic tiled TIFF (grey), and so do viewers built on it.
- ``"float32"``: one class, the raw scores (unscored = 0). ASAP overlays it with its
  traffic-light colour table; OpenSlide cannot read floating-point TIFFs.
- ``"rgba"``: one class colour-mapped (transparent low → yellow → red, as in napari), alpha 0
  where unscored. OpenSlide and viewers on it (QuPath's OpenSlide server) open it as an image.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import tifffile

from napari_wsi_ml.errors import HeatmapError, SaveError
from napari_wsi_ml.inference.heatmap import Heatmap

Mode = Literal["uint8", "float32", "rgba"]
TILE = 256

HEAT_LUT_CONTROLS = (
    (0.0, (255, 255, 0, 0)),
    (0.25, (255, 217, 0, 89)),
    (0.6, (255, 115, 0, 191)),
    (1.0, (217, 0, 0, 242)),
)
"""RGBA colour scale of ``rgba`` exports (the napari heatmap layer's): ``(position, RGBA)``."""


def heat_lut() -> np.ndarray:
    """``(256, 4)`` uint8 RGBA colour table of :data:`HEAT_LUT_CONTROLS`."""
    positions = np.array([p for p, _ in HEAT_LUT_CONTROLS])
    colours = np.array([c for _, c in HEAT_LUT_CONTROLS], dtype=np.float64)
    x = np.linspace(0.0, 1.0, 256)
    return np.stack(
        [np.round(np.interp(x, positions, colours[:, k])) for k in range(4)], axis=1
    ).astype(np.uint8)


def value_range(heatmap: Heatmap, channel: int) -> tuple[float, float]:
    """``extra["value_range"]`` when stated (e.g. probabilities), else the channel's range."""
    stated = heatmap.extra.get("value_range")
    if stated is not None:
        low, high = (float(v) for v in stated)  # type: ignore[union-attr]
        return low, high
    values = heatmap.values[:, :, channel]
    if not np.isfinite(values).any():
        return 0.0, 1.0
    low, high = float(np.nanmin(values)), float(np.nanmax(values))
    return (low, high) if high > low else (low, low + 1.0)


def cell_index(
    n_pixels: int, pixel_size: float, origin: float, extent: float, stride: float, cells: int
) -> np.ndarray:
    """Cell of every pixel along one axis (``cells`` where there is none).

    Pixel ``p`` covers level-0 ``[p · pixel_size, (p + 1) · pixel_size)``; its cell is the one
    whose patch centre ``origin + extent / 2 + k · stride`` is nearest to the pixel's centre,
    if the pixel lies within half a stride of it.
    """
    centre = (np.arange(n_pixels) + 0.5) * pixel_size
    k = np.floor((centre - origin - extent / 2) / stride + 0.5).astype(np.int64)
    return np.where((k >= 0) & (k < cells), k, cells)


def _cell_image(heatmap: Heatmap, channel: int, mode: Mode) -> np.ndarray:
    """The grid as output pixels, with a trailing row and column of "no data"."""
    values = heatmap.values[:, :, channel]
    rows, cols = values.shape
    scored = np.isfinite(values)
    if mode == "float32":
        out = np.zeros((rows + 1, cols + 1), dtype=np.float32)
        out[:rows, :cols] = np.where(scored, values, 0.0)
        return out
    low, high = value_range(heatmap, channel)
    scaled = np.clip((np.nan_to_num(values, nan=low) - low) / (high - low), 0.0, 1.0)
    levels = np.round(scaled * 255).astype(np.uint8)
    if mode == "uint8":
        out = np.zeros((rows + 1, cols + 1), dtype=np.uint8)
        out[:rows, :cols] = np.where(scored, levels, 0)
        return out
    out = np.zeros((rows + 1, cols + 1, 4), dtype=np.uint8)
    out[:rows, :cols] = np.where(scored[..., None], heat_lut()[levels], 0)
    return out


def _tiles(image: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> Iterator[np.ndarray]:
    """Tiles (row-major, each :data:`TILE` square, zero-padded) of ``image[rows][:, cols]``."""
    height, width = len(rows), len(cols)
    shape = (TILE, TILE, *image.shape[2:])
    for y in range(0, height, TILE):
        tile_rows = rows[y : y + TILE]
        strip = image[tile_rows]
        for x in range(0, width, TILE):
            tile_cols = cols[x : x + TILE]
            tile = np.zeros(shape, dtype=image.dtype)
            tile[: len(tile_rows), : len(tile_cols)] = strip[:, tile_cols]
            yield tile


def export_heatmap_tiff(
    heatmap: Heatmap,
    path: str | os.PathLike[str],
    slide_size: tuple[int, int],
    mpp: Sequence[float] | None = None,
    *,
    channel: int | str = 0,
    mode: Mode = "uint8",
    downsample: int = 1,
) -> Path:
    """Write one class of ``heatmap`` as a pyramidal TIFF over the slide, atomically.

    Args:
        heatmap: The heatmap.
        path: The ``.tif`` file to write.
        slide_size: The slide's level-0 ``(width, height)``.
        mpp: The slide's µm per level-0 pixel ``(x, y)``, written as resolution tags.
        channel: Class name or index.
        mode: ``"uint8"``, ``"float32"`` or ``"rgba"`` (see the module docstring).
        downsample: Level-0 pixels per TIFF pixel (an integer ≥ 1).

    Raises:
        HeatmapError: Unknown class or mode, or a downsample larger than the slide.
        SaveError: The file cannot be written (the previous one, if any, is intact).
    """
    index = _channel(heatmap, channel)
    if mode not in ("uint8", "float32", "rgba"):
        raise HeatmapError(f"TIFF mode must be uint8, float32 or rgba, not {mode!r}.")
    width, height = (int(slide_size[0]) // downsample, int(slide_size[1]) // downsample)
    if downsample < 1 or width < 1 or height < 1:
        raise HeatmapError(f"Cannot export at downsample {downsample} of a {slide_size} slide.")
    image = _cell_image(heatmap, index, mode)
    target = Path(path)
    description = json.dumps(
        {**heatmap.metadata(), "class_name": heatmap.class_names[index], "mode": mode,
         "downsample": downsample, "value_range": list(value_range(heatmap, index))}
    )  # fmt: skip
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        with tifffile.TiffWriter(tmp, bigtiff=width * height * image.itemsize > 2**31) as writer:
            level, scale = 0, downsample
            while True:
                w = -(-int(slide_size[0]) // scale) if level else width
                h = -(-int(slide_size[1]) // scale) if level else height
                _write_level(writer, heatmap, image, (w, h), scale, mpp, mode, level, description)
                if max(w, h) <= TILE:
                    break
                level, scale = level + 1, scale * 2
        os.replace(tmp, target)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        raise SaveError(
            f"Cannot write {target}: {error}. Check the folder and free space."
        ) from error
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _write_level(
    writer: tifffile.TiffWriter,
    heatmap: Heatmap,
    image: np.ndarray,
    size: tuple[int, int],
    scale: int,
    mpp: Sequence[float] | None,
    mode: Mode,
    level: int,
    description: str,
) -> None:
    rows, cols = heatmap.grid_shape
    col_of = cell_index(
        size[0], scale, heatmap.origin[0], heatmap.patch_size[0], heatmap.stride[0], cols
    )
    row_of = cell_index(
        size[1], scale, heatmap.origin[1], heatmap.patch_size[1], heatmap.stride[1], rows
    )
    options: dict[str, object] = {}
    if mpp is not None:
        options = {
            "resolution": (1e4 / (mpp[0] * scale), 1e4 / (mpp[1] * scale)),
            "resolutionunit": "CENTIMETER",
        }
    if mode == "rgba":
        options.update(photometric="rgb", extrasamples=("unassalpha",))
    else:
        options.update(photometric="minisblack")
    writer.write(
        _tiles(image, row_of, col_of),
        shape=(size[1], size[0], *image.shape[2:]),
        dtype=image.dtype,
        tile=(TILE, TILE),
        compression="zlib",
        subfiletype=0 if level == 0 else 1,
        description=description if level == 0 else None,
        metadata=None,
        **options,
    )


def _channel(heatmap: Heatmap, channel: int | str) -> int:
    if isinstance(channel, str):
        if channel not in heatmap.class_names:
            raise HeatmapError(
                f"Heatmap '{heatmap.run_id}' has no class '{channel}' "
                f"(it has: {', '.join(heatmap.class_names)})."
            )
        return heatmap.class_names.index(channel)
    if not 0 <= int(channel) < len(heatmap.class_names):
        raise HeatmapError(f"Heatmap '{heatmap.run_id}' has no channel {channel}.")
    return int(channel)
