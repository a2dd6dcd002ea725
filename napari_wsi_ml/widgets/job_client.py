"""What the Train panel asks of the job system in a short-lived helper process (no Qt here).

Task modules import torch and timm; loading them costs seconds and a gigabyte, and in a process
whose OpenGL runs on Mesa (llvmpipe, Xvfb, many AMD and Intel drivers) the LLVM that triton
bundles crashes it. The viewer therefore never imports them: it asks a short helper process
(``python -m napari_wsi_ml.widgets.job_client``) for

- ``describe TASK``: the fields of the task's config sections as plain data (:func:`describe_task`),
  from which the panel builds its forms;
- ``start --run-root DIR`` (config as JSON on stdin): validate and start the job with
  :func:`~napari_wsi_ml.jobs.api.start_job`; prints the run folder. A
  :class:`~napari_wsi_ml.errors.ConfigError` is printed to stderr and the exit code is 2.

The job itself runs in its own process group, so it outlives the helper.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import typing
from collections.abc import Sequence
from typing import Any, Literal

from napari_wsi_ml.errors import ConfigError, WsiMlError

CONFIG_ERROR_EXIT = 2


def _default(item: dataclasses.Field) -> Any:
    from napari_wsi_ml.config_schema import to_plain

    if item.default is not dataclasses.MISSING:
        return to_plain(item.default)
    if item.default_factory is not dataclasses.MISSING:
        return to_plain(item.default_factory())
    return None


def describe_field(item: dataclasses.Field, hint: Any) -> dict[str, Any]:
    """One field as plain data: ``name``, ``kind``, ``default``, bounds, ``choices``, ``tooltip``.

    ``kind`` is ``bool``, ``int``, ``float``, ``str``, ``choice`` (a ``Literal`` of texts) or
    ``yaml`` (anything else: optional values, paths, lists, mappings; written as YAML).
    """
    from napari_wsi_ml.config_schema import field_spec

    rule, default = field_spec(item), _default(item)
    kind = "yaml"
    if hint in (bool, int, float, str) and isinstance(default, hint):
        kind = hint.__name__
    elif hint is float and isinstance(default, int) and not isinstance(default, bool):
        kind, default = "float", float(default)
    elif typing.get_origin(hint) is Literal and all(
        isinstance(arg, str) for arg in typing.get_args(hint)
    ):
        kind = "choice"
    type_text = hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")
    return {
        "name": item.name,
        "kind": kind,
        "default": default,
        "choices": list(typing.get_args(hint)) if kind == "choice" else None,
        "ge": rule.ge,
        "gt": rule.gt,
        "le": rule.le,
        "tooltip": "\n".join(
            text for text in (f"{item.name}: {type_text}", rule.help, rule.hint) if text
        ),
    }


def describe_schema(schema: type) -> list[dict[str, Any]]:
    """Every init field of a config dataclass, described by :func:`describe_field`."""
    hints = typing.get_type_hints(schema)
    return [
        describe_field(item, hints[item.name]) for item in dataclasses.fields(schema) if item.init
    ]


def describe_task(name: str) -> dict[str, Any]:
    """``{"task", "options", "data"}``: the task's section fields and its data fields.

    Raises:
        ConfigError: Unknown task, or its module cannot be loaded.
    """
    from napari_wsi_ml.jobs.task import load_task_class

    task = load_task_class(name)
    return {
        "task": name,
        "options": describe_schema(task.options_schema),
        "data": describe_schema(task.data_schema),
    }


# ----------------------------------------------------------------- client side (the viewer)
DESCRIPTIONS: dict[str, dict[str, Any]] = {}
"""Task name → :func:`describe_task` result, filled by the first answer in this process."""


def helper_command(*arguments: str) -> tuple[str, list[str]]:
    """Program and arguments of a helper call (for ``QProcess.start`` or ``subprocess``)."""
    return sys.executable, ["-m", "napari_wsi_ml.widgets.job_client", *arguments]


def helper_output(exit_code: int, stdout: str, stderr: str) -> Any:
    """The helper's JSON answer, or the error it reported.

    Raises:
        ConfigError: Exit code 2: the config (or task name) is invalid; the message is stderr.
        WsiMlError: The helper failed otherwise (the last lines of stderr are shown).
    """
    if exit_code == CONFIG_ERROR_EXIT:
        raise ConfigError(stderr.strip())
    if exit_code != 0:
        tail = "\n".join(stderr.strip().splitlines()[-5:])
        raise WsiMlError(f"The job helper failed (exit code {exit_code}):\n{tail}")
    return json.loads(stdout)


def run_helper(*arguments: str, stdin: str = "") -> Any:
    """A helper call, waiting for it (scripts and tests; the panel uses QProcess)."""
    program, args = helper_command(*arguments)
    done = subprocess.run(
        [program, *args], input=stdin, capture_output=True, text=True, check=False
    )
    return helper_output(done.returncode, done.stdout, done.stderr)


# ----------------------------------------------------------------- helper side
def main(argv: Sequence[str] | None = None) -> int:
    """The helper process: ``describe TASK`` or ``start --run-root DIR`` (config on stdin)."""
    parser = argparse.ArgumentParser(prog="python -m napari_wsi_ml.widgets.job_client")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("describe").add_argument("task")
    commands.add_parser("start").add_argument("--run-root", required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "describe":
            print(json.dumps(describe_task(args.task)))
        else:
            from napari_wsi_ml.jobs import start_job

            handle = start_job(json.loads(sys.stdin.read()), run_root=args.run_root)
            print(json.dumps({"run_dir": str(handle.run_dir), "pid": handle.pid}))
    except ConfigError as error:
        print(str(error), file=sys.stderr)
        return CONFIG_ERROR_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main())
