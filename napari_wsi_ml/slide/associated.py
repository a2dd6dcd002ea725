"""Lazy access to a slide's associated images (label, macro, thumbnail ...)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import openslide

from napari_wsi_ml.errors import SlideError
from napari_wsi_ml.slide.openslide_tiles import composite_on_white


class AssociatedImages(Mapping[str, np.ndarray]):
    """Mapping ``name -> RGB uint8 array``; an image is decoded only when it is accessed."""

    def __init__(self, osr: openslide.OpenSlide, path: Path) -> None:
        self._osr = osr
        self._path = path
        self._names = tuple(osr.associated_images.keys())

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._names:
            raise KeyError(name)
        try:
            image = self._osr.associated_images[name]
        except openslide.OpenSlideError as error:
            raise SlideError(
                f"Cannot decode the associated image '{name}' of slide '{self._path}': {error}. "
                "The slide's pyramid may still be readable; re-export the slide to repair it."
            ) from error
        return composite_on_white(np.asarray(image.convert("RGBA")))

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)
