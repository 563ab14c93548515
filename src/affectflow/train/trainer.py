"""The training loop, opened: a `Trainer` with hooks, parameter groups, clipping, a scheduler,
early stopping on a named validation quantity and AMP on CUDA.

Its defaults are the protocol of Dai et al. (2021, §6.1): Adam (β 0.9/0.999, weight decay
1e-5), early stopping on the validation loss with the best weights restored. Methods that need
more than a loss on the model's outputs (per-epoch label updates, momentum encoders, auxiliary
branches; the zoo of the later issues) plug in as a `Hook`: every hook sees each `StepBatch`
(its sample indices into the training split, the current epoch) and the outputs, may add a loss
(`extra_loss`), and is called at batch and epoch ends. Read MMSA's `ATIO` (trainer map) for the
idea of one trainer per family; here one trainer and hooks cover them.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from affectflow.features.params import param
from affectflow.train.data import Features, Prepared, make_batch
from affectflow.train.models.base import MultiTaskModel, TaskOutputs
from affectflow.train.tasks import TaskSpec, multitask_loss

LOWER_IS_BETTER = ("mae", "loss")


@dataclass(frozen=True)
class TrainerConfig:
    """Optimiser and stopping hyper-parameters (shared by every torch model)."""

    lr: float = param(1e-3, "Adam learning rate.", exclusiveMinimum=0)
    batch_size: int = param(32, "Batch size.", minimum=1)
    max_epochs: int = param(60, "Epoch limit.", minimum=1)
    patience: int = param(8, "Early stopping after this many epochs without validation "
                             "improvement.", minimum=1)
    weight_decay: float = param(1e-5, "Adam weight decay (L2; the paper's 1e-5).", minimum=0)
    betas: list[float] = param([0.9, 0.999], "Adam β1, β2.", minItems=2, maxItems=2)
    grad_clip: float = param(0.0, "Clip the gradients' global norm to this (0: no clipping).",
                             minimum=0)
    scheduler: str = param("none", "Learning-rate schedule: none, cosine (to 0 over max_epochs) "
                                   "or plateau (halve after patience/2 epochs without "
                                   "improvement).", enum=["none", "cosine", "plateau"])
    early_stop: str = param(
        "valid_loss", "What early stopping watches: valid_loss, or <task>/<metric> of the "
        "validation split (e.g. sarcasm/f1_weighted; maximised, mae minimised).",
        pattern=r"^(valid_loss|[A-Za-z0-9_-]+/[A-Za-z0-9_]+)$")
    lr_groups: dict[str, float] = param(
        {}, "Learning rates of parameter groups by name prefix (e.g. encoder: 1e-4, heads: "
            "1e-3); the parameters no prefix matches use lr.")
    amp: bool = param(True, "Mixed precision (bfloat16 autocast) on CUDA; ignored on CPU.")
    accumulate: int = param(1, "Optimiser step every this many batches (gradient accumulation; "
                               "SUGRM: 4); the last step of an epoch takes what is left.",
                            minimum=1)


@dataclass
class StepBatch:
    """One training batch as hooks see it: row indices into the split, inputs and targets."""

    idx: np.ndarray
    inputs: dict[str, tuple[Tensor, Tensor]]
    targets: dict[str, Tensor]
    epoch: int


class Hook:
    """Extension points of the `Trainer`; every method is optional (the defaults do nothing)."""

    def on_train_start(self, trainer: "Trainer") -> None:
        """Before the first epoch (e.g. build label banks over the training split)."""

    def extra_loss(self, trainer: "Trainer", batch: StepBatch,
                   outputs: Mapping[str, Tensor]) -> Tensor | None:
        """A loss added to the tasks' loss of this training batch (None: nothing)."""
        return None

    def on_batch_end(self, trainer: "Trainer", batch: StepBatch,
                     outputs: Mapping[str, Tensor], loss: Tensor) -> None:
        """After the optimiser step (e.g. a momentum-encoder update)."""

    def on_epoch_end(self, trainer: "Trainer", epoch: int, logs: Mapping[str, float]) -> None:
        """After validation, with this epoch's train_loss, valid_loss and validation metrics."""


