"""MulT: the Multimodal Transformer for unaligned sequences (Tsai et al., ACL 2019).

Each modality keeps its own length and frame rate; nothing is resampled. Per modality m of the
M modalities (ordered as `sorted(modality_dims)`):

1. Temporal convolution: a bias-free Conv1d of kernel `mult_conv_kernel` (per modality:
   `mult_conv_kernels`) projects (B, T_m, D_m) to the common width d = `mult_dim`, so every
   step sees its neighbours. Padded frames are zeroed before the conv (their content, even
   NaN, never enters any arithmetic) and its outputs at padded steps are zeroed again.
2. Crossmodal transformers, one per ordered pair source → target (M·(M−1) of them): every
   transformer first scales its inputs by sqrt(width) and adds sinusoidal positions (Vaswani et
   al. 2017: sin of position·10000^(−i/h) in the first h = width/2 channels, cos in the rest),
   then `mult_layers` pre-LayerNorm blocks
   ``z = z + Attn(LN(z), LN'(x_src))``, ``z = z + FFN(LN''(z))`` where the target's steps are the
   queries and the source's steps the keys/values; a final LayerNorm. The source's padded steps
   are masked as keys; a padded query step only ever produces its own (ignored) output, since
   queries, residuals and the feed-forward act step-wise, so it never reaches a valid step.
3. The M−1 crossmodal outputs into each target (all of the target's length) are concatenated to
   width (M−1)·d and passed through a self-attention transformer of the same design (padded
   steps masked as keys); its output at the target's last valid step is kept, as in the paper
   ("the last elements of the sequence models are extracted").
4. The M last steps are concatenated (width M·(M−1)·d, `out_dim`) and refined by the residual
   projection ``r + W2·dropout(ReLU(W1·r))``; the task heads (`MultiTaskModel`) read r.

With one modality there is no pair, so MulT degenerates to the temporal conv + a self-attention
transformer over that modality (width d), then the same last step and residual projection.

Defaults: Table 5 of the paper, CMU-MOSEI column: d = 40, D = 4 crossmodal blocks per
transformer, 8 heads (MOSI: 10), temporal kernel 3 (language "1 or 3", vision and acoustic 3;
IEMOCAP uses 5 for acoustic: `mult_conv_kernels`), crossmodal attention block dropout 0.1,
output dropout 0.1, embedding dropout 0.3 (the paper's "textual embedding dropout"). The
residual/feed-forward dropout (0.1) is the authors' code default (not in the table).

What differs from the authors' code (yaohungt/Multimodal-Transformer), read for details only:
- no causal-style attention mask (the code's default `attn_mask`, not in the paper): every
  query attends every valid key; padding masks are added instead (the code has none, its data
  being zero-padded to fixed lengths);
- the embedding dropout acts on every transformer's input after the positions are added, for
  every modality (modality names are arbitrary here), not also on the raw text features;
- queries and keys have their own LayerNorms (the code reuses one); the residual adds the
  un-normalised stream (the code's pre-LN form; the paper's eq. 4 writes ``+ LN(Z)``);
- one `mult_layers` for the crossmodal and the self-attention transformers (the code uses
  max(layers, 3) for the latter), one attention dropout for every target (the code has three);
- positions count from 0 (the code's fairseq embedding counts from 1 and treats a step whose
  first feature is exactly 0 as padding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor, nn

from affectflow.features.params import param
from affectflow.train.models.base import Batch, register_model
from affectflow.train.models.layers import require_modalities, valid_mask


@dataclass(frozen=True)
class MultConfig:
    """Hyper-parameters of MulT (defaults: the paper's Table 5, CMU-MOSEI; see the module)."""

    mult_dim: int = param(40, "MulT: common width d of every modality after the temporal conv "
                              "(a multiple of mult_heads).", minimum=1)
    mult_heads: int = param(8, "MulT: attention heads of every transformer.", minimum=1)
    mult_layers: int = param(4, "MulT: blocks per crossmodal and per self-attention transformer.",
                             minimum=1)
    mult_conv_kernel: int = param(3, "MulT: temporal convolution kernel size (every modality "
                                     "not in mult_conv_kernels).", minimum=1)
    mult_conv_kernels: dict[str, int] = param({}, "MulT: per-modality temporal kernel sizes, "
                                                  "e.g. {text: 1}.")
    mult_embed_dropout: float = param(0.3, "MulT: dropout on every transformer's input after "
                                           "the positions are added.", minimum=0, maximum=1)
    mult_attn_dropout: float = param(0.1, "MulT: dropout on the attention weights.", minimum=0,
                                     maximum=1)
    mult_dropout: float = param(0.1, "MulT: dropout on the residual branches and inside the "
                                     "feed-forward layers.", minimum=0, maximum=1)
    mult_out_dropout: float = param(0.1, "MulT: dropout inside the final residual projection.",
                                    minimum=0, maximum=1)


def sinusoid(steps: int, dim: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """(steps, dim) sinusoidal positions: the first half sin, the second cos (Vaswani et al.)."""
    half = (dim + 1) // 2
    freq = torch.exp(torch.arange(half, device=device, dtype=dtype) * (-math.log(10000.0) / half))
    angle = torch.arange(steps, device=device, dtype=dtype)[:, None] * freq[None, :]
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)[:, :dim]


class Block(nn.Module):
    """One pre-LayerNorm transformer block; crossmodal when a source sequence is given."""

    def __init__(self, dim: int, heads: int, cfg: MultConfig) -> None:
        super().__init__()
        self.norm_query = nn.LayerNorm(dim)
        self.norm_source = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=cfg.mult_attn_dropout,
                                               batch_first=True)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Dropout(cfg.mult_dropout),
                                 nn.Linear(4 * dim, dim))
        self.dropout = nn.Dropout(cfg.mult_dropout)

    def forward(self, z: Tensor, source: Tensor | None, key_pad: Tensor) -> Tensor:
        query = self.norm_query(z)
        keys = query if source is None else self.norm_source(source)
        attended, _ = self.attention(query, keys, keys, key_padding_mask=key_pad, need_weights=False)
        z = z + self.dropout(attended)
        return z + self.dropout(self.ffn(self.norm_ffn(z)))


