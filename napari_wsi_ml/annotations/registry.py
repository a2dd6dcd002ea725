"""The annotation file formats: extension and content sniffer → reader and writer."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from napari_wsi_ml.annotations import asap_xml, geojson
from napari_wsi_ml.annotations.model import AnnotationSet
from napari_wsi_ml.errors import AnnotationFileError


@dataclass(frozen=True)
class AnnotationFormat:
    """One file format.

    Attributes:
        name: Human-readable name.
        extensions: Lower-case file extensions, with the dot.
        first_chars: Characters a file of this format starts with (after a BOM and blanks).
        read: ``read(path) -> AnnotationSet``.
        write: ``write(annotation_set, path) -> notes`` (what the format could not hold).
    """

    name: str
    extensions: tuple[str, ...]
    first_chars: tuple[bytes, ...]
    read: Callable[[str | os.PathLike[str]], AnnotationSet]
    write: Callable[[AnnotationSet, str | os.PathLike[str]], list[str]]


FORMATS: dict[str, AnnotationFormat] = {
    "asap_xml": AnnotationFormat("ASAP XML", (".xml",), (b"<",), asap_xml.read, asap_xml.write),
    "geojson": AnnotationFormat(
        "GeoJSON", (".geojson", ".json"), (b"{", b"["), geojson.read, geojson.write
    ),
}


def format_for_extension(path: str | os.PathLike[str]) -> AnnotationFormat:
    """The format whose extension ``path`` has.

    Raises:
        AnnotationFileError: No format uses that extension.
    """
    suffix = Path(path).suffix.lower()
    for file_format in FORMATS.values():
        if suffix in file_format.extensions:
            return file_format
    known = ", ".join(e for f in FORMATS.values() for e in f.extensions)
    raise AnnotationFileError(
        f"{path}: unknown annotation file extension {suffix or '(none)'!r}; use one of {known}."
    )


def sniff_format(path: str | os.PathLike[str]) -> AnnotationFormat:
    """The format of a file from its first characters, else from its extension.

    Raises:
        AnnotationFileError: The file cannot be read or is of no known format.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError as error:
        raise AnnotationFileError(
            f"Cannot read annotation file {path}: {error.strerror or error}."
        ) from error
    head = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    for file_format in FORMATS.values():
        if head[:1] in file_format.first_chars:
            return file_format
    if not head:
        raise AnnotationFileError(f"{path}: the file is empty; it holds no annotations.")
    raise AnnotationFileError(
        f"{path}: neither ASAP XML nor GeoJSON (it starts with {head[:20]!r}). Open an .xml"
        " file written by ASAP or a .geojson file exported from QuPath."
    )


def read_annotations(path: str | os.PathLike[str]) -> AnnotationSet:
    """Read any supported annotation file; the format is recognised from its content."""
    return sniff_format(path).read(path)


def write_annotations(annotation_set: AnnotationSet, path: str | os.PathLike[str]) -> list[str]:
    """Write in the format of ``path``'s extension; returns notes on what was converted."""
    return format_for_extension(path).write(annotation_set, path)
