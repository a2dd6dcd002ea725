"""The ``topk_mil`` job: top-k multiple-instance learning on slide labels (Campanella et al.).

Every epoch the current model scores every tissue patch of every training slide; the top-k
patches of each slide (:mod:`.topk_selection`: by suspicion ``1 − p(normal)`` by default) are
then trained on with the slide's label (cross-entropy, class weights, augmentation). A slide's
prediction is the probability vector of its most suspicious patch (``max``) or the mean of its
``eval_k`` most suspicious ones (``top_k_mean``).

Config: ``data:`` (:class:`~.slide_data.SlideDataOptions`) and ``topk_mil:``
(:class:`TopKMilOptions`). The run writes ``data.json``, per-epoch metrics (``train_loss``,
``val_loss`` (slide-level cross-entropy), ``val_accuracy``, ``val_balanced_accuracy``,
``val_auc_<class>``, ``val_auc_macro``, ``lr``), ``last.pt`` / ``best.pt`` (best by
``monitor``); a cancelled run saves mid-epoch with the epoch's selection, so a resumed run
trains exactly the remaining batches. At the end, with the best weights: ``metrics.json
["summary"]`` holds :func:`~.slide_eval.slide_report` of the val and test slides (strata
``site`` and ``lesion_size``), ``plots/<split>_slide_{confusion,roc}.png``, and
``heatmaps/<slide>.heatmap.npz`` (patch probabilities) for every val and test slide.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch import nn

from napari_wsi_ml.config_schema import spec
from napari_wsi_ml.data.augment import Augmenter
from napari_wsi_ml.errors import ConfigError
from napari_wsi_ml.jobs.distributed import train_step
from napari_wsi_ml.models import check_backbone_name, create_classifier
from napari_wsi_ml.training import loops
from napari_wsi_ml.training.mil_common import (
    PatchPixels,
    cohort_heatmap,
    heatmap_path,
    score_patches,
    to_tensor,
)
from napari_wsi_ml.training.slide_data import (
    CohortItem,
    SlideCohort,
    SlideDataOptions,
    check_slide_data,
    load_slide_cohort,
)
from napari_wsi_ml.training.slide_eval import cohort_strata, slide_report, write_slide_report
from napari_wsi_ml.training.topk_selection import select_training_patches, slide_probabilities
from napari_wsi_ml.training.trainer import Trainer

if TYPE_CHECKING:
    from napari_wsi_ml.jobs.config import JobConfig
    from napari_wsi_ml.jobs.run_context import RunContext


@dataclass(frozen=True)
class TopKMilOptions:
    """Model, selection and optimisation of top-k MIL (the ``topk_mil:`` section)."""

    backbone: str = field(default="resnet18", metadata=spec(hint="a timm model name"))
    pretrained: bool = False
    weights: Path | None = field(default=None, metadata=spec(hint="a local .safetensors file"))
    k: int = field(default=1, metadata=spec(ge=1, le=1024, hint="1, 3 or 5"))
    selection: Literal["not_normal", "own_class"] = "not_normal"
    aggregation: Literal["max", "top_k_mean"] = "max"
    eval_k: int | None = field(default=None, metadata=spec(ge=1, hint="null = k"))
    epochs: int = field(default=20, metadata=spec(ge=1, le=10_000))
    passes: int = field(default=1, metadata=spec(ge=1, le=100, hint="passes per epoch"))
    batch_size: int = field(default=32, metadata=spec(ge=2, le=4096))
    eval_batch_size: int = field(default=128, metadata=spec(ge=1, le=8192))
    learning_rate: float = field(default=1e-3, metadata=spec(gt=0, le=10, hint="e.g. 0.001"))
    weight_decay: float = field(default=1e-4, metadata=spec(ge=0, le=1))
    class_weights: Literal["auto", "none"] | tuple[float, ...] = "auto"
    monitor: Literal["val_loss", "val_auc"] = "val_loss"
    patience: int = field(default=5, metadata=spec(ge=0, hint="epochs; 0 turns it off"))
    augment: bool = True
    amp: bool = True
    cache_mb: int = field(default=2048, metadata=spec(ge=0, hint="MiB of patch pixels held"))
    heatmaps: bool = True


class TopKMilTask:
    """Train and evaluate top-k MIL (see the module docstring)."""

    name = "topk_mil"
    options_schema = TopKMilOptions
    data_schema = SlideDataOptions

    def check_config(self, config: JobConfig) -> list[str]:
        """Cross-field problems and an unknown backbone, before anything runs."""
        task: TopKMilOptions = config.task
        problems = check_slide_data(config.data)
        try:
            check_backbone_name(task.backbone)
        except ConfigError as error:
            problems.append(f"topk_mil.{error}")
        if task.pretrained and task.weights is not None:
            problems.append("topk_mil.pretrained: give pretrained: true or weights, not both")
        classes = config.data.classes
        if (
            isinstance(task.class_weights, tuple)
            and classes
            and len(task.class_weights) != len(classes)
        ):
            problems.append(
                f"topk_mil.class_weights: {len(task.class_weights)} weights for "
                f"{len(classes)} classes; write auto, none or one per class"
            )
        return problems

    def run(self, ctx: RunContext) -> None:
        """Load the cohort, train with top-k selection, evaluate, write heatmaps."""
        _Run(ctx).run()


class _Run:
    """One run of the task (state shared by its phases)."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.data: SlideDataOptions = ctx.config.data
        self.opts: TopKMilOptions = ctx.config.task
        self.device = ctx.device
        self.eval_k = self.opts.eval_k or self.opts.k

    def run(self) -> None:
        ctx, opts, started = self.ctx, self.opts, time.monotonic()
        if ctx.dist.is_distributed:
            raise ConfigError("topk_mil runs in one process; start it without torchrun.")
        ctx.log(f"opening the cohort {self.data.cohort}")
        self.cohort: SlideCohort = load_slide_cohort(self.data, ctx.seed)
        ctx.write_data_manifest(self.cohort.manifest())
        self.classes = self.cohort.classes
        self._check_weights()
        self.train = self.cohort.part("train")
        self.index = {item.slide: i for i, item in enumerate(self.cohort.items)}
        self.pixels = PatchPixels(self.cohort.items, cache_bytes=opts.cache_mb << 20)
        ctx.log(
            f"{len(self.cohort.items)} slides, {sum(len(i.patches) for i in self.cohort.items)} "
            f"tissue patches ({'held in memory' if self.pixels.cached else 'read on demand'})"
        )
        torch.manual_seed(ctx.seed)
        self.model = create_classifier(
            opts.backbone,
            num_classes=len(self.classes),
            pretrained=opts.pretrained,
            weights=opts.weights,
        ).to(self.device)
        per_epoch = sum(min(opts.k, len(i.patches)) for i in self.train) * opts.passes
        self.n_batches = max(1, math.ceil(per_epoch / opts.batch_size))
        self.trainer = Trainer(
            self.model, self.model, lr=opts.learning_rate, weight_decay=opts.weight_decay,
            total_steps=self.n_batches * opts.epochs, amp=opts.amp, device=self.device,
            patience=opts.patience,
        )  # fmt: skip
        self.trainer.early.mode = "min" if opts.monitor == "val_loss" else "max"
        weights = loops.class_weights(
            self.cohort.labels(self.train), len(self.classes), opts.class_weights
        )
        self.loss_fn = nn.CrossEntropyLoss(
            weight=None if weights is None else weights.to(self.device)
        )
        self.augment = Augmenter() if opts.augment else None
        self.selection: dict[str, torch.Tensor] | None = None
        if ctx.resume_state is not None:
            self.trainer.load_state_dict(ctx.resume_state)
            self.selection = ctx.resume_state.get("selection")
            ctx.restore_rng()
            p = self.trainer.progress
            ctx.log(f"resumed at epoch {p.epoch}, batch {p.batch}")
        self._train()
        if ctx.stopped:
            return
        self._finish(started)

    def _check_weights(self) -> None:
        weights = self.opts.class_weights
        if isinstance(weights, tuple) and len(weights) != len(self.classes):
            raise ConfigError(
                f"topk_mil.class_weights: {len(weights)} weights for {len(self.classes)} "
                f"classes ({', '.join(self.classes)}); write auto, none or one per class."
            )

    # -- selection ----------------------------------------------------------------------
    def _probs(self, item: CohortItem) -> np.ndarray:
        pixels = self.pixels.get(self.index[item.slide])
        return score_patches(
            self.model, pixels, self.device, batch_size=self.opts.eval_batch_size,
            amp=self.opts.amp,
        )  # fmt: skip

    def _select(self) -> dict[str, torch.Tensor] | None:
        """Score every training patch; the top-k of each slide (None when cancelled)."""
        slides, patches = [], []
        for position, item in enumerate(self.train):
            chosen = select_training_patches(
                self._probs(item), item.label_index, self.opts.k, self.opts.selection
            )
            slides.extend([position] * len(chosen))
            patches.extend(chosen.tolist())
            if self.ctx.should_stop():
                return None
        return {"slide": torch.tensor(slides), "patch": torch.tensor(patches)}

    def _batches(self, epoch: int) -> list[np.ndarray]:
        """Example indices of each batch of ``epoch`` (never a batch of one)."""
        assert self.selection is not None
        n = len(self.selection["slide"])
        order = np.random.default_rng([self.ctx.seed, epoch]).permutation(
            np.tile(np.arange(n), self.opts.passes)
        )
        return [b for b in np.array_split(order, self.n_batches) if len(b)]

    def _batch(self, indices: np.ndarray, epoch: int, batch: int) -> tuple[torch.Tensor, ...]:
        assert self.selection is not None
        slides = self.selection["slide"][indices].numpy()
        patches = self.selection["patch"][indices].numpy()
        size = self.train[0].plan.patch_size
        pixels = np.empty((len(slides), size[1], size[0], 3), dtype=np.uint8)
        for position in np.unique(slides):  # one read per slide when patches are not cached
            rows = np.flatnonzero(slides == position)
            item = self.index[self.train[position].slide]
            pixels[rows] = self.pixels.get(item, patches[rows])
        images = to_tensor(pixels).to(self.device, non_blocking=True)
        if self.augment is not None:  # on the device, parameters drawn on the CPU generator
            seed = np.random.SeedSequence([self.ctx.seed, epoch, batch]).generate_state(1)[0]
            generator = torch.Generator().manual_seed(int(seed))
            images = self.augment(images, generator)
        labels = torch.tensor([self.train[s].label_index for s in slides.tolist()])
        return images, labels

    # -- training -----------------------------------------------------------------------
    def _train(self) -> None:
        ctx, opts, trainer = self.ctx, self.opts, self.trainer
        p = trainer.progress
        total = self.n_batches * opts.epochs
        while p.epoch < opts.epochs and not p.done:
            if p.batch == 0 or self.selection is None:
                p.batch = 0
                ctx.log(f"epoch {p.epoch}: scoring the training patches")
                self.selection = self._select()
                if self.selection is None:
                    self._save_cancelled()
                    return
            self.model.train()
            batches = self._batches(p.epoch)
            for number in range(p.batch, len(batches)):
                inputs = self._batch(batches[number], p.epoch, number)
                loss = float(
                    train_step(self.model, inputs, self.loss_fn, trainer.optimizer, trainer.scaler)
                )
                trainer.scheduler.step()
                p.batch, p.loss_sum, p.loss_count = p.batch + 1, p.loss_sum + loss, p.loss_count + 1
                ctx.progress(p.epoch * self.n_batches + p.batch, total, epoch=p.epoch, loss=loss)
                if ctx.should_stop():
                    self._save_cancelled()
                    return
            self._end_epoch()
            self.selection = None
            if ctx.should_stop():
                ctx.log(f"cancelled after epoch {p.epoch - 1}; checkpoint saved")
                return

    def _state(self) -> dict[str, Any]:
        state = self.trainer.state_dict()
        if self.selection is not None and self.trainer.progress.batch > 0:
            state["selection"] = self.selection
        return state

    def _save_cancelled(self) -> None:
        p = self.trainer.progress
        self.ctx.save_checkpoint(self._state())
        self.ctx.log(f"cancelled at epoch {p.epoch}, batch {p.batch}; checkpoint saved")

    def _end_epoch(self) -> None:
        ctx, trainer = self.ctx, self.trainer
        epoch = trainer.progress.epoch
        metrics: dict[str, Any] = {
            "train_loss": trainer.epoch_loss,
            "lr": trainer.scheduler.get_last_lr()[0],
        }
        monitored = None
        val = self.cohort.part("val")
        if val:
            labels, probs, _ = self._slide_predictions(val)
            report = slide_report(labels, probs, self.classes)
            val_loss = loops.mean_loss(probs, labels)
            metrics.update(
                val_loss=val_loss,
                val_accuracy=report["accuracy"],
                val_balanced_accuracy=report["balanced_accuracy"],
                val_auc_macro=report["auc_macro"],
                **{f"val_auc_{c}": (v or {}).get("auc") for c, v in report["auc"].items()},
            )
            monitored = val_loss if self.opts.monitor == "val_loss" else report["auc_macro"]
            if monitored is None:
                monitored = float("nan")
        best = trainer.end_epoch(monitored)
        ctx.log_metrics(epoch, **metrics)
        if best and monitored is not None:
            mode = "min" if self.opts.monitor == "val_loss" else "max"
            ctx.set_best(self.opts.monitor, monitored, epoch, mode=mode)
        ctx.save_checkpoint(self._state(), best=best)
        if trainer.progress.done:
            ctx.log(
                f"early stop: {self.opts.monitor} did not improve for {self.opts.patience} epochs"
            )

    def _slide_predictions(
        self, items: list[CohortItem]
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Slide labels ``(N,)``, slide probabilities ``(N, C)`` and each slide's patch probs."""
        patch_probs = [self._probs(item) for item in items]
        probs = np.stack(
            [slide_probabilities(p, self.opts.aggregation, self.eval_k) for p in patch_probs]
        )
        return self.cohort.labels(items), probs, patch_probs

    # -- evaluation ---------------------------------------------------------------------
    def _finish(self, started: float) -> None:
        ctx = self.ctx
        best = ctx.load_checkpoint("best")
        if best is not None:
            self.model.load_state_dict(best["model"])
        summary: dict[str, Any] = {
            "best_epoch": self.trainer.early.best_epoch,
            "k": self.opts.k,
            "selection": self.opts.selection,
            "aggregation": self.opts.aggregation,
            "eval_k": self.eval_k,
        }
        written = 0
        for part in ("val", "test"):
            items = self.cohort.part(part)
            if not items:
                continue
            labels, probs, patch_probs = self._slide_predictions(items)
            report = slide_report(
                labels, probs, self.classes, cohort_strata(items), slides=[i.slide for i in items]
            )
            summary[part] = report
            for name, interval in report["auc"].items():
                summary[f"{part}_auc_{name}"] = None if interval is None else interval["auc"]
            write_slide_report(report, ctx.plots_dir, prefix=f"{part}_slide")
            if self.opts.heatmaps:
                written += self._heatmaps(items, patch_probs)
        summary["evaluated_split"] = "test" if "test" in summary else "val"
        if self.pixels.failed:
            summary["unreadable_patches"] = dict(self.pixels.failed)
        summary["wall_s"] = round(time.monotonic() - started, 2)
        if written:
            ctx.log(f"wrote {written} heatmaps to {ctx.heatmaps_dir}")
        ctx.set_summary(**summary)

    def _heatmaps(self, items: list[CohortItem], patch_probs: list[np.ndarray]) -> int:
        folder = self.ctx.heatmaps_dir
        folder.mkdir(parents=True, exist_ok=True)
        for item, probs in zip(items, patch_probs, strict=True):
            heatmap = cohort_heatmap(
                item, probs, self.classes, self.ctx.paths.run_id,
                extra={"task": "topk_mil", "kind": "patch_probability", "part": item.part},
            )  # fmt: skip
            heatmap.save(heatmap_path(folder, item.slide))
        return len(items)
