"""Weak labels as training targets (Dai et al. 2021, §5): tables written by the `weak_labels`
stage (`affectflow.predict.weak`) joined onto a dataset as soft-target tasks.

A weak-label table is a Parquet file with ``utt_id`` and one probability column per class
(``prob_<class>``; a binary task has ``prob_1``), and in its metadata (``affectflow_weak``) the
task name in the target corpus, its kind, class names, the labeler's confidence (its validation
accuracy) and where it came from. Rows of the dataset the table does not cover get no weak
label (NaN, masked out of the loss).
"""

from __future__ import annotations

import json
import os
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from affectflow.atomic import atomic_path
from affectflow.train.data import TrainingData

METADATA_KEY = b"affectflow_weak"


def write_weak_table(path: str | os.PathLike[str], utt_ids: Sequence[str], probs: np.ndarray,
                     meta: dict[str, Any]) -> None:
    """`probs`: (N, C) class probabilities (categorical) or (N,) positive probability."""
    kind = meta["kind"]
    columns = {"utt_id": pa.array([str(u) for u in utt_ids])}
    if kind == "binary":
        columns["prob_1"] = pa.array(np.asarray(probs, np.float32).reshape(-1))
    else:
        for i, name in enumerate(meta["classes"]):
            columns[f"prob_{name}"] = pa.array(np.asarray(probs, np.float32)[:, i])
    table = pa.table(columns).replace_schema_metadata({METADATA_KEY: json.dumps(meta).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_weak_table(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(metadata, {utt_id: soft target}) of a weak-label table."""
    table = pq.read_table(path)
    raw = (table.schema.metadata or {}).get(METADATA_KEY)
    if raw is None:
        raise ValueError(f"{path}: not a weak-label table (no {METADATA_KEY.decode()} metadata)")
    meta = json.loads(raw)
    frame = table.to_pandas()
    prob_columns = [c for c in frame.columns if c.startswith("prob_")]
    values = frame[prob_columns].to_numpy(np.float32)
    if meta["kind"] == "binary":
        values = values[:, 0]
    return meta, dict(zip(frame["utt_id"], values))


def attach_weak_labels(data: TrainingData, tables: Sequence[str | os.PathLike[str]]) -> TrainingData:
    """`data` with each table's task added as a weak task (soft targets, confidence)."""
    for path in tables:
        meta, by_id = read_weak_table(path)
        task = meta["task"]
        if task in data.kinds:
            raise ValueError(f"{path}: weak task {task!r} clashes with a label of the dataset")
        data.kinds[task] = meta["kind"]
        if meta["kind"] == "categorical":
            data.classes[task] = list(meta["classes"])
        width = len(meta["classes"]) if meta["kind"] == "categorical" else 0
        for split in data.splits.values():
            shape = (split.n, width) if width else (split.n,)
            y = np.full(shape, np.nan, np.float32)
            for i, u in enumerate(split.utt_ids):
                if u in by_id:
                    y[i] = by_id[u]
            split.labels[task] = y
        data.weak[task] = float(meta["confidence"])
    return data
