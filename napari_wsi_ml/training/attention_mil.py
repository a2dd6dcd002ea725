"""The ``attention_mil`` job: gated-attention MIL on cached patch features, slide labels only.

Config: ``data:`` (:class:`~.slide_data.SlideDataOptions`) and ``attention_mil:``
(:class:`~.attention_mil_options.AttentionMilOptions`). The run

1. loads and splits the cohort (every problem reported before any work);
2. gets every slide's patch features from the feature cache, extracting the missing ones in
   parallel over slides (locally, or on the ``dask.distributed`` scheduler at ``scheduler``);
3. trains :class:`~napari_wsi_ml.models.attention.AttentionMil` one slide (bag) per step,
   logging ``train_loss``, ``lr``, ``val_loss``, ``val_accuracy``, ``val_balanced_accuracy``,
   ``val_auc_macro`` and ``val_auc_<class>`` per epoch, checkpointing ``last``/``best`` (best
   = lowest val loss), stopping early after ``patience`` epochs without improvement and
   resuming mid-epoch;
4. evaluates the best model (or the last one: ``evaluate``) on the validation and test slides:
   ``metrics.json["summary"]["val"]`` / ``["test"]`` are :func:`~.slide_eval.slide_report`
   (per-class AUC with DeLong intervals, confusion, strata ``site`` and ``lesion_size``), with
   ``test_auc_<class>`` numbers and ROC / confusion figures ``plots/<split>_slide_*.png``;
5. writes a heatmap per validation and test slide: attention and per-patch class probability.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.evaluation import classification_metrics
from napari_wsi_ml.models.backbones import check_backbone_name
from napari_wsi_ml.training import loops
from napari_wsi_ml.training.attention_mil_model import MilModel
from napari_wsi_ml.training.attention_mil_options import AttentionMilOptions
from napari_wsi_ml.training.feature_cache import FeatureCache, SlideFeatures
from napari_wsi_ml.training.feature_extraction import slide_features
from napari_wsi_ml.training.heatmaps import heatmap_path
from napari_wsi_ml.training.mil_bags import attention_heatmap, feature_jobs
from napari_wsi_ml.training.slide_data import (
    CohortItem,
    SlideDataOptions,
    check_slide_data,
    load_slide_cohort,
)
from napari_wsi_ml.training.slide_eval import cohort_strata, slide_report, write_slide_report
from napari_wsi_ml.training.trainer import Trainer

if TYPE_CHECKING:
    from napari_wsi_ml.jobs.config import JobConfig
    from napari_wsi_ml.jobs.run_context import RunContext


class AttentionMilTask:
    """Train and evaluate attention MIL on slide labels (see the module docstring)."""

    name = "attention_mil"
    options_schema = AttentionMilOptions
    data_schema = SlideDataOptions

    def check_config(self, config: JobConfig) -> list[str]:
        """Cross-field problems, an unknown backbone, missing weights."""
        opts: AttentionMilOptions = config.task
        problems = check_slide_data(config.data)
        try:
            check_backbone_name(opts.backbone)
        except ConfigError as error:
            problems.append(f"attention_mil.{error}")
        if opts.pretrained and opts.weights is not None:
            problems.append("attention_mil.pretrained: give pretrained: true or weights, not both")
        if opts.weights is not None and not opts.weights.exists():
            problems.append(f"attention_mil.weights: '{opts.weights}' does not exist")
        classes, weights = config.data.classes, opts.class_weights
        if isinstance(weights, tuple) and classes and len(weights) != len(classes):
            problems.append(
                f"attention_mil.class_weights: {len(weights)} weights for {len(classes)} "
                "classes; write auto, none or one per class"
            )
        return problems

    def run(self, ctx: RunContext) -> None:
        """Load the cohort, get features, train, evaluate, write heatmaps."""
        _Run(ctx).run()


class _Run:
    """One run of the task (state shared by its phases)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx, self.opts = ctx, ctx.config.task
        self.data: SlideDataOptions = ctx.config.data

    def run(self) -> None:
        ctx, started = self.ctx, time.monotonic()
        if ctx.dist.is_distributed:
            raise ConfigError(
                "attention_mil trains on cached features in one process: start it without "
                "torchrun (feature extraction fans out over slides with workers / scheduler)."
            )
        self.cohort = load_slide_cohort(self.data, ctx.seed)
        self.classes = self.cohort.classes
        self.features = self._features()
        self.train_items = self.cohort.part("train")
        self.val_items = self.cohort.part("val")
        dim = next(iter(self.features.values())).features.shape[1]
        torch.manual_seed(ctx.seed)
        self.model = MilModel(dim, len(self.classes), self.opts)
        self.model.normaliser.fit([self._raw(item) for item in self.train_items])
        weights = loops.class_weights(
            self.cohort.labels(self.train_items), len(self.classes), self.opts.class_weights
        )
        self.loss_fn = nn.CrossEntropyLoss(weight=weights)
        trainer = Trainer(
            self.model, self.model.mil, lr=self.opts.learning_rate,
            weight_decay=self.opts.weight_decay,
            total_steps=len(self.train_items) * self.opts.epochs, amp=False,
            device=torch.device("cpu"), patience=self.opts.patience,
        )  # fmt: skip
        if ctx.resume_state is not None:
            trainer.load_state_dict(ctx.resume_state)
            ctx.restore_rng()
            ctx.log(f"resumed at epoch {trainer.progress.epoch}, slide {trainer.progress.batch}")
        self._train(trainer)
        if not ctx.stopped:
            self._finish(trainer, started)

    # -- features -----------------------------------------------------------------------
    def _features(self) -> dict[str, SlideFeatures]:
        ctx, opts = self.ctx, self.opts
        root = opts.feature_cache or ctx.run_dir.parent / "feature_cache"
        cache, jobs = FeatureCache(root), feature_jobs(self.cohort.items)

        def report(done: int, total: int, found: SlideFeatures) -> None:
            how = "cached" if found.from_cache else "extracted"
            ctx.log(f"features {done}/{total}: {found.slide} ({len(found.xy)} patches, {how})")

        gpu = ctx.device.type == "cuda" and opts.scheduler is None  # one GPU beats CPU workers
        features = slide_features(
            jobs, opts.encoder(), cache, scheduler=opts.scheduler,
            workers=1 if gpu else opts.workers, batch_size=opts.extract_batch_size,
            device=str(ctx.device) if gpu else "cpu", progress=report,
        )  # fmt: skip
        empty = [name for name, found in features.items() if not len(found.xy)]
        if empty:
            raise ConfigError(f"no readable patch in slide(s) {', '.join(empty)}")
        key = next(iter(features.values())).encoder_key
        manifest = self.cohort.manifest()
        manifest["features"] = {
            "encoder_key": key,
            "encoder": str(cache.folder(key) / "encoder.json"),
            "files": {job.slide: str(cache.path(key, job)) for job in jobs},
            "skipped_patches": {k: v.skipped for k, v in features.items() if v.skipped},
        }
        ctx.write_data_manifest(manifest)
        return features

    # -- training -----------------------------------------------------------------------
    def _train(self, trainer: Trainer) -> None:
        ctx, p, n = self.ctx, trainer.progress, len(self.train_items)
        self.model.train()
        while p.epoch < self.opts.epochs and not p.done:
            order = np.random.default_rng([ctx.seed, p.epoch]).permutation(n)
            for index in order[p.batch :].tolist():
                loss = self._step(trainer, index, p.epoch)
                p.batch, p.loss_sum, p.loss_count = p.batch + 1, p.loss_sum + loss, p.loss_count + 1
                ctx.progress(p.epoch * n + p.batch, n * self.opts.epochs, epoch=p.epoch, loss=loss)
                if ctx.should_stop():
                    ctx.save_checkpoint(trainer.state_dict())
                    ctx.log(f"cancelled at epoch {p.epoch}, slide {p.batch}; checkpoint saved")
                    return
            self._end_epoch(trainer)
            if ctx.should_stop():
                ctx.log(f"cancelled after epoch {p.epoch - 1}; checkpoint saved")
                return

    def _step(self, trainer: Trainer, index: int, epoch: int) -> float:
        """One optimisation step on training slide ``index`` (a random part of its bag)."""
        item = self.train_items[index]
        bag = self.model.bag(self._raw(item))
        keep = self.opts.instance_keep
        if keep < 1 and len(bag) > 1:
            rng = np.random.default_rng([self.ctx.seed, epoch, index])
            chosen = rng.random(len(bag)) < keep
            bag = bag[torch.from_numpy(chosen)] if chosen.any() else bag
        logits = self.model.mil(bag).logits
        loss = self.loss_fn(logits[None], torch.tensor([item.label_index]))
        trainer.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        trainer.optimizer.step()
        trainer.scheduler.step()
        return float(loss.detach())

    def _end_epoch(self, trainer: Trainer) -> None:
        ctx, p = self.ctx, trainer.progress
        epoch = p.epoch
        metrics: dict[str, Any] = {
            "train_loss": trainer.epoch_loss,
            "lr": trainer.scheduler.get_last_lr()[0],
        }
        val_loss = None
        if self.val_items:
            labels, probs = self.cohort.labels(self.val_items), self._predict(self.val_items)
            val_loss = loops.mean_loss(probs, labels)
            found = classification_metrics(labels, probs, self.classes)
            aucs = list(found["auc"].values())
            macro = None if None in aucs else float(np.mean(aucs))
            metrics.update(
                val_loss=val_loss,
                val_accuracy=found["accuracy"],
                val_balanced_accuracy=found["balanced_accuracy"],
                val_auc_macro=macro,
                **{f"val_auc_{k}": v for k, v in found["auc"].items()},
            )
        best = trainer.end_epoch(val_loss)
        ctx.log_metrics(epoch, **metrics)
        if best and val_loss is not None:
            ctx.set_best("val_loss", val_loss, epoch, mode="min")
        ctx.save_checkpoint(trainer.state_dict(), best=best)
        if p.done:
            ctx.log(f"early stop: val_loss did not improve for {self.opts.patience} epochs")

    def _predict(self, items: list[CohortItem]) -> np.ndarray:
        """Slide probabilities ``(len(items), C)``."""
        return np.stack([self.model.predict(self._raw(item)).slide_probs for item in items])

    def _raw(self, item: CohortItem) -> np.ndarray:
        return self.features[item.slide].features

    # -- evaluation ---------------------------------------------------------------------
    def _finish(self, trainer: Trainer, started: float) -> None:
        ctx = self.ctx
        chosen = ctx.load_checkpoint(self.opts.evaluate)
        if chosen is not None:
            self.model.load_state_dict(chosen["model"])
        self.model.eval()
        summary: dict[str, Any] = {
            "best_epoch": trainer.early.best_epoch,
            "evaluated_model": self.opts.evaluate,
            "encoder_key": next(iter(self.features.values())).encoder_key,
        }
        for part in ("val", "test"):
            items = self.cohort.part(part)
            if not items:
                continue
            report = slide_report(
                self.cohort.labels(items), self._predict(items), self.classes,
                cohort_strata(items), slides=[item.slide for item in items],
            )  # fmt: skip
            summary[part] = report
            for name, interval in report["auc"].items():
                summary[f"{part}_auc_{name}"] = None if interval is None else interval["auc"]
            write_slide_report(report, ctx.plots_dir, prefix=f"{part}_slide")
        summary["evaluated_split"] = "test" if "test" in summary else "val"
        summary["heatmaps"] = self._heatmaps() if self.opts.heatmaps else 0
        summary["wall_s"] = round(time.monotonic() - started, 2)
        ctx.set_summary(**summary)

    def _heatmaps(self) -> int:
        ctx, items = self.ctx, self.cohort.part("val") + self.cohort.part("test")
        for item in items:
            slide_probs, attention, patch = self.model.predict(self._raw(item))
            heatmap = attention_heatmap(
                item, self.features[item.slide], attention, patch, self.classes,
                run_id=ctx.paths.run_id,
                extra={"task": "attention_mil", "kind": "attention", "part": item.part,
                       "slide_probs": dict(zip(
                    self.classes, map(float, slide_probs), strict=True))},
            )  # fmt: skip
            heatmap.save(heatmap_path(ctx.heatmaps_dir, item.slide))
        ctx.log(f"wrote {len(items)} attention heatmaps to {ctx.heatmaps_dir}")
        return len(items)
