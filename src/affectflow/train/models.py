"""Early / late / hybrid (EF-LF) fusion baselines of Dai et al. (2021) with AVG and LSTM backbones.

Input to every model: ``{modality: (x, lengths)}`` with x a padded FloatTensor (B, T_m, D_m) and
lengths a LongTensor (B,) of valid steps (>= 1); an utterance-level vector comes as T_m = 1.
Padding never influences the output: AVG masks it out, LSTM packs the sequences and EF
resampling gives padded steps zero weight.

- EF: every modality is resampled over its own valid length to `ef_steps` steps (exact
  area-weighted average pooling, or piecewise-constant upsampling when shorter), the features are
  concatenated per step, and one backbone encodes the fused sequence. (With a single modality
  there is nothing to align, but EF still resamples, so EF and LF then differ only by that view.)
- LF: one backbone per modality, representations concatenated.
- EF-LF (hybrid): both branches are projected to `hidden` by a linear layer and combined by the
  weighted sum (⊕ in the paper's Fig. 2) ``w_ef * p_ef + w_lf * p_lf`` with ``(w_ef, w_lf) =
  softmax(a)`` for two learnable scalars ``a`` initialised equal: the weights stay positive, sum to
  1 and are readable via `fusion_weights()`.

Multi-task (Eq. 1-2 of the paper): the shared encoder gives r; one linear head per task with
λ > 0 (a λ of 0 means "task not used", as in the paper's Table 9): ``emotion`` (C logits,
multi-label BCE with per-class ``pos_weight``), ``sentiment`` (1 value, L1 or MSE regression),
``sarcasm`` (1 logit, BCE). `multitask_loss` computes Σ_j λ_j · L_j with missing labels masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

Batch = Mapping[str, tuple[Tensor, Tensor]]

TASKS = ("emotion", "sentiment", "sarcasm")
FUSIONS = ("ef", "lf", "ef_lf")
BACKBONES = ("avg", "lstm")
MODEL_NAMES = tuple(f"{f}_{b}" for f in FUSIONS for b in BACKBONES)
DEFAULT_HPARAMS: dict[str, Any] = {"hidden": 64, "ef_steps": 32, "dropout": 0.1}


@dataclass(frozen=True)
class TaskSpec:
    """One task as the model and the loss see it: loss weight λ, outputs, regression loss."""

    name: str
    weight: float
    n_outputs: int = 1
    loss: str = "bce"  # "bce" for emotion/sarcasm; "l1" or "mse" for sentiment


def normalize_tasks(
    tasks: Mapping[str, Any], n_emotion_classes: int | None = None
) -> dict[str, TaskSpec]:
    """Turn the config's task mapping into `TaskSpec`s, keeping only tasks with λ > 0.

    Each value is either a number (λ) or a dict with ``weight`` (alias ``lambda``, default 1.0),
    for emotion ``n_classes`` (or ``classes``, a list) unless `n_emotion_classes` is given, and for
    sentiment ``loss`` ("l1", default, or "mse").
    """
    specs: dict[str, TaskSpec] = {}
    for name, value in tasks.items():
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; known: {TASKS}")
        is_number = isinstance(value, (int, float))
        cfg: Mapping[str, Any] = {"weight": value} if is_number else value or {}
        weight = float(cfg.get("weight", cfg.get("lambda", 1.0)))
        if weight < 0:
            raise ValueError(f"task {name!r}: λ must be >= 0, got {weight}")
        if weight == 0:
            continue
        if name == "emotion":
            n = n_emotion_classes or cfg.get("n_classes") or len(cfg.get("classes", ()))
            if not n:
                raise ValueError("task 'emotion' needs n_classes (or classes)")
            specs[name] = TaskSpec(name, weight, int(n), "bce")
        elif name == "sentiment":
            loss = str(cfg.get("loss", "l1")).lower()
            if loss not in ("l1", "mse"):
                raise ValueError(f"sentiment loss must be 'l1' or 'mse', got {loss!r}")
            specs[name] = TaskSpec(name, weight, 1, loss)
        else:
            specs[name] = TaskSpec(name, weight, 1, "bce")
    if not specs:
        raise ValueError("no task with λ > 0")
    return specs


def valid_mask(lengths: Tensor, max_len: int) -> Tensor:
    """(B, T) bool mask, True on the valid steps."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def masked_resample(x: Tensor, lengths: Tensor, steps: int) -> Tensor:
    """Resample each sequence's valid part to `steps` steps: (B, T, D) -> (B, steps, D).

    Output step k averages the input over the fractional interval [k·L/S, (k+1)·L/S) of the valid
    length L, each frame weighted by its overlap (exact area-weighted pooling; with L < S a step
    copies or blends the frames under it). Padded frames get weight 0 and are zeroed first, so
    their content (even inf/NaN) never leaks. The mean over output steps equals the masked mean.
    """
    t_max = x.shape[1]
    x = x.masked_fill(~valid_mask(lengths, t_max)[..., None], 0.0)
    span = lengths.to(x.dtype)[:, None, None] / steps  # (B, 1, 1) input frames per output step
    k = torch.arange(steps, device=x.device, dtype=x.dtype)[None, :, None]
    t = torch.arange(t_max, device=x.device, dtype=x.dtype)[None, None, :]
    start, end = k * span, (k + 1) * span
    overlap = (torch.minimum(t + 1, end) - torch.maximum(t, start)).clamp_min(0.0)
    return torch.bmm(overlap / span, x)


