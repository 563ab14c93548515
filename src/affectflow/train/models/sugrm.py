"""SUGRM (Hwang & Kim, paper 001): recalibrated modalities, a sparse phased transformer, and unimodal
subtasks trained on self-generated labels.

Per utterance: each modality's sequence (padding zeroed) is recalibrated by the MRM
(`affectflow.train.models.spt.Recalibration`), projected to the SPT width and encoded by the SPT
into one vector F_s per modality; the fused representation F*_m = ReLU(W[F_t; F_a; F_v]) lies in a
`sugrm_common`-wide common space and every task head reads it (the primary sentiment head is ŷ_m
= W₂F*_m). Each modality with a unimodal subtask (`unimodal`) is projected into the same space,
F*_s = ReLU(W_s F_s), with its own head ŷ_s. The unimodal labels and losses are the trainer hook
`affectflow.train.unimodal_labels.UnimodalLabelHook` (method `ulgm`: SUGRM's own, or Self-MM's).

Ablations of the paper's Tables 3-4 as switches: `unimodal` (M, M+T, M+A, ...), `sugrm_mrm`
(MRM removed), `sugrm_encoder` (spt; te, the dense transformer; lstm), `ulgm` (sugrm, selfmm).
Defaults: the authors' MOSI settings (RESEARCH-NOTES; Table 7): width 32, 8 heads, 4 layers,
dropouts 0.3, stride 5, windows 17/9/7; train with batch_size 32, accumulate 4 and lr 1e-2
(their "LR for others"; a fine-tuned BERT is not part of this model: text arrives as features).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from affectflow.features.params import param
from affectflow.train.models.base import (
    Batch,
    register_model,
    ulgm_task_field,
    unimodal_field,
    unimodal_names,
)
from affectflow.train.models.layers import LstmBackbone, require_modalities, valid_mask
from affectflow.train.models.spt import Recalibration, SparsePhasedTransformer


@dataclass(frozen=True)
class SugrmConfig:
    """SUGRM's hyper-parameters (defaults: the authors' MOSI settings)."""

    sugrm_dim: int = param(32, "SUGRM: width of the SPT (embed size).", minimum=1)
    sugrm_heads: int = param(8, "SUGRM: attention heads of the SPT (MOSEI: 4).", minimum=1)
    sugrm_layers: int = param(4, "SUGRM: SPT layers (input → cross → self attention each).", minimum=1)
    sugrm_stride: int = param(5, "SUGRM: input steps per SPT hidden state.", minimum=1)
    sugrm_windows: list[int] = param([17, 9, 7], "SUGRM: attention windows of the input, cross and "
                                                 "self attention (0: every valid step).",
                                     minItems=3, maxItems=3)
    sugrm_dropout: float = param(0.3, "SUGRM: attention, ReLU and residual dropout of the SPT.",
                                 minimum=0, maximum=1)
    sugrm_embed_dropout: float = param(0.3, "SUGRM: embedding dropout of the SPT.", minimum=0, maximum=1)
    sugrm_out_dropout: float = param(0.3, "SUGRM: dropout before the fused and unimodal projections.",
                                     minimum=0, maximum=1)
    sugrm_common: int = param(32, "SUGRM: width of the common space of fused and unimodal "
                                  "representations.", minimum=1)
    sugrm_mrm: bool = param(True, "SUGRM: recalibrate the modalities with the MRM (false: the "
                                  "ablation without it).")
    sugrm_encoder: str = param("spt", "SUGRM: sequence encoder: spt, te (dense transformer) or "
                                      "lstm (the Table 4 ablations).", enum=["spt", "te", "lstm"])
    ulgm: str = param("sugrm", "Unimodal label generation: sugrm (paper 001) or selfmm (Self-MM's "
                               "class-centre rule).", enum=["sugrm", "selfmm"])
    ulgm_task: str = ulgm_task_field()
    unimodal: list[str] = unimodal_field()


class SugrmEncoder(nn.Module):
    """Returns (F*_m, aux) with aux ``feat/fused``, ``feat/<s>`` and ``pred/<s>`` (module doc)."""

    def __init__(self, modality_dims: Mapping[str, int], config: SugrmConfig) -> None:
        super().__init__()
        self.names = sorted(modality_dims)
        self.unimodal = unimodal_names(config.unimodal, self.names)
        self.config = config
        dim, common = config.sugrm_dim, config.sugrm_common
        self.mrm = Recalibration(modality_dims) if config.sugrm_mrm else None
        if config.sugrm_encoder == "lstm":
            self.lstm = nn.ModuleDict({m: LstmBackbone(modality_dims[m], max(dim // 2, 1), config.sugrm_dropout)
                                       for m in self.names})
            width = 2 * max(dim // 2, 1)
        else:
            self.project = nn.ModuleDict({m: nn.Linear(modality_dims[m], dim) for m in self.names})
            windows = config.sugrm_windows if config.sugrm_encoder == "spt" else [0, 0, 0]
            self.spt = SparsePhasedTransformer(self.names, dim, config.sugrm_heads, config.sugrm_layers,
                                               config.sugrm_stride, windows, config.sugrm_dropout,
                                               config.sugrm_embed_dropout)
            width = dim
        self.dropout = nn.Dropout(config.sugrm_out_dropout)
        self.fuse = nn.Linear(width * len(self.names), common)
        self.to_common = nn.ModuleDict({m: nn.Linear(width, common) for m in self.unimodal})
        self.unimodal_heads = nn.ModuleDict({m: nn.Linear(common, 1) for m in self.unimodal})
        self.out_dim = common

    def encode(self, inputs: Batch) -> dict[str, Tensor]:
        """F_s per modality: (B, width)."""
        require_modalities(inputs, self.names)
        clean = {m: (x.masked_fill(~valid_mask(n, x.shape[1])[..., None], 0.0), n)
                 for m, (x, n) in ((m, inputs[m]) for m in self.names)}
        if self.mrm is not None:
            clean = self.mrm(clean)
        if self.config.sugrm_encoder == "lstm":
            return {m: self.lstm[m](*clean[m]) for m in self.names}
        return self.spt({m: (self.project[m](x), n) for m, (x, n) in clean.items()})

    def forward(self, inputs: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        reps = self.encode(inputs)
        fused = torch.relu(self.fuse(self.dropout(torch.cat([reps[m] for m in self.names], dim=-1))))
        aux = {"feat/fused": fused}
        for m in self.unimodal:
            aux[f"feat/{m}"] = torch.relu(self.to_common[m](self.dropout(reps[m])))
            aux[f"pred/{m}"] = self.unimodal_heads[m](aux[f"feat/{m}"]).squeeze(-1)
        return fused, aux


def _hooks(config: SugrmConfig) -> list[Any]:
    from affectflow.train.unimodal_labels import UnimodalLabelHook

    return [UnimodalLabelHook(config.ulgm, config.ulgm_task)]


register_model("sugrm", SugrmConfig, SugrmEncoder,
               "SUGRM: MRM + sparse phased transformer + self-generated unimodal labels (paper 001)",
               hooks=_hooks)
