"""Fast ASAP XML reading: the coordinates without one Python call per ``<Coordinate>``.

Why it exists: speed. Almost all of an ASAP file is ``<Coordinate Order X Y />`` tags (3M
vertices are ~180 MB). A general parser calls back into Python for each of them, which caps
reading at ~0.2M vertices/s; the target is ≥ 1M vertices/s.

How it works: the file is cut at every ``<Coordinates>`` … ``</Coordinates>``. The content in
between (a *block*) is checked and converted with a few whole-buffer C-speed operations
(:mod:`._asap_numbers`); what remains, the *skeleton* (~7% of the file), where each cut-out
element is replaced by an empty comment, gives annotations, groups and lines
(:mod:`._asap_skeleton`): in ASAP's own layout the annotations' start tags are read as rows by
one regular expression and only the rest (root, groups) goes through the guarded expat
builder of the general path; in any other layout the whole skeleton does (two Python calls
per annotation). The numbers are converted on a worker thread (pandas releases the GIL) while
this thread checks the blocks and reads the skeleton.

How it stays safe: a block is accepted only if it consists of whitespace and tags
byte-identical to ``<Coordinate Order="…" X="…" Y="…" />``, each ``…`` a run of ``0-9 . + -``
(or a decimal comma as in ``12,5``) that parses as exactly one finite number. Such a block is
well-formed element content without any reference. Expat accepts a comment neither in a tag
nor in an attribute value, and each comment must lie directly inside an annotation that has
no child element, where the general parser gives the block's coordinates to that annotation.
Putting the elements back into a skeleton that expat accepted (well-formed, no entity
declaration, no external reference) therefore gives a document that expat accepts and reads
the same; the rows that the regular expression reads are such well-formed elements (fixed
names and attributes, values without ``<``, ``&``, quotes or control characters, strictly
UTF-8), put right after ``<Annotations>`` in a rest that expat accepted. Other ``<!``
(DOCTYPE, comments, CDATA) and processing instructions are refused,
so no cut falls inside one. Whenever anything is off, :func:`parse_canonical` returns
``None`` and the caller runs the general parser, which reports the exact problem with its
line.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat

import numpy as np

from napari_wsi_ml.annotations._asap_numbers import start_reading
from napari_wsi_ml.annotations._asap_raw import RawAsap, RawRows, sort_by_order
from napari_wsi_ml.annotations._asap_skeleton import MARKER, parse_layout, parse_skeleton

_NAME = b"Coordinates>"  # ends both tags of a <Coordinates> element, and nothing else
_ENCODING = re.compile(rb'encoding\s*=\s*["\']([^"\']*)["\']')


def _cut(data: bytes) -> tuple[bytes, list[bytes], np.ndarray] | None:
    """The skeleton, the blocks (each followed by the ``</`` of its end tag) and the byte
    offsets of the markers in the skeleton.

    Split at :data:`_NAME`, the file alternates between what the skeleton keeps, ending with
    the ``<`` of a start tag, and a block, ending with the ``</`` of an end tag; joining the
    kept pieces with the rest of :data:`MARKER` replaces each element with a marker.
    """
    pieces = data.split(_NAME)
    kept, blocks = pieces[0::2], pieces[1::2]
    if not all(map(bytes.endswith, blocks, repeat(b"</"))):
        return None  # a start tag where an end tag was expected: nested or unclosed
    if not all(map(bytes.endswith, kept[:-1], repeat(b"<"))) or len(kept) == len(blocks):
        return None
    if any(map(bytes.endswith, kept[:-1], repeat(b"</"))):
        return None  # an end tag where a start tag was expected
    lengths = np.fromiter(map(len, kept[:-1]), np.int64, len(blocks))
    markers = np.cumsum(lengths + len(MARKER) - 1) - len(MARKER)
    return MARKER[1:].join(kept), blocks, markers


def parse_canonical(data: bytes, path: str) -> RawAsap | None:
    """Parse ASAP XML whose coordinates are laid out as ASAP writes them, else ``None``."""
    encoding = _ENCODING.search(data, 0, 200)
    if encoding and encoding.group(1).lower() not in (b"utf-8", b"utf8"):
        return None
    cut = _cut(data)
    if cut is None or not cut[1]:
        return None
    skeleton, blocks, markers = cut
    with ThreadPoolExecutor(max_workers=1) as pool:
        reading = start_reading(blocks, pool)
        layout = parse_layout(skeleton, len(blocks), path) if reading else None
        parsed = None
        if reading and layout is None:
            parsed = parse_skeleton(skeleton, markers.tolist(), path)
        table = reading.table() if reading and (layout or parsed) else None
        if table is None:
            pool.shutdown(cancel_futures=True)
    if table is None or reading is None:
        return None
    orders, coords = table
    if layout is not None:
        groups, lines = layout.finish(reading.newlines)
        sizes = np.asarray(reading.tags, dtype=np.int64)
        rows = RawRows(layout.rows, lines, _split(orders, coords, sizes))
        return RawAsap(groups=groups, rows=rows)
    assert parsed is not None
    builder, owners = parsed
    builder.finish(reading.newlines)
    annotations = builder.raw.annotations
    counts = np.bincount(owners, weights=reading.tags, minlength=len(annotations))
    pieces = _split(orders, coords, counts.astype(np.int64))
    for item, block in zip(annotations, pieces, strict=True):
        item.coordinates = block
    return builder.raw


def _split(orders: np.ndarray, coords: np.ndarray, sizes: np.ndarray) -> list[np.ndarray]:
    """Per annotation of ``sizes`` rows, its coordinates sorted by ``Order`` (stable)."""
    ends = np.cumsum(sizes)  # rows per annotation (it may hold several blocks)
    starts = ends - sizes
    in_sequence = np.array_equal(orders, np.arange(len(orders)) - np.repeat(starts, sizes))
    bounds = zip(starts.tolist(), ends.tolist(), strict=True)
    if in_sequence:
        return [coords[start:end] for start, end in bounds]
    return [sort_by_order(coords[start:end], orders[start:end]) for start, end in bounds]
