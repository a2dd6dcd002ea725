"""File ▸ Open Sample: a synthetic H&E slide with two raters' annotations and a heatmap.

The slide is generated once (deterministic seed) into the user cache directory
(``~/.cache/napari-wsi-ml/sample`` on Linux; ``NAPARI_WSI_ML_SAMPLE_DIR`` overrides it) and
reused afterwards.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SAMPLE_SEED = 7
SAMPLE_SIZE = (16384, 12288)  # level-0 (width, height): 4.1 × 3.1 mm at 0.25 µm/px
SAMPLE_NAME = "sample_he"
SAMPLE_RATERS = 2
RATER_COLOURS = ("#00E5FF", "#76FF03", "#FFFFFF")  # cyan, lime, white: distinct on H&E
RATER_EDGE_UM = 8.0  # outline width, in µm, so it stays visible at slide-wide zoom
HEATMAP_PATCH = 256  # level-0 px (64 µm at 0.25 µm/px)
HEATMAP_STRIDE = 128
FOCUS_MARGIN = 0.12  # fraction of the lesions' extent added around them in the demo view
LayerDataTuple = tuple[Any, dict[str, Any], str]


@dataclass(frozen=True)
class SampleFiles:
    """The sample slide and its raters' ASAP XML files (``<slide stem>.<rater>.xml``)."""

    slide_path: Path
    rater_paths: dict[str, Path]


def sample_dir() -> Path:
    """Where the sample lives: ``$NAPARI_WSI_ML_SAMPLE_DIR`` or the user cache directory."""
    override = os.environ.get("NAPARI_WSI_ML_SAMPLE_DIR")
    if override:
        return Path(override)
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("napari-wsi-ml")) / "sample"


def _existing(directory: Path) -> SampleFiles | None:
    slide = directory / f"{SAMPLE_NAME}.svs"
    raters = sorted(directory.glob(f"{SAMPLE_NAME}.rater*.xml"))
    if not slide.is_file() or len(raters) < SAMPLE_RATERS:
        return None
    names = [path.name[len(SAMPLE_NAME) + 1 : -len(".xml")] for path in raters]
    return SampleFiles(slide, dict(zip(names, raters, strict=True)))


def ensure_sample(
    directory: Path | None = None, *, size: tuple[int, int] = SAMPLE_SIZE
) -> SampleFiles:
    """The sample's files, generating them first if they are not there yet.

    Generation writes into a temporary folder beside ``directory`` and renames it, so an
    interrupted run never leaves a half-written sample behind.
    """
    from napari_wsi_ml.synthetic.slide import generate_slide, write_annotations

    directory = sample_dir() if directory is None else Path(directory)
    found = _existing(directory)
    if found is not None:
        return found
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".sample-", dir=directory.parent))
    try:
        truth = generate_slide(
            staging / f"{SAMPLE_NAME}.svs",
            width=size[0],
            height=size[1],
            seed=SAMPLE_SEED,
            downsample=4,
            tumour="large",
        )
        write_annotations(truth, n_raters=SAMPLE_RATERS, seed=SAMPLE_SEED)
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    found = _existing(directory)
    if found is None:  # pragma: no cover - generate_slide wrote something else
        raise RuntimeError(f"sample generation in {directory} did not produce the expected files")
    return found


def rater_layer_data(slide: Any, rater: str, path: Path, colour: str) -> LayerDataTuple:
    """One rater's annotations as a Shapes layer: outlines in the rater's own colour."""
    from napari_wsi_ml.viewer.view import annotation_layer_for

    data, kwargs, layer_type = annotation_layer_for(slide, path)
    count = len(data)
    edge = np.tile(
        np.array([int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)] + [1.0]), (count, 1)
    )
    mpp = slide.mpp[0] if slide.mpp is not None else 1.0
    kwargs.update(
        name=rater,
        edge_color=edge.reshape(-1, 4),
        face_color=np.zeros((count, 4)),
        edge_width=RATER_EDGE_UM / mpp,
    )
    return data, kwargs, layer_type


def sample_layer_data(files: SampleFiles) -> list[LayerDataTuple]:
    """Slide image, hematoxylin-density heatmap, then one Shapes layer per rater."""
    from napari_wsi_ml.inference import hematoxylin_density_heatmap
    from napari_wsi_ml.slide import open_slide
    from napari_wsi_ml.viewer.heatmap_layer import heatmap_layer_data
    from napari_wsi_ml.viewer.slide_layer import slide_layer_data

    slide = open_slide(files.slide_path)
    heatmap = hematoxylin_density_heatmap(slide, HEATMAP_PATCH, HEATMAP_STRIDE)
    layers = [slide_layer_data(slide), heatmap_layer_data(heatmap, slide, opacity=0.45)]
    for (rater, path), colour in zip(files.rater_paths.items(), RATER_COLOURS, strict=False):
        layers.append(rater_layer_data(slide, rater, path, colour))
    return layers


def focus_box_xy(files: SampleFiles) -> tuple[tuple[float, float], tuple[float, float]]:
    """Level-0 ``((x0, y0), (x1, y1))`` around every lesion the raters drew, with a margin."""
    from napari_wsi_ml.annotations import read_asap

    points = np.concatenate(
        [
            annotation.coordinates
            for path in files.rater_paths.values()
            for annotation in read_asap(path)
            if len(annotation.coordinates)
        ]
    )
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    mx, my = FOCUS_MARGIN * (x1 - x0), FOCUS_MARGIN * (y1 - y0)
    return (x0 - mx, y0 - my), (x1 + mx, y1 + my)


def sample_slide_with_raters() -> list[LayerDataTuple]:
    """npe2 sample data: the synthetic slide, its heatmap and two raters' annotations."""
    return sample_layer_data(ensure_sample())