class AvgBackbone(nn.Module):
    """Masked mean over valid steps, then Linear + ReLU to `hidden` (the paper's AVG)."""

    def __init__(self, in_dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
        self.out_dim = hidden

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        mask = valid_mask(lengths, x.shape[1])[..., None]
        mean = x.masked_fill(~mask, 0.0).sum(dim=1) / lengths[:, None].to(x.dtype)
        return self.proj(mean)


class LstmBackbone(nn.Module):
    """Bidirectional single-layer LSTM over packed sequences; the final hidden state of each
    direction (forward: last valid step, backward: first step after reading back from the last
    valid one) concatenated, then dropout."""

    def __init__(self, in_dim: int, hidden: int, dropout: float = 0.1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(in_dim, hidden, num_layers=1, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = 2 * hidden

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)  # h_n: (2, B, hidden), already in input batch order
        return self.dropout(torch.cat([h_n[0], h_n[1]], dim=-1))


BACKBONE_CLASSES: dict[str, type[nn.Module]] = {"avg": AvgBackbone, "lstm": LstmBackbone}


class FusionEncoder(nn.Module):
    """Shared multimodal encoder: EF, LF or hybrid EF-LF over one backbone type."""

    def __init__(
        self,
        fusion: str,
        backbone: str,
        modality_dims: Mapping[str, int],
        hparams: Mapping[str, Any],
    ) -> None:
        super().__init__()
        if fusion not in FUSIONS or backbone not in BACKBONES:
            raise ValueError(f"unknown fusion/backbone {fusion!r}/{backbone!r}")
        if not modality_dims:
            raise ValueError("at least one modality is needed")
        hp = {**DEFAULT_HPARAMS, **hparams}
        hidden, self.ef_steps = int(hp["hidden"]), int(hp["ef_steps"])
        self.fusion = fusion
        self.modalities = sorted(modality_dims)
        make = BACKBONE_CLASSES[backbone]
        dropout = float(hp["dropout"])
        if fusion in ("ef", "ef_lf"):
            self.ef = make(sum(modality_dims[m] for m in self.modalities), hidden, dropout)
        if fusion in ("lf", "ef_lf"):
            self.lf = nn.ModuleDict(
                {m: make(modality_dims[m], hidden, dropout) for m in self.modalities}
            )
            lf_dim = sum(b.out_dim for b in self.lf.values())
        if fusion == "ef_lf":
            self.proj_ef = nn.Linear(self.ef.out_dim, hidden)
            self.proj_lf = nn.Linear(lf_dim, hidden)
            self.mix_logits = nn.Parameter(torch.zeros(2))
            self.out_dim = hidden
        else:
            self.out_dim = self.ef.out_dim if fusion == "ef" else lf_dim

    def _check(self, inputs: Batch) -> None:
        missing = set(self.modalities) - set(inputs)
        if missing:
            raise KeyError(f"missing modalities {sorted(missing)}; model expects {self.modalities}")

    def encode_ef(self, inputs: Batch) -> Tensor:
        """Resample, concatenate per step, encode the fused fixed-length sequence."""
        seqs = [masked_resample(inputs[m][0], inputs[m][1], self.ef_steps) for m in self.modalities]
        fused = torch.cat(seqs, dim=-1)
        lengths = fused.new_full((fused.shape[0],), self.ef_steps, dtype=torch.long)
        return self.ef(fused, lengths)

    def encode_lf(self, inputs: Batch) -> Tensor:
        """Encode each modality on its own, concatenate the representations."""
        return torch.cat([self.lf[m](*inputs[m]) for m in self.modalities], dim=-1)

    def fusion_weights(self) -> Tensor:
        """(w_ef, w_lf) of the hybrid weighted sum (softmax of the learnable scalars)."""
        return torch.softmax(self.mix_logits, dim=0)

    def forward(self, inputs: Batch) -> Tensor:
        self._check(inputs)
        if self.fusion == "ef":
            return self.encode_ef(inputs)
        if self.fusion == "lf":
            return self.encode_lf(inputs)
        w = self.fusion_weights()
        ef, lf = self.proj_ef(self.encode_ef(inputs)), self.proj_lf(self.encode_lf(inputs))
        return w[0] * ef + w[1] * lf


class MultiTaskModel(nn.Module):
    """Shared `FusionEncoder` + one linear head per active task. forward -> {task: output}:
    emotion (B, C) logits, sentiment (B,) score, sarcasm (B,) logit."""

    def __init__(
        self, encoder: FusionEncoder, tasks: Mapping[str, TaskSpec], name: str = ""
    ) -> None:
        super().__init__()
        self.name = name
        self.encoder = encoder
        self.tasks = dict(tasks)
        self.heads = nn.ModuleDict(
            {t: nn.Linear(encoder.out_dim, s.n_outputs) for t, s in self.tasks.items()}
        )

    def forward(self, inputs: Batch) -> dict[str, Tensor]:
        r = self.encoder(inputs)
        out = {}
        for task, head in self.heads.items():
            y = head(r)
            out[task] = y if task == "emotion" else y.squeeze(-1)
        return out


def build_model(
    name: str,
    modality_dims: Mapping[str, int],
    tasks: Mapping[str, Any],
    hparams: Mapping[str, Any],
) -> MultiTaskModel:
    """Build ``ef_avg | lf_avg | ef_lf_avg | ef_lstm | lf_lstm | ef_lf_lstm``.

    `tasks` is as in `normalize_tasks` (or already ``{name: TaskSpec}``); `hparams` may set
    ``hidden`` (64), ``ef_steps`` (32) and ``dropout`` (0.1, LSTM only).
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; known: {MODEL_NAMES}")
    fusion, backbone = name.rsplit("_", 1)
    is_specs = bool(tasks) and all(isinstance(v, TaskSpec) for v in tasks.values())
    specs = dict(tasks) if is_specs else normalize_tasks(tasks)
    return MultiTaskModel(FusionEncoder(fusion, backbone, modality_dims, hparams), specs, name)


def per_sample_losses(
    outputs: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
    tasks: Mapping[str, TaskSpec],
    emotion_pos_weight: Tensor | None = None,
) -> dict[str, tuple[Tensor, Tensor]]:
    """{task: (loss per sample (B,), labelled mask (B,))}; unlabelled samples have loss exactly 0.

    Missing labels are NaN (emotion: a row of NaN in the (B, C) multi-hot target). Targets are
    sanitised before the loss so no NaN reaches the graph (NaN·0 would still be NaN).
    Emotion: BCE-with-logits (with `emotion_pos_weight`) averaged over the C classes, so a fully
    labelled batch gives exactly PyTorch's default ``BCEWithLogitsLoss(pos_weight=...)`` (mean over
    B·C), which is the scale the paper's λ values (Table 9) were tuned on.
    """
    result = {}
    for task, spec in tasks.items():
        if task not in targets:
            continue
        out, y = outputs[task], targets[task].to(outputs[task].dtype)
        labelled = ~torch.isnan(y) if y.dim() == 1 else ~torch.isnan(y).any(dim=-1)
        y_safe = torch.nan_to_num(y, nan=0.0)
        if task == "emotion":
            loss = nn.functional.binary_cross_entropy_with_logits(
                out, y_safe, pos_weight=emotion_pos_weight, reduction="none"
            ).mean(dim=-1)
        elif spec.loss == "bce":
            loss = nn.functional.binary_cross_entropy_with_logits(out, y_safe, reduction="none")
        elif spec.loss == "mse":
            loss = nn.functional.mse_loss(out, y_safe, reduction="none")
        else:
            loss = nn.functional.l1_loss(out, y_safe, reduction="none")
        result[task] = (torch.where(labelled, loss, torch.zeros_like(loss)), labelled)
    return result


def multitask_loss(
    outputs: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
    tasks: Mapping[str, TaskSpec],
    emotion_pos_weight: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Total loss Σ_j λ_j · (Σ_i l_ij) / B (Eq. 2 of the paper, normalised by batch size B).

    Dividing the per-task sum by B, not by the number of labelled samples, gives every labelled
    sample the same weight λ_j / B whatever the rest of the batch holds: an unlabelled sample
    contributes nothing and a batch with one sarcasm label does not blow that label up.
    Returns (total, {task: unweighted Σ_i l_ij / B}).
    """
    losses = per_sample_losses(outputs, targets, tasks, emotion_pos_weight)
    any_out = next(iter(outputs.values()))
    total = any_out.new_zeros(())
    parts = {}
    for task, (loss, _) in losses.items():
        parts[task] = loss.sum() / loss.shape[0]
        total = total + tasks[task].weight * parts[task]
    return total, parts
