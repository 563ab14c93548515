"""Model outputs on standardised features, and their metrics per task.

Outputs are keyed by `TaskSpec.prediction_key`: categorical ``<task>_prob`` (N, C) (softmax, or
per-class sigmoid for multi-label), binary ``<task>_prob`` (N,), regression ``<task>`` (N,),
clipped to the label's scale when the task knows it. A weak task's soft targets are scored as
hard labels (argmax, or 0.5 for binary): its metrics say how well the model agrees with the
weak labeler, not with the truth.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import torch

from affectflow.evaluate.metrics import confusion, single_label_rows, task_metrics
from affectflow.train.data import Features, Prepared, make_batch
from affectflow.train.models.base import MultiTaskModel
from affectflow.train.tasks import TaskSpec


def finish_outputs(raw: Mapping[str, torch.Tensor], specs: Mapping[str, TaskSpec]
                   ) -> dict[str, np.ndarray]:
    """Logits → probabilities (categorical, binary) and clipped values (regression)."""
    out = {}
    for t, y in raw.items():
        spec = specs[t]
        if spec.kind == "categorical" and not spec.multilabel:
            y = torch.softmax(y.float(), dim=-1)
        elif spec.kind != "regression":
            y = torch.sigmoid(y.float())
        elif spec.value_range is not None:
            y = y.float().clamp(*spec.value_range)
        out[spec.prediction_key] = y.float().cpu().numpy()
    return out


@torch.no_grad()
def predict_outputs(model: MultiTaskModel, features: Features, device: torch.device,
                    batch_size: int = 256) -> dict[str, np.ndarray]:
    """The model's outputs on standardised features (see the module docstring)."""
    model.eval()
    n = next(iter(features.values()))[0].shape[0]
    chunks: dict[str, list[np.ndarray]] = {}
    for start in range(0, n, batch_size):
        inputs, _ = make_batch(features, {}, np.arange(start, min(n, start + batch_size)), device)
        for key, y in finish_outputs(model(inputs), model.tasks).items():
            chunks.setdefault(key, []).append(y)
    return {k: np.concatenate(c) for k, c in chunks.items()}


def hard_targets(y: np.ndarray, spec: TaskSpec) -> np.ndarray:
    """A weak task's soft targets as hard labels (NaN rows stay missing)."""
    if not spec.soft:
        return y
    if spec.kind == "categorical":
        rows = np.isfinite(y).all(axis=1)
        return np.where(rows, np.nan_to_num(y).argmax(axis=1), np.nan).astype(np.float32)
    return np.where(np.isfinite(y), (y >= 0.5).astype(np.float32), np.nan)


def test_labels(prep: Prepared) -> dict[str, np.ndarray]:
    """{task: hard test targets}: class index (−1 missing; multi-label: the single-label rows'
    class, else −1), 0/1 or value (NaN missing)."""
    out = {}
    for task, spec in prep.specs.items():
        y = hard_targets(prep.targets["test"][task], spec)
        if spec.kind == "categorical" and y.ndim == 2:
            single = np.isfinite(y).all(axis=1) & (np.nan_to_num(y).sum(axis=1) == 1)
            y = np.where(single, np.nan_to_num(y).argmax(axis=1), -1)
        elif spec.kind == "categorical":
            y = np.where(np.isfinite(y), y, -1)
        out[task] = y
    return out


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
        y, pred = hard_targets(targets[task], spec), preds[spec.prediction_key]
        labelled = np.isfinite(y) if y.ndim == 1 else np.isfinite(y).all(axis=1)
        if not labelled.any():
            continue
        y, pred = y[labelled], pred[labelled]
        names = spec.class_names
        if task == "emotion" and not spec.classes and len(classes) == spec.n_outputs:
            names = list(classes)
        metrics[task] = task_metrics(spec.kind, y, pred, names, spec.paper_metrics,
                                     spec.multilabel, spec.value_range)
        if spec.kind == "categorical":
            conf[task] = confusion(*single_label_rows(y, pred), spec.n_outputs)
        elif spec.kind == "binary":
            conf[task] = confusion(y, pred >= 0.5, 2)
    return metrics, conf
