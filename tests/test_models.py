"""Fusion models, masked multi-task loss and the training loop on synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectflow.train.data import (
    SplitData,
    TrainingData,
    apply_standardiser,
    emotion_pos_weight,
    fit_standardiser,
    prepare,
)
from affectflow.train.loop import predict, train_and_evaluate, train_one_seed
from affectflow.train.models import MODELS, build_model, split_hparams
from affectflow.train.trainer import Trainer
from affectflow.train.models.layers import masked_resample
from affectflow.train.tasks import multitask_loss, normalize_tasks, per_sample_losses

MODEL_NAMES = [name for name, entry in MODELS.items() if entry.kind == "torch"]
TURNS = ("text", "text@1", "text@2")  # what a `reads="turns"` model (HAN) reads: a turn and its history

DIMS = {"audio": 6, "text": 5, "video": 4}
MAX_T = {"audio": 12, "text": 8, "video": 1}  # video: one vector per utterance
# emotion as the paper trains it: multi-label BCE (a categorical task defaults to softmax CE)
TASKS = {"emotion": {"weight": 1.0, "n_classes": 4, "loss": "bce"}, "sentiment": 0.7, "sarcasm": 0.5}
CLASSES = ["neutral", "happy", "sad", "angry"]
# the fusion baselines' widths, and the zoo's at test size (their defaults are the papers')
ZOO_SMALL = {"mult_dim": 8, "mult_heads": 2, "mult_layers": 1, "mfn_hidden": 8, "mfn_mem": 16,
             "mfn_steps": 6, "sugrm_dim": 8, "sugrm_heads": 2, "sugrm_layers": 1, "selfmm_hidden": 8,
             "selfmm_fusion_dim": 16, "mtmd_hidden": 8, "mtmd_layers": 1, "mtmd_heads": 2,
             "mtmd_dim": 8, "mtmd_fusion_dim": 8, "mtmd_queue": 32, "mmml_dim": 16,
             "mmml_heads": 2, "mmml_ffn": 32, "mmml_layers": 1}
SMALL = {"hidden": 16, "ef_steps": 8, **ZOO_SMALL}


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


def dims_for(name: str) -> dict[str, int]:
    return {t: DIMS["text"] for t in TURNS} if MODELS[name].reads == "turns" else DIMS


def batch_for(name: str, b: int = 5, seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """`random_batch`, or for a turns model three turns (the history turns: other rows' text)."""
    batch = random_batch(b, seed)
    if MODELS[name].reads != "turns":
        return batch
    x, lengths = batch["text"]
    return {t: (x.roll(k, 0), lengths.roll(k, 0)) for k, t in enumerate(TURNS)}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_shapes_and_padding_invariance(name: str) -> None:
    torch.manual_seed(0)
    model = build_model(name, dims_for(name), TASKS, SMALL).eval()
    batch = batch_for(name)
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
        build_model(name, dims_for(name), TASKS, SMALL)({"text": batch["text"]})


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
        build_model("ef_lf_gru", DIMS, TASKS, SMALL)
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
    trainer = Trainer(ctrl_run.model, prep, split_hparams("ef_lf_avg", HP)[0], torch.device("cpu"))
    valid_loss = trainer.run_epoch(prep.feats["valid"], prep.targets["valid"], 256)[0]
    assert valid_loss == pytest.approx(curve[ctrl_run.best_epoch - 1], rel=1e-5)


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


# ----------------------------------------------------------------------------- tasks by kind


def vector_data(label_fn, sizes=(400, 120, 240), seed: int = 0, pooled=("audio",),
                dims=None, **meta) -> TrainingData:
    """Each utterance draws one vector v_m ~ N(0, 1) per modality; pooled modalities get it as a
    T=1 sequence, the others as 1-8 noisy frames around it; all valid frames are offset/scaled
    (the standardiser undoes it). `label_fn({m: v_m}) -> {task: labels}`."""
    rng = np.random.default_rng(seed)
    dims = dims or {"audio": 6, "text": 5}
    splits = {}
    for split, n in zip(("train", "valid", "test"), sizes):
        v = {m: rng.normal(size=(n, d)).astype(np.float32) for m, d in dims.items()}
        feats = {}
        for m, d in dims.items():
            t_max = 1 if m in pooled else 8
            lengths = np.ones(n, np.int64) if m in pooled else rng.integers(1, t_max + 1, n)
            x = v[m][:, None, :] + 0.3 * rng.normal(size=(n, t_max, d)) * (t_max > 1)
            valid = np.arange(t_max)[None, :, None] < lengths[:, None, None]
            feats[m] = (np.where(valid, 3 * x + 1, 0).astype(np.float32), lengths)
        ids = [f"{split}{i}" for i in range(n)]
        splits[split] = SplitData(feats, ids, labels=label_fn(v))
    return TrainingData(splits, **meta)


def quartile_class(v) -> dict[str, np.ndarray]:
    """4 classes from the quartiles of one dimension of the text modality."""
    return {"mood": np.digitize(v["text"][:, 0], [-0.674, 0.0, 0.674]).astype(np.int64)}


MOOD = {"classes": {"mood": ["calm", "content", "tense", "angry"]}, "kinds": {"mood": "categorical"}}


def test_multiclass_task_learns_and_shuffled_control_stays_at_chance() -> None:
    data = vector_data(quartile_class, **MOOD)
    hp = {"hidden": 16, "max_epochs": 25, "patience": 5, "lr": 3e-3}
    real = train_one_seed(data, "lf_avg", {"mood": 1.0}, hp, seed=0, device="cpu")
    m = real.test_metrics["mood"]
    assert m["acc"] > 0.7 and m["uar"] > 0.7 and m["f1_macro"] > 0.65  # chance 0.25
    assert not any(k.startswith("wacc") for k in m)  # per-class view only for emotion / bce
    assert real.confusion["mood"].shape == (4, 4) and real.confusion["mood"].sum() == 240
    assert real.classes == {"mood": MOOD["classes"]["mood"]}
    assert real.task_kinds == {"mood": "categorical"}
    prob = real.test_predictions["mood_prob"]
    assert prob.shape == (240, 4)
    np.testing.assert_allclose(prob.sum(axis=1), 1.0, rtol=1e-5)  # softmax
    assert len(real.curves["valid_mood_uar"]) == len(real.curves["train_loss"])

    rng = np.random.default_rng(1)
    splits = dict(data.splits)
    for s in ("train", "valid"):
        sp = splits[s]
        splits[s] = SplitData(sp.features, sp.utt_ids, labels={"mood": rng.permutation(sp.labels["mood"])})
    control = train_one_seed(TrainingData(splits, **MOOD), "lf_avg", {"mood": 1.0}, hp, 0, "cpu")
    assert control.test_metrics["mood"]["uar"] < 0.4


def test_linear_model_learns_a_linearly_separable_problem() -> None:
    w = np.random.default_rng(7).normal(size=(3, 6))

    def labels(v):
        return {"kind3": (v["audio"] @ w.T).argmax(axis=1), "flag": (v["audio"][:, 1] > 0).astype(np.float32),
                "level": (v["audio"] @ w[0] / 2).astype(np.float32)}

    meta = {"classes": {"kind3": ["a", "b", "c"]},
            "kinds": {"kind3": "categorical", "flag": "binary", "level": "regression"}}
    data = vector_data(labels, **meta)
    tasks = {"kind3": 1.0, "flag": 1.0, "level": {"weight": 1.0, "loss": "mse"}}
    hp = {"max_epochs": 60, "patience": 8, "lr": 0.05}
    result = train_one_seed(data, "linear", tasks, hp, seed=0, device="cpu")
    m = result.test_metrics
    assert m["kind3"]["acc"] > 0.9 and m["flag"]["acc"] > 0.95 and m["level"]["corr"] > 0.98
    model = result.model
    # no hidden layer: the heads are the only parameters, on the concatenated modality means
    assert sum(p.numel() for p in model.parameters()) == (11 + 1) * (3 + 1 + 1)
    assert model.encoder.out_dim == 11 and result.fusion_weights is None
    assert {"acc2_non0", "mae", "corr"} <= set(m["level"])
    assert "acc7" not in m["level"]  # no label scale known: the [-3, 3] bins mean nothing
    assert {"acc", "f1", "precision", "recall", "precision_weighted", "recall_weighted",
            "f1_weighted", "uar"} == set(m["flag"])
    assert result.confusion["flag"].shape == (2, 2) and "level" not in result.confusion
    assert result.classes == {"kind3": ["a", "b", "c"], "flag": ["0", "1"]}


RING_TASKS = {"ring": 1.0, "kind3": {"weight": 1.0, "class_weight": "balanced"}, "level": 1.0}


def ring_data(**kwargs) -> TrainingData:
    """A ring (no linear model separates it, an RBF SVM does) as a binary, a 3-class and a
    regression task on 3-d vectors."""
    def labels(v):
        radius = np.linalg.norm(v["audio"][:, :2], axis=1)
        return {"ring": (radius > 1.18).astype(np.float32),
                "kind3": np.digitize(radius, [0.9, 1.5]).astype(np.int64),
                "level": (radius ** 2).astype(np.float32)}

    return vector_data(labels, dims={"audio": 3}, classes={"kind3": ["in", "mid", "out"]},
                       kinds={"ring": "binary", "kind3": "categorical", "level": "regression"}, **kwargs)


def test_svm_learns_a_nonlinear_problem_and_picks_c_on_valid() -> None:
    from affectflow.train.classic import train_svm_seed

    data = ring_data()
    tasks = RING_TASKS
    hp = {"svm_c": [0.01, 1.0, 10.0]}
    svm = train_svm_seed(data, tasks, hp, seed=0)
    linear = train_one_seed(data, "linear", tasks, {"max_epochs": 40, "lr": 0.05}, 0, "cpu")
    m = svm.test_metrics
    assert m["ring"]["acc"] > 0.85 and linear.test_metrics["ring"]["acc"] < 0.7
    assert m["kind3"]["uar"] > 0.75 and m["level"]["corr"] > 0.9
    # C chosen on valid: the tiny C underfits and is not chosen
    curve = svm.curves["valid_ring_acc"]
    assert len(curve) == 3 and curve[0] < max(curve) and svm.curves["svm_c"] == [0.01, 1.0, 10.0]
    assert svm.estimators["ring"].C > 0.01
    assert svm.test_predictions["kind3_prob"].shape == (240, 3) and svm.confusion["kind3"].sum() == 240
    with pytest.raises(ValueError, match="loss: ce"):
        train_svm_seed(data, {"kind3": {"weight": 1.0, "loss": "bce"}}, hp, seed=0)



def test_linear_model_is_a_masked_mean_and_a_linear_layer() -> None:
    model = build_model("linear", DIMS, TASKS, {}).eval()
    batch = random_batch()
    with torch.no_grad():
        out = model(batch)
    means = torch.cat([batch[m][0].sum(1) / batch[m][1][:, None] for m in sorted(DIMS)], dim=-1)
    for task, head in model.heads.items():
        expected = means @ head.weight.T + head.bias
        torch.testing.assert_close(out[task], expected if task == "emotion" else expected[:, 0])


def test_arbitrary_task_names_multiclass_and_multilabel_in_one_model() -> None:
    def labels(v):
        sent = np.digitize(v["text"][:, 2], [-0.43, 0.43]).astype(np.int64)
        sent[::10] = -1  # missing
        emo = np.digitize(v["text"][:, 0], [-0.674, 0.0, 0.674]).astype(np.int64)
        return {"sentiment_class": sent, "emotion": emo}

    classes = {"sentiment_class": ["negative", "neutral", "positive"], "emotion": CLASSES}
    data = vector_data(labels, sizes=(200, 60, 90), classes=classes,
                       kinds={"sentiment_class": "categorical", "emotion": "categorical"})
    assert data.emotion_classes == CLASSES
    tasks = {"sentiment_class": {"weight": 0.5}, "emotion": {"weight": 1.0, "loss": "bce"}}
    specs = prepare(data, tasks).specs
    assert specs["sentiment_class"].loss == "ce" and specs["sentiment_class"].n_outputs == 3
    assert specs["emotion"].multilabel and specs["emotion"].n_outputs == 4
    model = build_model("ef_lf_avg", data.modality_dims(), specs, SMALL)
    out = model(random_batch_for(data))
    assert out["sentiment_class"].shape == (5, 3) and out["emotion"].shape == (5, 4)

    result = train_one_seed(data, "ef_lf_avg", tasks, {**HP, "max_epochs": 4}, seed=0, device="cpu")
    m = result.test_metrics
    assert {"acc", "uar", "f1_weighted", "f1_macro"} == set(m["sentiment_class"])
    assert {"wacc_avg", "f1_avg", "wacc_angry", "f1_neutral", "acc", "uar", "f1_macro"} <= set(m["emotion"])
    p_sent = result.test_predictions["sentiment_class_prob"]
    np.testing.assert_allclose(p_sent.sum(axis=1), 1.0, rtol=1e-5)
    assert result.test_predictions["emotion_prob"].shape == (90, 4)
    n_sent = int((data.splits["test"].labels["sentiment_class"] >= 0).sum())
    assert result.confusion["sentiment_class"].sum() == n_sent
    assert set(result.curves) >= {"valid_sentiment_class_uar", "valid_emotion_uar", "valid_emotion_wacc_avg"}
    assert result.classes["sentiment_class"] == classes["sentiment_class"]


def random_batch_for(data: TrainingData, b: int = 5) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    return {m: (torch.from_numpy(x[:b]), torch.from_numpy(lengths[:b]))
            for m, (x, lengths) in data.splits["train"].features.items()}


def test_task_kinds_losses_and_their_errors() -> None:
    kinds = {"mood": "categorical", "flag": "binary", "level": "regression"}
    classes = {"mood": ["a", "b", "c"]}
    specs = normalize_tasks({"mood": 1.0, "flag": 1.0, "level": 1.0}, kinds=kinds, classes=classes)
    assert [(s.kind, s.loss, s.n_outputs) for s in specs.values()] == [
        ("categorical", "ce", 3), ("binary", "bce", 1), ("regression", "l1", 1)]
    for task, bad in [("mood", {"loss": "l1"}), ("flag", {"loss": "ce"}), ("level", {"loss": "bce"}),
                      ("mood", {"loss": "bce", "class_weight": "balanced"}),
                      ("level", {"class_weight": "balanced"}), ("mood", {"class_weight": "inverse"})]:
        with pytest.raises(ValueError, match=task):
            normalize_tasks({task: {"weight": 1.0, **bad}}, kinds=kinds, classes=classes)
    with pytest.raises(ValueError, match="unknown kind"):
        normalize_tasks({"valence": 1.0})  # not a historical name, no label type given
    with pytest.raises(ValueError, match="needs its classes"):
        normalize_tasks({"mood": 1.0}, kinds=kinds)
    # the historical names without label types keep their kinds
    legacy = normalize_tasks({"emotion": {"n_classes": 4, "loss": "bce"}, "sentiment": 1, "sarcasm": 1})
    assert [s.kind for s in legacy.values()] == ["categorical", "regression", "binary"]


def test_class_weights_change_the_loss_as_expected() -> None:
    from affectflow.train.data import balanced_class_weight, loss_weights

    y_train = np.array([0, 0, 0, 1, np.nan], np.float32)  # class 2 absent from train
    w = balanced_class_weight(y_train, 3)
    np.testing.assert_allclose(w, [4 / (2 * 3), 4 / (2 * 1), 1.0])  # n / (k · n_c), k = 2 present
    assert w[y_train[:4].astype(int)].mean() == pytest.approx(1.0)  # λ keeps its scale
    specs = normalize_tasks({"mood": {"weight": 2.0, "class_weight": "balanced"}},
                            kinds={"mood": "categorical"}, classes={"mood": ["a", "b", "c"]})
    torch.manual_seed(0)
    logits = torch.randn(5, 3)
    y = torch.tensor([0.0, 0.0, 1.0, 2.0, float("nan")])
    ce = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 0, 1, 2, 0]), reduction="none")
    wt = torch.from_numpy(w)
    total, parts = multitask_loss({"mood": logits}, {"mood": y}, specs, {"mood": wt})
    torch.testing.assert_close(parts["mood"], (w[0] * (ce[0] + ce[1]) + w[1] * ce[2] + w[2] * ce[3]) / 5)
    torch.testing.assert_close(total, 2.0 * parts["mood"])
    _, plain = multitask_loss({"mood": logits}, {"mood": y}, specs)
    torch.testing.assert_close(plain["mood"], ce[:4].sum() / 5)
    # binary: the minority positive class is up-weighted
    flag = normalize_tasks({"flag": {"weight": 1.0, "class_weight": "balanced"}}, kinds={"flag": "binary"})
    wb = loss_weights(flag, {"flag": np.array([1, 0, 0, 0], np.float32)})["flag"]
    np.testing.assert_allclose(wb, [4 / 6, 2.0])
    z = torch.tensor([0.3, -0.2])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(z, torch.tensor([1.0, 0.0]), reduction="none")
    _, parts = multitask_loss({"flag": z}, {"flag": torch.tensor([1.0, 0.0])}, flag,
                              {"flag": torch.from_numpy(wb)})
    torch.testing.assert_close(parts["flag"], (2.0 * bce[0] + 4 / 6 * bce[1]) / 2)
    # prepare() computes them from the training split; ce targets reject multi-hot input
    data = vector_data(quartile_class, sizes=(40, 12, 12), **MOOD)
    prep = prepare(data, {"mood": {"weight": 1.0, "class_weight": "balanced"}})
    np.testing.assert_allclose(prep.loss_weights["mood"],
                               balanced_class_weight(prep.targets["train"]["mood"], 4))
    with pytest.raises(ValueError, match="class-index"):
        multitask_loss({"mood": logits}, {"mood": torch.eye(3)[[0, 1, 2, 0, 1]]}, specs)


