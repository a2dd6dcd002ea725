"""A cohort's slide predictions for review: score, uncertainty, error, disagreement, ROC.

For a chosen class ``c`` a slide's **score** is its score of ``c``; its **error** is
``|[label = c] − score|`` when the label is known; its **disagreement** is ``1 − mean Dice``
between the model's polygons of ``c`` (its heatmap at a threshold, see
:func:`~napari_wsi_ml.inference.review.score_polygons`) and each rater's annotations of the
matching class, when raters' files lie beside the slide (``<slide stem>.<rater>.xml`` or
``.geojson``; the ``truth``, ``model`` and recovery files are not raters).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from napari_wsi_ml.annotations import read_annotations
from napari_wsi_ml.evaluation.roc import RocBand, roc_with_band
from napari_wsi_ml.inference.heatmap import Heatmap
from napari_wsi_ml.inference.predictions import SlidePrediction
from napari_wsi_ml.inference.review import (
    MODEL_RATER,
    PolygonOptions,
    matching_class,
    model_annotations,
    model_disagreement,
    positive_class,
)

PREDICTIONS_FILE = "predictions.csv"
NOT_RATERS = ("truth", MODEL_RATER)
RATER_SUFFIXES = (".xml", ".geojson")


@dataclass(frozen=True)
class CohortRow:
    """One slide's row of the review table (None where unknown)."""

    index: int
    slide: str
    label: str | None
    predicted: str
    score: float | None
    uncertainty: float
    error: float | None


def predictions_file(path: str | os.PathLike[str]) -> Path:
    """``path`` itself, or ``path/predictions.csv`` when ``path`` is a folder."""
    path = Path(path)
    return path / PREDICTIONS_FILE if path.is_dir() else path


def resolve_slide_paths(
    predictions: Sequence[SlidePrediction], table: str | os.PathLike[str]
) -> list[SlidePrediction]:
    """Predictions whose relative slide paths that do not exist from here are taken relative
    to the table's folder instead (when the slide is there)."""
    folder = Path(table).parent
    resolved = []
    for p in predictions:
        path = Path(p.path)
        if not path.is_absolute() and not path.exists() and (folder / path).exists():
            p = replace(p, path=folder / path)
        resolved.append(p)
    return resolved


def score_classes(predictions: Sequence[SlidePrediction]) -> list[str]:
    """Every class with a score, in order of first appearance."""
    return list(dict.fromkeys(name for p in predictions for name in p.scores))


def default_class(predictions: Sequence[SlidePrediction]) -> str | None:
    """The class to sort by first: the first that is not the background."""
    classes = score_classes(predictions)
    return classes[positive_class(classes)] if classes else None


def cohort_rows(predictions: Sequence[SlidePrediction], class_name: str) -> list[CohortRow]:
    """Score, uncertainty and error of every slide for ``class_name``."""
    rows = []
    for index, p in enumerate(predictions):
        score = p.scores.get(class_name)
        error = None
        if score is not None and p.label is not None:
            error = abs(float(p.label == class_name) - score)
        rows.append(CohortRow(index, p.slide, p.label, p.predicted, score, p.uncertainty, error))
    return rows


def rater_files(slide_path: str | os.PathLike[str]) -> list[Path]:
    """Raters' annotation files beside a slide: ``<stem>.<rater>.xml`` / ``.geojson``."""
    path = Path(slide_path)
    found = []
    for candidate in sorted(path.parent.glob(f"{glob.escape(path.stem)}.*")):
        if candidate.suffix.lower() not in RATER_SUFFIXES:
            continue
        rater = candidate.name[len(path.stem) + 1 : -len(candidate.suffix)]
        if rater and "." not in rater and rater.lower() not in NOT_RATERS:
            found.append(candidate)
    return found


def slide_disagreement(
    prediction: SlidePrediction, class_name: str, threshold: float
) -> tuple[float, dict[str, float]] | None:
    """``1 − mean Dice`` of the model's ``class_name`` polygons against the slide's raters,
    and the Dice per rater; None without a heatmap or without raters' files.

    Raises:
        WsiMlError: The heatmap or an annotation file cannot be read, or the classes cannot
            be compared.
    """
    files = rater_files(prediction.path)
    if prediction.heatmap is None or not files:
        return None
    heatmap = Heatmap.load(prediction.heatmap)
    raters = []
    for path in files:
        annotation_set = read_annotations(path)
        annotation_set.rater = path.name[len(Path(prediction.path).stem) + 1 :].rsplit(".", 1)[0]
        raters.append(annotation_set)
    names = sorted({a.group for r in raters for a in r if a.group})
    group = matching_class(class_name, names) or class_name
    model = model_annotations(heatmap, {class_name: group}, PolygonOptions(threshold=threshold))
    return model_disagreement(model, raters, group)


def roc_curves(
    predictions: Sequence[SlidePrediction], classes: Sequence[str] | None = None
) -> dict[str, RocBand]:
    """One-vs-rest ROC with its band of each class that has labelled positives and negatives.

    With two classes of which one is the background only the other one is drawn (its curve
    mirrors the background's).
    """
    classes = list(classes) if classes is not None else score_classes(predictions)
    if len(classes) == 2:
        classes = [classes[positive_class(classes)]]
    curves = {}
    for name in classes:
        known = [p for p in predictions if p.label is not None and name in p.scores]
        labels = np.array([p.label == name for p in known], dtype=bool)
        if labels.all() or not labels.any():
            continue
        scores = np.array([p.scores[name] for p in known], dtype=np.float64)
        curves[name] = roc_with_band(labels, scores)
    return curves
