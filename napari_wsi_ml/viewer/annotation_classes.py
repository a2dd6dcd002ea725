"""Classes (groups) on an annotation Shapes layer: draw with a class, rename, recolour.

The layer's classes live in ``layer.metadata["groups"]`` (so that unused classes survive a save);
each shape's class is its ``class`` feature and its colour is its edge colour (face: the same,
translucent). See :mod:`napari_wsi_ml.viewer.annotation_layers`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from napari_wsi_ml.annotations.model import Group
from napari_wsi_ml.viewer.annotation_layers import (
    FACE_ALPHA,
    group_to_dict,
    groups_from_metadata,
    hex_to_rgba,
)

if TYPE_CHECKING:
    from napari.layers import Shapes


def layer_groups(layer: Shapes) -> dict[str, Group]:
    """The layer's classes, by name, in order."""
    return groups_from_metadata(layer.metadata)


def set_layer_groups(layer: Shapes, groups: Sequence[Group]) -> None:
    """Replace the layer's classes."""
    layer.metadata["groups"] = [group_to_dict(g) for g in groups]


def set_drawing_class(layer: Shapes, group: Group) -> None:
    """Make shapes drawn from now on take ``group``'s name and colour."""
    defaults = {"class": group.name, "name": "", "type": "", "xy": b"", "holes": b"", "extra": ""}
    current = layer.feature_defaults
    kept = current.iloc[0].to_dict() if len(current) else {}  # other columns keep their default
    layer.feature_defaults = {
        c: defaults[c] if c in defaults else kept.get(c, "") for c in layer.features.columns
    }
    layer.current_edge_color = group.color
    layer.current_face_color = hex_to_rgba(group.color, FACE_ALPHA)


def apply_class(layer: Shapes, indices: Sequence[int], group: Group) -> None:
    """Give the shapes at ``indices`` the class and colour of ``group``."""
    indices = [int(i) for i in indices]
    if not indices:
        return
    features = layer.features
    features.loc[features.index[indices], "class"] = group.name
    layer.features = features
    edge, face = np.array(layer.edge_color), np.array(layer.face_color)
    edge[indices] = hex_to_rgba(group.color)
    face[indices] = hex_to_rgba(group.color, FACE_ALPHA)
    layer.edge_color = edge
    layer.face_color = face


def shapes_of_class(layer: Shapes, name: str) -> list[int]:
    """Indices of the shapes of class ``name``."""
    if "class" not in layer.features.columns:
        return []
    return [int(i) for i in np.flatnonzero(layer.features["class"].to_numpy() == name)]


def rename_class(layer: Shapes, old: str, new: str) -> int:
    """Rename class ``old`` to ``new`` in the class list and on every shape; returns how many."""
    groups = list(layer_groups(layer).values())
    for group in groups:
        if group.name == old:
            group.name = new
        if group.parent == old:
            group.parent = new
    set_layer_groups(layer, groups)
    indices = shapes_of_class(layer, old)
    if indices:
        features = layer.features
        features.loc[features.index[indices], "class"] = new
        layer.features = features
    return len(indices)


def recolor_class(layer: Shapes, name: str, color: str) -> int:
    """Give class ``name`` and all its shapes ``color`` (``"#RRGGBB"``); returns how many."""
    groups = list(layer_groups(layer).values())
    for group in groups:
        if group.name == name:
            group.color = color
    set_layer_groups(layer, groups)
    indices = shapes_of_class(layer, name)
    apply_class(layer, indices, Group(name, color=color))
    return len(indices)
