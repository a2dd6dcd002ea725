"""The patch-extraction config (YAML), validated in full before anything runs.

Every problem is collected — unknown keys (with a did-you-mean suggestion), wrong types, values
out of range, missing or contradictory keys — and reported together as one
:class:`~napari_wsi_ml.errors.ConfigError` whose lines read ``file: key: what is wrong; what to
write instead``. Relative paths are resolved against the config file's folder.
See ``docs/patches.md`` for the reference and an example.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_wsi_ml.config_schema import Key, read_yaml
from napari_wsi_ml.config_schema import Problems as _Problems
from napari_wsi_ml.config_schema import boolean as _bool
from napari_wsi_ml.config_schema import choice as _choice
from napari_wsi_ml.config_schema import number as _number
from napari_wsi_ml.config_schema import text as _text
from napari_wsi_ml.config_schema import text_map as _text_map
from napari_wsi_ml.config_schema import texts as _texts
from napari_wsi_ml.data.qc import EXCLUDED_BY_DEFAULT, QC_FLAGS
from napari_wsi_ml.data.slide_sampling import SamplingOptions

STRATEGIES = ("grid", "annotations", "random")
LABEL_RULES = ("centre", "coverage")
OUTPUT_FORMATS = ("png", "tar")
DEFAULT_EXCLUDE_GROUPS = ("Exclusion", "exclusion", "_2")


def _files(value: Any) -> str | None:
    if isinstance(value, dict):
        return _text_map(value)
    return _texts()(value)


SAMPLING_KEYS: dict[str, Key] = {
    "strategy": Key(_choice(*STRATEGIES), "grid, annotations or random", "grid"),
    "stride": Key(
        _number(int, 1), "a stride in output pixels, e.g. 256", None, ("grid", "annotations")
    ),
    "label_rule": Key(_choice(*LABEL_RULES), "centre or coverage", "centre", ("annotations",)),
    "min_coverage": Key(_number(float, 0, 1, True), "a fraction, e.g. 0.5", 0.5, ("annotations",)),
    "drop_mixed": Key(_bool, "true or false", False, ("annotations",)),
    "background_label": Key(
        _text, "the label of unannotated tissue, e.g. normal", None, ("annotations",)
    ),
    "n_patches": Key(_number(int, 1), "patches per slide, e.g. 200", None, ("random",)),
}
QC_KEYS: dict[str, Key] = {
    "enabled": Key(_bool, "true or false", False),
    "exclude": Key(_texts(tuple(QC_FLAGS)), f"a list of {', '.join(QC_FLAGS)}", ["blur", "pen"]),
    "qc_mpp": Key(_number(float, 0, None, True), "µm per mask pixel, e.g. 8", 8.0),
    "focus_mpp": Key(_number(float, 0, None, True), "µm/px of the focus check, e.g. 1", 1.0),
    "blur_threshold": Key(
        _number(float, 0, None, True),
        "contrast-normalised focus below which a tile is blurred",
        4.0,
    ),
    "blur_relative": Key(
        _number(float, 0, 1), "also blurred below this fraction of the median focus, e.g. 0", 0.0
    ),
}
OUTPUT_KEYS: dict[str, Key] = {
    "dir": Key(_text, "a folder, e.g. patches/"),
    "format": Key(_choice(*OUTPUT_FORMATS), "png (a folder per class) or tar (shards)", "tar"),
}
TOP_KEYS: dict[str, Key] = {
    "cohort": Key(_text, "a cohort CSV with a slide path column, e.g. cohort.csv"),
    "slides": Key(_texts(), "a list of slide files"),
    "annotation_files": Key(_files, "a list (one per slide) or a mapping slide name: file"),
    "label_map": Key(_text_map, "annotation class: label, e.g. {Tumor: tumour}"),
    "exclude_groups": Key(
        _texts(), "a list of groups, e.g. [Exclusion, _2]", list(DEFAULT_EXCLUDE_GROUPS)
    ),
    "sampling": Key(lambda v: None, "a mapping"),
    "patch_size": Key(_number(int, 8, 8192), "patch side in pixels, e.g. 256", 256),
    "target_mpp": Key(_number(float, 0, None, True), "µm per output pixel, e.g. 0.5"),
    "magnification": Key(_number(float, 0, None, True), "an objective power, e.g. 20"),
    "mpp_override": Key(_number(float, 0, None, True), "the scan's µm/px, e.g. 0.25"),
    "base_magnification": Key(_number(float, 0, None, True), "level 0's power, e.g. 40"),
    "allow_upsampling": Key(_bool, "true or false", False),
    "min_tissue": Key(_number(float, 0, 1), "a fraction, e.g. 0.4", 0.4),
    "qc": Key(lambda v: None, "a mapping"),
    "output": Key(lambda v: None, "a mapping"),
    "scheduler": Key(_text, "a dask scheduler address, e.g. tcp://10.0.0.5:8786"),
    "workers": Key(_number(int, 1, 1024), "local worker processes, e.g. 2"),
    "chunk_size": Key(_number(int, 1, 100_000), "patches per task and shard, e.g. 256", 256),
    "seed": Key(_number(int, 0), "a non-negative integer, e.g. 0", 0),
}


@dataclass(frozen=True)
class ExtractionConfig:
    """A validated extraction config; paths are absolute. See :func:`load_config`."""

    source: str
    output_dir: Path
    cohort: Path | None = None
    slides: tuple[Path, ...] = ()
    annotation_files: dict[str, Path] | tuple[Path, ...] = ()
    label_map: dict[str, str] = field(default_factory=dict)
    exclude_groups: tuple[str, ...] = DEFAULT_EXCLUDE_GROUPS
    sampling: dict[str, Any] = field(default_factory=lambda: {"strategy": "grid"})
    patch_size: int = 256
    target_mpp: float | None = None
    magnification: float | None = None
    mpp_override: float | None = None
    base_magnification: float | None = None
    allow_upsampling: bool = False
    min_tissue: float = 0.4
    qc: dict[str, Any] = field(default_factory=dict)
    output_format: str = "tar"
    scheduler: str | None = None
    workers: int | None = None
    chunk_size: int = 256
    seed: int = 0

    @property
    def strategy(self) -> str:
        """``grid``, ``annotations`` or ``random``."""
        return str(self.sampling["strategy"])

    def sampling_options(self) -> SamplingOptions:
        """The options :func:`~napari_wsi_ml.data.slide_sampling.sample_slide_patches` takes."""
        qc = self.qc
        return SamplingOptions(
            strategy=self.strategy,
            patch_size=self.patch_size,
            target_mpp=self.target_mpp,
            magnification=self.magnification,
            mpp_override=self.mpp_override,
            base_magnification=self.base_magnification,
            allow_upsampling=self.allow_upsampling,
            min_tissue=self.min_tissue,
            label_map=dict(self.label_map),
            exclude_groups=self.exclude_groups,
            qc=bool(qc.get("enabled")),
            qc_exclude=tuple(qc.get("exclude", EXCLUDED_BY_DEFAULT)),
            qc_mpp=qc.get("qc_mpp", 8.0),
            focus_mpp=qc.get("focus_mpp", 1.0),
            blur_threshold=qc.get("blur_threshold", 4.0),
            blur_relative=qc.get("blur_relative", 0.0),
            seed=self.seed,
            **{k: v for k, v in self.sampling.items() if k != "strategy"},
        )


def _resolve(base: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else (base / path).resolve()


def validate_config(
    data: Any, *, source: str = "<config>", base: Path | None = None
) -> ExtractionConfig:
    """Validate a parsed config mapping; every problem is listed in one ConfigError.

    Args:
        data: The parsed YAML (a mapping).
        source: Name of the file, shown in messages.
        base: Folder relative paths are resolved against (default: the working folder).
    """
    base = base or Path.cwd()
    problems = _Problems(source)
    top = problems.check_section(data, TOP_KEYS, "")
    sampling = problems.check_section(top["sampling"], SAMPLING_KEYS, "sampling.")
    qc = problems.check_section(top["qc"], QC_KEYS, "qc.")
    output = problems.check_section(top["output"], OUTPUT_KEYS, "output.")
    _check_combinations(problems, data if isinstance(data, dict) else {}, top, sampling, output)
    problems.raise_if_any("the extraction config")
    files = top["annotation_files"] or ()
    annotation_files: dict[str, Path] | tuple[Path, ...] = (
        {k: _resolve(base, v) for k, v in files.items()}
        if isinstance(files, dict)
        else tuple(_resolve(base, v) for v in files)
    )
    return ExtractionConfig(
        source=source,
        output_dir=_resolve(base, output["dir"]),
        cohort=_resolve(base, top["cohort"]) if top["cohort"] else None,
        slides=tuple(_resolve(base, s) for s in top["slides"] or ()),
        annotation_files=annotation_files,
        label_map=dict(top["label_map"] or {}),
        exclude_groups=tuple(top["exclude_groups"]),
        sampling={
            k: v
            for k, v in sampling.items()
            if v is not None and sampling["strategy"] in (SAMPLING_KEYS[k].only_for or STRATEGIES)
        },
        **{
            k: top[k]
            for k in (
                "patch_size",
                "target_mpp",
                "magnification",
                "mpp_override",
                "base_magnification",
                "allow_upsampling",
                "min_tissue",
                "scheduler",
                "workers",
                "chunk_size",
                "seed",
            )
        },
        qc=qc,
        output_format=output["format"],
    )


def _check_combinations(
    problems: _Problems, raw: Mapping[str, Any], top: dict, sampling: dict, output: dict
) -> None:
    """Keys that are required, exclusive, or meaningful only together."""
    if not top["cohort"] and not top["slides"]:
        problems.add("slides", "no slides given", "'cohort: cohort.csv' or 'slides: [a.svs]'")
    if top["cohort"] and top["slides"]:
        problems.add("slides", "both cohort and slides given", "only one of them")
    if (top["target_mpp"] is None) == (top["magnification"] is None):
        problems.add(
            "target_mpp",
            "give exactly one of target_mpp or magnification",
            "'target_mpp: 0.5' (or 'magnification: 20')",
        )
    if not output["dir"] and isinstance(raw.get("output", {}), dict):
        problems.add("output.dir", "missing", "'output: {dir: patches/}'")
    raw_sampling = raw.get("sampling") if isinstance(raw.get("sampling"), dict) else {}
    strategy = raw_sampling.get("strategy", sampling["strategy"])
    for name in raw_sampling:
        key = SAMPLING_KEYS.get(name)
        if key and key.only_for and strategy in STRATEGIES and strategy not in key.only_for:
            problems.add(
                f"sampling.{name}",
                f"does not apply to strategy {strategy}",
                f"it only with strategy {' or '.join(key.only_for)}",
            )
    if strategy == "random" and sampling["n_patches"] is None:
        problems.add("sampling.n_patches", "missing for strategy random", "'n_patches: 200'")
    if strategy == "annotations":
        if not top["label_map"]:
            problems.add(
                "label_map",
                "missing for strategy annotations",
                "'label_map: {Tumor: tumour, Normal: normal}'",
            )
        if not top["annotation_files"] and not top["cohort"]:
            problems.add(
                "annotation_files",
                "missing for strategy annotations",
                "one file per slide, or a cohort CSV with an annotation column",
            )
    files, slides = top["annotation_files"], top["slides"]
    if isinstance(files, list) and slides and len(files) != len(slides):
        problems.add(
            "annotation_files",
            f"{len(files)} files for {len(slides)} slides",
            "one file per slide, in the same order",
        )


def load_config(path: str | os.PathLike[str]) -> ExtractionConfig:
    """Read and validate the extraction config at ``path``.

    Raises:
        ConfigError: The file cannot be read, is not YAML, or has problems (all listed).
    """
    path = Path(path)
    data = read_yaml(path, kind="extraction")
    return validate_config(data, source=str(path), base=path.resolve().parent)
