"""Self-MM's and SUGRM's unimodal label generation: formulas against literal per-sample references
on constructed features, the momentum update, and the hook inside a real training run."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from affectflow.train.data import TrainingData, prepare
from affectflow.train.models import build_model, split_hparams
from affectflow.train.models.spt import Recalibration, window_mask
from affectflow.train.trainer import Trainer
from affectflow.train.unimodal_labels import (
    UnimodalLabelHook,
    centres,
    momentum,
    selfmm_labels,
    sugrm_labels,
)

from test_models import synthetic_split


def norm(a, b) -> float:
    return math.sqrt(sum((x - y) ** 2 for x, y in zip(a, b)))


def selfmm_reference(y_m, f_m, f_s, cm, cs, lo, hi) -> float:
    """Self-MM's rule for one sample, written out as RESEARCH-NOTES states it."""
    d_m = (norm(f_m, cm[1]) - norm(f_m, cm[0])) / (norm(f_m, cm[0]) + 1e-8)
    d_s = (norm(f_s, cs[1]) - norm(f_s, cs[0])) / (norm(f_s, cs[0]) + 1e-8)
    y = 0.5 * (d_s / (d_m + 1e-8)) * y_m + 0.5 * (y_m + d_s - d_m)
    return min(max(y, lo), hi)


def sugrm_reference(y_m, f_m, f_s, cm, d_max, lo, hi, span) -> float:
    """SUGRM's rule for one sample (paper 001, §3.3)."""
    magnitude = span * min(norm(f_m, f_s), d_max) / d_max
    r_s = norm(f_s, cm[0]) / norm(f_s, cm[1])
    r_m = norm(f_m, cm[0]) / norm(f_m, cm[1])
    y = y_m + magnitude if r_s < r_m else y_m - magnitude if r_s > r_m else y_m
    return min(max(y, lo), hi)


def test_label_rules_equal_the_literal_per_sample_references() -> None:
    g = torch.Generator().manual_seed(0)
    y_m = torch.rand(50, generator=g) * 6 - 3
    f_m, f_s = torch.randn(50, 4, generator=g), torch.randn(50, 4, generator=g)
    cm = (torch.randn(4, generator=g), torch.randn(4, generator=g))
    cs = (torch.randn(4, generator=g), torch.randn(4, generator=g))
    got = selfmm_labels(y_m, f_m, f_s, cm, cs, (-3.0, 3.0))
    want = [selfmm_reference(float(y_m[i]), f_m[i].tolist(), f_s[i].tolist(),
                             [c.tolist() for c in cm], [c.tolist() for c in cs], -3, 3) for i in range(50)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-4, atol=1e-4)
    got = sugrm_labels(y_m, f_m, f_s, cm, torch.tensor(2.5), (-3.0, 3.0), 6.0)
    want = [sugrm_reference(float(y_m[i]), f_m[i].tolist(), f_s[i].tolist(),
                            [c.tolist() for c in cm], 2.5, -3, 3, 6.0) for i in range(50)]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)
    assert (got != y_m).float().mean() > 0.9  # the constructed case really moves labels


def test_label_rules_on_known_answers() -> None:
    pos, neg = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 0.0])
    f_m = torch.tensor([[0.2, 0.5], [0.0, 1.0], [0.0, 1.0]])
    y_m = torch.tensor([1.0, 0.5, -2.0])
    # a unimodal feature where the fused one is: no offset (both rules give y_m back)
    same = sugrm_labels(y_m, f_m, f_m.clone(), (pos, neg), torch.tensor(2.0), (-3.0, 3.0), 6.0)
    torch.testing.assert_close(same, y_m)
    selfmm = selfmm_labels(y_m, f_m, f_m.clone(), (pos, neg), (pos, neg), (-3.0, 3.0))
    torch.testing.assert_close(selfmm[0], y_m[0])
    # a fused feature as far from both centres (δ_m = 0): Self-MM's ratio δ_s/δ_m breaks down and
    # the rule halves y_m, the instability paper 001 names (SUGRM gives y_m back)
    torch.testing.assert_close(selfmm[1:], y_m[1:] / 2)
    # on the positive centre, at the full distance D_max: +6, clipped to 3; on the negative one: −
    at_pos = sugrm_labels(y_m[1:2], f_m[1:2], torch.tensor([[1.0, -1.0]]), (pos, neg),
                          torch.tensor(1.0), (-3.0, 3.0), 6.0)
    torch.testing.assert_close(at_pos, torch.tensor([3.0]))
    half = sugrm_labels(y_m[2:], f_m[2:], torch.tensor([[-0.5, 1.0]]), (pos, neg),
                        torch.tensor(2.0), (-3.0, 3.0), 6.0)  # 0.5 of D_max=2 → 1.5 towards −
    torch.testing.assert_close(half, torch.tensor([-3.0]))
    quarter = sugrm_labels(torch.tensor([0.0]), torch.tensor([[0.0, 1.0]]), torch.tensor([[-0.5, 1.0]]),
                           (pos, neg), torch.tensor(2.0), (-3.0, 3.0), 6.0)
    torch.testing.assert_close(quarter, torch.tensor([-1.5]))


