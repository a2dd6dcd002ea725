"""A slide as a napari multiscale image layer, and the scale shared by all layers of a slide.

Every layer that belongs to a slide (image, annotations, heatmaps, tissue) carries the slide's
fingerprint in ``metadata["slide_fingerprint"]`` and is drawn in the slide's world: continuous
level-0 pixels × mpp (µm), or × 1 (pixels) while the mpp is unknown.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from napari_wsi_ml.coords import image_translate, layer_scale

if TYPE_CHECKING:
    import napari
    from napari.layers import Layer

    from napari_wsi_ml.slide import Slide

FINGERPRINT_KEY = "slide_fingerprint"
KIND_KEY = "wsi_kind"
SLIDE_KIND = "slide"
MPP_UNKNOWN_MESSAGE = "mpp unknown — scale is in pixels; set it in the Slide panel"


def layer_units(mpp: Sequence[float] | None) -> tuple[str, str]:
    """napari ``units`` of a slide's layers: micrometres when the mpp is known, else pixels."""
    return ("um", "um") if mpp is not None else ("pixel", "pixel")


def slide_metadata(slide: Slide) -> dict[str, Any]:
    """The metadata every layer of ``slide`` carries (the slide object itself only on its image)."""
    return {
        FINGERPRINT_KEY: slide.fingerprint,
        "slide_path": str(slide.path),
        "slide_name": slide.name,
        "mpp": None if slide.mpp is None else tuple(float(v) for v in slide.mpp),
    }


def slide_layer_data(slide: Slide) -> tuple[list[Any], dict[str, Any], str]:
    """napari layer data ``(levels, kwargs, "image")`` for ``slide``; reads no pixels.

    The contrast limits are fixed to the uint8 range so that napari never computes statistics
    over the full-resolution level.
    """
    metadata = {**slide_metadata(slide), KIND_KEY: SLIDE_KIND, "slide": slide}
    kwargs = {
        "name": slide.name,
        "multiscale": True,
        "rgb": True,
        "contrast_limits": (0, 255),
        "scale": layer_scale(slide.mpp),
        "translate": image_translate(slide.mpp),
        "units": layer_units(slide.mpp),
        "metadata": metadata,
    }
    return list(slide.levels), kwargs, "image"


def tag_layer_data(
    layer_data: tuple[Any, dict[str, Any], str], slide: Slide, kind: str
) -> tuple[Any, dict[str, Any], str]:
    """Attach ``slide``'s fingerprint, mpp and units to the kwargs of another layer tuple."""
    data, kwargs, layer_type = layer_data
    metadata = {**kwargs.get("metadata", {}), **slide_metadata(slide), KIND_KEY: kind}
    return data, {**kwargs, "metadata": metadata, "units": layer_units(slide.mpp)}, layer_type


def layers_of_slide(viewer: napari.Viewer, fingerprint: str) -> Iterator[Layer]:
    """Every layer of the viewer that belongs to the slide with ``fingerprint``."""
    for layer in viewer.layers:
        if layer.metadata.get(FINGERPRINT_KEY) == fingerprint:
            yield layer


def slide_image_layers(viewer: napari.Viewer) -> list[Layer]:
    """The viewer's slide image layers, in layer order."""
    return [layer for layer in viewer.layers if layer.metadata.get(KIND_KEY) == SLIDE_KIND]


def active_slide_layer(viewer: napari.Viewer) -> Layer | None:
    """The slide image layer of the selected layer's slide, else the topmost slide layer."""
    slides = slide_image_layers(viewer)
    active = viewer.layers.selection.active
    if active is not None:
        fingerprint = active.metadata.get(FINGERPRINT_KEY)
        for layer in slides:
            if layer.metadata[FINGERPRINT_KEY] == fingerprint:
                return layer
    return slides[-1] if slides else None


def set_slide_mpp(viewer: napari.Viewer, fingerprint: str, mpp: Sequence[float]) -> int:
    """Give every layer of a slide a new mpp ``(x, y)``; returns how many layers changed.

    Every such layer maps level-0 pixels to world by ``× mpp``, so scale and translate are
    multiplied by ``new mpp / old mpp`` (exact for images, shapes and heatmaps alike).
    """
    if len(mpp) != 2 or min(mpp) <= 0:
        raise ValueError(f"mpp must be two positive numbers (x, y), got {mpp!r}")
    new_mpp = (float(mpp[0]), float(mpp[1]))
    changed = 0
    for layer in list(layers_of_slide(viewer, fingerprint)):
        old_row, old_col = layer_scale(layer.metadata.get("mpp"))
        new_row, new_col = layer_scale(new_mpp)
        factor = (new_row / old_row, new_col / old_col)
        scale, translate = list(layer.scale), list(layer.translate)
        for axis, ratio in zip((-2, -1), factor, strict=True):
            scale[axis] *= ratio
            translate[axis] *= ratio
        layer.scale = scale
        layer.translate = translate
        layer.units = ("um",) * layer.ndim
        layer.metadata["mpp"] = new_mpp
        changed += 1
    return changed


def show_scale_bar(viewer: napari.Viewer) -> None:
    """Turn the scale bar on (it follows the layers' units: µm/mm, or pixels)."""
    canvas = getattr(viewer, "canvas", None)  # napari ≥ 0.9 keeps overlays on the canvas
    scale_bar = canvas.overlays.scale_bar if canvas is not None else viewer.scale_bar
    scale_bar.visible = True
    scale_bar.ticks = False
    scale_bar.box = True
