"""The model registry ↔ config schema, the Trainer's hooks, save → load for every model, and
paired bootstrap CIs on cases with a known answer."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from affectflow.config import load_schema
from affectflow.evaluate.bootstrap import paired_bootstrap
from affectflow.train.data import prepare
from affectflow.train.loop import train_one_seed
from affectflow.train.models import MODELS, split_hparams
from affectflow.train.trainer import Hook, Trainer, TrainerConfig

from dag_helpers import REPO
from test_models import TASKS, ZOO_SMALL, one_thread, synthetic_split  # noqa: F401
from affectflow.train.data import TrainingData

SMALL = {"hidden": 8, "ef_steps": 4, "trans_heads": 2, "trans_ffn": 16, "max_epochs": 3,
         "patience": 2, "batch_size": 16, **ZOO_SMALL}


@pytest.fixture(scope="module")
def data() -> TrainingData:
    rng = np.random.default_rng(3)
    splits = {s: synthetic_split(n, rng) for s, n in (("train", 80), ("valid", 30), ("test", 30))}
    return TrainingData(splits, emotion_classes=["neutral", "happy", "sad", "angry"])


def test_schema_models_and_hparams_come_from_the_registry() -> None:
    schema = load_schema(REPO / "workflow/schemas/config.schema.yaml")
    plain, entry = schema["properties"]["training"]["properties"]["models"]["items"]["oneOf"]
    assert plain["enum"] == entry["properties"]["model"]["enum"] == list(MODELS)
    assert {f"{f}_{b}" for f in ("ef", "lf", "ef_lf") for b in ("avg", "lstm", "trans")} <= set(MODELS)
    properties = schema["definitions"]["hparams"]["properties"]
    fields = {f.name for f in dataclasses.fields(TrainerConfig)}
    for model in MODELS.values():
        fields |= {f.name for f in dataclasses.fields(model.config_type)}
    assert set(properties) == fields
    with pytest.raises(ValueError, match="hidden_size"):
        split_hparams("ef_lf_avg", {"hidden_size": 3})
    with pytest.raises(ValueError, match="trans_heads"):
        split_hparams("ef_trans", {"trans_heads": 0})
    trainer, model = split_hparams("ef_lf_trans", {"lr": 0.5, "trans_layers": 3, "svm_c": 2.0})
    assert trainer.lr == 0.5 and model.trans_layers == 3 and trainer.weight_decay == 1e-5


class Recorder(Hook):
    def __init__(self) -> None:
        self.batches: dict[int, list[np.ndarray]] = {}
        self.epochs: list[int] = []
        self.started = 0

    def on_train_start(self, trainer) -> None:
        self.started += 1

    def on_batch_end(self, trainer, batch, outputs, loss) -> None:
        self.batches.setdefault(batch.epoch, []).append(batch.idx.copy())
        assert set(outputs) == set(trainer.prep.specs) and torch.isfinite(loss)

    def on_epoch_end(self, trainer, epoch, logs) -> None:
        self.epochs.append(epoch)
        assert {"train_loss", "valid_loss", "sarcasm/acc"} <= set(logs)


class PullHeadsToZero(Hook):
    """An extra loss: a huge penalty on the sarcasm head's weights."""

    def extra_loss(self, trainer, batch, outputs):
        return 1e3 * trainer.model.heads["sarcasm"].weight.pow(2).sum()


def test_trainer_hooks_see_every_sample_once_per_epoch_and_extra_losses_train(data) -> None:
    prep = prepare(data, TASKS)
    cfg, mcfg = split_hparams("ef_lf_avg", {**SMALL, "max_epochs": 3, "patience": 5, "lr": 0.05})
    from affectflow.train.models import build_model

    torch.manual_seed(0)
    model = build_model("ef_lf_avg", data.modality_dims(), prep.specs, mcfg)
    recorder = Recorder()
    result = Trainer(model, prep, cfg, torch.device("cpu"), seed=0, hooks=[recorder]).fit()
    assert recorder.started == 1 and recorder.epochs == [1, 2, 3] and len(result.curves["valid_loss"]) == 3
    for epoch, batches in recorder.batches.items():
        seen = np.concatenate(batches)
        assert sorted(seen.tolist()) == list(range(80)), epoch  # each row once, with its index
    assert not np.array_equal(np.concatenate(recorder.batches[1]), np.concatenate(recorder.batches[2]))
    torch.manual_seed(0)
    pulled = build_model("ef_lf_avg", data.modality_dims(), prep.specs, mcfg)
    Trainer(pulled, prep, cfg, torch.device("cpu"), hooks=[PullHeadsToZero()]).fit()
    assert pulled.heads["sarcasm"].weight.abs().max() < 0.3 * model.heads["sarcasm"].weight.abs().max()


