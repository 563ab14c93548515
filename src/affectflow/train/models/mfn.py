"""MFN: the Memory Fusion Network for multi-view sequential learning (Zadeh et al., AAAI 2018).

MFN needs aligned views: one recurrence step reads every view's step t. Each modality is
therefore first resampled, per utterance and over its own valid length, to `mfn_steps` steps
(`masked_resample`: exact area-weighted pooling, or piecewise-constant upsampling when shorter;
padded frames get weight 0 and are zeroed first, so their content never leaks). After that
every sequence is full length and the recurrence runs over all `mfn_steps` steps. Modalities are
ordered as `sorted(modality_dims)`.

Per step t (c: LSTM cell states, h: hidden states, u: the multi-view gated memory):

1. System of LSTMs: one LSTM cell per view, ``h_t^m, c_t^m = LSTM_m(x_t^m, h_{t-1}^m, c_{t-1}^m)``.
   With `mfn_memory_feedback` the cells are LSTHMs (the Long-short Term Hybrid Memory of Zadeh
   et al.'s MARN, AAAI 2018): every gate also reads the memory u_{t-1} through its own weights,
   ``gates = W x_t + U h_{t-1} + V u_{t-1} + b`` (`cells[m].memory_gates` is V). The MFN paper
   keeps the views' LSTMs isolated ("view-specific interactions are learned in isolation"), so
   this is off by default.
2. Delta-memory Attention Network (DMAN): ``c^[t-1,t]`` = the concatenation of every view's
   c_{t-1} and c_t (width 2·Σ hidden; c_0 = 0), ``a = softmax(D_a(c^[t-1,t]))`` over those
   dimensions, ``ĉ = a ⊙ c^[t-1,t]``: attention to the dimensions that changed across views.
3. Multi-view Gated Memory: proposal ``û_t = D_u(ĉ)``, retain gate ``γ1 = σ(D_γ1([ĉ, u_{t-1}]))``,
   update gate ``γ2 = σ(D_γ2([ĉ, u_{t-1}]))``, ``u_t = γ1 ⊙ u_{t-1} + γ2 ⊙ tanh(û_t)`` (u_0 = 0).
   Each D_* is a two-layer network Linear-ReLU-Dropout-Linear.

The representation (`out_dim` = Σ hidden + `mfn_mem`) is the concatenation of the last hidden
states h_T of every view and the final memory u_T; the task heads (`MultiTaskModel`, linear)
stand in for the paper's output network. With one modality MFN is one LSTM (or LSTHM) plus the
DMAN and memory over its cells.

Defaults: the paper chose hyper-parameters by validation and names none; these are the
authors' released CMU-MOSI configuration for binary accuracy (pliang279/MFN, test_mosi.py, the
"acc 77.0" configuration): memory 400, DMAN hidden 128 with dropout 0.5, D_u hidden 128 with
dropout 0.2, γ networks hidden 128 with dropout 0.5, the language LSTM's width 64 for every view
(that configuration gives acoustic 8 and visual 80: `mfn_hiddens`), and 20 steps (the
`seqlength` of the authors' configs/mosi.json; their data is word-aligned).

The authors' code was read for details only. As there, the γ networks read [ĉ, u_{t-1}] and
the DMAN's softmax runs over the 2·Σ hidden dimensions. Unlike there: the optional memory
feedback into the gates (the code's cells are plain LSTM cells), the resampling (their data is
word-aligned beforehand), and no output network of its own (the task heads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
from torch import Tensor, nn

from affectflow.features.params import param
from affectflow.train.models.base import Batch, register_model
from affectflow.train.models.layers import masked_resample, require_modalities


@dataclass(frozen=True)
class MfnConfig:
    """Hyper-parameters of MFN (defaults: the authors' released MOSI accuracy configuration)."""

    mfn_steps: int = param(20, "MFN: common number of steps every modality is resampled to.",
                           minimum=1)
    mfn_hidden: int = param(64, "MFN: LSTM width of every view not in mfn_hiddens.", minimum=1)
    mfn_hiddens: dict[str, int] = param({}, "MFN: per-modality LSTM widths, e.g. {audio: 8}.")
    mfn_mem: int = param(400, "MFN: width of the multi-view gated memory.", minimum=1)
    mfn_att_hidden: int = param(128, "MFN: hidden width of the DMAN attention network D_a.",
                                minimum=1)
    mfn_att_dropout: float = param(0.5, "MFN: dropout inside D_a.", minimum=0, maximum=1)
    mfn_mem_hidden: int = param(128, "MFN: hidden width of the memory proposal network D_u.",
                                minimum=1)
    mfn_mem_dropout: float = param(0.2, "MFN: dropout inside D_u.", minimum=0, maximum=1)
    mfn_gate_hidden: int = param(128, "MFN: hidden width of the retain/update gate networks.",
                                 minimum=1)
    mfn_gate_dropout: float = param(0.5, "MFN: dropout inside the gate networks.", minimum=0,
                                    maximum=1)
    mfn_memory_feedback: bool = param(False, "MFN: the views' LSTM gates also read the memory "
                                             "u_{t-1} (LSTHM cells, as in MARN).")


def two_layer(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    """Linear-ReLU-Dropout-Linear, the form of every D_* network."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, out_dim))


class Cell(nn.Module):
    """An LSTM cell, or with `memory` > 0 an LSTHM cell whose four gates also read the memory."""

    def __init__(self, in_dim: int, hidden: int, memory: int = 0) -> None:
        super().__init__()
        self.input_gates = nn.Linear(in_dim, 4 * hidden)
        self.hidden_gates = nn.Linear(hidden, 4 * hidden, bias=False)
        self.memory_gates = nn.Linear(memory, 4 * hidden, bias=False) if memory else None

    def forward(self, x: Tensor, h: Tensor, c: Tensor, u: Tensor) -> tuple[Tensor, Tensor]:
        gates = self.input_gates(x) + self.hidden_gates(h)
        if self.memory_gates is not None:
            gates = gates + self.memory_gates(u)
        i, f, g, o = gates.chunk(4, dim=-1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c), c


class GatedMemory(nn.Module):
    """DMAN + multi-view gated memory: (c_{t-1}, c_t, u_{t-1}) -> u_t and the step's internals."""

    def __init__(self, cells: int, cfg: MfnConfig) -> None:
        super().__init__()
        delta = 2 * cells
        self.attention = two_layer(delta, cfg.mfn_att_hidden, delta, cfg.mfn_att_dropout)
        self.proposal = two_layer(delta, cfg.mfn_mem_hidden, cfg.mfn_mem, cfg.mfn_mem_dropout)
        self.retain = two_layer(delta + cfg.mfn_mem, cfg.mfn_gate_hidden, cfg.mfn_mem,
                                cfg.mfn_gate_dropout)
        self.update = two_layer(delta + cfg.mfn_mem, cfg.mfn_gate_hidden, cfg.mfn_mem,
                                cfg.mfn_gate_dropout)

    def forward(self, c_prev: Tensor, c_now: Tensor, u: Tensor) -> dict[str, Tensor]:
        both = torch.cat([c_prev, c_now], dim=-1)
        attention = torch.softmax(self.attention(both), dim=-1)
        attended = attention * both
        gate_input = torch.cat([attended, u], dim=-1)
        gamma1 = torch.sigmoid(self.retain(gate_input))
        gamma2 = torch.sigmoid(self.update(gate_input))
        proposal = torch.tanh(self.proposal(attended))
        return {"attention": attention, "gamma1": gamma1, "gamma2": gamma2, "proposal": proposal,
                "memory": gamma1 * u + gamma2 * proposal}


class MfnEncoder(nn.Module):
    """Resampling, one cell per view (`cells[m]`), the DMAN and gated memory (`memory`); see the
    module docstring. `trace(inputs)` returns the per-step internals."""

    def __init__(self, modality_dims: Mapping[str, int], config: MfnConfig) -> None:
        super().__init__()
        if not modality_dims:
            raise ValueError("at least one modality is needed")
        unknown = sorted(set(config.mfn_hiddens) - set(modality_dims))
        if unknown:
            raise ValueError(f"mfn_hiddens names modalities {unknown} this model does not read")
        self.modalities = sorted(modality_dims)
        self.steps = config.mfn_steps
        self.mem_dim = config.mfn_mem
        self.hidden = {m: config.mfn_hiddens.get(m, config.mfn_hidden) for m in self.modalities}
        feedback = config.mfn_mem if config.mfn_memory_feedback else 0
        self.cells = nn.ModuleDict({m: Cell(modality_dims[m], self.hidden[m], feedback)
                                    for m in self.modalities})
        self.memory = GatedMemory(sum(self.hidden.values()), config)
        self.out_dim = sum(self.hidden.values()) + config.mfn_mem

    def trace(self, inputs: Batch) -> dict[str, Tensor]:
        """Run the recurrence: {"h": (B, Σ hidden) last hidden states; "attention", "gamma1",
        "gamma2", "proposal" (tanh û), "memory" (u): (B, steps, width), one row per step}."""
        require_modalities(inputs, self.modalities)
        seqs = {m: masked_resample(inputs[m][0], inputs[m][1].to(inputs[m][0].device), self.steps)
                for m in self.modalities}
        first = seqs[self.modalities[0]]
        zeros = {m: first.new_zeros(first.shape[0], self.hidden[m]) for m in self.modalities}
        h, c = dict(zeros), dict(zeros)
        u = first.new_zeros(first.shape[0], self.mem_dim)
        steps: dict[str, list[Tensor]] = {}
        for t in range(self.steps):
            c_prev = torch.cat([c[m] for m in self.modalities], dim=-1)
            for m in self.modalities:
                h[m], c[m] = self.cells[m](seqs[m][:, t], h[m], c[m], u)
            out = self.memory(c_prev, torch.cat([c[m] for m in self.modalities], dim=-1), u)
            u = out["memory"]
            for key, value in out.items():
                steps.setdefault(key, []).append(value)
        return {"h": torch.cat([h[m] for m in self.modalities], dim=-1),
                **{key: torch.stack(values, dim=1) for key, values in steps.items()}}

    def forward(self, inputs: Batch) -> Tensor:
        run = self.trace(inputs)
        return torch.cat([run["h"], run["memory"][:, -1]], dim=-1)


register_model("mfn", MfnConfig, MfnEncoder,
               "Memory Fusion Network (Zadeh et al. 2018): per-view LSTMs, delta-memory attention "
               "and a multi-view gated memory over sequences resampled to a common length")
