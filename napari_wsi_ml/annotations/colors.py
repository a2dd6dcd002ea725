"""Colour conversions between ASAP (``"#RRGGBB"``) and QuPath (RGB lists, packed ARGB ints)."""

from __future__ import annotations

import re

from napari_wsi_ml.annotations.model import DEFAULT_COLOR

_HEX_RX = re.compile(r"#?([0-9A-Fa-f]{6})([0-9A-Fa-f]{2})?")


def is_hex_color(text: object) -> bool:
    """Whether ``text`` is ``"#RRGGBB"`` (or ``"#RRGGBBAA"``)."""
    return isinstance(text, str) and _HEX_RX.fullmatch(text.strip()) is not None


def hex_to_rgb(color: str) -> tuple[int, int, int]:
    """``"#RRGGBB"`` → ``(r, g, b)``; falls back to ASAP's default colour if unparsable."""
    match = _HEX_RX.fullmatch(color.strip()) or _HEX_RX.fullmatch(DEFAULT_COLOR)
    assert match is not None
    value = int(match.group(1), 16)
    return (value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF


def rgb_to_hex(rgb: object) -> str:
    """``[r, g, b]`` (0–255) → ``"#RRGGBB"``.

    Raises:
        ValueError: ``rgb`` is not three integers in 0–255.
    """
    if not isinstance(rgb, (list, tuple)) or len(rgb) < 3:
        raise ValueError(f"colour {rgb!r} is not an [r, g, b] list")
    channels = []
    for channel in rgb[:3]:
        if isinstance(channel, bool) or not isinstance(channel, (int, float)):
            raise ValueError(f"colour {rgb!r} is not an [r, g, b] list of numbers")
        if not 0 <= channel <= 255:
            raise ValueError(f"colour {rgb!r} has a channel outside 0-255")
        channels.append(round(float(channel)))
    return "#{:02X}{:02X}{:02X}".format(*channels)


def packed_to_hex(value: int) -> str:
    """A QuPath packed colour (signed 32-bit ARGB or plain RGB int) → ``"#RRGGBB"``."""
    value = int(value) & 0xFFFFFFFF
    return f"#{value & 0xFFFFFF:06X}"


def hex_to_packed(color: str) -> int:
    """``"#RRGGBB"`` → QuPath's packed colour: opaque ARGB as a signed 32-bit int."""
    r, g, b = hex_to_rgb(color)
    value = 0xFF000000 | (r << 16) | (g << 8) | b
    return value - (1 << 32) if value >= (1 << 31) else value


def color_from_json(value: object) -> str | None:
    """A GeoJSON colour (RGB list, packed int or hex string) → ``"#RRGGBB"``, or ``None``.

    Raises:
        ValueError: ``value`` is present but is none of those forms.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"colour {value!r} is not a colour")
    if isinstance(value, int):
        return packed_to_hex(value)
    if isinstance(value, str):
        if is_hex_color(value):
            match = _HEX_RX.fullmatch(value.strip())
            assert match is not None
            return "#" + match.group(1).upper()
        raise ValueError(f"colour {value!r} is not '#RRGGBB'")
    return rgb_to_hex(value)
