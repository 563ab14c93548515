"""The controlled check of weak labels: score a weak-label table against the target corpus's own
labels of the same task, where it has them (Dai et al. 2021 never could: their targets lacked
those labels; a second corpus built like the first, e.g. the demo with another seed, has them).

The weak labels themselves are made without reading the target's labels
(`affectflow.predict.weak`); this runs afterwards, reads them for the score only, and its
result goes into `metrics.json` (``@weak_checks``) and the report beside the models trained
on those labels. Per split and over all rows: n, accuracy, UAR, weighted F1 and the majority-class
accuracy of the same rows (what a labeler that knew only the prior would get).
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import numpy as np
import pandas as pd

from affectflow.evaluate.metrics import multiclass_metrics
from affectflow.train.weak import read_weak_table


def _truth(values: pd.Series, label: Mapping[str, Any], classes: list[str]) -> np.ndarray:
    """The target's labels as class indices of the weak table (−1: missing or unknown)."""
    kind = label.get("type", "categorical")
    if kind == "categorical":
        index = {c: i for i, c in enumerate(classes)}
        return np.array([index.get(str(v), -1) if pd.notna(v) else -1 for v in values])
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(float)
    if kind == "regression":  # the binary view of a regression label, as the weak table has it
        numbers = np.where(np.isfinite(numbers), (numbers > 0).astype(float), np.nan)
    return np.where(np.isfinite(numbers), numbers, -1).astype(int)


def check_weak_labels(weak: str | os.PathLike[str], manifest: str | os.PathLike[str],
                      label: str, label_spec: Mapping[str, Any]) -> dict[str, Any]:
    """Scores of the weak table `weak` against column `label` of `manifest` (see the module
    docstring). Classes are matched by name; a weak class the target lacks counts as wrong."""
    meta, table = read_weak_table(weak)
    frame = pd.read_parquet(manifest)
    if label not in frame.columns:
        raise ValueError(f"{manifest}: no column {label!r} to check the weak labels {weak} against")
    frame = frame[frame["utt_id"].isin(set(table))]
    classes = list(meta["classes"]) or ["0", "1"]
    truth = _truth(frame[label], label_spec, classes)
    scores = np.stack([table[u] for u in frame["utt_id"]]) if len(frame) else np.zeros((0, len(classes)))
    pred = scores.argmax(axis=1) if scores.ndim == 2 else (scores >= 0.5).astype(int)
    splits: dict[str, dict[str, float]] = {}
    for split in ("train", "valid", "test", "all"):
        rows = (truth >= 0) & ((frame["split"] == split).to_numpy() if split != "all" else True)
        if not rows.any():
            continue
        m = multiclass_metrics(truth[rows], pred[rows])
        splits[split] = {"n": int(rows.sum()), "acc": m["acc"], "uar": m["uar"],
                         "f1_weighted": m["f1_weighted"],
                         "majority": float(np.bincount(truth[rows]).max() / rows.sum())}
    return {"name": meta["task"], "label": label, "labeler_task": meta["labeler_task"],
            "from_corpus": meta["from_corpus"], "model": meta["model"],
            "confidence": meta["confidence"], "n_unlabelled": int((truth < 0).sum()),
            "splits": splits}
