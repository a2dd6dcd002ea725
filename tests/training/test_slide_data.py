"""The slide cohort of the slide-level tasks: checks, grid patches, lesion fractions, splits."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import tifffile
from slide_cohorts import small_slide_cohort

from napari_wsi_ml.data import grid_patches, plan_patch_read
from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.slide import open_slide
from napari_wsi_ml.synthetic.truth import read_truth_geojson
from napari_wsi_ml.training.slide_data import (
    SlideDataOptions,
    check_slide_data,
    cohort_classes,
    load_slide_cohort,
)


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Eight small synthetic slides (about 1 mm at 1 µm/px, 2 sites) with truth files."""
    return small_slide_cohort(tmp_path_factory)


def _rows(folder: Path) -> list[dict[str, str]]:
    """The manifest's rows with absolute slide and truth paths (for CSVs written elsewhere)."""
    with (folder / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["path"], row["truth"] = str(folder / row["path"]), str(folder / row["truth"])
    return rows


def _write(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    columns = columns or list(rows[0])
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _options(cohort: Path, **changes: object) -> SlideDataOptions:
    return replace(SlideDataOptions(cohort=cohort, patch_size=32, target_mpp=2.0), **changes)


def test_cohort_items_are_planned_split_by_patient_and_manifested(cohort_dir: Path) -> None:
    cohort = load_slide_cohort(_options(cohort_dir / "manifest.csv"), seed=0)
    rows = {r["slide"]: r for r in _rows(cohort_dir)}
    assert cohort.classes == ("normal", "tumour")
    assert len(cohort.items) == 8
    parts: dict[str, set[str]] = {}
    for item in cohort.items:
        row = rows[item.slide]
        assert item.label == row["label"] and item.label_index == cohort.classes.index(item.label)
        assert item.lesion_fraction == pytest.approx(float(row["tumour_fraction"]))
        assert item.size == (int(row["width"]), int(row["height"]))
        # 32 px at 2 µm/px on a 1 µm/px slide: 64 level-0 px, read from level 1 (2×)
        assert (item.level0_patch, item.level0_stride) == (64.0, 64.0)
        assert item.plan.level == 1 and item.plan.read_size == (32, 32)
        with open_slide(item.path) as slide:
            assert item.fingerprint == slide.fingerprint
            expected = grid_patches(slide, item.plan, min_tissue=0.4, tissue=item.tissue)
        np.testing.assert_array_equal(item.patches.xy, expected.xy)
        assert item.patches.label_names == cohort.classes and item.patches.slide_name == item.slide
        assert (item.patches.labels == item.label_index).all()
        assert len(item.patches) == item.grid_patches > 0
        assert (item.patches.xy % 64 == 0).all()
        parts.setdefault(item.patient, set()).add(item.part)
    assert all(len(p) == 1 for p in parts.values())  # no patient in two splits
    assert {i.part for i in cohort.items} == {"train", "val", "test"}
    assert {i.label for i in cohort.part("train")} == {"normal", "tumour"}
    manifest = cohort.manifest()
    assert manifest["class_names"] == ["normal", "tumour"]
    assert manifest["counts"] == {p: len(cohort.part(p)) for p in ("train", "val", "test")}
    assert [s["part"] for s in manifest["slides"]] == [i.part for i in cohort.items]
    assert manifest["split"]["assignment"] == {i.slide: i.part for i in cohort.items}


def test_same_seed_same_split_and_cap_is_a_seeded_subset(cohort_dir: Path) -> None:
    options = _options(cohort_dir / "manifest.csv", max_patches_per_slide=5)
    first = load_slide_cohort(options, seed=4)
    again = load_slide_cohort(options, seed=4)
    full = load_slide_cohort(_options(cohort_dir / "manifest.csv"), seed=4)
    for a, b, whole in zip(first.items, again.items, full.items, strict=True):
        assert a.part == b.part == whole.part
        assert len(a.patches) == min(5, whole.grid_patches) and a.grid_patches == whole.grid_patches
        np.testing.assert_array_equal(a.patches.xy, b.patches.xy)
        assert {tuple(p) for p in a.patches.xy} <= {tuple(p) for p in whole.patches.xy}


def test_lesion_fraction_from_truth_annotations(cohort_dir: Path, tmp_path: Path) -> None:
    rows = _rows(cohort_dir)
    csv_path = _write(tmp_path / "no_fraction.csv", rows, ["slide", "path", "label", "patient",
                                                           "site", "truth"])  # fmt: skip
    cohort = load_slide_cohort(_options(csv_path), seed=0)
    for item in cohort.items:
        truth = read_truth_geojson(cohort_dir / f"{item.slide}.truth.geojson")
        expected = truth.tumour.area / item.tissue.union(truth.tumour).area
        assert item.lesion_fraction == pytest.approx(expected, rel=1e-6)
        assert (item.lesion_fraction > 0) == (item.label == "tumour")


def test_label_map_and_class_order(cohort_dir: Path, tmp_path: Path) -> None:
    rows = _rows(cohort_dir)
    for row in rows:
        row["label"] = {"tumour": "TUM", "normal": "NORM"}[row["label"]]
    csv_path = _write(tmp_path / "raw_labels.csv", rows)
    options = _options(csv_path, label_map={"TUM": "tumour", "NORM": "normal"})
    cohort = load_slide_cohort(options, seed=0)
    assert cohort.classes == ("normal", "tumour")
    assert {(i.raw_label, i.label) for i in cohort.items} == {("TUM", "tumour"),
                                                               ("NORM", "normal")}  # fmt: skip
    assert cohort_classes(SlideDataOptions(cohort=csv_path), ["b", "normal", "a"]) == (
        "normal",
        "a",
        "b",
    )


def _blank_slide(path: Path) -> Path:
    """A white 1024 × 768 Aperio-style slide at 0.25 µm/px: no tissue at all."""
    description = "Aperio Image Library v12.0.0\n1024x768 (256x256) JPEG/RGB Q=90|MPP = 0.25"
    with tifffile.TiffWriter(path) as tif:
        for index, size in enumerate(((768, 1024), (384, 512))):
            tif.write(
                np.full((*size, 3), 245, np.uint8), tile=(256, 256), compression="jpeg",
                photometric="rgb", description=description if index == 0 else None,
                subfiletype=0 if index == 0 else 1, metadata=None,
            )  # fmt: skip
    return path


def test_bad_cohort_lists_every_problem_at_once(cohort_dir: Path, tmp_path: Path) -> None:
    rows = _rows(cohort_dir)[:6]
    for index, row in enumerate(rows):
        row["patient"] = f"p{index}"
    rows[1]["path"] = str(tmp_path / "gone.svs")  # missing file
    rows[2]["label"] = "tumuor"  # unknown label
    rows[4]["patient"] = rows[5]["patient"] = "p_twice"  # one patient at two sites
    rows[4]["site"], rows[5]["site"] = "site_0", "site_1"
    (tmp_path / "broken.svs").write_text("not a slide")
    rows.append({**rows[0], "slide": "broken", "path": str(tmp_path / "broken.svs"),
                 "patient": "p_broken"})  # fmt: skip
    rows.append({**rows[0], "slide": "blank", "path": str(_blank_slide(tmp_path / "blank.svs")),
                 "patient": "p_blank"})  # fmt: skip
    csv_path = _write(tmp_path / "bad.csv", rows)
    options = _options(csv_path, classes=("normal", "tumour"))
    with pytest.raises(ConfigError) as caught:
        load_slide_cohort(options, seed=0)
    lines = str(caught.value).splitlines()
    problems = [line for line in lines if line.startswith("  - ")]
    assert "has 5 problem(s)" in lines[0]
    assert len(problems) == 5
    assert any("gone.svs' does not exist" in p for p in problems)
    assert any("unknown label 'tumuor'" in p for p in problems)
    assert any("patient 'p_twice' is at several sites (site_0, site_1)" in p for p in problems)
    assert any("slide 'broken'" in p and "cannot be read" in p for p in problems)
    assert any("slide 'blank'" in p and "has no tissue" in p for p in problems)


def test_too_few_slides_and_missing_classes_are_reported(cohort_dir: Path, tmp_path: Path) -> None:
    rows = _rows(cohort_dir)
    two = _write(tmp_path / "two.csv", rows[:2])
    with pytest.raises(ConfigError, match="too few slides to split: 2"):
        load_slide_cohort(_options(two), seed=0)
    options = _options(cohort_dir / "manifest.csv", classes=("normal", "tumour", "other"))
    with pytest.raises(ConfigError, match="class\\(es\\) other have no slide"):
        load_slide_cohort(options, seed=0)


def test_check_slide_data_cross_fields(tmp_path: Path) -> None:
    good = SlideDataOptions(cohort=tmp_path / "c.csv")
    assert check_slide_data(good) == []
    bad = replace(
        good,
        classes=("normal", "normal"),
        label_map={"x": "tumour"},
        val_fraction=0.5,
        test_fraction=0.5,
    )
    problems = check_slide_data(bad)
    assert len(problems) == 3
    assert any(p.startswith("data.label_map: maps to ['tumour']") for p in problems)


def test_slide_without_resolution_is_planned_in_level0_pixels(tmp_path: Path) -> None:
    from napari_wsi_ml.synthetic import generate_slide

    generate_slide(tmp_path / "s.svs", width=1200, height=900, seed=2, tumour="large", mpp=1.0)
    with open_slide(tmp_path / "s.svs") as slide:
        plan = plan_patch_read(slide, patch_size=32, target_mpp=slide.mpp[0])
    rows = [
        {"path": str(tmp_path / "s.svs"), "label": lab, "patient": f"p{i}", "slide": f"s{i}"}
        for i, lab in enumerate(["normal", "tumour", "normal", "tumour"])
    ]
    csv_path = _write(tmp_path / "c.csv", rows)
    cohort = load_slide_cohort(_options(csv_path, target_mpp=None, val_fraction=0.0), seed=0)
    assert cohort.items[0].plan == plan and cohort.items[0].level0_patch == 32.0
