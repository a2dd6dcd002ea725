"""Thread-safe reads and a tile cache that respects its byte bound."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from napari_wsi_ml.slide import TileCache, open_slide


def test_many_threads_read_identical_pixels(generated_svs: Path) -> None:
    with open_slide(generated_svs, cache_bytes=2 << 20) as slide:  # small: forces evictions
        reference = np.asarray(slide.levels[0]).copy()
        rng = np.random.default_rng(1)
        boxes = []
        for _ in range(200):
            w, h = (int(v) for v in rng.integers(50, 700, size=2))
            boxes.append((int(rng.integers(0, 1800 - w)), int(rng.integers(0, 1400 - h)), w, h))

        def read(box: tuple[int, int, int, int]) -> bool:
            x, y, w, h = box
            got = np.asarray(slide.levels[0][y : y + h, x : x + w])
            return bool(np.array_equal(got, reference[y : y + h, x : x + w]))

        with ThreadPoolExecutor(max_workers=8) as pool:
            results = list(pool.map(read, boxes))
        assert all(results)
        assert slide.cache.nbytes <= 2 << 20


def test_cache_evicts_least_recent_and_never_exceeds_bound() -> None:
    tile = np.zeros((100, 100, 3), np.uint8)  # 30,000 bytes
    cache = TileCache(100_000)
    for i in range(3):
        cache.put(("s", 0, i, 0), tile.copy())
    assert cache.nbytes == 90_000
    assert cache.get(("s", 0, 0, 0)) is not None  # 0 becomes most recent
    cache.put(("s", 0, 3, 0), tile.copy())  # evicts 1 (least recent)
    assert cache.nbytes == 90_000 and len(cache) == 3
    assert cache.get(("s", 0, 1, 0)) is None
    assert cache.get(("s", 0, 0, 0)) is not None
    cache.resize(40_000)
    assert cache.nbytes == 30_000 and len(cache) == 1
    with pytest.raises(ValueError, match="read-only"):
        cache.get(("s", 0, 0, 0))[0, 0, 0] = 1  # the most recent survived


def test_cache_bound_holds_under_concurrent_puts() -> None:
    cache = TileCache(1_000_000)
    seen: list[int] = []
    lock = threading.Lock()

    def work(start: int) -> None:
        for i in range(start, start + 300):
            cache.put(("s", 0, i, 0), np.zeros((64, 64, 3), np.uint8))
            with lock:
                seen.append(cache.nbytes)

    with ThreadPoolExecutor(max_workers=6) as pool:
        list(pool.map(work, range(0, 1800, 300)))
    assert max(seen) <= 1_000_000
    assert cache.nbytes == len(cache) * 64 * 64 * 3 <= 1_000_000


def test_slide_reads_through_its_cache(generated_svs: Path) -> None:
    with open_slide(generated_svs, cache_bytes=1 << 20) as slide:
        np.asarray(slide.levels[0][:300, :300])  # 4 tiles
        assert len(slide.cache) == 4 and slide.cache.nbytes == 4 * 256 * 256 * 3
        hits = slide.cache.hits
        np.asarray(slide.levels[0][:300, :300])
        assert slide.cache.hits == hits + 4
        # 5 x 6 whole tiles of 196,608 bytes, decoded in any order; 5 fit in 1 MiB
        np.asarray(slide.levels[0][:1280, :1536])
        assert slide.cache.nbytes == 5 * 256 * 256 * 3 and len(slide.cache) == 5
    assert slide.cache.nbytes == 0  # closing drops the slide's tiles
