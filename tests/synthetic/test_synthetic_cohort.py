"""Cohort generation: manifest, patients and sites, annotation files, the CLI."""

from __future__ import annotations

import csv

import openslide
import pytest

from napari_wsi_ml.annotations import read_asap
from napari_wsi_ml.cli import main
from napari_wsi_ml.synthetic import MANIFEST_COLUMNS, plan_cohort, read_truth_geojson


def _rows(path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_manifest_lists_every_slide_with_its_metadata(synthetic_cohort):
    rows = _rows(synthetic_cohort.manifest)
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    assert [r["slide"] for r in rows] == [f"slide_{i:03d}" for i in range(4)]
    assert {r["label"] for r in rows} == {"tumour", "normal"}
    folder = synthetic_cohort.folder
    for row, slide in zip(rows, synthetic_cohort.slides, strict=True):
        with openslide.OpenSlide(str(folder / row["path"])) as handle:
            assert handle.dimensions == (int(row["width"]), int(row["height"]))
            assert float(handle.properties["openslide.mpp-x"]) == float(row["mpp"]) == 0.25
        assert 2048 <= max(int(row["width"]), int(row["height"])) <= 3072
        assert float(row["tumour_fraction"]) == pytest.approx(slide.truth.tumour_fraction, abs=1e-6)
        assert (float(row["tumour_fraction"]) > 0) == (row["label"] != "normal")
        assert (folder / row["truth"]).exists()


def test_patients_keep_their_site_and_some_have_two_slides(synthetic_cohort):
    rows = _rows(synthetic_cohort.manifest)
    sites: dict[str, set[str]] = {}
    for row in rows:
        sites.setdefault(row["patient"], set()).add(row["site"])
    assert all(len(s) == 1 for s in sites.values())
    assert len(sites) < len(rows)  # at least one patient with two slides
    assert {r["site"] for r in rows} == {"site_0", "site_1"}


def test_rater_and_truth_files_read_back(synthetic_cohort):
    index = _rows(synthetic_cohort.annotations)
    assert len(index) == 4 * 3
    for slide in synthetic_cohort.slides:
        stem = slide.truth.name
        assert sorted(p.name for p in slide.rater_xml.values()) == [
            f"{stem}.rater{i}.xml" for i in (1, 2, 3)
        ]
        for rater in slide.raters:
            back = read_asap(slide.rater_xml[rater.rater])
            assert len(back) == len(rater)
        truth_xml = read_asap(slide.truth_xml)
        assert len(truth_xml) == len(slide.truth.lesions)
        again = read_truth_geojson(slide.truth_geojson)
        assert again.tissue.equals(slide.truth.tissue)
        assert again.label == slide.truth.label and again.path == slide.path


def test_plan_is_deterministic_and_multiclass_alternates():
    assert plan_cohort(6, seed=2) == plan_cohort(6, seed=2)
    assert plan_cohort(6, seed=2) != plan_cohort(6, seed=3)
    tumour = [s for s in plan_cohort(6, seed=2, multiclass=True) if s.tumour != "none"]
    assert [s.morphology for s in tumour] == ["a", "b", "a", "b"]


def test_cli_writes_a_cohort(tmp_path, capsys):
    assert (
        main(["sample-data", str(tmp_path), "--slides", "1", "--size", "1024", "--raters", "2"])
        == 0
    )
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "annotations.csv",
        "manifest.csv",
        "slide_000.rater1.xml",
        "slide_000.rater2.xml",
        "slide_000.svs",
        "slide_000.truth.geojson",
        "slide_000.truth.xml",
    ]
    assert "1 slides written" in capsys.readouterr().out


@pytest.mark.parametrize("args", [["--size", "12"], ["--slides", "0"], ["--size", "9-3"]])
def test_cli_rejects_bad_arguments(tmp_path, args):
    with pytest.raises(SystemExit) as exit_info:
        main(["sample-data", str(tmp_path), *args])
    assert exit_info.value.code == 2


def test_cli_reports_an_unwritable_folder_in_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["sample-data", str(blocker / "out"), "--slides", "1", "--size", "512"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("napari-wsi-ml: error: Cannot create") and "Traceback" not in err
