"""MTMD (Lin & Hu, paper 004): multi-task momentum distillation for multimodal sentiment.

Every modality u has an online unimodal model: a one-layer unidirectional LSTM (sLSTM), a 3-layer
Transformer (4 heads) over its output with the padded steps masked, the first step's output F'_u,
a projection F_u = ReLU(W_u F'_u) into one `mtmd_dim`-wide space (Eq. 3), and two heads: a
regression value ŷ_u and 3-class logits p̂_u (negative / neutral / positive, Eq. 4). The paper
encodes text with a fine-tuned BERT's [CLS]; here text arrives as features like the rest and gets
the same encoder. Eq. 4 writes a ReLU on both heads; a ReLU would make negative sentiment
unreachable, so the heads are linear.

The student modalities (all but the teacher `mtmd_teacher`, text by default) also have momentum
models: exponential-moving-average copies of their encoder, projection and heads (Eq. 6,
η = `mtmd_momentum`), updated after every optimiser step by the MTMD hook, giving the
pseudo-targets F^m_u, ŷ^m_u, p̂^m_u; they are buffers of this module (saved with it), not trained.

Fusion (MFD, Eq. 12): F_f = ReLU(W_f [w_t F_t; w_a F_a; w_v F_v]) with fusion factors w_u (1.0 at
the start, learnable); the paper updates them "in a momentum way": we read that as each optimiser
step moving them only (1 − `mtmd_fusion_momentum`) of the way (the hook does it; 0 turns it off).
Every task head reads F_f (ŷ_f is the primary regression head); the fused 3-class logits are
auxiliary. The losses (DMD, MFD, Eq. 5-18) are `affectflow.train.distillation.MtmdHook`.
Defaults: the paper's MOSI settings where it gives them (η 0.995, queue 1,024, dropout 0.1,
3 layers × 4 heads, sLSTM 32/64 → one width 64; train with batch_size 64, lr 1e-3 and lr_groups
{encoder.online: 5e-3}); α, τ and γ1-γ4 from the middle of its search grid.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from affectflow.features.params import param
from affectflow.train.models.base import Batch, register_model, unimodal_field, unimodal_names
from affectflow.train.models.layers import require_modalities, valid_mask

N_CLASSES = 3  # negative, neutral, positive


@dataclass(frozen=True)
class MtmdConfig:
    """MTMD's hyper-parameters and its ablation switches (Table II)."""

    mtmd_teacher: str = param("text", "MTMD: the dominant (teacher) modality.")
    mtmd_task: str = param("", "MTMD: the fused regression task (default: the run's first regression task).")
    mtmd_hidden: int = param(64, "MTMD: sLSTM and Transformer width of each unimodal model.", minimum=4)
    mtmd_layers: int = param(3, "MTMD: Transformer layers of each unimodal model.", minimum=1)
    mtmd_heads: int = param(4, "MTMD: attention heads of each unimodal model.", minimum=1)
    mtmd_dim: int = param(64, "MTMD: width of the unimodal representations F_u.", minimum=1)
    mtmd_fusion_dim: int = param(64, "MTMD: width of the fused representation F_f.", minimum=1)
    mtmd_dropout: float = param(0.1, "MTMD: dropout.", minimum=0, maximum=1)
    mtmd_momentum: float = param(0.995, "MTMD: η of the momentum (EMA) unimodal models.", minimum=0, maximum=1)
    mtmd_fusion_momentum: float = param(0.995, "MTMD: momentum of the fusion factors' updates (0: plain "
                                               "gradient updates).", minimum=0, maximum=1)
    mtmd_alpha: float = param(0.4, "MTMD: α, the weight of the momentum pseudo-targets.", minimum=0, maximum=1)
    mtmd_tau: float = param(0.5, "MTMD: initial temperature τ of the contrastive distillation (learnable).",
                            exclusiveMinimum=0)
    mtmd_queue: int = param(1024, "MTMD: size Q of the representation queues (0: the batch only, the "
                                  "'w/o queue' ablation).", minimum=0)
    mtmd_gammas: list[float] = param([1.0, 1.0, 1.0, 1.0], "MTMD: γ1-γ4, the weights of L_reg, L_cls, L_feat "
                                                           "and L_fusion (Eq. 18; 0 removes one).",
                                     minItems=4, maxItems=4)
    mtmd_dmd_momentum: bool = param(True, "MTMD: momentum distillation in DMD (false: α = 0, 'w/o MoM').")
    mtmd_fusion_factors: bool = param(True, "MTMD: fusion factors w_u (false: 'w/o w_t/a/v').")
    mtmd_hard_attention: bool = param(True, "MTMD: hard-sample weights in MFD (false: 'w/o HardAtt').")
    unimodal: list[str] = unimodal_field()


