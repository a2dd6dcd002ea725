"""The ``whole_slide_cnn`` job: a ResNet on whole downscaled slides, trained on slide labels.

Config: ``data:`` (:class:`~.slide_data.SlideDataOptions`: cohort, classes, split) and
``whole_slide_cnn:`` (:class:`~.whole_slide_options.WholeSlideOptions`). Each slide is
downscaled once (to ``target_mpp`` or ``max_size``) and cached (:mod:`.whole_slide_data`),
padded white onto a canvas, and a timm ResNet with global max (or average) pooling and a linear
head (:mod:`napari_wsi_ml.models.whole_slide`) is trained end to end on the slide labels, with
optional activation checkpointing and mixed precision.

The run writes ``data.json`` (the cohort, its split and each slide's downscaled size and
scale), per-epoch metrics (``train_loss``, ``lr``, ``val_loss``, ``val_accuracy``,
``val_balanced_accuracy``, ``val_auc_<class>``), checkpoints ``last`` / ``best`` (lowest
validation loss) after every epoch and on cancel (mid-epoch: a resumed run replays exactly the
remaining batches), early stopping, and at the end ``metrics.json["summary"]`` (the slide report
of the test split, or of the validation split without one, stratified by site and lesion size),
``plots/slide_confusion.png`` / ``plots/slide_roc.png`` and a class activation map per evaluated
slide under ``heatmaps/`` (:mod:`.whole_slide_cam`).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np
import timm
import torch
from torch import nn

from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.evaluation import classification_metrics
from napari_wsi_ml.jobs.distributed import all_reduce_mean, local_batch_size, wrap_model
from napari_wsi_ml.models.backbones import check_backbone_name
from napari_wsi_ml.models.whole_slide import create_whole_slide_net
from napari_wsi_ml.training import loops
from napari_wsi_ml.training.heatmaps import heatmap_path
from napari_wsi_ml.training.slide_data import SlideDataOptions, check_slide_data, load_slide_cohort
from napari_wsi_ml.training.slide_eval import cohort_strata, slide_report, write_slide_report
from napari_wsi_ml.training.trainer import Trainer
from napari_wsi_ml.training.whole_slide_cam import cam_heatmap
from napari_wsi_ml.training.whole_slide_data import SlideImageCache
from napari_wsi_ml.training.whole_slide_loop import (
    SlideImage,
    autocast,
    epoch_batches,
    load_slide_images,
    predict_slides,
    train_batch,
)
from napari_wsi_ml.training.whole_slide_options import (
    WholeSlideOptions,
    check_whole_slide_options,
)

if TYPE_CHECKING:
    from pathlib import Path

    from napari_wsi_ml.jobs.config import JobConfig
    from napari_wsi_ml.jobs.run_context import RunContext


def check_resnet(name: str) -> list[str]:
    """Problems with ``name`` as the whole-slide backbone (unknown, or not a ResNet)."""
    try:
        check_backbone_name(name)
    except ConfigError as error:
        return [f"whole_slide_cnn.{error}"]
    with torch.device("meta"):
        model = timm.create_model(name, pretrained=False, num_classes=0)
    if not isinstance(model, timm.models.resnet.ResNet):
        return [
            f"whole_slide_cnn.backbone: {name!r} is a {type(model).__name__}, not a ResNet; "
            "use a timm ResNet such as resnet18, resnet34 or resnet50"
        ]
    return []


class WholeSlideCnnTask:
    """Train and evaluate a whole-slide CNN (see the module docstring)."""

    name = "whole_slide_cnn"
    options_schema = WholeSlideOptions
    data_schema = SlideDataOptions

    def check_config(self, config: JobConfig) -> list[str]:
        """Cross-field problems and a backbone that is not a timm ResNet, before anything runs."""
        problems = check_slide_data(config.data) + check_whole_slide_options(config.task)
        return problems + check_resnet(config.task.backbone)

    def run(self, ctx: RunContext) -> None:
        """Prepare the slide images, train with early stopping, evaluate, write CAMs."""
        _Run(ctx).run()


def cache_folder(ctx: RunContext, opts: WholeSlideOptions) -> Path:
    """``cache_dir``, or ``.cache/whole_slide`` beside the run folders."""
    return opts.cache_dir or ctx.run_dir.parent / ".cache" / "whole_slide"


class _Run:
    """One run of the task (state shared by its phases)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.data: SlideDataOptions = ctx.config.data
        self.opts: WholeSlideOptions = ctx.config.task
        self.device = ctx.device

    def run(self) -> None:
        ctx, started, opts = self.ctx, time.monotonic(), self.opts
        ctx.log(f"reading the cohort {self.data.cohort}")
        self.cohort = cohort = load_slide_cohort(self.data, ctx.seed)
        self.names = cohort.classes
        cache = SlideImageCache(cache_folder(ctx, opts))
        images = load_slide_images(cohort.items, opts, cache)
        ctx.log(f"{len(images)} slides downscaled (cache: {cache.folder})")
        ctx.write_data_manifest(self._manifest(images, cache))
        self.train = [s for s in images if s.item.part == "train"]
        self.val = [s for s in images if s.item.part == "val"]
        self.test = [s for s in images if s.item.part == "test"]
        torch.manual_seed(ctx.seed)
        self.model = create_whole_slide_net(
            opts.backbone, num_classes=len(self.names), pooling=opts.pooling,
            checkpointing=opts.checkpointing, pretrained=opts.pretrained, weights=opts.weights,
        ).to(self.device, memory_format=torch.channels_last)  # fmt: skip
        self.loss_fn = self._loss()
        self.batches_per_epoch = len(self._batches(0))
        trainer = Trainer(
            self.model,
            wrap_model(self.model, ctx.dist, self.device),
            lr=opts.learning_rate,
            weight_decay=opts.weight_decay,
            total_steps=self.batches_per_epoch * opts.epochs,
            amp=opts.amp == "fp16",
            device=self.device,
            patience=opts.patience,
        )
        if ctx.resume_state is not None:
            trainer.load_state_dict(ctx.resume_state)
            ctx.restore_rng()
            ctx.log(f"resumed at epoch {trainer.progress.epoch}, batch {trainer.progress.batch}")
        self._train(trainer)
        if not ctx.stopped:
            self._finish(trainer, started)

    # -- setup --------------------------------------------------------------------------
    def _manifest(self, images: list[SlideImage], cache: SlideImageCache) -> dict[str, Any]:
        content = self.cohort.manifest()
        content["whole_slide"] = {
            "cache_dir": str(cache.folder),
            "canvas": self.opts.canvas,
            "mask_background": self.opts.mask_background,
            "mask_ink": self.opts.mask_ink,
            "images": [
                {
                    "slide": s.item.slide,
                    "size": list(s.spec.size),
                    "scale": list(s.spec.scale),
                    "cache_file": s.spec.cache_name,
                }
                for s in images
            ],
        }
        return content

    def _loss(self) -> nn.Module:
        labels = np.array([s.item.label_index for s in self.train], dtype=np.int64)
        setting = self.opts.class_weights
        if isinstance(setting, tuple) and len(setting) != len(self.names):
            raise ConfigError(
                f"whole_slide_cnn.class_weights: {len(setting)} weights for {len(self.names)} "
                f"classes ({', '.join(self.names)}); write auto, none or one per class."
            )
        weights = loops.class_weights(labels, len(self.names), setting)
        return nn.CrossEntropyLoss(weight=None if weights is None else weights.to(self.device))

    def _batches(self, epoch: int) -> list[np.ndarray]:
        """This epoch's global batches (indices into ``self.train``)."""
        return epoch_batches(
            len(self.train), self.opts.batch_size, seed=self.ctx.seed, epoch=epoch,
            drop_last=self.ctx.dist.is_distributed,
        )  # fmt: skip

    def _local(self, batch: np.ndarray) -> list[SlideImage]:
        """This rank's share of a global batch."""
        dist = self.ctx.dist
        size = local_batch_size(self.opts.batch_size, dist)
        mine = batch[dist.rank * size : (dist.rank + 1) * size] if dist.is_distributed else batch
        return [self.train[i] for i in mine]

    # -- training -----------------------------------------------------------------------
    def _step(self, trainer: Trainer, images: torch.Tensor, labels: torch.Tensor) -> float:
        optimizer, scaler = trainer.optimizer, trainer.scaler
        optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.opts):
            logits = trainer.net(images)
        loss = self.loss_fn(logits.float(), labels)
        if scaler.is_enabled():
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        trainer.scheduler.step()
        return float(loss.detach())

    def _train(self, trainer: Trainer) -> None:
        ctx, p = self.ctx, trainer.progress
        total = self.batches_per_epoch * self.opts.epochs
        self.model.train()
        while p.epoch < self.opts.epochs and not p.done:
            batches = self._batches(p.epoch)
            for index in range(p.batch, len(batches)):
                images, labels = train_batch(
                    self._local(batches[index]), self.opts, seed=ctx.seed, epoch=p.epoch,
                    batch=index, device=self.device,
                )  # fmt: skip
                loss = self._step(trainer, images, labels)
                p.batch, p.loss_sum, p.loss_count = p.batch + 1, p.loss_sum + loss, p.loss_count + 1
                ctx.progress(p.epoch * self.batches_per_epoch + p.batch, total, epoch=p.epoch,
                             loss=loss)  # fmt: skip
                if ctx.should_stop():
                    ctx.save_checkpoint(trainer.state_dict())
                    ctx.log(f"cancelled at epoch {p.epoch}, batch {p.batch}; checkpoint saved")
                    return
            self._end_epoch(trainer)
            if ctx.should_stop():
                ctx.log(f"cancelled after epoch {p.epoch - 1}; checkpoint saved")
                return

    def _end_epoch(self, trainer: Trainer) -> None:
        ctx, p = self.ctx, trainer.progress
        epoch = p.epoch
        metrics: dict[str, Any] = {
            "train_loss": all_reduce_mean(trainer.epoch_loss, ctx.dist),
            "lr": trainer.scheduler.get_last_lr()[0],
        }
        val_loss = None
        if self.val:
            probs, _ = predict_slides(self.model, self.val, self.opts, self.device)
            labels = np.array([s.item.label_index for s in self.val], dtype=np.int64)
            val_loss = loops.mean_loss(probs, labels)
            found = classification_metrics(labels, probs, self.names)
            metrics.update(
                val_loss=val_loss,
                val_accuracy=found["accuracy"],
                val_balanced_accuracy=found["balanced_accuracy"],
                **{f"val_auc_{k}": v for k, v in found["auc"].items()},
            )
        best = trainer.end_epoch(val_loss)
        ctx.log_metrics(epoch, **metrics)
        if best and val_loss is not None:
            ctx.set_best("val_loss", val_loss, epoch, mode="min")
        ctx.save_checkpoint(trainer.state_dict(), best=best)
        if p.done:
            ctx.log(f"early stop: val_loss did not improve for {self.opts.patience} epochs")

    # -- evaluation ---------------------------------------------------------------------
    def _finish(self, trainer: Trainer, started: float) -> None:
        ctx = self.ctx
        best = ctx.load_checkpoint("best") if ctx.dist.is_main else None
        if best is not None:
            self.model.load_state_dict(best["model"])
        if not ctx.dist.is_main:
            return
        part, evaluated = ("test", self.test) if self.test else ("val", self.val)
        summary: dict[str, Any] = {"evaluated_split": part, "best_epoch": trainer.early.best_epoch}
        if evaluated:
            probs, cams = predict_slides(
                self.model, evaluated, self.opts, self.device, with_cams=self.opts.heatmaps
            )
            items = [s.item for s in evaluated]
            report = slide_report(
                [i.label_index for i in items], probs, self.names, cohort_strata(items),
                slides=[i.slide for i in items],
            )  # fmt: skip
            write_slide_report(report, ctx.plots_dir)
            summary["slide"] = report
            summary["auc"] = {c: (v or {}).get("auc") for c, v in report["auc"].items()}
            for slide, cam in zip(evaluated, cams, strict=False):
                heatmap = cam_heatmap(
                    cam, slide.spec, self.model.geometry, class_names=self.names,
                    run_id=ctx.paths.run_id, slide=slide.item.slide, pooling=self.opts.pooling,
                )  # fmt: skip
                heatmap.save(heatmap_path(ctx.heatmaps_dir, slide.item.slide))
            if cams:
                ctx.log(f"wrote {len(cams)} class activation maps to {ctx.heatmaps_dir}")
        summary["wall_s"] = round(time.monotonic() - started, 2)
        ctx.set_summary(**summary)
