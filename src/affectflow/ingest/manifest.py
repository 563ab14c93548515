"""The manifest: one row per utterance, the table every later stage starts from.

Any CSV, TSV, JSON-lines or Parquet table with the columns below is a corpus. Only `utt_id` is
required, plus at least one of `audio_path`, `video_path`, `transcript`:

    utt_id, dataset, speaker, dialogue_id, turn, audio_path, video_path, words_path,
    start_s, end_s, transcript, context, split, [split_<protocol>_<k> ...], <one column per label>

Relative media paths are taken from the manifest's folder (or `media_root`). The validator never
stops at the first problem: each bad row is rejected with the row number, the field and the
reason, and every good row goes on. `context` is optional text that came before the utterance
(preceding dialogue turns), which text extractors can encode with it. `words_path` points to a JSON list of
{"word", "start_s", "end_s"} (seconds from the utterance start).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

MEDIA_COLUMNS = ("audio_path", "video_path")
SPLITS = {"train": "train", "valid": "valid", "dev": "valid", "val": "valid", "test": "test"}
REJECTED_COLUMNS = ["utt_id", "stage", "row", "field", "reason"]
# Further split schemes travel as columns `split_<protocol>_<k>` (e.g. split_loso_03): fold k of a
# cross-validation protocol, with train/valid/test per row, empty for rows the fold leaves out.
FOLD_PREFIX = "split_"


class ManifestError(ValueError):
    """The manifest as a whole cannot be read (wrong format, missing required columns)."""


@dataclass(frozen=True)
class LabelSpec:
    """One label column: `categorical` (classes), `binary` (0/1) or `regression` (range)."""

    name: str
    kind: str
    classes: tuple[str, ...] = ()
    low: float = -math.inf
    high: float = math.inf

    @classmethod
    def from_config(cls, name: str, spec: Mapping[str, Any]) -> "LabelSpec":
        return cls(name, str(spec["type"]), tuple(str(c) for c in spec.get("classes", ())),
                   float(spec.get("min", -math.inf)), float(spec.get("max", math.inf)))

    def parse(self, raw: Any) -> tuple[Any, str | None]:
        """(value, None) or (None, reason). Empty cells are missing labels (NaN), not errors."""
        if raw is None or (isinstance(raw, float) and math.isnan(raw)) or str(raw).strip() == "":
            return (None if self.kind == "categorical" else math.nan), None
        text = str(raw).strip()
        if self.kind == "categorical":
            if text not in self.classes:
                return None, f"unknown label {text!r}; expected one of {', '.join(self.classes)}"
            return text, None
        if self.kind == "binary":
            mapping = {"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0, "false": 0.0, "true": 1.0}
            if text.lower() not in mapping:
                return None, f"unknown label {text!r}; expected 0/1 or true/false"
            return mapping[text.lower()], None
        try:
            value = float(text)
        except ValueError:
            return None, f"not a number: {text!r}"
        if not self.low <= value <= self.high:
            return None, f"{value} outside [{self.low}, {self.high}]"
        return value, None


def fold_columns(columns) -> list[str]:
    """The `split_<protocol>_<k>` columns among `columns`, sorted."""
    return sorted(str(c) for c in columns if str(c).startswith(FOLD_PREFIX))


def read_table(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read a manifest file by its extension, every cell as text (types are checked per row)."""
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: manifest file not found")
    suffix = path.suffix.lower()
    if suffix in {".csv", ".tsv", ".txt"}:
        sep = "\t" if suffix == ".tsv" else ","
        return pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    if suffix in {".jsonl", ".json", ".ndjson"}:
        return pd.read_json(path, lines=True, dtype=False).astype(object)
    if suffix == ".parquet":
        return pd.read_parquet(path).astype(object)
    raise ManifestError(f"{path}: unsupported manifest format {suffix!r} (csv, tsv, jsonl, parquet)")


def shard_of(utt_id: str, n_shards: int) -> int:
    """Stable shard of an utterance: a hash of its id, so adding rows never moves others."""
    return int(hashlib.sha1(utt_id.encode()).hexdigest()[:12], 16) % n_shards


def media_signature(paths: list[str]) -> str:
    """Size and modification time of each media file: changes when a file is replaced."""
    parts = []
    for path in paths:
        stat = os.stat(path)
        parts.append(f"{stat.st_size}:{stat.st_mtime_ns}")
    return ";".join(parts)


