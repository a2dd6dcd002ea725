"""Atomic saves, the ``convert`` command, and the pure core's imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from napari_wsi_ml.annotations import read_asap, read_geojson, write_asap, write_geojson
from napari_wsi_ml.cli import main
from napari_wsi_ml.errors import SaveError
from tests.conftest import ANNOTATIONS_DIR

CLASSIFICATION = ANNOTATIONS_DIR / "asap" / "CMU-1_classification.xml"


def test_failing_write_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "rater.xml"
    target.write_text("previous version")
    annotation_set = read_asap(CLASSIFICATION)

    def disk_full(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(
        SaveError, match=r"No space left on device.*previous version, if any, is intact"
    ):
        write_asap(annotation_set, target)
    assert target.read_text() == "previous version"
    assert [p.name for p in tmp_path.iterdir()] == ["rater.xml"]  # no temporary file left


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder(tmp_path: Path) -> None:
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "a.geojson").write_text("previous")
    folder.chmod(0o500)
    try:
        with pytest.raises(SaveError, match="intact"):
            write_geojson(read_asap(CLASSIFICATION), folder / "a.geojson")
        assert (folder / "a.geojson").read_text() == "previous"
    finally:
        folder.chmod(0o700)


def test_missing_folder_is_a_save_error(tmp_path: Path) -> None:
    with pytest.raises(SaveError, match="cannot create a file"):
        write_asap(read_asap(CLASSIFICATION), tmp_path / "nope" / "a.xml")


def test_save_keeps_file_permissions(tmp_path: Path) -> None:
    target = tmp_path / "a.xml"
    target.write_text("x")
    target.chmod(0o640)
    write_asap(read_asap(CLASSIFICATION), target)
    assert target.stat().st_mode & 0o777 == 0o640


def test_cli_convert_xml_to_geojson(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "a.geojson"
    assert main(["convert", str(CLASSIFICATION), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Read 5 annotation(s) in 2 class(es)" in printed
    assert printed.count("Spline written as a polygon") == 3
    assert len(read_geojson(out)) == 5


def test_cli_convert_bad_input_exit_2_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.xml"
    bad.write_text("<ASAP_Annotations><Annotations>")
    result = subprocess.run(
        [sys.executable, "-m", "napari_wsi_ml.cli", "convert", str(bad), str(tmp_path / "o.xml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{bad}, line 1" in result.stderr and "malformed" in result.stderr
    assert not (tmp_path / "o.xml").exists()


def test_cli_convert_unknown_extension(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(CLASSIFICATION), str(tmp_path / "a.txt")]) == 2
    assert "unknown annotation file extension '.txt'" in capsys.readouterr().err


def test_annotations_import_neither_qt_nor_napari() -> None:
    code = (
        "import sys, napari_wsi_ml.annotations, napari_wsi_ml.annotations.registry, "
        "napari_wsi_ml.annotations.geometry, napari_wsi_ml.annotations.spline;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('qtpy', 'napari', 'PyQt6', 'PyQt5')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
