"""Fusion models, masked multi-task loss and the training loop on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectflow.train.loop import (
    SplitData,
    TrainingData,
    apply_standardiser,
    emotion_pos_weight,
    fit_standardiser,
    predict,
    prepare,
    run_epoch,
    train_and_evaluate,
    train_one_seed,
)
from affectflow.train.models import (
    MODEL_NAMES,
    build_model,
    masked_resample,
    multitask_loss,
    normalize_tasks,
    per_sample_losses,
)

DIMS = {"audio": 6, "text": 5, "video": 4}
MAX_T = {"audio": 12, "text": 8, "video": 1}  # video: one vector per utterance
TASKS = {"emotion": {"weight": 1.0, "n_classes": 4}, "sentiment": 0.7, "sarcasm": 0.5}
CLASSES = ["neutral", "happy", "sad", "angry"]
SMALL = {"hidden": 16, "ef_steps": 8}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and a busy 2-core box makes 2 threads spin."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def random_batch(b: int = 5, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = {}
    for m, d in DIMS.items():
        lengths = torch.randint(1, MAX_T[m] + 1, (b,), generator=g)
        lengths[0] = MAX_T[m]  # one full-length row, the rest uneven
        valid = torch.arange(MAX_T[m])[None, :, None] < lengths[:, None, None]
        x = torch.randn(b, MAX_T[m], d, generator=g) * valid
        out[m] = (x, lengths)
    return out


def with_junk_padding(batch, extra: int = 7, junk: float = float("nan")):
    """Same sequences, `extra` more padded steps, and junk in every padded position."""
    out = {}
    for m, (x, lengths) in batch.items():
        x = torch.cat([x, torch.zeros(x.shape[0], extra, x.shape[2])], dim=1)
        pad = torch.arange(x.shape[1])[None, :] >= lengths[:, None]
        out[m] = (x.masked_fill(pad[..., None], junk), lengths)
    return out


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shapes_and_padding_invariance(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, DIMS, TASKS, SMALL).eval()
    batch = random_batch()
    with torch.no_grad():
        out = model(batch)
        out_junk = model(with_junk_padding(batch, junk=float("nan")))
        out_big = model(with_junk_padding(batch, junk=1e4))
    assert out["emotion"].shape == (5, 4)
    assert out["sentiment"].shape == (5,) and out["sarcasm"].shape == (5,)
    for task in out:
        assert torch.isfinite(out[task]).all()
        torch.testing.assert_close(out_junk[task], out[task], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(out_big[task], out[task], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_single_modality_and_missing_modality(name: str) -> None:
    model = build_model(name, {"text": 5}, {"sarcasm": 1.0}, SMALL)
    batch = random_batch()
    out = model({"text": batch["text"]})
    assert set(out) == {"sarcasm"} and out["sarcasm"].shape == (5,)
    out["sarcasm"].sum().backward()  # gradients flow
    with pytest.raises(KeyError):
        build_model(name, DIMS, TASKS, SMALL)({"text": batch["text"]})


def test_hybrid_fusion_weights_are_learnable_convex() -> None:
    model = build_model("ef_lf_avg", DIMS, TASKS, SMALL)
    w = model.encoder.fusion_weights()
    torch.testing.assert_close(w, torch.tensor([0.5, 0.5]))
    total, _ = multitask_loss(model(random_batch()), {"sentiment": torch.randn(5)}, model.tasks)
    total.backward()
    grad = model.encoder.mix_logits.grad
    assert grad is not None and grad.abs().sum() > 0


def test_masked_resample_hand_example_and_mean() -> None:
    x = torch.tensor([[[1.0], [2.0], [3.0], [99.0]]])
    out = masked_resample(x, torch.tensor([3]), 2)
    # step 0 covers frames [0, 1.5): (1*1 + 2*0.5)/1.5 ; step 1 covers [1.5, 3): (2*0.5 + 3*1)/1.5
    torch.testing.assert_close(out[0, :, 0], torch.tensor([2 / 1.5, 4 / 1.5]))
    one = masked_resample(torch.tensor([[[4.0, -1.0]]]), torch.tensor([1]), 5)
    torch.testing.assert_close(one, torch.tensor([[4.0, -1.0]]).expand(1, 5, 2)[None][0])
    b = random_batch(b=6, seed=1)["audio"]
    res = masked_resample(b[0], b[1], 7)
    mean = b[0].sum(1) / b[1][:, None]
    torch.testing.assert_close(res.mean(1), mean, rtol=1e-5, atol=1e-6)


def test_unknown_model_and_zero_weight_task() -> None:
    with pytest.raises(ValueError):
        build_model("ef_lf_trans", DIMS, TASKS, SMALL)
    specs = normalize_tasks({"emotion": 1.0, "sentiment": 0.0, "sarcasm": {"lambda": 0.3}}, 4)
    assert set(specs) == {"emotion", "sarcasm"} and specs["sarcasm"].weight == 0.3
    assert set(build_model("lf_avg", DIMS, specs, SMALL).heads) == {"emotion", "sarcasm"}


def test_missing_labels_contribute_nothing() -> None:
    torch.manual_seed(0)
    specs = normalize_tasks({**TASKS, "sentiment": {"weight": 0.7, "loss": "mse"}})
    outputs = {
        "emotion": torch.randn(4, 4, requires_grad=True),
        "sentiment": torch.randn(4, requires_grad=True),
        "sarcasm": torch.randn(4, requires_grad=True),
    }
    nan = float("nan")
    targets = {
        "emotion": torch.tensor([[1, 0, 0, 0], [nan] * 4, [0, 0, 1, 0], [nan] * 4]),
        "sentiment": torch.tensor([0.5, nan, nan, -1.0]),
        "sarcasm": torch.tensor([nan, nan, nan, nan]),
    }
    pw = torch.tensor([3.0, 1.0, 2.0, 1.0])
    total, parts = multitask_loss(outputs, targets, specs, pw)
    total.backward()
    assert torch.isfinite(total)
    assert parts["sarcasm"] == 0.0 and torch.count_nonzero(outputs["sarcasm"].grad) == 0
    assert torch.count_nonzero(outputs["emotion"].grad[[1, 3]]) == 0
    assert torch.count_nonzero(outputs["sentiment"].grad[[1, 2]]) == 0
    # labelled samples: same per-sample losses as computing them on those rows alone
    # emotion: PyTorch's default mean over the labelled rows' B·C elements, times those 2 rows
    emo = 2 * torch.nn.functional.binary_cross_entropy_with_logits(
        outputs["emotion"][[0, 2]], targets["emotion"][[0, 2]], pos_weight=pw)
    sen = ((outputs["sentiment"][[0, 3]] - targets["sentiment"][[0, 3]]) ** 2).sum()
    torch.testing.assert_close(total, (1.0 * emo + 0.7 * sen) / 4)
    losses = per_sample_losses(outputs, targets, specs, pw)
    assert losses["emotion"][1].tolist() == [True, False, True, False]


def test_standardiser_fits_valid_train_frames_only() -> None:
    x = np.array([[[1.0], [3.0], [100.0]], [[5.0], [0.0], [0.0]]], np.float32)
    lengths = np.array([2, 1])
    stats = fit_standardiser({"a": (x, lengths)})
    sd = np.std([1, 3, 5])  # the 100 and the zeros are padding
    assert stats["a"][0][0] == pytest.approx(3.0) and stats["a"][1][0] == pytest.approx(sd)
    z, _ = apply_standardiser({"a": (x, lengths)}, stats)["a"]
    assert z[0, 2, 0] == 0.0 and z[1, 1, 0] == 0.0 and z[0, 0, 0] == pytest.approx(-2 / sd)
    with pytest.raises(ValueError):
        apply_standardiser({"a": (x, np.array([4, 1]))}, stats)  # length beyond T
    labels = np.array([[1, 0], [1, 0], [0, 1], [0, 0], [np.nan, np.nan]], np.float32)
    pw = emotion_pos_weight(labels)
    np.testing.assert_allclose(pw, [2 / 2, 3 / 1])


# ----------------------------------------------------------------------------- training


def synthetic_split(n: int, rng: np.random.Generator, missing: float = 0.15) -> SplitData:
    """All labels are functions of the 'text' modality's mean; audio/video are noise."""
    feats = {}
    for m, d in DIMS.items():
        lengths = rng.integers(1, MAX_T[m] + 1, n)
        x = rng.normal(size=(n, MAX_T[m], d)).astype(np.float32)
        x[np.arange(MAX_T[m])[None, :] >= lengths[:, None]] = 0.0
        # offset/scale the valid frames (the standardiser undoes it); padding stays 0
        feats[m] = (np.where(x != 0, x * np.float32(3.0) + np.float32(1.0), x), lengths)
    z, lengths = feats["text"]
    mean = (z.sum(1) - lengths[:, None]) / (3.0 * lengths[:, None])  # mean of the N(0, 1) draws
    emotion = (mean[:, 0] > 0).astype(np.int64) * 2 + (mean[:, 1] > 0)
    sentiment = np.clip(mean[:, 2], -3, 3).astype(np.float32)
    sarcasm = (mean[:, 3] > 0).astype(np.float32)
    drop = lambda: rng.random(n) < missing  # noqa: E731
    emotion[drop()] = -1
    sentiment[drop()] = np.nan
    sarcasm[drop()] = np.nan
    return SplitData(feats, [f"u{i}" for i in range(n)], emotion, sentiment, sarcasm)


