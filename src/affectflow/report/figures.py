"""Aggregate per-seed results into metrics.json and draw training curves and confusion matrices."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from affectflow.atomic import atomic_path, write_text  # noqa: E402
from affectflow.evaluate.metrics import aggregate_over_folds, aggregate_over_seeds  # noqa: E402
from affectflow.evaluate.compare import compare_models  # noqa: E402
from affectflow.jsonsafe import json_safe  # noqa: E402


def load_results(paths: Sequence[str | os.PathLike[str]]) -> dict[str, list[dict[str, Any]]]:
    """model name → its result records (one per seed, or per fold × seed), in seed order."""
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in paths:
        with open(path) as handle:
            record = json.load(handle)
        by_model[record["model_name"]].append(record)
    return {m: sorted(rs, key=lambda r: r["seed"]) for m, rs in sorted(by_model.items())}


def plot_curves(model: str, records: list[dict[str, Any]], path: Path) -> None:
    """Training and validation loss per epoch for every seed, best epoch marked; for an svm
    (no epochs) the validation metric of each task against the C values tried."""
    if records and "svm_c" in records[0]["curves"]:
        plot_svm_selection(model, records, path)
        return
    fig, ax = plt.subplots(figsize=(6, 3.5))
    seeds = sorted({r["seed"] for r in records})
    labelled: set[int] = set()
    for record in records:  # several records per seed (folds) share the seed's colour
        colour = f"C{seeds.index(record['seed']) % 10}"
        label = None if record["seed"] in labelled else f"seed {record['seed']}"
        labelled.add(record["seed"])
        epochs = np.arange(1, len(record["curves"]["train_loss"]) + 1)
        ax.plot(epochs, record["curves"]["train_loss"], color=colour, alpha=0.5, linestyle="--")
        ax.plot(epochs, record["curves"]["valid_loss"], color=colour, label=label)
        best = record["best_epoch"]
        ax.plot([best], [record["curves"]["valid_loss"][best - 1]], "o", color=colour)
    ax.set(title=f"{model}: loss (dashed train, solid valid; dot = restored epoch)",
           xlabel="epoch", ylabel="λ-weighted loss")
    _finish(fig, ax, path)


def plot_svm_selection(model: str, records: list[dict[str, Any]], path: Path) -> None:
    """Validation metric per C value of an svm, one line per task and fold (seeds coincide)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    names = sorted(k for k in records[0]["curves"] if k.startswith("valid_") and k != "valid_loss")
    for i, name in enumerate(names):
        for j, record in enumerate(r for r in records if r["seed"] == records[0]["seed"]):
            values = np.asarray(record["curves"][name], dtype=float)
            ax.plot(record["curves"]["svm_c"], values, "o-", color=f"C{i % 10}", alpha=0.6,
                    label=name.removeprefix("valid_") if j == 0 else None)
    ax.set_xscale("log")
    ax.set(title=f"{model}: validation metric per C (one line per fold; the best C is used)",
           xlabel="C", ylabel="validation metric")
    _finish(fig, ax, path)


def _finish(fig: Any, ax: Any, path: Path) -> None:
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(model: str, task: str, matrix: np.ndarray, labels: list[str], path: Path) -> None:
    """Test confusion matrix summed over seeds (and folds) (rows true, columns predicted)."""
    n = len(labels)
    fig, ax = plt.subplots(figsize=(max(3.6, 1.6 + 0.45 * n), max(3.2, 1.4 + 0.4 * n)))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, str(int(value)), ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, fontsize=7)
    ax.set_yticks(range(len(labels)), labels, fontsize=7)
    ax.set(xlabel="predicted", ylabel="true", title=f"{model}: {task} (all seeds)")
    ax.title.set_fontsize(8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def class_labels(record: dict[str, Any], task: str, n: int) -> list[str]:
    """A task's class names from a result record (``classes``; records written before it:
    ``emotion_classes`` for emotion, 0/1 for a 2×2 matrix), else the class indices."""
    labels = record.get("classes", {}).get(task) or []
    if not labels and task == "emotion":
        labels = record.get("emotion_classes") or []
    if not labels and n == 2:
        labels = ["0", "1"]
    return [str(c) for c in labels] if len(labels) == n else [str(i) for i in range(n)]


def evaluate_runs(result_paths: Sequence[str | os.PathLike[str]], metrics_path: str | os.PathLike[str],
                  figures_dir: str | os.PathLike[str],
                  evaluation: Mapping[str, Any] | None = None,
                  weak_checks: Sequence[str | os.PathLike[str]] = (),
                  searches: Sequence[str | os.PathLike[str]] = ()) -> dict[str, Any]:
    """Write {model: {task: {metric: {"mean", "std"}}}} (over seeds, of each seed's fold average
    when a seed has several fold records) and the figures (loss curves per model,
    one confusion matrix per model and categorical/binary task, class-labelled); return the
    metrics. Two keys beside the models (model ids cannot start with @): ``@labels`` {model:
    {task: "S" | "W"}} (strong or weak labels), ``@comparisons`` (the bootstrap CIs of
    `evaluation.compare`, see `affectflow.evaluate.compare`) and ``@weak_checks`` (the weak
    labels scored against the corpus's own labels, `affectflow.evaluate.weak_check`) and
    ``@search`` (each searched model's trials and choice per fold, `affectflow.train.search`)."""
    by_model = load_results(result_paths)
    with atomic_path(figures_dir) as figures:
        figures.mkdir()
        metrics = _plot_and_aggregate(by_model, figures)
    metrics["@labels"] = {model: {t: ("W" if t in records[0].get("weak_tasks", []) else "S")
                                  for t in records[0].get("task_specs", {})}
                          for model, records in by_model.items()}
    metrics["@comparisons"] = compare_models(by_model, evaluation or {})
    metrics["@weak_checks"] = [json.loads(Path(p).read_text()) for p in weak_checks]
    metrics["@search"] = [json.loads(Path(p).read_text()) for p in searches]
    write_text(metrics_path, json.dumps(json_safe(metrics), indent=2, sort_keys=True))
    return metrics


def _plot_and_aggregate(by_model: dict[str, list[dict[str, Any]]], figures: Path) -> dict[str, Any]:
    """Metrics over folds and seeds per model, and its figures written into `figures`."""
    metrics: dict[str, Any] = {}
    for model, records in by_model.items():
        # Cross-validated protocols give several records (folds) per seed: average the folds of
        # each seed first (NaN-aware), then mean ± std over seeds. One record per seed: unchanged.
        folds_by_seed: dict[int, list[dict[str, Any]]] = defaultdict(list)
        for r in records:
            folds_by_seed[r["seed"]].append(r["test_metrics"])
        metrics[model] = aggregate_over_seeds(
            [aggregate_over_folds(folds) for _, folds in sorted(folds_by_seed.items())])
        plot_curves(model, records, figures / f"{model}_curves.png")
        tasks = sorted({t for r in records for t in r.get("confusion", {})})
        for task in tasks:
            matrices = [np.asarray(r["confusion"][task]) for r in records if task in r["confusion"]]
            if {m.shape for m in matrices} != {matrices[0].shape}:
                raise ValueError(f"{model}: {task} confusion matrices differ in shape across seeds")
            plot_confusion(model, task, np.sum(matrices, axis=0),
                           class_labels(records[0], task, len(matrices[0])),
                           figures / f"{model}_{task}_confusion.png")
    return metrics
