"""The manifest: one row per utterance, the table every later stage starts from.

Any CSV, TSV, JSON-lines or Parquet table with the columns below is a corpus. Only `utt_id` is
required, plus at least one of `audio_path`, `video_path`, `transcript` (not for a features
corpus, `features_only`, whose stores are imported from feature files):

    utt_id, dataset, speaker, dialogue_id, turn, audio_path, video_path, words_path,
    start_s, end_s, transcript, context, split, [split_<protocol>_<k> ...], <one column per label>

Relative media paths are taken from the manifest's folder (or `media_root`). The validator never
stops at the first problem: each bad row is rejected with the row number, the field and the
reason, and every good row goes on. `context` is optional text that came before the utterance
(preceding dialogue turns), which text extractors can encode with it. `words_path` points to a JSON list of
{"word", "start_s", "end_s"} (seconds from the utterance start).

Text is decoded with the corpus's `encoding` (UTF-8 by default). A byte that does not decode
does not stop the corpus: it is kept as a lone surrogate (Python's ``surrogateescape``) and the
row that holds it is rejected, naming the field and the byte. With a fold protocol the fold
columns carry the split, so `split` may be empty; with the `split` protocol it is required.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
import pyarrow.parquet as pq

from affectflow.ingest.duplicates import apply_duplicate_policy

MEDIA_COLUMNS = ("audio_path", "video_path")
SPLITS = {"train": "train", "valid": "valid", "dev": "valid", "val": "valid", "test": "test"}
REJECTED_COLUMNS = ["utt_id", "stage", "row", "field", "reason"]
# Further split schemes travel as columns `split_<protocol>_<k>` (e.g. split_loso_03): fold k of a
# cross-validation protocol, with train/valid/test per row, empty for rows the fold leaves out.
FOLD_PREFIX = "split_"
MISSING_NUMBERS = {"nan", "na", "n/a", "null", "none"}  # numeric cells that mean "no value"


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
        """(value, None) or (None, reason). Empty cells (and NaN, for numeric labels) are
        missing labels, not errors."""
        missing = None if self.kind == "categorical" else math.nan
        if raw is None or (isinstance(raw, float) and math.isnan(raw)) or str(raw).strip() == "":
            return missing, None
        text = str(raw).strip()
        if self.kind != "categorical" and text.lower() in MISSING_NUMBERS:
            return missing, None
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
        if not math.isfinite(value):
            return None, f"not a finite number: {text!r}"
        if not self.low <= value <= self.high:
            return None, f"{value} outside [{self.low}, {self.high}]"
        return value, None


def fold_columns(columns) -> list[str]:
    """The `split_<protocol>_<k>` columns among `columns`, sorted."""
    return sorted(str(c) for c in columns if str(c).startswith(FOLD_PREFIX))


READ_ERROR = "_read_error"  # column of rows that could not be parsed at all (a bad JSON line)


def _json_lines(path: Path, encoding: str) -> pd.DataFrame:
    """JSON lines, one row per non-empty line; a line that does not parse keeps its place as a
    row with only `READ_ERROR` set, so the validator rejects it by number and the rest go on."""
    records: list[dict[str, Any]] = []
    with open(path, encoding=encoding, errors="surrogateescape") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                records.append({READ_ERROR: f"line {number} is not valid JSON ({error.msg} at "
                                            f"column {error.colno})"})
                continue
            records.append(record if isinstance(record, dict) else
                           {READ_ERROR: f"line {number} is a JSON {type(record).__name__}, not an object"})
    columns = list(dict.fromkeys(key for record in records for key in record))
    # Object columns: pandas' default Arrow strings cannot hold the undecodable bytes' surrogates.
    return pd.DataFrame({c: pd.Series([r.get(c) for r in records], dtype=object) for c in columns})


def read_table(path: str | os.PathLike[str], encoding: str = "utf-8") -> pd.DataFrame:
    """Read a manifest file by its extension, every cell as text (types are checked per row).

    Bytes that do not decode with `encoding` become lone surrogates (see `undecodable`), so one
    bad byte costs its row, not the corpus.
    """
    path = Path(path)
    if not path.exists():
        raise ManifestError(f"{path}: manifest file not found")
    try:
        "".encode(encoding)
    except LookupError:
        raise ManifestError(f"{path}: unknown text encoding {encoding!r}") from None
    suffix = path.suffix.lower()
    if suffix in {".csv", ".tsv", ".txt"}:
        # TSV has no quoting: a quote character is text (csv.QUOTE_NONE), so one stray quote in
        # a transcript cannot swallow the rows after it.
        sep, quoting = ("\t", csv.QUOTE_NONE) if suffix == ".tsv" else (",", csv.QUOTE_MINIMAL)
        try:
            return pd.read_csv(path, sep=sep, dtype=object, keep_default_na=False, encoding=encoding,
                               encoding_errors="surrogateescape", quoting=quoting)
        except pd.errors.EmptyDataError:
            raise ManifestError(f"{path}: the manifest is empty (no header line)") from None
        except pd.errors.ParserError as error:
            raise ManifestError(f"{path}: not a readable {suffix[1:].upper()} table: {error}") from None
    if suffix in {".jsonl", ".json", ".ndjson"}:
        return _json_lines(path, encoding)
    if suffix == ".parquet":  # integer columns with nulls stay integers (not 1.0, 2.0)
        return pq.read_table(path).to_pandas(integer_object_nulls=True).astype(object)
    raise ManifestError(f"{path}: unsupported manifest format {suffix!r} (csv, tsv, jsonl, parquet)")


def undecodable(text: str) -> str | None:
    """Where `text` cannot be stored as UTF-8: a byte that did not decode (surrogateescape's
    U+DC80-DCFF: 'byte 0xe9 at character 12') or another lone surrogate (a JSON escape such as
    \\ud83d, half an emoji); None when it is clean."""
    for index, char in enumerate(text):
        if "\udc80" <= char <= "\udcff":
            return f"byte 0x{ord(char) - 0xDC00:02x} at character {index + 1}"
        if "\ud800" <= char <= "\udfff":
            return f"lone surrogate U+{ord(char):04X} at character {index + 1}"
    return None


def shard_of(utt_id: str, n_shards: int) -> int:
    """Stable shard of an utterance: a hash of its id, so adding rows never moves others."""
    return int(hashlib.sha1(utt_id.encode()).hexdigest()[:12], 16) % n_shards


def _read_words(path: Path) -> list[dict[str, Any]]:
    """A word-timing file: a JSON list of {word, start_s, end_s}; ValueError says what is wrong."""
    try:
        with open(path, encoding="utf-8") as handle:
            words = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"not valid JSON ({error.msg} at line {error.lineno} column {error.colno})") from None
    if not isinstance(words, list):
        raise ValueError("not a JSON list of {word, start_s, end_s}")
    out = []
    for i, item in enumerate(words):
        try:
            start, end = float(item["start_s"]), float(item["end_s"])
            out.append({"word": str(item["word"]), "start_s": start, "end_s": end})
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(f"a word without word, start_s and end_s (word {i}: {error!s})") from None
        if end < start:
            raise ValueError(f"a word that ends before it starts (word {i}, {item['word']!r})")
    return out


def _cell(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _optional_float(text: str) -> float:
    """A time in seconds: empty (or NaN) is missing; inf and non-numbers raise ValueError."""
    if text == "" or text.lower() in MISSING_NUMBERS:
        return math.nan
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"not a finite number: {text!r}")
    return value


def media_problem(path: Path) -> str | None:
    """Why `path` cannot be a media file (missing, a folder, a broken or looping link, empty,
    unreadable), or None when it is a readable, non-empty file."""
    try:
        info = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            return f"broken symbolic link: {path} -> {os.readlink(path)}"
        return f"file not found: {path}"
    except OSError as error:
        if error.errno == errno.ELOOP:
            return f"symbolic link loop: {path}"
        return f"cannot read {path}: {error.strerror}"
    if stat.S_ISDIR(info.st_mode):
        return f"is a directory, not a file: {path}"
    if not stat.S_ISREG(info.st_mode):
        return f"not a regular file: {path}"
    if info.st_size == 0:
        return f"empty file (0 bytes): {path}"
    if not os.access(path, os.R_OK):
        return f"not readable (permission denied): {path}"
    return None


@dataclass(frozen=True)
class IngestOptions:
    """How one corpus is ingested (from its config section)."""

    corpus: str
    shards: int = 8
    labels: tuple[LabelSpec, ...] = ()
    media_root: str | None = None
    default_split: str | None = None
    protocol: str = "split"  # or a fold scheme: its columns split_<protocol>_<k> carry the split
    encoding: str = "utf-8"
    duplicate_media: str = "warn"  # byte-identical media under two ids: warn, or reject the later
    features_only: bool = False  # a features corpus: its stores are imported, rows need no media


def check_columns(columns: Sequence[str], source: str | os.PathLike[str],
                  options: IngestOptions) -> None:
    """Whole-manifest problems: required columns, configured labels and folds that are absent."""
    names = sorted(str(c) for c in columns if str(c) != READ_ERROR)
    found = f"(the manifest has: {', '.join(names) or 'no columns'})"
    if "utt_id" not in names:
        raise ManifestError(f"{source}: required column 'utt_id' is missing {found}")
    if not options.features_only and not set(names) & {"audio_path", "video_path", "transcript"}:
        raise ManifestError(f"{source}: needs at least one of audio_path, video_path, transcript {found}")
    missing = [spec.name for spec in options.labels if spec.name not in names]
    if missing:
        raise ManifestError(f"{source}: label column(s) {', '.join(map(repr, missing))} named under "
                            f"corpora.{options.corpus}.labels are not in the manifest {found}")
    if options.protocol != "split":
        prefix = f"{FOLD_PREFIX}{options.protocol}_"
        if not any(name.startswith(prefix) for name in names):
            raise ManifestError(f"{source}: protocol {options.protocol!r} needs fold columns "
                                f"{prefix}<k>; none found {found}")


def validate_manifest(table: pd.DataFrame, source: str | os.PathLike[str],
                      options: IngestOptions) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Check every row; return (accepted manifest, rejected rows with row number, field, reason)."""
    check_columns(list(table.columns), source, options)
    root = Path(options.media_root) if options.media_root else Path(source).resolve().parent
    folds = fold_columns(table.columns)
    split_required = options.protocol == "split"
    first_row: dict[str, int] = {}
    accepted: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for index, row in enumerate(table.to_dict("records")):
        row_number = index + 1
        utt_id = _cell(row, "utt_id")

        def reject(field: str, reason: str) -> None:
            rejected.append({"utt_id": utt_id, "stage": "ingest", "row": row_number,
                             "field": field, "reason": f"{source}, row {row_number}: {field}: {reason}"})

        if _cell(row, READ_ERROR):
            reject("row", _cell(row, READ_ERROR))
            continue
        bad_text = [(str(key), where) for key, value in row.items()
                    if isinstance(value, str) and (where := undecodable(value))]
        if bad_text:
            utt_id = utt_id.encode("utf-8", "replace").decode("utf-8")
            for field, where in bad_text:
                reject(field, f"not valid {options.encoding} text ({where}); set "
                              f"corpora.{options.corpus}.encoding if the file is e.g. latin-1 or cp1252")
            continue
        if not utt_id:
            reject("utt_id", "empty utt_id")
            continue
        if utt_id in first_row:
            reject("utt_id", f"duplicate utt_id {utt_id!r} (first on row {first_row[utt_id]})")
            continue
        first_row[utt_id] = row_number
        out, problems = _parse_row(row, utt_id, root, options, folds, split_required)
        if problems:
            for field, reason in problems:
                reject(field, reason)
            continue
        out["shard"] = shard_of(utt_id, options.shards)
        out["_row"] = row_number
        accepted.append(out)
    accepted = apply_duplicate_policy(accepted, rejected, source, options.duplicate_media)
    manifest = pd.DataFrame(accepted).drop(columns=["_row"], errors="ignore")
    return manifest, pd.DataFrame(rejected, columns=REJECTED_COLUMNS)



