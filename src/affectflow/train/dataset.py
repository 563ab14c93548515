"""Assemble modality feature stores and manifest labels into one padded training dataset (.npz).

Only utterances with accepted features in every training modality are used; the others are in
the corpus's rejected table with the reason. The .npz keys are ``<split>/<modality>/x`` (N, T, D),
``<split>/<modality>/lengths``, ``<split>/utt_ids``, ``<split>/<task>`` and ``emotion_classes``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from affectflow.features.reader import accepted_ids, read_sequences
from affectflow.train.loop import SPLITS, SplitData, TrainingData

log = logging.getLogger(__name__)


def _task_array(frame: pd.DataFrame, task: str, spec: Mapping[str, Any]) -> np.ndarray:
    """Labels of one task: class indices (−1 missing) for categorical, floats (NaN missing) else."""
    if spec["type"] == "categorical":
        classes = list(spec["classes"])
        return np.array([classes.index(v) if isinstance(v, str) and v in classes else -1
                         for v in frame[task]], np.int64)
    return pd.to_numeric(frame[task], errors="coerce").to_numpy(np.float32)


def assemble_dataset(manifest: str | os.PathLike[str], stores: Mapping[str, str | os.PathLike[str]],
                     labels: Mapping[str, Mapping[str, Any]], tasks: Mapping[str, Any],
                     output: str | os.PathLike[str], max_steps: int = 200) -> dict[str, int]:
    """Write the dataset; returns the number of utterances per split."""
    frame = pd.read_parquet(manifest)
    unknown = [t for t in tasks if t not in labels]
    if unknown:
        raise ValueError(f"training tasks {unknown} are not labels of this corpus "
                         f"(labels: {sorted(labels)})")
    usable = set(frame["utt_id"])
    for modality, store in stores.items():
        have = accepted_ids(store)
        dropped = usable - have
        if dropped:
            log.info("%s: %d utterances have no accepted features, left out", modality, len(dropped))
        usable &= have
    frame = frame[frame["utt_id"].isin(usable)].sort_values("utt_id")
    arrays: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for split in SPLITS:
        part = frame[frame["split"] == split]
        counts[split] = len(part)
        if part.empty:
            raise ValueError(f"no usable utterances in the {split} split "
                             f"({len(frame)} usable in all; check the rejected table)")
        ids = part["utt_id"].tolist()
        arrays[f"{split}/utt_ids"] = np.array(ids)
        for modality, store in stores.items():
            seq = read_sequences(store, ids, max_steps=max_steps)
            arrays[f"{split}/{modality}/x"] = seq.values
            arrays[f"{split}/{modality}/lengths"] = seq.lengths
        for task in tasks:
            arrays[f"{split}/{task}"] = _task_array(part, task, labels[task])
    if "emotion" in tasks:
        arrays["emotion_classes"] = np.array(labels["emotion"]["classes"])
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    with open(output, "wb") as handle:
        np.savez(handle, **arrays)
    return counts


def load_dataset(path: str | os.PathLike[str]) -> TrainingData:
    """Read an assembled .npz back as `TrainingData`."""
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        splits: dict[str, SplitData] = {}
        for split in SPLITS:
            modalities = sorted({k.split("/")[1] for k in keys
                                 if k.startswith(f"{split}/") and k.endswith("/x")})
            features = {m: (data[f"{split}/{m}/x"], data[f"{split}/{m}/lengths"]) for m in modalities}
            labels = {task: data[f"{split}/{task}"] for task in ("emotion", "sentiment", "sarcasm")
                      if f"{split}/{task}" in keys}
            splits[split] = SplitData(features=features, utt_ids=data[f"{split}/utt_ids"].tolist(),
                                      **labels)
        classes = data["emotion_classes"].tolist() if "emotion_classes" in keys else []
    return TrainingData(splits=splits, emotion_classes=classes)
