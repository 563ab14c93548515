"""Masked sequence layers shared by the models: resampling, means and the three backbones.

Input to every backbone: a padded FloatTensor (B, T, D) and lengths (B,) of valid steps (>= 1).
Padding never influences the output: AVG masks it out, LSTM packs the sequences, TRANS masks
the padded keys, and EF resampling gives padded steps zero weight.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence


def require_modalities(inputs: Mapping[str, object], expected: Sequence[str]) -> None:
    """KeyError naming the modalities a model expects and the batch lacks."""
    missing = set(expected) - set(inputs)
    if missing:
        raise KeyError(f"missing modalities {sorted(missing)}; model expects {list(expected)}")


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


class TransBackbone(nn.Module):
    """Transformer encoder (Dai et al. 2021, §4): the input projected to d_model, a learned [CLS]
    token prepended, `layers` post-norm encoder layers with `heads` heads, feed-forward `ffn` and
    `dropout` (Table 7: 2, 5, 512, 0.1), padded keys masked; the [CLS] output is the
    representation. d_model is the smallest multiple of `heads` >= `hidden` (65 for 64 and 5).
    No positional encoding: the paper names none, and the order of the fused steps is kept by
    the EF resampling's fixed grid only through the content."""

    def __init__(self, in_dim: int, hidden: int, dropout: float = 0.1, layers: int = 2,
                 heads: int = 5, ffn: int = 512) -> None:
        super().__init__()
        d_model = heads * math.ceil(hidden / heads)
        self.proj = nn.Linear(in_dim, d_model)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        nn.init.normal_(self.cls, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, heads, ffn, dropout, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out_dim = d_model

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        h = self.proj(x.masked_fill(~valid_mask(lengths, x.shape[1])[..., None], 0.0))
        h = torch.cat([self.cls.expand(h.shape[0], -1, -1), h], dim=1)
        pad = ~valid_mask(lengths + 1, h.shape[1])  # [CLS] is always valid
        return self.encoder(h, src_key_padding_mask=pad)[:, 0]
