"""Fast ASAP XML reading: the coordinates without one Python call per ``<Coordinate>``.

Why it exists: speed. Almost all of an ASAP file is ``<Coordinate Order X Y />`` tags (3M
vertices are ~180 MB). A general parser calls back into Python for each of them, which caps
reading at ~0.2M vertices/s; the target is ≥ 1M vertices/s.

How it works: the file is cut at every ``<Coordinates>`` … ``</Coordinates>``. The content in
between (a *block*) is checked and converted with a few whole-buffer C-speed operations
(:mod:`._asap_numbers`); what remains, the *skeleton* (~7% of the file), where each cut-out
element is replaced by an empty comment, goes through the same guarded expat parser and
builder as the general path (:mod:`._asap_skeleton`), which gives annotations, groups and
lines. The numbers are converted on a worker thread (pandas releases the GIL) while this
thread checks the blocks and parses the skeleton.

How it stays safe: a block is accepted only if it consists of whitespace and tags
byte-identical to ``<Coordinate Order="…" X="…" Y="…" />``, each ``…`` a run of ``0-9 . + -``
(or a decimal comma as in ``12,5``) that parses as exactly one finite number. Such a block is
well-formed element content without any reference. Expat accepts a comment neither in a tag
nor in an attribute value, and each comment must lie directly inside an annotation that has
no child element, where the general parser gives the block's coordinates to that annotation.
Putting the elements back into a skeleton that expat accepted (well-formed, no entity
declaration, no external reference) therefore gives a document that expat accepts and reads
the same. Other ``<!`` (DOCTYPE, comments, CDATA) and processing instructions are refused,
so no cut falls inside one. Whenever anything is off, :func:`parse_canonical` returns
``None`` and the caller runs the general parser, which reports the exact problem with its
line.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from napari_wsi_ml.annotations._asap_numbers import start_reading
from napari_wsi_ml.annotations._asap_raw import RawAsap, sort_by_order
from napari_wsi_ml.annotations._asap_skeleton import MARKER, parse_skeleton

_OPEN, _CLOSE = b"<Coordinates>", b"</Coordinates>"
_ENCODING = re.compile(rb'encoding\s*=\s*["\']([^"\']*)["\']')


def _cut(data: bytes) -> tuple[bytes, list[tuple[int, int]]] | None:
    """The skeleton and the (start, end) in ``data`` of the blocks.

    A block is the content of a ``<Coordinates>`` element; in the skeleton the whole element
    is replaced by :data:`MARKER`.
    """
    spans = []
    end = 0
    while (start := data.find(_OPEN, end)) >= 0:
        end = data.find(_CLOSE, start)  # a nested _OPEN lands in the block and fails its check
        if end < 0:
            return None
        spans.append((start + len(_OPEN), end))
    view = memoryview(data)
    elements = np.array(spans, dtype=np.int64).reshape(-1, 2) + np.array([-len(_OPEN), len(_CLOSE)])
    cuts = [0, *elements.ravel().tolist(), len(data)]  # what the skeleton keeps: [a, b) pairs
    skeleton = MARKER.join([view[a:b] for a, b in zip(cuts[::2], cuts[1::2], strict=True)])
    return skeleton, spans


def _markers(spans: list[tuple[int, int]]) -> list[int]:
    """Byte offsets in the skeleton of the markers that replace the elements at ``spans``."""
    starts, ends = np.array(spans, dtype=np.int64).reshape(-1, 2).T
    element = ends - starts + len(_OPEN) + len(_CLOSE)
    before = np.cumsum(element) - element  # bytes of elements cut before each one
    return (starts - len(_OPEN) - before + np.arange(len(spans)) * len(MARKER)).tolist()


def parse_canonical(data: bytes, path: str) -> RawAsap | None:
    """Parse ASAP XML whose coordinates are laid out as ASAP writes them, else ``None``."""
    encoding = _ENCODING.search(data, 0, 200)
    if encoding and encoding.group(1).lower() not in (b"utf-8", b"utf8"):
        return None
    cut = _cut(data)
    if cut is None or not cut[1]:
        return None
    skeleton, spans = cut
    with ThreadPoolExecutor(max_workers=1) as pool:
        reading = start_reading(data, spans, pool)
        parsed = parse_skeleton(skeleton, _markers(spans), path) if reading else None
        table = reading.table() if reading and parsed else None
        if table is None:
            pool.shutdown(cancel_futures=True)
    if table is None or parsed is None or reading is None:
        return None
    builder, owners = parsed
    builder.finish(reading.newlines)
    annotations = builder.raw.annotations
    counts = np.bincount(owners, weights=reading.tags, minlength=len(annotations))
    sizes = counts.astype(np.int64)
    ends = np.cumsum(sizes)  # rows per annotation (it may hold several blocks)
    starts = ends - sizes
    orders, coords = table[:, 0], np.ascontiguousarray(table[:, 1:])
    in_sequence = np.array_equal(orders, np.arange(len(table)) - np.repeat(starts, sizes))
    for item, start, end in zip(annotations, starts.tolist(), ends.tolist(), strict=True):
        block = coords[start:end]
        item.coordinates = block if in_sequence else sort_by_order(block, orders[start:end])
    return builder.raw
