"""A magicgui form of a config section, built from its field descriptions.

Descriptions come from :func:`~napari_wsi_ml.widgets.job_client.describe_task` (the task's
config dataclasses as plain data). ``bool`` → check box, ``int`` / ``float`` → spin box within
the field's bounds, ``choice`` → combo box, ``str`` → line edit; ``yaml`` fields (optional
values, paths, lists, mappings) are line edits holding YAML (``[0.5, 2]``, ``{tumor: tumour}``;
empty means ``null``). :meth:`ConfigForm.values` gives plain values for the config mapping,
which the job system validates as it validates a YAML file: the form and a file cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import yaml
from magicgui.widgets import CheckBox, ComboBox, Container, FloatSpinBox, LineEdit, SpinBox, Widget

from napari_wsi_ml.errors import ConfigError

BIG = 1e9


def float_step(value: float) -> float:
    """A spin-box step a tenth of ``value``'s magnitude (at most 0.1); its decimals follow."""
    if value == 0 or not math.isfinite(value):
        return 0.01
    return min(10.0 ** (math.floor(math.log10(abs(value))) - 1), 0.1)


def yaml_text(value: Any) -> str:
    """``value`` as one line of YAML; empty for None."""
    if value is None:
        return ""
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def _low(field: Mapping[str, Any], step: float) -> float:
    if field.get("ge") is not None:
        return float(field["ge"])
    return float(field["gt"]) + step if field.get("gt") is not None else -BIG


def field_widget(field: Mapping[str, Any]) -> Widget:
    """The widget of one described field, holding its default."""
    kind, default = field["kind"], field["default"]
    common: dict[str, Any] = {
        "name": field["name"],
        "label": field["name"].replace("_", " "),
        "tooltip": field.get("tooltip") or None,
    }
    high = float(field["le"]) if field.get("le") is not None else BIG
    if kind == "bool":
        return CheckBox(value=bool(default), **common)
    if kind == "choice":
        return ComboBox(choices=list(field["choices"]), value=default, **common)
    if kind == "int":
        return SpinBox(value=default, min=int(_low(field, 1)), max=int(high), **common)
    if kind == "float":
        step = float_step(float(default))
        return FloatSpinBox(value=default, min=_low(field, step), max=high, step=step, **common)
    if kind == "str":
        return LineEdit(value=default, **common)
    return LineEdit(value=yaml_text(default), **common)


class ConfigForm(Container):
    """The widgets of a config section's fields (minus ``skip``), as one magicgui container."""

    def __init__(self, fields: Iterable[Mapping[str, Any]], *, skip: Iterable[str] = ()) -> None:
        left_out = set(skip)
        shown = [field for field in fields if field["name"] not in left_out]
        self.yaml_fields = {field["name"] for field in shown if field["kind"] == "yaml"}
        super().__init__(widgets=[field_widget(field) for field in shown], labels=True)

    def widget(self, name: str) -> Widget:
        """The widget of field ``name`` (KeyError when the form has none)."""
        for widget in self:
            if widget.name == name:
                return widget
        raise KeyError(name)

    def values(self) -> dict[str, Any]:
        """Field name → plain value, ready for the config mapping.

        Raises:
            ConfigError: A YAML field's text is not valid YAML.
        """
        values = {}
        for widget in self:
            value = widget.value
            if widget.name in self.yaml_fields:
                try:
                    value = yaml.safe_load(value) if value.strip() else None
                except yaml.YAMLError as error:
                    raise ConfigError(
                        f"{widget.name}: {value!r} is not valid YAML ({error}). "
                        "Write a value such as 0.5, [1, 2] or {tumor: tumour}."
                    ) from error
            values[widget.name] = value
        return values