@dataclass
class FitResult:
    curves: dict[str, list[float]]
    best_epoch: int  # 1-based epoch whose weights were restored
    best_value: float = math.nan
    stopped_early: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class Trainer:
    """Fit a `MultiTaskModel` on a `Prepared` dataset with early stopping and hooks."""

    def __init__(self, model: MultiTaskModel, prep: Prepared, config: TrainerConfig,
                 device: torch.device, seed: int = 0, hooks: Sequence[Hook] = ()) -> None:
        self.model, self.prep, self.config, self.device = model, prep, config, device
        self.seed, self.hooks = seed, list(hooks)
        self.epoch = 0
        self.weights = {t: torch.from_numpy(w).to(device) for t, w in prep.loss_weights.items()}
        self.optimiser = torch.optim.Adam(self.param_groups(), lr=config.lr,
                                          betas=tuple(config.betas),
                                          weight_decay=config.weight_decay)
        self.scheduler = self._scheduler()
        self.amp = config.amp and device.type == "cuda"

    def param_groups(self) -> list[dict[str, Any]]:
        """One group per `lr_groups` prefix (first match wins), the rest at `lr`."""
        groups: dict[str, list[Tensor]] = {p: [] for p in self.config.lr_groups}
        rest: list[Tensor] = []
        for name, parameter in self.model.named_parameters():
            prefix = next((p for p in self.config.lr_groups if name.startswith(p)), None)
            (groups[prefix] if prefix is not None else rest).append(parameter)
        empty = [p for p, params in groups.items() if not params]
        if empty:
            raise ValueError(f"lr_groups {empty} match no parameter of {self.model.name}")
        out = [{"params": params, "lr": float(self.config.lr_groups[p]), "name": p}
               for p, params in groups.items()]
        return out + [{"params": rest, "name": "default"}] if rest else out

    def _scheduler(self) -> Any:
        if self.config.scheduler == "cosine":
            return torch.optim.lr_scheduler.CosineAnnealingLR(self.optimiser,
                                                              self.config.max_epochs)
        if self.config.scheduler == "plateau":
            mode = "min" if self._lower_is_better() else "max"
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                self.optimiser, mode=mode, factor=0.5, patience=max(self.config.patience // 2, 1))
        return None

    def _lower_is_better(self) -> bool:
        return self.config.early_stop.split("/")[-1] in LOWER_IS_BETTER or \
            self.config.early_stop == "valid_loss"

    def run_epoch(self, features: Features, targets: Mapping[str, np.ndarray], batch_size: int,
                  generator: torch.Generator | None = None) -> tuple[float, dict[str, float]]:
        """One pass; trains (with hooks) when a generator is given, else evaluates. Returns
        (Σ_t λ_t · mean loss_t, {task: mean loss}), the per-sample mean of the batch objective
        of `multitask_loss` extended to the split, so train and valid losses compare."""
        tasks: Mapping[str, TaskSpec] = self.prep.specs
        n = next(iter(features.values()))[0].shape[0]
        training = generator is not None
        order = torch.randperm(n, generator=generator).numpy() if training else np.arange(n)
        self.model.train(training)
        sums = dict.fromkeys(tasks, 0.0)
        steps = -(-n // batch_size)
        with torch.set_grad_enabled(training):
            for step, start in enumerate(range(0, n, batch_size), 1):
                idx = order[start:start + batch_size]
                inputs, tgt = make_batch(features, targets, idx, self.device)
                with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.amp):
                    raw = self.model(inputs)
                outputs = TaskOutputs({t: y.float() for t, y in raw.items()},
                                      getattr(raw, "aux", None))
                total, parts = multitask_loss(outputs, tgt, tasks, self.weights)
                if training:
                    batch = StepBatch(idx, inputs, tgt, self.epoch)
                    for hook in self.hooks:
                        extra = hook.extra_loss(self, batch, outputs)
                        if extra is not None:
                            total = total + extra
                    self._backward(total, step, steps)
                    for hook in self.hooks:
                        hook.on_batch_end(self, batch, outputs, total.detach())
                for t, v in parts.items():
                    sums[t] += float(v.detach()) * len(idx)
        per_task = {t: v / n for t, v in sums.items()}
        return sum(tasks[t].weight * v for t, v in per_task.items()), per_task

    def _backward(self, total: Tensor, step: int, steps: int) -> None:
        """Accumulate the gradients of `total`; step every `accumulate` batches and at the end."""
        accumulate = self.config.accumulate
        if accumulate == 1 or step % accumulate == 1:
            self.optimiser.zero_grad(set_to_none=True)
        (total / accumulate if accumulate > 1 else total).backward()
        if step % accumulate == 0 or step == steps:
            if self.config.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
            self.optimiser.step()

    def fit(self) -> FitResult:
        """Train up to max_epochs, stop after `patience` epochs without improvement of
        `early_stop`, restore the best weights in place."""
        from affectflow.train.evaluation import evaluate_predictions, predict_outputs

        prep, cfg = self.prep, self.config
        generator = torch.Generator().manual_seed(self.seed)
        curves: dict[str, list[float]] = {"train_loss": [], "valid_loss": []}
        lower = self._lower_is_better()
        best, best_epoch = math.inf, 0
        best_state = copy.deepcopy(self.model.state_dict())
        for hook in self.hooks:
            hook.on_train_start(self)
        stopped = False
        for epoch in range(1, cfg.max_epochs + 1):
            self.epoch = epoch
            train_loss, _ = self.run_epoch(prep.feats["train"], prep.targets["train"],
                                           cfg.batch_size, generator)
            valid_loss, _ = self.run_epoch(prep.feats["valid"], prep.targets["valid"], 256)
            preds = predict_outputs(self.model, prep.feats["valid"], self.device)
            metrics, _ = evaluate_predictions(preds, prep.targets["valid"], prep.specs,
                                              prep.classes)
            logs = {"train_loss": train_loss, "valid_loss": valid_loss}
            curves["train_loss"].append(train_loss)
            curves["valid_loss"].append(valid_loss)
            for t, spec in prep.specs.items():
                names = [prep.headline[t]] + (["wacc_avg"] if spec.paper_metrics else [])
                for name in names:
                    value = metrics.get(t, {}).get(name, math.nan)
                    curves.setdefault(f"valid_{t}_{name}", []).append(value)
            for t, values in metrics.items():
                logs.update({f"{t}/{k}": v for k, v in values.items()})
            watched = self._watched(logs)
            score = watched if lower else -watched
            if self.scheduler is not None:
                self.scheduler.step(watched) if cfg.scheduler == "plateau" else self.scheduler.step()
            for hook in self.hooks:
                hook.on_epoch_end(self, epoch, logs)
            if score < best:
                best, best_epoch = score, epoch
                best_state = copy.deepcopy(self.model.state_dict())
            elif epoch - best_epoch >= cfg.patience:
                stopped = True
                break
        self.model.load_state_dict(best_state)
        return FitResult(curves, best_epoch, best if lower else -best, stopped)

    def _watched(self, logs: Mapping[str, float]) -> float:
        key = self.config.early_stop
        if key not in logs:
            known = ", ".join(k for k in logs if "/" in k)
            raise ValueError(f"early_stop {key!r}: no such validation value (known: valid_loss, "
                             f"{known})")
        value = float(logs[key])
        return value if math.isfinite(value) else math.inf * (1 if self._lower_is_better() else -1)
