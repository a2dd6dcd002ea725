"""events.jsonl: writer, incremental reader (partial lines), tail."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_wsi_ml.jobs.events import (
    EventReader,
    EventWriter,
    iter_last_events,
    make_event,
    read_events,
)


def test_reader_returns_only_new_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    reader = EventReader(path)
    assert reader.read_new() == []  # before the file exists
    writer = EventWriter(path)
    writer.write(make_event("status", status="running"))
    writer.write(make_event("progress", step=1, total=10, loss=float("nan")))
    first = reader.read_new()
    assert [e.kind for e in first] == ["status", "progress"]
    assert first[1].fields == {"step": 1, "total": 10, "loss": None}  # NaN → null
    with open(path, "a", encoding="utf-8") as file:
        file.write('{"time": 1.0, "kind": "metric", "epo')  # a write in progress
    assert reader.read_new() == []
    with open(path, "a", encoding="utf-8") as file:
        file.write('ch": 0, "val_loss": 0.5}\nnot json\n')
    (metric,) = reader.read_new()
    assert metric.kind == "metric" and metric.fields == {"epoch": 0, "val_loss": 0.5}
    writer.close()
    assert len(read_events(path)) == 3


def test_tail_reads_newest_first_from_a_big_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    writer = EventWriter(path)
    for step in range(2000):
        writer.write(make_event("progress", step=step, total=2000))
    writer.write(make_event("log", message="done"))
    writer.close()
    events = list(iter_last_events(path, max_bytes=4096))
    assert events[0].kind == "log"
    assert events[1].fields["step"] == 1999
    assert 10 < len(events) < 100


def test_event_kind_and_field_names_are_checked() -> None:
    with pytest.raises(ValueError, match="kind"):
        make_event("progres", step=1)
    with pytest.raises(ValueError, match="time"):
        make_event("log", time=3)
