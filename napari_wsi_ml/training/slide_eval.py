"""Slide-level evaluation of the weakly supervised tasks: metrics, strata, figures.

:func:`slide_report` takes the slides' true class indices and predicted class probabilities
and returns accuracy, balanced accuracy, per-class recall, per-class one-vs-rest AUC with its
DeLong 95 % interval, the macro AUC and the confusion matrix (rows = truth, columns =
prediction, the predicted class being the most probable one), overall and per stratum. Inside a
stratum a class's AUC is often undefined (a lesion-size stratum holds no negative slide), so
each stratum also reports ``auc_vs_all_negatives``: the stratum's positive slides of the class
against every negative slide of the report (how well small lesions are told from normal
slides). :func:`write_slide_report` draws the confusion matrix and the ROC curves as PNGs.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_wsi_ml.errors import SaveError
from napari_wsi_ml.evaluation import classification_metrics, delong_auc, per_class_auc

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from napari_wsi_ml.training.slide_data import CohortItem

SMALL_LESION = 0.10
"""Lesion fraction under which a lesion counts as small (the ``"<10%"`` stratum)."""
LESION_STRATA = ("none", "<10%", "≥10%", "unknown")


def _as_indices(labels: np.ndarray | Sequence, classes: Sequence[str]) -> np.ndarray:
    values = np.asarray(labels)
    if values.dtype.kind in "USO":
        unknown = sorted(set(values.tolist()) - set(classes))
        if unknown:
            raise ValueError(f"labels {unknown} are not among the classes {list(classes)}")
        return np.array([list(classes).index(v) for v in values.tolist()], dtype=np.int64)
    return values.astype(np.int64).reshape(-1)


def _recall(labels: np.ndarray, predicted: np.ndarray, n: int) -> list[float | None]:
    return [
        float((predicted[labels == c] == c).mean()) if (labels == c).any() else None
        for c in range(n)
    ]


def _metrics(labels: np.ndarray, probs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """The metrics of one set of slides (the whole report or one stratum)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a stratum may lack predicted classes
        found = classification_metrics(labels, probs, classes)
    intervals = per_class_auc(labels, probs, classes)
    defined = [v["auc"] for v in intervals.values() if v is not None]
    predicted = probs.argmax(axis=1) if len(labels) else np.zeros(0, np.int64)
    recall = _recall(labels, predicted, len(classes))
    return {
        "n": len(labels),
        "accuracy": found["accuracy"],
        "balanced_accuracy": found["balanced_accuracy"],
        "recall": dict(zip(classes, recall, strict=True)),
        "auc": intervals,
        "auc_macro": float(np.mean(defined)) if len(defined) == len(classes) else None,
        "confusion": found["confusion"],
    }


def _versus_all_negatives(
    labels: np.ndarray, probs: np.ndarray, chosen: np.ndarray, classes: Sequence[str]
) -> dict[str, dict[str, float | int] | None]:
    """Per class: AUC (DeLong CI) of the chosen positives against every negative slide."""
    out: dict[str, dict[str, float | int] | None] = {}
    for index, name in enumerate(classes):
        positive = chosen & (labels == index)
        negative = labels != index
        keep = positive | negative
        if not positive.any() or not negative.any():
            out[name] = None
            continue
        out[name] = delong_auc(positive[keep], probs[keep, index]).to_dict()
    return out


