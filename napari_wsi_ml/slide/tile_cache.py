"""A byte-bounded, thread-safe LRU cache of decoded tiles, shared by the slides that use it."""

from __future__ import annotations

import os
import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable

import numpy as np

DEFAULT_CACHE_BYTES = 1 << 30
"""Default bound of the process-wide tile cache: 1 GiB."""


_CACHES: weakref.WeakSet[TileCache] = weakref.WeakSet()


def _fresh_locks_in_child() -> None:
    """A forked child may inherit a lock held by a parent thread that does not exist there."""
    for cache in list(_CACHES):
        cache._lock = threading.Lock()


os.register_at_fork(after_in_child=_fresh_locks_in_child)


class TileCache:
    """Least-recently-used cache of read-only tile arrays, bounded by their total size in bytes.

    Every method takes one lock, so the cache can be shared between the threads of dask's
    scheduler and napari's slicing threads. Cached arrays are made read-only so a caller cannot
    corrupt what another caller will receive.

    Args:
        max_bytes: Upper bound on the summed ``nbytes`` of the cached arrays; 0 disables caching.
    """

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self._max_bytes = int(max_bytes)
        self._entries: OrderedDict[Hashable, np.ndarray] = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()
        _CACHES.add(self)
        self.hits = 0
        self.misses = 0

    @property
    def max_bytes(self) -> int:
        """The byte bound."""
        return self._max_bytes

    @property
    def nbytes(self) -> int:
        """Bytes held now (never above :attr:`max_bytes`)."""
        return self._nbytes

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> np.ndarray | None:
        """The cached array for ``key`` (marked most recently used), or None."""
        with self._lock:
            tile = self._entries.get(key)
            if tile is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return tile

    def get_many(self, keys: list[Hashable]) -> list[np.ndarray | None]:
        """The cached arrays for ``keys`` (None where absent), looked up under one lock.

        Only hits are counted: the caller fetches the absent keys with :meth:`get`, which
        counts each miss once.
        """
        with self._lock:
            entries = self._entries
            found = [entries.get(key) for key in keys]
            for key, tile in zip(keys, found, strict=True):
                if tile is not None:
                    entries.move_to_end(key)
                    self.hits += 1
        return found

    def put(self, key: Hashable, tile: np.ndarray) -> np.ndarray:
        """Store ``tile`` (made read-only) under ``key``, evicting the oldest entries to fit.

        Returns the stored array. A tile larger than the whole bound is returned uncached.
        """
        tile.flags.writeable = False
        size = tile.nbytes
        if size > self._max_bytes:
            return tile
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._nbytes -= old.nbytes
            self._entries[key] = tile
            self._nbytes += size
            self._evict_to(self._max_bytes)
        return tile

    def resize(self, max_bytes: int) -> None:
        """Change the byte bound, evicting at once if the cache holds more."""
        if max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        with self._lock:
            self._max_bytes = int(max_bytes)
            self._evict_to(self._max_bytes)

    def discard_owner(self, owner: Hashable) -> None:
        """Drop every entry whose key is a tuple starting with ``owner`` (a closed slide)."""
        with self._lock:
            doomed = [k for k in self._entries if isinstance(k, tuple) and k[:1] == (owner,)]
            for key in doomed:
                self._nbytes -= self._entries.pop(key).nbytes

    def clear(self) -> None:
        """Drop every entry."""
        with self._lock:
            self._entries.clear()
            self._nbytes = 0

    def _evict_to(self, limit: int) -> None:
        while self._nbytes > limit and self._entries:
            _, tile = self._entries.popitem(last=False)
            self._nbytes -= tile.nbytes


_default_cache = TileCache(DEFAULT_CACHE_BYTES)


def default_cache() -> TileCache:
    """The process-wide cache used by slides opened without ``cache_bytes``."""
    return _default_cache


def set_default_cache_bytes(max_bytes: int) -> None:
    """Set the byte bound of the process-wide tile cache (evicts at once if needed)."""
    _default_cache.resize(max_bytes)
