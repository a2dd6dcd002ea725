"""What a job type (a *task*) provides, and the registry of tasks by name.

A task is a class with a no-argument constructor and these class attributes and methods::

    class PatchClassifierTask:
        name = "patch_classifier"             # the value of `job.task` in a config
        options_schema = PatchClassifierOptions  # dataclass of the `patch_classifier:` section
        data_schema = PatchDataOptions        # dataclass of the `data:` section

        def check_config(self, config: JobConfig) -> list[str]:   # optional
            return []  # cross-field problems, each "key: what is wrong; write what instead."

        def run(self, ctx: RunContext) -> None:
            ...  # train; read ctx.config.task / ctx.config.data; see run_context.py

Config layout: ``job:`` (generic, :class:`~napari_wsi_ml.jobs.config.JobOptions`), ``data:``
(``data_schema``) and a section named after the task (``options_schema``). The schemas are
frozen dataclasses, validated by :mod:`napari_wsi_ml.config_schema` (field types; ranges and
choices in ``field(metadata=...)``) before anything runs.

``run`` returns normally when training ends *or* when ``ctx.should_stop()`` turned true (after
a ``ctx.save_checkpoint``); the runner then records ``finished`` or ``cancelled``. Any exception
makes the run ``failed``. When ``ctx.resume_state`` is not None the task continues from it.

The registry maps names to ``"module:Class"`` strings, imported only when the task is used, so
listing tasks never imports torch-heavy code.
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, runtime_checkable

from napari_wsi_ml.errors import ConfigError

if TYPE_CHECKING:
    from napari_wsi_ml.jobs.run_context import RunContext

TASKS: dict[str, str] = {
    "smoke": "napari_wsi_ml.jobs.builtin_tasks:SmokeTask",
    "patch_classifier": "napari_wsi_ml.training.patch_classifier:PatchClassifierTask",
    "topk_mil": "napari_wsi_ml.training.topk_mil:TopKMilTask",
    "attention_mil": "napari_wsi_ml.training.attention_mil:AttentionMilTask",
    "whole_slide_cnn": "napari_wsi_ml.training.whole_slide:WholeSlideCnnTask",
    "end_to_end": "napari_wsi_ml.training.end_to_end:EndToEndTask",
    "encoder_eval": "napari_wsi_ml.training.encoder_eval:EncoderEvalTask",
}
"""Task name → ``"module:Class"``; add an entry here to register a job type."""


@runtime_checkable
class Task(Protocol):
    """A job type; see the module docstring."""

    name: ClassVar[str]
    options_schema: ClassVar[type]
    data_schema: ClassVar[type]

    def run(self, ctx: RunContext) -> None:
        """Train (or evaluate) with the run context; return when done or stopped."""


def task_names() -> tuple[str, ...]:
    """The registered task names, sorted."""
    return tuple(sorted(TASKS))


def load_task_class(name: str) -> type[Any]:
    """Import and return the task class registered under ``name``.

    Raises:
        ConfigError: Unknown name (with the closest known names), or its module cannot be
            imported (the import error is shown).
    """
    target = TASKS.get(name)
    if target is None:
        close = difflib.get_close_matches(name, TASKS, n=1)
        maybe = f" — did you mean '{close[0]}'?" if close else ""
        raise ConfigError(
            f"job.task: unknown task '{name}'{maybe} Known tasks: {', '.join(task_names())}."
        )
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        return getattr(module, class_name)
    except (ImportError, AttributeError) as error:
        raise ConfigError(
            f"job.task: task '{name}' cannot be loaded from {target} ({error}). "
            "Check the installation (pip install -e .) or the TASKS registry."
        ) from error


def check_task_class(cls: type[Any]) -> None:
    """Raise TypeError unless ``cls`` has what :class:`Task` requires."""
    missing = [
        attr for attr in ("name", "options_schema", "data_schema", "run") if not hasattr(cls, attr)
    ]
    if missing:
        raise TypeError(f"task class {cls.__qualname__} lacks {', '.join(missing)}")
