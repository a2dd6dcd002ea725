"""Slide-level predictions from heatmaps, and their table: ``predictions.csv``.

A slide's **scores** are one number per class: by default the mean of the ``k`` highest
patch scores of that class (:func:`top_k_scores`), or whatever the run's slide aggregation
gives. Its **probabilities** (:func:`slide_probabilities`) turn the scores into a distribution:
with a background class (e.g. ``normal``), each other class keeps its score and the
background gets ``1 − the highest other score``; the result is normalised to sum to 1. The
**prediction** is the most probable class; the **uncertainty** is the normalised entropy of
the probabilities (0 = certain, 1 = uniform); slide scores that already are a distribution
(a MIL run's) are only normalised. The **peak** is the level-0 centre of the
highest cell of the predicted class, or of the most probable non-background class when the
background is predicted (the most suspicious region).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from napari_wsi_ml.annotations.atomic import atomic_write_text
from napari_wsi_ml.errors import HeatmapError
from napari_wsi_ml.evaluation.slides import top_k_mean
from napari_wsi_ml.inference.heatmap import Heatmap

SCORE_PREFIX = "score:"
BASE_COLUMNS = (
    "slide", "path", "fingerprint", "label", "predicted", "uncertainty", "peak_x", "peak_y",
    "heatmap",
)  # fmt: skip
"""Columns of ``predictions.csv`` before the ``score:<class>`` columns (one per class)."""


@dataclass(frozen=True)
class SlidePrediction:
    """A model's verdict on one slide.

    Attributes:
        slide: Slide id.
        path: The slide file.
        fingerprint: The slide's :attr:`~napari_wsi_ml.slide.Slide.fingerprint`.
        scores: Class → slide score.
        predicted: The predicted class.
        label: The true label, when known.
        uncertainty: Normalised entropy of the slide probabilities, in [0, 1].
        peak_xy: Level-0 ``(x, y)`` centre of the most suspicious cell.
        heatmap: The heatmap file, when one was written.
    """

    slide: str
    path: Path
    fingerprint: str
    scores: dict[str, float]
    predicted: str
    label: str | None
    uncertainty: float
    peak_xy: tuple[float, float]
    heatmap: Path | None = None

    @property
    def correct(self) -> bool | None:
        """Whether the prediction equals the label (None without a label)."""
        return None if self.label is None else self.predicted == self.label


def top_k_scores(heatmap: Heatmap, k: int = 5) -> dict[str, float]:
    """Per class, the mean of the ``k`` highest scored cells (NaN cells ignored).

    Raises:
        HeatmapError: No cell was scored (no tissue patch).
    """
    values = heatmap.values.reshape(-1, len(heatmap.class_names))
    scored = values[np.isfinite(values).all(axis=1)]
    if len(scored) == 0:
        raise HeatmapError(
            f"Heatmap '{heatmap.run_id}' has no scored patch, so the slide has no score: no "
            "patch held enough tissue. Lower min_tissue, or check the slide's tissue detection."
        )
    return {name: top_k_mean(scored[:, i], k) for i, name in enumerate(heatmap.class_names)}


def slide_probabilities(scores: Mapping[str, float], background: str | None) -> dict[str, float]:
    """Slide scores as a probability distribution over the classes (see the module docstring)."""
    names = list(scores)
    raw = np.clip(np.array([float(scores[n]) for n in names]), 0.0, None)
    if background in scores and len(names) > 1:
        others = [i for i, n in enumerate(names) if n != background]
        raw[names.index(background)] = max(0.0, 1.0 - raw[others].max())
    total = raw.sum()
    probs = raw / total if total > 0 else np.full(len(names), 1.0 / len(names))
    return dict(zip(names, probs.tolist(), strict=True))


def normalised_entropy(probabilities: Iterable[float]) -> float:
    """Entropy of a distribution divided by its maximum (``log C``): 0 certain, 1 uniform."""
    p = np.asarray(list(probabilities), dtype=np.float64)
    n = len(p)
    if n < 2:
        return 0.0
    p = p[p > 0]
    return max(0.0, float(-(p * np.log(p)).sum() / math.log(n)))


def peak_cell_centre(heatmap: Heatmap, class_name: str) -> tuple[float, float]:
    """Level-0 ``(x, y)`` centre of the highest scored cell of ``class_name``."""
    values = heatmap.channel(class_name)
    if not np.isfinite(values).any():
        raise HeatmapError(f"Heatmap '{heatmap.run_id}' has no scored cell of '{class_name}'.")
    row, col = np.unravel_index(np.nanargmax(values), values.shape)
    return (
        heatmap.origin[0] + col * heatmap.stride[0] + heatmap.patch_size[0] / 2,
        heatmap.origin[1] + row * heatmap.stride[1] + heatmap.patch_size[1] / 2,
    )


def predict_slide(
    heatmap: Heatmap,
    *,
    slide: str,
    path: str | os.PathLike[str],
    scores: Mapping[str, float] | None = None,
    background: str | None = None,
    label: str | None = None,
    heatmap_path: str | os.PathLike[str] | None = None,
    top_k: int = 5,
    distribution: bool = False,
) -> SlidePrediction:
    """The :class:`SlidePrediction` of one slide from its heatmap.

    Args:
        heatmap: The slide's heatmap.
        slide: Slide id.
        path: The slide file.
        scores: Class → slide score from the run's own aggregation; default
            :func:`top_k_scores` with ``top_k``.
        background: The background (negative) class, if the classes have one.
        label: The slide's true label, if known.
        heatmap_path: Where the heatmap was saved.
        top_k: ``k`` of the default aggregation.
        distribution: The scores already are a probability distribution over the classes
            (e.g. a MIL slide prediction): they are only normalised, without the background
            rule of :func:`slide_probabilities`.
    """
    scores = dict(scores) if scores is not None else top_k_scores(heatmap, top_k)
    probs = slide_probabilities(scores, None if distribution else background)
    predicted = max(probs, key=lambda name: probs[name])
    suspicious = predicted
    if predicted == background and len(probs) > 1:
        suspicious = max((n for n in probs if n != background), key=lambda n: probs[n])
    return SlidePrediction(
        slide=slide,
        path=Path(path),
        fingerprint=heatmap.slide_fingerprint,
        scores={name: float(value) for name, value in scores.items()},
        predicted=predicted,
        label=label or None,
        uncertainty=normalised_entropy(probs.values()),
        peak_xy=peak_cell_centre(heatmap, suspicious),
        heatmap=None if heatmap_path is None else Path(heatmap_path),
    )


# -- predictions.csv -------------------------------------------------------------------------
def write_predictions(predictions: Sequence[SlidePrediction], path: str | os.PathLike[str]) -> Path:
    """Write ``predictions.csv`` atomically; slide and heatmap paths relative to its folder when
    inside it, else absolute.

    Columns: :data:`BASE_COLUMNS`, then ``score:<class>`` for every class in order of first
    appearance (empty where a slide has no score for it). Numbers are written exactly.
    """
    path = Path(path)
    classes = list(dict.fromkeys(name for p in predictions for name in p.scores))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*BASE_COLUMNS, *(SCORE_PREFIX + c for c in classes)])
    for p in predictions:
        writer.writerow(
            [
                p.slide, _relative(p.path, path.parent), p.fingerprint, p.label or "", p.predicted,
                repr(float(p.uncertainty)), repr(float(p.peak_xy[0])), repr(float(p.peak_xy[1])),
                "" if p.heatmap is None else _relative(p.heatmap, path.parent),
                *(repr(float(p.scores[c])) if c in p.scores else "" for c in classes),
            ]
        )  # fmt: skip
    return atomic_write_text(path, [buffer.getvalue()])


def _relative(target: Path, folder: Path) -> str:
    try:
        return str(Path(target).resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(Path(target).resolve())


def read_predictions(path: str | os.PathLike[str]) -> list[SlidePrediction]:
    """Read a ``predictions.csv`` written by :func:`write_predictions`.

    Raises:
        HeatmapError: The file is missing, unreadable, lacks columns or holds a bad value
            (naming the line and column).
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except FileNotFoundError as error:
        raise HeatmapError(f"{path}: no such predictions file.") from error
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise HeatmapError(
            f"{path}: not a readable predictions file ({error}). Run `napari-wsi-ml infer` again."
        ) from error
    if not rows:
        raise HeatmapError(
            f"{path}: empty file; expected a header row ({', '.join(BASE_COLUMNS)})."
        )
    header = rows[0]
    missing = [c for c in BASE_COLUMNS if c not in header]
    if missing:
        raise HeatmapError(
            f"{path}: not a predictions file: it lacks the column(s) {', '.join(missing)}. "
            "Give the predictions.csv written by `napari-wsi-ml infer`."
        )
    classes = [c[len(SCORE_PREFIX) :] for c in header if c.startswith(SCORE_PREFIX)]
    return [_row(path, number, header, row, classes) for number, row in enumerate(rows[1:], 2)]


