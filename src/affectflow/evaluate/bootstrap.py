"""Paired bootstrap confidence intervals of a metric's difference between two models (paper 003,
appendix A.4): resample the test utterances with replacement, compute challenger − baseline on
each resample (each model's metric the mean over its seeds, as reported), and take the 2.5 and
97.5 percentiles. "Significant" when the 95 % CI excludes 0.

Metrics are computed vectorised over all resamples at once: ``acc``, ``uar``, ``f1_weighted``,
``f1_macro`` from per-resample confusion counts (classification, predictions as class indices),
``mae`` (regression).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

METRICS = ("acc", "uar", "f1_weighted", "f1_macro", "mae")


def _classification(y: np.ndarray, pred: np.ndarray, idx: np.ndarray, metric: str,
                    n_classes: int) -> np.ndarray:
    """Metric per resample; idx (R, N) row indices."""
    r = idx.shape[0]
    codes = (y[idx] * n_classes + pred[idx]).astype(np.int64)  # (R, N)
    offsets = (np.arange(r) * n_classes * n_classes)[:, None]
    counts = np.bincount((codes + offsets).ravel(), minlength=r * n_classes ** 2)
    cm = counts.reshape(r, n_classes, n_classes).astype(np.float64)  # rows true
    support, predicted, tp = cm.sum(axis=2), cm.sum(axis=1), np.diagonal(cm, axis1=1, axis2=2)
    if metric == "acc":
        return tp.sum(axis=1) / idx.shape[1]
    present = support > 0
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=present)
    if metric == "uar":
        return recall.sum(axis=1) / present.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    if metric == "f1_weighted":
        return (f1 * support).sum(axis=1) / support.sum(axis=1)
    # macro over the classes present in truth or prediction of the resample (scikit-learn's
    # labels default)
    seen = present | (predicted > 0)
    return (f1 * seen).sum(axis=1) / seen.sum(axis=1)


def metric_per_resample(y: np.ndarray, pred: np.ndarray, idx: np.ndarray, metric: str,
                        n_classes: int = 0) -> np.ndarray:
    if metric == "mae":
        return np.abs(y[idx] - pred[idx]).mean(axis=1)
    if metric not in METRICS:
        raise ValueError(f"bootstrap metric {metric!r}: one of {METRICS}")
    return _classification(y.astype(np.int64), pred.astype(np.int64), idx, metric, n_classes)


def paired_bootstrap(y: np.ndarray, challenger: Sequence[np.ndarray], baseline: Sequence[np.ndarray],
                     metric: str, n_classes: int = 0, resamples: int = 1000, seed: int = 0,
                     level: float = 0.95) -> dict[str, float]:
    """CI of metric(challenger) − metric(baseline) on paired resamples of the test rows.

    `y` (N,) truth; `challenger`/`baseline`: one (N,) prediction per seed (class indices, or
    values for mae). Returns diff (on the full test set), low, high, significant, p (share of
    resamples whose difference has the other sign than `diff`, two-sided), n, resamples."""
    y = np.asarray(y)
    n = len(y)
    if n == 0:
        raise ValueError("paired_bootstrap: no test rows")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    full = np.arange(n)[None, :]

    def score(preds: Sequence[np.ndarray], rows: np.ndarray) -> np.ndarray:
        return np.mean([metric_per_resample(y, np.asarray(p), rows, metric, n_classes)
                        for p in preds], axis=0)

    diffs = score(challenger, idx) - score(baseline, idx)
    diff = float((score(challenger, full) - score(baseline, full))[0])
    alpha = (1 - level) / 2
    low, high = (float(v) for v in np.quantile(diffs, [alpha, 1 - alpha]))
    other_side = np.mean(diffs <= 0) if diff > 0 else np.mean(diffs >= 0)
    return {"diff": diff, "low": low, "high": high, "significant": bool(low > 0 or high < 0),
            "p": float(min(1.0, 2 * other_side)), "n": n, "resamples": resamples}
