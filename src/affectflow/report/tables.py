"""The rejected table of a corpus, and the HTML tables the Snakemake report shows."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
from pathlib import Path
from typing import Sequence

import pandas as pd

from affectflow.atomic import atomic_path, write_text
from affectflow.features.base import is_not_applicable
from affectflow.features.reader import read_rejections
from affectflow.ingest.run import write_rejected

SPLIT_NAMES = ("train", "valid", "test")


def collect_rejected(ingest: str | os.PathLike[str], stores: Sequence[str | os.PathLike[str]],
                     output: str | os.PathLike[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """Ingest rejections plus every extractor's rejected rows (stage = the extractor's name);
    rows an extractor does not apply to (`NotApplicable`) are counted per extractor, not listed."""
    frames = [pd.read_parquet(ingest)]
    not_applicable: dict[str, int] = {}
    for partition in stores:
        rows = read_rejections(partition)
        stage = Path(partition).parent.name
        skipped = rows["reason"].map(is_not_applicable)
        if skipped.any():
            not_applicable[stage] = not_applicable.get(stage, 0) + int(skipped.sum())
        rows = rows[~skipped]
        if len(rows):
            rows = rows.assign(stage=stage, field=None, row=None)
            frames.append(rows)
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
        else frames[0]
    write_rejected(frame, output)
    return frame, not_applicable


def reason_kind(stage: str, field: str | None, reason: str) -> str:
    """A short, countable kind of a rejection: the reason's first clause without the file, row
    or value it names ('ingest audio_path: file not found', 'audio: no speech')."""
    text = re.sub(r"^.*?, row \d+: [^:]+: ", "", str(reason))
    text = re.split(r"[:;(]", text, maxsplit=1)[0]
    text = re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", text)
    text = re.sub(r"\S*[/\\]\S*|\S+\.[A-Za-z][A-Za-z0-9]{1,3}\b", "<file>", text)
    text = re.sub(r"(?<![\w.-])-?\d+(\.\d+)?(?![\w.])", "#", text)
    text = " ".join(text.split())[:70] or "other"
    return f"{stage} {field}: {text}" if field else f"{stage}: {text}"


def rejection_summary(corpus: str, manifest: str | os.PathLike[str], rejected: pd.DataFrame,
                      not_applicable: dict[str, int], table_path: str) -> dict:
    """Counts for the end-of-run line: utterances accepted, rejected by kind, not applicable."""
    accepted_ids = set(pd.read_parquet(manifest, columns=["utt_id"])["utt_id"])
    ingest = rejected[rejected["stage"] == "ingest"]
    later = rejected[rejected["stage"] != "ingest"]
    # An extractor reading media prep's audio repeats its rejection: count it once, at media prep.
    later = later[~later["reason"].astype(str).str.startswith("audio rejected at media prep")]
    kinds: dict[str, int] = {}
    for row in pd.concat([ingest.drop_duplicates("row"), later]).itertuples():
        kind = reason_kind(row.stage, row.field if isinstance(row.field, str) else None, row.reason)
        kinds[kind] = kinds.get(kind, 0) + 1
    dropped = set(rejected.loc[rejected["stage"] != "ingest", "utt_id"]) & accepted_ids
    return {"corpus": corpus, "source_rows": len(accepted_ids) + int(ingest["row"].nunique()),
            "accepted": len(accepted_ids - dropped), "rejected_at_ingest": int(ingest["row"].nunique()),
            "rejected_later": len(dropped), "by_kind": dict(sorted(kinds.items())),
            "not_applicable": dict(sorted(not_applicable.items())), "table": table_path}


def summary_line(summary: dict) -> str:
    """One line per corpus for the end of a run."""
    kinds = "; ".join(f"{k} {v}" for k, v in summary["by_kind"].items())
    line = (f"affectflow: corpus {summary['corpus']}: {summary['accepted']} of "
            f"{summary['source_rows']} utterances accepted, "
            f"{summary['rejected_at_ingest'] + summary['rejected_later']} rejected")
    if kinds:
        line += f" ({kinds})"
    if summary["not_applicable"]:
        line += "; not applicable (no such input): " + ", ".join(
            f"{k} {v}" for k, v in summary["not_applicable"].items())
    if summary["rejected_at_ingest"] + summary["rejected_later"]:
        line += f"; see {summary['table']}"
    return line


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


def split_counts(manifest: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """Utterances per train/valid/test in each split column (one row per fold)."""
    return pd.DataFrame({column: manifest[column].value_counts().reindex(list(SPLIT_NAMES), fill_value=0)
                         for column in columns}).T


def protocol_html(protocol: str, counts: pd.DataFrame) -> str:
    """What the numbers are: the protocol, its folds and their sizes, how they are averaged."""
    if protocol == "split":
        return ("<p>Protocol: the manifest's own train/valid/test split (test metrics of the model "
                "restored at the best validation epoch, or an SVM with the best validation C); "
                "utterances used per split: " +
                ", ".join(f"{k}: {v}" for k, v in counts.iloc[0].items()) + ".</p>")
    return (f"<p>Protocol: <b>{html.escape(protocol)}</b>, {len(counts)} folds (columns "
            f"{html.escape(counts.index[0])} … {html.escape(counts.index[-1])}); each fold trains on "
            "its train rows, selects on valid and is scored on test; the fold scores are averaged "
            "per seed, then shown as mean ± std over seeds. Utterances used per fold:</p>"
            + counts.to_html(escape=True))


def metrics_html(corpus: str, metrics: dict, protocol: str, counts: pd.DataFrame) -> str:
    """One table per task: models as rows, metrics as columns, mean ± std over seeds."""
    parts = [f"<html><head><meta charset='utf-8'>{_style()}</head><body>",
             f"<h2>{html.escape(corpus)}: test metrics, mean ± std over seeds</h2>",
             protocol_html(protocol, counts)]
    labels = metrics.get("@labels", {})
    comparisons = metrics.get("@comparisons", [])
    checks = metrics.get("@weak_checks", [])
    searches = metrics.get("@search", [])
    metrics = {m: v for m, v in metrics.items() if not m.startswith("@")}
    if labels:
        parts.append("<p>Tasks each model trained on: S strong (the corpus's own labels), "
                     "W weak (predicted by a model trained on another corpus).</p><ul>" + "".join(
                         f"<li>{html.escape(m)}: " + ", ".join(
                             f"{html.escape(t)} ({k})" for t, k in sorted(ts.items())) + "</li>"
                         for m, ts in sorted(labels.items())) + "</ul>")
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
    if comparisons:
        parts.append("<h3>Challenger − baseline, paired bootstrap 95 % CI</h3><table><tr>"
                     "<th>challenger</th><th>baseline</th><th>task</th><th>metric</th><th>diff</th>"
                     "<th>95 % CI</th><th>significant</th><th>n</th></tr>")
        for c in comparisons:
            parts.append(f"<tr><td>{html.escape(c['challenger'])}</td><td>{html.escape(c['baseline'])}"
                         f"</td><td>{html.escape(c['task'])}</td><td>{html.escape(c['metric'])}</td>"
                         f"<td>{c['diff']:+.4f}</td><td>[{c['low']:+.4f}, {c['high']:+.4f}]</td>"
                         f"<td>{'yes' if c['significant'] else 'no'}</td><td>{c['n']}</td></tr>")
        parts.append("</table>")
    if checks:
        parts.append(weak_checks_html(checks))
    if searches:
        parts.append(search_html(searches))
    parts.append("</body></html>")
    return "\n".join(parts)


def search_html(searches: list[dict]) -> str:
    """Each searched model's trials (first seed, validation split) per fold; the chosen one in bold."""
    parts = ["<h3>Hyper-parameter search (first seed, validation split; chosen in bold, then "
             "trained with every seed)</h3>"]
    for record in searches:
        table = record["table"]
        keys = [k for k in table[0] if k != record["metric"]]
        parts.append(f"<p>{html.escape(record['model'])}, {html.escape(record['fold'])}: "
                     f"{html.escape(record['metric'])}</p><table><tr>"
                     + "".join(f"<th>{html.escape(k)}</th>" for k in [*keys, record["metric"]]) + "</tr>")
        for i, row in enumerate(table):
            cells = "".join(f"<td>{html.escape(str(row[k]))}</td>" for k in keys)
            value = row[record["metric"]]
            cell = f"<td>{value:.4f}</td>" if isinstance(value, (int, float)) else "<td>n/a</td>"
            line = f"<tr>{cells}{cell}</tr>"
            parts.append(line.replace("<td>", "<td><b>").replace("</td>", "</b></td>")
                         if i == record.get("best") else line)
        parts.append("</table>")
    return "".join(parts)


