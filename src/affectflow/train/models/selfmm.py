"""Self-MM (Yu et al. 2021): unimodal subtasks on labels generated from class centres.

Architecture as thuiar/MMSA's Self-MM: every modality is encoded on its own (there, BERT for text
and a one-layer LSTM for audio and video; here every modality arrives as features, so each gets
the LSTM subnet: final hidden state → dropout → Linear to `selfmm_out`); the fused branch is
dropout → Linear(Σ out → `selfmm_fusion_dim`) → ReLU (the fused representation, ``feat/fused``)
→ Linear → ReLU, read by every task head; each unimodal branch is dropout → Linear(out →
`selfmm_post_dim`) → ReLU (its representation ``feat/<s>``, in its own space) → Linear → ReLU →
Linear → ŷ_s (``pred/<s>``). Labels and losses: `UnimodalLabelHook` with Self-MM's rule (δ from
each space's class centres, momentum update, tanh(|y_s − y_m|)-weighted L1), see
`affectflow.train.unimodal_labels`.

Defaults: MMSA's MOSI settings where one width serves every modality (MMSA: audio LSTM 16, video
32, text 768 from BERT; post dims text 32, audio 16, video 32; fusion 128; dropouts 0.1 / 0.0 for
text); train with batch_size 16, accumulate 4 (their update_epochs), lr 1e-3 and weight_decay
1e-3, early stop 8.
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
from affectflow.train.models.layers import LstmBackbone, require_modalities


@dataclass(frozen=True)
class SelfMmConfig:
    """Self-MM's hyper-parameters (defaults: MMSA's MOSI settings, one width per role)."""

    selfmm_hidden: int = param(32, "Self-MM: LSTM width of each modality's subnet.", minimum=1)
    selfmm_out: int = param(32, "Self-MM: output width of each modality's subnet.", minimum=1)
    selfmm_post_dim: int = param(32, "Self-MM: width of each unimodal branch.", minimum=1)
    selfmm_fusion_dim: int = param(128, "Self-MM: width of the fused branch.", minimum=1)
    selfmm_dropout: float = param(0.1, "Self-MM: dropout of the subnets and before each branch.",
                                  minimum=0, maximum=1)
    ulgm_task: str = ulgm_task_field()
    unimodal: list[str] = unimodal_field()


class SelfMmEncoder(nn.Module):
    """Returns (fused representation, aux) as the module docstring says."""

    def __init__(self, modality_dims: Mapping[str, int], config: SelfMmConfig) -> None:
        super().__init__()
        self.names = sorted(modality_dims)
        self.unimodal = unimodal_names(config.unimodal, self.names)
        hidden, out, post = config.selfmm_hidden, config.selfmm_out, config.selfmm_post_dim
        self.subnets = nn.ModuleDict({m: nn.ModuleDict({
            "lstm": LstmBackbone(modality_dims[m], hidden, config.selfmm_dropout),
            "out": nn.Linear(2 * hidden, out)}) for m in self.names})
        self.dropout = nn.Dropout(config.selfmm_dropout)
        fusion = config.selfmm_fusion_dim
        self.fusion_1 = nn.Linear(out * len(self.names), fusion)
        self.fusion_2 = nn.Linear(fusion, fusion)
        self.branches = nn.ModuleDict({m: nn.ModuleDict({
            "layer_1": nn.Linear(out, post), "layer_2": nn.Linear(post, post),
            "head": nn.Linear(post, 1)}) for m in self.unimodal})
        self.out_dim = fusion

    def forward(self, inputs: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        require_modalities(inputs, self.names)
        reps = {m: self.subnets[m]["out"](self.subnets[m]["lstm"](*inputs[m])) for m in self.names}
        fused = torch.relu(self.fusion_1(self.dropout(torch.cat([reps[m] for m in self.names], -1))))
        aux = {"feat/fused": fused}
        for m in self.unimodal:
            branch = self.branches[m]
            h = torch.relu(branch["layer_1"](self.dropout(reps[m])))
            aux[f"feat/{m}"] = h
            aux[f"pred/{m}"] = branch["head"](torch.relu(branch["layer_2"](h))).squeeze(-1)
        return torch.relu(self.fusion_2(fused)), aux


def _hooks(config: SelfMmConfig) -> list[Any]:
    from affectflow.train.unimodal_labels import UnimodalLabelHook

    return [UnimodalLabelHook("selfmm", config.ulgm_task)]


register_model("selfmm", SelfMmConfig, SelfMmEncoder,
               "Self-MM: unimodal subtasks on labels generated from class centres (Yu et al. 2021)",
               hooks=_hooks)
