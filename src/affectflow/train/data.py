"""Training data in memory: splits, standardisation, NaN-masked targets and loss weights.

Features are standardised per dimension with statistics of the training split's valid frames.
Labels are kept per task (any label name); their kind and class names live in `TrainingData`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Collection, Mapping

import numpy as np
import torch
from torch import Tensor

from affectflow.train.tasks import LEGACY_KINDS, TaskSpec, normalize_tasks

SPLITS = ("train", "valid", "test")
Features = dict[str, tuple[np.ndarray, np.ndarray]]


@dataclass
class SplitData:
    """One split. features: {modality: (x float32 (N, T, D) zero-padded, lengths int (N,))}.

    labels: {task: array}. Categorical: (N,) int class index, -1 (or NaN) = missing; or (N, C)
    0/1 multi-hot with NaN rows for missing. Binary: (N,) float 0/1, NaN = missing. Regression:
    (N,) float, NaN = missing. A task absent from `labels` has no label in this split.
    `emotion`, `sentiment`, `sarcasm` are the historical fields; they are merged into `labels`.
    """

    features: Features
    utt_ids: list[str]
    emotion: np.ndarray | None = None
    sentiment: np.ndarray | None = None
    sarcasm: np.ndarray | None = None
    labels: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.labels = dict(self.labels)
        for name in LEGACY_KINDS:
            if getattr(self, name) is not None:
                self.labels.setdefault(name, getattr(self, name))
            elif name in self.labels:
                setattr(self, name, self.labels[name])

    @property
    def n(self) -> int:
        return len(self.utt_ids)


@dataclass
class TrainingData:
    """The three splits ("train", "valid", "test") plus per-task label information.

    classes: {task: class names (column order)} of categorical tasks; kinds: {task: categorical |
    binary | regression} (unknown kinds are inferred, see `normalize_tasks`); views: {modality:
    sequence | pooled}, informational. `emotion_classes` is the historical spelling of
    ``classes["emotion"]``; both are kept in sync.
    """

    splits: dict[str, SplitData]
    emotion_classes: list[str] = field(default_factory=list)
    classes: dict[str, list[str]] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    views: dict[str, str] = field(default_factory=dict)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # regression scales
    weak: dict[str, float] = field(default_factory=dict)  # weak task → its labeler's confidence
    # modality → {extractor, version, params_hash, view}: where its features came from
    sources: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.classes = {t: list(c) for t, c in self.classes.items()}
        if self.emotion_classes and "emotion" not in self.classes:
            self.classes["emotion"] = list(self.emotion_classes)
        elif "emotion" in self.classes and not self.emotion_classes:
            self.emotion_classes = list(self.classes["emotion"])

    def modality_dims(self) -> dict[str, int]:
        return {m: int(x.shape[2]) for m, (x, _) in self.splits["train"].features.items()}


# ----------------------------------------------------------------------------- standardisation


def fit_standardiser(features: Features, raw: Collection[str] = ()
                     ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per-modality, per-dimension mean/std over the valid frames (std 0 -> 1); the `raw`
    modalities (samples, token ids) get the identity (mean 0, std 1)."""
    stats = {}
    for m, (x, lengths) in features.items():
        if m in raw:
            stats[m] = (np.zeros(x.shape[2]), np.ones(x.shape[2]))
            continue
        frames = x[np.arange(x.shape[1])[None, :] < np.asarray(lengths)[:, None]].astype(np.float64)
        if not np.isfinite(frames).all():
            raise ValueError(f"modality {m!r}: non-finite values in valid training frames")
        std = frames.std(axis=0)
        stats[m] = (frames.mean(axis=0), np.where(std > 0, std, 1.0))
    return stats


