"""Following one training run from its folder, for display: new events, state, outcome (no Qt).

:class:`RunFollower` reads only the lines added to ``events.jsonl`` since its last poll and
folds them into a :class:`~napari_wsi_ml.viewer.run_plots.RunTrace`; the run's state comes from
its process (when resumed from here) or ``status.json``. The Train panel polls one every second.
"""

from __future__ import annotations

from pathlib import Path

from napari_wsi_ml.errors import WsiMlError
from napari_wsi_ml.jobs import RunHandle, read_status
from napari_wsi_ml.jobs.events import Event, EventReader
from napari_wsi_ml.jobs.run_dir import RunPaths, read_json
from napari_wsi_ml.viewer.run_plots import RunTrace

ACTIVE = ("queued", "running")
LOG_LINES = 20


class RunFollower:
    """The events and state of the run in ``run_dir``, read incrementally.

    Args:
        run_dir: The run folder.
        handle: The run's handle when its process was started from this process (its exit
            is then seen at once, before ``status.json`` says so).
    """

    def __init__(self, run_dir: Path, handle: RunHandle | None = None) -> None:
        self.run_dir = run_dir
        self.handle = handle if handle is not None and handle.run_dir == run_dir else None
        self.trace = RunTrace()
        self.state = ""
        self._reader = EventReader(RunPaths(run_dir).events)

    def poll(self) -> tuple[list[Event], bool]:
        """Read the new events; returns them and whether the state changed."""
        state = self.current_state()
        events = self._reader.read_new()
        self.trace.extend(events)
        changed, self.state = state != self.state, state
        return events, changed

    def current_state(self) -> str:
        """``running`` while a process started here lives, else ``status.json``'s state."""
        if self.handle is not None and self.handle.poll() is None:
            return "running"
        try:
            return read_status(self.run_dir).status
        except WsiMlError:
            return "missing"

    @property
    def active(self) -> bool:
        """Queued or running."""
        return self.state in ACTIVE

    def error_report(self) -> str:
        """The run's last error and the last lines of its ``log.txt``."""
        try:
            fallback = read_status(self.run_dir).message
        except WsiMlError:
            fallback = None
        message = self.trace.errors[-1] if self.trace.errors else fallback or "the job failed"
        tail = RunHandle(self.run_dir).log_tail(LOG_LINES)
        return f"{message}\n\n— last lines of log.txt —\n{tail}" if tail else message

    def metrics_text(self) -> str:
        """The best epoch and the scalar summary values of ``metrics.json``, one a line."""
        metrics = read_json(RunPaths(self.run_dir).metrics)
        if not isinstance(metrics, dict):
            return ""
        lines = []
        best = metrics.get("best") or {}
        if isinstance(best.get("value"), int | float):
            lines.append(f"best {best['metric']} = {best['value']:.4g} (epoch {best.get('epoch')})")
        summary = metrics.get("summary") or {}
        lines += [f"{k} = {v:.4g}" for k, v in summary.items() if isinstance(v, int | float)]
        return "\n".join(lines)

    def heatmap_files(self) -> list[Path]:
        """The heatmaps the run wrote."""
        return sorted(RunPaths(self.run_dir).heatmaps.glob("*.npz"))