def test_early_stopping_on_a_named_metric_and_grad_clipping(data) -> None:
    hp = {**SMALL, "max_epochs": 6, "patience": 2, "early_stop": "sarcasm/acc", "grad_clip": 0.5,
          "scheduler": "cosine", "lr_groups": {"heads": 0.01}}
    result = train_one_seed(data, "lf_lstm", TASKS, hp, seed=0, device="cpu")
    accs = result.curves["valid_sarcasm_acc"]
    assert accs[result.best_epoch - 1] == max(accs)
    with pytest.raises(ValueError, match="early_stop"):
        train_one_seed(data, "linear", TASKS, {**hp, "early_stop": "sarcasm/nope"}, 0, "cpu")


@pytest.mark.parametrize("name", [n for n, e in MODELS.items() if e.kind == "torch"])
def test_save_load_gives_identical_predictions(name, data, tmp_path) -> None:
    from affectflow.train.saved import load_model, save_model

    if MODELS[name].reads == "turns":  # a turn and its history: the text of the rows around it
        data = TrainingData({s: dataclasses.replace(d, features={
            t: tuple(np.roll(a, k, axis=0) for a in d.features["text"]) for k, t in enumerate(("text", "text@1"))})
            for s, d in data.splits.items()}, emotion_classes=data.emotion_classes)
    result = train_one_seed(data, name, TASKS, SMALL, seed=1, device="cpu")
    save_model(tmp_path / "model.pt", result, architecture=name, model_id=name, hparams=SMALL,
               modality_dims=data.modality_dims(), views={}, sources={})
    loaded = load_model(tmp_path / "model.pt")
    again = loaded.predict(data.splits["test"].features)
    for key, value in again.items():
        np.testing.assert_allclose(value, result.test_predictions[key], rtol=1e-5, atol=1e-6)
    assert loaded.specs == result.specs and loaded.seed == 1


def test_bootstrap_known_answers() -> None:
    y = np.array([0, 1] * 50)
    perfect, wrong = y.copy(), 1 - y
    ci = paired_bootstrap(y, [perfect], [wrong], "acc", n_classes=2, resamples=300)
    assert ci["diff"] == 1.0 and ci["low"] == ci["high"] == 1.0 and ci["significant"]
    same = paired_bootstrap(y, [perfect], [perfect.copy()], "f1_weighted", 2, 300)
    assert same["diff"] == same["low"] == same["high"] == 0.0 and not same["significant"]
    # one flipped answer out of 100: a real but tiny difference the CI cannot tell from 0
    near = perfect.copy()
    near[0] = 1 - near[0]
    small = paired_bootstrap(y, [perfect], [near], "acc", 2, 1000)
    assert small["diff"] == pytest.approx(0.01) and small["low"] == 0.0 and not small["significant"]
    # on the full set the vectorised metrics equal scikit-learn's
    from sklearn.metrics import f1_score, recall_score

    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 3, 200), rng.integers(0, 3, 200)
    full = np.arange(200)[None, :]
    from affectflow.evaluate.bootstrap import metric_per_resample

    assert metric_per_resample(t, p, full, "f1_weighted", 3)[0] == pytest.approx(f1_score(t, p, average="weighted"))
    assert metric_per_resample(t, p, full, "f1_macro", 3)[0] == pytest.approx(f1_score(t, p, average="macro"))
    assert metric_per_resample(t, p, full, "uar", 3)[0] == pytest.approx(recall_score(t, p, average="macro"))
    values = rng.normal(size=50)
    mae = paired_bootstrap(values, [values + 0.1], [values + 0.3], "mae", resamples=100)
    assert mae["diff"] == pytest.approx(-0.2) and mae["significant"]


def test_gradient_accumulation_steps_every_k_batches(data) -> None:
    """accumulate=k: one optimiser step per k batches (and one for the rest of the epoch)."""
    from affectflow.train.models import build_model

    prep = prepare(data, TASKS)
    counts = {}
    for k in (1, 2, 3):
        cfg, mcfg = split_hparams("ef_lf_avg", {**SMALL, "max_epochs": 1, "accumulate": k})
        torch.manual_seed(0)
        trainer = Trainer(build_model("ef_lf_avg", data.modality_dims(), prep.specs, mcfg), prep, cfg,
                          torch.device("cpu"))
        step, calls = trainer.optimiser.step, []
        trainer.optimiser.step = lambda *a, **kw: (calls.append(1), step(*a, **kw))[1]
        trainer.fit()
        counts[k] = len(calls)
    assert counts == {1: 5, 2: 3, 3: 2}  # 80 rows in batches of 16: 5 batches
