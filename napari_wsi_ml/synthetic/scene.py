"""The scene description of one synthetic slide: tissue, lesions and artefacts as polygons.

A :class:`Scene` holds no pixels. The renderer turns it into any region of any pyramid level,
so that every level is drawn from the same description and lines up with level 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from shapely import affinity
from shapely.geometry import MultiPolygon, Point, Polygon, box
from shapely.geometry.polygon import orient
from shapely.ops import unary_union

from napari_wsi_ml.synthetic.shapes import irregular_blob, pen_stroke
from napari_wsi_ml.synthetic.stain import StainProfile, site_profile

TUMOUR_EXTENTS = ("none", "small", "large")
"""How much tumour a slide holds: none, small lesions only (< 10 % of tissue), or large."""

MORPHOLOGIES = ("a", "b")
"""Tumour morphologies: "a" glandular (lumens, crowded dark nuclei), "b" solid sheets."""

PEN_COLOURS: dict[str, tuple[float, float, float]] = {
    "green": (0.95, 0.30, 0.80),
    "blue": (0.95, 0.60, 0.12),
    "black": (1.30, 1.30, 1.25),
}
"""Optical density ``(R, G, B)`` of marker inks."""

SMALL_LESION_MAX_FRACTION = 0.02
"""A lesion covering less than this fraction of the tissue area is "small"."""


@dataclass(frozen=True)
class Lesion:
    """One tumour region.

    Attributes:
        polygon: Simple polygon (no holes) in level-0 ``(x, y)``, inside the tissue.
        morphology: ``"a"`` (glandular) or ``"b"`` (solid).
        size_class: ``"small"`` or ``"large"``.
    """

    polygon: Polygon
    morphology: str
    size_class: str


@dataclass(frozen=True)
class Artefact:
    """Dust or ink on the glass: a polygon and its optical density ``(R, G, B)``."""

    polygon: Polygon
    kind: str
    optical_density: tuple[float, float, float]


@dataclass(frozen=True)
class Scene:
    """Everything needed to render a slide, in level-0 pixels.

    Attributes:
        width: Level-0 width in pixels.
        height: Level-0 height in pixels.
        mpp: Micrometres per level-0 pixel.
        seed: Seed of the textures (nuclei, fibres).
        site: Site number; picks the stain profile.
        tissue: Tissue pieces, polygons that may have holes.
        lesions: Tumour regions.
        artefacts: Dust specks and pen strokes.
    """

    width: int
    height: int
    mpp: float
    seed: int
    site: int
    tissue: tuple[Polygon, ...]
    lesions: tuple[Lesion, ...]
    artefacts: tuple[Artefact, ...]

    @property
    def stain(self) -> StainProfile:
        """The stain profile of the scene's site."""
        return site_profile(self.site)

    @property
    def tissue_area(self) -> float:
        """Tissue area in level-0 px²."""
        return float(sum(p.area for p in self.tissue))

    @property
    def tumour_fraction(self) -> float:
        """Lesion area divided by tissue area."""
        area = self.tissue_area
        return float(sum(les.polygon.area for les in self.lesions) / area) if area else 0.0


def _fit_inside(polygon: Polygon, frame: Polygon) -> Polygon:
    """Shrink ``polygon`` about its centroid until it lies inside ``frame``."""
    factor = 1.0
    shrunk = polygon
    while not frame.contains(shrunk) and factor > 0.2:
        factor *= 0.92
        shrunk = affinity.scale(polygon, factor, factor, origin="centroid")
    return shrunk


