"""Train one registered model per seed, evaluate on test, aggregate over seeds.

Protocol (Dai et al. 2021, Sec. 6.1) is the `Trainer`'s default: Adam (β 0.9/0.999, weight
decay 1e-5), early stopping on the validation loss with the best weights restored, several seeds
reported as mean ± std. Features are standardised per dimension with statistics of the training
split's valid frames (`affectflow.train.data`). Tasks, their kinds and losses:
`affectflow.train.tasks`; models: `affectflow.train.models`.
"""

from __future__ import annotations

import os
import random
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from affectflow.evaluate.metrics import aggregate_over_seeds
from affectflow.train.data import Features, TrainingData, apply_standardiser, prepare
from affectflow.train.evaluation import evaluate_predictions, predict_outputs, test_labels
from affectflow.train.models import MultiTaskModel, build_model, get_model, split_hparams
from affectflow.train.trainer import Hook, Trainer


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
    specs: dict[str, Any] = field(default_factory=dict)  # {task: TaskSpec}
    valid_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    # {task: test targets} in test_predictions' row order (class index / 0-1 / value, NaN
    # missing; a weak task's hard labels): what paired bootstrap comparisons resample
    test_labels: dict[str, np.ndarray] = field(default_factory=dict)

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
                "confusion", "fusion_weights", "train_seconds", "classes", "task_kinds",
                "valid_metrics", "test_labels")
        return {k: plain(getattr(self, k)) for k in keep}


def set_seed(seed: int) -> None:
    """Seed python, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def predict(result: SeedResult, features: Features, device: str | None = None
            ) -> dict[str, np.ndarray]:
    """Apply a trained seed to new raw (unstandardised) features."""
    if result.model is None or result.norm_stats is None:
        raise ValueError("this SeedResult carries no model")
    dev = torch.device(device or "cpu")
    standardised = apply_standardiser(features, result.norm_stats)
    return predict_outputs(result.model.to(dev), standardised, dev)


def train_one_seed(data: TrainingData, model_name: str, tasks: Mapping[str, Any],
                   hparams: Mapping[str, Any], seed: int, device: str | None = None,
                   hooks: Sequence[Hook] = ()) -> SeedResult:
    """Train `model_name` with the `Trainer` (early stopping, hooks), evaluate on test.

    `hparams`: the trainer's keys (`TrainerConfig`: lr, batch_size, max_epochs, patience,
    weight_decay, ...) and the model's (its registered config). `tasks` as in `normalize_tasks`;
    kinds, class names, scales and weak tasks come from `data`. Deterministic algorithms are on
    for the run and the previous setting restored.
    """
    trainer_config, model_cfg = split_hparams(model_name, hparams)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    prep = prepare(data, tasks)
    if dev.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = (torch.are_deterministic_algorithms_enabled(),
                torch.is_deterministic_algorithms_warn_only_enabled())
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        set_seed(seed)
        model = build_model(model_name, data.modality_dims(), prep.specs, model_cfg).to(dev)
        t0 = time.perf_counter()
        entry = get_model(model_name)
        own = entry.hooks(model_cfg) if entry.hooks is not None else []
        fitted = Trainer(model, prep, trainer_config, dev, seed, [*own, *hooks]).fit()
        train_seconds = time.perf_counter() - t0
        preds = predict_outputs(model, prep.feats["test"], dev)
        valid_preds = predict_outputs(model, prep.feats["valid"], dev)
    finally:
        torch.use_deterministic_algorithms(previous[0], warn_only=previous[1])
    metrics, conf = evaluate_predictions(preds, prep.targets["test"], prep.specs, prep.classes)
    valid_metrics, _ = evaluate_predictions(valid_preds, prep.targets["valid"], prep.specs,
                                            prep.classes)
    encoder = model.encoder
    weights = None
    if getattr(encoder, "fusion", "") == "ef_lf":
        weights = encoder.fusion_weights().detach().cpu().tolist()
    return SeedResult(
        seed=seed, model_name=model_name, best_epoch=fitted.best_epoch, curves=fitted.curves,
        test_metrics=metrics,
        test_predictions={"utt_id": list(data.splits["test"].utt_ids), **preds},
        confusion=conf, fusion_weights=weights, train_seconds=train_seconds,
        model=model.cpu().eval(), norm_stats=prep.norm,
        classes={t: s.class_names for t, s in prep.specs.items() if s.kind != "regression"},
        task_kinds={t: s.kind for t, s in prep.specs.items()}, specs=dict(prep.specs),
        valid_metrics=valid_metrics, test_labels=test_labels(prep))


def train_and_evaluate(data: TrainingData, model_name: str, tasks: Mapping[str, Any],
                       hparams: Mapping[str, Any], seeds: Sequence[int],
                       device: str | None = None) -> dict[str, Any]:
    """Run `train_one_seed` for every seed; returns {"per_seed": [SeedResult], "aggregate":
    {task: {metric: {"mean", "std"}}}, "seeds": [...]} (std: see `aggregate_over_seeds`)."""
    results = [train_one_seed(data, model_name, tasks, hparams, s, device) for s in seeds]
    return {"seeds": list(seeds), "per_seed": results,
            "aggregate": aggregate_over_seeds([r.test_metrics for r in results])}