def apply_standardiser(
    features: Features, stats: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> Features:
    """Standardise valid frames, set padding to 0; reject bad lengths and non-finite frames."""
    out = {}
    for m, (x, lengths) in features.items():
        lengths = np.asarray(lengths, dtype=np.int64)
        if lengths.min(initial=1) < 1 or lengths.max(initial=0) > x.shape[1]:
            raise ValueError(f"modality {m!r}: lengths must lie in [1, T={x.shape[1]}]")
        mean, std = stats[m]
        mask = np.arange(x.shape[1])[None, :, None] < lengths[:, None, None]
        z = np.where(mask, (x - mean) / std, 0.0).astype(np.float32)
        if not np.isfinite(z).all():
            raise ValueError(f"modality {m!r}: non-finite values in valid frames")
        out[m] = (z, lengths)
    return out


# ----------------------------------------------------------------------------- targets


def _categorical_target(task: str, v: np.ndarray, spec: TaskSpec, n: int) -> np.ndarray:
    """(N, C) multi-hot for multi-label, (N,) float class index for softmax CE; NaN missing."""
    c = spec.n_outputs
    if v.ndim == 1:
        idx = np.asarray(v, np.float64)
        ok = np.isfinite(idx) & (idx >= 0)
        if ok.any() and (idx[ok].max() >= c or (idx[ok] != np.round(idx[ok])).any()):
            raise ValueError(f"{task} labels must be class indices in [0, {c}), got {idx[ok].max()}")
        if spec.multilabel:
            out = np.full((n, c), np.nan, np.float32)
            out[ok] = np.eye(c, dtype=np.float32)[idx[ok].astype(int)]
            return out
        return np.where(ok, idx, np.nan).astype(np.float32)
    multi = np.asarray(v, np.float32)
    if spec.multilabel:
        return multi
    rows = np.isfinite(multi).all(axis=1)
    if (multi[rows].sum(axis=1) != 1).any():
        raise ValueError(f"{task}: multi-hot rows with != 1 positive need loss 'bce'")
    return np.where(rows, np.nan_to_num(multi).argmax(axis=1), np.nan).astype(np.float32)


def label_targets(split: SplitData, tasks: Mapping[str, TaskSpec]) -> dict[str, np.ndarray]:
    """Float targets of `tasks`, NaN = missing: multi-label (N, C) multi-hot, others (N,)."""
    targets: dict[str, np.ndarray] = {}
    for task, spec in tasks.items():
        v = split.labels.get(task)
        shape = (split.n, spec.n_outputs) if spec.multilabel else (split.n,)
        if spec.soft and spec.kind == "categorical":
            shape = (split.n, spec.n_outputs)
        if v is None:
            y = np.full(shape, np.nan, np.float32)
        elif spec.soft:
            y = np.asarray(v, np.float32)
        elif spec.kind == "categorical":
            y = _categorical_target(task, np.asarray(v), spec, split.n)
        else:
            y = np.asarray(v, np.float32)
        if y.shape != shape:
            raise ValueError(f"{task} labels have shape {y.shape}, expected {shape}")
        finite = y[np.isfinite(y)]
        if spec.kind == "binary" and not spec.soft and not np.isin(finite, (0.0, 1.0)).all():
            raise ValueError(f"{task} labels must be 0, 1 or NaN (missing)")
        if spec.soft and ((finite < 0) | (finite > 1)).any():
            raise ValueError(f"weak task {task}: soft targets must lie in [0, 1]")
        targets[task] = y
    return targets


def emotion_pos_weight(train_targets: np.ndarray) -> np.ndarray:
    """Multi-label ``pos_weight``: negatives / positives per class on the labelled training rows
    (1.0 for a class with no positive, where re-weighting has nothing to weight)."""
    rows = train_targets[~np.isnan(train_targets).any(axis=1)]
    pos = rows.sum(axis=0)
    neg = rows.shape[0] - pos
    return np.where(pos > 0, neg / np.maximum(pos, 1), 1.0).astype(np.float32)


def balanced_class_weight(train_targets: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's ``class_weight='balanced'``: n / (k · n_c) over the k classes present in the
    labelled training rows (1.0 for an absent class, which no training sample carries). The mean
    weight over the training samples is then exactly 1, so λ keeps its scale."""
    y = train_targets[np.isfinite(train_targets)].astype(int)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.ones(n_classes)
    weights[present] = y.size / (present.sum() * counts[present])
    return weights.astype(np.float32)


def loss_weights(specs: Mapping[str, TaskSpec],
                 train_targets: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-task loss weights from the training targets (see `per_sample_losses`)."""
    out = {}
    for task, spec in specs.items():
        if spec.multilabel:
            out[task] = emotion_pos_weight(train_targets[task])
        elif spec.class_weight == "balanced":
            out[task] = balanced_class_weight(train_targets[task], max(spec.n_outputs, 2))
    return out


def headline_metric(spec: TaskSpec, train_targets: np.ndarray) -> str:
    """Validation metric logged per epoch: categorical uar, binary acc, regression acc2_non0 on a
    signed scale (training labels on both sides of 0, e.g. sentiment), else mae."""
    if spec.kind == "categorical":
        return "uar"
    if spec.kind == "binary":
        return "acc"
    y = train_targets[np.isfinite(train_targets)]
    return "acc2_non0" if (y < 0).any() and (y > 0).any() else "mae"


def make_batch(
    features: Features, targets: Mapping[str, np.ndarray], idx: np.ndarray, device: torch.device
) -> tuple[dict[str, tuple[Tensor, Tensor]], dict[str, Tensor]]:
    """Slice rows `idx`, trim padding to the longest sequence in the batch, move to `device`."""
    inputs = {}
    for m, (x, lengths) in features.items():
        lb = lengths[idx]
        x_b = torch.from_numpy(x[idx, : int(lb.max())])
        inputs[m] = (x_b.to(device), torch.from_numpy(lb).to(device))
    return inputs, {t: torch.from_numpy(y[idx]).to(device) for t, y in targets.items()}


# ----------------------------------------------------------------------------- preparation


@dataclass
class Prepared:
    """Standardised features and NaN-masked targets of every split, ready for training."""

    specs: dict[str, TaskSpec]
    classes: list[str]  # emotion's class names (historical); per task: specs[t].class_names
    norm: dict[str, tuple[np.ndarray, np.ndarray]]
    feats: dict[str, Features]
    targets: dict[str, dict[str, np.ndarray]]
    loss_weights: dict[str, np.ndarray] = field(default_factory=dict)
    headline: dict[str, str] = field(default_factory=dict)


_Prepared = Prepared  # historical name


def prepare(data: TrainingData, tasks: Mapping[str, Any]) -> Prepared:
    """Normalise tasks, fit the standardiser on train, build targets; fail early on bad input."""
    specs = normalize_tasks(tasks, len(data.emotion_classes) or None, kinds=data.kinds,
                            classes=data.classes, ranges=data.ranges, weak=data.weak)
    missing = [s for s in SPLITS if s not in data.splits]
    if missing:
        raise ValueError(f"TrainingData lacks split(s) {missing}")
    norm = fit_standardiser(data.splits["train"].features,
                            [m for m, view in data.views.items() if view == "raw"])
    feats = {s: apply_standardiser(data.splits[s].features, norm) for s in SPLITS}
    targets = {s: label_targets(data.splits[s], specs) for s in SPLITS}
    for s in ("train", "valid"):
        unlabelled = [t for t in specs if np.isnan(targets[s][t]).all()]
        if unlabelled:
            raise ValueError(f"{s} split has no label for task(s) {unlabelled} with λ > 0")
    classes = specs["emotion"].class_names if "emotion" in specs else list(data.emotion_classes)
    train = targets["train"]
    return Prepared(specs, classes, norm, feats, targets, loss_weights(specs, train),
                    {t: headline_metric(s, train[t]) for t, s in specs.items()})
