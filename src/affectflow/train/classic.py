"""Kernel SVM baselines on utterance-level vectors: the classic recipes the field compares with.

openSMILE functionals + SVM is the standard speech-emotion baseline (EmoDB, IEMOCAP), and an RBF
SVM on sentence embeddings is MUStARD's text baseline (its authors' `train_svm.py`: standardised
features, `SVC(kernel="rbf", gamma="scale")`). The `svm` model reads the same standardised,
time-averaged modalities as `linear`, fits one scikit-learn estimator per task (SVC for
categorical and binary tasks, SVR for regression), picks C on the validation split by the task's
headline metric and predicts test with the estimator fitted on the training split.

The fitted estimators are saved with `skops.io` (not pickle, which runs whatever code a file names):
`estimators_blob` writes them, `load_estimators` reads them back, refusing every file that holds
anything but the types an svm run writes (`SVM_SKOPS_NODES`), before skops builds any object.
"""

from __future__ import annotations

import io
import json
import math
import time
import zipfile
from typing import Any, Mapping

import numpy as np

from affectflow.train.data import SPLITS, Features, TrainingData, prepare
from affectflow.train.evaluation import evaluate_predictions, hard_targets, test_labels
from affectflow.train.loop import SeedResult, set_seed
from affectflow.train.models import model_config
from affectflow.train.models.svm import SvmConfig
from affectflow.train.tasks import TaskSpec

LOWER_IS_BETTER = {"mae"}


def pooled_matrix(features: Features, block_scale: str = "none") -> np.ndarray:
    """(N, ΣD): the masked time-mean of each modality (sorted by name), concatenated, as the
    `linear` model's encoder computes it. `block_scale` "sqrt_width" divides each modality's
    block by the square root of its width, so every modality carries the same total variance of
    its standardised features (6,373 ComParE functionals no longer outweigh 768 encoder states)."""
    parts = []
    for name in sorted(features):
        x, lengths = features[name]
        valid = np.arange(x.shape[1])[None, :, None] < lengths[:, None, None]
        block = (x * valid).sum(axis=1) / np.maximum(lengths, 1)[:, None]
        parts.append(block / np.sqrt(block.shape[1]) if block_scale == "sqrt_width" else block)
    return np.concatenate(parts, axis=1).astype(np.float64)


def _estimator(spec: TaskSpec, c: float, kernel: str, seed: int) -> Any:
    from sklearn.svm import SVC, SVR

    if spec.kind == "regression":
        return SVR(C=c, kernel=kernel, gamma="scale")
    weight = "balanced" if spec.class_weight == "balanced" else None
    return SVC(C=c, kernel=kernel, gamma="scale", class_weight=weight, random_state=seed)


def svm_outputs(estimator: Any, spec: TaskSpec, x: np.ndarray) -> np.ndarray:
    """Predictions in the torch models' layout: categorical one-hot (N, C) of the predicted
    class, binary (N,) 0/1, regression (N,) values clipped to the label's scale (an SVM gives
    no calibrated probability)."""
    predicted = estimator.predict(x)
    if spec.kind == "categorical":
        return np.eye(spec.n_outputs, dtype=np.float32)[predicted.astype(int)]
    if spec.kind == "regression" and spec.value_range is not None:
        predicted = np.clip(predicted, *spec.value_range)
    return predicted.astype(np.float32)


def train_svm_seed(data: TrainingData, tasks: Mapping[str, Any], hparams: Mapping[str, Any],
                   seed: int) -> SeedResult:
    """Fit an SVM per task on the pooled training features, C chosen on valid; evaluate on test.

    hparams: `SvmConfig` (``svm_c``, ``svm_kernel``, ``block_scale``; other models' and the
    trainer's keys are ignored). C is chosen on the validation split by the task's headline
    metric, and on MAE for every regression task (not on sign accuracy, which a constant
    prediction can win on small data). Multi-label tasks (``loss: bce``) are refused: use
    ``loss: ce``; a weak task is fitted on its hard labels (the argmax of the soft targets).
    `curves` holds the validation metric per C (``valid_<task>_<metric>``) and ``svm_c``.
    """
    cfg: SvmConfig = model_config("svm", hparams)
    grid = [float(c) for c in (cfg.svm_c if isinstance(cfg.svm_c, list) else [cfg.svm_c])]
    prep = prepare(data, tasks)
    for task, spec in prep.specs.items():
        if spec.multilabel:
            raise ValueError(f"task {task}: the svm model is single-label; set loss: ce")
    set_seed(seed)
    x = {s: pooled_matrix(prep.feats[s], cfg.block_scale) for s in SPLITS}
    curves: dict[str, list[float]] = {"train_loss": [], "valid_loss": [], "svm_c": grid}
    preds: dict[str, np.ndarray] = {}
    estimators: dict[str, Any] = {}
    t0 = time.perf_counter()
    for task, spec in prep.specs.items():
        metric = "mae" if spec.kind == "regression" else prep.headline[task]
        best_score, best = -math.inf, None
        y_train = hard_targets(prep.targets["train"][task], spec)
        for c in grid:
            rows = np.isfinite(y_train)
            estimator = _estimator(spec, c, cfg.svm_kernel, seed)
            estimator.fit(x["train"][rows], y_train[rows])
            valid_preds = {spec.prediction_key: svm_outputs(estimator, spec, x["valid"])}
            scores, _ = evaluate_predictions(valid_preds, prep.targets["valid"], {task: spec})
            value = scores.get(task, {}).get(metric, math.nan)
            curves.setdefault(f"valid_{task}_{metric}", []).append(value)
            score = -value if metric in LOWER_IS_BETTER else value
            if best is None or (math.isfinite(score) and score > best_score):
                best_score, best = score, estimator
        estimators[task] = best
        preds[spec.prediction_key] = svm_outputs(best, spec, x["test"])
    train_seconds = time.perf_counter() - t0
    metrics, conf = evaluate_predictions(preds, prep.targets["test"], prep.specs, prep.classes)
    result = SeedResult(
        seed=seed, model_name="svm", best_epoch=0, curves=curves, test_metrics=metrics,
        test_predictions={"utt_id": list(data.splits["test"].utt_ids), **preds}, confusion=conf,
        fusion_weights=None, train_seconds=train_seconds, model=None, norm_stats=prep.norm,
        classes={t: s.class_names for t, s in prep.specs.items() if s.kind != "regression"},
        task_kinds={t: s.kind for t, s in prep.specs.items()}, estimators=estimators,
        specs=dict(prep.specs), test_labels=test_labels(prep))
    return result


