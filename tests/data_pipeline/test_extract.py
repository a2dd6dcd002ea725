"""Extraction config validation, Dask extraction (pixels, manifest, unreadable tiles) and CLI."""

from __future__ import annotations

import csv
import functools
import json
import shutil
import tarfile
from pathlib import Path

import cv2
import numpy as np
import openslide
import pytest
import tifffile
import yaml

from napari_wsi_ml.cli import main
from napari_wsi_ml.data.config import load_config, validate_config
from napari_wsi_ml.data.extract import MANIFEST_COLUMNS, run_extraction
from napari_wsi_ml.data.resolution import resize_patch
from napari_wsi_ml.data.sampling import grid_patches, tissue_index
from napari_wsi_ml.data.slide_sampling import plan_for
from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.slide import open_slide

PATCH = 64
TARGET_MPP = 0.75  # 3× the cohort's 0.25 µm/px: read 96 px at level 1 (×2), resize to 64


@pytest.fixture(scope="module")
def client():
    """An in-process Dask client (the multi-process LocalCluster is tested once, via the CLI)."""
    from distributed import Client

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as c:
        yield c


def write_config(folder: Path, **overrides: object) -> Path:
    data: dict = {
        "target_mpp": TARGET_MPP,
        "patch_size": PATCH,
        "sampling": {"strategy": "grid"},
        "output": {"dir": str(folder / "out"), "format": "tar"},
        "chunk_size": 40,
    }
    data.update(overrides)
    path = folder / "extract.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def read_manifest(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def shard_images(out: Path, rows: list[dict[str, str]]) -> dict[str, np.ndarray]:
    """Decoded PNG of every manifest row, by key, from the tar shards."""
    images = {}
    for file in sorted({row["file"] for row in rows}):
        with tarfile.open(out / file) as tar:
            for member in tar.getmembers():
                if member.name.endswith(".png"):
                    data = np.frombuffer(tar.extractfile(member).read(), np.uint8)  # type: ignore[union-attr]
                    bgr = cv2.imdecode(data, cv2.IMREAD_COLOR)
                    images[member.name[: -len(".png")]] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return images


@functools.lru_cache(maxsize=8)
def openslide_level(path: Path, level: int) -> np.ndarray:
    """A whole pyramid level as OpenSlide decodes it (RGB)."""
    with openslide.OpenSlide(str(path)) as osr:
        size = osr.level_dimensions[level]
        return np.asarray(osr.read_region((0, 0), level, size))[..., :3].copy()


def openslide_patch(path: Path, x: int, y: int, level: int, read: tuple[int, int]) -> np.ndarray:
    """The reference pixels: OpenSlide's decoded level, cut at the level pixel nearest the
    level-0 corner (as the core addresses levels), then the core's resize.

    A level-0 corner lands between level pixels when the downsample is not a whole number
    (these slides' level 1 is ×1.9996), where OpenSlide's ``read_region`` would interpolate.
    """
    with openslide.OpenSlide(str(path)) as osr:
        downsample = osr.level_downsamples[level]
    col, row = round(x / downsample), round(y / downsample)
    region = openslide_level(path, level)[row : row + read[1], col : col + read[0]]
    assert region.shape[:2] == (read[1], read[0])
    return resize_patch(np.ascontiguousarray(region), (PATCH, PATCH))


# --- config validation ----------------------------------------------------------------------


def test_every_config_problem_is_listed_with_file_key_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        "slides: [a.svs]\npatch_sise: 256\ntarget_mpp: -1\nmin_tissue: 1.5\nworkers: two\n"
        "sampling: {strategy: gird, n_patches: 5}\noutput: {dir: out, format: zarr}\n"
        "qc: {enabled: yes, exclude: [ink]}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"{path}: 8 problems in the extraction config:"
    assert all(line.startswith(f"{path}: ") for line in lines)
    text = "\n".join(lines)
    assert "patch_sise: unknown key 'patch_sise' — did you mean 'patch_size'?" in text
    assert "target_mpp: must be > 0, got -1" in text
    assert "min_tissue: must be ≤ 1, got 1.5; write a fraction" in text
    assert "workers: must be an integer, got 'two'" in text
    assert "sampling.strategy: must be one of grid, annotations, random, got 'gird'" in text
    assert "(did you mean 'grid'?)" in text
    assert "sampling.n_patches: does not apply to strategy gird" not in text
    assert "output.format: must be one of png, tar, got 'zarr'" in text
    assert "qc.exclude: unknown entries ['ink']" in text


