"""Helpers shared by the dataset adapters: text decoding, mojibake repair, context, folds.

Every adapter builds a manifest DataFrame whose first columns are `BASE_COLUMNS` (the generic
manifest of `affectflow.ingest.manifest`) followed by dataset-specific extras. Problems in the
native files raise `ManifestError` naming the file and the field or row.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from affectflow.ingest.manifest import ManifestError

BASE_COLUMNS: tuple[str, ...] = (
    "utt_id", "dataset", "speaker", "dialogue_id", "turn", "audio_path", "video_path",
    "words_path", "start_s", "end_s", "transcript", "split",
)
CONTEXT_SEP = " [SEP] "

# UTF-8 read as cp1252/latin-1: a lead byte (Â..ô) followed by 1-3 continuation characters, which
# in cp1252 are U+0080-U+00BF or one of cp1252's specials at 0x80-0x9F (€, ™, ’, “, …).
_CP1252_SPECIALS = "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ"
_UTF8_AS_CP1252 = re.compile("[\u00c2-\u00f4][\u0080-\u00bf" + _CP1252_SPECIALS + "]{1,3}")
_C1_CONTROLS = re.compile("[\u0080-\u009f]")
# Seen in MUStARD: UTF-8 "’" read as cp1257 ("ā€™") and Mac Roman "’" read as latin-1 ("Õ").
_FIXED_SEQUENCES = {"ā€™": "’", "ā€˜": "‘", "ā€œ": "“", "ā€\u009d": "”", "ā€¦": "…"}
_MAC_ROMAN_QUOTE = re.compile(r"(?<=[A-Za-z])Õ(?=[A-Za-z])")
_ASCII_PUNCT = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "…": "...", "—": "-",
                              "–": "-", "\u00a0": " "})


def read_text(path: Path) -> str:
    """A text file as str: UTF-8 (BOM stripped), else cp1252 (the encoding of old Windows CSVs)."""
    try:
        data = path.read_bytes()
    except OSError as error:
        raise ManifestError(f"{path}: cannot read ({error.strerror or error})") from error
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _redecode(match: re.Match[str]) -> str:
    text = match.group(0)
    for encoding in ("cp1252", "latin-1"):
        try:
            return text.encode(encoding).decode("utf-8")
        except UnicodeError:
            continue
    return text


def _c1_to_cp1252(match: re.Match[str]) -> str:
    return bytes([ord(match.group(0))]).decode("cp1252", errors="replace").replace("\ufffd", "")


def fix_mojibake(text: str, ascii_punct: bool = False) -> str:
    """Repair the usual mis-decodings of English subtitles; optionally fold curly punctuation.

    `donâ€™t` (UTF-8 read as cp1252) and `don\\x92t` (cp1252 read as latin-1) both become `don’t`;
    `donÕt` (Mac Roman) and `Weā€™re` (cp1257) too. With `ascii_punct`, ’‘“”…—– become ASCII.
    """
    if not text:
        return text
    for bad, good in _FIXED_SEQUENCES.items():
        text = text.replace(bad, good)
    text = _UTF8_AS_CP1252.sub(_redecode, text)
    text = _C1_CONTROLS.sub(_c1_to_cp1252, text)
    text = _MAC_ROMAN_QUOTE.sub("’", text)
    return text.translate(_ASCII_PUNCT) if ascii_punct else text


def read_csv_text(path: Path) -> pd.DataFrame:
    """A CSV (decoded by `read_text`) with every cell as text; ManifestError if it cannot be parsed."""
    try:
        table = pd.read_csv(io.StringIO(read_text(path)), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ManifestError(f"{path}: not a readable CSV ({error})") from None
    table.columns = [str(c).strip() for c in table.columns]
    return table


def require_columns(frame: pd.DataFrame, path: Path, columns: Iterable[str]) -> None:
    """Raise ManifestError naming the file and every missing column."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ManifestError(f"{path}: missing column(s) {', '.join(map(repr, missing))} "
                            f"(has: {', '.join(map(str, frame.columns))})")


