"""A small pyramidal TIFF with an odd downsample and a known nucleus-dense square."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tifffile

WIDTH, HEIGHT = 3001, 2003  # odd sizes: level downsamples 3.0 / 3.0010…, not powers of two
DOWNSAMPLE = 3
MPP = 0.5
DENSE_BOX_XY = (1000, 600, 2200, 1500)  # x0, y0, x1, y1 level-0 px: purple (hematoxylin-rich)
PINK, PURPLE, GLASS = (225, 150, 190), (80, 40, 130), (245, 245, 245)
TISSUE_BOX_XY = (300, 200, 2800, 1800)


def render(width: int, height: int) -> np.ndarray:
    """The image at a level: glass, a pink tissue rectangle and a purple dense box inside."""
    ys = (np.arange(height) + 0.5) * (HEIGHT / height)
    xs = (np.arange(width) + 0.5) * (WIDTH / width)
    yy, xx = np.meshgrid(ys, xs, indexing="ij")
    image = np.empty((height, width, 3), np.uint8)
    image[:] = GLASS

    def inside(box: tuple[int, int, int, int]) -> np.ndarray:
        return (xx >= box[0]) & (xx < box[2]) & (yy >= box[1]) & (yy < box[3])

    image[inside(TISSUE_BOX_XY)] = PINK
    image[inside(DENSE_BOX_XY)] = PURPLE
    return image


def write_odd_pyramid(path: Path) -> Path:
    """Write a generic tiled TIFF (3 levels, downsample ≈ 3) that OpenSlide opens, mpp 0.5."""
    with tifffile.TiffWriter(path) as writer:
        for level in range(3):
            width, height = WIDTH // DOWNSAMPLE**level, HEIGHT // DOWNSAMPLE**level
            writer.write(
                render(width, height),
                tile=(128, 128),
                compression="zlib",
                photometric="rgb",
                subfiletype=0 if level == 0 else 1,
                resolution=(1e4 / MPP, 1e4 / MPP),
                resolutionunit="CENTIMETER",
            )
    return path
    return path