def test_nested_unknown_key_and_missing_requirements(tmp_path: Path) -> None:
    data = {
        "slides": ["a.svs"],
        "target_mpp": 0.5,
        "magnification": 20,
        "sampling": {"strategy": "annotations", "strid": 128},
        "output": {"dir": "out", "formt": "png"},
    }
    with pytest.raises(ConfigError) as caught:
        validate_config(data, source="c.yaml", base=tmp_path)
    text = str(caught.value)
    assert "c.yaml: sampling.strid: unknown key 'strid' — did you mean 'stride'?" in text
    assert "c.yaml: output.formt: unknown key 'formt' — did you mean 'format'?" in text
    assert "c.yaml: target_mpp: give exactly one of target_mpp or magnification" in text
    assert "c.yaml: label_map: missing for strategy annotations" in text
    assert "c.yaml: annotation_files: missing for strategy annotations" in text


def test_valid_config_resolves_paths_against_its_folder(tmp_path: Path) -> None:
    path = write_config(tmp_path, slides=["s.svs"], output={"dir": "patches", "format": "png"})
    config = load_config(path)
    assert config.slides == (tmp_path / "s.svs",)
    assert config.output_dir == tmp_path / "patches"
    assert (config.output_format, config.patch_size, config.min_tissue) == ("png", PATCH, 0.4)
    assert config.sampling == {"strategy": "grid"}


def test_broken_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("slides: [a.svs\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml: not valid YAML"):
        load_config(path)


def test_unknown_classes_and_too_fine_target_are_listed_before_work(
    tmp_path: Path, synthetic_cohort, client
) -> None:
    path = write_config(
        tmp_path,
        cohort=str(synthetic_cohort.manifest),
        target_mpp=0.1,
        label_map={"Tumour": "tumour"},
        sampling={"strategy": "annotations"},
    )
    with pytest.raises(ConfigError) as caught:
        run_extraction(load_config(path), client, progress=False)
    text = str(caught.value)
    for name in ("slide_000", "slide_003"):
        assert f"slide '{name}': Patches at 0.1 µm/px are finer than slide" in text
    assert "annotation classes not in label_map: 'tumor' (1)" in text
    assert not (tmp_path / "out").exists()


# --- extraction -----------------------------------------------------------------------------


