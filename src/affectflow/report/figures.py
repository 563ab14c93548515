"""Aggregate per-seed results into metrics.json and draw training curves and confusion matrices."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from affectflow.evaluate.metrics import aggregate_over_seeds  # noqa: E402
from affectflow.train.run import json_safe  # noqa: E402


def load_results(paths: Sequence[str | os.PathLike[str]]) -> dict[str, list[dict[str, Any]]]:
    """model name → its per-seed result records, in seed order."""
    by_model: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in paths:
        with open(path) as handle:
            record = json.load(handle)
        by_model[record["model_name"]].append(record)
    return {m: sorted(rs, key=lambda r: r["seed"]) for m, rs in sorted(by_model.items())}


def plot_curves(model: str, records: list[dict[str, Any]], path: Path) -> None:
    """Training and validation loss per epoch for every seed, best epoch marked."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, record in enumerate(records):
        colour = f"C{i % 10}"
        epochs = np.arange(1, len(record["curves"]["train_loss"]) + 1)
        ax.plot(epochs, record["curves"]["train_loss"], color=colour, alpha=0.5, linestyle="--")
        ax.plot(epochs, record["curves"]["valid_loss"], color=colour, label=f"seed {record['seed']}")
        best = record["best_epoch"]
        ax.plot([best], [record["curves"]["valid_loss"][best - 1]], "o", color=colour)
    ax.set(title=f"{model}: loss (dashed train, solid valid; dot = restored epoch)",
           xlabel="epoch", ylabel="λ-weighted loss")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_confusion(model: str, task: str, matrix: np.ndarray, labels: list[str], path: Path) -> None:
    """Test confusion matrix summed over seeds (rows true, columns predicted)."""
    fig, ax = plt.subplots(figsize=(3.6, 3.2))
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


def evaluate_runs(result_paths: Sequence[str | os.PathLike[str]], metrics_path: str | os.PathLike[str],
                  figures_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Write {model: {task: {metric: {"mean", "std"}}}} and the figures; return the metrics."""
    by_model = load_results(result_paths)
    figures = Path(figures_dir)
    figures.mkdir(parents=True, exist_ok=True)
    metrics: dict[str, Any] = {}
    for model, records in by_model.items():
        per_seed = [{t: {k: (float("nan") if v is None else v) for k, v in m.items()}
                     for t, m in r["test_metrics"].items()} for r in records]
        metrics[model] = aggregate_over_seeds(per_seed)
        plot_curves(model, records, figures / f"{model}_curves.png")
        for task, labels in (("emotion", records[0].get("emotion_classes", [])), ("sarcasm", ["0", "1"])):
            matrices = [np.asarray(r["confusion"][task]) for r in records if task in r.get("confusion", {})]
            if matrices:
                plot_confusion(model, task, np.sum(matrices, axis=0), labels or
                               [str(i) for i in range(len(matrices[0]))],
                               figures / f"{model}_{task}_confusion.png")
    with open(metrics_path, "w") as handle:
        json.dump(json_safe(metrics), handle, indent=2, sort_keys=True)
    return metrics
