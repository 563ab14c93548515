"""Train one multi-task fusion model per seed, evaluate on test, aggregate over seeds.

Protocol (Dai et al. 2021, Sec. 6.1): Adam (β 0.9/0.999, weight decay 1e-5), early stopping on
the validation loss with the best weights restored, several seeds reported as mean ± std.
Features are standardised per dimension with statistics of the training split's valid frames.
"""

from __future__ import annotations

import copy
import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from affectflow.evaluate.metrics import (
    aggregate_over_seeds,
    binary_metrics,
    confusion,
    emotion_metrics,
    sentiment_metrics,
)
from affectflow.train.models import (
    MultiTaskModel,
    TaskSpec,
    build_model,
    multitask_loss,
    normalize_tasks,
)

SPLITS = ("train", "valid", "test")
DEFAULT_TRAIN_HPARAMS: dict[str, Any] = {
    "lr": 1e-3,
    "batch_size": 32,
    "hidden": 64,
    "max_epochs": 60,
    "patience": 8,
    "weight_decay": 1e-5,
}
# The validation metric logged per epoch for each task (curves in SeedResult).
HEADLINE_METRIC = {"emotion": "wacc_avg", "sentiment": "acc2_non0", "sarcasm": "acc"}

Features = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass
class SplitData:
    """One split. features: {modality: (x float32 (N, T, D) zero-padded, lengths int (N,))}.

    emotion: (N,) int class index, -1 = missing (single-label); or (N, C) 0/1 multi-hot with NaN
    rows for missing (multi-label, as in the paper). sentiment: (N,) float, NaN = missing.
    sarcasm: (N,) float 0/1, NaN = missing. None = the split has no label for that task.
    """

    features: Features
    utt_ids: list[str]
    emotion: np.ndarray | None = None
    sentiment: np.ndarray | None = None
    sarcasm: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.utt_ids)


@dataclass
class TrainingData:
    """The three splits ("train", "valid", "test") and the emotion class names (column order)."""

    splits: dict[str, SplitData]
    emotion_classes: list[str] = field(default_factory=list)

    def modality_dims(self) -> dict[str, int]:
        return {m: int(x.shape[2]) for m, (x, _) in self.splits["train"].features.items()}


@dataclass
class SeedResult:
    """Everything one seed produced; `model` + `norm_stats` let `predict` label new data."""

    seed: int
    model_name: str
    best_epoch: int  # 1-based epoch whose weights were restored
    curves: dict[str, list[float]]  # train_loss, valid_loss, valid_<task>_<headline metric>
    test_metrics: dict[str, dict[str, float]]
    # utt_id, emotion_prob (N, C), sentiment (N,), sarcasm_prob (N,): only tasks with λ > 0
    test_predictions: dict[str, Any]
    confusion: dict[str, np.ndarray]  # emotion (C, C), sarcasm (2, 2); rows true, cols predicted
    fusion_weights: list[float] | None
    train_seconds: float
    model: MultiTaskModel | None = None
    norm_stats: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready view (arrays as lists; model and normalisation left out)."""

        def plain(v: Any) -> Any:
            if isinstance(v, np.ndarray):
                return v.tolist()
            if isinstance(v, dict):
                return {k: plain(x) for k, x in v.items()}
            if isinstance(v, list):
                return [plain(x) for x in v]
            return v

        keep = ("seed", "model_name", "best_epoch", "curves", "test_metrics", "test_predictions",
                "confusion", "fusion_weights", "train_seconds")
        return {k: plain(getattr(self, k)) for k in keep}


# ----------------------------------------------------------------------------- data preparation


def fit_standardiser(features: Features) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-modality, per-dimension mean/std over the valid frames (std 0 -> 1)."""
    stats = {}
    for m, (x, lengths) in features.items():
        frames = x[np.arange(x.shape[1])[None, :] < np.asarray(lengths)[:, None]].astype(np.float64)
        if not np.isfinite(frames).all():
            raise ValueError(f"modality {m!r}: non-finite values in valid training frames")
        std = frames.std(axis=0)
        stats[m] = (frames.mean(axis=0), np.where(std > 0, std, 1.0))
    return stats


