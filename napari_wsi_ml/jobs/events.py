"""The ``events.jsonl`` format of a run, its writer, and an incremental reader (tail).

Format (one JSON object per line, UTF-8, appended and flushed line by line)::

    {"time": 1718000000.123, "kind": "progress", "step": 40, "total": 400, "epoch": 1, ...}

- ``time``: seconds since the epoch (float); ``kind``: one of :data:`EVENT_KINDS`; every other
  key is a field of the event (flat, JSON values only). Fields per kind:

  - ``status``: ``status`` (``running`` | ``finished`` | ``failed`` | ``cancelled``), optional
    ``message``, ``resumed_from`` (``{"epoch": int, "step": int}``), ``exit_code``.
  - ``progress``: ``step`` and ``total`` (optimisation steps over the whole run), ``elapsed_s``,
    ``eta_s`` (null until known), optional ``epoch`` and any running metrics (``loss`` …).
  - ``metric``: ``epoch`` plus one number per metric (``train_loss``, ``val_loss``, ``val_auc``…),
    logged once per epoch; the same rows make up ``metrics.json["history"]``.
  - ``log``: ``message`` and ``level`` (``info`` | ``warning``).
  - ``error``: ``message``, optional ``traceback`` and ``where`` (e.g. ``checkpoint``).

A reader that meets a line without its final newline (a write in progress) leaves it for the
next call; a line that is not JSON (a crash mid-write) is skipped.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVENT_KINDS = ("status", "progress", "metric", "log", "error")
EVENTS_FILE = "events.jsonl"


@dataclass(frozen=True)
class Event:
    """One line of ``events.jsonl``."""

    time: float
    kind: str
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        """The line (without newline) that represents this event."""
        return json.dumps(
            {"time": self.time, "kind": self.kind, **_plain(self.fields)}, allow_nan=False
        )

    @classmethod
    def from_json(cls, line: str) -> Event | None:
        """Parse one line; None when it is not an event object."""
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict) or data.get("kind") not in EVENT_KINDS:
            return None
        when = data.pop("time", 0.0)
        kind = data.pop("kind")
        return cls(float(when) if isinstance(when, int | float) else 0.0, kind, data)


def make_event(kind: str, **fields: Any) -> Event:
    """An event of ``kind`` stamped with the current time.

    Raises:
        ValueError: ``kind`` is not one of :data:`EVENT_KINDS`, or a field is named time/kind.
    """
    if kind not in EVENT_KINDS:
        raise ValueError(f"event kind must be one of {', '.join(EVENT_KINDS)}, got {kind!r}")
    clash = {"time", "kind"} & fields.keys()
    if clash:
        raise ValueError(f"event fields may not be named {sorted(clash)}")
    return Event(time.time(), kind, dict(fields))


def _plain(value: Any) -> Any:
    """JSON-safe copy: tensors/numpy scalars → numbers, NaN/inf → null, paths → text."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


class EventWriter:
    """Appends events to a file, one flushed line each (safe to read while written)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)

    def write(self, event: Event) -> None:
        """Append one event and flush it to the OS."""
        self._file.write(event.to_json() + "\n")
        self._file.flush()

    def close(self) -> None:
        """Close the file (further writes raise)."""
        self._file.close()


class EventReader:
    """Follows an ``events.jsonl`` file: each :meth:`read_new` returns the events added since.

    Works before the file exists, and when a line is still being written.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._offset = 0
        self._partial = b""

    def read_new(self) -> list[Event]:
        """Events appended since the previous call (possibly none)."""
        try:
            with open(self.path, "rb") as file:
                file.seek(self._offset)
                chunk = file.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        lines = data.split(b"\n")
        self._partial = lines.pop()  # b"" when the data ended with a newline
        events = (Event.from_json(line.decode("utf-8", "replace")) for line in lines if line)
        return [event for event in events if event is not None]


def read_events(path: str | os.PathLike[str]) -> list[Event]:
    """Every complete event of a file (empty when it does not exist)."""
    return EventReader(path).read_new()


def iter_last_events(path: str | os.PathLike[str], *, max_bytes: int = 65536) -> Iterator[Event]:
    """The events of the last ``max_bytes`` of a file, newest first (cheap on big files)."""
    try:
        with open(path, "rb") as file:
            file.seek(0, os.SEEK_END)
            size = file.tell()
            file.seek(max(0, size - max_bytes))
            data = file.read()
    except FileNotFoundError:
        return
    lines = data.split(b"\n")
    if size > max_bytes:
        lines = lines[1:]  # the first line is probably cut
    for line in reversed(lines):
        event = Event.from_json(line.decode("utf-8", "replace")) if line else None
        if event is not None:
            yield event
