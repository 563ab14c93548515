"""MMML (Wu et al., paper 002): cross-attention fusion of encoder sequences with one loss per modality.

This is the feature-input variant: each modality arrives as a precomputed encoder sequence (text
token states from the `text` extractor, speech-encoder frames from `ssl` or `whisper`), projected
to `mmml_dim`; a learned CLS token is prepended per modality. `mmml_layers` fusion blocks follow,
each, for every modality m: cross-attention with m's sequence as queries and the other modalities'
sequences (concatenated along time) as keys and values → self-attention over m's sequence →
position-wise feed-forward, each sub-layer residual with post-LayerNorm, padded keys masked. The
three fusion variants of the paper's Table 6 (`mmml_variant`):
- ``fused``: the fused CLS outputs, concatenated, into three fully connected layers;
- ``concat``: each modality's fused CLS concatenated with its original (projected) CLS, through a
  linear layer, then as ``fused``;
- ``transformer``: original and fused hidden states merged along the feature dimension, a
  transformer encoder layer over them, the mean over valid steps as the modality's feature.
Multi-loss: one head per modality (`unimodal`) on its own feature, predicting the fused target
with the same loss (L1) weighted by `mmml_unimodal_weight` (`aux` ``pred/<m>``, trained by
`affectflow.train.unimodal_labels.GroundTruthUnimodalHook`).

Defaults: the paper's fusion (5 blocks, width 1024, 16 heads, FFN 4096, dropout 0.1); train with
AdamW-like weight decay and early stopping 8 (their lr 5e-6 fine-tunes the encoders; on features,
1e-4 is the better start). Their optimiser is re-created every epoch, ours lives for the run.
End-to-end training of the text and audio encoders themselves is not part of this variant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from affectflow.features.params import param
from affectflow.train.models.base import Batch, register_model, unimodal_field, unimodal_names
from affectflow.train.models.layers import masked_mean, require_modalities, valid_mask


@dataclass(frozen=True)
class MmmlConfig:
    """MMML's fusion hyper-parameters (defaults: the paper's)."""

    mmml_dim: int = param(1024, "MMML: fusion width.", minimum=1)
    mmml_heads: int = param(16, "MMML: attention heads.", minimum=1)
    mmml_ffn: int = param(4096, "MMML: feed-forward width.", minimum=1)
    mmml_layers: int = param(5, "MMML: fusion blocks (cross-attention → self-attention → FFN).", minimum=1)
    mmml_dropout: float = param(0.1, "MMML: dropout.", minimum=0, maximum=1)
    mmml_variant: str = param("fused", "MMML: fused (fused features only), concat or transformer "
                                       "(the paper's Table 6).", enum=["fused", "concat", "transformer"])
    mmml_unimodal_weight: float = param(1.0, "MMML: weight of each modality's own loss (0: single loss).",
                                        minimum=0)
    unimodal: list[str] = unimodal_field()


class FusionBlock(nn.Module):
    """Cross-attention (queries: this modality) → self-attention → FFN, post-LN residuals."""

    def __init__(self, config: MmmlConfig) -> None:
        super().__init__()
        d, h, p = config.mmml_dim, config.mmml_heads, config.mmml_dropout
        self.cross = nn.MultiheadAttention(d, h, dropout=p, batch_first=True)
        self.self_attention = nn.MultiheadAttention(d, h, dropout=p, batch_first=True)
        self.ffn = nn.Sequential(nn.Linear(d, config.mmml_ffn), nn.ReLU(), nn.Dropout(p),
                                 nn.Linear(config.mmml_ffn, d))
        self.norms = nn.ModuleList(nn.LayerNorm(d) for _ in range(3))
        self.dropout = nn.Dropout(p)

    def forward(self, x: Tensor, pad: Tensor, other: Tensor | None, other_pad: Tensor | None) -> Tensor:
        if other is not None:
            y, _ = self.cross(x, other, other, key_padding_mask=other_pad, need_weights=False)
            x = self.norms[0](x + self.dropout(y))
        y, _ = self.self_attention(x, x, x, key_padding_mask=pad, need_weights=False)
        x = self.norms[1](x + self.dropout(y))
        return self.norms[2](x + self.dropout(self.ffn(x)))


class MmmlEncoder(nn.Module):
    """Returns (the fused representation, aux ``pred/<m>``) (see the module doc)."""

    def __init__(self, modality_dims: Mapping[str, int], config: MmmlConfig) -> None:
        super().__init__()
        self.names, self.config = sorted(modality_dims), config
        self.unimodal = unimodal_names(config.unimodal, self.names)
        d = config.mmml_dim
        self.project = nn.ModuleDict({m: nn.Linear(modality_dims[m], d) for m in self.names})
        self.cls = nn.Parameter(torch.randn(len(self.names), d) * 0.02)
        self.blocks = nn.ModuleList(nn.ModuleDict({m: FusionBlock(config) for m in self.names})
                                    for _ in range(config.mmml_layers))
        if config.mmml_variant == "concat":
            self.merge = nn.ModuleDict({m: nn.Linear(2 * d, d) for m in self.names})
        elif config.mmml_variant == "transformer":
            self.merge = nn.ModuleDict({m: nn.TransformerEncoderLayer(
                2 * d, config.mmml_heads, config.mmml_ffn, config.mmml_dropout, batch_first=True)
                for m in self.names})
        width = 2 * d if config.mmml_variant == "transformer" else d
        p = config.mmml_dropout
        self.head_layers = nn.Sequential(nn.Linear(width * len(self.names), d), nn.ReLU(), nn.Dropout(p),
                                         nn.Linear(d, d // 2 or 1), nn.ReLU(), nn.Dropout(p))
        self.unimodal_heads = nn.ModuleDict({m: nn.Linear(width, 1) for m in self.unimodal})
        self.out_dim = d // 2 or 1  # the task heads are the third fully connected layer

    def forward(self, inputs: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        require_modalities(inputs, self.names)
        seq, pad = {}, {}
        for k, m in enumerate(self.names):
            x, lengths = inputs[m]
            valid = valid_mask(lengths, x.shape[1])
            h = self.project[m](x.masked_fill(~valid[..., None], 0.0))
            seq[m] = torch.cat([self.cls[k].expand(h.shape[0], 1, -1), h], dim=1)
            pad[m] = ~torch.cat([valid.new_ones(h.shape[0], 1), valid], dim=1)
        original = dict(seq)
        for block in self.blocks:
            new = {}
            for m in self.names:
                others = [o for o in self.names if o != m]
                other = torch.cat([seq[o] for o in others], 1) if others else None
                other_pad = torch.cat([pad[o] for o in others], 1) if others else None
                new[m] = block[m](seq[m], pad[m], other, other_pad)
            seq = new
        feats = {m: self._feature(m, seq[m], original[m], pad[m]) for m in self.names}
        aux = {f"pred/{m}": self.unimodal_heads[m](feats[m]).squeeze(-1) for m in self.unimodal}
        return self.head_layers(torch.cat([feats[m] for m in self.names], -1)), aux

    def _feature(self, m: str, fused: Tensor, original: Tensor, pad: Tensor) -> Tensor:
        variant = self.config.mmml_variant
        if variant == "fused":
            return fused[:, 0]
        if variant == "concat":
            return self.merge[m](torch.cat([fused[:, 0], original[:, 0]], -1))
        merged = self.merge[m](torch.cat([fused, original], -1), src_key_padding_mask=pad)
        return masked_mean(merged, (~pad).sum(1))


def _hooks(config: MmmlConfig) -> list[Any]:
    from affectflow.train.unimodal_labels import GroundTruthUnimodalHook

    return [GroundTruthUnimodalHook(config.mmml_unimodal_weight)]


register_model("mmml", MmmlConfig, MmmlEncoder,
               "MMML: cross-attention fusion of encoder sequences with one loss per modality (paper 002)",
               hooks=_hooks)
