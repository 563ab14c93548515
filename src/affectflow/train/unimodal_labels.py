"""Self-supervised unimodal labels: Self-MM's and SUGRM's label generation (ULGM) as a trainer hook.

Multimodal sentiment corpora label the fused utterance only (y_m). Self-MM (Yu et al. 2021) and
SUGRM (paper 001) give each modality s its own subtask with a label y_s generated during training
from where the modality's representation lies relative to the class centres, then train the
unimodal heads with an L1 loss weighted by tanh(|y_s − y_m|), beside the fused task's own loss.

The model (`selfmm`, `sugrm`) writes into its outputs' `aux`: ``pred/<s>`` (B,) the unimodal
prediction, ``feat/<s>`` (B, d_s) the unimodal representation and ``feat/fused`` (B, d_m) the fused
one. `UnimodalLabelHook` keeps, per training row, the latest representations (a bank) and the
labels, and after each batch (from the second epoch on, as the authors' code) replaces the batch's
labels by the momentum update y ← (n−1)/(n+1)·y + 2/(n+1)·ŷ with n the epoch.

- ``selfmm`` (per RESEARCH-NOTES, thuiar/MMSA): in each modality's own space, centres c⁺/c⁻ of
  the banked features whose current label is > 0 / < 0; δ = (‖f − c⁻‖ − ‖f − c⁺‖)/(‖f − c⁺‖ + ε);
  ŷ_s = ½·(δ_s/δ_m)·y_m + ½·(y_m + δ_s − δ_m), clipped to the label's scale.
- ``sugrm`` (paper 001 §3.3): all representations in one common space; magnitude
  (max − min)·min(‖f_m − f_s‖, D_max)/D_max with D_max the distance between the mean fused
  features of the rows labelled at the scale's two extremes; direction + when
  ‖f_s − c⁺‖/‖f_s − c⁻‖ < ‖f_m − c⁺‖/‖f_m − c⁻‖ (c± the fused centres of the positive/negative
  rows), − when greater, 0 when equal. Vectorised over the batch, with each extreme row counted
  once (the authors' code collects the ±3 rows with duplicates and loops per sample).

The extremes are the observed minimum and maximum of the training labels (±3 on MOSI/MOSEI, as
the paper; a corpus without exact ±3 still gets a D_max). Positive and negative are relative to
the middle of the label's scale (0 on [-3, 3], as the papers; 3 on a 1-5 rating, where a split at
0 would make every row positive), and Self-MM's rule runs on labels centred there. Rows without
y_m get no unimodal loss.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import torch
from torch import Tensor

from affectflow.train.trainer import Hook, StepBatch, Trainer

EPS = 1e-8
METHODS = ("selfmm", "sugrm")


def momentum(old: Tensor, new: Tensor, epoch: int) -> Tensor:
    """(n−1)/(n+1)·old + 2/(n+1)·new for epoch n (Self-MM's label update; n = 1 keeps `new`)."""
    return (epoch - 1) / (epoch + 1) * old + 2 / (epoch + 1) * new


def delta(f: Tensor, pos: Tensor, neg: Tensor) -> Tensor:
    """Self-MM's relative distance (‖f − c⁻‖ − ‖f − c⁺‖)/(‖f − c⁺‖ + ε), per row."""
    d_p, d_n = torch.linalg.norm(f - pos, dim=-1), torch.linalg.norm(f - neg, dim=-1)
    return (d_n - d_p) / (d_p + EPS)


def selfmm_labels(y_m: Tensor, f_m: Tensor, f_s: Tensor, centres_m: tuple[Tensor, Tensor],
                  centres_s: tuple[Tensor, Tensor], scale: tuple[float, float]) -> Tensor:
    """Self-MM's new unimodal labels for a batch (before the momentum update)."""
    d_m, d_s = delta(f_m, *centres_m), delta(f_s, *centres_s)
    alpha = d_s / (d_m + EPS)
    return (0.5 * alpha * y_m + 0.5 * (y_m + d_s - d_m)).clamp(*scale)


def sugrm_labels(y_m: Tensor, f_m: Tensor, f_s: Tensor, centres_m: tuple[Tensor, Tensor],
                 d_max: Tensor, scale: tuple[float, float], span: float) -> Tensor:
    """SUGRM's new unimodal labels for a batch (before the momentum update)."""
    distance = torch.linalg.norm(f_m - f_s, dim=-1).clamp(max=float(d_max))
    magnitude = span * distance / (d_max + EPS)
    pos, neg = centres_m

    def ratio(f: Tensor) -> Tensor:
        return torch.linalg.norm(f - pos, dim=-1) / (torch.linalg.norm(f - neg, dim=-1) + EPS)

    direction = torch.sign(ratio(f_m) - ratio(f_s))  # + when f_s lies relatively nearer c⁺
    return (y_m + direction * magnitude).clamp(*scale)


def centres(features: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
    """Means of the rows labelled > 0 and < 0 (zeros where a side has no row)."""
    def mean(rows: Tensor) -> Tensor:
        return features[rows].mean(0) if bool(rows.any()) else features.new_zeros(features.shape[1])

    return mean(labels > 0), mean(labels < 0)


class UnimodalLabelHook(Hook):
    """Generated unimodal labels and their tanh-weighted L1 losses (see the module docstring).

    `method` is ``selfmm`` or ``sugrm``; `task` the fused regression task ('' = the run's first
    regression task). State after training: `labels` {modality: (N,) tensor} over the training
    split, `history` {modality: [mean |y_s − y_m| per epoch]} for reports and tests."""

    def __init__(self, method: str, task: str = "") -> None:
        if method not in METHODS:
            raise ValueError(f"unimodal label method must be one of {METHODS}, got {method!r}")
        self.method, self.task = method, task
        self.labels: dict[str, Tensor] = {}
        self.bank: dict[str, Tensor] = {}
        self.history: dict[str, list[float]] = {}

    def on_train_start(self, trainer: Trainer) -> None:
        self.modalities = list(getattr(trainer.model.encoder, "unimodal", []))
        if not self.modalities:
            return
        specs = trainer.prep.specs
        task = self.task or next((t for t, s in specs.items() if s.kind == "regression"), "")
        if not task or specs.get(task) is None or specs[task].kind != "regression":
            raise ValueError(f"{self.method}: unimodal labels need a regression task; "
                             f"got {self.task or 'none'} among {sorted(specs)}")
        self.task = task
        y = torch.as_tensor(np.asarray(trainer.prep.targets["train"][task], dtype=np.float32))
        self.y_m = y.to(trainer.device)
        self.valid = torch.isfinite(self.y_m)
        known = self.y_m[self.valid]
        lo, hi = (float(known.min()), float(known.max())) if known.numel() else (-1.0, 1.0)
        self.extremes = (self.y_m == hi) & self.valid, (self.y_m == lo) & self.valid
        self.span = hi - lo
        self.scale = specs[task].value_range or (lo, hi)
        self.mid = (self.scale[0] + self.scale[1]) / 2  # 0 on [-3, 3]; 3 on a 1-5 rating
        self.labels = {m: self.y_m.clone() for m in self.modalities}
        self.bank, self.history = {}, {m: [] for m in self.modalities}

    def extra_loss(self, trainer: Trainer, batch: StepBatch, outputs: Mapping[str, Tensor]
                   ) -> Tensor | None:
        if not self.modalities:
            return None
        aux = outputs.aux  # type: ignore[attr-defined]
        idx = torch.as_tensor(batch.idx, device=self.y_m.device)
        y_m, ok = self.y_m[idx], self.valid[idx]
        total = y_m.new_zeros(())
        for m in self.modalities:
            y_s = self.labels[m][idx]
            weight = torch.tanh((y_s - y_m).abs()).nan_to_num(0.0) * ok
            error = (aux[f"pred/{m}"].float() - y_s.nan_to_num(0.0)).abs()
            total = total + (weight * error).sum() / len(idx)
        return total

    def on_batch_end(self, trainer: Trainer, batch: StepBatch, outputs: Mapping[str, Tensor],
                     loss: Tensor) -> None:
        if not self.modalities:
            return
        aux = outputs.aux  # type: ignore[attr-defined]
        idx = torch.as_tensor(batch.idx, device=self.y_m.device)
        feats = {k: aux[f"feat/{k}"].detach().float() for k in ["fused", *self.modalities]}
        if not self.bank:
            n = self.y_m.shape[0]
            self.bank = {k: f.new_zeros(n, f.shape[1]) for k, f in feats.items()}
        if batch.epoch > 1:
            self._update_labels(idx, feats, batch.epoch)
        for k, f in feats.items():
            self.bank[k][idx] = f

    def _update_labels(self, idx: Tensor, feats: Mapping[str, Tensor], epoch: int) -> None:
        ok = self.valid[idx]
        y_m, f_m = self.y_m[idx], feats["fused"]
        fused_centres = centres(self.bank["fused"][self.valid], self.y_m[self.valid] - self.mid)
        if self.method == "sugrm":
            top, bottom = self.extremes
            d_max = torch.linalg.norm(self.bank["fused"][top].mean(0) - self.bank["fused"][bottom].mean(0))
        for m in self.modalities:
            if self.method == "selfmm":
                own = centres(self.bank[m][self.valid], self.labels[m][self.valid] - self.mid)
                centred = (self.scale[0] - self.mid, self.scale[1] - self.mid)
                new = selfmm_labels(y_m - self.mid, f_m, feats[m], fused_centres, own, centred) + self.mid
            else:
                new = sugrm_labels(y_m, f_m, feats[m], fused_centres, d_max, self.scale, self.span)
            updated = momentum(self.labels[m][idx], new, epoch)
            self.labels[m][idx] = torch.where(ok, updated, self.labels[m][idx])

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Mapping[str, float]) -> None:
        for m in self.modalities:
            gap = (self.labels[m] - self.y_m)[self.valid].abs()
            self.history[m].append(float(gap.mean()) if gap.numel() else 0.0)


class GroundTruthUnimodalHook(Hook):
    """Multi-loss (MMML): each modality's head ``pred/<m>`` trained on the fused regression target
    itself with L1, weighted by `weight` (the labelled rows of the batch, Σ/B as the task loss)."""

    def __init__(self, weight: float = 1.0, task: str = "") -> None:
        self.weight, self.task = weight, task

    def on_train_start(self, trainer: Trainer) -> None:
        self.modalities = list(getattr(trainer.model.encoder, "unimodal", []))
        specs = trainer.prep.specs
        self.task = self.task or next((t for t, s in specs.items() if s.kind == "regression"), "")
        if self.modalities and self.weight > 0 and not self.task:
            raise ValueError(f"multi-loss needs a regression task among {sorted(specs)}")

    def extra_loss(self, trainer: Trainer, batch: StepBatch, outputs: Mapping[str, Tensor]
                   ) -> Tensor | None:
        if not self.modalities or self.weight == 0:
            return None
        y = batch.targets[self.task].float()
        ok = torch.isfinite(y)
        aux = outputs.aux  # type: ignore[attr-defined]
        losses = [((aux[f"pred/{m}"].float() - y.nan_to_num(0.0)).abs() * ok).sum() / len(y)
                  for m in self.modalities]
        return self.weight * torch.stack(losses).sum()
