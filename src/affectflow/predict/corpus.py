"""Predict with saved models on every row of a corpus's dataset, as a Parquet table.

The models (one per seed, or per fold and seed) are rebuilt by `load_model`; their features must
come from the same extractors with the same parameters as the dataset's (provenance hashes), or
the job stops naming the modality. The table has one row per (utterance, task, seed) plus, with
several models, their mean (seed ``mean``): utt_id, task, model, seed, source_corpus (where the
model was trained), corpus, then ``prob_<class>`` per class (categorical), ``prob_1`` (binary)
or ``value`` (regression). Labels of the dataset are never read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from affectflow.atomic import atomic_path
from affectflow.train.dataset import load_all_rows
from affectflow.train.saved import TrainedModel, load_model


def mean_outputs(models: Sequence[TrainedModel], features, device: str = "cpu"
                 ) -> tuple[list[dict[str, np.ndarray]], dict[str, np.ndarray]]:
    """(each model's outputs, their mean); all models must share tasks and modalities."""
    outputs = [m.predict(features, device) for m in models]
    keys = set(outputs[0])
    if any(set(o) != keys for o in outputs):
        raise ValueError("the models predict different tasks; give one model id at a time")
    return outputs, {k: np.mean([o[k] for o in outputs], axis=0) for k in keys}


def prediction_frame(model: TrainedModel, utt_ids: Sequence[str], outputs: dict[str, np.ndarray],
                     seed: str, corpus: str) -> pd.DataFrame:
    """Rows of the prediction table for one model's (or the mean's) outputs."""
    frames = []
    for task, spec in model.specs.items():
        y = outputs[spec.prediction_key]
        frame = pd.DataFrame({"utt_id": list(utt_ids), "task": task, "model": model.model_id,
                              "seed": seed, "source_corpus": model.corpus, "corpus": corpus})
        if spec.kind == "categorical":
            for i, name in enumerate(spec.class_names):
                frame[f"prob_{name}"] = y[:, i]
        elif spec.kind == "binary":
            frame["prob_1"] = y
        else:
            frame["value"] = y
        frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def model_files(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """`paths` with each folder replaced by the model.pt files under it (a trained model's
    folder: all its folds and seeds), sorted."""
    files: list[str] = []
    for path in map(os.fspath, paths):
        if os.path.isdir(path):
            found = sorted(str(p) for p in Path(path).rglob("model.pt"))
            if not found:
                raise ValueError(f"{path}: no model.pt under this folder")
            files += found
        else:
            files.append(path)
    return files


def load_models(paths: Sequence[str | os.PathLike[str]]) -> list[TrainedModel]:
    """Rebuild every model (folders expanded); they must read the same modalities and tasks."""
    models = [load_model(p) for p in model_files(paths)]
    if not models:
        raise ValueError("no model given")
    first = models[0]
    for m in models[1:]:
        if m.modalities != first.modalities or set(m.specs) != set(first.specs):
            raise ValueError(f"{m.path} and {first.path} read different modalities or tasks")
    return models


def predict_dataset(model_paths: Sequence[str | os.PathLike[str]], dataset: str | os.PathLike[str],
                    output: str | os.PathLike[str], corpus: str = "", device: str = "cpu") -> int:
    """Write the prediction table of `dataset`'s rows; returns its number of utterances."""
    models = load_models(model_paths)
    utt_ids, features, sources = load_all_rows(dataset, models[0].modalities)
    for m in models:
        m.check_sources(sources, os.fspath(dataset))
    outputs, mean = mean_outputs(models, features, device)
    frames = [prediction_frame(m, utt_ids, o, str(m.seed), corpus) for m, o in zip(models, outputs)]
    if len(models) > 1:
        frames.append(prediction_frame(models[0], utt_ids, mean, "mean", corpus))
    with atomic_path(output) as tmp:
        pd.concat(frames, ignore_index=True).to_parquet(tmp, index=False)
    return len(utt_ids)
