"""Cohort CSVs checked all at once; splits grouped by patient, stratified, reproducible."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ml.data import Split, read_cohort, split_cohort, split_slides
from napari_wsi_ml.errors import ConfigError


def toy_cohort(n_patients: int = 60, seed: int = 0) -> tuple[list, list, list, list]:
    """Patients with 1–3 slides each, a patient label, one of 3 sites."""
    rng = np.random.default_rng(seed)
    slides, labels, patients, sites = [], [], [], []
    for p in range(n_patients):
        label = "tumour" if p % 3 == 0 else "normal"  # one third tumour
        for k in range(int(rng.integers(1, 4))):
            slides.append(f"p{p}_s{k}")
            labels.append(label)
            patients.append(f"p{p}")
            sites.append(f"site_{p % 3}")
    return slides, labels, patients, sites


def test_no_patient_in_two_splits_and_reproducible() -> None:
    slides, labels, patients, sites = toy_cohort()
    for seed in range(5):
        split = split_slides(slides, labels, patients, sites=sites, val=0.2, test=0.2, seed=seed)
        where: dict[str, set[str]] = {}
        for slide, patient in zip(slides, patients, strict=True):
            where.setdefault(patient, set()).add(split.assignment[slide])
        assert all(len(parts) == 1 for parts in where.values())
        again = split_slides(slides, labels, patients, sites=sites, val=0.2, test=0.2, seed=seed)
        assert again.assignment == split.assignment
    other = split_slides(slides, labels, patients, val=0.2, test=0.2, seed=99)
    assert other.assignment != split.assignment


def test_splits_are_roughly_stratified_and_sized() -> None:
    slides, labels, patients, _ = toy_cohort(90)
    split = split_slides(slides, labels, patients, val=0.2, test=0.2, seed=1)
    overall = Counter(labels)["tumour"] / len(labels)
    for part in ("train", "val", "test"):
        names = split.slides(part)
        share = sum(labels[slides.index(s)] == "tumour" for s in names) / len(names)
        assert abs(share - overall) < 0.12, (part, share, overall)
    sizes = split.counts()
    assert 0.1 < sizes["test"] / len(slides) < 0.3 and 0.1 < sizes["val"] / len(slides) < 0.3


def test_held_out_sites_go_to_test_whole(tmp_path: Path) -> None:
    slides, labels, patients, sites = toy_cohort()
    split = split_slides(slides, labels, patients, sites=sites, holdout_sites=["site_2"], seed=0)
    test_sites = {sites[slides.index(s)] for s in split.slides("test")}
    assert test_sites == {"site_2"}
    assert split.counts()["test"] == sites.count("site_2")
    assert split.counts()["val"] > 0
    path = split.save(tmp_path / "split.json")
    loaded = Split.load(path)
    assert loaded == split and loaded.params["holdout_sites"] == ["site_2"]
    with pytest.raises(ConfigError, match="not in the cohort"):
        split_slides(slides, labels, patients, sites=sites, holdout_sites=["site_9"])


def test_a_leaking_split_file_is_refused(tmp_path: Path) -> None:
    leak = Split({"a": "train", "b": "test"}, {"a": "p1", "b": "p1"}, 0)
    with pytest.raises(ConfigError, match=r"p1: test, train"):
        leak.validate()
    (tmp_path / "leak.json").write_text(leak.to_json())
    with pytest.raises(ConfigError, match="data leak"):
        Split.load(tmp_path / "leak.json")
    with pytest.raises(ConfigError, match="not a split"):
        Split.from_json("{}")


def test_synthetic_manifest_reads_and_splits(synthetic_cohort) -> None:
    cohort = read_cohort(synthetic_cohort.manifest, labels=("normal", "tumour"))
    assert len(cohort) == 4 and cohort.labels == ["normal", "tumour"]
    first = cohort.slides[0]
    assert first.path.is_file() and first.annotations[0].name.endswith(".truth.xml")
    assert first.extra["mpp"] == "0.25" and first.site.startswith("site_")
    assert cohort[first.slide] is first
    split = split_cohort(cohort, val=0.25, test=0.25, seed=0)
    split.validate()
    assert set(split.assignment) == {s.slide for s in cohort}


def write_csv(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_cohort_problems_are_all_listed_at_once(tmp_path: Path) -> None:
    (tmp_path / "a.svs").write_bytes(b"x")
    rows = [
        {"slide": "a", "path": "a.svs", "label": "tumour", "patient": "p1", "site": "s1",
         "annotations": "a.xml"},
        {"slide": "b", "path": "missing.svs", "label": "tumor", "patient": "p1", "site": "s2",
         "annotations": ""},
        {"slide": "a", "path": "a.svs", "label": "", "patient": "p3", "site": "s1",
         "annotations": ""},
    ]  # fmt: skip
    path = write_csv(tmp_path / "cohort.csv", rows)
    with pytest.raises(ConfigError) as caught:
        read_cohort(path, labels=("normal", "tumour"))
    message = str(caught.value)
    assert "5 problem(s)" in message, message
    for expected in (
        "line 2: annotation file",
        "line 3: slide file",
        "line 3: unknown label 'tumor'",
        "line 4: empty label",
        "patient 'p1' is at several sites (s1, s2)",
    ):
        assert expected in message
    write_csv(tmp_path / "bad.csv", [{"file": "a.svs", "label": "x"}])
    with pytest.raises(ConfigError, match="lacks the columns path, patient"):
        read_cohort(tmp_path / "bad.csv")
    with pytest.raises(ConfigError, match="Cannot read"):
        read_cohort(tmp_path / "nothing.csv")
