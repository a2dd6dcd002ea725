"""Hand-made rater annotations for the agreement tests."""

from __future__ import annotations

from napari_wsi_ml.annotations.model import Annotation, AnnotationSet


def square(x: float, y: float, size: float, group: str = "tumor", holes=None) -> Annotation:
    """An axis-aligned square annotation with its corner at ``(x, y)``."""
    coords = [[x, y], [x + size, y], [x + size, y + size], [x, y + size]]
    return Annotation("sq", "Polygon", coords, group=group, holes=holes or [])


def rect(x: float, y: float, w: float, h: float, group: str = "tumor") -> Annotation:
    """An axis-aligned rectangle annotation (ASAP type Rectangle)."""
    coords = [[x, y], [x + w, y], [x + w, y + h], [x, y + h]]
    return Annotation("rect", "Rectangle", coords, group=group)


def rater(name: str, *annotations: Annotation, slide: str | None = None) -> AnnotationSet:
    """An annotation set of one rater."""
    return AnnotationSet(list(annotations), rater=name, slide=slide)


def asap_xml(annotations: list[tuple[str, str, list[tuple[float, float]]]]) -> str:
    """ASAP XML text for ``(group, type, coordinates)`` triples."""
    groups = sorted({g for g, _, _ in annotations})
    body = []
    for i, (group, kind, coords) in enumerate(annotations):
        points = "".join(
            f'<Coordinate Order="{k}" X="{x}" Y="{y}" />' for k, (x, y) in enumerate(coords)
        )
        body.append(
            f'<Annotation Name="A{i}" Type="{kind}" PartOfGroup="{group}" Color="#F4FA58">'
            f"<Coordinates>{points}</Coordinates></Annotation>"
        )
    group_xml = "".join(
        f'<Group Name="{g}" PartOfGroup="None" Color="#64FE2E"><Attributes /></Group>'
        for g in groups
    )
    return (
        '<?xml version="1.0"?><ASAP_Annotations><Annotations>'
        + "".join(body)
        + f"</Annotations><AnnotationGroups>{group_xml}</AnnotationGroups></ASAP_Annotations>"
    )
