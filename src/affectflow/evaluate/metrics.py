"""Evaluation metrics by task kind (categorical, binary, regression), as used by Dai et al. and MMSA.

`task_metrics` picks the set by kind: categorical → `categorical_metrics` (acc, uar, f1_weighted,
f1_macro, optionally the paper's per-class wacc_/f1_ view), binary → `binary_metrics`,
regression → `sentiment_metrics`. `aggregate_over_folds` averages a cross-validated protocol's
folds; `aggregate_over_seeds` gives mean ± std over seeds.

Everything delegates to scikit-learn where a library function exists; the only hand-written
pieces are the paper-specific definitions (WAcc's P == 0 edge case, MMSA's has-0 / non-0 binary
views of a regression, the 5- and 7-class rounding) that no library provides.

All functions return plain ``dict[str, float]`` (JSON-friendly). ``NaN`` means "undefined on this
input" (for example a class with no positive sample); it is never silently replaced by 0 except
where a docstring says so.
"""

from __future__ import annotations

import math
import warnings
from typing import Mapping, Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    mean_absolute_error,
    precision_score,
    recall_score,
)

__all__ = [
    "task_metrics",
    "categorical_metrics",
    "single_label_rows",
    "aggregate_over_folds",
    "emotion_metrics",
    "sentiment_metrics",
    "binary_metrics",
    "multiclass_metrics",
    "confusion",
    "aggregate_over_seeds",
    "weighted_accuracy",
    "unweighted_average_recall",
    "pearson_corr",
]


