"""Write a scene as an Aperio-style pyramidal, tiled JPEG SVS, tile by tile.

Page layout, as Aperio scanners write it and OpenSlide's ``aperio`` driver reads it: level 0
(tiled, ImageDescription ``Aperio Image Library …|MPP = …|AppMag = …``), a stripped thumbnail,
the other levels (tiled), then a stripped ``label`` image. No level is ever held in memory: tiles
are rendered on a few threads, a bounded number ahead of the one being written.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
import tifffile

from napari_wsi_ml.errors import SaveError
from napari_wsi_ml.synthetic.render import render_region
from napari_wsi_ml.synthetic.scene import Scene

TILE = 256
BLOCK_TILES = 4  # tiles rendered side by side in one call
APERIO_HEADER = "Aperio Image Library v12.0.0"
SUBSAMPLING = (2, 2)  # JPEG chroma subsampling, stored as YCbCr like Aperio's own files


def level_dimensions(
    width: int, height: int, downsample: int, min_size: int = 512
) -> list[tuple[int, int]]:
    """``(w, h)`` per level: level ``l`` has ``ceil(size / downsample**l)`` pixels a side.

    Levels are added until the largest side is at most ``min_size``.
    """
    dims = [(width, height)]
    while max(dims[-1]) > min_size:
        factor = downsample ** len(dims)
        dims.append((math.ceil(width / factor), math.ceil(height / factor)))
    return dims


def _ordered_map(fn: Callable, items: list, workers: int, ahead: int) -> Iterator:
    """``map(fn, items)`` on a thread pool, in order, with at most ``ahead`` items in flight."""
    if workers <= 1:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future] = deque()
        it = iter(items)
        for item in it:
            pending.append(pool.submit(fn, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _level_tiles(
    scene: Scene,
    dims: tuple[int, int],
    downsample: int,
    quality: int,
    workers: int,
    on_tile: Callable[[int], None] | None,
) -> Iterator[bytes]:
    """The level's JPEG-encoded tiles in row-major order (edge tiles padded to full size).

    Tiles are rendered and encoded on ``workers`` threads (numpy, OpenCV and the JPEG encoder
    release the GIL); a tile of bare glass is encoded once per level.
    """
    cols, rows = math.ceil(dims[0] / TILE), math.ceil(dims[1] / TILE)
    blocks = [(r, c) for r in range(rows) for c in range(0, cols, BLOCK_TILES)]
    glass: dict[str, bytes] = {}

    def encode(tile: np.ndarray) -> bytes:
        return imagecodecs.jpeg_encode(
            tile, level=quality, subsampling=SUBSAMPLING, colorspace="RGB", outcolorspace="YCBCR"
        )

    def render(block: tuple[int, int]) -> list[bytes]:
        r, c = block
        n = min(BLOCK_TILES, cols - c)
        region = render_region(scene, c * TILE, r * TILE, n * TILE, TILE, downsample)
        if not region.flags.writeable:  # shared bare-glass array: encode one tile, once
            if "tile" not in glass:
                glass["tile"] = encode(np.ascontiguousarray(region[:, :TILE]))
            return [glass["tile"]] * n
        tiles = (region[:, k * TILE : (k + 1) * TILE] for k in range(n))
        return [encode(np.ascontiguousarray(tile)) for tile in tiles]

    for encoded in _ordered_map(render, blocks, workers, ahead=4 * workers):
        if on_tile is not None:
            on_tile(len(encoded))  # before yielding: the writer stops pulling after the last tile
        yield from encoded


def _label_image(text: str) -> np.ndarray:
    """A white slide label with the slide's name and a fake barcode."""
    label = np.full((400, 400, 3), 250, dtype=np.uint8)
    cv2.putText(label, text[:14], (20, 80), cv2.FONT_HERSHEY_SIMPLEX, 1.3, (20, 20, 20), 3)
    bars = np.frombuffer(text.encode().ljust(24, b"_")[:24], dtype=np.uint8)
    for i, value in enumerate(np.unpackbits(bars)[:176]):
        if value:
            label[180:340, 24 + 2 * i : 26 + 2 * i] = 0
    return label


