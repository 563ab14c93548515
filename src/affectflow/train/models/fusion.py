"""Early / late / hybrid (EF-LF) fusion of Dai et al. (2021) over AVG, LSTM or TRANS backbones.

- EF: every modality is resampled over its own valid length to `ef_steps` steps (exact
  area-weighted average pooling, or piecewise-constant upsampling when shorter), the features are
  concatenated per step, and one backbone encodes the fused sequence. (With a single modality
  there is nothing to align, but EF still resamples, so EF and LF then differ only by that view.)
- LF: one backbone per modality, representations concatenated.
- EF-LF (hybrid): both branches are projected to `hidden` by a linear layer and combined by the
  weighted sum (⊕ in the paper's Fig. 2) ``w_ef * p_ef + w_lf * p_lf`` with ``(w_ef, w_lf) =
  softmax(a)`` for two learnable scalars ``a`` initialised equal: the weights stay positive, sum to
  1 and are readable via `fusion_weights()`.

The nine architectures ``{ef, lf, ef_lf}_{avg, lstm, trans}`` share `FusionConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor, nn

from affectflow.features.params import param
from affectflow.train.models.base import Batch, register_model
from affectflow.train.models.layers import (
    AvgBackbone,
    LstmBackbone,
    TransBackbone,
    masked_resample,
    require_modalities,
)

FUSIONS = ("ef", "lf", "ef_lf")
BACKBONES = ("avg", "lstm", "trans")


@dataclass(frozen=True)
class FusionConfig:
    """Hyper-parameters of the fusion baselines (defaults: the paper's Table 7 where it has one)."""

    hidden: int = param(64, "Hidden width of the backbones (TRANS: rounded up to a multiple of "
                            "trans_heads).", minimum=4)
    ef_steps: int = param(32, "Common number of time steps of early fusion.", minimum=1)
    dropout: float = param(0.1, "Dropout of the LSTM and TRANS backbones.", minimum=0, maximum=1)
    trans_layers: int = param(2, "TRANS: number of encoder layers.", minimum=1)
    trans_heads: int = param(5, "TRANS: attention heads.", minimum=1)
    trans_ffn: int = param(512, "TRANS: feed-forward width.", minimum=1)


def _backbone(kind: str, in_dim: int, cfg: FusionConfig) -> nn.Module:
    if kind == "avg":
        return AvgBackbone(in_dim, cfg.hidden)
    if kind == "lstm":
        return LstmBackbone(in_dim, cfg.hidden, cfg.dropout)
    return TransBackbone(in_dim, cfg.hidden, cfg.dropout, cfg.trans_layers, cfg.trans_heads,
                         cfg.trans_ffn)


class FusionEncoder(nn.Module):
    """Shared multimodal encoder: EF, LF or hybrid EF-LF over one backbone type."""

    def __init__(self, fusion: str, backbone: str, modality_dims: Mapping[str, int],
                 config: FusionConfig) -> None:
        super().__init__()
        if fusion not in FUSIONS or backbone not in BACKBONES:
            raise ValueError(f"unknown fusion/backbone {fusion!r}/{backbone!r}")
        if not modality_dims:
            raise ValueError("at least one modality is needed")
        hidden, self.ef_steps = config.hidden, config.ef_steps
        self.fusion = fusion
        self.modalities = sorted(modality_dims)
        if fusion in ("ef", "ef_lf"):
            self.ef = _backbone(backbone, sum(modality_dims[m] for m in self.modalities), config)
        if fusion in ("lf", "ef_lf"):
            self.lf = nn.ModuleDict(
                {m: _backbone(backbone, modality_dims[m], config) for m in self.modalities})
            lf_dim = sum(b.out_dim for b in self.lf.values())
        if fusion == "ef_lf":
            self.proj_ef = nn.Linear(self.ef.out_dim, hidden)
            self.proj_lf = nn.Linear(lf_dim, hidden)
            self.mix_logits = nn.Parameter(torch.zeros(2))
            self.out_dim = hidden
        else:
            self.out_dim = self.ef.out_dim if fusion == "ef" else lf_dim

    def _check(self, inputs: Batch) -> None:
        require_modalities(inputs, self.modalities)

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


def _builder(fusion: str, backbone: str):
    def build(modality_dims: Mapping[str, int], config: FusionConfig) -> FusionEncoder:
        return FusionEncoder(fusion, backbone, modality_dims, config)

    return build


_WHAT = {"ef": "early fusion", "lf": "late fusion", "ef_lf": "hybrid early + late fusion"}
for _fusion in ("ef_lf", "ef", "lf"):
    for _backbone_name in BACKBONES:
        register_model(f"{_fusion}_{_backbone_name}", FusionConfig,
                       _builder(_fusion, _backbone_name),
                       f"{_WHAT[_fusion]} over the {_backbone_name.upper()} backbone (Dai et al. 2021)")
