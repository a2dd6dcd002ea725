"""Run every benchmark in turn and print their Markdown tables (`make bench`).

Benchmarks that draw in napari run under Xvfb when there is no display. Each script keeps its
generated inputs under the system's temporary folder (or ``bench_output/``), so a second run
reuses them. The figures quoted in docs/benchmarks.md come from these commands.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

# (script, arguments, needs a display)
BENCHMARKS: list[tuple[str, list[str], bool]] = [
    ("bench_slide_viewport.py", ["--slide-dir", "bench_output", "--viewports", "30"], False),
    ("bench_open_first_frame.py", ["--slide-dir", "bench_output"], True),
    ("bench_synthetic.py", ["--size", "50000"], False),
    ("bench_annotation_parse.py", ["--repeats", "3"], False),
    ("bench_annotation_display.py", [], True),
    ("bench_live_window.py", [], True),
    ("bench_agreement.py", [], False),
    ("bench_patches.py", [], False),
    ("bench_extract.py", [], False),
    ("bench_dataloader.py", [], False),
]


def command_for(script: str, arguments: list[str], needs_display: bool) -> list[str]:
    """The command line of one benchmark, under Xvfb when it draws and there is no display."""
    command = [sys.executable, str(HERE / script), *arguments]
    if needs_display and not os.environ.get("DISPLAY") and shutil.which("xvfb-run"):
        command = ["xvfb-run", "-a", "-s", "-screen 0 1920x1200x24", *command]
    return command


def main() -> int:
    """Run all benchmarks; the exit code is the number that failed."""
    failed = 0
    for script, arguments, needs_display in BENCHMARKS:
        command = command_for(script, arguments, needs_display)
        print(f"\n## {script}\n\n    {' '.join(command)}\n", flush=True)
        failed += subprocess.run(command, check=False).returncode != 0
    return failed


if __name__ == "__main__":
    sys.exit(main())
