"""``napari-wsi-ml info SLIDE [--json]``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from napari_wsi_ml.cli import main

SLIDES_DIR = Path(__file__).resolve().parents[1] / "data" / "slides"


def test_info_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(SLIDES_DIR / "boxes.tiff")]) == 0
    out = capsys.readouterr().out
    assert "300 x 250 px" in out
    assert "downsample 4.0161, tiles 64 x 64" in out
    assert "generic-tiff" in out
    assert "352.8 x 352.8 µm/px" in out


def test_info_json_mpp_unknown(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(SLIDES_DIR / "tcga-cr-7395-01a-01-ts1.svs"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["mpp"] is None
    assert [(lv["width"], lv["height"]) for lv in info["levels"]] == [(4443, 3567), (2221, 1783)]
    assert info["levels"][1]["downsample"] == pytest.approx(2.0005, abs=1e-4)
    assert info["associated_images"] == ["thumbnail"]
    assert len(info["fingerprint"]) == 64


def test_info_text_says_unknown_mpp(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(SLIDES_DIR / "tcga-cr-7395-01a-01-ts1.svs")]) == 0
    assert "mpp:          unknown" in capsys.readouterr().out


@pytest.mark.parametrize("name", ["broken.svs", "unreadable.svs", "kidney-48-5.tif", "missing.svs"])
def test_info_bad_slide_exit_code_2_without_traceback(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["info", str(SLIDES_DIR / name)]) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("napari-wsi-ml: error: ")
    assert name in captured.err and "Traceback" not in captured.err
    assert captured.out == ""
