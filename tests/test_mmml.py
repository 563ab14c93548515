"""MMML (paper 002), feature-input variant: the three losses, cross-attention really reading the
other modality, and the three fusion variants."""

from __future__ import annotations

import pytest
import torch

from affectflow.train.models import build_model, split_hparams
from affectflow.train.trainer import StepBatch
from affectflow.train.unimodal_labels import GroundTruthUnimodalHook

from test_models import ZOO_SMALL, one_thread, random_batch  # noqa: F401

DIMS = {"audio": 6, "text": 5}


def model(**hp):
    torch.manual_seed(0)
    return build_model("mmml", DIMS, {"sentiment": 1.0}, {**ZOO_SMALL, **hp}).eval()


def batch():
    full = random_batch()
    return {m: full[m] for m in DIMS}


def test_three_heads_three_losses() -> None:
    net = model()
    out = net(batch())
    assert set(out.aux) == {"pred/audio", "pred/text"} and out["sentiment"].shape == (5,)
    hook = GroundTruthUnimodalHook(weight=0.5)
    hook.modalities, hook.task = ["audio", "text"], "sentiment"
    y = torch.tensor([1.0, -2.0, float("nan"), 0.5, 0.0])
    step = StepBatch(None, {}, {"sentiment": y}, 1)
    extra = hook.extra_loss(None, step, out)
    ok = torch.isfinite(y)
    want = sum(((out.aux[f"pred/{m}"] - y.nan_to_num(0)).abs() * ok).sum() / 5 for m in DIMS)
    torch.testing.assert_close(extra, 0.5 * want)
    extra.backward()  # each unimodal head is trained by its own loss
    assert net.encoder.unimodal_heads["text"].weight.grad.abs().sum() > 0
    single = model(unimodal=[])
    assert not single(batch()).aux  # the single-loss ablation has no unimodal heads


def test_cross_attention_reads_the_other_modality() -> None:
    net = model()
    b = batch()
    changed = dict(b, audio=(b["audio"][0] + 1.0, b["audio"][1]))
    with torch.no_grad():
        a, c = net(b), net(changed)
    assert not torch.allclose(a.aux["pred/text"], c.aux["pred/text"])  # text's CLS saw the audio
    one = build_model("mmml", {"text": 5}, {"sentiment": 1.0}, ZOO_SMALL).eval()
    assert one({"text": b["text"]})["sentiment"].shape == (5,)  # no other modality: self-attention only


@pytest.mark.parametrize("variant", ["concat", "transformer"])
def test_fusion_variants_build_and_differ(variant: str) -> None:
    b = batch()
    with torch.no_grad():
        base, other = model()(b)["sentiment"], model(mmml_variant=variant)(b)["sentiment"]
    assert other.shape == base.shape and not torch.allclose(base, other)
    _, cfg = split_hparams("mmml", {"mmml_variant": variant})
    assert cfg.mmml_dim == 1024 and cfg.mmml_heads == 16 and cfg.mmml_layers == 5  # the paper's