def _finite_rows(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten to float and drop the rows whose label is NaN (missing)."""
    y_true = np.asarray(y_true, dtype=float).ravel()
    y_pred = np.asarray(y_pred, dtype=float).ravel()
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true {y_true.shape} and predictions {y_pred.shape} differ in size")
    keep = np.isfinite(y_true)
    return y_true[keep], y_pred[keep]


def unweighted_average_recall(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """UAR: mean recall over the classes present in `y_true` (scikit-learn's balanced accuracy).

    Its warnings about predicted classes absent from `y_true` are silenced: ignoring those classes
    is the documented definition here, not an accident.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        warnings.filterwarnings("ignore", message="A single label was found")
        return float(balanced_accuracy_score(y_true, y_pred))


def weighted_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """WAcc = (TP·N/P + TN) / (2N) of Tong et al. (2017), the paper's per-emotion metric.

    Algebraically WAcc = (TPR + TNR) / 2, i.e. binary balanced accuracy, so it is computed with
    scikit-learn's `balanced_accuracy_score` on labels {0, 1}.
    Edge cases: P == 0 (no positive sample) makes TP·N/P undefined -> NaN (the class carries no
    evidence about detection; scikit-learn would silently return TNR instead). N == 0 makes the
    formula 0/0 -> NaN as well.
    """
    y_true = np.asarray(y_true).astype(int)
    y_pred = np.asarray(y_pred).astype(int)
    n_pos = int(y_true.sum())
    if n_pos == 0 or n_pos == y_true.size:
        return math.nan
    return unweighted_average_recall(y_true, y_pred)


def emotion_metrics(
    y_true: np.ndarray,
    y_score: np.ndarray,
    class_names: Sequence[str],
    threshold: float = 0.5,
) -> dict[str, float]:
    """Per-class WAcc and binary F1 (the paper's multi-label view) plus a single-label view.

    y_true: (N, C) 0/1 multi-hot. y_score: (N, C) probabilities, or 0/1 predictions; a class is
    predicted present when ``y_score >= threshold``.
    Returns ``wacc_<class>``, ``f1_<class>`` (unweighted binary F1 of the positive class, as the
    paper argues against weighted F1), ``wacc_avg`` / ``f1_avg`` (mean over classes whose value is
    defined; a class with no positive sample in `y_true` gets NaN for both and is skipped), and
    ``acc`` / ``uar`` for the single-label view: argmax of `y_score` vs the true class, on rows
    with exactly one positive label (UAR = mean recall over the classes present in `y_true`).
    With hard 0/1 `y_score`, argmax ties go to the first class; pass probabilities.
    """
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=float)
    if y_true.ndim != 2 or y_true.shape != y_score.shape or y_true.shape[1] != len(class_names):
        raise ValueError(
            f"emotion_metrics needs y_true and y_score of shape (N, {len(class_names)}); "
            f"got {y_true.shape} and {y_score.shape}"
        )
    y_true = y_true.astype(int)
    y_hat = (y_score >= threshold).astype(int)
    out: dict[str, float] = {}
    waccs, f1s = [], []
    for c, name in enumerate(class_names):
        wacc = weighted_accuracy(y_true[:, c], y_hat[:, c])
        f1 = (
            math.nan
            if y_true[:, c].sum() == 0
            else float(f1_score(y_true[:, c], y_hat[:, c], zero_division=0.0))
        )
        out[f"wacc_{name}"], out[f"f1_{name}"] = wacc, f1
        waccs.append(wacc)
        f1s.append(f1)
    out["wacc_avg"] = _nanmean(waccs)
    out["f1_avg"] = _nanmean(f1s)
    single = y_true.sum(axis=1) == 1
    if single.any():
        true_cls = y_true[single].argmax(axis=1)
        pred_cls = y_score[single].argmax(axis=1)
        out["acc"] = float(accuracy_score(true_cls, pred_cls))
        out["uar"] = unweighted_average_recall(true_cls, pred_cls)
    else:
        out["acc"] = out["uar"] = math.nan
    return out


def _nanmean(values: Sequence[float]) -> float:
    """Mean of the non-NaN values; NaN when there are none (no RuntimeWarning)."""
    arr = np.asarray(values, dtype=float)
    arr = arr[~np.isnan(arr)]
    return float(arr.mean()) if arr.size else math.nan


def pearson_corr(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Pearson r; 0.0 (not NaN) when either side is constant, so a model that predicts one value
    everywhere scores "no correlation" instead of breaking means over seeds."""
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    if y_true.size < 2 or np.ptp(y_true) == 0 or np.ptp(y_pred) == 0:
        return 0.0
    return float(np.corrcoef(y_true, y_pred)[0, 1])


def sentiment_metrics(y_true: np.ndarray, y_pred: np.ndarray,
                      scale: tuple[float, float] | None = (-3.0, 3.0)) -> dict[str, float]:
    """MMSA's regression metrics for sentiment scores in [-3, 3] (rows with NaN y_true ignored).

    - ``acc2_has0`` / ``f1_has0``: (y >= 0) vs (pred >= 0) on all samples (0 counts as positive).
    - ``acc2_non0`` / ``f1_non0``: samples with y == 0 dropped, then (y > 0) vs (pred > 0).
      NaN when every label is 0.
    - Both F1s are *weighted* F1 (support-weighted over the two classes), as MMSA computes them.
      ``f1_weighted`` repeats ``f1_non0``: the single "F1" that papers (MulT, MAG, Dai et al.'s
      sentiment table) report next to Acc2 is the non-0 weighted F1.
    - ``acc5`` / ``acc7``: equality of round(clip(., -2, 2)) / round(clip(., -3, 3)) between
      prediction and label; rounding is NumPy's half-to-even, exactly as MMSA. Only for a
      label `scale` of (-3, 3): on any other scale (or an unknown one, None) the bins mean
      nothing and both are left out.
    - ``mae``: mean absolute error; ``corr``: Pearson r, 0.0 when predictions (or labels) are
      constant (see `pearson_corr`).
    """
    y_true, y_pred = _finite_rows(y_true, y_pred)
    if y_true.size == 0:
        raise ValueError("sentiment_metrics: no labelled sample")
    has0_t, has0_p = y_true >= 0, y_pred >= 0
    out = {
        "acc2_has0": float(accuracy_score(has0_t, has0_p)),
        "f1_has0": float(f1_score(has0_t, has0_p, average="weighted", zero_division=0.0)),
    }
    nz = y_true != 0
    if nz.any():
        non0_t, non0_p = y_true[nz] > 0, y_pred[nz] > 0
        out["acc2_non0"] = float(accuracy_score(non0_t, non0_p))
        out["f1_non0"] = float(f1_score(non0_t, non0_p, average="weighted", zero_division=0.0))
    else:
        out["acc2_non0"] = out["f1_non0"] = math.nan
    out["f1_weighted"] = out["f1_non0"]
    for k, bound in ((5, 2.0), (7, 3.0)) if scale is not None and tuple(scale) == (-3, 3) else ():
        t = np.round(np.clip(y_true, -bound, bound))
        p = np.round(np.clip(y_pred, -bound, bound))
        out[f"acc{k}"] = float(accuracy_score(t, p))
    out["mae"] = float(mean_absolute_error(y_true, y_pred))
    out["corr"] = pearson_corr(y_true, y_pred)
    return out


def binary_metrics(
    y_true: np.ndarray, y_prob: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """Binary metrics (sarcasm): positive class = 1, predicted when ``y_prob >= threshold``.

    Rows with NaN y_true are ignored. ``f1``/``precision``/``recall`` are for the positive class
    (0.0 when undefined, scikit-learn's ``zero_division=0``); ``precision_weighted``,
    ``recall_weighted`` and ``f1_weighted`` are support-weighted over both classes (the "weighted
    avg" row of scikit-learn's classification report, which MUStARD's authors report);
    ``uar`` is balanced accuracy (mean recall of the classes present).
    """
    y_true, y_prob = _finite_rows(y_true, y_prob)
    if y_true.size == 0:
        raise ValueError("binary_metrics: no labelled sample")
    t = y_true.astype(int)
    p = (y_prob >= threshold).astype(int)
    return {
        "acc": float(accuracy_score(t, p)),
        "f1": float(f1_score(t, p, zero_division=0.0)),
        "precision": float(precision_score(t, p, zero_division=0.0)),
        "recall": float(recall_score(t, p, zero_division=0.0)),
        "precision_weighted": float(precision_score(t, p, average="weighted", zero_division=0.0)),
        "recall_weighted": float(recall_score(t, p, average="weighted", zero_division=0.0)),
        "f1_weighted": float(f1_score(t, p, average="weighted", zero_division=0.0)),
        "uar": unweighted_average_recall(t, p),
    }


def multiclass_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """Single-label multi-class metrics from integer labels (EmoDB, MELD...).

    ``uar`` = mean recall over the classes present in `y_true` (balanced accuracy);
    ``f1_macro`` averages over the classes seen in `y_true` or `y_pred` (scikit-learn default).
    """
    t = np.asarray(y_true).astype(int).ravel()
    p = np.asarray(y_pred).astype(int).ravel()
    return {
        "acc": float(accuracy_score(t, p)),
        "uar": unweighted_average_recall(t, p),
        "f1_weighted": float(f1_score(t, p, average="weighted", zero_division=0.0)),
        "f1_macro": float(f1_score(t, p, average="macro", zero_division=0.0)),
    }


PER_CLASS_RESERVED = ("avg", "weighted", "macro")  # class names whose f1_<c> would clash


def single_label_rows(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(true class, argmax-predicted class) on the rows with exactly one true class.

    y_true: (N,) class indices (negative or NaN = missing) or (N, C) multi-hot (NaN rows missing;
    rows with 0 or several positives are not single-label). y_score: (N, C) scores.
    """
    y_true = np.asarray(y_true, dtype=float)
    y_score = np.asarray(y_score, dtype=float)
    if y_true.ndim == 1:
        keep = np.isfinite(y_true) & (y_true >= 0)
        true_cls = y_true[keep].astype(int)
    else:
        keep = np.isfinite(y_true).all(axis=1) & (np.nan_to_num(y_true).sum(axis=1) == 1)
        true_cls = y_true[keep].argmax(axis=1)
    return true_cls, y_score[keep].argmax(axis=1)


def categorical_metrics(
    y_true: np.ndarray,
    y_score: np.ndarray,
    class_names: Sequence[str],
    per_class: bool = False,
    multilabel: bool = False,
    threshold: float = 0.5,
) -> dict[str, float]:
    """Metrics of a categorical task from (N, C) class scores (probabilities).

    y_true as in `single_label_rows`. ``acc``, ``uar``, ``f1_weighted``, ``f1_macro``
    (`multiclass_metrics`) compare the argmax with the true class on single-label rows (NaN when
    there is none). With `per_class`, the paper's one-vs-rest view is added: ``wacc_<class>``,
    ``f1_<class>``, ``wacc_avg``, ``f1_avg`` (see `emotion_metrics`) on every labelled row; a class
    counts as predicted when its score is >= `threshold` (`multilabel`, sigmoid outputs) or when
    it is the argmax (single-label softmax outputs, where thresholding each class at 0.5 would
    predict nothing for most rows once C > 2).
    """
    y_true = np.asarray(y_true, dtype=float)
    y_score = np.asarray(y_score, dtype=float)
    n_classes = len(class_names)
    if y_score.ndim != 2 or y_score.shape[1] != n_classes or len(y_score) != len(y_true):
        raise ValueError(f"categorical_metrics needs y_score of shape ({len(y_true)}, "
                         f"{n_classes}); got {y_score.shape}")
    if y_true.ndim == 1:
        labelled = np.isfinite(y_true) & (y_true >= 0)
        multi_hot = np.eye(n_classes)[y_true[labelled].astype(int)]
    else:
        labelled = np.isfinite(y_true).all(axis=1)
        multi_hot = y_true[labelled]
    if not labelled.any():
        raise ValueError("categorical_metrics: no labelled sample")
    true_cls, pred_cls = single_label_rows(y_true, y_score)
    if true_cls.size:
        out = multiclass_metrics(true_cls, pred_cls)
    else:
        out = dict.fromkeys(("acc", "uar", "f1_weighted", "f1_macro"), math.nan)
    if per_class:
        clash = [c for c in class_names if c in PER_CLASS_RESERVED]
        if clash:
            raise ValueError(f"class names {clash} clash with metric names f1_/wacc_{clash[0]}")
        scores = y_score[labelled]
        if not multilabel:
            scores = np.eye(n_classes)[scores.argmax(axis=1)]
        paper = emotion_metrics(multi_hot, scores, class_names, threshold)
        out.update({k: v for k, v in paper.items() if k not in ("acc", "uar")})
    return out


def task_metrics(
    kind: str,
    y_true: np.ndarray,
    y_pred: np.ndarray,
    class_names: Sequence[str] = (),
    per_class: bool = False,
    multilabel: bool = False,
    value_range: tuple[float, float] | None = (-3.0, 3.0),
) -> dict[str, float]:
    """Metrics of one task by kind: ``categorical`` → `categorical_metrics` (y_pred (N, C)
    probabilities), ``binary`` → `binary_metrics` (y_pred positive-class probability),
    ``regression`` → `sentiment_metrics` (y_pred the predicted value)."""
    if kind == "categorical":
        return categorical_metrics(y_true, y_pred, class_names, per_class, multilabel)
    if kind == "binary":
        return binary_metrics(y_true, y_pred)
    if kind == "regression":
        return sentiment_metrics(y_true, y_pred, value_range)
    raise ValueError(f"unknown task kind {kind!r}")


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) confusion matrix, rows = true class, columns = predicted class,
    with every class present even when absent from the data."""
    t, p = np.asarray(y_true).astype(int), np.asarray(y_pred).astype(int)
    return confusion_matrix(t, p, labels=list(range(n_classes)))


def aggregate_over_seeds(
    per_seed: Sequence[Mapping[str, Mapping[str, float]]],
) -> dict[str, dict[str, dict[str, float]]]:
    """Mean and standard deviation of every ``{task: {metric: value}}`` over seeds.

    std is the sample standard deviation (ddof=1) when more than one seed reports the metric, and
    0.0 for a single seed (the paper does not say which it uses; ddof=1 is the unbiased choice for
    5 seeds and is slightly larger). A metric missing from some seeds is aggregated over the seeds
    that report it. NaN values propagate (a NaN in any seed gives NaN), so undefined metrics are
    not hidden.
    """
    out: dict[str, dict[str, dict[str, float]]] = {}
    for result in per_seed:
        for task, metrics in result.items():
            for name in metrics:
                out.setdefault(task, {}).setdefault(name, {})
    for task, names in out.items():
        for name in names:
            reported = [r[task][name] for r in per_seed if task in r and name in r[task]]
            vals = np.asarray(reported, dtype=float)
            std = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
            names[name] = {"mean": float(vals.mean()), "std": std}
    return out


def aggregate_over_folds(
    per_fold: Sequence[Mapping[str, Mapping[str, float | None]]],
) -> dict[str, dict[str, float]]:
    """Mean over the folds of a cross-validated protocol, per ``{task: {metric: value}}``.

    NaN-aware: a metric undefined in some folds (NaN or None, e.g. a class absent from one
    speaker's test fold) is averaged over the folds where it is defined, and is NaN only when it
    is undefined in every fold; a metric missing from some folds is averaged over those reporting
    it. Typical use: per seed, the fold average; then `aggregate_over_seeds` over the seeds.
    """
    collected: dict[str, dict[str, list[float]]] = {}
    for fold in per_fold:
        for task, metrics in fold.items():
            for name, value in metrics.items():
                value = math.nan if value is None else float(value)
                collected.setdefault(task, {}).setdefault(name, []).append(value)
    return {task: {name: _nanmean(values) for name, values in names.items()}
            for task, names in collected.items()}
