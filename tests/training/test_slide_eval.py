"""Slide-level report: metrics against scikit-learn, DeLong intervals, strata, figures."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread
from scipy import stats
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    recall_score,
    roc_auc_score,
)

from napari_wsi_ml.training.slide_eval import (
    lesion_size_of,
    slide_report,
    write_slide_report,
)

CLASSES = ("normal", "tumour_a", "tumour_b")


@pytest.fixture()
def slides() -> dict[str, np.ndarray]:
    """40 slides of three classes with informative but imperfect probabilities, two sites."""
    rng = np.random.default_rng(5)
    labels = np.repeat([0, 1, 2], [16, 12, 12])
    logits = rng.normal(size=(40, 3)) + 1.6 * np.eye(3)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    sites = np.array(["site_0", "site_1"] * 20)
    return {"labels": labels, "probs": probs, "sites": sites}


def _brute_force_delong(positive: np.ndarray, negative: np.ndarray) -> tuple[float, float]:
    """AUC and DeLong variance from the O(m·n) definition of the structural components."""
    psi = (positive[:, None] > negative[None, :]) + 0.5 * (positive[:, None] == negative[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return psi.mean(), v10.var(ddof=1) / len(positive) + v01.var(ddof=1) / len(negative)


def test_overall_metrics_match_sklearn_and_delong(slides: dict[str, np.ndarray]) -> None:
    labels, probs = slides["labels"], slides["probs"]
    report = slide_report(labels, probs, CLASSES)
    predicted = probs.argmax(1)
    assert report["n"] == 40
    assert report["accuracy"] == pytest.approx(accuracy_score(labels, predicted))
    assert report["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(labels, predicted))
    assert report["confusion"] == confusion_matrix(labels, predicted).tolist()
    recalls = recall_score(labels, predicted, average=None)
    assert list(report["recall"].values()) == pytest.approx(recalls.tolist())
    z = stats.norm.ppf(0.975)
    for index, name in enumerate(CLASSES):
        interval = report["auc"][name]
        positive = labels == index
        assert interval["auc"] == pytest.approx(roc_auc_score(positive, probs[:, index]))
        auc, variance = _brute_force_delong(probs[positive, index], probs[~positive, index])
        assert interval["auc"] == pytest.approx(auc)
        assert interval["variance"] == pytest.approx(variance)
        assert interval["ci_low"] == pytest.approx(max(0.0, auc - z * np.sqrt(variance)))
        assert interval["ci_high"] == pytest.approx(min(1.0, auc + z * np.sqrt(variance)))
        assert (interval["n_positive"], interval["n_negative"]) == (
            positive.sum(),
            40 - positive.sum(),
        )
    macro = np.mean([roc_auc_score(labels == i, probs[:, i]) for i in range(3)])
    assert report["auc_macro"] == pytest.approx(macro)
    assert report["auc_macro"] > 0.75  # the probabilities are informative
    named = slide_report(np.array(CLASSES)[labels], probs, CLASSES)
    assert named["auc"] == report["auc"] and named["confusion"] == report["confusion"]


def test_strata_are_reports_of_their_slides(slides: dict[str, np.ndarray]) -> None:
    labels, probs, sites = slides["labels"], slides["probs"], slides["sites"]
    fractions = np.where(labels == 0, 0.0, np.tile([0.02, 0.3], 20))
    sizes = [lesion_size_of(f, CLASSES[lab]) for f, lab in zip(fractions, labels, strict=True)]
    report = slide_report(
        labels, probs, CLASSES, {"site": sites, "lesion_size": sizes},
        slides=[f"s{i}" for i in range(40)],
    )  # fmt: skip
    assert list(report["strata"]["lesion_size"]) == ["none", "<10%", "≥10%"]
    for site in ("site_0", "site_1"):
        chosen = sites == site
        part = report["strata"]["site"][site]
        assert part["n"] == chosen.sum()
        expected = accuracy_score(labels[chosen], probs[chosen].argmax(1))
        assert part["accuracy"] == pytest.approx(expected)
        for index, name in enumerate(CLASSES):
            expected = roc_auc_score(labels[chosen] == index, probs[chosen, index])
            assert part["auc"][name]["auc"] == pytest.approx(expected)
    small = report["strata"]["lesion_size"]["<10%"]
    chosen = np.array(sizes) == "<10%"
    assert small["auc"]["normal"] is None  # no normal slide among the small lesions
    for index, name in ((1, "tumour_a"), (2, "tumour_b")):
        keep = (chosen & (labels == index)) | (labels != index)
        expected = roc_auc_score((labels == index)[keep], probs[keep, index])
        assert small["auc_vs_all_negatives"][name]["auc"] == pytest.approx(expected)
        assert (
            small["auc_vs_all_negatives"][name]["n_positive"] == (chosen & (labels == index)).sum()
        )
    assert small["auc_vs_all_negatives"]["normal"] is None  # no normal slide in the stratum
    assert report["strata"]["lesion_size"]["none"]["recall"]["normal"] == pytest.approx(
        recall_score(labels[labels == 0], probs[labels == 0].argmax(1), labels=[0], average=None)[0]
    )
    first = report["slides"][3]
    assert first["slide"] == "s3" and first["site"] == sites[3] and first["lesion_size"] == sizes[3]
    assert first["probs"] == pytest.approx(probs[3].tolist())


@pytest.mark.parametrize(
    ("fraction", "label", "expected"),
    [(None, "normal", "none"), (None, "tumour", "unknown"), (0.0, "tumour", "none"),
     (0.0999, "tumour", "<10%"), (0.1, "tumour", "≥10%"), (0.6, "tumour_b", "≥10%")],
)  # fmt: skip
def test_lesion_size_thresholds(fraction: float | None, label: str, expected: str) -> None:
    assert lesion_size_of(fraction, label) == expected


def test_binary_report_perfect_and_undefined_cases() -> None:
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.45, 0.55], [0.2, 0.8]])
    report = slide_report(labels, probs, ("normal", "tumour"))
    assert report["auc"]["tumour"]["auc"] == 1.0 and report["accuracy"] == 1.0
    only_tumour = slide_report(labels[2:], probs[2:], ("normal", "tumour"))
    assert only_tumour["auc"] == {"normal": None, "tumour": None}
    assert only_tumour["balanced_accuracy"] is None and only_tumour["auc_macro"] is None
    with pytest.raises(ValueError, match="stratum 'site' has 2 values for 5 slides"):
        slide_report(labels, probs, ("normal", "tumour"), {"site": ["a", "b"]})


def test_figures_are_written(slides: dict[str, np.ndarray], tmp_path: Path) -> None:
    labels, probs = slides["labels"], slides["probs"]
    sizes = ["none" if lab == 0 else ("<10%", "≥10%")[i % 2] for i, lab in enumerate(labels)]
    report = slide_report(labels, probs, CLASSES, {"lesion_size": sizes})
    paths = write_slide_report(report, tmp_path / "plots")
    assert [p.name for p in paths] == ["slide_confusion.png", "slide_roc.png"]
    confusion, roc = (imread(p) for p in paths)
    assert roc.shape[:2] == (440, 1260)  # 4.2 in per class × 3 classes, 4.4 in tall, 100 dpi
    assert confusion.shape[0] == confusion.shape[1]
    # the confusion matrix is drawn in blues of varying depth: several distinct colours
    colours = {
        tuple(np.round(c, 2)) for c in itertools.islice(confusion.reshape(-1, 4), 0, None, 7)
    }
    assert len(colours) > 5
    assert not list(tmp_path.joinpath("plots").glob(".*"))  # no temporary files left