def _tissue_pieces(
    rng: np.random.Generator, width: int, height: int, n_pieces: int, scale: float
) -> list:
    """Irregular tissue sections side by side, some with holes."""
    margin = 0.03 * min(width, height)
    frame = box(margin, margin, width - margin, height - margin)
    cell_w = width / n_pieces
    pieces: list[Polygon] = []
    for i in range(n_pieces):
        radius = min(cell_w, height) * rng.uniform(0.30, 0.40) * scale
        centre = (cell_w * (i + 0.5 + rng.uniform(-0.05, 0.05)), height * rng.uniform(0.45, 0.55))
        blob = irregular_blob(rng, centre, radius, roughness=0.35, elongation=rng.uniform(1, 1.5))
        blob = _fit_inside(blob, frame)
        holes = []
        for _ in range(rng.integers(0, 3)):
            inner = blob.buffer(-0.12 * radius)
            if inner.is_empty:
                break
            xmin, ymin, xmax, ymax = inner.bounds
            point = (rng.uniform(xmin, xmax), rng.uniform(ymin, ymax))
            hole = irregular_blob(rng, point, radius * rng.uniform(0.05, 0.12), roughness=0.3)
            if inner.contains(hole) and all(
                not hole.buffer(radius * 0.04).intersects(h) for h in holes
            ):
                holes.append(hole)
        pieces.append(Polygon(blob.exterior.coords, [h.exterior.coords for h in holes]))
    return pieces


def _random_point_in(rng: np.random.Generator, region: Polygon) -> tuple[float, float] | None:
    """A uniform random point inside ``region`` (rejection sampling), or ``None``."""
    xmin, ymin, xmax, ymax = region.bounds
    for _ in range(100):
        point = (rng.uniform(xmin, xmax), rng.uniform(ymin, ymax))
        if region.contains(Point(point)):
            return point
    return None


def _place_lesion(
    rng: np.random.Generator, tissue: Polygon, radius: float, roughness: float
) -> Polygon | None:
    """An irregular lesion of about ``radius`` lying entirely inside ``tissue`` (holes excluded)."""
    for attempt in range(40):
        r = radius * (0.97**attempt)
        inner = tissue.buffer(-r * 0.8)
        point = None if inner.is_empty else _random_point_in(rng, inner)
        if point is None:
            continue
        lesion = irregular_blob(rng, point, r, roughness=roughness, elongation=rng.uniform(1, 1.5))
        if tissue.buffer(-0.01 * r).contains(lesion):
            return lesion
    return None


def _lesions(
    rng: np.random.Generator,
    pieces: Sequence[Polygon],
    extent: str,
    morphology: str,
    n_small: int | None,
) -> list[Lesion]:
    """Large and/or small lesions inside the tissue, not overlapping each other."""
    if extent == "none":
        return []
    total = sum(p.area for p in pieces)
    order = sorted(range(len(pieces)), key=lambda i: -pieces[i].area)
    plans: list[tuple[int, float, float]] = []  # (piece, radius, roughness)
    if extent == "large":
        big = order[0]
        plans.append((big, np.sqrt(pieces[big].area / np.pi) * rng.uniform(0.45, 0.6), 0.3))
    drawn = int(rng.integers(1, 4)) if extent == "small" else int(rng.integers(0, 3))
    n_small = drawn if n_small is None else n_small
    for _ in range(n_small):
        piece = order[int(rng.integers(0, len(order)))]
        fraction = rng.uniform(0.004, 0.012)  # of the whole tissue area, so the sum stays small
        plans.append((piece, np.sqrt(fraction * total / np.pi), 0.25))
    lesions: list[Lesion] = []
    for piece, radius, roughness in plans:
        occupied = unary_union([les.polygon.buffer(radius * 0.3) for les in lesions])
        available = pieces[piece].difference(occupied) if lesions else pieces[piece]
        if isinstance(available, MultiPolygon):
            available = max(available.geoms, key=lambda g: g.area)
        if not isinstance(available, Polygon) or available.is_empty:
            continue
        polygon = _place_lesion(rng, available, radius, roughness)
        if polygon is not None:
            size = "small" if polygon.area < SMALL_LESION_MAX_FRACTION * total else "large"
            lesions.append(Lesion(polygon, morphology, size))
    return lesions


