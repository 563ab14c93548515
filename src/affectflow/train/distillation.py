"""MTMD's training objective (paper 004, Eq. 5-18) as a trainer hook: ground-truth losses of every
subtask, dominant-modality distillation (DMD) and multimodal-fusion distillation (MFD).

With y the fused regression target and p its sentiment class (negative < 0, neutral = 0,
positive > 0; relative to the middle of the label's scale, 0 on [-3, 3]), t the teacher modality
and u a student:
- L_gt = Σ_u [MAE(y, ŷ_u) + CE(p, p̂_u)] + CE(p, p̂_f); the fused MAE(y, ŷ_f) is the task's own loss.
- DMD, response-based (Eq. 7, 10): L_reg = Σ_u (1 − α)·|ŷ_t − ŷ_u| + α·|ŷ^m_u − ŷ_u| and L_cls the
  same with soft cross-entropy H(p̂_t, p̂_u), H(p̂^m_u, p̂_u); teacher and momentum outputs are
  targets (no gradient).
- DMD, feature-based (Eq. 8-11): L2-normalised F_t, F_u; keys are the batch and a FIFO queue of
  the last Q online representations (and of the momentum ones, and their classes); a query's
  positives are the keys of its sentiment class; V = softmax(s/τ) over keys, Y uniform over the
  positives; L_feat^u = ½[H(Y, V^{t2u}(t)) + H(Y, V^{u2t}(u))]; momentum targets U^{t2u}(t) from
  momentum u keys and U^{u2t}(u^m) from the momentum query; L_feat = Σ_u (1 − α)·L_feat^u
  + α/2·[KL(U^{t2u}‖V^{t2u}) + KL(U^{u2t}‖V^{u2t})]. τ is learnable (the encoder's `tau()`).
- MFD (Eq. 14-16): w_reg = tanh|y − ŷ_f| per sample, w_cls = mean |p − argmax p̂_f| over the batch;
  L_fusion = Σ_u w_reg·|ŷ_f − ŷ_u| + w_cls·H(p̂_f, p̂_u).
- Total (Eq. 18): L_gt + γ1 L_reg + γ2 L_cls + γ3 L_feat + γ4 L_fusion.
After each optimiser step the momentum models take their EMA step and the fusion factors are
pulled back towards their previous value by `mtmd_fusion_momentum`.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from affectflow.train.trainer import Hook, StepBatch, Trainer

NO_CLASS = -1


def sentiment_class(y: Tensor, mid: float = 0.0) -> Tensor:
    """0 negative, 1 neutral, 2 positive around `mid` (the scale's middle); NO_CLASS where y is
    missing."""
    cls = torch.where(y < mid, 0, torch.where(y > mid, 2, 1))
    return torch.where(torch.isfinite(y), cls, NO_CLASS)


def soft_ce(target_logits: Tensor, logits: Tensor) -> Tensor:
    """Per-sample H(softmax(target), softmax(logits)); the target carries no gradient."""
    return -(F.softmax(target_logits.detach(), -1) * F.log_softmax(logits, -1)).sum(-1)


class Queue:
    """A FIFO of the last `size` rows (features by name, and their classes)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.rows: dict[str, Tensor] = {}
        self.classes: Tensor | None = None

    def keys(self, batch: Mapping[str, Tensor], classes: Tensor) -> tuple[dict[str, Tensor], Tensor]:
        """The batch's rows followed by the queued ones (newest first)."""
        if self.classes is None:
            return dict(batch), classes
        return ({k: torch.cat([v, self.rows[k]]) for k, v in batch.items()},
                torch.cat([classes, self.classes]))

    def push(self, batch: Mapping[str, Tensor], classes: Tensor) -> None:
        """Enqueue the batch (detached), dropping the oldest rows beyond `size`."""
        if self.size <= 0:
            return
        keys, cls = self.keys({k: v.detach() for k, v in batch.items()}, classes)
        self.rows = {k: v[:self.size] for k, v in keys.items()}
        self.classes = cls[:self.size]


def contrastive(query: Tensor, keys: Tensor, query_cls: Tensor, key_cls: Tensor, tau: Tensor,
                target: Tensor | None = None) -> Tensor:
    """Per-query H(Y, softmax(q·k/τ)) with Y uniform over the same-class keys, or, with `target`
    similarities, KL(softmax(target/τ) ‖ softmax(q·k/τ)). Queries without a class give 0."""
    logits = query @ keys.T / tau
    log_v = F.log_softmax(logits, dim=-1)
    if target is not None:
        u = F.softmax(target.detach() / tau.detach(), dim=-1)
        loss = (u * (torch.log(u.clamp_min(1e-12)) - log_v)).sum(-1)
    else:
        positive = (query_cls[:, None] == key_cls[None, :]) & (key_cls[None, :] != NO_CLASS)
        y = positive.float() / positive.sum(-1, keepdim=True).clamp_min(1)
        loss = -(y * log_v).sum(-1)
    return torch.where(query_cls != NO_CLASS, loss, torch.zeros_like(loss))


class MtmdHook(Hook):
    """MTMD's losses and updates (module docstring); `parts` holds the last batch's loss terms."""

    def __init__(self, config: Any) -> None:
        self.config = config
        self.queue = Queue(config.mtmd_queue)
        self.parts: dict[str, float] = {}

    def on_train_start(self, trainer: Trainer) -> None:
        specs = trainer.prep.specs
        task = self.config.mtmd_task or next((t for t, s in specs.items() if s.kind == "regression"), "")
        if specs.get(task) is None or specs[task].kind != "regression":
            raise ValueError(f"mtmd: needs a regression task; got {self.config.mtmd_task or 'none'} "
                             f"among {sorted(specs)}")
        self.task = task
        known = trainer.prep.targets["train"][task]
        known = known[np.isfinite(known)]
        lo, hi = specs[task].value_range or ((float(known.min()), float(known.max())) if known.size else (-1.0, 1.0))
        self.mid = (lo + hi) / 2  # 0 on [-3, 3], as the paper; 3 on a 1-5 rating
        self.encoder = trainer.model.encoder
        self.queue = Queue(self.config.mtmd_queue)
        self._pending: tuple[dict[str, Tensor], Tensor] | None = None
        self._factors = self.encoder.fusion_factors.detach().clone()

    def extra_loss(self, trainer: Trainer, batch: StepBatch, outputs: Mapping[str, Tensor]) -> Tensor:
        cfg, enc, aux = self.config, self.encoder, outputs.aux  # type: ignore[attr-defined]
        y = batch.targets[self.task].float()
        ok = torch.isfinite(y)
        y0 = y.nan_to_num(0.0)
        cls = sentiment_class(y, self.mid)
        n = len(y)
        alpha = cfg.mtmd_alpha if cfg.mtmd_dmd_momentum else 0.0
        t = enc.teacher

        def mean(v: Tensor) -> Tensor:
            return (v * ok).sum() / n

        y_f = outputs[self.task].float()
        gt = mean(F.cross_entropy(aux["logits/fused"], cls.clamp_min(0), reduction="none"))
        for u in enc.unimodal:
            gt = gt + mean((aux[f"pred/{u}"] - y0).abs()
                           + F.cross_entropy(aux[f"logits/{u}"], cls.clamp_min(0), reduction="none"))
        reg = cls_loss = fusion = y.new_zeros(())
        w_reg = torch.tanh((y0 - y_f.detach()).abs()) if cfg.mtmd_hard_attention else torch.ones_like(y0)
        w_cls = (((cls - aux["logits/fused"].argmax(-1)).abs().float() * ok).sum() / ok.sum().clamp_min(1)
                 if cfg.mtmd_hard_attention else y.new_ones(()))
        for u in enc.students:
            y_u, p_u = aux[f"pred/{u}"], aux[f"logits/{u}"]
            reg = reg + (1 - alpha) * (aux[f"pred/{t}"].detach() - y_u).abs().mean() \
                + alpha * (aux[f"momentum_pred/{u}"] - y_u).abs().mean()
            cls_loss = cls_loss + (1 - alpha) * soft_ce(aux[f"logits/{t}"], p_u).mean() \
                + alpha * soft_ce(aux[f"momentum_logits/{u}"], p_u).mean()
            fusion = fusion + (w_reg * (y_f.detach() - y_u).abs()).mean() \
                + w_cls * soft_ce(aux["logits/fused"], p_u).mean()
        feat = self._feature_loss(aux, cls, alpha) if enc.students else y.new_zeros(())
        g1, g2, g3, g4 = cfg.mtmd_gammas
        self.parts = {k: float(v.detach()) for k, v in
                      (("gt", gt), ("reg", reg), ("cls", cls_loss), ("feat", feat), ("fusion", fusion))}
        return gt + g1 * reg + g2 * cls_loss + g3 * feat + g4 * fusion

    def _feature_loss(self, aux: Mapping[str, Tensor], cls: Tensor, alpha: float) -> Tensor:
        enc = self.encoder
        tau = enc.tau()
        t = enc.teacher
        norm = {k: F.normalize(v.float(), dim=-1) for k, v in aux.items()
                if k.startswith(("feat/", "momentum_feat/"))}
        batch = {f"feat/{t}": norm[f"feat/{t}"].detach()}
        for u in enc.students:
            batch[f"feat/{u}"] = norm[f"feat/{u}"].detach()
            batch[f"momentum_feat/{u}"] = norm[f"momentum_feat/{u}"]
        keys, key_cls = self.queue.keys(batch, cls)
        self._pending = (batch, cls)
        total = cls.new_zeros((), dtype=torch.float32)
        f_t = norm[f"feat/{t}"]
        for u in enc.students:
            f_u, f_um = norm[f"feat/{u}"], norm[f"momentum_feat/{u}"]
            t2u = contrastive(f_t, keys[f"feat/{u}"], cls, key_cls, tau)
            u2t = contrastive(f_u, keys[f"feat/{t}"], cls, key_cls, tau)
            loss = (1 - alpha) * 0.5 * (t2u + u2t).mean()
            if alpha > 0:
                target_t2u = f_t.detach() @ keys[f"momentum_feat/{u}"].T
                target_u2t = f_um @ keys[f"feat/{t}"].T
                kl = contrastive(f_t, keys[f"feat/{u}"], cls, key_cls, tau, target_t2u) \
                    + contrastive(f_u, keys[f"feat/{t}"], cls, key_cls, tau, target_u2t)
                loss = loss + alpha / 2 * kl.mean()
            total = total + loss
        return total

    def on_batch_end(self, trainer: Trainer, batch: StepBatch, outputs: Mapping[str, Tensor],
                     loss: Tensor) -> None:
        enc, cfg = self.encoder, self.config
        if self._pending is not None:
            self.queue.push(*self._pending)
            self._pending = None
        enc.momentum_update()
        if cfg.mtmd_fusion_factors and cfg.mtmd_fusion_momentum > 0:
            with torch.no_grad():
                eta = cfg.mtmd_fusion_momentum
                enc.fusion_factors.mul_(1 - eta).add_(self._factors, alpha=eta)
                self._factors = enc.fusion_factors.detach().clone()

    def on_epoch_end(self, trainer: Trainer, epoch: int, logs: Mapping[str, float]) -> None:
        self.factors = np.asarray(self.encoder.fusion_factors.detach().cpu()).tolist()