@pytest.fixture(scope="module")
def data() -> TrainingData:
    rng = np.random.default_rng(42)
    sizes = {"train": 400, "valid": 120, "test": 240}
    return TrainingData({s: synthetic_split(n, rng) for s, n in sizes.items()}, CLASSES)


def shuffled(data: TrainingData, seed: int = 0) -> TrainingData:
    """Control: train/valid labels permuted across utterances (test untouched)."""
    rng = np.random.default_rng(seed)
    splits = dict(data.splits)
    for s in ("train", "valid"):
        sp = splits[s]
        perm = rng.permutation(sp.n)
        labels = (sp.emotion[perm], sp.sentiment[perm], sp.sarcasm[perm])
        splits[s] = SplitData(sp.features, sp.utt_ids, *labels)
    return TrainingData(splits, data.emotion_classes)


HP = {"hidden": 32, "ef_steps": 8, "max_epochs": 25, "patience": 5, "lr": 3e-3}


def test_learns_signal_and_shuffled_control_stays_at_chance(data: TrainingData) -> None:
    real = train_one_seed(data, "ef_lf_avg", TASKS, HP, seed=0, device="cpu")
    m = real.test_metrics
    assert m["emotion"]["uar"] > 0.7 and m["emotion"]["wacc_avg"] > 0.75  # chance 0.25 / 0.5
    assert m["sarcasm"]["acc"] > 0.8
    assert m["sentiment"]["acc2_non0"] > 0.85 and m["sentiment"]["corr"] > 0.9
    # bookkeeping: metrics on labelled test rows only; curves per epoch; best epoch restored
    n_emo = int((data.splits["test"].emotion >= 0).sum())
    assert real.confusion["emotion"].shape == (4, 4) and real.confusion["emotion"].sum() == n_emo
    assert real.confusion["sarcasm"].sum() == int(np.isfinite(data.splits["test"].sarcasm).sum())
    n_epochs = len(real.curves["train_loss"])
    assert len(real.curves["valid_emotion_wacc_avg"]) == n_epochs
    assert 1 <= real.best_epoch <= n_epochs
    assert real.curves["valid_loss"][real.best_epoch - 1] == min(real.curves["valid_loss"])
    assert real.test_predictions["emotion_prob"].shape == (240, 4)
    assert len(real.test_predictions["utt_id"]) == 240

    # A model fit to shuffled labels is a random smooth function of the ~15 input means, so its
    # agreement with the true (input-determined) labels scatters by ~1/sqrt(15), not 1/sqrt(N):
    # over 8 data/seed draws the control reached at most uar 0.36, acc 0.56, |corr| 0.44.
    control = shuffled(data)
    ctrl_run = train_one_seed(control, "ef_lf_avg", TASKS, HP, seed=0, device="cpu")
    ctrl = ctrl_run.test_metrics
    assert ctrl["emotion"]["uar"] < 0.45
    assert ctrl["sarcasm"]["acc"] < 0.65
    assert abs(ctrl["sentiment"]["corr"]) < 0.5
    # the control overfits, so early stopping fires; the returned model has the best epoch's weights
    curve = ctrl_run.curves["valid_loss"]
    assert len(curve) < HP["max_epochs"] and ctrl_run.best_epoch == len(curve) - HP["patience"]
    prep = prepare(control, TASKS)
    pos_weight = torch.from_numpy(emotion_pos_weight(prep.targets["train"]["emotion"]))
    args = (prep.feats["valid"], prep.targets["valid"], prep.specs, pos_weight, 256, torch.device("cpu"))
    assert run_epoch(ctrl_run.model, *args)[0] == pytest.approx(curve[ctrl_run.best_epoch - 1], rel=1e-5)