class UnimodalModel(nn.Module):
    """sLSTM → Transformer (padding masked) → first step → ReLU projection → two heads."""

    def __init__(self, in_dim: int, config: MtmdConfig) -> None:
        super().__init__()
        hidden = config.mtmd_heads * -(-config.mtmd_hidden // config.mtmd_heads)
        self.lstm = nn.LSTM(in_dim, hidden, batch_first=True)
        layer = nn.TransformerEncoderLayer(hidden, config.mtmd_heads, 2 * hidden, config.mtmd_dropout,
                                           batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, config.mtmd_layers, enable_nested_tensor=False)
        self.project = nn.Sequential(nn.Dropout(config.mtmd_dropout), nn.Linear(hidden, config.mtmd_dim),
                                     nn.ReLU())
        self.regression = nn.Linear(config.mtmd_dim, 1)
        self.classification = nn.Linear(config.mtmd_dim, N_CLASSES)

    def forward(self, x: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(F_u (B, dim), ŷ_u (B,), p̂_u logits (B, 3))."""
        x = x.masked_fill(~valid_mask(lengths, x.shape[1])[..., None], 0.0)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[1])
        h = self.transformer(h, src_key_padding_mask=~valid_mask(lengths, x.shape[1]))
        f = self.project(h[:, 0])
        return f, self.regression(f).squeeze(-1), self.classification(f)


class MtmdEncoder(nn.Module):
    """Online unimodal models, momentum copies of the students', fusion (see the module doc)."""

    def __init__(self, modality_dims: Mapping[str, int], config: MtmdConfig) -> None:
        super().__init__()
        self.names, self.config = sorted(modality_dims), config
        teacher = config.mtmd_teacher if config.mtmd_teacher in self.names else self.names[0]
        if len(self.names) > 1 and config.mtmd_teacher not in self.names:
            raise ValueError(f"mtmd_teacher {config.mtmd_teacher!r} is not a modality of the model "
                             f"({self.names})")
        self.teacher = teacher
        self.students = [m for m in self.names if m != teacher]
        self.unimodal = unimodal_names(config.unimodal, self.names)
        self.online = nn.ModuleDict({m: UnimodalModel(modality_dims[m], config) for m in self.names})
        self.momentum = nn.ModuleDict({m: copy.deepcopy(self.online[m]) for m in self.students})
        for p in self.momentum.parameters():
            p.requires_grad_(False)
        self.fusion_factors = nn.Parameter(torch.ones(len(self.names)),
                                           requires_grad=config.mtmd_fusion_factors)
        self.fuse = nn.Sequential(nn.Dropout(config.mtmd_dropout),
                                  nn.Linear(config.mtmd_dim * len(self.names), config.mtmd_fusion_dim),
                                  nn.ReLU())
        self.fused_classification = nn.Linear(config.mtmd_fusion_dim, N_CLASSES)
        self.log_tau = nn.Parameter(torch.tensor(float(config.mtmd_tau)).log())
        self.out_dim = config.mtmd_fusion_dim

    @torch.no_grad()
    def momentum_update(self) -> None:
        """θ_m ← η·θ_m + (1 − η)·θ_online for every student's momentum model (Eq. 6)."""
        eta = self.config.mtmd_momentum
        for m in self.students:
            for p_m, p in zip(self.momentum[m].parameters(), self.online[m].parameters()):
                p_m.mul_(eta).add_(p.detach(), alpha=1 - eta)

    def tau(self) -> Tensor:
        """The learnable temperature, kept in [0.001, 1]."""
        return self.log_tau.exp().clamp(1e-3, 1.0)

    def forward(self, inputs: Batch) -> tuple[Tensor, dict[str, Tensor]]:
        require_modalities(inputs, self.names)
        aux: dict[str, Tensor] = {}
        feats = []
        for k, m in enumerate(self.names):
            f, y, p = self.online[m](*inputs[m])
            aux[f"feat/{m}"], aux[f"pred/{m}"], aux[f"logits/{m}"] = f, y, p
            feats.append(f * self.fusion_factors[k])
        if self.training:
            with torch.no_grad():
                for m in self.students:
                    f, y, p = self.momentum[m](*inputs[m])
                    aux[f"momentum_feat/{m}"], aux[f"momentum_pred/{m}"], aux[f"momentum_logits/{m}"] = f, y, p
        fused = self.fuse(torch.cat(feats, dim=-1))
        aux["logits/fused"] = self.fused_classification(fused)
        return fused, aux


def _hooks(config: MtmdConfig) -> list[Any]:
    from affectflow.train.distillation import MtmdHook

    return [MtmdHook(config)]


register_model("mtmd", MtmdConfig, MtmdEncoder,
               "MTMD: multi-task momentum distillation from the dominant modality and the fusion (paper 004)",
               hooks=_hooks)
