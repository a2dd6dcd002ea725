"""How much ink, tumour and normal tissue the whole-slide ink mask paints white.

Every slide of synthetic cohorts (with ``<slide>.truth.geojson`` beside it: tissue, tumour and
pen polygons) is downscaled as the whole-slide CNN does (``--mpp``, canvas ``--canvas``); each
output pixel is classed by where its centre lies in the truth, and the share of each class
found by :func:`~napari_wsi_ml.training.whole_slide_data.ink_mask` is printed as a Markdown
table, beside the hue rule of tissue detection (:func:`~napari_wsi_ml.slide.tissue.pen_mask`,
dilated the same way) for comparison. Pixels within two output pixels of a stroke are counted
apart: they are partly inked.

    .venv/bin/python benchmarks/bench_whole_slide_ink.py /work/cohorts/wsl36 /work/cohorts/wsl_ext
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import shapely
from shapely.geometry import shape

from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.slide.tissue import pen_mask
from napari_wsi_ml.training.whole_slide_data import downscale_slide, ink_mask, output_size

CLASSES = (
    ("tumour", "tumour (beyond the ink rim)"),
    ("normal", "normal tissue (beyond the ink rim)"),
    ("rim", "tissue within 2 px of ink"),
    ("ink_tissue", "ink on tissue"),
    ("ink_glass", "ink on glass"),
)


def _hue_rule(rgb: np.ndarray) -> np.ndarray:
    found = pen_mask(rgb).astype(np.uint8)
    return cv2.dilate(found, np.ones((3, 3), np.uint8)).astype(bool)


def _truth(path: Path) -> dict[str, shapely.Geometry]:
    features = json.loads(path.read_text())["features"]
    parts: dict[str, list] = {"Tissue": [], "tumor": [], "pen": []}
    for feature in features:
        name = feature["properties"]["classification"]["name"]
        if name in parts:
            parts[name].append(shape(feature["geometry"]))
    return {name: shapely.unary_union(found) for name, found in parts.items()}


def slide_classes(svs: Path, mpp: float, canvas: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The downscaled image of ``svs`` and a boolean mask per class of :data:`CLASSES`."""
    truth = _truth(svs.with_name(f"{svs.stem}.truth.geojson"))
    with open_slide(svs) as slide:
        level0 = slide.level_dimensions[0]
        size = output_size(level0, mpp=slide.mpp, target_mpp=mpp, fit=(canvas, canvas))
        image = downscale_slide(slide, size)
    sx, sy = level0[0] / size[0], level0[1] / size[1]
    rows, cols = np.mgrid[: size[1], : size[0]]
    centres = ((cols + 0.5) * sx, (rows + 0.5) * sy)
    tissue = shapely.contains_xy(truth["Tissue"], *centres)
    tumour = shapely.contains_xy(truth["tumor"], *centres)
    ink = shapely.contains_xy(truth["pen"], *centres)
    rim = shapely.contains_xy(truth["pen"].buffer(2 * max(sx, sy)), *centres) & ~ink
    away = ~ink & ~rim
    return image, {
        "tumour": tumour & away,
        "normal": tissue & ~tumour & away,
        "rim": tissue & rim,
        "ink_tissue": ink & tissue,
        "ink_glass": ink & ~tissue,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("cohorts", nargs="+", type=Path, help="folders of *.svs + truth")
    parser.add_argument("--mpp", type=float, default=4.0, help="µm/px of the downscaled slide")
    parser.add_argument("--canvas", type=int, default=384, help="canvas side (px)")
    args = parser.parse_args()
    rules: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "ink_mask (whole-slide CNN)": ink_mask,
        "pen_mask hue rule, dilated": _hue_rule,
    }
    counts = {rule: {c: [0, 0] for c, _ in CLASSES} for rule in rules}
    started, slides, with_ink = time.perf_counter(), 0, 0
    for folder in args.cohorts:
        for svs in sorted(folder.glob("*.svs")):
            if not svs.with_name(f"{svs.stem}.truth.geojson").is_file():
                continue
            image, classes = slide_classes(svs, args.mpp, args.canvas)
            slides += 1
            with_ink += bool(classes["ink_tissue"].any() or classes["ink_glass"].any())
            for rule, found_by in rules.items():
                found = found_by(image)
                for name, where in classes.items():
                    counts[rule][name][0] += int(found[where].sum())
                    counts[rule][name][1] += int(where.sum())
    elapsed = time.perf_counter() - started
    print(f"{slides} slides ({with_ink} with a pen stroke) at {args.mpp:g} µm/px, "
          f"{elapsed:.1f} s\n")  # fmt: skip
    print("| pixels | " + " | ".join(rules) + " |")
    print("|---|" + "---:|" * len(rules))
    for name, label in CLASSES:
        cells = []
        for rule in rules:
            hit, total = counts[rule][name]
            cells.append(f"{hit:,} / {total:,} ({100 * hit / max(total, 1):.2f} %)")
        print(f"| {label} whitened | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
