"""A magicgui form generated from a config-section dataclass (a task's options or data schema).

Each field becomes a widget of its type: ``bool`` → check box, ``int`` / ``float`` → spin box
within the field's bounds (:func:`~napari_wsi_ml.config_schema.spec`), ``Literal`` → combo box,
``str`` → line edit. Any other type (optional numbers, paths, lists, mappings) is a line edit
holding YAML (``[0.5, 2]``, ``{tumor: tumour}``; empty means ``null``). :meth:`ConfigForm.values`
returns plain values for the config mapping; the config validation checks them as it checks
a YAML file, so the form and the file cannot disagree.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Iterable
from typing import Any, Literal

import yaml
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FloatSpinBox,
    LineEdit,
    SpinBox,
    Widget,
)

from napari_wsi_ml.config_schema import field_spec, to_plain
from napari_wsi_ml.errors import ConfigError

BIG = 1e9


def _default(item: dataclasses.Field) -> Any:
    if item.default is not dataclasses.MISSING:
        return item.default
    if item.default_factory is not dataclasses.MISSING:
        return item.default_factory()
    return None


def _float_step(value: float) -> float:
    """A spin-box step a tenth of the default's magnitude (its decimals follow)."""
    if value == 0 or not math.isfinite(value):
        return 0.01
    return min(10.0 ** (math.floor(math.log10(abs(value))) - 1), 0.1)


def _tooltip(item: dataclasses.Field, hint: Any) -> str:
    rule = field_spec(item)
    parts = [f"{item.name}: {getattr(hint, '__name__', str(hint))}"]
    parts += [text for text in (rule.help, rule.hint) if text]
    return "\n".join(parts)


def field_widget(item: dataclasses.Field, hint: Any) -> Widget:
    """The widget of one dataclass field, holding its default."""
    default, rule = _default(item), field_spec(item)
    label = item.name.replace("_", " ")
    common: dict[str, Any] = {"name": item.name, "label": label, "tooltip": _tooltip(item, hint)}
    if hint is bool:
        return CheckBox(value=bool(default), **common)
    if typing.get_origin(hint) is Literal and all(
        isinstance(a, str) for a in typing.get_args(hint)
    ):
        return ComboBox(choices=list(typing.get_args(hint)), value=default, **common)
    if hint is int and isinstance(default, int):
        low = rule.ge if rule.ge is not None else (rule.gt + 1 if rule.gt is not None else -BIG)
        high = rule.le if rule.le is not None else BIG
        return SpinBox(value=default, min=int(low), max=int(high), **common)
    if hint is float and isinstance(default, int | float):
        step = _float_step(float(default))
        low = rule.ge if rule.ge is not None else (rule.gt + step if rule.gt is not None else -BIG)
        high = rule.le if rule.le is not None else BIG
        return FloatSpinBox(value=float(default), min=low, max=high, step=step, **common)
    if hint is str and isinstance(default, str):
        return LineEdit(value=default, **common)
    text = "" if default is None else yaml.safe_dump(to_plain(default), default_flow_style=True)
    return LineEdit(value=text.strip().removesuffix("...").strip(), **common)


class ConfigForm(Container):
    """The widgets of a dataclass schema's fields (minus ``skip``), as one magicgui container."""

    def __init__(self, schema: type, *, skip: Iterable[str] = ()) -> None:
        hints = typing.get_type_hints(schema)
        left_out = set(skip)
        self.schema = schema
        self.yaml_fields: set[str] = set()
        widgets = []
        for item in dataclasses.fields(schema):
            if not item.init or item.name in left_out:
                continue
            widget = field_widget(item, hints[item.name])
            if type(widget) is LineEdit and hints[item.name] is not str:
                self.yaml_fields.add(item.name)
            widgets.append(widget)
        super().__init__(widgets=widgets, labels=True)

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
