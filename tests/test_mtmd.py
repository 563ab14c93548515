"""MTMD's mechanisms (paper 004): EMA momentum models, the FIFO queue, class-positive contrastive
targets, the momentum fusion factors and the loss terms each ablation switch removes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectflow.train.data import TrainingData, prepare
from affectflow.train.distillation import NO_CLASS, MtmdHook, Queue, contrastive, sentiment_class
from affectflow.train.models import build_model, split_hparams
from affectflow.train.trainer import Trainer

from test_models import synthetic_split

SMALL = {"mtmd_hidden": 8, "mtmd_layers": 1, "mtmd_heads": 2, "mtmd_dim": 8, "mtmd_fusion_dim": 8,
         "mtmd_queue": 16, "max_epochs": 2, "patience": 5, "batch_size": 8}


@pytest.fixture(scope="module")
def data() -> TrainingData:
    torch.set_num_threads(1)
    rng = np.random.default_rng(11)
    return TrainingData({s: synthetic_split(n, rng) for s, n in (("train", 40), ("valid", 16), ("test", 16))},
                        emotion_classes=["neutral", "happy", "sad", "angry"])


def fit(data: TrainingData, **hp):
    prep = prepare(data, {"sentiment": 1.0})
    trainer_cfg, cfg = split_hparams("mtmd", {**SMALL, **hp})
    torch.manual_seed(0)
    model = build_model("mtmd", data.modality_dims(), prep.specs, cfg)
    hook = MtmdHook(cfg)
    trainer = Trainer(model, prep, trainer_cfg, torch.device("cpu"), seed=0, hooks=[hook])
    return model, hook, trainer


def test_momentum_models_are_the_ema_of_the_online_ones_after_k_steps(data) -> None:
    model, hook, trainer = fit(data)
    enc = model.encoder
    assert enc.teacher == "text" and enc.students == ["audio", "video"]
    assert not any(p.requires_grad for p in enc.momentum.parameters())
    eta = enc.config.mtmd_momentum
    expected = [p.detach().clone() for p in enc.momentum["audio"].parameters()]
    online = list(enc.online["audio"].parameters())
    for _ in range(3):  # k = 3 updates with the online weights moved between them
        with torch.no_grad():
            for p in online:
                p.add_(0.1)
        enc.momentum_update()
        expected = [eta * e + (1 - eta) * p.detach() for e, p in zip(expected, online)]
    for e, p_m in zip(expected, enc.momentum["audio"].parameters()):
        torch.testing.assert_close(p_m, e)
    # in a real run the momentum copy moves, and slowly: 0.5 % of the way per step
    before = [p.clone() for p in enc.momentum["video"].parameters()]
    trainer.fit()
    moved = [float((a - b).abs().max()) for a, b in zip(enc.momentum["video"].parameters(), before)]
    assert max(moved) > 0
    gap = max(float((a - b.detach()).abs().max()) for a, b in zip(enc.momentum["video"].parameters(),
                                                        enc.online["video"].parameters()))
    assert gap > max(moved) / 10  # it lags behind the online model


def test_queue_is_fifo_and_keeps_the_newest_rows() -> None:
    queue = Queue(5)
    for step in range(4):  # batches of 2 rows holding their step number
        rows = torch.full((2, 1), float(step))
        keys, cls = queue.keys({"f": rows}, torch.tensor([step, step]))
        assert keys["f"][:2].flatten().tolist() == [step, step]  # the batch comes first
        queue.push({"f": rows}, torch.tensor([step, step]))
    assert queue.rows["f"].flatten().tolist() == [3, 3, 2, 2, 1]  # oldest (0, 0 and one 1) dropped
    assert queue.classes.tolist() == [3, 3, 2, 2, 1]
    empty = Queue(0)
    empty.push({"f": torch.ones(2, 1)}, torch.tensor([0, 1]))
    assert empty.keys({"f": torch.zeros(1, 1)}, torch.tensor([1]))[0]["f"].shape == (1, 1)


def test_contrastive_positives_are_the_keys_of_the_same_class() -> None:
    assert sentiment_class(torch.tensor([-1.2, 0.0, 2.0, float("nan")])).tolist() == [0, 1, 2, NO_CLASS]
    q = torch.eye(2)
    keys = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    key_cls = torch.tensor([2, 2, 0])
    tau = torch.tensor(1.0)
    loss = contrastive(q, keys, torch.tensor([2, 0]), key_cls, tau)
    # query 0 (class 2): positives keys 0 and 1, Y = (½, ½, 0); logits (1, 1, 0)
    log_v = torch.log_softmax(torch.tensor([1.0, 1.0, 0.0]), 0)
    torch.testing.assert_close(loss[0], -(0.5 * log_v[0] + 0.5 * log_v[1]))
    # query 1 (class 0): one positive, key 2; logits (0, 0, 1)
    torch.testing.assert_close(loss[1], -torch.log_softmax(torch.tensor([0.0, 0.0, 1.0]), 0)[2])
    none = contrastive(q, keys, torch.tensor([NO_CLASS, 0]), key_cls, tau)
    assert none[0] == 0.0
    # the momentum form: KL(U‖V) is 0 when the target similarities equal the online ones
    same = contrastive(q, keys, torch.tensor([2, 0]), key_cls, tau, q @ keys.T)
    torch.testing.assert_close(same, torch.zeros(2), atol=1e-6, rtol=0)


def test_fusion_factors_move_with_momentum_and_switches_remove_terms(data) -> None:
    model, hook, trainer = fit(data, mtmd_fusion_momentum=0.9, lr=0.05)
    trainer.fit()
    damped = model.encoder.fusion_factors.detach().clone()
    free_model, _, free = fit(data, mtmd_fusion_momentum=0.0, lr=0.05)
    free.fit()
    free_move = (free_model.encoder.fusion_factors.detach() - 1).abs().sum()
    assert 0 < (damped - 1).abs().sum() < free_move  # momentum slows the factors down
    off, _, trainer_off = fit(data, mtmd_fusion_factors=False)
    trainer_off.fit()
    assert off.encoder.fusion_factors.tolist() == [1.0, 1.0, 1.0]
    assert set(hook.parts) == {"gt", "reg", "cls", "feat", "fusion"} and all(v > 0 for v in hook.parts.values())
    _, no_queue, t_no_queue = fit(data, mtmd_queue=0)
    t_no_queue.fit()
    assert no_queue.queue.classes is None
    assert hook.queue.rows["feat/text"].shape == (16, 8)  # Q rows of width mtmd_dim
