"""Challenger-vs-baseline comparisons over result records, with paired bootstrap CIs.

Config (``evaluation``): ``resamples`` (1,000) and ``compare``: a list of {challenger, baseline,
task, metric} (metric default: f1_weighted for categorical and binary tasks, mae for
regression). Each model's test predictions are gathered per seed over the folds of the protocol
(every utterance is in exactly one test fold), paired on the utterances both models scored.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Mapping, Sequence

import numpy as np

from affectflow.evaluate.bootstrap import paired_bootstrap

DEFAULT_METRIC = {"categorical": "f1_weighted", "binary": "f1_weighted", "regression": "mae"}


def _per_seed(records: Sequence[Mapping[str, Any]], task: str) -> tuple[str, int, dict]:
    """(kind, n_classes, {seed: {utt_id: (truth, prediction)}})."""
    kind, n_classes = "", 0
    by_seed: dict[int, dict[str, tuple[float, float]]] = defaultdict(dict)
    for r in records:
        spec = r.get("task_specs", {}).get(task)
        if spec is None or task not in r.get("test_labels", {}):
            raise ValueError(f"model {r['model_name']}: no {task!r} test predictions with labels")
        kind, n_classes = spec["kind"], int(spec["n_outputs"]) if spec["kind"] == "categorical" else 2
        preds = r["test_predictions"]
        key = task if kind == "regression" else f"{task}_prob"
        out = np.asarray(preds[key], dtype=float)
        if kind == "categorical":
            out = out.argmax(axis=1)
        elif kind == "binary":
            out = (out >= 0.5).astype(float)
        truth = np.asarray(r["test_labels"][task], dtype=float)
        for u, t, p in zip(preds["utt_id"], truth, out):
            if np.isfinite(t) and t >= 0 or kind == "regression" and np.isfinite(t):
                by_seed[int(r["seed"])][u] = (t, p)
    return kind, n_classes, by_seed


def compare_models(by_model: Mapping[str, Sequence[Mapping[str, Any]]],
                   evaluation: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One record per configured comparison of two models trained here: the pair, task, metric
    and the bootstrap CI."""
    out = []
    resamples = int(evaluation.get("resamples", 1000))
    for item in evaluation.get("compare", []):
        challenger, baseline, task = item["challenger"], item["baseline"], item["task"]
        if challenger not in by_model or baseline not in by_model:
            continue  # a comparison of models this corpus does not train
        kind, n_classes, ch = _per_seed(by_model[challenger], task)
        _, _, ba = _per_seed(by_model[baseline], task)
        common = set.intersection(*(set(d) for d in (*ch.values(), *ba.values())))
        ids = sorted(common)
        if not ids:
            raise ValueError(f"{challenger} vs {baseline}: no test utterance in common")
        truth = np.array([next(iter(ch.values()))[u][0] for u in ids])
        metric = item.get("metric") or DEFAULT_METRIC[kind]
        ci = paired_bootstrap(truth, [np.array([d[u][1] for u in ids]) for d in ch.values()],
                              [np.array([d[u][1] for u in ids]) for d in ba.values()], metric,
                              n_classes, resamples)
        out.append({"challenger": challenger, "baseline": baseline, "task": task,
                    "metric": metric, **ci})
    return out