class Transformer(nn.Module):
    """Scaled input + positions + dropout, `mult_layers` blocks, a final LayerNorm.

    forward(z, z_lengths, source=None, source_lengths=None) -> (B, T_z, dim): self-attention over
    z's valid steps, or crossmodal attention from z (queries) to the source's valid steps."""

    def __init__(self, dim: int, cfg: MultConfig) -> None:
        super().__init__()
        self.dim = dim
        self.blocks = nn.ModuleList(Block(dim, cfg.mult_heads, cfg) for _ in range(cfg.mult_layers))
        self.dropout = nn.Dropout(cfg.mult_embed_dropout)
        self.norm = nn.LayerNorm(dim)

    def embed(self, x: Tensor) -> Tensor:
        positions = sinusoid(x.shape[1], self.dim, x.device, x.dtype)
        return self.dropout(math.sqrt(self.dim) * x + positions[None])

    def forward(self, z: Tensor, z_lengths: Tensor, source: Tensor | None = None,
                source_lengths: Tensor | None = None) -> Tensor:
        if source is None:
            keys, key_lengths = None, z_lengths
        else:
            keys, key_lengths = self.embed(source), source_lengths
        key_pad = ~valid_mask(key_lengths, z.shape[1] if keys is None else keys.shape[1])
        z = self.embed(z)
        for block in self.blocks:
            z = block(z, keys, key_pad)
        return self.norm(z)


class MultEncoder(nn.Module):
    """Temporal convs, M·(M−1) crossmodal transformers (`crossmodal[target][source]`), one
    self-attention transformer per target (`self_attention[target]`), last valid steps, the
    residual projection; see the module docstring."""

    def __init__(self, modality_dims: Mapping[str, int], config: MultConfig) -> None:
        super().__init__()
        if not modality_dims:
            raise ValueError("at least one modality is needed")
        d = config.mult_dim
        if d % config.mult_heads:
            raise ValueError(f"mult_dim {d} is not a multiple of mult_heads {config.mult_heads}")
        unknown = sorted(set(config.mult_conv_kernels) - set(modality_dims))
        if unknown:
            raise ValueError(f"mult_conv_kernels names modalities {unknown} this model does not read")
        self.modalities = sorted(modality_dims)
        self.conv = nn.ModuleDict({
            m: nn.Conv1d(modality_dims[m], d, config.mult_conv_kernels.get(m, config.mult_conv_kernel),
                         padding="same", bias=False)
            for m in self.modalities})
        self.crossmodal = nn.ModuleDict({
            target: nn.ModuleDict({source: Transformer(d, config)
                                   for source in self.modalities if source != target})
            for target in self.modalities})
        fused = d * max(1, len(self.modalities) - 1)
        self.self_attention = nn.ModuleDict({m: Transformer(fused, config) for m in self.modalities})
        self.out_dim = fused * len(self.modalities)
        self.proj1 = nn.Linear(self.out_dim, self.out_dim)
        self.proj2 = nn.Linear(self.out_dim, self.out_dim)
        self.out_dropout = nn.Dropout(config.mult_out_dropout)

    def project(self, modality: str, x: Tensor, lengths: Tensor) -> Tensor:
        """Padded frames zeroed, temporal conv to width d, padded outputs zeroed: (B, T, d)."""
        keep = valid_mask(lengths, x.shape[1])[..., None]
        z = self.conv[modality](x.masked_fill(~keep, 0.0).transpose(1, 2)).transpose(1, 2)
        return z.masked_fill(~keep, 0.0)

    def forward(self, inputs: Batch) -> Tensor:
        require_modalities(inputs, self.modalities)
        lengths = {m: inputs[m][1].to(inputs[m][0].device) for m in self.modalities}
        seqs = {m: self.project(m, inputs[m][0], lengths[m]) for m in self.modalities}
        last = []
        for target in self.modalities:
            into = [block(seqs[target], lengths[target], seqs[source], lengths[source])
                    for source, block in self.crossmodal[target].items()]
            fused = torch.cat(into, dim=-1) if into else seqs[target]
            h = self.self_attention[target](fused, lengths[target])
            last.append(h[torch.arange(h.shape[0], device=h.device), lengths[target] - 1])
        r = torch.cat(last, dim=-1)
        return r + self.proj2(self.out_dropout(torch.relu(self.proj1(r))))


register_model("mult", MultConfig, MultEncoder,
               "Multimodal Transformer (Tsai et al. 2019): pairwise crossmodal attention over "
               "unaligned sequences, a self-attention transformer per target modality")
