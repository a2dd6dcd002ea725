"""Score every tissue patch of a slide with any function: :func:`heatmap`.

The slide is streamed region by region (:mod:`.regions`) while the previous batch is scored, so
memory stays bounded whatever the slide's size: the full-resolution patches are never all held
at once, only a region, a few batches and the grid of scores. The result carries its
georeference (:class:`~.heatmap.Heatmap`): cell ``(i, j)`` is the patch with level-0 top-left
corner ``(j · stride_x, i · stride_y)``, and its centre is that patch's centre.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.data.sampling import DEFAULT_MIN_TISSUE
from napari_wsi_ml.errors import HeatmapError
from napari_wsi_ml.inference.grid import ScoringGrid, scoring_plan
from napari_wsi_ml.inference.heatmap import Heatmap
from napari_wsi_ml.inference.regions import DEFAULT_REGION_PX, RegionBatches

if TYPE_CHECKING:
    from napari_wsi_ml.slide import Slide

DEFAULT_BATCH_SIZE = 64

Progress = Callable[[int, int], Any]
"""``progress(done, total)``: patches scored so far, out of the tissue patches of the slide."""


class ScoreFn(Protocol):
    """Scores of a batch of patches.

    Called with ``patches`` ``(N, H, W, 3)`` uint8 RGB and their level-0 top-left corners
    ``xy`` ``(N, 2)`` int64; returns ``(N, C)`` scores. Optional attributes ``class_names``,
    ``run_id`` and ``value_range`` (e.g. ``(0, 1)`` for probabilities) name the channels and
    the source in the heatmap.
    """

    def __call__(self, patches: np.ndarray, xy: np.ndarray) -> np.ndarray:
        """``(N, C)`` scores of ``patches``."""
        ...


def heatmap(
    slide: Slide,
    score_fn: ScoreFn,
    patch_size: int,
    stride: int | None = None,
    mpp: float | None = None,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    min_tissue: float = DEFAULT_MIN_TISSUE,
    level: int | None = None,
    progress: Progress | None = None,
    tissue: BaseGeometry | None = None,
    slide_mpp: float | tuple[float, float] | None = None,
    class_names: Sequence[str] | None = None,
    run_id: str | None = None,
    prefetch: int = 2,
    region_px: int = DEFAULT_REGION_PX,
) -> Heatmap:
    """Score the tissue patches of a regular grid over ``slide``.

    Args:
        slide: An open slide.
        score_fn: See :class:`ScoreFn`; a trained run's model
            (:func:`~napari_wsi_ml.inference.load_run`) or any callable.
        patch_size: Patch side in output pixels (at ``mpp``).
        stride: Step between patches in output pixels; None = ``patch_size`` (no overlap).
        mpp: Target µm per output pixel, read from the nearest finer level and resized; None
            reads ``level`` (default 0) at its own resolution.
        batch_size: Patches per ``score_fn`` call (the last call may have fewer).
        min_tissue: Patches with a smaller tissue fraction are not scored (NaN); 0 scores
            every patch.
        level: Pyramid level to read from (see :func:`~.grid.scoring_plan`).
        progress: Called after every batch.
        tissue: Level-0 tissue geometry; default the slide's tissue polygons.
        slide_mpp: µm per level-0 pixel, for slides that do not record it.
        class_names: Channel names; default ``score_fn.class_names``, else ``class_0`` ….
        run_id: Source name; default ``score_fn.run_id``, else the function's name.
        prefetch: Batches read ahead of the scoring.
        region_px: Side of the regions read at once, in read-level pixels.

    Returns:
        A :class:`Heatmap` with origin ``(0, 0)``, the level-0 stride and patch extent, NaN
        where nothing was scored. ``extra`` records the read plan, ``min_tissue``, the number
        of patches scored and of patches skipped over unreadable tiles.

    Raises:
        ConfigError: The resolution or level cannot be read, or the patch does not fit.
        HeatmapError: ``score_fn`` returned scores of the wrong shape or count.
    """
    plan = scoring_plan(slide, patch_size, mpp, level=level, slide_mpp=slide_mpp)
    grid = ScoringGrid.over(slide.level_dimensions[0], plan, stride)
    cells = grid.tissue_cells(slide, min_tissue, tissue=tissue)
    total = int(cells.sum())
    names = _class_names(score_fn, class_names)
    values: np.ndarray | None = None
    if names is not None:
        values = np.full((*grid.shape, len(names)), np.nan, dtype=np.float32)
    batches = RegionBatches(
        slide, grid, cells, batch_size=batch_size, prefetch=prefetch, region_px=region_px
    )
    done = 0
    stream = iter(batches)
    try:
        for batch in stream:
            scores = _check_scores(score_fn(batch.images, batch.xy), len(batch), names)
            if values is None:
                names = tuple(f"class_{i}" for i in range(scores.shape[1]))
                values = np.full((*grid.shape, scores.shape[1]), np.nan, dtype=np.float32)
            values[batch.rows, batch.cols] = scores
            done += len(batch)
            if progress is not None:
                progress(done, total)
    finally:
        stream.close()  # stops the reader thread now, also when scoring failed
    if values is None:  # nothing to score and no names given: one unnamed channel
        names = ("class_0",)
        values = np.full((*grid.shape, 1), np.nan, dtype=np.float32)
    extra: dict[str, object] = {
        "read_plan": plan.to_dict(),
        "min_tissue": float(min_tissue),
        "patches_scored": done,
        "unreadable_patches": batches.stats.skipped,
    }
    if batches.stats.errors:
        extra["unreadable_examples"] = batches.stats.errors[:5]
    value_range = getattr(score_fn, "value_range", None)
    if value_range is not None:
        extra["value_range"] = [float(v) for v in value_range]
    return Heatmap(
        values=values,
        origin=(0.0, 0.0),
        stride=(float(grid.stride[0]), float(grid.stride[1])),
        patch_size=(float(plan.extent[0]), float(plan.extent[1])),
        class_names=names,  # type: ignore[arg-type]
        run_id=run_id or _run_id(score_fn),
        slide_fingerprint=slide.fingerprint,
        extra=extra,
    )


def _class_names(score_fn: object, given: Sequence[str] | None) -> tuple[str, ...] | None:
    names = given if given is not None else getattr(score_fn, "class_names", None)
    return None if names is None else tuple(str(n) for n in names)


def _run_id(score_fn: object) -> str:
    found = getattr(score_fn, "run_id", None)
    if found:
        return str(found)
    return str(getattr(score_fn, "__name__", type(score_fn).__name__))


def _check_scores(scores: object, n: int, names: tuple[str, ...] | None) -> np.ndarray:
    array = np.asarray(scores, dtype=np.float32)
    if array.ndim == 1 and names is not None and len(names) == 1:
        array = array[:, None]
    expected = f"({n}, {len(names)})" if names is not None else f"({n}, C)"
    if array.ndim != 2 or array.shape[0] != n or (names and array.shape[1] != len(names)):
        raise HeatmapError(
            f"The score function returned an array of shape {array.shape} for {n} patches; "
            f"expected {expected}: one row per patch, one column per class."
        )
    return array
