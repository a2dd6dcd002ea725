"""Ground truth of a synthetic slide: what was drawn where, and how to save it."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from shapely.geometry import MultiPolygon, Polygon, mapping, shape
from shapely.ops import unary_union

from napari_wsi_ml.annotations.atomic import atomic_write_text
from napari_wsi_ml.annotations.model import Annotation, AnnotationSet, AnnotationType, Group
from napari_wsi_ml.synthetic.scene import Artefact, Lesion, Scene

TUMOUR_GROUP = "tumor"
"""Annotation group of tumour regions on binary (normal / tumour) slides."""

MORPHOLOGY_GROUPS = {"a": "tumor_a", "b": "tumor_b"}
"""Annotation group of each tumour morphology on multi-class slides."""

GROUP_COLOURS = {"tumor": "#D0021B", "tumor_a": "#D0021B", "tumor_b": "#F5A623"}
"""ASAP colour of each annotation group."""


@dataclass(frozen=True)
class SlideTruth:
    """Everything known about one synthetic slide.

    Attributes:
        path: The slide file.
        width: Level-0 width in pixels.
        height: Level-0 height in pixels.
        mpp: Micrometres per level-0 pixel (x and y).
        downsample: Pyramid factor between levels (2 or 4); level ``l`` pixel ``k`` covers
            level-0 ``[k·d**l, (k+1)·d**l)``.
        level_dimensions: ``(w, h)`` per level, ``ceil(size / d**l)``.
        label: Slide label: ``"normal"``, ``"tumour"``, or on multi-class slides
            ``"tumour_a"`` / ``"tumour_b"``.
        patient: Patient id; a patient may have several slides.
        site: Site id (``"site_0"`` …); sites differ in stain colour.
        seed: Seed the slide was drawn from.
        multiclass: Whether lesions are grouped by morphology (``tumor_a`` / ``tumor_b``).
        tissue: Tissue, with holes, in level-0 ``(x, y)``.
        lesions: Tumour regions, simple polygons inside the tissue.
        artefacts: Dust and pen strokes on the glass.
    """

    path: Path
    width: int
    height: int
    mpp: float
    downsample: int
    level_dimensions: tuple[tuple[int, int], ...]
    label: str
    patient: str
    site: str
    seed: int
    multiclass: bool
    tissue: MultiPolygon
    lesions: tuple[Lesion, ...]
    artefacts: tuple[Artefact, ...]

    @property
    def name(self) -> str:
        """The slide's file stem, e.g. ``"slide_003"``."""
        return self.path.stem

    @property
    def tumour(self) -> Polygon | MultiPolygon:
        """Union of all lesions (empty on normal slides)."""
        return unary_union([les.polygon for les in self.lesions])

    @property
    def tumour_fraction(self) -> float:
        """Lesion area divided by tissue area."""
        return float(self.tumour.area / self.tissue.area) if self.tissue.area else 0.0

    def group_of(self, lesion: Lesion) -> str:
        """The annotation group of ``lesion``."""
        return MORPHOLOGY_GROUPS[lesion.morphology] if self.multiclass else TUMOUR_GROUP

    @property
    def groups(self) -> dict[str, Group]:
        """The annotation groups this slide's annotations may use."""
        names = list(MORPHOLOGY_GROUPS.values()) if self.multiclass else [TUMOUR_GROUP]
        return {n: Group(n, color=GROUP_COLOURS[n]) for n in names}

    def annotation_set(self, rater: str = "truth") -> AnnotationSet:
        """The lesions as an ASAP-ready annotation set, one polygon per lesion."""
        annotations = [
            Annotation(
                name=f"Annotation {i}",
                type=AnnotationType.POLYGON,
                coordinates=np.asarray(les.polygon.exterior.coords)[:-1],
                group=self.group_of(les),
                color=GROUP_COLOURS[self.group_of(les)],
            )
            for i, les in enumerate(self.lesions)
        ]
        return AnnotationSet(annotations, self.groups, rater=rater, slide=self.name)


def slide_label(scene: Scene, multiclass: bool) -> str:
    """``"normal"`` without lesions, else ``"tumour"`` or ``"tumour_<morphology>"``."""
    if not scene.lesions:
        return "normal"
    return f"tumour_{scene.lesions[0].morphology}" if multiclass else "tumour"


