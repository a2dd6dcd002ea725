"""Review a model's heatmap: threshold → smoothed polygons → a "model" annotation set.

Polygons are the iso-line of the heatmap at the threshold, traced by marching squares on the
grid of cell centres (each cell centre is its patch's centre, see :class:`Heatmap`), so a
boundary falls between two cells where the interpolated score crosses the threshold. Before
tracing, the scores may be smoothed by a Gaussian of ``smoothing`` cells (cells without a
score are left out of the average and stay below the threshold). Parts smaller than
``min_area`` are dropped and holes smaller than it are filled; holes larger are kept. The
outline is then simplified (Douglas–Peucker, topology preserved). Everything is in level-0
``(x, y)`` pixels.

The polygons compare with raters through :mod:`napari_wsi_ml.agreement`: Dice, IoU, Cohen's κ
and lesion F1 against each rater and their majority-vote consensus, beside the inter-rater range
(:func:`compare_with_raters`), and a per-slide disagreement ``1 − mean Dice`` for cohort tables
(:func:`model_disagreement`).
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import shapely
from scipy import ndimage
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry
from skimage import measure

from napari_wsi_ml.agreement import geometry as geo
from napari_wsi_ml.agreement.analysis import Options, analyse
from napari_wsi_ml.agreement.compare import compare_candidate
from napari_wsi_ml.agreement.inputs import prepare_raters
from napari_wsi_ml.agreement.report import AgreementReport
from napari_wsi_ml.annotations.model import Annotation, AnnotationSet, AnnotationType, Group
from napari_wsi_ml.inference.heatmap import Heatmap

MODEL_RATER = "model"
MODEL_COLORS = ("#00B8D9", "#7B61FF", "#36B37E", "#FF5630", "#FFAB00", "#6554C0")
BACKGROUND_NAMES = ("normal", "background", "benign", "negative")


def positive_class(class_names: Sequence[str], background: str | None = None) -> int:
    """Index of the class to review first: the first that is not the background.

    The background is ``background`` when given, else a class named like one (``normal``,
    ``background``, ``benign``, ``negative``); 0 when every class is.
    """
    names = {background} if background else set(BACKGROUND_NAMES)
    for index, name in enumerate(class_names):
        if name not in names and name.lower() not in names:
            return index
    return 0


@dataclass(frozen=True)
class PolygonOptions:
    """How a heatmap channel becomes polygons.

    Attributes:
        threshold: Score at and above which a point is inside.
        min_area: Smallest part (and hole) kept, in µm² when the slide's mpp is known, else in
            level-0 px².
        smoothing: Gaussian sigma in grid cells applied to the scores first (0: none).
        simplify: Douglas–Peucker tolerance in grid cells (0: none).
    """

    threshold: float = 0.5
    min_area: float = 0.0
    smoothing: float = 0.5
    simplify: float = 0.1

    def __post_init__(self) -> None:
        if not np.isfinite(self.threshold):
            raise ValueError("the threshold must be a finite number")
        if self.min_area < 0 or self.smoothing < 0 or self.simplify < 0:
            raise ValueError("min_area, smoothing and simplify must be >= 0")


def smoothed_scores(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing of a (rows, cols) grid that ignores NaN cells (which stay NaN)."""
    values = np.asarray(values, dtype=np.float64)
    valid = np.isfinite(values)
    if sigma <= 0:
        return values.copy()
    weights = ndimage.gaussian_filter(valid.astype(np.float64), sigma, mode="constant")
    total = ndimage.gaussian_filter(np.where(valid, values, 0.0), sigma, mode="constant")
    with np.errstate(invalid="ignore", divide="ignore"):
        smooth = total / weights
    return np.where(valid, smooth, np.nan)


def _rings(grid: np.ndarray, threshold: float) -> list[np.ndarray]:
    """Closed iso-lines at ``threshold`` of a grid (NaN below it), in (row, col) cell units."""
    finite = grid[np.isfinite(grid)]
    low = min(float(finite.min()) if finite.size else 0.0, 0.0, threshold - 1.0)
    padded = np.pad(np.nan_to_num(grid, nan=low), 1, constant_values=low)
    contours = measure.find_contours(padded, threshold, fully_connected="high")
    return [c - 1.0 for c in contours if len(c) >= 4]


