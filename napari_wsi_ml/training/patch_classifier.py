"""The ``patch_classifier`` job: a timm backbone trained on annotation-labelled patches.

Config: ``data:`` (:class:`PatchDataOptions`) and ``patch_classifier:``
(:class:`PatchClassifierOptions`). The run writes ``data.json`` (slides, fingerprints, splits,
annotation hash), per-epoch metrics (``train_loss``, ``val_loss``, ``val_accuracy``,
``val_balanced_accuracy``, ``val_auc_<class>``), checkpoints after every epoch and on cancel
(mid-epoch: a resumed run replays exactly the remaining batches), and at the end
``metrics.json["summary"]`` (patch- and slide-level evaluation with DeLong intervals) and a
heatmap per evaluated slide under ``heatmaps/``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from napari_wsi_ml.data.augment import Augmenter
from napari_wsi_ml.data.dataset import PatchDataset
from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.evaluation import classification_metrics
from napari_wsi_ml.inference.cohort_review import PREDICTIONS_FILE
from napari_wsi_ml.inference.heatmap import Heatmap
from napari_wsi_ml.inference.predictions import SlidePrediction, predict_slide, write_predictions
from napari_wsi_ml.jobs.distributed import (
    all_reduce_mean,
    local_batch_size,
    train_step,
    unwrap_model,
    wrap_model,
)
from napari_wsi_ml.models import check_backbone_name, create_classifier
from napari_wsi_ml.training import loops
from napari_wsi_ml.training.data_setup import (
    PreparedSlide,
    data_manifest,
    patch_sets,
    prepare_slides,
    slide_records,
    split_records,
)
from napari_wsi_ml.training.final_eval import patch_level, slide_level
from napari_wsi_ml.training.heatmaps import heatmap_path, slide_heatmap
from napari_wsi_ml.training.options import (
    PatchClassifierOptions,
    PatchDataOptions,
    check_options,
    class_names,
)
from napari_wsi_ml.training.trainer import Trainer

if TYPE_CHECKING:
    from napari_wsi_ml.jobs.config import JobConfig
    from napari_wsi_ml.jobs.run_context import RunContext


class PatchClassifierTask:
    """Train and evaluate a patch classifier (see the module docstring)."""

    name = "patch_classifier"
    options_schema = PatchClassifierOptions
    data_schema = PatchDataOptions

    def check_config(self, config: JobConfig) -> list[str]:
        """Cross-field problems and an unknown backbone, before anything runs."""
        problems = check_options(config.data, config.task)
        try:
            check_backbone_name(config.task.backbone)
        except ConfigError as error:
            problems.append(f"patch_classifier.{error}")
        return problems

    def run(self, ctx: RunContext) -> None:
        """Prepare the data, train with early stopping, evaluate, write heatmaps."""
        _Run(ctx).run()


class _Run:
    """One run of the task (state shared by its phases)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.data: PatchDataOptions = ctx.config.data
        self.opts: PatchClassifierOptions = ctx.config.task
        self.names = class_names(self.data)
        self.device = ctx.device
        self.features_mode = self.opts.mode == "linear_probe" and self.opts.precompute_features

    def run(self) -> None:
        ctx, started = self.ctx, time.monotonic()
        records = slide_records(self.data)
        split = split_records(records, self.data, ctx.seed)
        self.slides = prepare_slides(records, self.data, split, ctx.seed)
        ctx.write_data_manifest(data_manifest(self.slides, split, self.data, records))
        train_sets = patch_sets(self.slides, "train")
        if not train_sets:
            raise ConfigError(
                "data: no labelled training patches: check label_map against the annotation "
                "groups, patch_size and min_tissue."
            )
        torch.manual_seed(ctx.seed)
        self.model = create_classifier(
            self.opts.backbone,
            num_classes=len(self.names),
            mode=self.opts.mode,
            pretrained=self.opts.pretrained,
            weights=self.opts.weights,
        ).to(self.device)
        train = PatchDataset(train_sets, seed=ctx.seed)  # augmented per batch, on the device
        self.augment = Augmenter() if self.data.augment else None
        val_sets = patch_sets(self.slides, "val")
        self.val = PatchDataset(val_sets, seed=ctx.seed) if val_sets else None
        weights = loops.class_weights(train.labels, len(self.names), self.opts.class_weights)
        self.loss_fn = nn.CrossEntropyLoss(
            weight=None if weights is None else weights.to(self.device)
        )
        if self.features_mode:
            self._prepare_features(train_sets)
        batches_per_epoch = self._batches_per_epoch(len(train))
        trainer = Trainer(
            self.model,
            self._net(),
            lr=self.opts.learning_rate,
            weight_decay=self.opts.weight_decay,
            total_steps=batches_per_epoch * self.opts.epochs,
            amp=self.opts.amp,
            device=self.device,
            patience=self.opts.patience,
        )
        if ctx.resume_state is not None:
            trainer.load_state_dict(ctx.resume_state)
            ctx.restore_rng()
            ctx.log(f"resumed at epoch {trainer.progress.epoch}, batch {trainer.progress.batch}")
        self._train(trainer, train, batches_per_epoch)
        if ctx.stopped:
            return
        self._finish(trainer, started)

    # -- data ---------------------------------------------------------------------------
    def _loader(self, dataset: PatchDataset, *, shuffle: bool, batch_size: int) -> Any:
        dist = self.ctx.dist
        return loops.patch_loader(
            dataset,
            batch_size=batch_size,
            num_workers=self.data.num_workers,
            seed=self.ctx.seed,
            shuffle=shuffle,
            rank=dist.rank if shuffle else 0,
            world_size=dist.world_size if shuffle else 1,
        )

    @property
    def local_batch(self) -> int:
        """This rank's share of the global batch."""
        return local_batch_size(self.opts.batch_size, self.ctx.dist)

    def _batches_per_epoch(self, n: int) -> int:
        per_rank = -(-n // self.ctx.dist.world_size)
        return -(-per_rank // self.local_batch)

    def _prepare_features(self, train_sets: list) -> None:
        self.ctx.log("extracting frozen backbone features once (linear probe)")
        plain = PatchDataset(train_sets, seed=self.ctx.seed)
        loader, _ = self._loader(plain, shuffle=False, batch_size=self.opts.eval_batch_size)
        self.train_features = loops.extract_features(self.model, loader, self.device)
        self.val_features = None
        if self.val is not None:
            loader, _ = self._loader(self.val, shuffle=False, batch_size=self.opts.eval_batch_size)
            self.val_features = loops.extract_features(self.model, loader, self.device)

    def _net(self) -> nn.Module:
        net: nn.Module = self.model.head if self.features_mode else self.model
        return wrap_model(net, self.ctx.dist, self.device)

    def _epoch_batches(self, train: PatchDataset, trainer: Trainer) -> Any:
        p, dist = trainer.progress, self.ctx.dist
        if self.features_mode:
            features, labels = self.train_features
            yield from loops.feature_batches(
                features, labels, batch_size=self.local_batch, seed=self.ctx.seed,
                epoch=p.epoch, start_batch=p.batch, rank=dist.rank, world_size=dist.world_size,
            )  # fmt: skip
            return
        if not hasattr(self, "_train_loader"):
            self._train_loader = self._loader(train, shuffle=True, batch_size=self.local_batch)
        loader, sampler = self._train_loader
        train.set_epoch(p.epoch)
        sampler.start_batch = p.batch
        batches = loops.device_batches(
            loader, self.device, augment=self.augment, seed=self.ctx.seed, epoch=p.epoch,
            start_batch=p.batch, rank=dist.rank,
        )  # fmt: skip
        for _, batch in batches:
            if len(batch["label"]) > 1:  # batch norm cannot train on a single patch
                yield batch["image"], batch["label"]

    # -- training -----------------------------------------------------------------------
    def _train(self, trainer: Trainer, train: PatchDataset, batches_per_epoch: int) -> None:
        ctx, p = self.ctx, trainer.progress
        total = batches_per_epoch * self.opts.epochs
        self.model.train()
        while p.epoch < self.opts.epochs and not p.done:
            for inputs, labels in self._epoch_batches(train, trainer):
                loss = float(
                    train_step(
                        trainer.net, (inputs, labels), self.loss_fn, trainer.optimizer,
                        trainer.scaler,
                    )
                )  # fmt: skip
                trainer.scheduler.step()
                p.batch, p.loss_sum, p.loss_count = p.batch + 1, p.loss_sum + loss, p.loss_count + 1
                step = p.epoch * batches_per_epoch + p.batch
                ctx.progress(step, total, epoch=p.epoch, loss=loss)
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
        epoch, train_loss = p.epoch, trainer.epoch_loss
        metrics: dict[str, Any] = {
            "train_loss": all_reduce_mean(train_loss, ctx.dist),
            "lr": trainer.scheduler.get_last_lr()[0],
        }
        val_loss = None
        if self.val is not None:
            result = self._validate()
            val_loss = loops.mean_loss(result["probs"], result["labels"])
            found = classification_metrics(result["labels"], result["probs"], self.names)
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

    def _validate(self) -> dict[str, np.ndarray]:
        if self.features_mode and self.val_features is not None:
            features, labels = self.val_features
            with torch.no_grad():
                self.model.eval()
                logits = self.model.head(features.to(self.device))
                self.model.train()
            probs = torch.softmax(logits.float(), 1).cpu().numpy()
            return {"probs": probs, "labels": labels.numpy()}
        loader, _ = self._loader(self.val, shuffle=False, batch_size=self.opts.eval_batch_size)
        return loops.predict(self.model, loader, self.device, amp=self.opts.amp)

    # -- evaluation ---------------------------------------------------------------------
    def _finish(self, trainer: Trainer, started: float) -> None:
        ctx = self.ctx
        best = ctx.load_checkpoint("best") if ctx.dist.is_main else None
        if best is not None:
            unwrap_model(self.model).load_state_dict(best["model"])
        if not ctx.dist.is_main:
            return
        part = "test" if patch_sets(self.slides, "test") else "val"
        evaluated = [s for s in self.slides if part in s.patches]
        summary: dict[str, Any] = {
            "evaluated_split": part,
            "best_epoch": trainer.early.best_epoch,
        }
        sets = patch_sets(self.slides, part)
        if sets:
            dataset = PatchDataset(sets, seed=ctx.seed)
            loader, _ = self._loader(dataset, shuffle=False, batch_size=self.opts.eval_batch_size)
            result = loops.predict(self.model, loader, self.device, amp=self.opts.amp)
            index = {s.record.slide: i for i, s in enumerate(evaluated)}
            slide_index = np.array([index[sets[i].slide_name] for i in result["slide_index"]])
            summary["patch"] = patch_level(
                result["probs"], result["labels"], slide_index, evaluated, self.names
            )
        tissue_probs = self._heatmaps(evaluated) if self.opts.heatmaps else {}
        if tissue_probs:
            summary["slide"] = slide_level(
                tissue_probs, evaluated, self.names, self.data.background_label, self.opts.top_k
            )
        summary["wall_s"] = round(time.monotonic() - started, 2)
        ctx.set_summary(**summary)

    def _heatmaps(self, slides: list) -> dict[str, np.ndarray]:
        stride = self.data.eval_stride
        out: dict[str, np.ndarray] = {}
        predictions: list[SlidePrediction] = []
        for item in slides:
            heatmap, result = slide_heatmap(
                self.model, item, stride=stride, min_tissue=self.data.min_tissue,
                class_names=self.names, run_id=self.ctx.paths.run_id, device=self.device,
                batch_size=self.opts.eval_batch_size, num_workers=self.data.num_workers,
                amp=self.opts.amp,
            )  # fmt: skip
            saved = heatmap.save(heatmap_path(self.ctx.heatmaps_dir, item.record.slide))
            out[item.record.slide] = result["probs"]
            predictions.append(self._prediction(heatmap, item, saved))
        self.ctx.log(f"wrote {len(out)} heatmaps to {self.ctx.heatmaps_dir}")
        if predictions:
            write_predictions(predictions, self.ctx.run_dir / PREDICTIONS_FILE)
        return out

    def _prediction(self, heatmap: Heatmap, item: PreparedSlide, saved: Path) -> SlidePrediction:
        """The slide-level prediction of an evaluated slide (``predictions.csv`` row)."""
        label = self.data.label_map.get(item.record.label, item.record.label)
        return predict_slide(
            heatmap, slide=item.record.slide, path=item.record.path,
            background=self.data.background_label,
            label=label if label in self.names else None,
            heatmap_path=saved, top_k=self.opts.top_k,
        )  # fmt: skip
