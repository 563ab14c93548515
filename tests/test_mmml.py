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


@pytest.fixture(scope="module")
def tiny_encoders(tmp_path_factory):
    """A tiny BERT (the packaged MiniLM tokenizer's vocabulary) and a tiny Data2Vec-audio, built
    locally with save_pretrained: the real loading path with no hub."""
    from transformers import BertConfig, BertModel, Data2VecAudioConfig, Data2VecAudioModel

    root = tmp_path_factory.mktemp("encoders")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=128)).save_pretrained(root / "text")
    Data2VecAudioModel(Data2VecAudioConfig(
        hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        conv_dim=(8, 8), conv_kernel=(10, 3), conv_stride=(5, 2), num_conv_pos_embeddings=4,
        num_conv_pos_embedding_groups=2, mask_time_prob=0.0)).save_pretrained(root / "audio")
    return {"text": str(root / "text"), "audio": str(root / "audio")}


def raw_batch():
    from affectflow.features.registry import get_extractor
    from affectflow.features.base import Utterance

    tokens = get_extractor("tokens").from_params({"max_tokens": 12})
    texts = ["what a great day", "no", "i am not sure about this one at all really"]
    ids = [tokens.extract(Utterance("u", None, None, None, None, t)).values for t in texts]
    length = torch.tensor([len(i) for i in ids])
    x_t = torch.zeros(3, int(length.max()), 1)
    for i, v in enumerate(ids):
        x_t[i, :len(v)] = torch.from_numpy(v)
    g = torch.Generator().manual_seed(0)
    samples = torch.tensor([1600, 800, 1200])
    x_a = torch.randn(3, 1600, 1, generator=g) * (torch.arange(1600)[None, :, None] < samples[:, None, None])
    return {"text": (x_t, length), "audio": (x_a, samples)}


def test_end_to_end_encoders_fine_tune_with_the_feature_encoder_frozen(tiny_encoders) -> None:
    torch.manual_seed(0)
    net = build_model("mmml", {"text": 1, "audio": 1}, {"sentiment": 1.0},
                      {**ZOO_SMALL, "mmml_encoders": tiny_encoders})
    audio = net.encoder.encoders["audio"]
    assert audio.audio and not net.encoder.encoders["text"].audio
    frozen = {k: v.clone() for k, v in audio.net.feature_extractor.state_dict().items()}
    trained = {k: v.clone() for k, v in audio.net.encoder.state_dict().items()}
    text_before = net.encoder.encoders["text"].net.embeddings.word_embeddings.weight.clone()
    batch = raw_batch()
    # padding from the convolutions' output lengths: 1600 → (1600−10)/5+1 = 319 → (319−3)/2+1 = 159
    _, frames = audio(*batch["audio"])
    assert frames.tolist() == [159, 79, 119]
    optimiser = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    out = net(batch)
    y = torch.tensor([1.0, -1.0, 0.5])
    loss = (out["sentiment"] - y).abs().mean() + sum((out.aux[f"pred/{m}"] - y).abs().mean() for m in DIMS)
    loss.backward()
    optimiser.step()
    for k, v in audio.net.feature_extractor.state_dict().items():
        torch.testing.assert_close(v, frozen[k])  # the convolutional feature encoder is frozen
    assert any(not torch.equal(v, trained[k]) for k, v in audio.net.encoder.state_dict().items())
    assert not torch.equal(net.encoder.encoders["text"].net.embeddings.word_embeddings.weight, text_before)
    # the text encoder reads the ids: another sentence changes its prediction
    other = dict(batch, text=(batch["text"][0].roll(1, 0), batch["text"][1].roll(1, 0)))
    net.eval()
    with torch.no_grad():
        assert not torch.allclose(net(batch).aux["pred/text"], net(other).aux["pred/text"])


def test_raw_inputs_are_neither_standardised_nor_cut() -> None:
    import numpy as np

    from affectflow.train.data import fit_standardiser
    from affectflow.train.dataset import modality_views

    _, views = modality_views({"text": "tokens", "audio": "waveform", "face": "face"})
    assert views == {"text": "raw", "audio": "raw", "face": "sequence"}
    with pytest.raises(ValueError, match="raw view"):
        modality_views({"text": {"extractor": "tokens", "view": "pooled"}})
    x = np.array([[[101.0], [7592.0], [102.0]]], np.float32)
    stats = fit_standardiser({"text": (x, np.array([3]))}, raw=["text"])
    assert stats["text"][0].tolist() == [0.0] and stats["text"][1].tolist() == [1.0]


def test_end_to_end_model_saves_and_loads_with_identical_predictions(tiny_encoders, tmp_path) -> None:
    import numpy as np

    from affectflow.train.data import SplitData, TrainingData
    from affectflow.train.loop import train_one_seed
    from affectflow.train.saved import load_model, save_model

    batch = raw_batch()

    def split(k: int) -> SplitData:
        feats = {m: (np.tile(x.numpy(), (k, 1, 1)), np.tile(n.numpy(), k)) for m, (x, n) in batch.items()}
        y = np.tile(np.array([1.0, -1.0, 0.5], np.float32), k)
        return SplitData(feats, [f"u{i}" for i in range(3 * k)], labels={"sentiment": y})

    data = TrainingData({"train": split(2), "valid": split(1), "test": split(1)},
                        views={"text": "raw", "audio": "raw"})
    hp = {**ZOO_SMALL, "mmml_encoders": tiny_encoders, "max_epochs": 1, "batch_size": 3}
    result = train_one_seed(data, "mmml", {"sentiment": 1.0}, hp, seed=0, device="cpu")
    assert result.norm_stats["text"][0].tolist() == [0.0]  # token ids are not standardised
    save_model(tmp_path / "model.pt", result, architecture="mmml", model_id="mmml", hparams=hp,
               modality_dims=data.modality_dims(), views=data.views, sources={})
    again = load_model(tmp_path / "model.pt").predict(data.splits["test"].features)
    np.testing.assert_allclose(again["sentiment"], result.test_predictions["sentiment"], rtol=1e-5, atol=1e-6)