def test_same_seed_same_result_and_seeds_differ(data: TrainingData) -> None:
    hp = {**HP, "max_epochs": 3}
    a = train_one_seed(data, "ef_lf_lstm", TASKS, hp, seed=1, device="cpu")
    b = train_one_seed(data, "ef_lf_lstm", TASKS, hp, seed=1, device="cpu")
    c = train_one_seed(data, "ef_lf_lstm", TASKS, hp, seed=2, device="cpu")
    assert a.curves == b.curves and a.test_metrics == b.test_metrics
    for key in ("emotion_prob", "sentiment", "sarcasm_prob"):
        np.testing.assert_array_equal(a.test_predictions[key], b.test_predictions[key])
    assert not np.array_equal(a.test_predictions["sentiment"], c.test_predictions["sentiment"])


def test_train_and_evaluate_aggregates_seeds(data: TrainingData) -> None:
    hp = {**HP, "max_epochs": 4}
    out = train_and_evaluate(data, "lf_avg", {"sarcasm": 1.0}, hp, seeds=[0, 1], device="cpu")
    assert [r.seed for r in out["per_seed"]] == [0, 1]
    accs = [r.test_metrics["sarcasm"]["acc"] for r in out["per_seed"]]
    assert out["aggregate"]["sarcasm"]["acc"]["mean"] == pytest.approx(np.mean(accs))
    assert out["aggregate"]["sarcasm"]["acc"]["std"] == pytest.approx(np.std(accs, ddof=1))
    assert set(out["aggregate"]) == {"sarcasm"}
    assert out["per_seed"][0].to_dict()["confusion"]["sarcasm"]  # JSON-ready lists
    # the kept model + train statistics reproduce the test predictions from raw features
    seed1 = out["per_seed"][1]
    again = predict(seed1, data.splits["test"].features)["sarcasm_prob"]
    np.testing.assert_allclose(again, seed1.test_predictions["sarcasm_prob"], rtol=1e-6, atol=1e-7)


def test_task_without_training_labels_is_rejected(data: TrainingData) -> None:
    sp = data.splits["train"]
    no_sarcasm = SplitData(sp.features, sp.utt_ids, sp.emotion, sp.sentiment, None)
    bad = TrainingData({**data.splits, "train": no_sarcasm}, CLASSES)
    with pytest.raises(ValueError, match="sarcasm"):
        train_one_seed(bad, "ef_avg", TASKS, HP, seed=0, device="cpu")
    minus_one = np.where(np.isnan(sp.sarcasm), -1.0, sp.sarcasm)  # -1 is not a sarcasm label
    bad = TrainingData({**data.splits, "train": SplitData(sp.features, sp.utt_ids, sp.emotion,
                                                          sp.sentiment, minus_one)}, CLASSES)
    with pytest.raises(ValueError, match="sarcasm labels"):
        train_one_seed(bad, "ef_avg", TASKS, HP, seed=0, device="cpu")
