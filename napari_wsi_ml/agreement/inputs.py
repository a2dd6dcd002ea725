"""Validated rater input: class mapping, slide identity, per-class regions of each rater.

Rules:
    * Class mapping: ``{"rater class": "canonical"}`` applies to every rater;
      ``{"rater:class": "canonical"}`` to one rater only (wins over the plain key). Names not
      in the mapping are kept. Annotations without a group get the class ``"unclassified"``.
    * Two raters whose (mapped) class names are disjoint cannot be compared: error listing both.
      Two raters who share some classes but not all are compared, with a warning listing the
      names only one side uses (``RaterInput.warnings``), and a suggested mapping.
    * An annotation set with no region annotation is refused unless ``allow_empty`` (then the
      rater marked everything background). Fewer than two raters is refused.
    * Slide identity: ``AnnotationSet.slide`` if set (file stem, extension dropped), else the
      file-naming convention ``<slide stem>.<rater>.xml``. All known identities, and the
      slide under study when given, must agree; unknown identities are accepted with a note.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from pathlib import Path, PurePath

import numpy as np
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.agreement import geometry as geo
from napari_wsi_ml.annotations import read_annotations
from napari_wsi_ml.annotations.model import AnnotationSet
from napari_wsi_ml.errors import AgreementInputError

UNCLASSIFIED = "unclassified"
BACKGROUND = "background"
SLIDE_SUFFIXES = {
    ".svs",
    ".tif",
    ".tiff",
    ".ndpi",
    ".vms",
    ".vmu",
    ".scn",
    ".mrxs",
    ".svslide",
    ".bif",
    ".dcm",
    ".isyntax",
    ".czi",
}


def slide_stem(slide: str | PurePath) -> str:
    """A slide's identity: its file name without a known slide extension."""
    path = PurePath(str(slide))
    return path.stem if path.suffix.lower() in SLIDE_SUFFIXES else path.name


def split_annotation_name(path: str | PurePath) -> tuple[str | None, str]:
    """``<slide stem>.<rater>.xml`` -> ``(slide stem, rater)``; ``(None, stem)`` without a dot."""
    stem = PurePath(str(path)).stem
    if "." in stem:
        slide, rater = stem.rsplit(".", 1)
        if slide and rater:
            return slide, rater
    return None, stem


def parse_mapping(items: Sequence[str]) -> dict[str, str]:
    """Parse ``RATERCLASS=CANON`` (or ``rater:class=CANON``) strings into a mapping."""
    mapping: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise AgreementInputError(
                f"class mapping {item!r} is not of the form RATERCLASS=CANON (e.g. tumour=tumor)"
            )
        mapping[key.strip()] = value.strip()
    return mapping


@dataclass
class RaterRegions:
    """One rater's regions: the union per canonical class, clipped to the region of interest.

    Attributes:
        rater: The rater's name.
        regions: Canonical class -> valid (Multi)Polygon in level-0 ``(x, y)`` pixels.
    """

    rater: str
    regions: dict[str, BaseGeometry]
    _parts: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def region(self, cls: str) -> BaseGeometry:
        """The union of this rater's ``cls`` regions (empty when none)."""
        return self.regions.get(cls, geo.EMPTY)

    def parts(self, cls: str) -> np.ndarray:
        """Disjoint polygons (connected objects) of class ``cls``."""
        if cls not in self._parts:
            self._parts[cls] = geo.parts(self.region(cls))
        return self._parts[cls]


