"""The rejected table of a corpus, and the HTML tables the Snakemake report shows."""

from __future__ import annotations

import html
import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import pandas as pd

from affectflow.features.reader import read_rejections
from affectflow.ingest.run import write_rejected


def collect_rejected(ingest: str | os.PathLike[str], stores: Sequence[str | os.PathLike[str]],
                     output: str | os.PathLike[str]) -> pd.DataFrame:
    """Ingest rejections plus every extractor's rejected rows (stage = the extractor's name)."""
    frames = [pd.read_parquet(ingest)]
    for partition in stores:
        rows = read_rejections(partition)
        if len(rows):
            rows["stage"] = Path(partition).parent.name
            rows["field"] = None
            rows["row"] = None
            frames.append(rows)
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
        else frames[0]
    write_rejected(frame, output)
    return frame


def _style() -> str:
    return ("<style>table{border-collapse:collapse;font-family:sans-serif;font-size:13px}"
            "td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
            "th{background:#eee}td:first-child{text-align:left}</style>")


def _mean_std(value: dict | None) -> str:
    """'m ± s', or 'n/a' where the metric is undefined (e.g. a class absent from the test split)."""
    if value is None or value.get("mean") is None:
        return "n/a"
    std = value.get("std")
    return f"{value['mean']:.3f} ± {'n/a' if std is None else f'{std:.3f}'}"


def metrics_html(corpus: str, metrics: dict, n_utterances: dict[str, int]) -> str:
    """One table per task: models as rows, metrics as columns, mean ± std over seeds."""
    parts = [f"<html><head><meta charset='utf-8'>{_style()}</head><body>",
             f"<h2>{html.escape(corpus)}: test metrics, mean ± std over seeds</h2>",
             "<p>Utterances used per split: " +
             ", ".join(f"{k}: {v}" for k, v in n_utterances.items()) + "</p>"]
    tasks = sorted({t for model in metrics.values() for t in model})
    for task in tasks:
        names = sorted({m for model in metrics.values() for m in model.get(task, {})})
        parts.append(f"<h3>{html.escape(task)}</h3><table><tr><th>model</th>" +
                     "".join(f"<th>{html.escape(n)}</th>" for n in names) + "</tr>")
        for model, by_task in sorted(metrics.items()):
            cells = []
            for name in names:
                value = by_task.get(task, {}).get(name)
                cells.append(f"<td>{_mean_std(value)}</td>")
            parts.append(f"<tr><td>{html.escape(model)}</td>{''.join(cells)}</tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    return "\n".join(parts)


def rejected_html(corpus: str, rejected: pd.DataFrame) -> str:
    """The rejected utterances with stage and reason (or a line saying there were none)."""
    body = (rejected[["utt_id", "stage", "field", "reason"]].to_html(index=False, na_rep="", escape=True)
            if len(rejected) else "<p>No utterance was rejected.</p>")
    return (f"<html><head><meta charset='utf-8'>{_style()}</head><body>"
            f"<h2>{html.escape(corpus)}: rejected utterances ({rejected['utt_id'].nunique()})</h2>"
            f"{body}</body></html>")


def write_report_tables(corpus: str, metrics_path: str, rejected_path: str, manifest_path: str,
                        figures_in: str, metrics_out: str, rejected_out: str, figures_out: str) -> None:
    """Render the report's HTML tables and copy the figures into the report folder."""
    with open(metrics_path) as handle:
        metrics = json.load(handle)
    manifest = pd.read_parquet(manifest_path, columns=["utt_id", "split"])
    rejected = pd.read_parquet(rejected_path)
    used = manifest[~manifest["utt_id"].isin(set(rejected["utt_id"]))]
    counts = used["split"].value_counts().reindex(["train", "valid", "test"], fill_value=0).to_dict()
    Path(metrics_out).parent.mkdir(parents=True, exist_ok=True)
    Path(metrics_out).write_text(metrics_html(corpus, metrics, counts))
    Path(rejected_out).write_text(rejected_html(corpus, rejected))
    shutil.copytree(figures_in, figures_out, dirs_exist_ok=True)