def _row(
    path: Path, number: int, header: list[str], row: list[str], classes: list[str]
) -> SlidePrediction:
    if len(row) != len(header):
        raise HeatmapError(
            f"{path}, line {number}: {len(row)} fields for {len(header)} columns; the file is "
            "damaged. Run `napari-wsi-ml infer` again."
        )
    cell = dict(zip(header, row, strict=True))

    def number_of(column: str) -> float:
        try:
            return float(cell[column])
        except ValueError:
            raise HeatmapError(
                f"{path}, line {number}: column '{column}' holds {cell[column]!r}, not a number."
            ) from None

    scores = {c: number_of(SCORE_PREFIX + c) for c in classes if cell[SCORE_PREFIX + c] != ""}
    heatmap = cell["heatmap"]
    return SlidePrediction(
        slide=cell["slide"],
        path=_resolve(path.parent, cell["path"]),
        fingerprint=cell["fingerprint"],
        scores=scores,
        predicted=cell["predicted"],
        label=cell["label"] or None,
        uncertainty=number_of("uncertainty"),
        peak_xy=(number_of("peak_x"), number_of("peak_y")),
        heatmap=None if not heatmap else _resolve(path.parent, heatmap),
    )


def _resolve(folder: Path, text: str) -> Path:
    target = Path(text)
    return target if target.is_absolute() else folder / target