def apply_standardiser(
    features: Features, stats: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> Features:
    """Standardise valid frames, set padding to 0; reject bad lengths and non-finite frames."""
    out = {}
    for m, (x, lengths) in features.items():
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.min(initial=1) < 1 or lengths.max(initial=0) > x.shape[1]:
            raise ValueError(f"modality {m!r}: lengths must lie in [1, T={x.shape[1]}]")
        mean, std = stats[m]
        mask = np.arange(x.shape[1])[None, :, None] < lengths[:, None, None]
        z = np.where(mask, (x - mean) / std, 0.0).astype(np.float32)
        if not np.isfinite(z).all():
            raise ValueError(f"modality {m!r}: non-finite values in valid frames")
        out[m] = (z, lengths)
    return out


def label_targets(split: SplitData, tasks: Mapping[str, TaskSpec]) -> dict[str, np.ndarray]:
    """Float targets of `tasks`, NaN = missing: emotion (N, C) multi-hot, sentiment/sarcasm (N,)."""
    targets: dict[str, np.ndarray] = {}
    for task, spec in tasks.items():
        v = getattr(split, task)
        shape = (split.n, spec.n_outputs) if task == "emotion" else (split.n,)
        if v is None:
            targets[task] = np.full(shape, np.nan, np.float32)
        elif task == "emotion" and v.ndim == 1:
            if v.max(initial=-1) >= spec.n_outputs:
                raise ValueError(f"emotion label {v.max()} but only {spec.n_outputs} classes")
            onehot = np.full(shape, np.nan, np.float32)
            onehot[v >= 0] = np.eye(spec.n_outputs, dtype=np.float32)[v[v >= 0].astype(int)]
            targets[task] = onehot
        else:
            targets[task] = np.asarray(v, np.float32)
        if targets[task].shape != shape:
            raise ValueError(f"{task} labels have shape {targets[task].shape}, expected {shape}")
    sarcasm = targets.get("sarcasm", np.zeros(0))
    if not np.isin(sarcasm[np.isfinite(sarcasm)], (0.0, 1.0)).all():
        raise ValueError("sarcasm labels must be 0, 1 or NaN (missing)")
    return targets


def emotion_pos_weight(train_targets: np.ndarray) -> np.ndarray:
    """negatives / positives per class on the labelled training rows (1.0 for a class with no
    positive, where re-weighting has nothing to weight)."""
    rows = train_targets[~np.isnan(train_targets).any(axis=1)]
    pos = rows.sum(axis=0)
    neg = rows.shape[0] - pos
    return np.where(pos > 0, neg / np.maximum(pos, 1), 1.0).astype(np.float32)


def make_batch(
    features: Features, targets: Mapping[str, np.ndarray], idx: np.ndarray, device: torch.device
) -> tuple[dict[str, tuple[Tensor, Tensor]], dict[str, Tensor]]:
    """Slice rows `idx`, trim padding to the longest sequence in the batch, move to `device`."""
    inputs = {}
    for m, (x, lengths) in features.items():
        lb = lengths[idx]
        x_b = torch.from_numpy(x[idx, : int(lb.max())])
        inputs[m] = (x_b.to(device), torch.from_numpy(lb).to(device))
    return inputs, {t: torch.from_numpy(y[idx]).to(device) for t, y in targets.items()}


# ----------------------------------------------------------------------------- training


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_epoch(
    model: MultiTaskModel,
    features: Features,
    targets: Mapping[str, np.ndarray],
    tasks: Mapping[str, TaskSpec],
    pos_weight: Tensor | None,
    batch_size: int,
    device: torch.device,
    optimiser: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
) -> tuple[float, dict[str, float]]:
    """One pass over a split; trains (shuffled batches) when `optimiser` is given.

    Returns (Σ_j λ_j·L_j, {task: L_j}) with L_j = Σ_i l_ij / N over the whole split: the batch
    objective of `multitask_loss`, extended to the split, so train and valid losses compare.
    """
    n = next(iter(features.values()))[0].shape[0]
    training = optimiser is not None
    order = torch.randperm(n, generator=generator).numpy() if training else np.arange(n)
    model.train(training)
    sums = dict.fromkeys(tasks, 0.0)
    with torch.set_grad_enabled(training):
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            inputs, tgt = make_batch(features, targets, idx, device)
            total, parts = multitask_loss(model(inputs), tgt, tasks, pos_weight)
            if training:
                optimiser.zero_grad(set_to_none=True)
                total.backward()
                optimiser.step()
            for t, v in parts.items():
                sums[t] += float(v.detach()) * len(idx)
    per_task = {t: v / n for t, v in sums.items()}
    return sum(tasks[t].weight * v for t, v in per_task.items()), per_task


@torch.no_grad()
def predict_outputs(
    model: MultiTaskModel, features: Features, device: torch.device, batch_size: int = 256
) -> dict[str, np.ndarray]:
    """Outputs on standardised features: emotion_prob (N, C), sentiment (N,), sarcasm_prob (N,)."""
    model.eval()
    n = next(iter(features.values()))[0].shape[0]
    chunks: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, batch_size):
        inputs, _ = make_batch(features, {}, np.arange(start, min(n, start + batch_size)), device)
        for t, y in model(inputs).items():
            y = y if t == "sentiment" else torch.sigmoid(y)
            chunks.setdefault(t, []).append(y.float().cpu().numpy())
    names = {"emotion": "emotion_prob", "sentiment": "sentiment", "sarcasm": "sarcasm_prob"}
    return {names[t]: np.concatenate(c) for t, c in chunks.items()}


