"""MELD (Friends dialogues): the official `{train,dev,test}_sent_emo.csv` to a manifest.

`utt_id` is `<split>_dia<D>_utt<U>` (split as in the file name: train, dev, test), `dialogue_id`
`<split>_dia<D>` (dialogue numbers restart in every split), `turn` the Utterance_ID. The split
`dev` becomes `valid`. StartTime/EndTime ("00:16:16,059") locate the utterance in the *episode*,
not in the clip, so they are kept as `clip_start_s`/`clip_end_s` metadata and `start_s`/`end_s`
stay empty (the whole clip is the utterance). Text is decoded as UTF-8 (cp1252 fallback) and the
usual mojibake repaired (`fix_mojibake`). With `video_root`, `video_path` is
`<video_root>/<split dir>/dia<D>_utt<U>.mp4` when that file exists (the official folders by
default). `with_context` adds the preceding turns of each dialogue.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from affectflow.ingest.adapters._common import (
    CONTEXT_SEP, fix_mojibake, manifest_frame, read_csv_text, require_columns,
    with_dialogue_context,
)
from affectflow.ingest.manifest import ManifestError

DATASET = "meld"
EMOTIONS: tuple[str, ...] = ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear")
SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
LABELS: dict[str, dict[str, Any]] = {
    "emotion": {"type": "categorical", "classes": list(EMOTIONS)},
    "sentiment_class": {"type": "categorical", "classes": list(SENTIMENTS)},
}
SPLIT_FILES: dict[str, str] = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv",
                               "test": "test_sent_emo.csv"}
# Folders of the official MELD.Raw archive.
SPLIT_DIRS: dict[str, str] = {"train": "train_splits", "dev": "dev_splits_complete",
                              "test": "output_repeated_splits_test"}
REQUIRED = ("Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
            "StartTime", "EndTime")
EXTRA_COLUMNS: tuple[str, ...] = ("emotion", "sentiment_class", "season", "episode",
                                  "clip_start_s", "clip_end_s", "sr_no")
VIDEO_PATTERN = "dia{dialogue}_utt{turn}.mp4"
_TIME = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2})[,.](\d{1,3})$")


def parse_time(text: str) -> float:
    """ "00:16:16,059" (also "0:16:16,059") -> seconds; ValueError otherwise."""
    match = _TIME.match(text.strip())
    if not match:
        raise ValueError(f"not a time H:MM:SS,mmm: {text!r}")
    hours, minutes, seconds, fraction = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + float("0." + fraction)


def _int(text: str, where: str, field: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ManifestError(f"{where}: {field}: not an integer: {text!r}") from None


def read_split(path: Path, split: str, *, fix_text: bool = True, ascii_punct: bool = False,
               video_dir: Path | None = None,
               video_pattern: str = VIDEO_PATTERN) -> list[dict[str, Any]]:
    """Rows of one MELD CSV. Row numbers in errors count the header as line 1."""
    if not path.is_file():
        raise ManifestError(f"{path}: MELD CSV not found")
    table = read_csv_text(path)
    require_columns(table, path, REQUIRED)
    rows, seen = [], {}
    for index, record in enumerate(table.to_dict("records")):
        where = f"{path}, row {index + 2}"
        emotion = record["Emotion"].strip().lower()
        if emotion not in EMOTIONS:
            raise ManifestError(f"{where}: Emotion: unknown label {record['Emotion']!r}; "
                                f"expected one of {', '.join(EMOTIONS)}")
        sentiment = record["Sentiment"].strip().lower()
        if sentiment not in SENTIMENTS:
            raise ManifestError(f"{where}: Sentiment: unknown label {record['Sentiment']!r}; "
                                f"expected one of {', '.join(SENTIMENTS)}")
        dialogue = _int(record["Dialogue_ID"], where, "Dialogue_ID")
        turn = _int(record["Utterance_ID"], where, "Utterance_ID")
        if (dialogue, turn) in seen:
            raise ManifestError(f"{where}: Dialogue_ID/Utterance_ID {dialogue}/{turn} repeats "
                                f"row {seen[(dialogue, turn)]}")
        seen[(dialogue, turn)] = index + 2
        times = {}
        for field in ("StartTime", "EndTime"):
            try:
                times[field] = parse_time(record[field])
            except ValueError as error:
                raise ManifestError(f"{where}: {field}: {error}") from None
        text, speaker = record["Utterance"].strip(), record["Speaker"].strip()
        if fix_text:
            text, speaker = fix_mojibake(text, ascii_punct), fix_mojibake(speaker, ascii_punct)
        video = None
        if video_dir is not None:
            candidate = video_dir / video_pattern.format(dialogue=dialogue, turn=turn)
            video = str(candidate.resolve()) if candidate.is_file() else None
        rows.append({
            "utt_id": f"{split}_dia{dialogue}_utt{turn}", "dataset": DATASET, "speaker": speaker,
            "dialogue_id": f"{split}_dia{dialogue}", "turn": turn, "video_path": video,
            "transcript": text, "split": "valid" if split == "dev" else split,
            "emotion": emotion, "sentiment_class": sentiment,
            "season": record.get("Season", "").strip() or None,
            "episode": record.get("Episode", "").strip() or None,
            "clip_start_s": times["StartTime"], "clip_end_s": times["EndTime"],
            "sr_no": record.get("Sr No.", "").strip() or None,
        })
    return rows


def build_manifest(root: Path, video_root: Path | None = None,
                   split_dirs: Mapping[str, str] | None = None,
                   splits: tuple[str, ...] = ("train", "dev", "test"), fix_text: bool = True,
                   ascii_punct: bool = False, context_turns: int | None = None,
                   video_pattern: str = VIDEO_PATTERN) -> pd.DataFrame:
    """All rows of the chosen official splits (file order). `context_turns` = n adds `context`
    with n preceding turns (`with_context`; None: no context column). `split_dirs` overrides the
    video folder of a split; `video_pattern` is formatted with {dialogue} and {turn}."""
    root = Path(root)
    dirs = {**SPLIT_DIRS, **(split_dirs or {})}
    rows: list[dict[str, Any]] = []
    for split in splits:
        if split not in SPLIT_FILES:
            raise ManifestError(f"{root}: unknown MELD split {split!r}; expected train, dev, test")
        video_dir = Path(video_root) / dirs[split] if video_root is not None else None
        rows += read_split(root / SPLIT_FILES[split], split, fix_text=fix_text,
                           ascii_punct=ascii_punct, video_dir=video_dir,
                           video_pattern=video_pattern)
    manifest = manifest_frame(rows, EXTRA_COLUMNS)
    return with_context(manifest, context_turns) if context_turns is not None else manifest


def with_context(manifest: pd.DataFrame, n_turns: int | None,
                 sep: str = CONTEXT_SEP) -> pd.DataFrame:
    """Copy with `context`: the `n_turns` preceding turns of the dialogue (None: all), oldest first,
    each as "Speaker: text", joined by " [SEP] "; "" for a dialogue's first turn. Preceding means
    the previous rows by Utterance_ID (MELD numbering has gaps where utterances were removed)."""
    return with_dialogue_context(manifest, n_turns, sep)