# The types `skops.io.loads` is told to trust for an svm run's estimators. skops 0.16
# (`skops.io.get_untrusted_types(data=...)` on the blobs of SVC/SVR fits with every kernel,
# class_weight and label dtype we use) reports none of their types as untrusted: the numpy and
# builtin ones below are trusted by default, and so are SVC and SVR, named here explicitly.
SKOPS_TRUSTED_TYPES: list[str] = ["sklearn.svm._classes.SVC", "sklearn.svm._classes.SVR"]
# Every node a skops file of an svm run holds: (module, class, skops loader). skops trusts all of
# scikit-learn's estimators by default; `load_estimators` accepts only these.
SVM_SKOPS_NODES: frozenset[tuple[str, str, str]] = frozenset({
    ("builtins", "dict", "DictNode"), ("builtins", "list", "ListNode"),
    ("builtins", "tuple", "TupleNode"), ("builtins", "str", "JsonNode"),
    ("builtins", "str", "TypeNode"), ("numpy", "ndarray", "NdArrayNode"),
    ("numpy", "float64", "NdArrayNode"), ("sklearn.svm._classes", "SVC", "ObjectNode"),
    ("sklearn.svm._classes", "SVR", "ObjectNode")})


class UnsafeModelError(ValueError):
    """A saved model holds something the safe loaders do not build."""


def estimators_blob(result: SeedResult) -> bytes:
    """The fitted scikit-learn estimators of an svm run (task → SVC/SVR), as a skops file."""
    import skops.io

    return skops.io.dumps(dict(result.estimators))


def _skops_nodes(blob: bytes) -> set[tuple[str, str, str]]:
    """(module, class, loader) of every node in a skops file's schema (read as JSON only)."""
    try:
        with zipfile.ZipFile(io.BytesIO(blob)) as archive:
            schema = json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError) as error:
        raise UnsafeModelError(
            "the svm estimators are not a skops file (a model.pt written before they were saved "
            f"with skops holds a pickle, which is never loaded: retrain it): {error}") from None
    nodes: set[tuple[str, str, str]] = set()
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__loader__" in node or "__class__" in node or "__module__" in node:
                nodes.add((str(node.get("__module__")), str(node.get("__class__")),
                           str(node.get("__loader__"))))
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return nodes


def load_estimators(blob: bytes) -> dict[str, Any]:
    """The estimators `estimators_blob` wrote (task → SVC/SVR). UnsafeModelError, naming the
    types, for a file holding any other type (checked on the schema before skops loads anything,
    then by `skops.io.loads` with `SKOPS_TRUSTED_TYPES` only) or one that is not a skops file."""
    import skops.io

    refused = sorted(f"{m}.{c} ({loader})" for m, c, loader in _skops_nodes(blob) - SVM_SKOPS_NODES)
    if refused:
        raise UnsafeModelError("the svm estimators hold types an svm run never writes, refused: "
                               + ", ".join(refused))
    untrusted = sorted(set(skops.io.get_untrusted_types(data=blob)) - set(SKOPS_TRUSTED_TYPES))
    if untrusted:
        raise UnsafeModelError("the svm estimators hold untrusted types, refused: "
                               + ", ".join(untrusted))
    estimators = skops.io.loads(blob, trusted=SKOPS_TRUSTED_TYPES)
    from sklearn.svm import SVC, SVR

    if not (isinstance(estimators, dict) and all(isinstance(k, str) and isinstance(v, (SVC, SVR))
                                                 for k, v in estimators.items())):
        raise UnsafeModelError("the svm estimators are not a {task: SVC or SVR} mapping")
    return estimators
