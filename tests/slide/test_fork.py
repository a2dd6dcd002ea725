"""Slides keep working in a child process forked after the parent has read pixels."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import openslide

from napari_wsi_ml.slide import open_slide

SLIDE = Path(__file__).parents[1] / "data" / "slides" / "cmu-1-small-region.svs"


def _read_in_child(queue: multiprocessing.Queue) -> None:
    with open_slide(SLIDE) as slide:
        queue.put(np.asarray(slide.levels[0][1000:1300, 500:900]).sum(dtype=np.int64))


def test_forked_child_reads_after_parent_read_pixels() -> None:
    with open_slide(SLIDE) as slide:
        np.asarray(slide.levels[0][0:1200, 0:1200])  # parent uses the decoder pool and cache
        context = multiprocessing.get_context("fork")
        queue = context.Queue()
        child = context.Process(target=_read_in_child, args=(queue,))
        child.start()
        child.join(timeout=60)
        hung = child.is_alive()
        if hung:
            child.kill()
        assert not hung, "a forked child hung reading a slide"
        expected = np.asarray(
            openslide.OpenSlide(SLIDE).read_region((500, 1000), 0, (400, 300)).convert("RGB")
        ).sum(dtype=np.int64)
        assert queue.get(timeout=5) == expected
