"""MulT and MFN: their mechanisms (crossmodal attention on unaligned lengths, delta-memory
attention and gated memory), and a toy task that only the two modalities together solve.

The generic checks (shapes, padding invariance, one modality, save → load) run for every
registered model in test_models.py and test_registry_trainer.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectflow.train.data import SplitData, TrainingData
from affectflow.train.loop import train_one_seed
from affectflow.train.models import build_model

from test_models import one_thread  # noqa: F401  (autouse: tiny models run fastest on one thread)

DIMS = {"audio": 6, "text": 5, "video": 4}
T = {"audio": 13, "text": 7, "video": 4}  # unaligned: every modality its own length
MULT = {"mult_dim": 8, "mult_heads": 2, "mult_layers": 2}
MFN = {"mfn_steps": 5, "mfn_hidden": 6, "mfn_hiddens": {"audio": 4}, "mfn_mem": 7,
       "mfn_att_hidden": 8, "mfn_mem_hidden": 8, "mfn_gate_hidden": 8}


Batch = dict[str, tuple[torch.Tensor, torch.Tensor]]


def batch(dims: dict[str, int] = DIMS, b: int = 4, seed: int = 0) -> Batch:
    """Uneven lengths (row 0 full), zeros in the padding."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for m, d in dims.items():
        lengths = torch.randint(1, T[m] + 1, (b,), generator=g)
        lengths[0] = T[m]
        valid = torch.arange(T[m])[None, :, None] < lengths[:, None, None]
        out[m] = (torch.randn(b, T[m], d, generator=g) * valid, lengths)
    return out


def encoder(name: str, hparams: dict, dims: dict[str, int] = DIMS) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, dims, {"sarcasm": 1.0}, hparams).encoder.eval()


# ----------------------------------------------------------------------------- MulT


def test_mult_one_crossmodal_transformer_per_ordered_pair_each_of_the_targets_length() -> None:
    enc = encoder("mult", MULT)
    shapes = {}
    hooks = [block.register_forward_hook(
                 lambda mod, args, out, key=(target, source): shapes.__setitem__(key, out.shape))
             for target, sources in enc.crossmodal.items() for source, block in sources.items()]
    with torch.no_grad():
        r = enc(batch())
    for hook in hooks:
        hook.remove()
    pairs = {(t, s) for t in DIMS for s in DIMS if t != s}
    assert set(shapes) == pairs  # M·(M−1) = 6 blocks, every one ran
    for (target, _), shape in shapes.items():
        assert shape == (4, T[target], MULT["mult_dim"])
    assert r.shape == (4, enc.out_dim) and enc.out_dim == 3 * 2 * MULT["mult_dim"]
    for dims, blocks in (({"a": 1, "b": 1}, 2), ({"a": 1, "b": 1, "c": 1, "d": 1}, 12), ({"a": 1}, 0)):
        enc = encoder("mult", MULT, dims)
        assert sum(len(sources) for sources in enc.crossmodal.values()) == blocks
    # one modality: self-attention over it alone, width d
    assert enc.out_dim == MULT["mult_dim"] and enc.self_attention["a"].dim == MULT["mult_dim"]


def test_mult_crossmodal_attention_masks_padding_and_reads_the_source() -> None:
    enc = encoder("mult", MULT)
    block = enc.crossmodal["text"]["audio"]  # text queries, audio keys/values
    g = torch.Generator().manual_seed(1)
    d = MULT["mult_dim"]
    target, source = torch.randn(3, 7, d, generator=g), torch.randn(3, 13, d, generator=g)
    t_len, s_len = torch.tensor([7, 4, 2]), torch.tensor([13, 5, 9])
    source_pad = torch.arange(13)[None, :] >= s_len[:, None]
    target_valid = torch.arange(7)[None, :] < t_len[:, None]
    with torch.no_grad():
        out = block(target, t_len, source, s_len)
        # junk in the source's padded steps: not one output step moves (keys are masked)
        junk = source.masked_fill(source_pad[..., None], 1e4)
        torch.testing.assert_close(block(target, t_len, junk, s_len), out)
        # junk in the target's padded steps: its valid steps do not move
        moved = target.masked_fill(~target_valid[..., None], -1e3)
        torch.testing.assert_close(block(moved, t_len, source, s_len)[target_valid], out[target_valid])
        # other valid source content: the target's crossmodal output changes on every row
        other = torch.where(source_pad[..., None], source, torch.randn(source.shape, generator=g))
        diff = (block(target, t_len, other, s_len) - out).abs().amax(dim=(1, 2))
    assert (diff > 1e-3).all()


def test_mult_source_changes_reach_only_its_own_crossmodal_blocks() -> None:
    enc = encoder("mult", MULT)
    seen: dict[str, torch.Tensor] = {}
    for source in ("audio", "video"):
        enc.crossmodal["text"][source].register_forward_hook(
            lambda mod, args, out, key=source: seen.__setitem__(key, out))
    inputs = batch()
    with torch.no_grad():
        enc(inputs)
        before = dict(seen)
        x, lengths = inputs["audio"]
        pad = torch.arange(T["audio"])[None, :] >= lengths[:, None]
        enc({**inputs, "audio": (x.masked_fill(pad[..., None], float("nan")), lengths)})
        torch.testing.assert_close(seen["audio"], before["audio"])  # source padding: no change
        enc({**inputs, "audio": (x + 1.0 * ~pad[..., None], lengths)})
    valid = torch.arange(T["text"])[None, :] < inputs["text"][1][:, None]
    assert (seen["audio"] - before["audio"])[valid].abs().amax() > 1e-3  # attention reads audio
    torch.testing.assert_close(seen["video"], before["video"])  # video → text does not see audio


