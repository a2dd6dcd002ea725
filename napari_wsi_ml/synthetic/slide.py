"""Generate one synthetic slide, with its truth and, optionally, simulated raters' files."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from napari_wsi_ml.annotations.asap_xml import write_asap
from napari_wsi_ml.annotations.model import AnnotationSet
from napari_wsi_ml.synthetic.raters import simulate_raters
from napari_wsi_ml.synthetic.scene import make_scene
from napari_wsi_ml.synthetic.tiff_writer import level_dimensions, write_svs
from napari_wsi_ml.synthetic.truth import SlideTruth, truth_from_scene, write_truth_geojson

ALIGNMENT_SIZE = (5003, 3001)
"""Level-0 ``(width, height)`` of the alignment slide: odd on both sides."""


def generate_slide(
    path: str | os.PathLike,
    *,
    width: int,
    height: int,
    seed: int,
    mpp: float = 0.25,
    downsample: int = 2,
    site: int = 0,
    tumour: str = "large",
    morphology: str | None = None,
    multiclass: bool = False,
    pen: str | None = None,
    dust: bool = True,
    n_pieces: int | None = None,
    n_small_lesions: int | None = None,
    tissue_scale: float = 1.0,
    patient: str | None = None,
    quality: int = 85,
    workers: int | None = None,
    on_tile: Callable[[int], None] | None = None,
) -> SlideTruth:
    """Draw a scene from ``seed`` and write it as a pyramidal JPEG SVS at ``path``.

    Args:
        path: Output ``.svs`` file; its stem is the slide's name.
        width: Level-0 width in pixels (any size from a few hundred to 100k or more).
        height: Level-0 height in pixels.
        seed: Seed of everything drawn; the same seed gives the same pixels and polygons.
        mpp: Micrometres per level-0 pixel (written as Aperio ``MPP``).
        downsample: Pyramid factor between levels, 2 or 4.
        site: Site number; picks the stain colours.
        tumour: ``"none"``, ``"small"`` (lesions < 10 % of the tissue) or ``"large"``.
        morphology: Tumour morphology ``"a"`` (glandular) or ``"b"`` (solid); default from seed.
        multiclass: Label slides ``tumour_a`` / ``tumour_b`` and group lesions by morphology.
        pen: Marker colour (``"green"``, ``"blue"``, ``"black"``) of a pen stroke, or ``None``.
        dust: Whether to scatter dust on the glass.
        n_pieces: Number of tissue sections (default from seed).
        n_small_lesions: Number of small lesions (default from seed).
        tissue_scale: Multiplies the size of the tissue sections.
        patient: Patient id (default: the slide's name).
        quality: JPEG quality.
        workers: Render threads.
        on_tile: Called with the number of tiles rendered, for progress bars.

    Returns:
        The slide's truth.
    """
    path = Path(path)
    scene = make_scene(
        width,
        height,
        seed=seed,
        mpp=mpp,
        site=site,
        tumour=tumour,
        morphology=morphology,
        pen=pen,
        dust=dust,
        n_pieces=n_pieces,
        n_small_lesions=n_small_lesions,
        tissue_scale=tissue_scale,
    )
    dims = write_svs(
        path, scene, downsample=downsample, quality=quality, workers=workers, on_tile=on_tile
    )
    return truth_from_scene(
        scene,
        path,
        downsample=downsample,
        level_dimensions=dims,
        multiclass=multiclass,
        patient=patient,
    )


def generate_alignment_slide(
    path: str | os.PathLike, *, seed: int = 0, **kwargs: object
) -> SlideTruth:
    """The alignment test slide: 5003 × 3001 px, downsample-4 pyramid, exactly one lesion.

    One tissue section holds one large tumour polygon (``truth.lesions[0]``), no pen and no
    dust; other keyword arguments go to :func:`generate_slide`.
    """
    options: dict = {
        "width": ALIGNMENT_SIZE[0],
        "height": ALIGNMENT_SIZE[1],
        "downsample": 4,
        "tumour": "large",
        "n_pieces": 1,
        "n_small_lesions": 0,
        "dust": False,
        "pen": None,
    }
    options.update(kwargs)
    return generate_slide(path, seed=seed, **options)


def generate_benchmark_slide(
    path: str | os.PathLike,
    *,
    size: int = 50_176,
    seed: int = 0,
    downsample: int = 2,
    workers: int | None = None,
    on_tile: Callable[[int], None] | None = None,
) -> SlideTruth:
    """A large square slide for benchmarks, reused if ``path`` already holds the same one.

    The default side, 50 176 = 49 × 1024, keeps every level's downsample an exact power of
    ``downsample`` in OpenSlide (which derives downsamples from the level sizes). One tissue
    section fills most of the slide, with a large tumour and a pen stroke.

    A sidecar ``<path>.json`` records the parameters; if it matches, nothing is rendered and the
    truth is rebuilt from the seed (cheap: no pixels).
    """
    path = Path(path)
    params = {"size": size, "seed": seed, "downsample": downsample, "version": 1}
    sidecar = path.with_name(path.name + ".json")
    kwargs = {"width": size, "height": size, "seed": seed, "downsample": downsample}
    kwargs.update({"tumour": "large", "n_pieces": 1, "pen": "green"})
    if path.exists() and sidecar.exists() and json.loads(sidecar.read_text()) == params:
        return _truth_without_pixels(path, **kwargs)
    truth = generate_slide(path, workers=workers, on_tile=on_tile, **kwargs)
    sidecar.write_text(json.dumps(params))
    return truth


def _truth_without_pixels(path: Path, **kwargs: object) -> SlideTruth:
    """The truth :func:`generate_slide` would return, without rendering anything."""
    downsample = kwargs.pop("downsample")
    scene = make_scene(kwargs.pop("width"), kwargs.pop("height"), **kwargs)
    dims = level_dimensions(scene.width, scene.height, downsample)
    return truth_from_scene(scene, path, downsample=downsample, level_dimensions=dims)


@dataclass(frozen=True)
class SyntheticSlide:
    """A written slide with its truth and its simulated raters' files.

    Attributes:
        truth: What the slide holds.
        truth_xml: ``<stem>.truth.xml`` (ASAP) with the true lesions.
        truth_geojson: ``<stem>.truth.geojson`` with tissue, lesions and artefacts.
        raters: The raters' annotation sets, in rater order.
        rater_xml: Rater name → ``<stem>.<rater>.xml``.
    """

    truth: SlideTruth
    truth_xml: Path
    truth_geojson: Path
    raters: list[AnnotationSet] = field(default_factory=list)
    rater_xml: dict[str, Path] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        """The slide file."""
        return self.truth.path


def write_annotations(truth: SlideTruth, *, n_raters: int = 3, seed: int = 0) -> SyntheticSlide:
    """Write the truth (ASAP and GeoJSON) and ``n_raters`` simulated raters beside the slide."""
    folder, stem = truth.path.parent, truth.name
    truth_xml = folder / f"{stem}.truth.xml"
    write_asap(truth.annotation_set("truth"), truth_xml)
    truth_geojson = write_truth_geojson(truth, folder / f"{stem}.truth.geojson")
    raters = simulate_raters(truth, n_raters, seed=seed)
    rater_xml = {r.rater: folder / f"{stem}.{r.rater}.xml" for r in raters}
    for rater in raters:
        write_asap(rater, rater_xml[str(rater.rater)])
    return SyntheticSlide(truth, truth_xml, truth_geojson, raters, rater_xml)
