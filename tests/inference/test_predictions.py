"""Slide predictions from heatmaps, and predictions.csv."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ml.errors import HeatmapError
from napari_wsi_ml.inference import (
    Heatmap,
    SlidePrediction,
    normalised_entropy,
    predict_slide,
    read_predictions,
    slide_probabilities,
    top_k_scores,
    write_predictions,
)


def grid(tumour: np.ndarray) -> Heatmap:
    """Two classes (normal = 1 - tumour), stride 100, patches of 200 from (10, 20)."""
    tumour = np.asarray(tumour, dtype=np.float32)
    return Heatmap(
        values=np.stack([1 - tumour, tumour], axis=-1),
        origin=(10.0, 20.0),
        stride=(100.0, 100.0),
        patch_size=(200.0, 200.0),
        class_names=("normal", "tumour"),
        run_id="run-7",
        slide_fingerprint="f" * 64,
    )


def test_top_k_scores_ignore_unscored_cells() -> None:
    tumour = np.array([[0.1, 0.9, np.nan], [0.7, 0.3, 0.5]])
    scores = top_k_scores(grid(tumour), k=2)
    assert scores["tumour"] == pytest.approx((0.9 + 0.7) / 2)
    assert scores["normal"] == pytest.approx((0.9 + 0.7) / 2)  # 1 - 0.1, 1 - 0.3
    assert top_k_scores(grid(tumour), k=50)["tumour"] == pytest.approx(2.5 / 5)


def test_no_scored_cell_is_a_clear_error() -> None:
    with pytest.raises(HeatmapError, match=r"no scored patch.*min_tissue"):
        top_k_scores(grid(np.full((2, 2), np.nan)))


def test_probabilities_with_a_background_class() -> None:
    probs = slide_probabilities({"normal": 0.99, "tumour": 0.8}, "normal")
    assert probs == pytest.approx({"normal": 0.2, "tumour": 0.8})
    multi = slide_probabilities({"normal": 1.0, "a": 0.6, "b": 0.2}, "normal")
    assert multi == pytest.approx({"normal": 0.4 / 1.2, "a": 0.6 / 1.2, "b": 0.2 / 1.2})
    plain = slide_probabilities({"a": 3.0, "b": 1.0}, None)
    assert plain == pytest.approx({"a": 0.75, "b": 0.25})
    assert slide_probabilities({"a": 0.0, "b": 0.0}, None) == {"a": 0.5, "b": 0.5}


def test_normalised_entropy() -> None:
    assert normalised_entropy([0.5, 0.5]) == pytest.approx(1.0)
    assert normalised_entropy([1.0, 0.0, 0.0]) == 0.0
    expected = -(0.8 * math.log(0.8) + 0.2 * math.log(0.2)) / math.log(2)
    assert normalised_entropy(iter([0.8, 0.2])) == pytest.approx(expected)  # 0.722


def test_a_tumour_slide_peaks_at_its_highest_tumour_cell() -> None:
    tumour = np.zeros((4, 5))
    tumour[2, 3], tumour[1, 1] = 0.97, 0.6
    prediction = predict_slide(
        grid(tumour), slide="s1", path="/data/s1.svs", background="normal", label="tumour",
        top_k=1, heatmap_path="/out/heatmaps/s1.heatmap.npz",
    )  # fmt: skip
    assert prediction.predicted == "tumour" and prediction.correct is True
    # cell (row 2, col 3): corner (10 + 300, 20 + 200), centre + 100
    assert prediction.peak_xy == (410.0, 320.0)
    assert prediction.scores == pytest.approx({"normal": 1.0, "tumour": 0.97})
    expected = -(0.97 * math.log(0.97) + 0.03 * math.log(0.03)) / math.log(2)
    assert prediction.uncertainty == pytest.approx(expected)
    assert prediction.fingerprint == "f" * 64 and prediction.path == Path("/data/s1.svs")


def test_a_normal_slide_still_points_at_its_most_suspicious_cell() -> None:
    tumour = np.full((3, 3), 0.05)
    tumour[0, 2] = 0.3
    prediction = predict_slide(
        grid(tumour), slide="s2", path="s2.svs", background="normal", label="tumour"
    )
    assert prediction.predicted == "normal" and prediction.correct is False
    assert prediction.peak_xy == (10 + 200 + 100, 20 + 100)
    assert prediction.label == "tumour"


def test_the_run_aggregation_replaces_top_k() -> None:
    prediction = predict_slide(
        grid(np.full((2, 2), 0.9)), slide="s", path="s.svs", scores={"normal": 0.7, "tumour": 0.2},
    )  # fmt: skip
    assert prediction.predicted == "normal" and prediction.scores == {"normal": 0.7, "tumour": 0.2}
    assert prediction.label is None and prediction.correct is None


def test_a_distribution_is_used_as_is() -> None:
    tumour = np.full((2, 3), 0.1)
    tumour[1, 2] = 0.7
    three = Heatmap(
        values=np.stack([1 - tumour, tumour * 0.6, tumour * 0.4], axis=-1),
        origin=(0.0, 0.0), stride=(50.0, 50.0), patch_size=(50.0, 50.0),
        class_names=("normal", "a", "b"), run_id="mil", slide_fingerprint="0" * 64,
    )  # fmt: skip
    scores = {"normal": 0.2, "a": 0.5, "b": 0.3}  # a MIL slide prediction
    as_is = predict_slide(
        three, slide="s", path="s.svs", scores=scores, background="normal", distribution=True
    )
    assert as_is.predicted == "a" and as_is.peak_xy == (125.0, 75.0)
    expected = -sum(p * math.log(p) for p in scores.values()) / math.log(3)
    assert as_is.uncertainty == pytest.approx(expected)
    # read as per-class scores instead, the background would be 1 - 0.5: another uncertainty
    other = predict_slide(three, slide="s", path="s.svs", scores=scores, background="normal")
    assert other.uncertainty != pytest.approx(expected)


def sample_predictions(folder: Path) -> list[SlidePrediction]:
    return [
        SlidePrediction(
            slide="a, with comma", path=Path("/slides/a.svs"), fingerprint="1" * 64,
            scores={"normal": 0.1234567890123, "tumour": 1 / 3}, predicted="tumour",
            label="tumour", uncertainty=0.91, peak_xy=(1024.5, 77.25),
            heatmap=folder / "heatmaps" / "a.heatmap.npz",
        ),
        SlidePrediction(
            slide="b", path=Path("/slides/b.svs"), fingerprint="2" * 64,
            scores={"normal": 0.5, "tumour_b": 0.25}, predicted="normal", label=None,
            uncertainty=0.0, peak_xy=(0.0, 1e6), heatmap=None,
        ),
    ]  # fmt: skip


def test_predictions_csv_round_trip(tmp_path: Path) -> None:
    predictions = sample_predictions(tmp_path)
    path = write_predictions(predictions, tmp_path / "predictions.csv")
    header = path.read_text().splitlines()[0]
    assert header.endswith("score:normal,score:tumour,score:tumour_b")
    assert "heatmaps/a.heatmap.npz" in path.read_text()  # relative to the table's folder
    assert read_predictions(path) == predictions
    assert not list(tmp_path.glob(".predictions.csv.*")), "temporary file left behind"
    moved = tmp_path / "moved"
    moved.mkdir()
    (moved / "predictions.csv").write_text(path.read_text())
    assert (
        read_predictions(moved / "predictions.csv")[0].heatmap == moved / "heatmaps/a.heatmap.npz"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty file"),
        ("slide,path,label\nx,y,z\n", r"lacks the column\(s\) fingerprint, predicted"),
        (
            "slide,path,fingerprint,label,predicted,uncertainty,peak_x,peak_y,heatmap,score:t\n"
            "s,s.svs,ab,,t,0.5,1,2,,0.3\n"
            "s2,s2.svs,ab,,t,high,1,2,,0.3\n",
            r"line 3: column 'uncertainty' holds 'high', not a number",
        ),
        (
            "slide,path,fingerprint,label,predicted,uncertainty,peak_x,peak_y,heatmap\n"
            "s,s.svs,ab,,t,0.5\n",
            r"line 2: 6 fields for 9 columns",
        ),
    ],
    ids=["empty", "not predictions", "bad number", "short row"],
)
def test_bad_predictions_files_are_clear_errors(tmp_path: Path, content: str, message: str):
    path = tmp_path / "predictions.csv"
    path.write_text(content)
    with pytest.raises(HeatmapError, match=message):
        read_predictions(path)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(HeatmapError, match="no such predictions file"):
        read_predictions(tmp_path / "absent.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81garbage")
    with pytest.raises(HeatmapError, match="not a readable predictions file"):
        read_predictions(binary)
