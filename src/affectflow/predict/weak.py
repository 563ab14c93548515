"""Weak labels (Dai et al. 2021, §5): a model trained for a task on one corpus labels another.

`make_weak_labels` applies the labeler (all of its saved seeds and folds, outputs averaged) to
every row of the target corpus's dataset, whatever its split, without reading that corpus's
labels, and writes a weak-label table (`affectflow.train.weak`): soft targets (class
probabilities; for a regression labeler such as sentiment, the binary view the paper uses,
P(value > 0) from the mean prediction's sign) and a confidence, by default the labeler's mean
validation accuracy on its own corpus, as the paper stores it.
"""

from __future__ import annotations

import math
import os
from typing import Sequence

import numpy as np

from affectflow.predict.corpus import load_models, mean_outputs
from affectflow.train.dataset import load_all_rows
from affectflow.train.weak import write_weak_table


def labeler_confidence(models, task: str) -> float:
    """Mean validation accuracy of the labeler's models on `task` (binary view for regression)."""
    values = []
    for m in models:
        metrics = m.valid_metrics.get(task, {})
        value = metrics.get("acc", metrics.get("acc2_non0", math.nan))
        if value is not None and math.isfinite(float(value)):
            values.append(float(value))
    if not values:
        raise ValueError(f"the labeler's models hold no validation accuracy for {task!r}")
    return float(np.mean(values))


def make_weak_labels(model_paths: Sequence[str | os.PathLike[str]], task: str,
                     dataset: str | os.PathLike[str], output: str | os.PathLike[str], name: str,
                     confidence: float | None = None, device: str = "cpu") -> dict:
    """Write the weak-label table of `task` (labeler's name) as task `name` of the target."""
    models = load_models(model_paths)
    if task not in models[0].specs:
        raise ValueError(f"the labeler {models[0].model_id} has no task {task!r} "
                         f"(has {sorted(models[0].specs)})")
    spec = models[0].specs[task]
    utt_ids, features, sources = load_all_rows(dataset, models[0].modalities)
    for m in models:
        m.check_sources(sources, os.fspath(dataset))
    _, mean = mean_outputs(models, features, device)
    y = mean[spec.prediction_key]
    if spec.kind == "regression":
        kind, classes = "binary", []
        y = (y > 0).astype(np.float32)  # the paper's binary sentiment view
    elif spec.kind == "binary":
        kind, classes = "binary", []
    else:
        kind, classes = "categorical", spec.class_names
        if spec.multilabel:  # one-vs-rest sigmoids: renormalise to a distribution
            y = y / np.clip(y.sum(axis=1, keepdims=True), 1e-8, None)
    conf = labeler_confidence(models, task) if confidence is None else float(confidence)
    meta = {"task": name, "kind": kind, "classes": classes, "confidence": conf,
            "labeler_task": task, "from_corpus": models[0].corpus, "model": models[0].model_id,
            "n_models": len(models)}
    write_weak_table(output, utt_ids, y, meta)
    return {**meta, "n": len(utt_ids)}
