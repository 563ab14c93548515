"""The `linear` model: no learned encoder; the masked time-mean of each modality, concatenated,
goes straight into one linear layer per task (no hidden layer, no dropout). With the trainer's
feature standardisation this is a multinomial logistic regression (or linear regressor) trained
with Adam and early stopping: the classic eGeMAPS-functionals baseline when fed pooled views.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor, nn

from affectflow.train.models.base import Batch, register_model
from affectflow.train.models.layers import masked_mean, require_modalities


@dataclass(frozen=True)
class LinearConfig:
    """`linear` has no hyper-parameters of its own (the trainer's lr, weight decay... apply)."""


class PooledEncoder(nn.Module):
    """Masked mean over time of each modality (sorted by name), concatenated; no parameters, so
    the task heads on top are plain linear models."""

    fusion = "linear"

    def __init__(self, modality_dims: Mapping[str, int]) -> None:
        super().__init__()
        self.modalities = sorted(modality_dims)
        self.out_dim = sum(int(modality_dims[m]) for m in self.modalities)

    def forward(self, inputs: Batch) -> Tensor:
        require_modalities(inputs, self.modalities)
        return torch.cat([masked_mean(*inputs[m]) for m in self.modalities], dim=-1)


register_model("linear", LinearConfig, lambda dims, config: PooledEncoder(dims),
               "time-mean of every modality into one linear layer per task")
