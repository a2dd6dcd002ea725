"""The ``agree`` command on ASAP XML files, and the JSON / CSV / PNG report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from agreement_helpers import asap_xml

from napari_wsi_ml.cli import main

METRICS = ("cohen_kappa", "fleiss_kappa", "krippendorff_alpha", "dice", "iou", "percent_agreement")


def box(x, y, w, h):
    return [(x, y), (x + w, y), (x + w, y + h), (x, y + h)]


@pytest.fixture
def rater_files(tmp_path):
    files = {
        "alice": [
            ("tumor", "Polygon", box(0, 0, 400, 400)),
            ("stroma", "Polygon", box(500, 0, 300, 300)),
        ],
        "bob": [
            ("Tumour", "Polygon", box(50, 0, 400, 400)),
            ("stroma", "Rectangle", box(500, 0, 300, 250)),
        ],
        "carol": [("tumor", "Polygon", box(0, 40, 400, 400)), ("stroma", "Dot", [(600, 100)])],
    }
    paths = []
    for name, anns in files.items():
        path = tmp_path / f"case1.{name}.xml"
        path.write_text(asap_xml(anns))
        paths.append(path)
    return paths


def test_agree_writes_json_csv_png_and_consensus(rater_files, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [
            "agree",
            *map(str, rater_files),
            "--grid",
            "50",
            "--map",
            "Tumour=tumor",
            "--n-boot",
            "200",
            "--json",
            str(out / "r.json"),
            "--csv",
            str(out / "csv"),
            "--png",
            str(out / "fig.png"),
            "--consensus",
            str(out / "consensus.xml"),
        ]
    )
    assert code == 0
    stdout = capsys.readouterr().out
    assert "cohen_kappa" in stdout and "alice vs bob" in stdout
    report = json.loads((out / "r.json").read_text())
    assert report["raters"] == ["alice", "bob", "carol"]
    assert report["classes"] == ["stroma", "tumor"]
    for block in [report["overall"], *report["per_class"].values()]:
        for metric in METRICS:
            assert metric in block
        assert set(block["cohen_kappa"]["pairs"]) == {
            "alice vs bob",
            "alice vs carol",
            "bob vs carol",
        }
        est = block["fleiss_kappa"]
        assert est["ci"][0] <= est["value"] <= est["ci"][1]
    tumor = report["per_class"]["tumor"]["dice"]["pairs"]["alice vs bob"]["value"]
    assert tumor == pytest.approx(2 * 350 * 400 / (2 * 400 * 400))
    assert (
        report["disagreement_regions"][0]["area_px2"]
        >= report["disagreement_regions"][-1]["area_px2"]
    )
    assert (out / "csv" / "metrics.csv").read_text().startswith("scope,metric,pair,value")
    assert (out / "fig.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from napari_wsi_ml.agreement.inputs import read_rater_files

    (consensus,) = read_rater_files([out / "consensus.xml"])
    areas = {}
    for ann in consensus:
        import shapely

        areas[ann.group] = areas.get(ann.group, 0) + shapely.Polygon(ann.coordinates).area
    # tumor, >= 2 of 3: alice+bob on [50,400]x[0,400], alice+carol on [0,50]x[40,400]
    assert areas["tumor"] == pytest.approx(350 * 400 + 50 * 360)
    assert areas["stroma"] == pytest.approx(300 * 250)


def test_agree_refuses_disjoint_classes_with_exit_2(rater_files, tmp_path, capsys):
    dave = tmp_path / "case1.dave.xml"
    dave.write_text(asap_xml([("Tumour", "Polygon", box(0, 0, 10, 10))]))
    code = main(["agree", str(rater_files[0]), str(dave), "--n-boot", "10"])
    assert code == 2
    err = capsys.readouterr().err
    assert "share no class" in err and "Tumour" in err


def test_agree_warns_about_class_spellings_in_output_and_json(rater_files, tmp_path, capsys):
    out = tmp_path / "r.json"
    alice, bob = map(str, rater_files[:2])
    code = main(["agree", alice, bob, "--grid", "50", "--n-boot", "10", "--json", str(out)])
    assert code == 0
    stdout = capsys.readouterr().out
    expected = (
        "class names differ between raters 'alice' and 'bob': only 'alice' uses 'tumor'; "
        "only 'bob' uses 'Tumour'"
    )
    assert f"warning: {expected}" in stdout
    report = json.loads(out.read_text())
    assert len(report["warnings"]) == 1 and report["warnings"][0].startswith(expected)
    assert report["classes"] == ["Tumour", "stroma", "tumor"]
    filters = report["disagreement"]
    assert filters["min_area_px2"] == 2500 and filters["opening_px"] == 50 / 16
    assert filters["count"] == len(report["disagreement_regions"])


def test_agree_refuses_files_of_another_slide(rater_files, tmp_path, capsys):
    other = tmp_path / "case2.dave.xml"
    other.write_text(rater_files[0].read_text())
    code = main(["agree", str(rater_files[0]), str(other), "--n-boot", "10"])
    assert code == 2
    assert "different slides" in capsys.readouterr().err


def test_agree_compare_reports_inter_rater_range(rater_files, tmp_path):
    model = tmp_path / "case1.model.xml"
    model.write_text(asap_xml([("tumor", "Polygon", box(0, 0, 400, 400))]))
    from napari_wsi_ml.agreement import Options, analyse, compare_candidate
    from napari_wsi_ml.agreement.inputs import prepare_raters, read_rater_files

    sets = read_rater_files(rater_files)
    data = prepare_raters(sets, mapping={"Tumour": "tumor"})
    report = analyse(data, Options(grid=50, n_boot=50))
    (candidate,) = read_rater_files([model])
    rows = compare_candidate(data, report, candidate, options=Options(grid=50, n_boot=50))["rows"]
    row = next(
        r
        for r in rows
        if r["scope"] == "tumor" and r["metric"] == "dice" and r["reference"] == "alice"
    )
    assert row["value"] == pytest.approx(1.0)
    pairs = [e["value"] for e in report.metrics["per_class"]["tumor"]["dice"]["pairs"].values()]
    assert row["raters_min"] == pytest.approx(min(pairs))
    assert row["raters_median"] == pytest.approx(np.median(pairs))


def test_cohort_mode_pools_slides(rater_files, tmp_path):
    for name in ("alice", "bob"):
        text = rater_files[0 if name == "alice" else 1].read_text()
        (tmp_path / f"case2.{name}.xml").write_text(text)
    csv_path = tmp_path / "cohort.csv"
    csv_path.write_text(
        "slide,rater,annotation\n"
        "case1.svs,alice,case1.alice.xml\ncase1.svs,bob,case1.bob.xml\n"
        "case1.svs,carol,case1.carol.xml\n"
        "case2.svs,alice,case2.alice.xml\ncase2.svs,bob,case2.bob.xml\n"
    )
    out = tmp_path / "cohort.json"
    code = main(
        [
            "agree",
            "--cohort",
            str(csv_path),
            "--grid",
            "50",
            "--map",
            "Tumour=tumor",
            "--n-boot",
            "100",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    report = json.loads(out.read_text())
    assert set(report["per_slide"]) == {"case1.svs", "case2.svs"}
    pooled = report["per_class"]["tumor"]["dice"]["pairs"]["alice vs bob"]["value"]
    assert pooled == pytest.approx(2 * 350 * 400 / (2 * 400 * 400))
    alpha = report["overall"]["krippendorff_alpha"]
    assert alpha["ci"][0] <= alpha["value"] <= alpha["ci"][1]


def test_cohort_csv_without_columns_refused(tmp_path, capsys):
    bad = tmp_path / "c.csv"
    bad.write_text("file,who\na,b\n")
    assert main(["agree", "--cohort", str(bad)]) == 2
    assert "slide, rater, annotation" in capsys.readouterr().err
