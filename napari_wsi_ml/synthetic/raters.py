"""Simulated pathologists: annotation sets derived from the truth with controlled disagreement."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from shapely.geometry import LineString, MultiPolygon, Point, Polygon
from shapely.geometry.polygon import orient
from shapely.ops import unary_union

from napari_wsi_ml.annotations.model import Annotation, AnnotationSet, AnnotationType
from napari_wsi_ml.synthetic.shapes import irregular_blob
from napari_wsi_ml.synthetic.truth import GROUP_COLOURS, SlideTruth


@dataclass(frozen=True)
class RaterProfile:
    """How one simulated rater departs from the truth (lengths in µm).

    Attributes:
        name: Rater name, used in file names (``<slide>.<name>.xml``).
        jitter_um: RMS of the smooth, random displacement of each boundary point.
        bias_um: Systematic outward (positive) or inward (negative) offset of every boundary.
        miss_small: Probability of missing each small lesion.
        miss_large: Probability of missing each large lesion.
        false_positives: Expected number of extra regions drawn where there is no tumour.
        vertex_spacing_um: Distance between the vertices the rater clicks.
        confuse_classes: Multi-class slides: probability of giving a lesion the other class.
    """

    name: str
    jitter_um: float = 8.0
    bias_um: float = 0.0
    miss_small: float = 0.1
    miss_large: float = 0.0
    false_positives: float = 0.3
    vertex_spacing_um: float = 15.0
    confuse_classes: float = 0.0


DEFAULT_RATERS: tuple[RaterProfile, ...] = (
    RaterProfile("rater1", jitter_um=6.0, bias_um=0.0, miss_small=0.1, false_positives=0.2),
    RaterProfile(
        "rater2",
        jitter_um=15.0,
        bias_um=12.0,
        miss_small=0.3,
        false_positives=0.6,
        vertex_spacing_um=30.0,
        confuse_classes=0.1,
    ),
    RaterProfile(
        "rater3",
        jitter_um=10.0,
        bias_um=-8.0,
        miss_small=0.6,
        false_positives=1.0,
        vertex_spacing_um=20.0,
        confuse_classes=0.2,
    ),
)
"""A careful rater, a generous one, and a conservative one that misses small lesions."""


def jitter_polygon(
    polygon: Polygon,
    rng: np.random.Generator,
    *,
    jitter: float,
    bias: float,
    vertex_spacing: float,
    wavelength: tuple[float, float],
) -> Polygon | None:
    """Redraw ``polygon`` as a rater would (lengths in level-0 px).

    The boundary is resampled every ``vertex_spacing`` and each vertex moves along the outward
    normal by ``bias`` plus a smooth random wave with RMS ``jitter``, the sum of three sines of
    wavelengths in ``wavelength`` (a range); the largest valid part is kept. Returns ``None`` if
    nothing is left.
    """
    ring = LineString(orient(polygon, 1.0).exterior.coords)
    n = max(8, round(ring.length / max(vertex_spacing, 1e-9)))
    s = np.arange(n) * (ring.length / n)
    points = shapely.get_coordinates(shapely.line_interpolate_point(ring, s))
    tangent = np.roll(points, -1, axis=0) - np.roll(points, 1, axis=0)
    tangent /= np.maximum(np.linalg.norm(tangent, axis=1, keepdims=True), 1e-12)
    outward = np.column_stack([tangent[:, 1], -tangent[:, 0]])
    wave = np.zeros(n)
    for _ in range(3):
        cycles = max(1, round(ring.length / rng.uniform(*wavelength)))
        wave += np.sin(2 * np.pi * cycles * s / ring.length + rng.uniform(0, 2 * np.pi))
    wave *= jitter * np.sqrt(2.0 / 3.0)
    moved = points + outward * (bias + wave)[:, None]
    drawn = shapely.make_valid(Polygon(moved))
    parts = [g for g in getattr(drawn, "geoms", [drawn]) if isinstance(g, Polygon) and g.area > 0]
    if not parts:
        return None
    return Polygon(max(parts, key=lambda g: g.area).exterior.coords)


def _false_positive(
    rng: np.random.Generator, truth: SlideTruth, avoid: Polygon | MultiPolygon
) -> Polygon | None:
    """A small region inside the tissue, away from every true lesion."""
    tissue = truth.tissue
    xmin, ymin, xmax, ymax = tissue.bounds
    for _ in range(50):
        point = Point(rng.uniform(xmin, xmax), rng.uniform(ymin, ymax))
        if not tissue.contains(point):
            continue
        radius = rng.uniform(30.0, 100.0) / truth.mpp
        blob = irregular_blob(rng, (point.x, point.y), radius, roughness=0.25, n_vertices=24)
        if tissue.contains(blob) and not blob.intersects(avoid):
            return blob
    return None


def simulate_rater(truth: SlideTruth, profile: RaterProfile, seed: int) -> AnnotationSet:
    """One rater's annotation set of ``truth``, drawn reproducibly from ``seed``."""
    rng = np.random.default_rng([seed, truth.seed, *profile.name.encode()])
    px = 1.0 / truth.mpp
    groups = list(truth.groups)
    drawn: list[tuple[Polygon, str]] = []
    for lesion in truth.lesions:
        miss = profile.miss_small if lesion.size_class == "small" else profile.miss_large
        missed = rng.random() < miss
        polygon = jitter_polygon(
            lesion.polygon,
            rng,
            jitter=profile.jitter_um * px,
            bias=profile.bias_um * px,
            vertex_spacing=profile.vertex_spacing_um * px,
            wavelength=(60 * px, 300 * px),
        )
        group = truth.group_of(lesion)
        if len(groups) > 1 and rng.random() < profile.confuse_classes:
            group = next(g for g in groups if g != group)
        if not missed and polygon is not None:
            drawn.append((polygon, group))
    avoid = unary_union([les.polygon.buffer(50 * px) for les in truth.lesions])
    for _ in range(int(rng.poisson(profile.false_positives))):
        blob = _false_positive(rng, truth, avoid)
        if blob is not None:
            drawn.append((blob, groups[int(rng.integers(0, len(groups)))]))
            avoid = avoid.union(blob.buffer(50 * px))
    annotations = [
        Annotation(
            name=f"Annotation {i}",
            type=AnnotationType.POLYGON,
            coordinates=np.asarray(polygon.exterior.coords)[:-1],
            group=group,
            color=GROUP_COLOURS[group],
        )
        for i, (polygon, group) in enumerate(drawn)
    ]
    return AnnotationSet(annotations, truth.groups, rater=profile.name, slide=truth.name)


def simulate_raters(
    truth: SlideTruth,
    n: int = 3,
    seed: int = 0,
    profiles: Sequence[RaterProfile] | None = None,
) -> list[AnnotationSet]:
    """``n`` raters' annotation sets of ``truth`` (profiles default to :data:`DEFAULT_RATERS`)."""
    profiles = list(profiles) if profiles is not None else list(DEFAULT_RATERS)
    if n > len(profiles):
        raise ValueError(f"asked for {n} raters but only {len(profiles)} profiles are given")
    return [simulate_rater(truth, profile, seed) for profile in profiles[:n]]
