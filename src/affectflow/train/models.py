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
- linear: no learned encoder; the masked mean over time of each modality, concatenated, goes
  straight into one linear layer per task (no hidden layer, no dropout). With the loop's feature
  standardisation this is a multinomial logistic regression (or linear regressor) trained with
  Adam and early stopping: the classic eGeMAPS-functionals baseline when fed pooled views.

Multi-task (Eq. 1-2 of the paper): the shared encoder gives r; one linear head per task with
λ > 0 (a λ of 0 means "task not used", as in the paper's Table 9). A head's size and loss follow
the task's kind (see `affectflow.train.tasks`): categorical C logits (softmax CE or multi-label
BCE), binary 1 logit, regression 1 value. `multitask_loss` computes Σ_j λ_j · L_j with missing
labels masked.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence

from affectflow.train.tasks import (  # noqa: F401  (re-exported: the historical home)
    TaskSpec,
    multitask_loss,
    normalize_tasks,
    per_sample_losses,
)

Batch = Mapping[str, tuple[Tensor, Tensor]]

TASKS = ("emotion", "sentiment", "sarcasm")  # the historical task names (any label name works)
FUSIONS = ("ef", "lf", "ef_lf")
BACKBONES = ("avg", "lstm")
MODEL_NAMES = (*(f"{f}_{b}" for f in FUSIONS for b in BACKBONES), "linear")
DEFAULT_HPARAMS: dict[str, Any] = {"hidden": 64, "ef_steps": 32, "dropout": 0.1}


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


def masked_mean(x: Tensor, lengths: Tensor) -> Tensor:
    """(B, T, D) -> (B, D): mean over the valid steps; padding (even NaN) never leaks."""
    mask = valid_mask(lengths, x.shape[1])[..., None]
    return x.masked_fill(~mask, 0.0).sum(dim=1) / lengths[:, None].to(x.dtype)


class AvgBackbone(nn.Module):
    """Masked mean over valid steps, then Linear + ReLU to `hidden` (the paper's AVG)."""

    def __init__(self, in_dim: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.proj = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU())
        self.out_dim = hidden

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        return self.proj(masked_mean(x, lengths))


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


class PooledEncoder(nn.Module):
    """The `linear` model's "encoder": masked mean over time of each modality (sorted by name),
    concatenated; no parameters, so the task heads on top are plain linear models."""

    fusion = "linear"

    def __init__(self, modality_dims: Mapping[str, int]) -> None:
        super().__init__()
        if not modality_dims:
            raise ValueError("at least one modality is needed")
        self.modalities = sorted(modality_dims)
        self.out_dim = sum(int(modality_dims[m]) for m in self.modalities)

    def forward(self, inputs: Batch) -> Tensor:
        missing = set(self.modalities) - set(inputs)
        if missing:
            raise KeyError(f"missing modalities {sorted(missing)}; model expects {self.modalities}")
        return torch.cat([masked_mean(*inputs[m]) for m in self.modalities], dim=-1)


class MultiTaskModel(nn.Module):
    """Shared encoder + one linear head per active task. forward -> {task: output}: categorical
    (B, C) logits, binary (B,) logit, regression (B,) value."""

    def __init__(
        self, encoder: nn.Module, tasks: Mapping[str, TaskSpec], name: str = ""
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
            out[task] = y if self.tasks[task].kind == "categorical" else y.squeeze(-1)
        return out


def build_model(
    name: str,
    modality_dims: Mapping[str, int],
    tasks: Mapping[str, Any],
    hparams: Mapping[str, Any],
) -> MultiTaskModel:
    """Build ``ef_avg | lf_avg | ef_lf_avg | ef_lstm | lf_lstm | ef_lf_lstm | linear``.

    `tasks` is as in `normalize_tasks` (or already ``{name: TaskSpec}``); `hparams` may set
    ``hidden`` (64), ``ef_steps`` (32) and ``dropout`` (0.1, LSTM only); `linear` uses none.
    """
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; known: {MODEL_NAMES}")
    is_specs = bool(tasks) and all(isinstance(v, TaskSpec) for v in tasks.values())
    specs = dict(tasks) if is_specs else normalize_tasks(tasks)
    if name == "linear":
        return MultiTaskModel(PooledEncoder(modality_dims), specs, name)
    fusion, backbone = name.rsplit("_", 1)
    return MultiTaskModel(FusionEncoder(fusion, backbone, modality_dims, hparams), specs, name)
