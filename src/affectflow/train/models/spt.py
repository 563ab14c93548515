"""The layers of SUGRM (paper 001): the Modality Recalibration Module and the Sparse Phased Transformer.

- `Recalibration` (MRM, §3.2.1): squeeze each modality over its valid steps (the authors'
  average pooling also averages the padding; here padding is masked), concatenate, a bottleneck
  Linear + ReLU (reduction 4), one Linear per modality back to its width, gate 2·σ(E_s) on every
  step of the modality.
- `SparsePhasedTransformer` (SPT, Cheng et al. 2021, as SUGRM uses it): per modality a sequence
  of hidden states, one per `stride` input steps, built from a learned initial vector; `layers`
  times input attention (hidden states read a window of `windows[0]` input steps), cross
  attention (each modality's hidden states read a window of `windows[1]` hidden states of every
  other modality, one attention + feed-forward per pair of modalities used in both directions,
  results summed) and self attention (window `windows[2]`); pre-LayerNorm residual blocks, a
  final LayerNorm, and the last valid hidden state as the modality's representation.
  Window of query i over a context of valid length L_c (the query side has L_q valid steps): the
  `w` positions ending at ceil((i+1)·L_c/L_q) − 1 + phase, taken modulo L_c, with phase the layer
  index for cross and self attention (the authors' effective MOSI/MOSEI setting; their random and
  sinusoidal phases are off there). Proportional ends and modulo over the *valid* length are our
  choices for unaligned batches: the authors wrap over the padded length, which reads padding.
  `window=0` attends to every valid position: the dense transformer (TE) of the ablations.
  Defaults (SUGRM's MOSI settings): width 32, 8 heads, 4 layers, stride 5, windows 17/9/7,
  dropout 0.3. Sparse windows are computed as dense masks: exact, not faster.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from affectflow.train.models.layers import masked_mean, valid_mask


class Recalibration(nn.Module):
    """MRM: squeeze-and-excitation across modalities, gate 2·σ(E_s) per feature of modality s."""

    def __init__(self, dims: Mapping[str, int], reduction: int = 4) -> None:
        super().__init__()
        self.names = sorted(dims)
        total = sum(dims.values())
        self.squeeze = nn.Sequential(nn.Linear(total, max(total // reduction, 1)), nn.ReLU())
        self.excite = nn.ModuleDict({m: nn.Linear(max(total // reduction, 1), dims[m])
                                     for m in self.names})

    def gates(self, inputs: Mapping[str, tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
        """{modality: (B, D_m) gate in (0, 2)} from the masked means of every modality."""
        z = self.squeeze(torch.cat([masked_mean(*inputs[m]) for m in self.names], dim=-1))
        return {m: 2 * torch.sigmoid(self.excite[m](z)) for m in self.names}

    def forward(self, inputs: Mapping[str, tuple[Tensor, Tensor]]
                ) -> dict[str, tuple[Tensor, Tensor]]:
        gates = self.gates(inputs)
        return {m: (inputs[m][0] * gates[m][:, None, :], inputs[m][1]) for m in self.names}


def sinusoidal(length: int, dim: int, device: torch.device) -> Tensor:
    """(length, dim) sinusoidal position embedding (positions from 1, as fairseq's)."""
    half = dim // 2
    freq = torch.exp(-math.log(10000.0) * torch.arange(half, device=device) / max(half - 1, 1))
    angle = torch.arange(1, length + 1, device=device)[:, None] * freq[None, :]
    out = torch.cat([torch.sin(angle), torch.cos(angle)], dim=-1)
    return nn.functional.pad(out, (0, dim - out.shape[1]))


def window_mask(q_lengths: Tensor, q_max: int, c_lengths: Tensor, c_max: int, window: int,
                phase: int = 0) -> Tensor:
    """(B, q_max, c_max) bool, True where query i may read context position j (see module doc)."""
    b = q_lengths.shape[0]
    if window <= 0:
        return valid_mask(c_lengths, c_max)[:, None, :].expand(b, q_max, c_max)
    i = torch.arange(q_max, device=q_lengths.device)[None, :]
    lq = q_lengths.clamp_min(1)[:, None].to(torch.float64)
    lc = c_lengths.clamp_min(1)[:, None]
    end = torch.ceil((i + 1) * lc.to(torch.float64) / lq).long() - 1 + phase  # (B, q_max)
    offsets = torch.arange(window, device=q_lengths.device)
    pos = (end[..., None] - window + 1 + offsets) % lc[..., None]  # (B, q_max, window)
    mask = torch.zeros(b, q_max, c_max, dtype=torch.bool, device=q_lengths.device)
    return mask.scatter_(2, pos, True)


class FeedForward(nn.Module):
    """Pre-LayerNorm residual feed-forward (4× width, ReLU)."""

    def __init__(self, dim: int, dropout: float) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.ReLU(),
                                 nn.Dropout(dropout), nn.Linear(4 * dim, dim), nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.net(x)


class WindowAttention(nn.Module):
    """Pre-LayerNorm residual multi-head attention of queries over a masked context, + FFN."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm_q, self.norm_kv = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.ffn = FeedForward(dim, dropout)
        self.heads = heads

    def forward(self, x: Tensor, context: Tensor | None, allowed: Tensor) -> Tensor:
        q = self.norm_q(x)
        kv = q if context is None else self.norm_kv(context)
        block = (~allowed).repeat_interleave(self.heads, dim=0)
        y, _ = self.attention(q, kv, kv, attn_mask=block, need_weights=False)
        return self.ffn(x + self.dropout(y))


class SparsePhasedTransformer(nn.Module):
    """SPT over several modalities: {name: (B, T, d) projected input, lengths} → {name: (B, d)}."""

    def __init__(self, names: Sequence[str], dim: int, heads: int, layers: int, stride: int,
                 windows: Sequence[int], dropout: float, embed_dropout: float) -> None:
        super().__init__()
        self.names, self.dim, self.stride = list(names), dim, stride
        self.windows, self.n_layers = list(windows), layers
        self.scale = math.sqrt(dim)
        self.init_hidden = nn.Parameter(torch.empty(len(self.names), dim))
        nn.init.xavier_uniform_(self.init_hidden)
        self.embed_dropout = nn.Dropout(embed_dropout)
        self.pairs = [(a, b) for i, a in enumerate(self.names) for b in self.names[i + 1:]]
        self.input_attention = nn.ModuleDict({m: WindowAttention(dim, heads, dropout) for m in self.names})
        self.cross_attention = nn.ModuleDict({f"{a}~{b}": WindowAttention(dim, heads, dropout)
                                              for a, b in self.pairs})
        self.self_attention = nn.ModuleDict({m: WindowAttention(dim, heads, dropout) for m in self.names})
        self.norm = nn.LayerNorm(dim)

    def embed(self, x: Tensor) -> Tensor:
        return self.embed_dropout(self.scale * x + sinusoidal(x.shape[1], self.dim, x.device))

    def forward(self, inputs: Mapping[str, tuple[Tensor, Tensor]]) -> dict[str, Tensor]:
        x = {m: self.embed(inputs[m][0]) for m in self.names}
        lengths = {m: inputs[m][1] for m in self.names}
        h_len = {m: torch.div(lengths[m] + self.stride - 1, self.stride, rounding_mode="floor")
                 for m in self.names}
        h_max = {m: -(-inputs[m][0].shape[1] // self.stride) for m in self.names}
        batch = next(iter(x.values())).shape[0]
        h = {m: self.embed(self.init_hidden[k].expand(batch, h_max[m], self.dim))
             for k, m in enumerate(self.names)}
        w_in, w_cross, w_self = self.windows

        def mask(q: str, c: str, c_len: Mapping[str, Tensor], c_max: int, w: int, phase: int
                 ) -> Tensor:
            return window_mask(h_len[q], h_max[q], c_len[c], c_max, w, phase)

        for layer in range(self.n_layers):
            h = {m: self.input_attention[m](h[m], x[m], mask(m, m, lengths, x[m].shape[1], w_in, 0))
                 for m in self.names}
            if self.pairs:
                crossed = {m: torch.zeros_like(h[m]) for m in self.names}
                for a, b in self.pairs:
                    block = self.cross_attention[f"{a}~{b}"]
                    crossed[a] = crossed[a] + block(h[a], h[b], mask(a, b, h_len, h_max[b], w_cross, layer))
                    crossed[b] = crossed[b] + block(h[b], h[a], mask(b, a, h_len, h_max[a], w_cross, layer))
                h = crossed
            h = {m: self.self_attention[m](h[m], None, mask(m, m, h_len, h_max[m], w_self, layer))
                 for m in self.names}
        rows = torch.arange(batch, device=self.init_hidden.device)
        return {m: self.norm(h[m])[rows, h_len[m] - 1] for m in self.names}