@dataclass
class RaterInput:
    """Everything the metrics need: raters, canonical classes, notes, region of interest.

    ``notes`` say what was skipped or repaired; ``warnings`` what the user should check (class
    names used by some raters only, which may be one class spelled differently).
    """

    raters: list[RaterRegions]
    classes: list[str]
    notes: list[str]
    region: BaseGeometry | None = None
    slide: str | None = None
    warnings: list[str] = field(default_factory=list)
    _pairs: dict = field(default_factory=dict, repr=False)

    @property
    def names(self) -> list[str]:
        """Rater names in input order."""
        return [r.rater for r in self.raters]

    def pair_pieces(self, i: int, j: int, cls: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Cached :func:`geometry.pairwise_intersections` of raters ``i`` and ``j`` (i < j)."""
        key = (i, j, cls)
        if key not in self._pairs:
            a, b = self.raters[i].parts(cls), self.raters[j].parts(cls)
            self._pairs[key] = geo.pairwise_intersections(a, b)
        return self._pairs[key]

    def common_parts(self, indices: Sequence[int], cls: str) -> np.ndarray:
        """Disjoint polygons of the area that every rater in ``indices`` gave ``cls``."""
        if len(indices) == 1:
            return self.raters[indices[0]].parts(cls)
        first = geo.polygon_parts(self.pair_pieces(indices[0], indices[1], cls)[2])
        rest = [self.raters[k].parts(cls) for k in indices[2:]]
        return geo.intersection_parts([first, *rest])


def _canonical(mapping: Mapping[str, str], rater: str, cls: str | None) -> str:
    name = UNCLASSIFIED if cls is None else cls
    return mapping.get(f"{rater}:{name}", mapping.get(name, name))


def check_same_slide(
    sets: Sequence[AnnotationSet], slide: str | None, sources: Sequence[str | None]
) -> tuple[str | None, list[str]]:
    """Refuse annotation sets of different slides; returns (slide identity, notes)."""
    identities: list[tuple[str, str]] = []
    notes: list[str] = []
    for aset, source in zip(sets, sources, strict=True):
        label = source or f"rater {aset.rater!r}"
        if aset.slide:
            identities.append((label, slide_stem(aset.slide)))
        elif source is not None and split_annotation_name(source)[0] is not None:
            identities.append((label, split_annotation_name(source)[0]))
        else:
            notes.append(f"{label}: slide unknown (name it <slide stem>.<rater>.xml to check)")
    expected = slide_stem(slide) if slide else (identities[0][1] if identities else None)
    wrong = [f"{label} (slide {ident!r})" for label, ident in identities if ident != expected]
    if wrong:
        raise AgreementInputError(
            f"annotations of different slides cannot be compared: expected slide {expected!r}, "
            f"got {', '.join(wrong)}; pass the files of one slide only "
            "(files are named <slide stem>.<rater>.xml)"
        )
    return expected, notes


def prepare_raters(
    sets: Sequence[AnnotationSet],
    *,
    mapping: Mapping[str, str] | None = None,
    region: BaseGeometry | None = None,
    slide: str | None = None,
    sources: Sequence[str | None] | None = None,
    allow_empty: bool = False,
) -> RaterInput:
    """Validate annotation sets and build each rater's per-class regions.

    Args:
        sets: One annotation set per rater (``rater`` names them; else "rater 1", ...).
        mapping: Class mapping, see the module docstring.
        region: Optional region of interest (e.g. tissue) in level-0 ``(x, y)``; every region
            is intersected with it.
        slide: The slide under study (path or name), to check the sets against.
        sources: The file each set came from, for messages and the naming convention.
        allow_empty: Accept raters with no region annotation (all background).

    Raises:
        AgreementInputError: Fewer than two raters, duplicate rater names, other slides,
            empty sets, disjoint class names.
    """
    mapping = dict(mapping or {})
    sources = list(sources) if sources is not None else [None] * len(sets)
    if len(sets) < 2:
        raise AgreementInputError(
            f"agreement needs at least two raters' annotations, got {len(sets)}"
        )
    names = [
        s.rater or (split_annotation_name(src)[1] if src else f"rater {i + 1}")
        for i, (s, src) in enumerate(zip(sets, sources, strict=True))
    ]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise AgreementInputError(f"rater names must be unique; repeated: {', '.join(dupes)}")
    identity, notes = check_same_slide(sets, slide, sources)
    if region is not None:
        region = geo.polygonal(region)
    raters: list[RaterRegions] = []
    used: list[set[str]] = []
    for name, aset, source in zip(names, sets, sources, strict=True):
        by_class: dict[str, list] = {}
        geometries, geometry_notes = geo.region_geometries(aset.annotations)
        for annotation, geometry, note in zip(aset, geometries, geometry_notes, strict=True):
            if note:
                notes.append(f"{name}: {note}")
            if geometry is not None:
                cls = _canonical(mapping, name, annotation.group)
                by_class.setdefault(cls, []).append(geometry)
        if not by_class and not allow_empty:
            raise AgreementInputError(
                f"{source or name}: rater {name!r} has no region annotation (polygon, rectangle "
                "or spline); add annotations, drop this rater, or allow empty sets "
                "(--allow-empty) to count it as all background"
            )
        regions = {}
        for cls, geoms in by_class.items():
            merged = geo.union(geoms)
            if region is not None:
                merged = geo.polygonal(merged.intersection(region))
            regions[cls] = merged
        raters.append(RaterRegions(name, regions))
        used.append(set(by_class))
    _check_overlapping_classes(names, used)
    classes = sorted(set().union(*used))
    warnings = class_name_warnings(names, used)
    return RaterInput(raters, classes, notes, region, identity, warnings)


def _check_overlapping_classes(names: list[str], used: list[set[str]]) -> None:
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if used[i] and used[j] and not used[i] & used[j]:
                raise AgreementInputError(
                    f"raters {names[i]!r} and {names[j]!r} share no class name: "
                    f"{names[i]!r} uses {sorted(used[i])}, {names[j]!r} uses {sorted(used[j])}; "
                    "give a class mapping (--map RATERCLASS=CANON, e.g. "
                    f"{_suggestion(sorted(used[i]), sorted(used[j]), _usage(used))})"
                )


def class_name_warnings(names: list[str], used: list[set[str]]) -> list[str]:
    """One warning per rater pair whose class names differ, listing both sides.

    A class only one side uses may be the same class spelled differently ("tumor" vs
    "Tumour"); the analysis goes on with the names as given, and the warning says how to map
    them. Raters with no region at all (allowed empty sets) are not compared.
    """
    warnings = []
    usage = _usage(used)
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            if not used[i] or not used[j] or used[i] == used[j]:
                continue
            only_i, only_j = sorted(used[i] - used[j]), sorted(used[j] - used[i])
            text = (
                f"class names differ between raters {names[i]!r} and {names[j]!r}: "
                f"only {names[i]!r} uses {_listing(only_i)}; "
                f"only {names[j]!r} uses {_listing(only_j)}"
            )
            if only_i and only_j:
                text += (
                    "; if some are one class spelled differently, give a class mapping "
                    f"(e.g. {_suggestion(only_i, only_j, usage)})"
                )
            warnings.append(text)
    return warnings


def _usage(used: list[set[str]]) -> Counter[str]:
    return Counter(name for classes in used for name in classes)


def _listing(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names) if names else "(none)"


def _suggestion(left: list[str], right: list[str], usage: Counter[str]) -> str:
    """``--map RARE=COMMON`` for the most similar pair of names of the two sides.

    The name more raters use is suggested as the canonical one (the left one on a tie).
    """
    a, b = max(
        ((a, b) for a in left for b in right),
        key=lambda ab: SequenceMatcher(None, ab[0].lower(), ab[1].lower()).ratio(),
    )
    canon, other = (a, b) if usage[a] >= usage[b] else (b, a)
    return f"--map {other}={canon}"


def read_rater_files(paths: Sequence[str | Path]) -> list[AnnotationSet]:
    """Read annotation files (ASAP XML or GeoJSON), naming raters by ``<slide>.<rater>.xml``."""
    sets = []
    for path in paths:
        aset = read_annotations(path)
        if not aset.rater:
            aset.rater = split_annotation_name(path)[1]
        sets.append(aset)
    return sets