def _assemble(rings_xy: list[np.ndarray]) -> list[Polygon]:
    """Polygons (with holes) from non-crossing closed rings: nesting depth decides holes."""
    polys = np.array([Polygon(r) for r in rings_xy], dtype=object)
    if polys.size == 0:
        return []
    tree = shapely.STRtree(polys)
    firsts = shapely.points([r[0] for r in rings_xy])
    inner, outer = tree.query(firsts, predicate="within")
    depth = np.bincount(inner[inner != outer], minlength=len(polys))
    areas = shapely.area(polys)
    holes: dict[int, list[np.ndarray]] = {}
    for ring in np.flatnonzero(depth % 2 == 1):
        containers = outer[(inner == ring) & (outer != ring)]
        parent = containers[np.argmin(areas[containers])]  # the innermost ring around it
        holes.setdefault(int(parent), []).append(rings_xy[ring])
    return [Polygon(rings_xy[k], holes.get(int(k), [])) for k in np.flatnonzero(depth % 2 == 0)]


def score_polygons(
    heatmap: Heatmap,
    channel: str | int,
    options: PolygonOptions | None = None,
    *,
    mpp: Sequence[float] | None = None,
) -> BaseGeometry:
    """The region where ``channel``'s score is at least the threshold, as level-0 polygons.

    Args:
        heatmap: The scores and their georeference.
        channel: Class name or index.
        options: Threshold, minimum area, smoothing, simplification.
        mpp: The slide's µm per level-0 pixel ``(x, y)``: ``min_area`` is in µm² with it, px²
            without.

    Returns:
        A valid (Multi)Polygon in level-0 ``(x, y)`` (empty when nothing reaches the
        threshold).
    """
    options = options or PolygonOptions()
    grid = smoothed_scores(heatmap.channel(channel), options.smoothing)
    sx, sy = heatmap.stride
    cx = heatmap.origin[0] + heatmap.patch_size[0] / 2
    cy = heatmap.origin[1] + heatmap.patch_size[1] / 2
    rings = [np.c_[cx + r[:, 1] * sx, cy + r[:, 0] * sy] for r in _rings(grid, options.threshold)]
    min_px2 = options.min_area / (float(mpp[0]) * float(mpp[1])) if mpp else options.min_area
    kept = []
    for polygon in _assemble(rings):
        if polygon.area < min_px2 or polygon.area <= 0:
            continue
        holes = [h for h in polygon.interiors if Polygon(h).area >= min_px2]
        polygon = Polygon(polygon.exterior, holes)
        if options.simplify > 0:
            polygon = polygon.simplify(options.simplify * min(sx, sy), preserve_topology=True)
        kept.extend(geo.parts(geo.polygonal(shapely.make_valid(polygon))))
    if not kept:
        return geo.EMPTY
    return MultiPolygon(kept) if len(kept) > 1 else kept[0]


def region_annotations(
    region: BaseGeometry, group: str, color: str, *, prefix: str | None = None
) -> list[Annotation]:
    """One Polygon annotation per part of ``region`` (holes kept as holes)."""
    name = prefix or group
    return [
        Annotation(
            name=f"{name} {k}",
            type=AnnotationType.POLYGON,
            coordinates=np.asarray(part.exterior.coords)[:-1],
            group=group,
            color=color,
            holes=[np.asarray(ring.coords)[:-1] for ring in part.interiors],
        )
        for k, part in enumerate(geo.parts(region))
    ]


