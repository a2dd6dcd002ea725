"""The agreement report: JSON, CSV tables and a PNG figure.

JSON layout (``to_dict``)::

    {"slide", "raters", "classes", "grid", "warnings", "notes",
     "overall":   {"cohen_kappa": {"weighting", "raters", "matrix", "pairs": {"A vs B": EST}},
                   "fleiss_kappa": EST, "krippendorff_alpha": EST, "percent_agreement": EST,
                   "dice": {"raters", "matrix", "pairs"}, "iou": {...}},
     "per_class": {class: same keys (one vs rest)},
     "lesions": {class: {"A vs B": {...}}}, "consensus": {...},
     "disagreement": {"min_area_px2", "opening_px", "count", "area_px2"},
     "disagreement_regions": [{"class", "area_px2", "centroid", "bbox", "raters_with"}],
     "comparison": {...} or null, "per_slide": {...} or null}

where ``EST`` is ``{"value": v, "ci": [low, high]}`` (95 % bootstrap interval; ``null`` when
undefined). ``warnings`` are what the user should check (class names only some raters use);
``notes`` say what was skipped or repaired (points, make_valid repairs, unknown slide identity).
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry.base import BaseGeometry

from napari_wsi_ml.agreement.disagreement import regions_json
from napari_wsi_ml.errors import SaveError

SCALAR_METRICS = ("fleiss_kappa", "krippendorff_alpha", "percent_agreement")
PAIR_METRICS = ("cohen_kappa", "dice", "iou")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and a rename."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except OSError as error:
        raise SaveError(
            f"{path}: cannot write ({error}); check the folder and free space"
        ) from error


@dataclass
class AgreementReport:
    """Everything measured on one slide (or a cohort); see the module docstring for JSON."""

    slide: str | None
    raters: list[str]
    classes: list[str]
    metrics: dict[str, Any]
    grid: dict[str, Any]
    areas: dict[str, Any]
    lesions: dict[str, Any]
    consensus: dict[str, Any]
    disagreement_regions: list[dict]
    notes: list[str]
    warnings: list[str] = field(default_factory=list)
    disagreement: dict[str, Any] = field(default_factory=dict)
    comparison: dict[str, Any] | None = None
    per_slide: dict[str, Any] | None = None
    consensus_regions: dict[str, BaseGeometry] = field(default_factory=dict, repr=False)
    disagreement_map: np.ndarray | None = field(default=None, repr=False)
    staple_maps: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    grid_data: Any = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready structure."""
        return {
            "slide": self.slide,
            "raters": self.raters,
            "classes": self.classes,
            "grid": self.grid,
            "warnings": self.warnings,
            "notes": self.notes,
            "overall": self.metrics["overall"],
            "per_class": self.metrics["per_class"],
            "areas": self.areas,
            "lesions": self.lesions,
            "consensus": self.consensus,
            "disagreement": self.disagreement,
            "disagreement_regions": regions_json(self.disagreement_regions),
            "comparison": self.comparison,
            "per_slide": self.per_slide,
        }

    def to_json(self, path: str | Path | None = None) -> str:
        """The report as JSON text; also written atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, allow_nan=False, default=_plain)
        if path is not None:
            atomic_write_text(path, text)
        return text

    def metric_rows(self) -> list[dict[str, Any]]:
        """One row per (scope, metric, pair): the long table behind CSV and the summary."""
        rows = []
        scopes = [("overall", self.metrics["overall"])]
        scopes += list(self.metrics["per_class"].items())
        for scope, block in scopes:
            for metric in PAIR_METRICS:
                for pair, est in block[metric]["pairs"].items():
                    rows.append(_row(scope, metric, pair, est))
            for metric in SCALAR_METRICS:
                rows.append(_row(scope, metric, "all raters", block[metric]))
        return rows

    def to_csv(self, directory: str | Path) -> list[Path]:
        """Write ``metrics.csv``, ``lesions.csv``, ``disagreement_regions.csv``, ``staple.csv``."""
        directory = Path(directory)
        tables = {
            "metrics.csv": self.metric_rows(),
            "lesions.csv": [
                {
                    "class": cls,
                    "pair": pair,
                    **{k: v for k, v in s.items() if not isinstance(v, list | dict)},
                }
                for cls, pairs in self.lesions.items()
                for pair, s in pairs.items()
            ],
            "disagreement_regions.csv": [
                {
                    "rank": i,
                    "class": r["class"],
                    "area_px2": r["area_px2"],
                    "centroid_x": r["centroid"][0],
                    "centroid_y": r["centroid"][1],
                    "minx": r["bbox"][0],
                    "miny": r["bbox"][1],
                    "maxx": r["bbox"][2],
                    "maxy": r["bbox"][3],
                    "raters_with": ";".join(r["raters_with"]),
                }
                for i, r in enumerate(self.disagreement_regions)
            ],
            "staple.csv": [
                {
                    "class": cls,
                    "rater": rater,
                    "sensitivity": s["sensitivity"][rater],
                    "specificity": s["specificity"][rater],
                }
                for cls, s in self.consensus.get("staple", {}).items()
                for rater in s["sensitivity"]
            ],
        }
        if self.comparison:
            tables["comparison.csv"] = self.comparison.get("rows", [])
        written = []
        for name, rows in tables.items():
            atomic_write_text(directory / name, _csv_text(rows))
            written.append(directory / name)
        return written

    def save_png(self, path: str | Path) -> Path:
        """Heatmaps of the pairwise κ and Dice matrices (overall), with values."""
        from napari_wsi_ml.agreement.figure import save_figure

        return save_figure(self, path)


def _row(scope: str, metric: str, pair: str, est: dict) -> dict[str, Any]:
    ci = est.get("ci") or [None, None]
    return {
        "scope": scope,
        "metric": metric,
        "pair": pair,
        "value": est.get("value"),
        "ci_low": ci[0],
        "ci_high": ci[1],
    }


def _csv_text(rows: list[dict[str, Any]]) -> str:
    import io

    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue()


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
