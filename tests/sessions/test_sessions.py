"""Sessions: file names, save/autosave/recovery, blinded-mode rules, class statistics."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ml.annotations import Annotation, AnnotationSet, Group
from napari_wsi_ml.errors import SaveError
from napari_wsi_ml.sessions import (
    Session,
    SessionError,
    autosave,
    blinded_refusal,
    discard_recovery,
    load_recovery,
    load_saved,
    needs_recovery,
    other_rater_files,
    rater_from_filename,
    save,
)
from napari_wsi_ml.sessions.statistics import class_statistics, format_area


def _set(*xs: float) -> AnnotationSet:
    annotations = [
        Annotation(f"A{i}", "Polygon", [[x, 0.5], [x + 10, 0.5], [x + 10, 20.5]], group="tumor")
        for i, x in enumerate(xs)
    ]
    return AnnotationSet(annotations, groups={"tumor": Group("tumor", color="#FF0000")})


def _touch_later(path: Path, seconds: float) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + int(seconds * 1e9)))


def test_files_are_named_after_slide_and_rater(tmp_path: Path) -> None:
    beside = Session(tmp_path / "slides" / "case 7.svs", " alice ")
    assert beside.rater == "alice"
    assert beside.annotation_path == tmp_path / "slides" / "case 7.alice.xml"
    assert beside.recovery_path == tmp_path / "slides" / "case 7.alice.recovery.xml"
    project = Session(tmp_path / "slides" / "case 7.svs", "bob", tmp_path / "project")
    assert project.annotation_path == tmp_path / "project" / "case 7.bob.xml"


@pytest.mark.parametrize("bad", ["", "a.b", "x/y", "..", "recovery"])
def test_unusable_rater_names_are_refused(tmp_path: Path, bad: str) -> None:
    with pytest.raises(SessionError, match="Rater name"):
        Session(tmp_path / "s.svs", bad)


def test_rater_from_filename() -> None:
    assert rater_from_filename("/x/case.alice.xml", "case") == "alice"
    assert rater_from_filename("/x/case.alice.recovery.xml", "case") == "alice"
    assert rater_from_filename("/x/other.alice.xml", "case") is None
    assert rater_from_filename("/x/case.xml", "case") is None
    assert rater_from_filename("/x/case.v2.alice.xml", None) == "alice"


def test_save_then_load_round_trips_and_drops_recovery(tmp_path: Path) -> None:
    session = Session(tmp_path / "case.svs", "alice")
    autosave(session, _set(1.25))
    assert session.recovery_path.is_file()
    path = save(session, _set(1.25, 100.125))
    assert path == session.annotation_path
    assert not session.recovery_path.exists()
    loaded = load_saved(session)
    assert loaded is not None and loaded.rater == "alice"
    assert [a.coordinates[0, 0] for a in loaded] == [1.25, 100.125]


def test_needs_recovery_only_when_recovery_is_newer(tmp_path: Path) -> None:
    session = Session(tmp_path / "case.svs", "alice")
    assert not needs_recovery(session)
    autosave(session, _set(3.0))
    assert needs_recovery(session)  # no saved file at all
    save(session, _set(1.0))
    autosave(session, _set(2.0, 5.0))
    _touch_later(session.recovery_path, 2)
    assert needs_recovery(session)
    recovered = load_recovery(session)
    assert recovered is not None and len(recovered) == 2
    _touch_later(session.annotation_path, 5)
    assert not needs_recovery(session)
    discard_recovery(session)
    assert not session.recovery_path.exists() and load_recovery(session) is None


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_failed_save_keeps_previous_file(tmp_path: Path) -> None:
    session = Session(tmp_path / "case.svs", "alice")
    save(session, _set(1.0))
    before = session.annotation_path.read_bytes()
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(SaveError, match=r"case\.alice\.xml"):
            save(session, _set(1.0, 2.0))
    finally:
        tmp_path.chmod(0o700)
    assert session.annotation_path.read_bytes() == before


def test_full_disk_keeps_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    session = Session(tmp_path / "case.svs", "alice")
    save(session, _set(1.0))
    before = session.annotation_path.read_bytes()

    def disk_full(*_: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(SaveError, match="No space left"):
        save(session, _set(1.0, 2.0))
    monkeypatch.undo()
    assert session.annotation_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["case.alice.xml"]


def test_save_into_missing_folder_says_so(tmp_path: Path) -> None:
    session = Session(tmp_path / "case.svs", "alice", tmp_path / "gone")
    with pytest.raises(SaveError, match="does not exist"):
        save(session, _set(1.0))


def test_blinded_refusal_allows_only_own_files(tmp_path: Path) -> None:
    assert blinded_refusal(tmp_path / "case.bob.xml", "case", None) is None
    assert blinded_refusal(tmp_path / "case.alice.xml", "case", "alice") is None
    assert blinded_refusal(tmp_path / "case.alice.recovery.xml", "case", "alice") is None
    message = blinded_refusal(tmp_path / "case.bob.xml", "case", "alice")
    assert message is not None and "case.bob.xml" in message and "coordinator" in message
    assert blinded_refusal(tmp_path / "tumor_regions.xml", "case", "alice") is not None


def test_other_rater_files(tmp_path: Path) -> None:
    for name in ("case.alice.xml", "case.bob.xml", "case.bob.recovery.xml", "case.carol.xml"):
        (tmp_path / name).write_text("<ASAP_Annotations/>")
    (tmp_path / "other.dave.xml").write_text("<ASAP_Annotations/>")
    found = other_rater_files(tmp_path, "case", "alice")
    assert found == {"bob": tmp_path / "case.bob.xml", "carol": tmp_path / "case.carol.xml"}


def test_class_statistics_areas_in_um2() -> None:
    square = [[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]]
    annotation_set = AnnotationSet(
        [
            Annotation(
                "a", "Polygon", square, group="tumor", holes=[[[10, 10], [20, 10], [20, 20]]]
            ),
            Annotation("b", "Rectangle", np.array(square) * 2, group="tumor"),
            Annotation("c", "Dot", [[5.0, 5.0]], group="cell"),
        ],
        groups={"tumor": Group("tumor"), "stroma": Group("stroma")},
    )
    stats = class_statistics(annotation_set, (0.25, 0.5))
    assert stats["tumor"].count == 2
    assert stats["tumor"].area_px == pytest.approx(10_000 - 50 + 40_000)
    assert stats["tumor"].area_um2 == pytest.approx((10_000 - 50 + 40_000) * 0.125)
    assert stats["stroma"].count == 0 and stats["cell"].area_px == 0
    assert class_statistics(annotation_set, None)["tumor"].area_um2 is None
    assert format_area(6_243.75, 0) == "6,244 µm²"
    assert format_area(2.5e6, 0) == "2.500 mm²"
    assert format_area(None, 1234) == "1,234 px²"