def weak_checks_html(checks: list[dict]) -> str:
    """The weak labels this corpus received, scored against its own labels of the same task."""
    rows = ["<h3>Weak labels against this corpus's own labels (controlled check)</h3><p>Made "
            "without reading these labels; scored here only. Majority: the accuracy of always "
            "answering the most frequent true class on the same rows.</p><table><tr><th>weak task"
            "</th><th>labeler</th><th>confidence</th><th>rows</th><th>n</th><th>acc</th><th>UAR</th>"
            "<th>weighted F1</th><th>majority</th></tr>"]
    for c in checks:
        for split, s in c["splits"].items():
            rows.append(f"<tr><td>{html.escape(c['name'])}</td><td>{html.escape(c['from_corpus'])}/"
                        f"{html.escape(c['model'])}</td><td>{c['confidence']:.3f}</td>"
                        f"<td>{html.escape(split)}</td><td>{s['n']}</td><td>{100 * s['acc']:.1f}</td>"
                        f"<td>{100 * s['uar']:.1f}</td><td>{100 * s['f1_weighted']:.1f}</td>"
                        f"<td>{100 * s['majority']:.1f}</td></tr>")
    return "".join(rows) + "</table>"


def rejected_html(corpus: str, rejected: pd.DataFrame) -> str:
    """The rejected utterances with stage and reason (or a line saying there were none)."""
    body = (rejected[["utt_id", "stage", "field", "reason"]].to_html(index=False, na_rep="", escape=True)
            if len(rejected) else "<p>No utterance was rejected.</p>")
    return (f"<html><head><meta charset='utf-8'>{_style()}</head><body>"
            f"<h2>{html.escape(corpus)}: rejected utterances ({rejected['utt_id'].nunique()})</h2>"
            f"{body}</body></html>")


def write_report_tables(corpus: str, metrics_path: str, rejected_path: str, manifest_path: str,
                        figures_in: str, metrics_out: str, rejected_out: str, figures_out: str,
                        protocol: str = "split") -> None:
    """Render the report's HTML tables and copy the figures into the report folder. `protocol`
    is `split` or the name of the cross-validation scheme whose folds are split_<protocol>_<k>."""
    with open(metrics_path) as handle:
        metrics = json.load(handle)
    manifest = pd.read_parquet(manifest_path)
    rejected = pd.read_parquet(rejected_path)
    used = manifest[~manifest["utt_id"].isin(set(rejected["utt_id"]))]
    columns = (["split"] if protocol == "split" else
               sorted(c for c in manifest.columns if c.startswith(f"split_{protocol}_")))
    if not columns:
        raise ValueError(f"{manifest_path}: protocol {protocol!r} has no split_{protocol}_* columns")
    write_text(metrics_out, metrics_html(corpus, metrics, protocol, split_counts(used, columns)))
    write_text(rejected_out, rejected_html(corpus, rejected))
    with atomic_path(figures_out) as tmp:
        shutil.copytree(figures_in, tmp)
