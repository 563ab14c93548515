"""Hyper-parameter search (Dai et al. 2021, §6.1): pick the best trial on the validation split.

Each trial is one training (the first seed) with one grid point; the workflow fans them out as
jobs and `select_best` reads their results. The watched quantity is ``valid_loss`` (at the
restored epoch; lower is better) or ``<task>/<metric>`` of the validation split (higher is
better, ``mae`` lower). A grid key ``weight.<task>`` searches that task's loss weight λ (the
paper's Table 9: the weak tasks' λ were searched), applied by `split_task_weights`.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any, Mapping, Sequence

from affectflow.atomic import write_text
from affectflow.jsonsafe import json_safe
from affectflow.train.trainer import LOWER_IS_BETTER


TASK_WEIGHT = "weight."


def split_task_weights(tasks: Mapping[str, Any], hparams: Mapping[str, Any]
                       ) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tasks, hparams) with every ``weight.<task>`` entry of `hparams` moved into that task's
    `weight`; a task the model does not train is an error naming it."""
    tasks = {t: dict(spec or {}) for t, spec in tasks.items()}
    rest = {}
    for key, value in hparams.items():
        if not key.startswith(TASK_WEIGHT):
            rest[key] = value
            continue
        task = key[len(TASK_WEIGHT):]
        if task not in tasks:
            raise ValueError(f"search key {key!r}: the model trains no task {task!r} "
                             f"(its tasks: {sorted(tasks)})")
        tasks[task]["weight"] = float(value)
    return tasks, rest


def trial_value(record: dict[str, Any], metric: str) -> float:
    """The watched validation value of one trial's result record."""
    if metric == "valid_loss":
        curve = record["curves"].get("valid_loss") or []
        return float(curve[record["best_epoch"] - 1]) if curve and record["best_epoch"] else math.nan
    task, name = metric.split("/", 1)
    value = record.get("valid_metrics", {}).get(task, {}).get(name)
    return math.nan if value is None else float(value)


def select_best(trials: Sequence[str | os.PathLike[str]], grid: Sequence[dict[str, Any]],
                metric: str, output: str | os.PathLike[str], model: str = "",
                fold: str = "") -> dict[str, Any]:
    """Write {"model", "fold", "hparams": best grid point, "metric", "value", "best": its row,
    "table": every trial} (the report shows the table)."""
    if len(trials) != len(grid):
        raise ValueError(f"{len(trials)} trial results for {len(grid)} grid points")
    lower = metric == "valid_loss" or metric.split("/")[-1] in LOWER_IS_BETTER
    table = []
    for path, point in zip(trials, grid):
        with open(path) as handle:
            value = trial_value(json.load(handle), metric)
        table.append({**point, metric: value})
    finite = [i for i, row in enumerate(table) if math.isfinite(row[metric])]
    if not finite:
        raise ValueError(f"no trial has a finite {metric}: {table}")
    best = (min if lower else max)(finite, key=lambda i: table[i][metric])
    record = {"model": model, "fold": fold, "hparams": dict(grid[best]), "metric": metric,
              "value": table[best][metric], "best": best, "table": table}
    write_text(output, json.dumps(json_safe(record), indent=2))
    return record