def predict(
    result: SeedResult, features: Features, device: str | None = None
) -> dict[str, np.ndarray]:
    """Apply a trained seed to new raw (unstandardised) features, e.g. to produce weak labels."""
    if result.model is None or result.norm_stats is None:
        raise ValueError("this SeedResult carries no model")
    dev = torch.device(device or "cpu")
    standardised = apply_standardiser(features, result.norm_stats)
    return predict_outputs(result.model.to(dev), standardised, dev)


def evaluate_predictions(
    preds: Mapping[str, np.ndarray],
    targets: Mapping[str, np.ndarray],
    tasks: Mapping[str, TaskSpec],
    classes: Sequence[str],
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """(metrics {task: {metric: value}}, confusion {task: matrix}) on each task's labelled rows;
    a task without any labelled row is left out. Emotion's confusion uses single-label rows."""
    metrics: dict[str, dict[str, float]] = {}
    conf: dict[str, np.ndarray] = {}
    if "emotion" in tasks:
        ok = ~np.isnan(targets["emotion"]).any(axis=1)
        if ok.any():
            y, prob = targets["emotion"][ok], preds["emotion_prob"][ok]
            metrics["emotion"] = emotion_metrics(y, prob, list(classes))
            single = y.sum(axis=1) == 1
            conf["emotion"] = confusion(y[single].argmax(1), prob[single].argmax(1), len(classes))
    if "sentiment" in tasks and np.isfinite(targets["sentiment"]).any():
        metrics["sentiment"] = sentiment_metrics(targets["sentiment"], preds["sentiment"])
    if "sarcasm" in tasks:
        ok = np.isfinite(targets["sarcasm"])
        if ok.any():
            y, prob = targets["sarcasm"][ok], preds["sarcasm_prob"][ok]
            metrics["sarcasm"] = binary_metrics(y, prob)
            conf["sarcasm"] = confusion(y, prob >= 0.5, 2)
    return metrics, conf


@dataclass
class _Prepared:
    """Standardised features and NaN-masked targets of every split, ready for training."""

    specs: dict[str, TaskSpec]
    classes: list[str]
    norm: dict[str, tuple[np.ndarray, np.ndarray]]
    feats: dict[str, Features]
    targets: dict[str, dict[str, np.ndarray]]


def prepare(data: TrainingData, tasks: Mapping[str, Any]) -> _Prepared:
    """Normalise tasks, fit the standardiser on train, build targets; fail early on bad input."""
    classes = list(data.emotion_classes)
    specs = normalize_tasks(tasks, len(classes) or None)
    if "emotion" in specs and not classes:  # class count from the task config only
        classes = [f"class{i}" for i in range(specs["emotion"].n_outputs)]
    missing = [s for s in SPLITS if s not in data.splits]
    if missing:
        raise ValueError(f"TrainingData lacks split(s) {missing}")
    norm = fit_standardiser(data.splits["train"].features)
    feats = {s: apply_standardiser(data.splits[s].features, norm) for s in SPLITS}
    targets = {s: label_targets(data.splits[s], specs) for s in SPLITS}
    for s in ("train", "valid"):
        unlabelled = [t for t in specs if np.isnan(targets[s][t]).all()]
        if unlabelled:
            raise ValueError(f"{s} split has no label for task(s) {unlabelled} with λ > 0")
    return _Prepared(specs, classes, norm, feats, targets)


def fit(
    model: MultiTaskModel, prep: _Prepared, hp: Mapping[str, Any], seed: int, device: torch.device
) -> tuple[dict[str, list[float]], int]:
    """Adam + early stopping on the validation loss; restores the best weights in place.
    Returns (per-epoch curves, 1-based best epoch)."""
    tasks = prep.specs
    pos_weight = None
    if "emotion" in tasks:
        pos_weight = torch.from_numpy(emotion_pos_weight(prep.targets["train"]["emotion"]))
        pos_weight = pos_weight.to(device)
    optimiser = torch.optim.Adam(
        model.parameters(),
        lr=float(hp["lr"]),
        betas=(0.9, 0.999),
        weight_decay=float(hp["weight_decay"]),
    )
    generator = torch.Generator().manual_seed(seed)
    curves: dict[str, list[float]] = {"train_loss": [], "valid_loss": []}
    best_loss, best_epoch, best_state = math.inf, 0, copy.deepcopy(model.state_dict())
    bs = int(hp["batch_size"])
    train_args = (prep.feats["train"], prep.targets["train"], tasks, pos_weight, bs, device)
    valid_args = (prep.feats["valid"], prep.targets["valid"], tasks, pos_weight, 256, device)
    for epoch in range(1, int(hp["max_epochs"]) + 1):
        train_loss, _ = run_epoch(model, *train_args, optimiser, generator)
        valid_loss, _ = run_epoch(model, *valid_args)
        preds = predict_outputs(model, prep.feats["valid"], device)
        valid_metrics, _ = evaluate_predictions(preds, prep.targets["valid"], tasks, prep.classes)
        curves["train_loss"].append(train_loss)
        curves["valid_loss"].append(valid_loss)
        for t in tasks:
            value = valid_metrics[t][HEADLINE_METRIC[t]]
            curves.setdefault(f"valid_{t}_{HEADLINE_METRIC[t]}", []).append(value)
        if valid_loss < best_loss:
            best_loss, best_epoch, best_state = valid_loss, epoch, copy.deepcopy(model.state_dict())
        elif epoch - best_epoch >= int(hp["patience"]):
            break
    model.load_state_dict(best_state)
    return curves, best_epoch


def train_one_seed(
    data: TrainingData,
    model_name: str,
    tasks: Mapping[str, Any],
    hparams: Mapping[str, Any],
    seed: int,
    device: str | None = None,
) -> SeedResult:
    """Train `model_name` with early stopping on the validation loss, evaluate on test.

    hparams: lr (1e-3), batch_size (32), hidden (64), max_epochs (60), patience (8),
    weight_decay (1e-5), plus model keys (ef_steps, dropout). `tasks` as in `normalize_tasks`.
    Deterministic algorithms are switched on for the run and the previous setting restored.
    """
    hp = {**DEFAULT_TRAIN_HPARAMS, **hparams}
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    prep = prepare(data, tasks)
    if dev.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        set_seed(seed)
        model = build_model(model_name, data.modality_dims(), prep.specs, hp).to(dev)
        t0 = time.perf_counter()
        curves, best_epoch = fit(model, prep, hp, seed, dev)
        train_seconds = time.perf_counter() - t0
        preds = predict_outputs(model, prep.feats["test"], dev)
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
    metrics, conf = evaluate_predictions(preds, prep.targets["test"], prep.specs, prep.classes)
    encoder = model.encoder
    weights = None
    if encoder.fusion == "ef_lf":
        weights = encoder.fusion_weights().detach().cpu().tolist()
    return SeedResult(
        seed=seed,
        model_name=model_name,
        best_epoch=best_epoch,
        curves=curves,
        test_metrics=metrics,
        test_predictions={"utt_id": list(data.splits["test"].utt_ids), **preds},
        confusion=conf,
        fusion_weights=weights,
        train_seconds=train_seconds,
        model=model.cpu().eval(),
        norm_stats=prep.norm,
    )


def train_and_evaluate(
    data: TrainingData,
    model_name: str,
    tasks: Mapping[str, Any],
    hparams: Mapping[str, Any],
    seeds: Sequence[int],
    device: str | None = None,
) -> dict[str, Any]:
    """Run `train_one_seed` for every seed; returns {"per_seed": [SeedResult], "aggregate":
    {task: {metric: {"mean", "std"}}}, "seeds": [...]} (std: see `aggregate_over_seeds`)."""
    results = [train_one_seed(data, model_name, tasks, hparams, s, device) for s in seeds]
    return {
        "seeds": list(seeds),
        "per_seed": results,
        "aggregate": aggregate_over_seeds([r.test_metrics for r in results]),
    }
