"""The training stage: one (model, seed) run from an assembled dataset to result files."""

from __future__ import annotations

import json
import logging
import os
import pickle
from typing import Any, Mapping

import torch

from affectflow.atomic import atomic_path, write_text
from affectflow.train.classic import (CLASSIC_MODELS, UnsafeModelError, estimators_blob,
                                      load_estimators, train_svm_seed)
from affectflow.train.dataset import load_dataset
from affectflow.train.loop import TrainingData, train_one_seed
from affectflow.jsonsafe import json_safe

log = logging.getLogger(__name__)


def select_modalities(data: TrainingData, modalities: list[str] | None) -> TrainingData:
    """`data` restricted to `modalities` (all when None); unknown names are an error."""
    if not modalities:
        return data
    have = set(data.splits["train"].features)
    unknown = sorted(set(modalities) - have)
    if unknown:
        raise ValueError(f"modalities {unknown} are not in the dataset (has {sorted(have)})")
    for split in data.splits.values():
        split.features = {m: split.features[m] for m in modalities}
    return data


def resolve_device(device: str) -> str:
    """`auto` → CUDA when present, else CPU; anything else is passed to torch as is."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def train_to_files(dataset: str | os.PathLike[str], model: str, seed: int, tasks: Mapping[str, Any],
                   hparams: Mapping[str, Any], device: str, result_path: str | os.PathLike[str],
                   weights_path: str | os.PathLike[str], threads: int = 1,
                   model_id: str | None = None, modalities: list[str] | None = None) -> dict[str, Any]:
    """Train, evaluate on test, write the result JSON (metrics, curves, predictions) and weights.

    `model` is the architecture; `model_id` names the run in results (default: the architecture)
    and `modalities` restricts it to some of the dataset's modalities (default: all).
    `threads` caps torch's CPU threads: these models are small, and more threads than the job
    was given only make it slower on a busy machine.
    """
    torch.set_num_threads(max(int(threads), 1))
    data = select_modalities(load_dataset(dataset), modalities)
    device = resolve_device(device)
    log.info("training %s seed %d on %s: %s", model, seed, device,
             {s: d.n for s, d in data.splits.items()})
    if model in CLASSIC_MODELS:
        result = train_svm_seed(data, tasks, hparams, seed)
    else:
        result = train_one_seed(data, model, tasks, hparams, seed, device)
    record = result.to_dict()
    record.update({"model_name": model_id or model, "architecture": model,
                   "modalities": sorted(data.splits["train"].features)})
    specs = ({t: s.to_dict() for t, s in result.model.tasks.items()} if result.model else {})
    # classes: per categorical/binary task, the confusion-matrix labels (report/figures.py)
    record.update({"device": device, "emotion_classes": data.emotion_classes,
                   "hparams": dict(hparams), "tasks": dict(tasks), "task_specs": specs,
                   "views": dict(data.views), "dataset": os.fspath(dataset)})
    # Only tensors and plain containers of str/int/float/None, so `torch.load` works with
    # weights_only=True; an svm's scikit-learn estimators travel as a skops file (no pickle) in a
    # uint8 tensor, read back by `load_model_file` (`load_estimators`: SVC/SVR types only).
    sklearn_blob = (torch.frombuffer(bytearray(estimators_blob(result)), dtype=torch.uint8)
                    if result.estimators else torch.zeros(0, dtype=torch.uint8))
    saved = {"state_dict": result.model.state_dict() if result.model else {},
             "sklearn": sklearn_blob,
             "norm_stats": {m: (torch.as_tensor(mean), torch.as_tensor(std))
                            for m, (mean, std) in (result.norm_stats or {}).items()},
             "model": model, "seed": seed,
             "emotion_classes": list(data.emotion_classes), "hparams": dict(hparams),
             "tasks": dict(tasks), "task_specs": specs, "classes": dict(result.classes),
             "task_kinds": dict(result.task_kinds), "views": dict(data.views)}
    # The weights first, then the result: a job killed in between leaves no result.json, so
    # neither file can be taken for a finished run; each is written atomically.
    with atomic_path(weights_path) as tmp:
        torch.save(saved, tmp)
    write_text(result_path, json.dumps(json_safe(record)))
    log.info("test metrics: %s", json.dumps(result.test_metrics))
    return record


def load_model_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A `model.pt` written by `train_to_files`, loaded without running code from the file:
    `torch.load(weights_only=True)` (tensors and plain containers only) and, for an svm, its
    estimators rebuilt by `load_estimators` (a skops file of SVC/SVR only) under ``estimators``
    (task → estimator; empty for torch models). UnsafeModelError, naming the file, otherwise."""
    try:
        saved = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        raise UnsafeModelError(f"{path}: refused by torch.load(weights_only=True): {error}") from None
    if not isinstance(saved, dict):
        raise UnsafeModelError(f"{path}: not a model file (no dict of weights and metadata)")
    blob = saved.get("sklearn")
    if isinstance(blob, torch.Tensor) and blob.numel():
        try:
            saved["estimators"] = load_estimators(bytes(blob.numpy()))
        except UnsafeModelError as error:
            raise UnsafeModelError(f"{path}: {error}") from None
    else:
        saved["estimators"] = {}
    return saved
