"""``napari-wsi-ml infer``: heatmaps + predictions.csv for many slides, locally or on Dask."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import tifffile
from odd_slide import DENSE_BOX_XY, GLASS, PINK
from run_factory import TOP_K, make_patch_classifier_run, write_run_config
from shapely.geometry import Point, box

from napari_wsi_ml.cli import main
from napari_wsi_ml.inference import (
    RUN_LOADERS,
    Heatmap,
    read_predictions,
    slide_probabilities,
    top_k_scores,
)
from napari_wsi_ml.slide import open_slide

BROKEN = Path(__file__).resolve().parents[1] / "data" / "slides" / "broken.svs"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, synthetic_slide) -> Path:
    root = tmp_path_factory.mktemp("infer-runs")
    return make_patch_classifier_run(
        root, synthetic_slide.path, synthetic_slide.truth_xml, checkpoints=("best",)
    )


@pytest.fixture(scope="module")
def pink_tiff(tmp_path_factory) -> Path:
    """Pink tissue on glass, nothing purple: a generic TIFF that OpenSlide opens, mpp 0.5."""
    path = tmp_path_factory.mktemp("pink") / "pink.tiff"
    image = np.empty((1001, 1501, 3), np.uint8)
    image[:] = GLASS
    image[200:800, 300:1200] = PINK
    with tifffile.TiffWriter(path) as writer:
        for level, step in enumerate((1, 4)):
            writer.write(
                image[::step, ::step],
                tile=(128, 128),
                photometric="rgb",
                compression="zlib",
                subfiletype=int(level > 0),
                resolution=(1e4 / (0.5 * step), 1e4 / (0.5 * step)),
                resolutionunit="CENTIMETER",
            )
    return path


def write_cohort(path: Path, rows: list[tuple[Path, str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "patient"])
        for number, (slide, label) in enumerate(rows):
            writer.writerow([str(slide), label, f"p{number}"])
    return path


def test_infer_writes_heatmaps_and_predictions(
    run_dir, synthetic_slide, odd_pyramid_tiff, tmp_path, capsys
) -> None:
    slides = [synthetic_slide.path, odd_pyramid_tiff]
    cohort = write_cohort(tmp_path / "cohort.csv", [(slides[0], "tumour"), (slides[1], "normal")])
    out = tmp_path / "out"
    code = main(
        ["infer", str(run_dir), *map(str, slides), "--cohort", str(cohort), "--out", str(out),
         "--quiet", "--tiff", "uint8", "--batch-size", "32", "--device", "cpu", "--stride", "32"]
    )  # fmt: skip
    assert code == 0, capsys.readouterr()
    assert "2 of 2 slides scored" in capsys.readouterr().out
    predictions = read_predictions(out / "predictions.csv")
    assert [p.slide for p in predictions] == [s.stem for s in slides]
    assert [p.label for p in predictions] == ["tumour", "normal"]
    for prediction, slide_path in zip(predictions, slides, strict=True):
        assert prediction.heatmap == out / "heatmaps" / f"{slide_path.stem}.heatmap.npz"
        result = Heatmap.load(prediction.heatmap)
        with open_slide(slide_path) as slide:
            assert result.slide_fingerprint == prediction.fingerprint == slide.fingerprint
            size = slide.level_dimensions[0]
        assert result.run_id == run_dir.name and result.class_names == ("normal", "tumour")
        assert prediction.scores == pytest.approx(top_k_scores(result, TOP_K))
        probs = slide_probabilities(prediction.scores, "normal")
        assert prediction.predicted == max(probs, key=probs.get)
        centres = result.cell_centres_xy().reshape(-1, 2)
        assert any(np.allclose(prediction.peak_xy, c) for c in centres)
        tiffs = sorted((out / "tiff").glob(f"{slide_path.stem}.*.tif"))
        assert [t.name for t in tiffs] == [f"{slide_path.stem}.tumour.tif"]  # not the background
        with tifffile.TiffFile(tiffs[0]) as tif:
            assert tif.pages[0].shape == (size[1], size[0])


def test_a_registered_loader_plugs_in(odd_pyramid_tiff, pink_tiff, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(RUN_LOADERS, "purple_oracle", "run_factory:load_purple_oracle")
    run = write_run_config(tmp_path, "purple_oracle")
    cohort = write_cohort(tmp_path / "c.csv", [(odd_pyramid_tiff, "dense"), (pink_tiff, "normal")])
    out = tmp_path / "out"
    assert main(["infer", str(run), "--cohort", str(cohort), "--out", str(out), "--quiet"]) == 0
    dense, pink = read_predictions(out / "predictions.csv")
    assert (dense.predicted, pink.predicted) == ("dense", "normal")
    assert dense.correct and pink.correct
    assert box(*DENSE_BOX_XY).contains(Point(dense.peak_xy))
    assert dense.scores["dense"] == pytest.approx(1.0) and pink.scores["dense"] == 0.0
    assert pink.uncertainty == 0.0
    printed = capsys.readouterr().out
    assert "odd-pyramid: dense (label dense), uncertainty 0.00" in printed


def test_dask_cluster_gives_the_same_predictions(
    odd_pyramid_tiff, pink_tiff, tmp_path, monkeypatch, capsys
) -> None:
    from distributed import LocalCluster

    monkeypatch.setitem(RUN_LOADERS, "purple_oracle", "run_factory:load_purple_oracle")
    run = write_run_config(tmp_path, "purple_oracle")
    slides = [str(odd_pyramid_tiff), str(pink_tiff)]
    local, remote = tmp_path / "local", tmp_path / "dask"
    assert main(["infer", str(run), *slides, "--out", str(local), "--quiet"]) == 0
    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        code = main(
            ["infer", str(run), *slides, "--out", str(remote), "--quiet",
             "--scheduler", cluster.scheduler_address]
        )  # fmt: skip
    assert code == 0, capsys.readouterr()
    here, there = (
        read_predictions(local / "predictions.csv"),
        read_predictions(remote / "predictions.csv"),
    )
    assert [p.slide for p in there] == ["odd-pyramid", "pink"]  # job order, not finishing order
    for a, b in zip(here, there, strict=True):
        assert (a.scores, a.predicted, a.peak_xy) == (b.scores, b.predicted, b.peak_xy)
        np.testing.assert_array_equal(
            Heatmap.load(a.heatmap).values, Heatmap.load(b.heatmap).values
        )


def test_a_failing_slide_is_reported_and_the_others_written(
    odd_pyramid_tiff, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setitem(RUN_LOADERS, "purple_oracle", "run_factory:load_purple_oracle")
    run = write_run_config(tmp_path, "purple_oracle")
    out = tmp_path / "out"
    code = main(
        ["infer", str(run), str(BROKEN), str(odd_pyramid_tiff), "--out", str(out), "--quiet"]
    )
    printed = capsys.readouterr().out
    assert code == 1
    assert "slide broken failed: " in printed and "1 of 2 slides scored" in printed
    assert [p.slide for p in read_predictions(out / "predictions.csv")] == [odd_pyramid_tiff.stem]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["{tmp}"], "not a run directory"),
        (["{run}", "{tmp}/absent.svs"], r"slide file '.*absent.svs' does not exist"),
        (["{run}"], "give slide files, or --cohort CSV"),
        (["{run}", "{odd}", "{odd}"], "two slides are called 'odd-pyramid'"),
    ],
    ids=["not a run", "missing slide", "no slides", "duplicate"],
)
def test_bad_invocations_exit_2(run_dir, odd_pyramid_tiff, tmp_path, capsys, arguments, message):
    values = {"tmp": tmp_path, "run": run_dir, "odd": odd_pyramid_tiff}
    assert main(["infer", *(a.format(**values) for a in arguments), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("napari-wsi-ml: error:")
    assert __import__("re").search(message, error), error