def manifest_frame(rows: Sequence[Mapping[str, Any]], extra: Sequence[str]) -> pd.DataFrame:
    """A DataFrame with BASE_COLUMNS first, then `extra` (missing base cells become None)."""
    columns = list(BASE_COLUMNS) + [c for c in extra if c not in BASE_COLUMNS]
    frame = pd.DataFrame(list(rows), columns=columns)
    for column in ("audio_path", "video_path", "words_path"):
        frame[column] = frame[column].astype(object).where(frame[column].notna(), None)
    return frame


def context_strings(turns: Sequence[tuple[str, str]], n_turns: int | None,
                    sep: str = CONTEXT_SEP) -> list[str]:
    """For each position i, the `n_turns` turns before it as "Speaker: text" joined by `sep`."""
    lines = [f"{speaker}: {text}" if speaker else text for speaker, text in turns]
    out = []
    for i in range(len(lines)):
        start = 0 if n_turns is None else max(0, i - n_turns)
        out.append(sep.join(lines[start:i]))
    return out


def with_dialogue_context(manifest: pd.DataFrame, n_turns: int | None,
                          sep: str = CONTEXT_SEP) -> pd.DataFrame:
    """Copy of `manifest` with `context`: the preceding turns of the same dialogue, oldest first.

    Turns are ordered by `turn` within `dialogue_id` (gaps in the numbering are ignored, so the
    "previous" turn is the previous row present). Each turn reads "Speaker: transcript" and turns
    are joined by `sep` (" [SEP] "); the first turn of a dialogue gets "". `n_turns=None` keeps all.
    """
    if n_turns is not None and n_turns < 0:
        raise ValueError(f"n_turns must be >= 0 or None, got {n_turns}")
    out = manifest.copy()
    context = pd.Series("", index=out.index, dtype=object)
    order = out.assign(_pos=range(len(out))).sort_values(["dialogue_id", "turn", "_pos"],
                                                        kind="stable")
    for _, group in order.groupby("dialogue_id", sort=False):
        turns = list(zip(group["speaker"].fillna("").astype(str),
                         group["transcript"].fillna("").astype(str)))
        context.loc[group.index] = context_strings(turns, n_turns, sep)
    out["context"] = context
    return out


def cyclic_folds(units: Sequence[Any], by: str) -> list[dict[str, Any]]:
    """Fold k: test = units[k], valid = units[k+1] (wrapping), train = the rest, in sorted order."""
    units = sorted(units)
    if len(units) < 2:
        raise ValueError(f"need at least 2 distinct values of {by!r} for folds, got {units}")
    folds = []
    for k, test in enumerate(units):
        valid = units[(k + 1) % len(units)]
        folds.append({"fold": k, "by": by, "test": [test], "valid": [valid],
                      "train": [u for u in units if u not in (test, valid)]})
    return folds


def apply_split_fold(manifest: pd.DataFrame, fold: Mapping[str, Any]) -> pd.DataFrame:
    """Copy of `manifest` with `split` set from `fold` ({"by": column, "train"/"valid"/"test": [...]})."""
    by = fold["by"]
    if by not in manifest.columns:
        raise ManifestError(f"fold is by {by!r}, which is not a manifest column")
    lookup = {value: split for split in ("train", "valid", "test") for value in fold.get(split, [])}
    out = manifest.copy()
    out["split"] = out[by].map(lookup)
    unassigned = out.loc[out["split"].isna(), by].unique().tolist()
    if unassigned:
        raise ManifestError(f"fold {fold.get('fold')}: {by} value(s) {unassigned} are in no split")
    return out


def apply_fold_index(manifest: pd.DataFrame, folds: Sequence[Mapping[str, Any]], fold: int,
                     where: Any) -> pd.DataFrame:
    """`manifest` with `split` from `folds[fold]`; a fold out of range names `where`."""
    if not -len(folds) <= fold < len(folds):
        raise ManifestError(f"{where}: fold {fold} out of range (0..{len(folds) - 1})")
    return apply_split_fold(manifest, folds[fold])
