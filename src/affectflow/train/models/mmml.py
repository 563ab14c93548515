"""MMML (Wu et al., paper 002): cross-attention fusion of encoder sequences with one loss per modality.

Each modality is either fine-tuned end to end or read as precomputed features. End to end
(`mmml_encoders: {text: roberta-base, audio: facebook/data2vec-audio-base}`, local folders or
hub ids; offline unless `mmml_allow_download`): a text encoder reads the `tokens` extractor's ids
with their attention mask; an audio encoder (wav2vec2 / HuBERT / Data2Vec-audio class) reads the
`waveform` extractor's samples (MMML: 6 s), normalised per utterance over its valid samples, with
its convolutional feature encoder frozen; its frames' padding comes from the convolution output
lengths of each utterance's sample count (the authors guess it from attention weights). Feature
input (the default, for CPU users without a hub): the modality is a precomputed encoder sequence
(text token states from `text`, speech frames from `ssl` or `whisper`). Either way the sequence
is projected to `mmml_dim` and a learned CLS token is prepended per modality. `mmml_layers` fusion blocks follow,
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
A saved end-to-end model holds the fine-tuned encoders; loading it rebuilds them from the same
folders or ids first.
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
    mmml_encoders: dict[str, str] = param({}, "MMML: modality → text or audio encoder fine-tuned end to end "
                                              "(local folder, packaged alias or model id); the others "
                                              "read precomputed features.")
    mmml_allow_download: bool = param(False, "MMML: let transformers fetch the encoders from a hub.")
    mmml_normalise_audio: bool = param(True, "MMML: zero-mean unit-variance samples per utterance "
                                             "before an audio encoder.")
    unimodal: list[str] = unimodal_field()


class PretrainedEncoder(nn.Module):
    """A Hugging Face text or audio encoder over raw inputs: (B, T, 1) ids or samples → (states,
    valid-frame lengths). Audio: the convolutional feature encoder is frozen."""

    def __init__(self, name: str, config: MmmlConfig) -> None:
        super().__init__()
        from transformers import AutoModel

        from affectflow.features.extractors.text import model_path

        try:
            self.net = AutoModel.from_pretrained(model_path(name), local_files_only=not config.mmml_allow_download)
        except OSError as error:
            raise ValueError(f"hparams.mmml_encoders: cannot load {name!r} ({error}); pass a local "
                             "folder, or mmml_allow_download: true with a hub") from error
        self.audio = self.net.main_input_name == "input_values"
        if self.audio and hasattr(self.net, "freeze_feature_encoder"):
            self.net.freeze_feature_encoder()
        self.normalise = config.mmml_normalise_audio
        self.out_dim = int(self.net.config.hidden_size)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
        mask = valid_mask(lengths, x.shape[1])
        values = x[..., 0].masked_fill(~mask, 0.0)
        if not self.audio:
            states = self.net(input_ids=values.round().long(), attention_mask=mask.long()).last_hidden_state
            return states, lengths
        if self.normalise:
            n = lengths.clamp_min(1)[:, None].to(values.dtype)
            mean = values.sum(1, keepdim=True) / n
            var = ((values - mean).masked_fill(~mask, 0.0) ** 2).sum(1, keepdim=True) / n
            values = ((values - mean) / torch.sqrt(var + 1e-7)).masked_fill(~mask, 0.0)
        layer_norm = getattr(self.net.config, "feat_extract_norm", "layer") == "layer"
        states = self.net(input_values=values,
                          attention_mask=mask.long() if layer_norm else None).last_hidden_state
        frames = self.net._get_feat_extract_output_lengths(lengths).clamp(1, states.shape[1])
        return states, frames


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
        unknown = sorted(set(config.mmml_encoders) - set(self.names))
        if unknown:
            raise ValueError(f"mmml_encoders: {unknown} are not modalities of the model ({self.names})")
        self.encoders = nn.ModuleDict({m: PretrainedEncoder(name, config)
                                       for m, name in config.mmml_encoders.items()})
        widths = {m: self.encoders[m].out_dim if m in self.encoders else modality_dims[m] for m in self.names}
        self.project = nn.ModuleDict({m: nn.Linear(widths[m], d) for m in self.names})
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
            if m in self.encoders:
                x, lengths = self.encoders[m](x, lengths)
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
