"""Writing small Aperio-style pyramids with chosen level sizes, mpp and magnification."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tifffile


def write_pyramid(
    path: Path,
    base: np.ndarray,
    factors: tuple[int, ...],
    *,
    mpp: float | None = 0.25,
    magnification: int | None = 40,
) -> Path:
    """Write ``base`` as an Aperio-style tiled JPEG pyramid with level sizes ``size // f``."""
    height, width = base.shape[:2]
    fields = [f"{width}x{height} (256x256) JPEG/RGB Q=90"]
    if magnification is not None:
        fields.append(f"AppMag = {magnification}")
    if mpp is not None:
        fields.append(f"MPP = {mpp}")
    description = "Aperio Image Library v12.0.0\n" + "|".join(fields)
    with tifffile.TiffWriter(path) as tif:
        for index, factor in enumerate(factors):
            size = (width // factor, height // factor)
            level = base if factor == 1 else cv2.resize(base, size, interpolation=cv2.INTER_AREA)
            tif.write(
                level,
                tile=(256, 256),
                compression="jpeg",
                compressionargs={"level": 90},
                photometric="rgb",
                description=description if index == 0 else None,
                subfiletype=0 if index == 0 else 1,
                metadata=None,
            )
    return path