# ----------------------------------------------------------------------------- dataset files


def write_store(folder, rows, name: str) -> None:
    from affectflow.features.base import FeatureResult
    from affectflow.features.store import Provenance, StoreRow, write_partition

    half = (len(rows) + 1) // 2
    for shard, chunk in enumerate((rows[:half], rows[half:])):
        store_rows = [StoreRow(u, "sig", reason=r) if r else
                      StoreRow(u, "sig", FeatureResult(seq, pooled)) for u, seq, pooled, r in chunk]
        write_partition(folder / f"shard={shard}.parquet", store_rows, Provenance(name, "1", {}, "toy", shard))


LABELS = {"emotion": {"type": "categorical", "classes": ["neutral", "happy", "sad"]},
          "sentiment_class": {"type": "categorical", "classes": ["negative", "neutral", "positive"]},
          "flag": {"type": "binary"}, "score": {"type": "regression", "min": -3, "max": 3}}


@pytest.fixture()
def toy_corpus(tmp_path):
    """12 utterances, two stores (egemaps-like: 3-dim frames + 5-dim pooled; text-like: 4-dim
    frames), u05 rejected by the text store, u03 without an emotion label."""
    import pandas as pd

    rng = np.random.default_rng(0)
    ids = [f"u{i:02d}" for i in range(12)]
    audio = [(u, rng.normal(size=(3 + i % 4, 3)), rng.normal(size=5), None) for i, u in enumerate(ids)]
    text = [(u, rng.normal(size=(2 + i % 3, 4)), rng.normal(size=4), "no text" if u == "u05" else None)
            for i, u in enumerate(ids)]
    write_store(tmp_path / "features" / "egemaps", audio, "egemaps")
    write_store(tmp_path / "features" / "text", text, "text")
    frame = pd.DataFrame({
        "utt_id": ids, "split": ["train", "valid", "test"] * 4,
        "emotion": [None if u == "u03" else ("neutral", "happy", "sad")[i % 3] for i, u in enumerate(ids)],
        "sentiment_class": [("negative", "neutral", "positive")[(i // 3) % 3] for i in range(12)],
        "flag": [float(i % 2) for i in range(12)], "score": [(i % 7) - 3.0 for i in range(12)]})
    frame.to_parquet(tmp_path / "manifest.parquet")
    pooled = {u: p for u, _, p, _ in audio}
    return tmp_path, pooled


def test_assemble_dataset_with_pooled_views(toy_corpus) -> None:
    from affectflow.train.dataset import assemble_dataset, load_dataset, modality_sources

    root, pooled = toy_corpus
    stores, views = modality_sources(root, {"audio": {"extractor": "egemaps", "view": "pooled"},
                                            "text": "text"})
    assert views == {"audio": "pooled", "text": "sequence"}
    assert stores["audio"] == str(root / "features" / "egemaps")
    tasks = {"emotion": {"weight": 1.0, "loss": "bce"}, "sentiment_class": {"weight": 1.0},
             "flag": {"weight": 1.0}, "score": {"weight": 0.5}}
    counts = assemble_dataset(root / "manifest.parquet", stores, LABELS, root / "ds.npz", views=views)
    assert counts == {"split": {"train": 4, "valid": 4, "test": 3}}  # u05 (test) has no text features
    data = load_dataset(root / "ds.npz")
    assert data.kinds == {t: LABELS[t]["type"] for t in tasks}
    assert data.classes == {t: LABELS[t]["classes"] for t in ("emotion", "sentiment_class")}
    assert data.views == views and data.emotion_classes == LABELS["emotion"]["classes"]
    assert data.sources["audio"]["extractor"] == "egemaps" and data.sources["text"]["view"] == "sequence"
    train = data.splits["train"]
    x, lengths = train.features["audio"]
    assert x.shape == (4, 1, 5) and lengths.tolist() == [1, 1, 1, 1]
    np.testing.assert_allclose(x[:, 0], np.stack([pooled[u] for u in train.utt_ids]), rtol=1e-6)
    text_x, text_lengths = train.features["text"]  # sequence view: padded to the split's longest
    assert text_x.shape[2] == 4 and text_x.shape[1] == text_lengths.max()
    assert train.utt_ids == ["u00", "u03", "u06", "u09"]
    assert train.labels["emotion"].tolist() == [0, -1, 0, 0]
    assert train.labels["sentiment_class"].tolist() == [0, 1, 2, 0]
    assert train.labels["flag"].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert data.modality_dims() == {"audio": 5, "text": 4}
    # a model reading audio only keeps u05, which lacks text features only
    audio_only = load_dataset(root / "ds.npz", modalities=["audio"])
    assert "u05" in audio_only.splits["test"].utt_ids and "u05" not in data.splits["test"].utt_ids
    # a loss that does not fit the label type fails when training prepares the tasks, naming it
    with pytest.raises(ValueError, match="score"):
        prepare(data, {"score": {"weight": 1, "loss": "ce"}})
    with pytest.raises(ValueError, match="view"):
        modality_sources(root, {"audio": {"extractor": "egemaps", "view": "mean"}})
    # the folds of a cross-validation protocol: index columns over the same rows, one file
    import pandas as pd

    frame = pd.read_parquet(root / "manifest.parquet")
    frame["split_cv_1"] = ["test", "train", "valid", None] * 3
    frame.to_parquet(root / "manifest.parquet")
    counts = assemble_dataset(root / "manifest.parquet", stores, LABELS, root / "folds.npz",
                              views=views, split_columns=["split", "split_cv_1"])
    assert counts["split_cv_1"] == {"train": 2, "valid": 3, "test": 3}  # u05 (train here) lacks text
    fold = load_dataset(root / "folds.npz", "split_cv_1")
    assert fold.splits["train"].utt_ids == ["u01", "u09"]
    assert fold.splits["test"].utt_ids == ["u00", "u04", "u08"]
    with pytest.raises(ValueError, match="split_cv_2"):
        load_dataset(root / "folds.npz", "split_cv_2")


def test_dataset_to_result_files_self_describing_and_figures(toy_corpus, tmp_path) -> None:
    import json

    from affectflow.report.figures import class_labels, evaluate_runs
    from affectflow.train.dataset import assemble_dataset, modality_sources
    from affectflow.train.run import train_to_files
    from affectflow.train.saved import load_model

    root, _ = toy_corpus
    stores, views = modality_sources(root, {"audio": {"extractor": "egemaps", "view": "pooled"}, "text": "text"})
    tasks = {"emotion": {"weight": 1.0, "loss": "bce"}, "sentiment_class": {"weight": 1.0},
             "flag": {"weight": 1.0}, "score": {"weight": 0.5}}
    assemble_dataset(root / "manifest.parquet", stores, LABELS, root / "ds.npz", views=views)
    out = tmp_path / "runs"
    paths = []
    for model in ("linear", "lf_avg", "ef_trans"):
        results = [out / model / f"s{s}" / "result.json" for s in (0, 1)]
        weights = [out / model / f"s{s}" / "model.pt" for s in (0, 1)]
        train_to_files(root / "ds.npz", model, [0, 1], tasks,
                       {"max_epochs": 2, "hidden": 8, "trans_heads": 2, "trans_ffn": 16}, "cpu",
                       results, weights)
        paths += results
        saved = torch.load(weights[0])  # the default weights_only=True
        assert saved["architecture"] == model and saved["views"] == views
        assert saved["task_specs"]["sentiment_class"]["classes"] == LABELS["sentiment_class"]["classes"]
        assert saved["task_specs"]["emotion"]["loss"] == "bce"
        assert saved["sources"]["audio"]["extractor"] == "egemaps"
        assert isinstance(saved["norm_stats"]["audio"][0], torch.Tensor)
        # rebuilt with no training data: the same test predictions
        loaded = load_model(weights[1])
        assert loaded.seed == 1 and loaded.modality_dims == {"audio": 5, "text": 4}
        from affectflow.train.dataset import load_dataset

        test = load_dataset(root / "ds.npz").splits["test"]
        record = json.loads(results[1].read_text())
        again = loaded.predict(test.features)
        np.testing.assert_allclose(again["flag_prob"], record["test_predictions"]["flag_prob"], rtol=1e-5)
        np.testing.assert_allclose(again["score"], record["test_predictions"]["score"], rtol=1e-5, atol=1e-6)
    record = json.loads(paths[0].read_text())
    assert record["classes"] == {"emotion": LABELS["emotion"]["classes"], "flag": ["0", "1"],
                                 "sentiment_class": LABELS["sentiment_class"]["classes"]}
    assert record["task_kinds"]["score"] == "regression" and "score" in record["test_metrics"]
    evaluate_runs(paths, tmp_path / "metrics.json", tmp_path / "figures")
    figures = {p.name for p in (tmp_path / "figures").iterdir()}
    for model in ("linear", "lf_avg"):
        assert {f"{model}_{t}_confusion.png" for t in ("emotion", "sentiment_class", "flag")} <= figures
        assert f"{model}_score_confusion.png" not in figures
    assert class_labels(record, "sentiment_class", 3) == ["negative", "neutral", "positive"]
    assert class_labels({"emotion_classes": ["a", "b"]}, "emotion", 2) == ["a", "b"]  # old records
    assert class_labels({}, "mood", 3) == ["0", "1", "2"]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {m for m in metrics if not m.startswith("@")} == {"linear", "lf_avg", "ef_trans"}
    assert "f1_macro" in metrics["linear"]["sentiment_class"]
    assert metrics["@labels"]["linear"] == {t: "S" for t in tasks}


def test_evaluate_runs_averages_folds_within_a_seed(tmp_path) -> None:
    import json

    from affectflow.report.figures import evaluate_runs

    def record(seed: int, acc: float, uar) -> dict:
        return {"model_name": "m", "seed": seed, "best_epoch": 1,
                "curves": {"train_loss": [1.0, 0.5], "valid_loss": [1.1, 0.9]},
                "test_metrics": {"flag": {"acc": acc}, "mood": {"uar": uar}},
                "confusion": {"flag": [[1, 0], [1, 2]]}, "classes": {"flag": ["no", "yes"]}}

    runs = [record(0, 0.6, 0.5), record(0, 0.8, None), record(1, 0.9, 0.7), record(1, 0.7, 0.9)]
    paths = []
    for i, r in enumerate(runs):  # model × fold × seed, as the pipeline lays them out
        paths.append(tmp_path / f"r{i}.json")
        paths[-1].write_text(json.dumps(r))
    metrics = evaluate_runs(paths, tmp_path / "metrics.json", tmp_path / "figures")
    # per seed: fold means 0.7 and 0.8 (uar: 0.5 with the undefined fold skipped, and 0.8)
    assert metrics["m"]["flag"]["acc"]["mean"] == pytest.approx(0.75)
    assert metrics["m"]["flag"]["acc"]["std"] == pytest.approx(np.std([0.7, 0.8], ddof=1))
    assert metrics["m"]["mood"]["uar"]["mean"] == pytest.approx(0.65)
    assert (tmp_path / "figures" / "m_flag_confusion.png").exists()


def test_svm_through_the_training_stage_files(toy_corpus, tmp_path) -> None:
    """svm results and weights: the reloaded model reproduces the test predictions, the curves
    figure shows C selection, seeds agree (std 0)."""
    import json

    from affectflow.report.figures import evaluate_runs
    from affectflow.train.dataset import assemble_dataset, load_dataset, modality_sources
    from affectflow.train.run import train_to_files
    from affectflow.train.saved import load_model

    root, _ = toy_corpus
    stores, views = modality_sources(root, {"audio": {"extractor": "egemaps", "view": "pooled"}, "text": "text"})
    tasks = {"sentiment_class": {"weight": 1.0}, "flag": {"weight": 1.0}, "score": {"weight": 0.5}}
    assemble_dataset(root / "manifest.parquet", stores, LABELS, root / "ds.npz", views=views)
    paths = [tmp_path / f"s{seed}" / "result.json" for seed in (0, 1)]
    weights = [tmp_path / f"s{seed}" / "model.pt" for seed in (0, 1)]
    train_to_files(root / "ds.npz", "svm", [0, 1], tasks,
                   {"svm_c": [0.5, 2.0], "block_scale": "sqrt_width"}, "cpu", paths, weights,
                   model_id="svm_rbf")
    loaded = load_model(weights[-1])  # torch.load(weights_only=True) + skops, SVC/SVR only
    assert set(loaded.estimators) == set(tasks) and loaded.module is None
    assert loaded.config.block_scale == "sqrt_width"
    again = loaded.predict(load_dataset(root / "ds.npz").splits["test"].features)
    record = json.loads(paths[-1].read_text())
    assert record["model_name"] == "svm_rbf" and record["architecture"] == "svm"
    np.testing.assert_allclose(again["score"], record["test_predictions"]["score"], rtol=1e-5)
    np.testing.assert_array_equal(again["flag_prob"], record["test_predictions"]["flag_prob"])
    metrics = evaluate_runs(paths, tmp_path / "metrics.json", tmp_path / "figures")
    assert (tmp_path / "figures" / "svm_rbf_curves.png").stat().st_size > 0
    assert metrics["svm_rbf"]["flag"]["acc"]["std"] == 0.0


def test_han_rock_auxiliary_losses_never_reach_the_primary_branch() -> None:
    torch.manual_seed(0)
    dims = {t: DIMS["text"] for t in TURNS}
    model = build_model("han_rock", dims, TASKS, {**SMALL, "han_primary": "sentiment"})
    encoder = model.encoder
    assert encoder.primary == "sentiment" and set(encoder.aux_turns) == {"emotion", "sarcasm"}
    out = model(batch_for("han_rock"))
    (out["emotion"].sum() + out["sarcasm"].sum()).backward()  # the auxiliary losses only
    primary = [p for m in (encoder.primary_words, encoder.primary_turns) for p in m.parameters()]
    assert all(p.grad is None or not p.grad.any() for p in primary)
    assert any(p.grad is not None and p.grad.any() for p in encoder.aux_words.parameters())
    model.zero_grad()
    model(batch_for("han_rock"))["sentiment"].sum().backward()  # the primary reaches both branches
    assert all(p.grad is not None and p.grad.any() for p in encoder.primary_words.parameters())
    assert any(p.grad is not None and p.grad.any() for p in encoder.aux_turns["emotion"].parameters())
    with pytest.raises(ValueError, match="han_primary 'nope'"):
        build_model("han_rock", dims, TASKS, {**SMALL, "han_primary": "nope"})


def test_han_turn_order_and_history_names() -> None:
    from affectflow.train.models.han import turn_modalities

    assert turn_modalities(["text@1", "text", "text@3", "text@2"]) == ("text", ["text@3", "text@2", "text@1", "text"])
    with pytest.raises(ValueError, match="one current-turn modality"):
        turn_modalities(["text", "audio"])
    with pytest.raises(ValueError, match="do not belong"):
        turn_modalities(["text", "audio@1"])


def test_han_learns_from_the_previous_turn() -> None:
    """The label is the sign of the previous turn's mean: HAN with the history learns it, the
    current turn alone cannot (the two are independent)."""
    from affectflow.train.data import SplitData, TrainingData
    from affectflow.train.loop import train_one_seed

    rng = np.random.default_rng(0)

    def split(n: int) -> SplitData:
        now, before = (rng.normal(size=(n, 6, 5)).astype(np.float32) for _ in range(2))
        lengths = np.full(n, 6)
        y = (before.mean(axis=(1, 2)) > 0).astype(np.float32)
        return SplitData({"text": (now, lengths), "text@1": (before, lengths)}, [f"u{i}" for i in range(n)],
                         labels={"sarcasm": y})

    data = TrainingData({"train": split(300), "valid": split(100), "test": split(200)}, [])
    hp = {"hidden": 16, "han_hidden": 16, "max_epochs": 25, "patience": 6, "lr": 0.005, "batch_size": 32}
    with_history = train_one_seed(data, "han", {"sarcasm": 1.0}, hp, seed=0, device="cpu")
    alone = TrainingData({s: SplitData({"text": d.features["text"]}, d.utt_ids, labels=d.labels)
                          for s, d in data.splits.items()}, [])
    without = train_one_seed(alone, "han", {"sarcasm": 1.0}, hp, seed=0, device="cpu")
    assert with_history.test_metrics["sarcasm"]["acc"] > 0.8 > 0.65 > without.test_metrics["sarcasm"]["acc"]
