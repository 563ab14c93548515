"""Train one multi-task fusion model per seed, evaluate on test, aggregate over seeds.

Protocol (Dai et al. 2021, Sec. 6.1): Adam (β 0.9/0.999, weight decay 1e-5), early stopping on
the validation loss with the best weights restored, several seeds reported as mean ± std.
Features are standardised per dimension with statistics of the training split's valid frames
(see `affectflow.train.data`, which also holds the data containers re-exported here). Tasks,
their kinds and losses: `affectflow.train.tasks`.
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
    confusion,
    single_label_rows,
    task_metrics,
)
from affectflow.train.data import (  # noqa: F401  (re-exported: the historical home)
    SPLITS,
    Features,
    Prepared,
    SplitData,
    TrainingData,
    _Prepared,
    apply_standardiser,
    balanced_class_weight,
    emotion_pos_weight,
    fit_standardiser,
    label_targets,
    loss_weights,
    make_batch,
    prepare,
)
from affectflow.train.models import MultiTaskModel, build_model
from affectflow.train.tasks import TaskSpec, multitask_loss

DEFAULT_TRAIN_HPARAMS: dict[str, Any] = {
    "lr": 1e-3,
    "batch_size": 32,
    "hidden": 64,
    "max_epochs": 60,
    "patience": 8,
    "weight_decay": 1e-5,
}


@dataclass
class SeedResult:
    """Everything one seed produced; `model` + `norm_stats` let `predict` label new data."""

    seed: int
    model_name: str
    best_epoch: int  # 1-based epoch whose weights were restored
    # train_loss, valid_loss, valid_<task>_<headline metric> (+ valid_<task>_wacc_avg where the
    # paper's per-class metrics apply)
    curves: dict[str, list[float]]
    test_metrics: dict[str, dict[str, float]]
    # utt_id, then per task (λ > 0) <task>_prob (N, C) categorical / (N,) binary, <task> (N,)
    # regression
    test_predictions: dict[str, Any]
    confusion: dict[str, np.ndarray]  # categorical (C, C), binary (2, 2); rows true, cols predicted
    fusion_weights: list[float] | None
    train_seconds: float
    model: MultiTaskModel | None = None
    norm_stats: dict[str, tuple[np.ndarray, np.ndarray]] | None = None
    classes: dict[str, list[str]] = field(default_factory=dict)  # confusion labels per task
    task_kinds: dict[str, str] = field(default_factory=dict)
    estimators: dict[str, Any] = field(default_factory=dict)  # scikit-learn models (svm), by task

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
                "confusion", "fusion_weights", "train_seconds", "classes", "task_kinds")
        return {k: plain(getattr(self, k)) for k in keep}


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
    weights: Tensor | Mapping[str, Tensor] | None,
    batch_size: int,
    device: torch.device,
    optimiser: torch.optim.Optimizer | None = None,
    generator: torch.Generator | None = None,
) -> tuple[float, dict[str, float]]:
    """One pass over a split; trains (shuffled batches) when `optimiser` is given.

    Returns (Σ_j λ_j·L_j, {task: L_j}) with L_j = Σ_i l_ij / N over the whole split: the batch
    objective of `multitask_loss`, extended to the split, so train and valid losses compare.
    `weights`: per-task loss weights {task: tensor} (a bare tensor: emotion's pos_weight).
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
            total, parts = multitask_loss(model(inputs), tgt, tasks, weights)
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
    """Outputs on standardised features, keyed by `TaskSpec.prediction_key`: categorical
    ``<task>_prob`` (N, C) (softmax, or per-class sigmoid for multi-label), binary ``<task>_prob``
    (N,), regression ``<task>`` (N,)."""
    model.eval()
    n = next(iter(features.values()))[0].shape[0]
    chunks: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, batch_size):
        inputs, _ = make_batch(features, {}, np.arange(start, min(n, start + batch_size)), device)
        for t, y in model(inputs).items():
            spec = model.tasks[t]
            if spec.kind == "categorical" and not spec.multilabel:
                y = torch.softmax(y, dim=-1)
            elif spec.kind != "regression":
                y = torch.sigmoid(y)
            chunks.setdefault(spec.prediction_key, []).append(y.float().cpu().numpy())
    return {k: np.concatenate(c) for k, c in chunks.items()}


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
    classes: Sequence[str] = (),
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """(metrics {task: {metric: value}}, confusion {task: matrix}) on each task's labelled rows,
    by kind (`task_metrics`); a task without any labelled row is left out. Categorical confusion
    uses the single-label rows (argmax), binary thresholds at 0.5. Class names come from the
    specs (`classes` is the historical emotion class list, used only when a spec has none)."""
    metrics: dict[str, dict[str, float]] = {}
    conf: dict[str, np.ndarray] = {}
    for task, spec in tasks.items():
        y, pred = targets[task], preds[spec.prediction_key]
        labelled = np.isfinite(y) if y.ndim == 1 else np.isfinite(y).all(axis=1)
        if not labelled.any():
            continue
        y, pred = y[labelled], pred[labelled]
        names = spec.class_names
        if task == "emotion" and not spec.classes and len(classes) == spec.n_outputs:
            names = list(classes)
        metrics[task] = task_metrics(spec.kind, y, pred, names, spec.paper_metrics,
                                     spec.multilabel)
        if spec.kind == "categorical":
            conf[task] = confusion(*single_label_rows(y, pred), spec.n_outputs)
        elif spec.kind == "binary":
            conf[task] = confusion(y, pred >= 0.5, 2)
    return metrics, conf


def fit(
    model: MultiTaskModel, prep: Prepared, hp: Mapping[str, Any], seed: int, device: torch.device
) -> tuple[dict[str, list[float]], int]:
    """Adam + early stopping on the validation loss; restores the best weights in place.
    Returns (per-epoch curves, 1-based best epoch)."""
    tasks = prep.specs
    weights = {t: torch.from_numpy(w).to(device) for t, w in prep.loss_weights.items()}
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
    train_args = (prep.feats["train"], prep.targets["train"], tasks, weights, bs, device)
    valid_args = (prep.feats["valid"], prep.targets["valid"], tasks, weights, 256, device)
    for epoch in range(1, int(hp["max_epochs"]) + 1):
        train_loss, _ = run_epoch(model, *train_args, optimiser, generator)
        valid_loss, _ = run_epoch(model, *valid_args)
        preds = predict_outputs(model, prep.feats["valid"], device)
        valid_metrics, _ = evaluate_predictions(preds, prep.targets["valid"], tasks, prep.classes)
        curves["train_loss"].append(train_loss)
        curves["valid_loss"].append(valid_loss)
        for t, spec in tasks.items():
            names = [prep.headline[t]] + (["wacc_avg"] if spec.paper_metrics else [])
            for name in names:
                value = valid_metrics.get(t, {}).get(name, math.nan)
                curves.setdefault(f"valid_{t}_{name}", []).append(value)
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
    weight_decay (1e-5), plus model keys (ef_steps, dropout). `tasks` as in `normalize_tasks`;
    kinds and class names come from `data` (its `kinds`/`classes`).
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
    if getattr(encoder, "fusion", "") == "ef_lf":
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
        classes={t: s.class_names for t, s in prep.specs.items() if s.kind != "regression"},
        task_kinds={t: s.kind for t, s in prep.specs.items()},
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