def _parse_row(row: Mapping[str, Any], utt_id: str, root: Path, options: IngestOptions,
               folds: list[str], split_required: bool) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """One row's typed values, and (field, reason) for each problem found."""
    out: dict[str, Any] = {"utt_id": utt_id, "dataset": _cell(row, "dataset") or options.corpus,
                           "speaker": _cell(row, "speaker") or "unknown",
                           "dialogue_id": _cell(row, "dialogue_id") or utt_id,
                           "transcript": _cell(row, "transcript"),
                           "context": _cell(row, "context") or None}
    problems: list[tuple[str, str]] = []
    try:
        out["turn"] = int(float(_cell(row, "turn") or 0))
    except (ValueError, OverflowError):
        problems.append(("turn", f"not an integer: {_cell(row, 'turn')!r}"))
    has_media = False
    for key in MEDIA_COLUMNS:
        text = _cell(row, key)
        out[key] = None
        if text:
            path = Path(text) if os.path.isabs(text) else root / text
            problem = media_problem(path)
            if problem:
                problems.append((key, problem))
            else:
                out[key] = os.path.abspath(path)  # not resolved: a relinked file is a new file
                has_media = True
    if not has_media and not out["transcript"] and not options.features_only and not any(
            f == k for f, _ in problems for k in MEDIA_COLUMNS):
        problems.append(("audio_path", "no media file and no transcript: nothing to extract"))
    for key in ("start_s", "end_s"):
        try:
            out[key] = _optional_float(_cell(row, key))
        except ValueError as error:
            out[key] = math.nan
            message = str(error) if "finite" in str(error) else f"not a number: {_cell(row, key)!r}"
            problems.append((key, message))
    if out["start_s"] < 0:
        problems.append(("start_s", f"negative start {out['start_s']}"))
    if out["end_s"] <= out["start_s"] or (math.isnan(out["start_s"]) and out["end_s"] <= 0):
        problems.append(("end_s", f"end {out['end_s']} not after start "
                                  f"{0.0 if math.isnan(out['start_s']) else out['start_s']}"))
    split_text = _cell(row, "split").lower() or (options.default_split or "")
    if split_text not in SPLITS and (split_text or split_required):
        problems.append(("split", f"unknown split {split_text!r}; expected train, valid or test"
                                  + ("" if split_text else " (with a fold protocol, `split` may "
                                     "be empty: the split_<protocol>_<k> columns carry it)")))
    out["split"] = SPLITS.get(split_text)
    for column in folds:
        fold_text = _cell(row, column).lower()
        if fold_text and fold_text not in SPLITS:
            problems.append((column, f"unknown split {fold_text!r}; expected train, valid, test "
                                     "or empty (not used in this fold)"))
        out[column] = SPLITS.get(fold_text)
    for spec in options.labels:
        value, reason = spec.parse(row.get(spec.name))
        if reason:
            problems.append((spec.name, reason))
        out[spec.name] = value
    out["words"] = None
    words_text = _cell(row, "words_path")
    if words_text:
        words_path = Path(words_text) if os.path.isabs(words_text) else root / words_text
        problem = media_problem(words_path)
        if problem:
            problems.append(("words_path", problem))
        else:
            try:
                out["words"] = _read_words(words_path)
            except (OSError, ValueError) as error:
                problems.append(("words_path", f"{error} in {words_path}"))
    return out, problems
