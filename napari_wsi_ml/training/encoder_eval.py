"""The ``encoder_eval`` job: how good are an encoder's patch embeddings?

Config: ``data:`` (:class:`~.options.PatchDataOptions`, the patch classifier's: annotation
patches of a cohort or of slides with their annotation files; ``augment`` is ignored) and
``encoder_eval:`` (:class:`EncoderEvalOptions`). The encoder is any timm model (random weights
from the seed, timm's published weights, or a local weights file) or a checkpoint of ours: a
``patch_classifier`` or ``end_to_end`` run folder (its best checkpoint's backbone; the
backbone name is read from the run's config).

Two kinds of results:

- **linear probing**: the frozen encoder's features of the labelled patches, a logistic
  regression (:mod:`napari_wsi_ml.evaluation.linear_probe`) fitted on the training slides with
  ``C`` chosen on the validation slides, then scored on the test slides (patient-grouped
  split): accuracy, balanced accuracy, per-class one-vs-rest AUC with DeLong 95 % intervals,
  confusion matrix, the same per site;
- **label-free quality** of the embedding (:mod:`napari_wsi_ml.evaluation.embeddings`):
  RankMe and the mean absolute off-diagonal correlation of the embedding dimensions, on the
  patches of every split.

The run writes ``metrics.json["summary"]`` (``encoder``, ``probe``, ``embedding``), one
metrics row (so the Train panel shows the headline numbers), ``report.md`` and figures under
``plots/``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

from napari_wsi_ml.config_schema import spec
from napari_wsi_ml.data.dataset import PatchDataset
from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.evaluation.embeddings import embedding_quality
from napari_wsi_ml.evaluation.linear_probe import fit_linear_probe
from napari_wsi_ml.models import check_backbone_name
from napari_wsi_ml.training import loops
from napari_wsi_ml.training.data_setup import (
    data_manifest,
    patch_sets,
    prepare_slides,
    slide_records,
    split_records,
)
from napari_wsi_ml.training.encoder_eval_report import write_report
from napari_wsi_ml.training.feature_encoder import (
    EncoderSpec,
    build_encoder,
    encoder_description,
)
from napari_wsi_ml.training.options import (
    PatchClassifierOptions,
    PatchDataOptions,
    check_options,
    class_names,
)
from napari_wsi_ml.training.slide_eval import slide_report, write_slide_report

if TYPE_CHECKING:
    from napari_wsi_ml.jobs.config import JobConfig
    from napari_wsi_ml.jobs.run_context import RunContext

RUN_TASKS = ("patch_classifier", "end_to_end")
"""Job types whose run folders can be evaluated as encoders."""


@dataclass(frozen=True)
class EncoderEvalOptions:
    """Which encoder, and how the probe and the embedding metrics are computed."""

    backbone: str | None = field(
        default=None,
        metadata=spec(hint="a timm model name; null = the run's backbone, or resnet18"),
    )
    pretrained: bool = False
    weights: Path | None = field(
        default=None,
        metadata=spec(hint="a local weights file, or a patch_classifier / end_to_end run folder"),
    )
    input_size: int | None = field(default=None, metadata=spec(ge=8, le=4096))
    batch_size: int = field(default=128, metadata=spec(ge=1, le=8192))
    c_values: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0)
    class_weight: Literal["balanced", "none"] = "balanced"
    max_iter: int = field(default=2000, metadata=spec(ge=10, le=1_000_000))
    embedding_patches: int | None = field(
        default=5000, metadata=spec(ge=2, hint="patches for RankMe; null = all")
    )


def run_backbone(folder: Path) -> str:
    """The backbone name in the config of one of our run folders.

    Raises:
        ConfigError: Not a run folder of a job type with an encoder.
    """
    from napari_wsi_ml.jobs.runner import load_run_config

    try:
        config = load_run_config(folder)
    except Exception as error:  # any reason the folder's config cannot be used
        raise ConfigError(
            f"encoder_eval.weights: '{folder}' is not a usable run ({error})"
        ) from error
    if config.job.task not in RUN_TASKS:
        raise ConfigError(
            f"encoder_eval.weights: '{folder}' is a {config.job.task} run; give a run of "
            f"{' or '.join(RUN_TASKS)}, or a weights file."
        )
    return str(config.task.backbone)


def resolve_backbone(options: EncoderEvalOptions) -> str:
    """The backbone to build: given, else the run folder's, else ``resnet18``.

    Raises:
        ConfigError: A backbone that differs from the run folder's.
    """
    weights = options.weights
    from_run = run_backbone(weights) if weights is not None and Path(weights).is_dir() else None
    if options.backbone is not None and from_run is not None and options.backbone != from_run:
        raise ConfigError(
            f"encoder_eval.backbone: {options.backbone} differs from the run's backbone "
            f"{from_run}; leave backbone out (null) to use the run's."
        )
    return options.backbone or from_run or "resnet18"


class EncoderEvalTask:
    """Linear probing and label-free embedding quality of an encoder (module docstring)."""

    name = "encoder_eval"
    options_schema = EncoderEvalOptions
    data_schema = PatchDataOptions

    def check_config(self, config: JobConfig) -> list[str]:
        """Data problems, unknown backbones, unusable weights, before anything runs."""
        opts: EncoderEvalOptions = config.task
        # the patch classifier's data checks (its default options add no problem of their own)
        problems = check_options(config.data, PatchClassifierOptions())
        if opts.pretrained and opts.weights is not None:
            problems.append("encoder_eval.pretrained: give pretrained: true or weights, not both")
        if opts.weights is not None and not Path(opts.weights).exists():
            problems.append(f"encoder_eval.weights: '{opts.weights}' does not exist")
        elif not opts.c_values or min(opts.c_values) <= 0:
            problems.append("encoder_eval.c_values: give one or more positive numbers")
        else:
            try:
                check_backbone_name(resolve_backbone(opts))
            except ConfigError as error:
                problems.append(
                    str(error) if "encoder_eval" in str(error) else f"encoder_eval.{error}"
                )
        return problems

    def run(self, ctx: RunContext) -> None:
        """Extract features, probe, measure, report."""
        if ctx.dist.is_distributed:
            raise ConfigError("encoder_eval runs in one process; start it without torchrun.")
        _Run(ctx).run()


class _Run:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx, self.data, self.opts = ctx, ctx.config.data, ctx.config.task
        self.names = class_names(self.data)

    def run(self) -> None:
        ctx, opts, started = self.ctx, self.opts, time.monotonic()
        records = slide_records(self.data)
        split = split_records(records, self.data, ctx.seed)
        self.slides = prepare_slides(records, self.data, split, ctx.seed)
        ctx.write_data_manifest(data_manifest(self.slides, split, self.data, records))
        backbone = resolve_backbone(opts)
        spec_ = EncoderSpec(backbone, opts.weights, opts.pretrained, ctx.seed, opts.input_size)
        encoder = build_encoder(spec_).to(ctx.device)
        weights = (
            str(opts.weights) if opts.weights is not None
            else "timm pretrained" if opts.pretrained
            else f"random (seed {ctx.seed})"
        )  # fmt: skip
        description = {**encoder_description(backbone, encoder), "weights": weights}
        counts = [sum(map(len, patch_sets(self.slides, p))) for p in ("train", "val", "test")]
        self.step, self.total = 0, sum(-(-n // opts.batch_size) for n in counts)
        parts = {}
        for part in ("train", "val", "test"):
            parts[part] = self._features(encoder, part)
            if ctx.should_stop():
                ctx.log(f"cancelled while extracting the {part} features")
                return
        probe = self._probe(parts)
        sample = self._sample(parts)
        embedding = embedding_quality(sample)
        summary = {
            "encoder": description,
            "probe": probe,
            "embedding": embedding,
            "patches": {p: len(v["labels"]) for p, v in parts.items()},
            "wall_s": round(time.monotonic() - started, 2),
        }
        row = {"rankme": embedding["rankme"]}
        if embedding["mean_abs_offdiagonal_correlation"] is not None:
            row["offdiagonal_correlation"] = embedding["mean_abs_offdiagonal_correlation"]
        if probe is not None:
            row.update(probe_accuracy=probe["accuracy"])
            if probe["balanced_accuracy"] is not None:
                row["probe_balanced_accuracy"] = probe["balanced_accuracy"]
        ctx.log_metrics(0, **row)
        ctx.set_summary(**summary)
        for path in write_report(ctx.run_dir, ctx.plots_dir, summary, sample):
            ctx.log_artifact(path)

    def _features(self, encoder: torch.nn.Module, part: str) -> dict[str, np.ndarray]:
        """Features, labels and sites of the labelled patches of ``part``."""
        ctx = self.ctx
        sets = patch_sets(self.slides, part)
        empty = {"features": np.zeros((0, encoder.num_features)), "labels": np.zeros(0, np.int64)}
        if not sets:
            return {**empty, "sites": np.zeros(0, dtype=object)}
        dataset = PatchDataset(sets, seed=ctx.seed)
        loader, _ = loops.patch_loader(
            dataset, batch_size=self.opts.batch_size, num_workers=self.data.num_workers,
            seed=ctx.seed, shuffle=False,
        )  # fmt: skip
        sites_of = {s.record.slide: s.record.site or "unknown" for s in self.slides}
        features, labels, sites = [], [], []
        with torch.no_grad():
            for batch in loader:
                if len(batch["label"]):
                    features.append(encoder(batch["image"].to(ctx.device)).cpu().numpy())
                    labels.append(batch["label"].numpy())
                    sites += [sites_of[sets[i].slide_name] for i in batch["slide_index"].tolist()]
                self.step += 1
                ctx.progress(self.step, self.total, part=part)
                if ctx.should_stop():
                    break
        dataset.close()
        if not features:
            return {**empty, "sites": np.zeros(0, dtype=object)}
        return {
            "features": np.concatenate(features).astype(np.float64),
            "labels": np.concatenate(labels),
            "sites": np.array(sites, dtype=object),
        }

    def _probe(self, parts: dict[str, dict[str, np.ndarray]]) -> dict[str, Any] | None:
        """The probe's test (or validation) metrics; None when it cannot be fitted."""
        train, val, test = parts["train"], parts["val"], parts["test"]
        if len(np.unique(train["labels"])) < 2:
            self.ctx.log("linear probe skipped: the training patches hold fewer than 2 classes",
                         "warning")  # fmt: skip
            return None
        scored, held = ("test", test) if len(test["labels"]) else ("val", val)
        use_val = scored == "test" and len(val["labels"]) > 0
        probe = fit_linear_probe(
            (train["features"], train["labels"]), len(self.names),
            val=(val["features"], val["labels"]) if use_val else None,
            c_values=self.opts.c_values, seed=self.ctx.seed, max_iter=self.opts.max_iter,
            balanced=self.opts.class_weight == "balanced",
        )  # fmt: skip
        if not len(held["labels"]):
            return None
        probs = probe.probabilities(held["features"])
        report = slide_report(held["labels"], probs, self.names, {"site": held["sites"].tolist()})
        for path in write_slide_report(report, self.ctx.plots_dir, prefix="probe"):
            self.ctx.log_artifact(path)
        report.pop("slides")  # one row per patch: too long for metrics.json
        return {
            "evaluated_split": scored,
            "c": probe.c,
            "validation_balanced_accuracy": {str(c): v for c, v in probe.validation.items()},
            **report,
        }

    def _sample(self, parts: dict[str, dict[str, np.ndarray]]) -> np.ndarray:
        """The embeddings of the label-free metrics: all splits', ``embedding_patches`` at most."""
        features = np.concatenate([p["features"] for p in parts.values()])
        if len(features) < 2:
            raise ConfigError(
                "data: fewer than two labelled patches: check label_map against the annotation "
                "groups, patch_size and min_tissue."
            )
        most = self.opts.embedding_patches
        if most is not None and len(features) > most:
            rng = np.random.default_rng([self.ctx.seed, 0xE3B])
            features = features[np.sort(rng.choice(len(features), most, replace=False))]
        return features
