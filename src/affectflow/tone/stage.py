"""Tone of voice: four scores (happiness, sadness, anger, fear) per utterance, with per-speaker z.

MONAH read these from Vokaturi, a closed library. Here they are a model trained in the pipeline
(configs/tone.yaml: a union corpus of EmoDB and RAVDESS, its classes mapped onto neutral and the
four tones, speaker-independent) and applied to any corpus with `predict`; this stage turns the
prediction table (the mean over the model's seeds) into the tone table the narratives read:

    utt_id, speaker, happiness, sadness, anger, fear        (class probabilities)
    happiness_z, sadness_z, anger_z, fear_z                 (z within the speaker)

A tone is "said" in a narrative when its z is above 2 (`narrative.tone_z`): the voice is
unusually happy (sad, ...) for that speaker, as MONAH did.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import pandas as pd

from affectflow.atomic import atomic_path
from affectflow.prosody.stage import speaker_z

log = logging.getLogger(__name__)
TONES = ("happiness", "sadness", "anger", "fear")


def tone_table(predictions: str | os.PathLike[str], manifest: str | os.PathLike[str], task: str,
               output: str | os.PathLike[str], min_rows: int = 3) -> dict[str, Any]:
    """Write the tone table from a prediction table of `task`; returns a summary."""
    table = pd.read_parquet(predictions)
    rows = table[(table["task"] == task) & (table["seed"] == "mean")]
    if rows.empty:  # a single-seed model has no mean row
        rows = table[table["task"] == task]
        rows = rows[rows["seed"] == rows["seed"].iloc[0]] if len(rows) else rows
    missing = [t for t in TONES if f"prob_{t}" not in rows.columns]
    if rows.empty or missing:
        raise ValueError(f"{predictions}: no {task!r} predictions with the classes {list(TONES)} "
                         f"(missing: {missing or 'every row'})")
    speakers = pd.read_parquet(manifest, columns=["utt_id", "speaker"]).set_index("utt_id")["speaker"]
    out = pd.DataFrame({"utt_id": rows["utt_id"].astype(str).to_numpy()})
    out["speaker"] = speakers.reindex(out["utt_id"]).fillna("").astype(str).to_numpy()
    group = out["speaker"].where(out["speaker"] != "", "(no speaker)")
    for tone in TONES:
        out[tone] = rows[f"prob_{tone}"].to_numpy()
        out[f"{tone}_z"] = speaker_z(out[tone], group, min_rows)
    with atomic_path(output) as tmp:
        out.to_parquet(tmp, index=False)
    summary = {"rows": len(out), "mean": {t: float(out[t].mean()) for t in TONES},
               "z_above_2": {t: int((out[f"{t}_z"] > 2).sum()) for t in TONES}}
    log.info("tone: %s", summary)
    return summary
