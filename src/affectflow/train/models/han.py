"""Hierarchical attention networks over talk-turns (paper 003): HAN, flat-MTL HAN and HAN-ROCK.

Input: one token-sequence modality for the current turn (e.g. ``text``: frozen MiniLM token
states from the text extractor; GloVe, the paper's word vectors, is not available offline) and
its history modalities ``text@1`` ... ``text@L`` (the 1st ... L-th previous turn of the dialogue,
`training.modalities` with `history: k`; zeros at a dialogue's start).

- `han`: a word encoder (BiGRU + additive attention, shared by every turn) gives one vector per
  turn; a talk-turn encoder (BiGRU + attention over the turns, oldest first) gives the
  representation every task head reads. With several tasks this is the flat-MTL HAN: the
  auxiliary heads sit beside the primary one on the same representation.
- `han_rock`: the primary branch (its own word and talk-turn encoders, `han_hidden` wide) is
  read only by the primary task's head; the auxiliary branch has one word encoder shared by the
  auxiliary tasks and one talk-turn encoder per auxiliary task (`han_aux_hidden` wide). The
  primary head reads a fusion attention over the primary and every auxiliary talk-turn
  embedding; each auxiliary head reads its own embedding only, so auxiliary losses never reach
  the primary branch (their gradients stop in the auxiliary branch). The primary task is
  `han_primary`, or the first task of the run.

Attention: u = tanh(W h + b), α = softmax(v·u) over the valid steps, output Σ α h.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from affectflow.features.params import param
from affectflow.train.models.base import Batch, register_model


@dataclass(frozen=True)
class HanConfig:
    han_hidden: int = param(64, "HAN: GRU width per direction of the (primary) word and talk-turn encoders.",
                            minimum=1)
    han_aux_hidden: int = param(16, "HAN-ROCK: GRU width per direction of the auxiliary branch.", minimum=1)
    han_primary: str = param("", "HAN-ROCK: the primary task (default: the run's first task).")


def turn_modalities(names: Sequence[str]) -> tuple[str, list[str]]:
    """(the current turn's modality, every turn's modality oldest first) from modality names."""
    current = [n for n in names if "@" not in n]
    if len(current) != 1:
        raise ValueError(f"HAN reads one current-turn modality and its history (<name>@<k>); got {sorted(names)}")
    base = current[0]
    history = sorted((n for n in names if "@" in n), key=lambda n: -int(n.rpartition("@")[2]))
    wrong = [n for n in history if n.rpartition("@")[0] != base]
    if wrong:
        raise ValueError(f"history modalities {wrong} do not belong to {base!r}")
    return base, history + [base]


class Attention(nn.Module):
    """Additive attention pooling over the valid steps of (B, T, D)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        self.context = nn.Linear(dim, 1, bias=False)

    def forward(self, h: Tensor, mask: Tensor) -> Tensor:
        scores = self.context(torch.tanh(self.proj(h))).squeeze(-1).masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        return torch.einsum("bt,btd->bd", weights, h)


class GruAttention(nn.Module):
    """BiGRU + attention: (B, T, D) and lengths → (B, 2H)."""

    def __init__(self, in_dim: int, hidden: int) -> None:
        super().__init__()
        self.gru = nn.GRU(in_dim, hidden, batch_first=True, bidirectional=True)
        self.attention = Attention(2 * hidden)
        self.out_dim = 2 * hidden

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        lengths = lengths.clamp(min=1, max=x.shape[1])
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = self.gru(packed)
        h, _ = nn.utils.rnn.pad_packed_sequence(h, batch_first=True, total_length=x.shape[1])
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None].to(x.device)
        return self.attention(h, mask)


def encode_turns(words: GruAttention, inputs: Batch, turns: Sequence[str]) -> Tensor:
    """(B, n_turns, 2H): each turn's words through the shared word encoder, oldest turn first."""
    return torch.stack([words(*inputs[t]) for t in turns], dim=1)


def _all_turns(vectors: Tensor) -> Tensor:
    return torch.full((vectors.shape[0],), vectors.shape[1], dtype=torch.long, device=vectors.device)


class HanEncoder(nn.Module):
    """Word encoder → turn vectors → talk-turn encoder → one representation."""

    def __init__(self, modality_dims: Mapping[str, int], config: HanConfig) -> None:
        super().__init__()
        base, self.turns = turn_modalities(list(modality_dims))
        self.words = GruAttention(modality_dims[base], config.han_hidden)
        self.talkturns = GruAttention(self.words.out_dim, config.han_hidden)
        self.out_dim = self.talkturns.out_dim

    def forward(self, inputs: Batch) -> Tensor:
        vectors = encode_turns(self.words, inputs, self.turns)
        return self.talkturns(vectors, _all_turns(vectors))


class HanRockEncoder(nn.Module):
    """Primary branch + auxiliary branch (one talk-turn encoder per auxiliary task) + fusion
    attention for the primary task; returns {task: representation} (see the module docstring)."""

    def __init__(self, modality_dims: Mapping[str, int], config: HanConfig) -> None:
        super().__init__()
        base, self.turns = turn_modalities(list(modality_dims))
        self.config = config
        self.primary_words = GruAttention(modality_dims[base], config.han_hidden)
        self.primary_turns = GruAttention(self.primary_words.out_dim, config.han_hidden)
        self.aux_words = GruAttention(modality_dims[base], config.han_aux_hidden)
        self.aux_turns = nn.ModuleDict()
        self.out_dim = self.primary_turns.out_dim
        self.primary = ""

    def bind_tasks(self, tasks: Sequence[str]) -> dict[str, int]:
        """Choose the primary task, build one auxiliary talk-turn encoder per other task; returns
        each task's representation width (what its head reads)."""
        tasks = list(tasks)
        self.primary = self.config.han_primary or tasks[0]
        if self.primary not in tasks:
            raise ValueError(f"han_primary {self.primary!r} is not a task of this run ({tasks})")
        for task in tasks:
            if task != self.primary:
                self.aux_turns[task] = GruAttention(self.aux_words.out_dim, self.config.han_aux_hidden)
        width = self.primary_turns.out_dim
        self.fuse = nn.ModuleDict({t: nn.Linear(e.out_dim, width) for t, e in self.aux_turns.items()})
        self.fusion = Attention(width)
        return {t: (width if t == self.primary else self.aux_turns[t].out_dim) for t in tasks}

    def forward(self, inputs: Batch) -> dict[str, Tensor]:
        primary_vectors = encode_turns(self.primary_words, inputs, self.turns)
        primary = self.primary_turns(primary_vectors, _all_turns(primary_vectors))
        out: dict[str, Tensor] = {}
        embeddings = [primary]
        if len(self.aux_turns):
            aux_vectors = encode_turns(self.aux_words, inputs, self.turns)
            for task, turns in self.aux_turns.items():
                out[task] = turns(aux_vectors, _all_turns(aux_vectors))
                embeddings.append(self.fuse[task](out[task]))
        stacked = torch.stack(embeddings, dim=1)
        out[self.primary] = self.fusion(stacked, torch.ones(stacked.shape[:2], dtype=torch.bool, device=stacked.device))
        return out


register_model("han", HanConfig, HanEncoder,
               "hierarchical attention network over the current turn and its history (paper 003); "
               "with several tasks, the flat-MTL HAN", reads="turns")
register_model("han_rock", HanConfig, HanRockEncoder,
               "HAN-ROCK (paper 003): a primary branch the auxiliary losses cannot reach, an auxiliary "
               "branch with one talk-turn encoder per auxiliary task, fusion attention for the primary",
               reads="turns")