def test_momentum_update_and_centres() -> None:
    old, new = torch.tensor([1.0]), torch.tensor([-2.0])
    torch.testing.assert_close(momentum(old, new, 2), torch.tensor([1 / 3 - 4 / 3]))
    torch.testing.assert_close(momentum(old, new, 1), new)
    y = torch.tensor([1.0])
    for epoch in range(2, 6):  # (e−1)/(e+1)·y + 2/(e+1)·ŷ applied four times with ŷ = 0
        y = momentum(y, torch.tensor([0.0]), epoch)
    torch.testing.assert_close(y, torch.tensor([1 / 3 * 2 / 4 * 3 / 5 * 4 / 6]))
    feats = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 5.0], [9.0, 9.0]])
    pos, neg = centres(feats, torch.tensor([2.0, 1.0, -1.0, 0.0]))  # 0 is neither side
    torch.testing.assert_close(pos, torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(neg, torch.tensor([0.0, 5.0]))


def test_sugrm_dmax_counts_each_extreme_row_once() -> None:
    """D_max = ‖mean F(y=max) − mean F(y=min)‖ over the rows, each once (the authors' list grew
    duplicates)."""
    hook = UnimodalLabelHook("sugrm")
    hook.y_m = torch.tensor([3.0, 3.0, -3.0, 0.5])
    hook.valid = torch.ones(4, dtype=torch.bool)
    hook.extremes = (hook.y_m == 3.0, hook.y_m == -3.0)
    hook.span, hook.scale, hook.mid, hook.modalities = 6.0, (-3.0, 3.0), 0.0, ["text"]
    fused = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    hook.bank = {"fused": fused, "text": fused.clone()}
    hook.labels = {"text": hook.y_m.clone()}
    # a text feature at distance 2 from its fused one, halfway to D_max = ‖(2, 0) − (0, 3)‖ = √13
    f_m = torch.tensor([[1.0, 1.0]])
    hook._update_labels(torch.tensor([3]), {"fused": f_m, "text": f_m + torch.tensor([[0.0, 2.0]])}, 2)
    offset = 6.0 * 2.0 / math.sqrt(13.0)
    # towards the negative centre (0, 3): direction −; momentum at epoch 2: 1/3·0.5 + 2/3·(0.5 − offset)
    assert float(hook.labels["text"][3]) == pytest.approx(0.5 / 3 + 2 / 3 * (0.5 - offset), abs=1e-5)
    assert hook.labels["text"][:3].tolist() == [3.0, 3.0, -3.0]  # other rows untouched


@pytest.mark.parametrize("model, method", [("sugrm", "sugrm"), ("sugrm", "selfmm"), ("selfmm", "selfmm")])
def test_the_hook_generates_labels_in_training(model: str, method: str) -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(5)
    data = TrainingData({s: synthetic_split(n, rng) for s, n in (("train", 64), ("valid", 24), ("test", 24))},
                        emotion_classes=["neutral", "happy", "sad", "angry"])
    prep = prepare(data, {"sentiment": 1.0})
    hp = {"max_epochs": 3, "patience": 5, "batch_size": 16, "sugrm_layers": 1, "sugrm_dim": 8,
          "sugrm_heads": 2, "selfmm_hidden": 8, "ulgm": method, "unimodal": ["text", "audio"]}
    trainer_cfg, model_cfg = split_hparams(model, hp)
    torch.manual_seed(0)
    net = build_model(model, data.modality_dims(), prep.specs, model_cfg)
    hook = UnimodalLabelHook(method)
    Trainer(net, prep, trainer_cfg, torch.device("cpu"), seed=0, hooks=[hook]).fit()
    y_m = hook.y_m
    assert hook.modalities == ["audio", "text"] and set(net.encoder.unimodal_heads if model == "sugrm"
                                                           else net.encoder.branches) == {"audio", "text"}
    assert hook.history["text"][0] == 0.0  # epoch 1 keeps y_s = y_m
    assert hook.history["audio"][-1] > 0.0 and hook.history["text"][-1] > 0.0  # later epochs move them
    missing = ~torch.isfinite(y_m)
    assert missing.any() and torch.isnan(hook.labels["text"][missing]).all()
    lo, hi = prep.specs["sentiment"].value_range or (float(y_m[~missing].min()), float(y_m[~missing].max()))
    for labels in hook.labels.values():
        assert labels[~missing].min() >= lo - 1e-6 and labels[~missing].max() <= hi + 1e-6


def test_mrm_ignores_padded_frames_and_gates_within_0_2() -> None:
    torch.manual_seed(0)
    mrm = Recalibration({"a": 3, "b": 2})
    x_a = torch.randn(2, 5, 3)
    lengths = torch.tensor([5, 2])
    junk = x_a.clone()
    junk[1, 2:] = 1e3  # padded frames of row 1
    inputs = {"a": (x_a.masked_fill(torch.arange(5)[None, :, None] >= lengths[:, None, None], 0), lengths),
              "b": (torch.randn(2, 4, 2), torch.tensor([4, 4]))}
    gates = mrm.gates(inputs)
    gates_junk = mrm.gates({**inputs, "a": (junk, lengths)})
    torch.testing.assert_close(gates["a"], gates_junk["a"])
    torch.testing.assert_close(gates["b"], gates_junk["b"])
    assert all(((g > 0) & (g < 2)).all() for g in gates.values())
    # the plain average over the padded length (the authors' pooling) would differ
    plain = torch.cat([junk.mean(1), inputs["b"][0].mean(1)], -1)
    assert not torch.allclose(mrm.squeeze(plain), mrm.squeeze(torch.cat(
        [inputs["a"][0].sum(1) / lengths[:, None], inputs["b"][0].mean(1)], -1)))


def test_spt_windows_are_sparse_proportional_and_stay_in_the_valid_part() -> None:
    mask = window_mask(torch.tensor([4, 2]), 4, torch.tensor([8, 3]), 8, window=3)
    assert mask.sum(-1)[0].tolist() == [3, 3, 3, 3]
    # query 1 of 4 over 8 context steps: window ending at ceil(2·8/4) − 1 = 3 → 1, 2, 3
    assert mask[0, 1].nonzero().flatten().tolist() == [1, 2, 3]
    # the second row reads only its 3 valid context steps, whatever the query
    assert not mask[1, :, 3:].any()
    dense = window_mask(torch.tensor([4, 2]), 4, torch.tensor([8, 3]), 8, window=0)
    assert dense[1, 0].tolist() == [True] * 3 + [False] * 5


def test_positive_and_negative_are_relative_to_the_middle_of_the_scale() -> None:
    """On a 1-5 rating the centres split at 3: a split at 0 would make every row positive and the
    negative centre empty."""
    torch.set_num_threads(1)
    rng = np.random.default_rng(2)
    data = TrainingData({s: synthetic_split(n, rng) for s, n in (("train", 48), ("valid", 16), ("test", 16))},
                        emotion_classes=["neutral", "happy", "sad", "angry"],
                        ranges={"sentiment": (-3.0, 3.0)})
    for split in data.splits.values():  # the same labels moved onto a 0-6 scale around 3
        split.labels["sentiment"] = split.labels["sentiment"] + 3.0
    data.ranges["sentiment"] = (0.0, 6.0)
    prep = prepare(data, {"sentiment": 1.0})
    hook = UnimodalLabelHook("selfmm")
    trainer_cfg, cfg = split_hparams("selfmm", {"max_epochs": 1, "batch_size": 16, "selfmm_hidden": 8})
    torch.manual_seed(0)
    net = build_model("selfmm", data.modality_dims(), prep.specs, cfg)
    Trainer(net, prep, trainer_cfg, torch.device("cpu"), hooks=[hook]).fit()
    assert hook.mid == 3.0
    y = hook.y_m[hook.valid]
    pos, neg = centres(hook.bank["fused"][hook.valid], y - hook.mid)
    assert (y < 3).any() and (y > 3).any() and not torch.equal(pos, neg) and neg.abs().sum() > 0