def write_svs(
    path: str | os.PathLike,
    scene: Scene,
    *,
    downsample: int = 2,
    quality: int = 85,
    min_level_size: int = 512,
    workers: int | None = None,
    on_tile: Callable[[int], None] | None = None,
) -> list[tuple[int, int]]:
    """Render ``scene`` into a pyramidal Aperio SVS at ``path`` (atomically).

    Args:
        path: Output file (``.svs``).
        scene: What to draw.
        downsample: Pyramid factor between levels, 2 or 4.
        quality: JPEG quality.
        min_level_size: Stop adding levels once the largest side is at most this.
        workers: Render threads (default: the CPU count, at most 4).
        on_tile: Called with the number of tiles just rendered (for progress bars).

    Returns:
        ``(w, h)`` of every level.

    Raises:
        SaveError: The file could not be written (no partial file is left behind).
    """
    if downsample not in (2, 4):
        raise ValueError(f"downsample must be 2 or 4, got {downsample}")
    workers = workers or min(4, os.cpu_count() or 1)
    path = Path(path)
    width, height = scene.width, scene.height
    dims = level_dimensions(width, height, downsample, min_level_size)
    magnification = 10.0 / scene.mpp
    base = f"{width}x{height} [0,0 {width}x{height}] ({TILE}x{TILE})"
    level0_description = (
        f"{APERIO_HEADER}\r\n{base} JPEG/RGB Q={quality}|AppMag = {magnification:g}"
        f"|MPP = {scene.mpp:g}|ScanScope ID = SYNTHETIC|Filename = {path.stem}"
        f"|OriginalWidth = {width}|OriginalHeight = {height}|Site = {scene.site}"
    )
    common = {
        "photometric": "rgb",
        "compression": "jpeg",
        "compressionargs": {"level": quality},
        "subsampling": SUBSAMPLING,
        "metadata": None,
        "maxworkers": workers,
        "resolutionunit": "CENTIMETER",
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tifffile.TiffWriter(tmp, bigtiff=width * height > 2**28) as tif:
            for level, (w, h) in enumerate(dims):
                factor = downsample**level
                description = level0_description
                if level > 0:
                    description = f"{APERIO_HEADER}\r\n{base} -> {w}x{h} JPEG/RGB Q={quality}"
                tif.write(
                    _level_tiles(scene, (w, h), factor, quality, workers, on_tile),
                    shape=(h, w, 3),
                    dtype=np.uint8,
                    tile=(TILE, TILE),
                    description=description,
                    resolution=(1e4 / (scene.mpp * factor), 1e4 / (scene.mpp * factor)),
                    subfiletype=0,
                    **common,
                )
                if level == 0:
                    _write_thumbnail(tif, scene, base, common)
            label = _label_image(path.stem)
            tif.write(
                label,
                description=f"{APERIO_HEADER}\r\nlabel {label.shape[1]}x{label.shape[0]}",
                subfiletype=1,
                rowsperstrip=16,
                **{**common, "resolutionunit": None},
            )
        os.replace(tmp, path)
    except OSError as error:
        raise SaveError(
            f"Cannot write the synthetic slide {path}: {error.strerror or error}. "
            "Choose a writable folder with enough free space."
        ) from error
    finally:
        if tmp.exists():
            tmp.unlink()
    return dims


def _write_thumbnail(tif: tifffile.TiffWriter, scene: Scene, base: str, common: dict) -> None:
    """The stripped thumbnail page that follows level 0 in Aperio files."""
    step = max(1, math.ceil(max(scene.width, scene.height) / 768))
    w, h = math.ceil(scene.width / step), math.ceil(scene.height / step)
    thumbnail = render_region(scene, 0, 0, w, h, step)
    tif.write(
        thumbnail,
        description=f"{APERIO_HEADER}\r\n{base} -> {w}x{h} - thumbnail",
        subfiletype=1,
        rowsperstrip=16,
        **{**common, "resolutionunit": None},
    )