def slide_report(
    labels: np.ndarray,
    probs: np.ndarray,
    classes: Sequence[str],
    strata: dict[str, Sequence[str]] | None = None,
    *,
    slides: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Slide-level metrics, overall and per stratum (see the module docstring).

    Args:
        labels: ``(N,)`` true class indices (or class names).
        probs: ``(N, C)`` predicted probabilities of the ``C`` classes.
        classes: Class names, index order.
        strata: Stratification name → the value of each slide, e.g.
            ``{"site": [...], "lesion_size": lesion_size_strata(items)}``.
        slides: Slide ids, kept with each slide's prediction in ``report["slides"]``.

    Returns:
        ``{"classes", "n", "accuracy", "balanced_accuracy", "recall", "auc" (class → DeLong
        interval dict or None), "auc_macro", "confusion", "slides" (per slide: label,
        predicted, probs, strata), "strata" (name → value → the same metrics plus
        "auc_vs_all_negatives")}``.
    """
    classes = tuple(classes)
    labels = _as_indices(labels, classes)
    probs = np.asarray(probs, dtype=np.float64).reshape(len(labels), len(classes))
    strata = dict(strata or {})
    for name, values in strata.items():
        if len(values) != len(labels):
            raise ValueError(f"stratum {name!r} has {len(values)} values for {len(labels)} slides")
    ids = list(slides) if slides is not None else [str(i) for i in range(len(labels))]
    report: dict[str, Any] = {"classes": list(classes), **_metrics(labels, probs, classes)}
    predicted = probs.argmax(axis=1) if len(labels) else np.zeros(0, np.int64)
    report["slides"] = [
        {
            "slide": ids[i],
            "label": classes[labels[i]],
            "predicted": classes[predicted[i]],
            "probs": [float(p) for p in probs[i]],
            **{name: str(values[i]) for name, values in strata.items()},
        }
        for i in range(len(labels))
    ]
    report["strata"] = {}
    for name, values in strata.items():
        column = np.asarray([str(v) for v in values], dtype=object)
        per_value = {}
        for value in sorted(set(column.tolist()), key=_stratum_order):
            chosen = column == value
            found = _metrics(labels[chosen], probs[chosen], classes)
            found["auc_vs_all_negatives"] = _versus_all_negatives(labels, probs, chosen, classes)
            per_value[value] = found
        report["strata"][name] = per_value
    return report


def _stratum_order(value: str) -> tuple[int, str]:
    return (LESION_STRATA.index(value) if value in LESION_STRATA else -1, value)


def lesion_size_of(fraction: float | None, label: str, normal: str = "normal") -> str:
    """``"none"`` (no lesion), ``"<10%"``, ``"≥10%"`` of the tissue, or ``"unknown"``."""
    if fraction is None:
        return "none" if label == normal else "unknown"
    if fraction <= 0:
        return "none"
    return "<10%" if fraction < SMALL_LESION else "≥10%"


def lesion_size_strata(items: Sequence[CohortItem]) -> list[str]:
    """The lesion-size stratum of each slide (see :func:`lesion_size_of`)."""
    return [lesion_size_of(item.lesion_fraction, item.label) for item in items]


def cohort_strata(items: Sequence[CohortItem]) -> dict[str, list[str]]:
    """The standard strata of the slide tasks: ``site`` and ``lesion_size``."""
    return {
        "site": [item.site or "unknown" for item in items],
        "lesion_size": lesion_size_strata(items),
    }


def _save(figure: Figure, path: Path) -> Path:
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".png")
        os.close(fd)
        figure.savefig(tmp, format="png")
        os.replace(tmp, path)
    except OSError as error:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise SaveError(f"{path}: cannot write the figure ({error})") from error
    return path


def _new_figure(size: tuple[float, float]) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=100)
    FigureCanvasAgg(figure)
    return figure


def draw_confusion(figure: Figure, report: dict[str, Any]) -> None:
    """The confusion matrix (counts; rows = truth, columns = prediction) on ``figure``."""
    classes, matrix = report["classes"], np.asarray(report["confusion"])
    axes = figure.add_subplot(1, 1, 1)
    axes.imshow(matrix, cmap="Blues", vmin=0, vmax=max(1, int(matrix.max())))
    for (row, col), count in np.ndenumerate(matrix):
        colour = "white" if count > matrix.max() / 2 else "black"
        axes.text(col, row, str(int(count)), ha="center", va="center", color=colour)
    axes.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    axes.set_yticks(range(len(classes)), classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    accuracy = report.get("accuracy")
    axes.set_title(f"slides: {report['n']}, accuracy {accuracy:.3f}" if accuracy is not None
                   else f"slides: {report['n']}")  # fmt: skip
    figure.tight_layout()


def draw_roc(figure: Figure, report: dict[str, Any]) -> None:
    """One-vs-rest ROC curve of each class; per lesion-size stratum when the report has one."""
    from sklearn.metrics import roc_curve

    classes = report["classes"]
    labels = np.array([classes.index(s["label"]) for s in report["slides"]], dtype=np.int64)
    probs = np.array([s["probs"] for s in report["slides"]], dtype=np.float64)
    sizes = [s.get("lesion_size") for s in report["slides"]]
    for index, name in enumerate(classes):
        axes = figure.add_subplot(1, len(classes), index + 1)
        axes.plot([0, 1], [0, 1], color="0.7", linestyle=":")
        negative = labels != index
        groups = [("all", labels == index)]
        if all(s is not None for s in sizes) and index > 0:
            column = np.asarray(sizes, dtype=object)
            groups += [(v, (labels == index) & (column == v)) for v in ("<10%", "≥10%")]
        for title, positive in groups:
            if not positive.any() or not negative.any():
                continue
            keep = positive | negative
            fpr, tpr, _ = roc_curve(positive[keep], probs[keep, index])
            auc = delong_auc(positive[keep], probs[keep, index])
            axes.plot(fpr, tpr, label=f"{title}: {auc.auc:.3f} "
                                      f"[{auc.ci_low:.2f}, {auc.ci_high:.2f}]")  # fmt: skip
        axes.set_title(f"{name} vs rest")
        axes.set_xlabel("false positive rate")
        axes.set_ylabel("true positive rate")
        axes.set_aspect("equal")
        axes.legend(loc="lower right", fontsize=7, title="AUC [95 % CI]", title_fontsize=7)
    figure.tight_layout()


def write_slide_report(
    report: dict[str, Any], folder: Path, *, prefix: str = "slide"
) -> list[Path]:
    """Write ``<prefix>_confusion.png`` and ``<prefix>_roc.png`` into ``folder`` (atomically)."""
    folder = Path(folder)
    confusion = _new_figure((1.6 + 0.7 * len(report["classes"]),) * 2)
    draw_confusion(confusion, report)
    roc = _new_figure((4.2 * len(report["classes"]), 4.4))
    draw_roc(roc, report)
    return [
        _save(confusion, folder / f"{prefix}_confusion.png"),
        _save(roc, folder / f"{prefix}_roc.png"),
    ]
