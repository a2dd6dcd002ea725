"""A stable, fast content hash of a slide file."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path

_SAMPLE_BYTES = 1 << 20


def slide_fingerprint(path: Path, properties: Mapping[str, str]) -> str:
    """SHA-256 (hex) over the file size, its first and last MiB and OpenSlide's quickhash-1.

    Reads at most 2 MiB, so it is fast for files of many GB; it changes whenever the file is
    replaced by another slide, and not when the file is renamed or copied.
    """
    digest = hashlib.sha256()
    size = path.stat().st_size
    digest.update(f"size={size};".encode())
    with path.open("rb") as handle:
        digest.update(handle.read(_SAMPLE_BYTES))
        if size > _SAMPLE_BYTES:
            handle.seek(max(_SAMPLE_BYTES, size - _SAMPLE_BYTES))
            digest.update(handle.read(_SAMPLE_BYTES))
    digest.update(f";quickhash-1={properties.get('openslide.quickhash-1', '')}".encode())
    return digest.hexdigest()
