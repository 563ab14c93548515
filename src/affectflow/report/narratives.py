"""The report's narrative page: a handful of utterances with their labels, the prosody and
action evidence behind them, and their narratives in the four families (paper 003)."""

from __future__ import annotations

import html
import json
import os

import pandas as pd

from affectflow.atomic import write_text

PROSODY_SHOWN = ("rate_wpm", "rate_z", "pause_ms", "pitch_z", "loudness_z")


def narratives_html(corpus: str, narratives: str | os.PathLike[str], manifest: str | os.PathLike[str],
                    prosody: str | os.PathLike[str], labels: list[str], n: int = 12) -> str:
    """The first `n` utterances (by utt_id) with at least one nonverbal phrase, else the first `n`."""
    table = pd.read_parquet(narratives)
    vpa = table[table["family"] == "vpa"].set_index("utt_id")
    said = vpa[vpa["phrases"] != "[]"].index.tolist()
    ids = sorted(said)[:n] or sorted(vpa.index)[:n]
    rows = pd.read_parquet(manifest).set_index("utt_id")
    pros = pd.read_parquet(prosody).set_index("utt_id")
    by_family = table.set_index(["utt_id", "family"])["text"]
    parts = ["<html><head><meta charset='utf-8'><style>td,th{border:1px solid #ccc;padding:4px;"
             "vertical-align:top;font:13px sans-serif}table{border-collapse:collapse}</style></head><body>",
             f"<h2>{html.escape(corpus)}: narratives of {len(ids)} utterances</h2>",
             "<table><tr><th>utterance</th><th>labels</th><th>prosody</th><th>narratives</th><th>evidence (vpa)</th></tr>"]
    for utt_id in ids:
        label_text = ", ".join(f"{k}={rows.at[utt_id, k]}" for k in labels if k in rows.columns)
        prosody_text = ", ".join(f"{k} {pros.at[utt_id, k]:.2f}" for k in PROSODY_SHOWN
                                 if k in pros.columns and utt_id in pros.index and pd.notna(pros.at[utt_id, k]))
        families = "<br>".join(f"<b>{f}</b>: {html.escape(by_family[utt_id, f])}" for f in ("v", "vp", "va", "vpa"))
        evidence = "<br>".join(f"{html.escape(p['text'])}: {html.escape(p['evidence'])}"
                               for p in json.loads(vpa.at[utt_id, "phrases"]))
        parts.append(f"<tr><td>{html.escape(utt_id)}</td><td>{html.escape(label_text)}</td>"
                     f"<td>{html.escape(prosody_text)}</td><td>{families}</td><td>{evidence}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def write_narratives_html(corpus: str, narratives: str, manifest: str, prosody: str, labels: list[str],
                          output: str) -> None:
    write_text(output, narratives_html(corpus, narratives, manifest, prosody, labels))
