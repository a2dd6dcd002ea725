"""The annotation model: what ASAP and QuPath files hold, in level-0 ``(x, y)`` pixels."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

DEFAULT_COLOR = "#F4FA58"  # ASAP's default annotation colour


class AnnotationType(str, Enum):
    """ASAP's annotation types (the ``Type`` attribute of ``<Annotation>``)."""

    POLYGON = "Polygon"
    RECTANGLE = "Rectangle"
    SPLINE = "Spline"
    DOT = "Dot"
    POINTSET = "PointSet"
    MEASUREMENT = "Measurement"

    @property
    def is_area(self) -> bool:
        """Whether the type encloses an area (polygons, rectangles, closed splines)."""
        return self in (AnnotationType.POLYGON, AnnotationType.RECTANGLE, AnnotationType.SPLINE)


@dataclass
class Group:
    """A named class of annotations (ASAP ``<Group>``; QuPath classification).

    Attributes:
        name: The class name, e.g. ``"tumor"``.
        parent: Name of the parent group, or ``None``.
        color: ``"#RRGGBB"``.
        attributes: Free-form key/value pairs (ASAP ``<Attributes>``).
    """

    name: str
    parent: str | None = None
    color: str = DEFAULT_COLOR
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass
class Annotation:
    """One annotation.

    Attributes:
        name: Its name (ASAP ``Name``), e.g. ``"Annotation 0"``.
        type: Its ASAP type.
        coordinates: Float array (N, 2) of level-0 ``(x, y)`` pixels, in file order. Holes are
            in ``holes``, never in ``coordinates``.
        group: Name of its group (class), or ``None``.
        color: ``"#RRGGBB"``.
        holes: Interior rings, each an (M, 2) array of level-0 ``(x, y)`` (GeoJSON only; ASAP
            has no holes).
        properties: Extra key/value pairs kept from the source file.
    """

    name: str
    type: AnnotationType
    coordinates: np.ndarray
    group: str | None = None
    color: str = DEFAULT_COLOR
    holes: list[np.ndarray] = field(default_factory=list)
    properties: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.type = AnnotationType(self.type)
        coords = np.asarray(self.coordinates, dtype=np.float64)
        if coords.ndim != 2 or coords.shape[1] != 2:
            raise ValueError(f"coordinates must have shape (N, 2), got {coords.shape}")
        self.coordinates = coords
        self.holes = [np.asarray(h, dtype=np.float64).reshape(-1, 2) for h in self.holes]

    @classmethod
    def trusted(
        cls,
        name: str,
        type: AnnotationType,
        coordinates: np.ndarray,
        group: str | None,
        color: str,
    ) -> Annotation:
        """Build without the checks and conversions of ``__init__`` (for readers: ~5x faster).

        The caller guarantees what ``__init__`` would otherwise ensure: ``type`` is an
        :class:`AnnotationType` and ``coordinates`` a float64 array of shape (N, 2).
        """
        annotation = cls.__new__(cls)
        annotation.__dict__.update(
            name=name,
            type=type,
            coordinates=coordinates,
            group=group,
            color=color,
            holes=[],
            properties={},
        )
        return annotation


@dataclass
class AnnotationSet:
    """The annotations of one rater on one slide.

    Attributes:
        annotations: In file order.
        groups: By name, in file order (may include groups no annotation uses).
        rater: Who drew them, if known.
        slide: Path or name of the slide they belong to, if known.
        skipped: Human-readable notes about what a reader could not keep.
        notes: Human-readable notes about what a reader kept in another form (e.g. a GeoJSON
            MultiPolygon split into one annotation per part).
    """

    annotations: list[Annotation] = field(default_factory=list)
    groups: dict[str, Group] = field(default_factory=dict)
    rater: str | None = None
    slide: str | None = None
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.annotations)

    def __iter__(self) -> Iterator[Annotation]:
        return iter(self.annotations)

    @property
    def class_names(self) -> list[str]:
        """Names of all groups: defined ones first, then used-but-undefined ones."""
        names = list(self.groups)
        for annotation in self.annotations:
            if annotation.group is not None and annotation.group not in names:
                names.append(annotation.group)
        return names

    def of_class(self, name: str) -> list[Annotation]:
        """Annotations whose group is ``name``."""
        return [a for a in self.annotations if a.group == name]

    def add(self, annotations: Iterable[Annotation]) -> None:
        """Append annotations, defining any group they use that is not yet defined."""
        for annotation in annotations:
            if annotation.group is not None and annotation.group not in self.groups:
                self.groups[annotation.group] = Group(annotation.group, color=annotation.color)
            self.annotations.append(annotation)