def model_annotations(
    heatmap: Heatmap,
    channels: Mapping[str, str] | Sequence[str] | None = None,
    options: PolygonOptions | None = None,
    *,
    mpp: Sequence[float] | None = None,
    slide: str | None = None,
    rater: str = MODEL_RATER,
) -> AnnotationSet:
    """The thresholded heatmap as an annotation set of the rater ``"model"``.

    Args:
        heatmap: The scores.
        channels: Which classes to trace: a list of class names (each becomes a group of the
            same name) or a mapping class name → annotation group (e.g. ``{"tumour":
            "tumor"}``, to match the raters' names). Default: every class.
        options: See :class:`PolygonOptions`.
        mpp: The slide's µm per level-0 pixel ``(x, y)``.
        slide: The slide's path or name, kept in the set.
        rater: The set's rater name.
    """
    if channels is None:
        channels = list(heatmap.class_names)
    pairs = dict(channels) if isinstance(channels, Mapping) else {c: c for c in channels}
    result = AnnotationSet(rater=rater, slide=slide)
    for k, (channel, group) in enumerate(pairs.items()):
        color = MODEL_COLORS[k % len(MODEL_COLORS)]
        region = score_polygons(heatmap, channel, options, mpp=mpp)
        result.groups[group] = Group(group, color=color)
        result.annotations.extend(
            region_annotations(region, group, color, prefix=f"{rater} {group}")
        )
    return result


def matching_class(name: str, candidates: Sequence[str]) -> str | None:
    """The raters' class that ``name`` most likely means: same name, any case, or a close
    spelling (``tumour`` ↔ ``tumor``); None when nothing is close."""
    if name in candidates:
        return name
    lowered = {c.lower(): c for c in candidates}
    if name.lower() in lowered:
        return lowered[name.lower()]
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.8)
    return lowered[close[0]] if close else None


def compare_with_raters(
    model: AnnotationSet,
    raters: Sequence[AnnotationSet],
    *,
    mapping: Mapping[str, str] | None = None,
    region: BaseGeometry | None = None,
    mpp: Sequence[float] | None = None,
    extent: tuple[int, int] | None = None,
    options: Options | None = None,
) -> tuple[AgreementReport, dict[str, object]]:
    """The raters' agreement report and the model's metrics against them and their consensus.

    Args:
        model: The model's annotation set (see :func:`model_annotations`).
        raters: At least two raters' sets of the same slide.
        mapping: Rater class → canonical class (see :mod:`napari_wsi_ml.agreement.inputs`).
        region: Region of interest (e.g. the tissue), level-0.
        mpp: The slide's µm per level-0 pixel.
        extent: The slide's level-0 ``(width, height)``.
        options: Agreement options (grid, bootstrap replicates).

    Returns:
        ``(report, comparison)``: ``comparison["rows"]`` has one row per scope, metric and
        reference (each rater and ``consensus``) with the value, its interval and the
        inter-rater min / median / max.

    Raises:
        AgreementInputError: Fewer than two raters, a rater named like the model, disjoint
            class names.
    """
    mpp_pair = None if mpp is None else (float(mpp[0]), float(mpp[1]))
    data = prepare_raters(list(raters), mapping=mapping, region=region)
    report = analyse(data, options, mpp=mpp_pair, extent=extent)
    comparison = compare_candidate(
        data, report, model, mapping=mapping, options=options, mpp=mpp_pair, extent=extent
    )
    return report, comparison


def comparison_rows(comparison: Mapping[str, object], scope: str) -> list[dict[str, object]]:
    """The rows of one scope (``"overall"`` or a class) of :func:`compare_with_raters`."""
    rows = comparison.get("rows") or []
    return [row for row in rows if row["scope"] == scope]  # type: ignore[index,union-attr]


def dice(a: BaseGeometry, b: BaseGeometry) -> float:
    """Dice of two regions; 1 when both are empty (they agree that there is nothing)."""
    total = a.area + b.area
    return 1.0 if total == 0 else 2.0 * a.intersection(b).area / total


def model_disagreement(
    model: AnnotationSet,
    raters: Sequence[AnnotationSet],
    group: str,
    *,
    mapping: Mapping[str, str] | None = None,
) -> tuple[float, dict[str, float]]:
    """``1 − mean Dice`` of the model's ``group`` region against each rater's, and the Dice
    per rater.

    Raises:
        AgreementInputError: No rater, or class names that cannot be compared.
        ValueError: No rater given.
    """
    if not raters:
        raise ValueError("model disagreement needs at least one rater")
    data = prepare_raters([model, *raters], mapping=mapping, allow_empty=True)
    mine = data.raters[0].region(group)
    per_rater = {r.rater: dice(mine, r.region(group)) for r in data.raters[1:]}
    return 1.0 - float(np.mean(list(per_rater.values()))), per_rater