def truth_from_scene(
    scene: Scene,
    path: str | os.PathLike,
    *,
    downsample: int,
    level_dimensions: Sequence[tuple[int, int]],
    multiclass: bool = False,
    patient: str | None = None,
) -> SlideTruth:
    """The truth of a slide rendered from ``scene`` at ``path`` (no pixels needed)."""
    path = Path(path)
    return SlideTruth(
        path=path,
        width=scene.width,
        height=scene.height,
        mpp=scene.mpp,
        downsample=downsample,
        level_dimensions=tuple(tuple(d) for d in level_dimensions),
        label=slide_label(scene, multiclass),
        patient=patient or path.stem,
        site=f"site_{scene.site}",
        seed=scene.seed,
        multiclass=multiclass,
        tissue=MultiPolygon(list(scene.tissue)),
        lesions=scene.lesions,
        artefacts=scene.artefacts,
    )


def _feature(geometry: object, name: str, color: str, **properties: object) -> dict:
    """A QuPath-style GeoJSON annotation feature."""
    rgb = [int(color[i : i + 2], 16) for i in (1, 3, 5)]
    props = {"objectType": "annotation", "classification": {"name": name, "color": rgb}}
    return {"type": "Feature", "geometry": mapping(geometry), "properties": {**props, **properties}}


def write_truth_geojson(truth: SlideTruth, path: str | os.PathLike) -> Path:
    """Save tissue (with holes), lesions and artefacts as QuPath-style GeoJSON, atomically.

    The slide's metadata (label, patient, site, mpp, …) go in the collection's ``slide`` member.
    """
    features = [_feature(truth.tissue, "Tissue", "#50B450")]
    for lesion in truth.lesions:
        group = truth.group_of(lesion)
        features.append(
            _feature(
                lesion.polygon,
                group,
                GROUP_COLOURS[group],
                morphology=lesion.morphology,
                size_class=lesion.size_class,
            )
        )
    for artefact in truth.artefacts:
        colour = "#808080" if artefact.kind == "dust" else "#00A000"
        features.append(
            _feature(
                artefact.polygon, artefact.kind, colour, optical_density=artefact.optical_density
            )
        )
    meta = {
        "file": truth.path.name,
        "width": truth.width,
        "height": truth.height,
        "mpp": truth.mpp,
        "downsample": truth.downsample,
        "level_dimensions": [list(d) for d in truth.level_dimensions],
        "label": truth.label,
        "patient": truth.patient,
        "site": truth.site,
        "seed": truth.seed,
        "multiclass": truth.multiclass,
    }
    document = {"type": "FeatureCollection", "slide": meta, "features": features}
    return atomic_write_text(path, [json.dumps(document)])


def read_truth_geojson(path: str | os.PathLike) -> SlideTruth:
    """Load what :func:`write_truth_geojson` saved; the slide is looked up beside ``path``."""
    path = Path(path)
    document = json.loads(path.read_text(encoding="utf-8"))
    meta = document["slide"]
    tissue, lesions, artefacts = MultiPolygon(), [], []
    for feature in document["features"]:
        geometry = shape(feature["geometry"])
        props = feature["properties"]
        name = props["classification"]["name"]
        if name == "Tissue":
            tissue = geometry if isinstance(geometry, MultiPolygon) else MultiPolygon([geometry])
        elif name in ("dust", "pen"):
            artefacts.append(Artefact(geometry, name, tuple(props["optical_density"])))
        else:
            lesions.append(Lesion(geometry, props["morphology"], props["size_class"]))
    return SlideTruth(
        path=path.parent / meta["file"],
        width=meta["width"],
        height=meta["height"],
        mpp=meta["mpp"],
        downsample=meta["downsample"],
        level_dimensions=tuple(tuple(d) for d in meta["level_dimensions"]),
        label=meta["label"],
        patient=meta["patient"],
        site=meta["site"],
        seed=meta["seed"],
        multiclass=meta["multiclass"],
        tissue=tissue,
        lesions=tuple(lesions),
        artefacts=tuple(artefacts),
    )
