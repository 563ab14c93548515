"""The prosody stage: per utterance speech rate, pause before the turn, mean pitch and loudness,
each also as a z-score within its speaker (what MONAH's narratives and paper 003's auxiliary
targets read).

- ``rate_wpm``: words per minute. From the word times when the row has them (words over the
  span from the first word's start to the last word's end, ``rate_from = "words"``); otherwise
  the transcript's words over the segment's duration (``"duration"``, which counts leading and
  trailing silence, so it reads slower); null without either.
- ``pause_ms``: the gap between the end of the previous turn of the same dialogue (by ``turn``)
  and the start of this one, when both are segments of one media file with times (their word
  times when they have them, else their segment bounds). Separate clips per turn (MELD, the demo)
  carry no such timing, so their pause is null: the gap between two clips is unknown. Negative
  gaps (overlapping speech) are kept.
- ``pitch_st`` and ``loudness``: eGeMAPS's mean F0 in semitones from 27.5 Hz over voiced frames
  (``F0semitoneFrom27.5Hz_sma3nz_amean``) and mean loudness (``loudness_sma3_amean``), read from
  the corpus's egemaps store; null for rows that store rejected.
- ``<x>_z``: (x − the speaker's mean) / the speaker's standard deviation over the speaker's rows
  that have x; null when the speaker has fewer than `min_rows` such rows or no spread. A row
  without a speaker is compared with the whole corpus.

One plain Parquet table (one row per manifest row), not a feature store: these are a handful of
scalars per utterance, read by the narrative stage and usable as auxiliary targets.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from affectflow.atomic import atomic_path
from affectflow.features.params import param, parse_config
from affectflow.features.store import read_provenance

log = logging.getLogger(__name__)
PITCH, LOUDNESS = "F0semitoneFrom27.5Hz_sma3nz_amean", "loudness_sma3_amean"
MEASURES = ("rate_wpm", "pause_ms", "pitch_st", "loudness")


@dataclass(frozen=True)
class ProsodyConfig:
    min_rows: int = param(3, "Fewest rows of a speaker with a value for its z-score.", minimum=2)


def _words(value: Any) -> list[Mapping[str, Any]]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return []
    return list(value)


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if np.isnan(number) else number


def speech_rate(row: Mapping[str, Any]) -> tuple[float | None, str | None]:
    """(words per minute, where it came from) for one manifest row."""
    words = _words(row.get("words"))
    if len(words) >= 2:
        span = float(words[-1]["end_s"]) - float(words[0]["start_s"])
        if span > 0:
            return 60.0 * len(words) / span, "words"
    text = row.get("transcript")
    n = len(str(text).split()) if isinstance(text, str) else 0
    start, end = _num(row.get("start_s")), _num(row.get("end_s"))
    if n and start is not None and end is not None and end > start:
        return 60.0 * n / (end - start), "duration"
    return None, None


def _bounds(row: Mapping[str, Any]) -> tuple[float, float] | None:
    """Absolute (speech start, speech end) of a row in its media file, when it has times."""
    start, end = _num(row.get("start_s")), _num(row.get("end_s"))
    if start is None or end is None:
        return None
    words = _words(row.get("words"))
    if words:
        return start + float(words[0]["start_s"]), start + float(words[-1]["end_s"])
    return start, end


def pauses(manifest: pd.DataFrame) -> pd.Series:
    """pause_ms per utt_id (NaN where unknown): gap to the previous turn of the same dialogue in
    the same media file."""
    out = pd.Series(np.nan, index=manifest["utt_id"].astype(str).to_numpy())
    if "dialogue_id" not in manifest:
        return out
    media = manifest.get("audio_path", pd.Series(None, index=manifest.index)).fillna(
        manifest.get("video_path", pd.Series(None, index=manifest.index)))
    frame = manifest.assign(_media=media, _turn=pd.to_numeric(manifest.get("turn"), errors="coerce"))
    for _, dialogue in frame.sort_values(["dialogue_id", "_turn"]).groupby("dialogue_id", sort=False):
        rows = dialogue.to_dict("records")
        for before, row in zip(rows, rows[1:]):
            if not isinstance(row["_media"], str) or row["_media"] != before["_media"]:
                continue
            a, b = _bounds(before), _bounds(row)
            if a is not None and b is not None:
                out[str(row["utt_id"])] = 1000.0 * (b[0] - a[1])
    return out


def egemaps_means(files: Sequence[str | os.PathLike[str]]) -> pd.DataFrame:
    """utt_id → pitch_st, loudness from the egemaps store's pooled functionals (accepted rows)."""
    frames = []
    for path in files:
        names = list(read_provenance(path)["pooled_names"])
        table = pq.read_table(path, columns=["utt_id", "ok", "pooled"]).to_pydict()
        keep = [i for i, ok in enumerate(table["ok"]) if ok]
        pooled = np.array([table["pooled"][i] for i in keep], np.float64).reshape(len(keep), -1)
        frames.append(pd.DataFrame({"pitch_st": pooled[:, names.index(PITCH)] if keep else [],
                                    "loudness": pooled[:, names.index(LOUDNESS)] if keep else []},
                                   index=[table["utt_id"][i] for i in keep]))
    return pd.concat(frames) if frames else pd.DataFrame(columns=["pitch_st", "loudness"])


def speaker_z(values: pd.Series, speakers: pd.Series, min_rows: int) -> pd.Series:
    """z-score of `values` within each speaker (NaN where undefined)."""
    groups = values.groupby(speakers)
    mean, std, count = groups.transform("mean"), groups.transform("std", ddof=0), groups.transform("count")
    z = (values - mean) / std
    return z.where((count >= min_rows) & (std > 0))


def compute_prosody(manifest_path: str | os.PathLike[str], egemaps: Sequence[str | os.PathLike[str]],
                    output: str | os.PathLike[str], config: ProsodyConfig) -> dict[str, Any]:
    """Write the prosody table for every manifest row; returns counts of what could be measured."""
    manifest = pd.read_parquet(manifest_path)
    ids = manifest["utt_id"].astype(str)
    speakers = manifest.get("speaker", pd.Series("", index=manifest.index)).fillna("").astype(str)
    rates = [speech_rate(row) for row in manifest.to_dict("records")]
    table = pd.DataFrame({"utt_id": ids.to_numpy(), "speaker": speakers.to_numpy(),
                          "rate_wpm": [r for r, _ in rates], "rate_from": [s for _, s in rates]})
    table["pause_ms"] = pauses(manifest).reindex(table["utt_id"]).to_numpy()
    means = egemaps_means(egemaps)
    for column in ("pitch_st", "loudness"):
        table[column] = means[column].reindex(table["utt_id"]).to_numpy() if len(means) else np.nan
    group = table["speaker"].where(table["speaker"] != "", "(no speaker)")
    for column in MEASURES:
        table[column] = pd.to_numeric(table[column], errors="coerce")
        table[f"{column.split('_')[0]}_z"] = speaker_z(table[column], group, config.min_rows)
    with atomic_path(output) as tmp:
        table.to_parquet(tmp, index=False)
    counts = {column: int(table[column].notna().sum()) for column in table.columns if column not in ("utt_id", "speaker", "rate_from")}
    summary = {"rows": len(table), "measured": counts}
    log.info("prosody: %s", summary)
    return summary


def config_from(params: Mapping[str, Any]) -> ProsodyConfig:
    return parse_config(ProsodyConfig, params, "prosody")
