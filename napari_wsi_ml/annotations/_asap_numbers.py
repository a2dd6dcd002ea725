"""The numbers of ASAP ``<Coordinate>`` blocks, checked and converted in whole-buffer passes.

Used by the fast ASAP reader (:mod:`._asap_fast`) on the contents of the ``<Coordinates>``
elements it cut out of a file (*blocks*, each followed by the ``</`` of its end tag):
:func:`start_reading` checks them chunk by chunk and starts converting their values on a worker
thread; :meth:`Reading.table` collects the numbers. Blocks laid out as ASAP writes them (one
tag per line, tab-indented) are recognised by tiling (:func:`_layout_counts`), which also gives
their line breaks; any other layout gets the general count check (:func:`_count_tags`).
A block passes only if it consists of whitespace and tags byte-identical to
``<Coordinate Order="…" X="…" Y="…" />``, each ``…`` a non-empty run of ``0-9 . + -`` (or a
decimal comma as in ``12,5``) that is exactly one finite number; then the values are exactly
what ``float()`` gives, which is what the general parser gives.

The conversion of the ~9M numbers of a 3M-vertex file is the costly part. pandas' C CSV reader
converts them about three times faster than ``numpy.fromstring``, with correctly rounded
results (pandas ≥ 3.1 always; older pandas with ``float_precision="round_trip"``, which calls
Python's own conversion), and releases the GIL meanwhile.
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

_TAG = b'<Coordinate Order="" X="" Y="" />'  # a coordinate tag with its values deleted
_NUMBER = b"0123456789.+-,"
SEPARATOR = b"|"  # joins blocks, so that no tag can span two of them
CHUNK_BYTES = 1 << 22
_WHITESPACE = b" \t\r\n"
_COMMA_TO_POINT = bytes(range(256)).replace(b",", b".")
_NOT_VALUE = bytes(c for c in range(256) if c not in _NUMBER + b'"')
_COMMA_TOKEN = re.compile(rb"[-+.0-9]*,[-+.,0-9]*")
_THREE_QUOTES = b'"' * 3
_DECIMAL_COMMA = re.compile(rb"[-+]?[0-9]+,[0-9]+")  # the only form the general parser reads


def _value_text(joined: bytes) -> bytes | None:
    """The blocks' values as ``'"v""v"…"v"'`` (all but number characters and quotes deleted,
    decimal commas made points), or ``None`` if they cannot be one value per pair of quotes."""
    text = joined.translate(None, _NOT_VALUE)  # deleting only: translate's fast path
    if b"," in text:
        text = text.translate(_COMMA_TO_POINT)
    return text if _well_placed(text) else None


def _comma_ok(chunk: bytes) -> bool:
    """Whether every decimal comma of ``chunk`` is one the general parser reads (``12,5``)."""
    if b"," not in chunk:
        return True
    return all(_DECIMAL_COMMA.fullmatch(token) for token in _COMMA_TOKEN.findall(chunk))


def _layout_counts(tags_only: bytes, blocks: int) -> tuple[list[int], list[int]] | None:
    """Per block, its tags and line breaks, if the blocks are laid out as ASAP writes them.

    ``tags_only`` is a chunk of ``blocks`` blocks, each followed by ``</`` and joined by
    :data:`SEPARATOR`, with its number characters deleted. ASAP's layout is a line break, one
    ``\t\t\t\t<Coordinate Order="" X="" Y="" />`` line per tag, then ``\t\t\t`` (LF or CRLF
    throughout). The chunk has that layout if the non-overlapping occurrences of the line, the
    joints between two blocks (one at each separator) and the chunk's first and last
    characters make up its whole length: none of these pieces can overlap another.
    """
    newline = b"\r\n" if tags_only.startswith(b"\r\n") else b"\n"
    line = b'\t\t\t\t<Coordinate Order="" X="" Y="" />' + newline
    head, tail = newline, b"\t\t\t</"
    joint = tail + SEPARATOR + head
    if not (tags_only.startswith(head) and tags_only.endswith(tail)):
        return None
    chars = np.frombuffer(tags_only, np.uint8)
    separators = np.flatnonzero(chars == SEPARATOR[0])
    if len(separators) != blocks - 1 or not _all_at(chars, separators - len(tail), joint):
        return None
    size = len(tags_only) - len(head) - len(tail) - (blocks - 1) * len(joint)
    if tags_only.count(line) * len(line) != size:
        return None
    # Block i lies between separators i - 1 and i: head, its tag lines, tail.
    lengths = np.diff(np.concatenate([[-1], separators, [len(chars)]])) - 1
    tags = (lengths - len(head) - len(tail)) // len(line)
    return tags.tolist(), (tags + 1).tolist()


def _all_at(chars: np.ndarray, starts: np.ndarray, text: bytes) -> bool:
    """Whether ``text`` is in ``chars`` at each of ``starts``."""
    if not len(starts):
        return True
    if starts[0] < 0 or starts[-1] + len(text) > len(chars):
        return False
    found = chars[starts[:, None] + np.arange(len(text))]
    return bool(np.all(found == np.frombuffer(text, np.uint8)))


def _count_tags(chunk: bytes, blocks: int) -> list[int] | None:
    """Per block of ``chunk`` (``blocks`` blocks joined by :data:`SEPARATOR`, without their
    ``</``), its coordinate tags, if the blocks are only tags and whitespace once values are
    deleted; else ``None``."""
    tags_only = chunk.translate(None, _NUMBER)
    tags = tags_only.count(_TAG)
    compact = tags_only.translate(None, _WHITESPACE)  # tags without their spaces, separators
    spaces = len(tags_only) - len(compact)
    pieces = compact.split(SEPARATOR)
    if len(pieces) != blocks:
        return None  # a separator inside a block: the blocks cannot be told apart
    if len(tags_only) - tags * len(_TAG) != spaces - tags * _TAG.count(b" ") + blocks - 1:
        return None  # something besides whitespace between the tags
    size = len(_TAG) - _TAG.count(b" ")
    return [len(piece) // size for piece in pieces]


def _general_counts(chunk_blocks: Sequence[bytes]) -> tuple[list[int], list[int]] | None:
    """Per block (each ending with ``</``), its tags and line breaks, in any layout."""
    bare = [memoryview(block)[:-2] for block in chunk_blocks]
    chunk = SEPARATOR.join(bare)
    counts = _count_tags(chunk, len(bare))
    if counts is None:
        return None
    starts = itertools.accumulate((len(block) + 1 for block in bare[:-1]), initial=0)
    bounds = [(i, i + len(block)) for i, block in zip(starts, bare, strict=True)]
    has_cr = b"\r" in chunk
    return counts, [_line_breaks(chunk, *bound, has_cr) for bound in bounds]


@dataclass
class Reading:
    """The coordinate blocks of a file being read: numbers converting on a worker thread.

    Attributes:
        conversions: Per chunk of blocks, the worker's conversion of its values and its tags.
        tags: Per block, its ``<Coordinate>`` tags.
        newlines: Per block, its line breaks (LF, CRLF or a lone CR, as expat counts them).
    """

    conversions: list[tuple[Future[np.ndarray | None], int]]
    tags: list[int]
    newlines: list[int]

    def table(self) -> tuple[np.ndarray, np.ndarray] | None:
        """``Order`` (N,) and ``(X, Y)`` (N, 2) of all blocks' tags, once converted; ``None``
        unless every block is canonical (exactly 3 numbers per tag: see :func:`_well_placed`)."""
        if not self.conversions:
            return None  # no coordinate at all
        total = sum(tags for _, tags in self.conversions)
        orders, coords = np.empty(total), np.empty((total, 2))
        row = 0
        for conversion, tags in self.conversions:
            values = conversion.result()
            if values is None or values.size != 3 * tags or not np.isfinite(values).all():
                return None
            rows = values.reshape(-1, 3)
            orders[row : row + tags] = rows[:, 0]
            coords[row : row + tags] = rows[:, 1:]
            row += tags
        return orders, coords


def start_reading(blocks: Sequence[bytes], pool: ThreadPoolExecutor) -> Reading | None:
    """Check ``blocks`` (each followed by ``</``) and start converting their numbers on
    ``pool``; ``None`` as soon as one block is not canonical.

    Blocks are handled in chunks of about :data:`CHUNK_BYTES`, joined by :data:`SEPARATOR`:
    small enough to stay in the processor's cache, and buffers of that size are reused.
    """
    conversions, tags, newlines = [], [], []
    for chunk_blocks in _chunked(blocks):
        chunk = SEPARATOR.join(chunk_blocks)
        counted = _layout_counts(chunk.translate(None, _NUMBER), len(chunk_blocks))
        if counted is None:
            counted = _general_counts(chunk_blocks)
        if counted is None or not _comma_ok(chunk):
            return None
        count = sum(counted[0])
        text = _value_text(chunk) if count else None
        if (count and text is None) or (not count and _has_values(chunk)):
            return None
        if count:
            conversions.append((pool.submit(_read_values, text), count))
        tags += counted[0]
        newlines += counted[1]
    return Reading(conversions, tags, newlines)


def _has_values(chunk: bytes) -> bool:
    """Whether ``chunk`` holds a number character or a quote."""
    return bool(chunk.translate(None, _NOT_VALUE))


def _chunked(blocks: Sequence[bytes]) -> Iterator[Sequence[bytes]]:
    """Consecutive runs of ``blocks`` of about :data:`CHUNK_BYTES` (at least one block each)."""
    ends = np.cumsum(np.fromiter(map(len, blocks), np.int64, len(blocks)))
    full = np.searchsorted(ends, np.arange(CHUNK_BYTES, ends[-1], CHUNK_BYTES)) + 1
    bounds = np.unique(np.concatenate([[0], full, [len(blocks)]])).tolist()
    for first, last in itertools.pairwise(bounds):
        yield blocks[first:last]


def _line_breaks(chunk: bytes, start: int, end: int, has_cr: bool) -> int:
    """Line breaks in ``chunk[start:end]``, counted as expat does (LF, CRLF or a lone CR)."""
    breaks = chunk.count(b"\n", start, end)
    if not has_cr:
        return breaks
    return breaks + chunk.count(b"\r", start, end) - chunk.count(b"\r\n", start, end)


def _well_placed(text: bytes) -> bool:
    """Whether ``text`` = the blocks with all but number characters and quotes deleted may be
    ``'"v""v"…"v"'``, non-empty values between quotes and nothing between two values, given
    that it reads as 3 values per tag.

    The tag check leaves 6 quotes per tag; number characters may still sit outside the quotes
    (``X=5"1"``) and a value may be empty. Read as lines ended by ``"`` (blank lines skipped),
    each non-empty value and each run of characters between two values is one line. Without
    two quotes at either end nor three in a row anywhere, an empty value has non-empty runs on
    both sides, so a run of ``k`` empty values comes with ``k + 1`` runs: exactly 3 lines per
    tag (:meth:`Reading.table` checks) then means no empty value and no stray run.
    """
    if not (text.startswith(b'"') and text.endswith(b'"')):
        return False  # characters before the first or after the last value
    return not (text.startswith(b'""') or text.endswith(b'""') or _THREE_QUOTES in text)


def _read_values(text: bytes) -> np.ndarray | None:
    """The numbers of :func:`_value_text`'s text (each non-blank ``"``-terminated line as a
    float), or ``None`` if one is not exactly one number as ``float()`` reads it.

    Runs on the worker thread.
    """
    import pandas as pd

    options = {} if _pandas_rounds_correctly(pd.__version__) else {"float_precision": "round_trip"}
    try:
        frame = pd.read_csv(
            io.BytesIO(text),
            header=None,
            names=["value"],
            dtype=np.float64,
            lineterminator='"',
            quoting=csv.QUOTE_NONE,
            na_filter=False,
            engine="c",
            low_memory=False,  # one chunk: no concatenation of chunks afterwards
            **options,
        )
    except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
        return None
    return frame["value"].to_numpy(dtype=np.float64)


def _pandas_rounds_correctly(version: str) -> bool:
    """Whether pandas' default float conversion is correctly rounded (from pandas 3.1)."""
    major, minor = (int(part) for part in re.findall(r"\d+", version)[:2])
    return (major, minor) >= (3, 1)