def _artefacts(
    rng: np.random.Generator,
    scene_box: Polygon,
    tissue: Polygon,
    mpp: float,
    dust: bool,
    pen: str | None,
) -> list[Artefact]:
    """Dust specks on the glass and an optional marker stroke beside the tissue."""
    artefacts: list[Artefact] = []
    if dust:
        xmin, ymin, xmax, ymax = scene_box.bounds
        for _ in range(int(rng.integers(4, 14))):
            point = (rng.uniform(xmin, xmax), rng.uniform(ymin, ymax))
            speck = irregular_blob(
                rng, point, rng.uniform(3, 15) / mpp, roughness=0.5, n_vertices=24
            )
            if scene_box.contains(speck) and not speck.intersects(tissue):
                grey = float(rng.uniform(0.1, 0.5))
                artefacts.append(Artefact(speck, "dust", (grey, grey, grey * 0.95)))
    if pen is not None:
        outline = orient(tissue.convex_hull, 1.0).exterior
        xmin, ymin, xmax, ymax = tissue.bounds
        size = max(xmax - xmin, ymax - ymin)
        where = rng.uniform(0, outline.length)
        a, b = outline.interpolate(where), outline.interpolate(where + 0.01 * outline.length)
        heading = float(np.arctan2(b.y - a.y, b.x - a.x))
        outward = heading - np.pi / 2  # the hull is counter-clockwise: its outside is on the right
        gap = size * rng.uniform(0.03, 0.08)
        length = size * rng.uniform(0.4, 0.7)
        start = (
            a.x + gap * np.cos(outward) - 0.5 * length * np.cos(heading),
            a.y + gap * np.sin(outward) - 0.5 * length * np.sin(heading),
        )
        stroke = pen_stroke(rng, start, length, rng.uniform(60, 150) / mpp, heading)
        stroke = stroke.intersection(scene_box)
        if isinstance(stroke, Polygon) and not stroke.is_empty:
            artefacts.append(Artefact(stroke, "pen", PEN_COLOURS[pen]))
    return artefacts


def make_scene(
    width: int,
    height: int,
    *,
    seed: int,
    mpp: float = 0.25,
    site: int = 0,
    tumour: str = "large",
    morphology: str | None = None,
    pen: str | None = None,
    dust: bool = True,
    n_pieces: int | None = None,
    n_small_lesions: int | None = None,
    tissue_scale: float = 1.0,
) -> Scene:
    """Draw a random scene from ``seed``.

    Args:
        width: Level-0 width in pixels.
        height: Level-0 height in pixels.
        seed: Seed of the layout and the textures.
        mpp: Micrometres per level-0 pixel.
        site: Site number (stain profile).
        tumour: One of :data:`TUMOUR_EXTENTS`.
        morphology: ``"a"``, ``"b"`` or ``None`` (drawn from ``seed``).
        pen: Marker colour from :data:`PEN_COLOURS`, or ``None``.
        dust: Whether to scatter dust on the glass.
        n_pieces: Number of tissue sections (default: 1–3 from ``seed``, 1 for narrow slides).
        n_small_lesions: Number of small lesions (default: drawn from ``seed``).
        tissue_scale: Multiplies the size of the tissue sections (1 fills most of the slide).
    """
    if tumour not in TUMOUR_EXTENTS:
        raise ValueError(f"tumour must be one of {TUMOUR_EXTENTS}, got {tumour!r}")
    if morphology is not None and morphology not in MORPHOLOGIES:
        raise ValueError(f"morphology must be one of {MORPHOLOGIES}, got {morphology!r}")
    rng = np.random.default_rng([seed, 0x51DE])
    morphology = morphology or MORPHOLOGIES[int(rng.integers(0, 2))]
    if n_pieces is None:
        n_pieces = int(rng.integers(1, 4)) if width >= 1.5 * height else 1
    pieces = _tissue_pieces(rng, width, height, n_pieces, tissue_scale)
    lesions = _lesions(rng, pieces, tumour, morphology, n_small_lesions)
    scene_box = box(0, 0, width, height)
    artefacts = _artefacts(rng, scene_box, unary_union(pieces), mpp, dust, pen)
    return Scene(width, height, mpp, seed, site, tuple(pieces), tuple(lesions), tuple(artefacts))