# ----------------------------------------------------------------------------- MFN


def test_mfn_dman_width_softmax_and_gates() -> None:
    enc = encoder("mfn", MFN)
    hidden = 4 + 6 + 6  # audio (mfn_hiddens), text, video
    assert enc.memory.attention[0].in_features == enc.memory.attention[-1].out_features == 2 * hidden
    assert enc.out_dim == hidden + MFN["mfn_mem"]
    with torch.no_grad():
        run = enc.trace(batch())
    assert run["attention"].shape == (4, MFN["mfn_steps"], 2 * hidden)
    torch.testing.assert_close(run["attention"].sum(-1), torch.ones(4, MFN["mfn_steps"]))
    for gate in ("gamma1", "gamma2"):
        assert run[gate].shape == (4, MFN["mfn_steps"], MFN["mfn_mem"])
        assert (run[gate] >= 0).all() and (run[gate] <= 1).all() and run[gate].std() > 0
    # u_t = γ1 ⊙ u_{t−1} + γ2 ⊙ tanh(û_t), from u_0 = 0
    u = torch.cat([torch.zeros(4, 1, MFN["mfn_mem"]), run["memory"][:, :-1]], dim=1)
    torch.testing.assert_close(run["memory"], run["gamma1"] * u + run["gamma2"] * run["proposal"])


def test_mfn_memory_fuses_the_views_and_feeds_back_only_when_asked() -> None:
    inputs = batch()
    x, lengths = inputs["audio"]
    louder = {**inputs, "audio": (x * 3.0 + 1.0, lengths)}
    for feedback in (False, True):
        enc = encoder("mfn", {**MFN, "mfn_memory_feedback": feedback})
        with torch.no_grad():
            a, b = enc.trace(inputs), enc.trace(louder)
        assert (a["memory"][:, -1] - b["memory"][:, -1]).abs().amax() > 1e-3  # audio reaches u
        text = slice(4, 10)  # the text view's hidden state (views in sorted order)
        text_moved = (a["h"][:, text] - b["h"][:, text]).abs().amax()
        # isolated LSTMs (the paper): audio cannot reach the text LSTM; LSTHMs read it via u
        assert (text_moved > 1e-4) if feedback else (text_moved == 0)
    assert all(cell.memory_gates.in_features == MFN["mfn_mem"] for cell in enc.cells.values())
    with torch.no_grad():
        out = enc(inputs)
        for cell in enc.cells.values():
            cell.memory_gates.weight.zero_()
        assert (enc(inputs) - out).abs().amax() > 1e-4  # the gates read z = u_{t−1}


# ----------------------------------------------------------------------------- a toy task


def xor_split(n: int, rng: np.random.Generator, modalities=("audio", "text")) -> SplitData:
    """The label is whether the signs of text's and audio's first feature agree: each modality
    alone says nothing about it (chance 0.5), the two together decide it."""
    signs = {m: rng.choice([-1.0, 1.0], n) for m in ("audio", "text")}
    feats = {}
    for m in modalities:
        t = {"audio": 9, "text": 5}[m]
        lengths = rng.integers(2, t + 1, n)
        x = rng.normal(scale=0.5, size=(n, t, 3)).astype(np.float32)
        x[:, :, 0] += signs[m][:, None]
        x[np.arange(t)[None, :] >= lengths[:, None]] = 0.0
        feats[m] = (x, lengths)
    y = (signs["audio"] == signs["text"]).astype(np.float32)
    return SplitData(feats, [f"u{i}" for i in range(n)], labels={"sarcasm": y})


HP = {"lr": 5e-3, "batch_size": 32, "max_epochs": 30, "patience": 6,
      "mult_dim": 8, "mult_heads": 2, "mult_layers": 1, "mult_embed_dropout": 0.0,
      "mult_attn_dropout": 0.0, "mult_dropout": 0.0, "mult_out_dropout": 0.0,
      "mfn_steps": 4, "mfn_hidden": 8, "mfn_mem": 8, "mfn_att_hidden": 16, "mfn_mem_hidden": 16,
      "mfn_gate_hidden": 16, "mfn_att_dropout": 0.0, "mfn_mem_dropout": 0.0, "mfn_gate_dropout": 0.0}


@pytest.mark.parametrize("name", ["mult", "mfn"])
def test_learns_a_cross_modal_interaction(name: str) -> None:
    def run(modalities):
        rng = np.random.default_rng(0)
        splits = (("train", 300), ("valid", 100), ("test", 200))
        data = TrainingData({s: xor_split(n, rng, modalities) for s, n in splits}, [])
        return train_one_seed(data, name, {"sarcasm": 1.0}, HP, seed=0, device="cpu")

    both = run(("audio", "text"))
    losses = both.curves["train_loss"]
    assert losses[-1] < 0.5 * losses[0] and both.test_metrics["sarcasm"]["acc"] > 0.9
    # control: text alone carries no information about the label (seeds 0-1 gave 0.44-0.57)
    assert run(("text",)).test_metrics["sarcasm"]["acc"] < 0.65