def test_tar_export_equals_openslide_and_core_patchset(
    tmp_path: Path, synthetic_cohort, client
) -> None:
    config = load_config(write_config(tmp_path, cohort=str(synthetic_cohort.manifest)))
    result = run_extraction(config, client, progress=False)
    rows = read_manifest(result.manifest)
    assert tuple(rows[0]) == MANIFEST_COLUMNS
    assert result.skipped == 0 and not result.slide_errors
    first = synthetic_cohort.slides[0].truth
    with open_slide(first.path) as slide:
        plan = plan_for(slide, config.sampling_options())
        expected = grid_patches(
            slide, plan, min_tissue=0.4, index=tissue_index(slide, plan), label=first.label
        )
    assert (plan.level, plan.read_size) == (1, (96, 96))
    mine = [r for r in rows if r["slide"] == first.name]
    got = np.array([[int(r["x"]), int(r["y"])] for r in mine])
    np.testing.assert_array_equal(got, expected.xy)
    assert {r["label"] for r in mine} == {first.label}
    assert all(r["level"] == "1" and r["mpp"] == "0.75" and r["width"] == "192" for r in mine)
    assert result.per_slide[first.name] == len(expected) > 20
    assert result.patches == len(rows) == sum(result.per_slide.values())
    images = shard_images(config.output_dir, rows)
    assert len(images) == len(rows)
    for row in mine[:: max(1, len(mine) // 6)]:
        want = openslide_patch(first.path, int(row["x"]), int(row["y"]), 1, (96, 96))
        np.testing.assert_array_equal(images[row["key"]], want)
    with tarfile.open(config.output_dir / mine[0]["file"]) as tar:
        meta = json.loads(tar.extractfile(mine[0]["key"] + ".json").read())  # type: ignore[union-attr]
    assert (meta["x"], meta["y"], meta["slide"]) == (
        int(mine[0]["x"]),
        int(mine[0]["y"]),
        first.name,
    )


def test_png_export_with_annotation_labels(tmp_path: Path, synthetic_cohort, client) -> None:
    path = write_config(
        tmp_path,
        cohort=str(synthetic_cohort.manifest),
        label_map={"tumor": "tumour"},
        sampling={"strategy": "annotations", "background_label": "normal"},
        output={"dir": str(tmp_path / "png"), "format": "png"},
    )
    config = load_config(path)
    result = run_extraction(config, client, progress=False)
    rows = read_manifest(result.manifest)
    labels = {r["label"] for r in rows}
    assert labels == {"normal", "tumour"}
    for row in rows[:: max(1, len(rows) // 8)]:
        file = config.output_dir / row["file"]
        assert file.parent.name == row["label"] and file.stem == row["key"]
        image = cv2.cvtColor(cv2.imread(str(file)), cv2.COLOR_BGR2RGB)
        slide_path = synthetic_cohort.folder / f"{row['slide']}.svs"
        want = openslide_patch(slide_path, int(row["x"]), int(row["y"]), 1, (96, 96))
        np.testing.assert_array_equal(image, want)
    summary = json.loads((config.output_dir / "extraction.json").read_text())
    assert summary["label_names"] == ["normal", "tumour"]
    assert summary["patches"] == len(rows)


def corrupt_tile(path: Path, level: int, column: int, row: int) -> None:
    """Overwrite one JPEG tile of ``level`` with zeros."""
    with tifffile.TiffFile(path) as tif:
        page = tif.series[0].levels[level].pages[0]
        across = -(-page.imagewidth // page.tilewidth)
        index = row * across + column
        offset, count = int(page.dataoffsets[index]), int(page.databytecounts[index])
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(b"\x00" * count)


def test_unreadable_tile_skips_and_counts_its_patches(
    tmp_path: Path, synthetic_cohort, client
) -> None:
    source = synthetic_cohort.slides[0].truth.path
    copy = tmp_path / "damaged.svs"
    shutil.copyfile(source, copy)
    config = load_config(write_config(tmp_path, slides=[str(copy), str(source)]))
    with open_slide(copy) as slide:
        plan = plan_for(slide, config.sampling_options())
        patches = grid_patches(slide, plan, index=tissue_index(slide, plan))
        tile_w, tile_h = slide.geometries[1].tile_width, slide.geometries[1].tile_height
    # the tile under the middle patch, and every patch whose level-1 read touches it
    x, y = patches.xy[len(patches) // 2] // 2
    column, row = x // tile_w, y // tile_h
    corrupt_tile(copy, 1, int(column), int(row))
    lo = patches.xy // 2
    hi = lo + plan.read_size
    touches = (
        (lo[:, 0] < (column + 1) * tile_w)
        & (hi[:, 0] > column * tile_w)
        & (lo[:, 1] < (row + 1) * tile_h)
        & (hi[:, 1] > row * tile_h)
    )
    assert 1 <= touches.sum() < len(patches)
    result = run_extraction(config, client, progress=False)
    assert result.failed == {"damaged": int(touches.sum()), source.stem: 0}
    assert result.per_slide["damaged"] == len(patches) - int(touches.sum())
    assert result.per_slide[source.stem] == len(patches)
    assert "column" in result.errors[0] and "damaged.svs" in result.errors[0]
    written = {
        (int(r["x"]), int(r["y"]))
        for r in read_manifest(result.manifest)
        if r["slide"] == "damaged"
    }
    assert written == {tuple(p) for p in patches.xy[~touches].tolist()}


# --- CLI (the one test that starts a real two-process LocalCluster) --------------------------


def test_cli_extract_on_local_cluster_and_exit_codes(
    tmp_path: Path, synthetic_cohort, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(
        tmp_path,
        cohort=str(synthetic_cohort.manifest),
        sampling={"strategy": "random", "n_patches": 30},
        seed=5,
    )
    assert main(["extract", str(path), "--workers", "2", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "120 patches from 4 slides" in out
    rows = read_manifest(tmp_path / "out" / "manifest.csv")
    assert [sum(r["slide"] == s.truth.name for r in rows) for s in synthetic_cohort.slides] == [
        30
    ] * 4
    assert all(float(r["coverage"]) >= 0.4 for r in rows)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"cohort": "x.csv", "target_mp": 0.5}))
    assert main(["extract", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "target_mp: unknown key 'target_mp' — did you mean 'target_mpp'?" in err
    assert main(["extract", str(tmp_path / "missing.yaml")]) == 2
    assert "Cannot read extraction config" in capsys.readouterr().err


def test_random_extraction_is_reproducible_in_process(
    tmp_path: Path, synthetic_cohort, client
) -> None:
    def run(folder: Path) -> list[tuple[str, str, str]]:
        folder.mkdir()
        config = load_config(
            write_config(
                folder,
                cohort=str(synthetic_cohort.manifest),
                sampling={"strategy": "random", "n_patches": 30},
                seed=5,
            )
        )
        rows = read_manifest(run_extraction(config, client, progress=False).manifest)
        return [(r["slide"], r["x"], r["y"]) for r in rows]

    assert run(tmp_path / "a") == run(tmp_path / "b")


def test_shard_members_follow_webdataset_naming(tmp_path: Path, synthetic_cohort, client) -> None:
    config = load_config(write_config(tmp_path, cohort=str(synthetic_cohort.manifest)))
    rows = read_manifest(run_extraction(config, client, progress=False).manifest)
    with tarfile.open(config.output_dir / rows[0]["file"]) as tar:
        names = tar.getnames()
    assert names[:3] == [f"{rows[0]['key']}.{ext}" for ext in ("png", "cls", "json")]
    assert all(name.count(".") == 1 for name in names)
    assert len(names) == 3 * sum(r["file"] == rows[0]["file"] for r in rows) <= 3 * 40