def _read_words(path: Path) -> list[dict[str, Any]]:
    with open(path) as handle:
        words = json.load(handle)
    if not isinstance(words, list):
        raise ValueError("expected a JSON list of {word, start_s, end_s}")
    out = []
    for i, item in enumerate(words):
        try:
            start, end = float(item["start_s"]), float(item["end_s"])
            out.append({"word": str(item["word"]), "start_s": start, "end_s": end})
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"word {i}: {error!s} (need word, start_s, end_s)") from error
        if end < start:
            raise ValueError(f"word {i} ({item['word']!r}) ends before it starts")
    return out


def _cell(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _optional_float(text: str) -> float:
    return math.nan if text == "" else float(text)


def validate_manifest(table: pd.DataFrame, source: str | os.PathLike[str], labels: list[LabelSpec],
                      corpus: str, n_shards: int, media_root: str | os.PathLike[str] | None = None,
                      default_split: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check every row; return (accepted manifest, rejected rows with row number, field, reason)."""
    columns = set(table.columns)
    if "utt_id" not in columns:
        raise ManifestError(f"{source}: required column 'utt_id' is missing (has: {sorted(columns)})")
    if not columns & {"audio_path", "video_path", "transcript"}:
        raise ManifestError(f"{source}: needs at least one of audio_path, video_path, transcript")
    root = Path(media_root) if media_root else Path(source).resolve().parent
    folds = fold_columns(table.columns)
    first_row: dict[str, int] = {}
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for index, row in enumerate(table.to_dict("records")):
        row_number = index + 1
        utt_id = _cell(row, "utt_id")

        def reject(field: str, reason: str) -> None:
            rejected.append({"utt_id": utt_id, "stage": "ingest", "row": row_number,
                             "field": field, "reason": f"{source}, row {row_number}: {field}: {reason}"})

        if not utt_id:
            reject("utt_id", "empty utt_id")
            continue
        if utt_id in first_row:
            reject("utt_id", f"duplicate utt_id {utt_id!r} (first on row {first_row[utt_id]})")
            continue
        first_row[utt_id] = row_number
        out: dict[str, Any] = {"utt_id": utt_id, "dataset": _cell(row, "dataset") or corpus,
                               "speaker": _cell(row, "speaker") or "unknown",
                               "dialogue_id": _cell(row, "dialogue_id") or utt_id,
                               "transcript": _cell(row, "transcript"),
                               "context": _cell(row, "context") or None}
        problems: list[tuple[str, str]] = []
        try:
            out["turn"] = int(float(_cell(row, "turn") or 0))
        except ValueError:
            problems.append(("turn", f"not an integer: {_cell(row, 'turn')!r}"))
        media: list[str] = []
        for key in MEDIA_COLUMNS:
            text = _cell(row, key)
            out[key] = None
            if text:
                path = Path(text) if os.path.isabs(text) else root / text
                if not path.is_file():
                    problems.append((key, f"file not found: {path}"))
                else:
                    out[key] = str(path.resolve())
                    media.append(out[key])
        if not media and not out["transcript"]:
            problems.append(("audio_path", "no media file and no transcript: nothing to extract"))
        try:
            out["start_s"] = _optional_float(_cell(row, "start_s"))
            out["end_s"] = _optional_float(_cell(row, "end_s"))
            if out["start_s"] < 0:
                problems.append(("start_s", f"negative start {out['start_s']}"))
            if out["end_s"] <= out["start_s"]:
                problems.append(("end_s", f"end {out['end_s']} not after start {out['start_s']}"))
        except ValueError as error:
            problems.append(("start_s/end_s", f"not a number ({error})"))
        split_text = _cell(row, "split").lower() or (default_split or "")
        if split_text not in SPLITS:
            problems.append(("split", f"unknown split {split_text!r}; expected train, valid or test"))
        out["split"] = SPLITS.get(split_text)
        for column in folds:
            fold_text = _cell(row, column).lower()
            if fold_text and fold_text not in SPLITS:
                problems.append((column, f"unknown split {fold_text!r}; expected train, valid, test "
                                         "or empty (not used in this fold)"))
            out[column] = SPLITS.get(fold_text)
        for spec in labels:
            value, reason = spec.parse(row.get(spec.name))
            if reason:
                problems.append((spec.name, reason))
            out[spec.name] = value
        out["words"] = None
        words_text = _cell(row, "words_path")
        if words_text:
            words_path = Path(words_text) if os.path.isabs(words_text) else root / words_text
            try:
                out["words"] = _read_words(words_path)
            except (OSError, ValueError) as error:
                problems.append(("words_path", f"{words_path}: {error}"))
        if problems:
            for field, reason in problems:
                reject(field, reason)
            continue
        out["media_sig"] = media_signature(media)
        out["shard"] = shard_of(utt_id, n_shards)
        accepted.append(out)
    manifest = pd.DataFrame(accepted)
    return manifest, pd.DataFrame(rejected, columns=REJECTED_COLUMNS)
