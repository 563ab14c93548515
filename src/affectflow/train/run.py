"""The training stage: one model's seeds on one fold of a dataset, one result + model per seed.

All seeds of a (model, fold) run in one process, so a small experiment is not dominated by
process start-up (imports, reading the dataset); each seed still gets its own `result.json`
and `model.pt` (`affectflow.train.saved`).
"""

from __future__ import annotations

import json
import logging
import os
import time
from typing import Any, Mapping, Sequence

import torch

from affectflow.atomic import write_text
from affectflow.jsonsafe import json_safe
from affectflow.train.classic import train_svm_seed
from affectflow.train.dataset import load_dataset
from affectflow.train.loop import train_one_seed
from affectflow.train.models import get_model
from affectflow.train.saved import save_model
from affectflow.train.weak import attach_weak_labels

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    """`auto` → CUDA when present, else CPU; anything else is passed to torch as is."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def train_to_files(dataset: str | os.PathLike[str], model: str, seeds: Sequence[int],
                   tasks: Mapping[str, Any], hparams: Mapping[str, Any], device: str,
                   results: Sequence[str | os.PathLike[str]],
                   weights: Sequence[str | os.PathLike[str]], *, fold: str = "split",
                   threads: int = 1, model_id: str | None = None,
                   modalities: Sequence[str] | None = None, weak: Sequence[str] = (),
                   corpus: str = "") -> list[dict[str, Any]]:
    """Train `model` once per seed on `fold`, evaluate on its test split, write each seed's
    result JSON (metrics, curves, predictions) and self-describing model.

    `model` is the architecture; `model_id` names the run (default: the architecture);
    `modalities` restricts it to some of the dataset's modalities (default all; only the rows
    having all of them are used); `weak`: weak-label tables (`affectflow.train.weak`) whose
    tasks may then appear in `tasks`. `threads` caps torch's CPU threads: these models are
    small, and more threads than the job was given only make it slower on a busy machine.
    """
    if not (len(seeds) == len(results) == len(weights)):
        raise ValueError("one result and one weights path per seed")
    torch.set_num_threads(max(int(threads), 1))
    t0 = time.perf_counter()
    data = attach_weak_labels(load_dataset(dataset, fold, modalities), weak)
    device = resolve_device(device)
    log.info("training %s seeds %s on %s (fold %s): %s; set-up %.2f s", model, list(seeds), device,
             fold, {s: d.n for s, d in data.splits.items()}, time.perf_counter() - t0)
    classic = get_model(model).kind == "classic"
    records = []
    for seed, result_path, weights_path in zip(seeds, results, weights):
        if classic:
            result = train_svm_seed(data, tasks, hparams, seed)
        else:
            result = train_one_seed(data, model, tasks, hparams, seed, device)
        record = result.to_dict()
        record.update({
            "model_name": model_id or model, "architecture": model,
            "modalities": sorted(data.splits["train"].features), "device": device,
            "emotion_classes": data.emotion_classes, "hparams": dict(hparams),
            "tasks": dict(tasks), "task_specs": {t: s.to_dict() for t, s in result.specs.items()},
            "weak_tasks": sorted(t for t in result.specs if t in data.weak),
            "views": dict(data.views), "dataset": os.fspath(dataset), "fold": fold,
            "corpus": corpus})
        # The weights first, then the result: a job killed in between leaves no result.json, so
        # neither file can be taken for a finished run; each is written atomically.
        save_model(weights_path, result, architecture=model, model_id=model_id or model,
                   hparams=hparams, modality_dims=data.modality_dims(), views=data.views,
                   sources=data.sources, corpus=corpus, fold=fold)
        write_text(result_path, json.dumps(json_safe(record)))
        log.info("seed %d: test metrics %s", seed, json.dumps(json_safe(result.test_metrics)))
        records.append(record)
    return records
