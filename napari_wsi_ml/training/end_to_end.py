"""The ``end_to_end`` job: a tile encoder and an attention aggregator trained jointly on slides.

Config: ``data:`` (:class:`~.slide_data.SlideDataOptions`: the cohort, its patch grid and
splits) and ``end_to_end:`` (:class:`~.end_to_end_options.EndToEndOptions`). Each step takes
``slides_per_step`` training slides and ``tiles_per_slide`` (K) tiles drawn from each slide's
tissue patches (:mod:`.end_to_end_data`); the encoder (any timm model) embeds the tiles, the
gated-attention aggregator pools them into slide logits, and the cross-entropy with the slide
labels trains both. Under torchrun the tiles are spread over the processes and the features
gathered to rank 0 for the aggregator (:mod:`.end_to_end_step`).

The run writes ``data.json``, per-epoch metrics (``train_loss``, ``lr``, ``val_loss``,
``val_accuracy``, ``val_balanced_accuracy``, ``val_auc_<class>``), checkpoints ``last`` (every
epoch and on cancel, mid-epoch included) and ``best`` (lowest ``val_loss``), and at the end
``metrics.json["summary"]["slide"]`` (:func:`~.slide_eval.slide_report` of the test slides, or
the validation slides without a test split, stratified by site and lesion size), the report's
figures under ``plots/`` and an attention heatmap per evaluated slide under ``heatmaps/``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from napari_wsi_ml.data.augment import Augmenter
from napari_wsi_ml.data.dataset import PatchDataset
from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.evaluation import classification_metrics
from napari_wsi_ml.jobs.feature_exchange import broadcast_value
from napari_wsi_ml.models import check_backbone_name
from napari_wsi_ml.models.end_to_end import create_end_to_end_model
from napari_wsi_ml.training import loops
from napari_wsi_ml.training.end_to_end_data import epoch_steps, planned_loader, steps_per_epoch
from napari_wsi_ml.training.end_to_end_eval import (
    attention_heatmap,
    eval_dataset,
    score_slides,
)
from napari_wsi_ml.training.end_to_end_options import EndToEndOptions, check_end_to_end_options
from napari_wsi_ml.training.end_to_end_step import forward_backward
from napari_wsi_ml.training.feature_encoder import resolve_weights
from napari_wsi_ml.training.heatmaps import heatmap_path
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


class EndToEndTask:
    """Train and evaluate an end-to-end slide model (see the module docstring)."""

    name = "end_to_end"
    options_schema = EndToEndOptions
    data_schema = SlideDataOptions

    def check_config(self, config: JobConfig) -> list[str]:
        """Cross-field problems and an unknown backbone, before anything runs."""
        classes = len(config.data.classes) or None
        problems = check_slide_data(config.data) + check_end_to_end_options(config.task, classes)
        try:
            check_backbone_name(config.task.backbone)
        except ConfigError as error:
            problems.append(f"end_to_end.{error}")
        return problems

    def run(self, ctx: RunContext) -> None:
        """Load the cohort, train with early stopping, evaluate, write heatmaps."""
        _Run(ctx).run()


class _Run:
    """One run of the task (state shared by its phases)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.data: SlideDataOptions = ctx.config.data
        self.opts: EndToEndOptions = ctx.config.task
        self.device = ctx.device
        self._eval_loaders: dict[tuple[str, ...], Any] = {}

    def run(self) -> None:
        ctx, opts, started = self.ctx, self.opts, time.monotonic()
        cohort = load_slide_cohort(self.data, ctx.seed)
        ctx.write_data_manifest(cohort.manifest())
        self.classes = cohort.classes
        self.train_items, self.val_items = cohort.part("train"), cohort.part("val")
        self.test_items = cohort.part("test")
        self._check_classes()
        torch.manual_seed(ctx.seed)
        self.model = create_end_to_end_model(
            opts.backbone, num_classes=len(self.classes), pretrained=opts.pretrained,
            weights=None if opts.weights is None else resolve_weights(opts.weights),
            embed_dim=opts.embed_dim, attention_dim=opts.attention_dim, dropout=opts.dropout,
            batchnorm=opts.batchnorm, checkpointing=opts.checkpointing,
        ).to(self.device)  # fmt: skip
        if ctx.dist.is_distributed and opts.batchnorm == "batch":
            ctx.log(
                "batchnorm: batch uses each process's tiles for its statistics, so a step "
                "differs slightly from a single-process one; batchnorm: frozen makes them equal",
                "warning",
            )
        labels = cohort.labels(self.train_items)
        weights = loops.class_weights(labels, len(self.classes), opts.class_weights)
        self.loss_fn = nn.CrossEntropyLoss(
            weight=None if weights is None else weights.to(self.device)
        )
        self.train_set = PatchDataset(
            [item.patches for item in self.train_items],
            transform=Augmenter() if opts.augment else None,
            seed=ctx.seed,
        )
        self.steps = steps_per_epoch(len(self.train_items), opts.slides_per_step)
        trainer = Trainer(
            self.model, self.model, lr=opts.learning_rate, weight_decay=opts.weight_decay,
            total_steps=self.steps * opts.epochs, amp=opts.amp, device=self.device,
            patience=opts.patience,
        )  # fmt: skip
        if ctx.resume_state is not None:
            trainer.load_state_dict(ctx.resume_state)
            ctx.restore_rng()
            ctx.log(f"resumed at epoch {trainer.progress.epoch}, step {trainer.progress.batch}")
        try:
            self._train(trainer)
            if not ctx.stopped:
                self._finish(trainer, started)
        finally:
            self.train_set.close()
            for loader, _ in self._eval_loaders.values():
                loader.dataset.close()

    def _check_classes(self) -> None:
        n = len(self.classes)
        weights = self.opts.class_weights
        if isinstance(weights, tuple) and len(weights) != n:
            raise ConfigError(
                f"end_to_end.class_weights: {len(weights)} weights for the {n} classes "
                f"({', '.join(self.classes)}); write auto, none or one per class."
            )

    # -- training -----------------------------------------------------------------------
    def _train(self, trainer: Trainer) -> None:
        ctx, opts, p = self.ctx, self.opts, trainer.progress
        dist, total = ctx.dist, self.steps * opts.epochs
        loader, sampler = planned_loader(self.train_set, self.data.num_workers)
        counts = [len(item.patches) for item in self.train_items]
        self.model.train()
        while p.epoch < opts.epochs and not p.done:
            steps = epoch_steps(
                counts, tiles_per_slide=opts.tiles_per_slide,
                slides_per_step=opts.slides_per_step, seed=ctx.seed, epoch=p.epoch,
            )[p.batch :]  # fmt: skip
            sampler.batches = [s.share(dist.rank, dist.world_size)[0].tolist() for s in steps]
            self.train_set.set_epoch(p.epoch)
            for step, batch in zip(steps, loader, strict=True):
                loss = self._step(trainer, step.slides, batch)
                p.batch, p.loss_sum, p.loss_count = p.batch + 1, p.loss_sum + loss, p.loss_count + 1
                ctx.progress(p.epoch * self.steps + p.batch, total, epoch=p.epoch, loss=loss)
                if ctx.should_stop():
                    ctx.save_checkpoint(trainer.state_dict())
                    ctx.log(f"cancelled at epoch {p.epoch}, step {p.batch}; checkpoint saved")
                    return
            self._end_epoch(trainer)
            if ctx.should_stop():
                ctx.log(f"cancelled after epoch {p.epoch - 1}; checkpoint saved")
                return

    def _step(self, trainer: Trainer, slides: np.ndarray, batch: dict[str, Any]) -> float:
        """One optimisation step on the step's slides; returns the loss."""
        group_of = {int(s): g for g, s in enumerate(slides.tolist())}
        groups = torch.tensor([group_of[int(s)] for s in batch["slide_index"]], dtype=torch.int64)
        labels = torch.tensor(
            [self.train_items[int(s)].label_index for s in slides], device=self.device
        )
        trainer.optimizer.zero_grad(set_to_none=True)
        images = batch["image"] if len(batch["label"]) else torch.zeros(0, 3, 1, 1)
        loss = forward_backward(
            self.model, images, groups, labels, self.loss_fn, scaler=trainer.scaler
        )
        if trainer.scaler.is_enabled():
            trainer.scaler.step(trainer.optimizer)
            trainer.scaler.update()
        else:
            trainer.optimizer.step()
        trainer.scheduler.step()
        return loss

    def _end_epoch(self, trainer: Trainer) -> None:
        ctx, p = self.ctx, trainer.progress
        epoch = p.epoch
        metrics: dict[str, Any] = {
            "train_loss": trainer.epoch_loss,
            "lr": trainer.scheduler.get_last_lr()[0],
        }
        val_loss = None
        if self.val_items:
            found = self._evaluate(self.val_items)
            value = None
            if found is not None:
                labels, probs = found
                value = loops.mean_loss(probs, labels)
                result = classification_metrics(labels, probs, self.classes)
                metrics.update(
                    val_loss=value,
                    val_accuracy=result["accuracy"],
                    val_balanced_accuracy=result["balanced_accuracy"],
                    **{f"val_auc_{k}": v for k, v in result["auc"].items()},
                )
            val_loss = broadcast_value(value, device=self.device)
        best = trainer.end_epoch(val_loss)
        ctx.log_metrics(epoch, **metrics)
        if best and val_loss is not None:
            ctx.set_best("val_loss", val_loss, epoch, mode="min")
        ctx.save_checkpoint(trainer.state_dict(), best=best)
        if p.done:
            ctx.log(f"early stop: val_loss did not improve for {self.opts.patience} epochs")

    # -- evaluation ---------------------------------------------------------------------
    def _score(self, items: list[CohortItem]) -> list | None:
        """Score ``items`` (a split's slides; their tile loader is made once and kept)."""
        key = tuple(item.slide for item in items)
        if key not in self._eval_loaders:
            dataset = eval_dataset(items, self.ctx.seed)
            self._eval_loaders[key] = planned_loader(dataset, self.data.num_workers)
        loader, sampler = self._eval_loaders[key]
        return score_slides(
            self.model, items, loader, sampler, most=self.opts.eval_tiles,
            seed=self.ctx.seed, batch_size=self.opts.eval_batch_size, device=self.device,
            amp=loops.amp_enabled(self.device, self.opts.amp),
        )  # fmt: skip

    def _evaluate(self, items: list[CohortItem]) -> tuple[np.ndarray, np.ndarray] | None:
        """Slide labels and probabilities (rank 0; None elsewhere)."""
        scores = self._score(items)
        if scores is None:
            return None
        labels = np.array([item.label_index for item in items], dtype=np.int64)
        return labels, np.stack([s.probs for s in scores])

    def _finish(self, trainer: Trainer, started: float) -> None:
        ctx = self.ctx
        if ctx.dist.is_main:
            best = ctx.load_checkpoint("best")
            if best is not None:
                self.model.load_state_dict(best["model"])
        if ctx.dist.is_distributed:  # every rank scores with rank 0's best weights
            for tensor in self.model.state_dict().values():
                torch.distributed.broadcast(tensor, src=0)
        part = "test" if self.test_items else "val"
        items = self.test_items or self.val_items
        scores = self._score(items)
        if scores is None:  # ranks other than 0 are done
            return
        labels = np.array([item.label_index for item in items], dtype=np.int64)
        probs = np.stack([s.probs for s in scores])
        report = slide_report(
            labels, probs, self.classes, cohort_strata(items), slides=[i.slide for i in items]
        )
        figures = write_slide_report(report, ctx.plots_dir)
        for figure in figures:
            ctx.log_artifact(figure)
        if self.opts.heatmaps:
            for item, score in zip(items, scores, strict=True):
                heatmap = attention_heatmap(item, score, self.classes, ctx.paths.run_id)
                heatmap.save(heatmap_path(ctx.heatmaps_dir, item.slide))
            ctx.log(f"wrote {len(items)} attention heatmaps to {ctx.heatmaps_dir}")
        ctx.set_summary(
            evaluated_split=part,
            best_epoch=trainer.early.best_epoch,
            tiles_per_slide=self.opts.tiles_per_slide,
            slide=report,
            wall_s=round(time.monotonic() - started, 2),
        )
