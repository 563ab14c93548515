"""Pipeline stage: give every manifest row a transcript and word times where it lacks them.

Rows without a transcript get ASR (Whisper, `asr.transcribe`): the transcript and word times,
the times refined by forced alignment of the recognised text when that works (see
`align.refine_times`). English rows with a transcript but no `words_path` get forced alignment
(`align.align`). Each row's words go to ``<words_dir>/<utt_id>.json`` (the manifest's
`words_path` format) and the row's `words_path` points there (absolute); `words_source` says
where the words came from. A row whose media cannot be decoded or aligned is logged with the
reason and written back unchanged: one broken clip never stops the rest.

    python -m affectflow.transcribe.run manifest.csv manifest_filled.csv words/ [--mode auto]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import math
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from affectflow.atomic import atomic_path
from affectflow.ingest.manifest import read_table
from affectflow.media.audio import load_audio
from affectflow.transcribe.asr import BUNDLED_MODEL, Word, transcribe, words_to_text

log = logging.getLogger(__name__)

MODES = ("auto", "asr", "align")  # auto: both; asr: only rows without transcript; align: only with
# A transcript without a language is taken as English when this share of its words is in the
# English dictionary (0.6 when it has no letters outside ASCII): on the test data English lines
# score 0.67-1.0 (short ones with names lowest), Spanish 0.57, French 0.53, Swedish 0.25-0.47.
ENGLISH_COVERAGE = (0.8, 0.6)


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def _seconds(value: Any) -> float | None:
    text = _text(value)
    return float(text) if text else None


def words_file(words_dir: Path, utt_id: str) -> Path:
    """`<words_dir>/<utt_id>.json`, the id made file-safe (plus a hash when that changed it)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", utt_id)
    if safe != utt_id:
        safe += "-" + hashlib.sha1(utt_id.encode()).hexdigest()[:8]
    return words_dir / f"{safe}.json"


def _row_language(row: dict[str, Any], default: str | None) -> str:
    return _text(row.get("language")) or _text(row.get("lang")) or (default or "")


def _english_or_reason(transcript: str, language: str) -> str | None:
    """None when the transcript is English (by `language`, else by a dictionary check)."""
    if language:
        if language.lower().replace("_", "-").split("-")[0] in {"en", "eng", "english"}:
            return None
        return f"skip: language {language!r} (forced alignment is English only)"
    from affectflow.transcribe.align import english_coverage

    coverage = english_coverage(transcript)
    foreign_letters = any(c.isalpha() and not c.isascii() for c in transcript)
    threshold = ENGLISH_COVERAGE[0] if foreign_letters else ENGLISH_COVERAGE[1]
    if coverage >= threshold:
        return None
    return (f"skip: transcript looks non-English ({coverage:.0%} of words in the English "
            "dictionary; set a language column to override)")


def _write_table(table: pd.DataFrame, path: Path) -> None:
    """Write by extension (csv, tsv, jsonl, parquet), atomically."""
    suffix = path.suffix.lower()
    if suffix not in {".csv", ".txt", ".tsv", ".jsonl", ".json", ".ndjson", ".parquet"}:
        raise ValueError(f"{path}: unsupported manifest format {suffix!r}")
    with atomic_path(path) as tmp:
        _write_by_suffix(table, tmp, suffix)


def _write_by_suffix(table: pd.DataFrame, tmp: Path, suffix: str) -> None:
    # surrogateescape writes undecodable input bytes back as they were, so ingest still rejects
    # exactly the rows that hold them (naming the field) instead of this stage failing.
    if suffix in {".csv", ".txt"}:
        table.to_csv(tmp, index=False, lineterminator="\n", errors="surrogateescape")
    elif suffix == ".tsv":  # no quoting, as ingest reads TSV: tabs and newlines in cells become spaces
        flat = table.apply(lambda column: column.map(
            lambda v: re.sub(r"[\t\r\n]", " ", v) if isinstance(v, str) else v))
        flat.to_csv(tmp, sep="\t", index=False, lineterminator="\n", errors="surrogateescape",
                    quoting=csv.QUOTE_NONE)
    elif suffix in {".jsonl", ".json", ".ndjson"}:
        table.to_json(tmp, orient="records", lines=True, force_ascii=False)
    else:
        table.to_parquet(tmp, index=False)


def _process_row(row: dict[str, Any], root: Path, mode: str, model: str, refine: bool,
                 default_language: str | None) -> tuple[str, str, list[Word]] | str:
    """(kind, transcript, words) for a row to fill, or the reason it is left alone ("skip: ...")."""
    transcript = _text(row.get("transcript"))
    media = _text(row.get("audio_path")) or _text(row.get("video_path"))
    if _text(row.get("words_path")):
        return "skip: already has words_path"
    if not media:
        return "skip: no audio_path or video_path"
    if (transcript and mode == "asr") or (not transcript and mode == "align"):
        return f"skip: not in mode {mode}"
    language = _row_language(row, default_language)
    if transcript:
        reason = _english_or_reason(transcript, language)
        if reason:
            return reason
    elif model.endswith(".en") and language and not language.lower().startswith("en"):
        return f"skip: language {language!r} but ASR model {model} is English only"
    code = language.lower().replace("_", "-").split("-")[0]
    asr_language = "en" if model.endswith(".en") else (code if len(code) == 2 else None)
    path = Path(media) if os.path.isabs(media) else root / media
    audio = load_audio(str(path), 16000, _seconds(row.get("start_s")), _seconds(row.get("end_s")))
    from affectflow.transcribe.align import AlignmentError, align, refine_times

    if float(abs(audio).max()) < 1e-4:
        raise RuntimeError(f"audio of {path.name} is silent (peak below -80 dBFS)")
    if transcript:
        aligned = align(audio, transcript)
        if not aligned:
            raise RuntimeError(f"transcript {transcript[:40]!r} has no words to align")
        return "align:pocketsphinx", transcript, aligned
    words = transcribe(audio, model, language=asr_language)
    if not words:
        raise RuntimeError(f"ASR recognised no words in {path.name} (no speech?)")
    kind = f"asr:{model}"
    if refine and asr_language == "en":  # PocketSphinx is English only
        try:
            words, kind = refine_times(audio, words), f"asr:{model}+align:pocketsphinx"
        except AlignmentError as error:
            log.info("%s: keeping Whisper's word times (%s)", row.get("utt_id"), error)
    return kind, words_to_text(words), words


def fill_transcripts(manifest_in: Path, manifest_out: Path, words_dir: Path, mode: str = "auto",
                     *, model: str = BUNDLED_MODEL, refine_asr_times: bool = True,
                     language: str | None = None, media_root: Path | None = None,
                     encoding: str = "utf-8") -> dict[str, Any]:
    """Fill transcripts and word times of a manifest; returns counts and the failures.

    `mode`: ``auto`` (ASR where the transcript is missing, alignment where only words are),
    ``asr`` or ``align`` (only that half). Relative media paths are taken from the manifest's
    folder (or `media_root`), as the ingest stage does. A row's language is its `language` (or
    `lang`) column, else `language`, else guessed from the transcript (English or not). The
    result counts rows by outcome: ``asr``, ``aligned``, ``failed`` (with ``failures``: utt_id and reason) and ``skipped``
    (with ``skip_reasons``: how many rows per reason). `encoding` is the input manifest's; the
    output is UTF-8. `words_dir` is created even when no row needs word times.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    manifest_in, manifest_out = Path(manifest_in), Path(manifest_out)
    words_dir = Path(words_dir).resolve()
    root = Path(media_root) if media_root else manifest_in.resolve().parent
    table = read_table(manifest_in, encoding)
    words_dir.mkdir(parents=True, exist_ok=True)
    for column in ("transcript", "words_path", "words_source"):
        if column not in table.columns:
            table[column] = ""
    counts: dict[str, Any] = {"rows": len(table), "asr": 0, "aligned": 0, "failed": 0,
                              "skipped": 0, "failures": [], "skip_reasons": {}}
    for index, row in zip(table.index, table.to_dict("records")):
        utt_id = _text(row.get("utt_id")) or f"row{index + 1}"
        try:
            outcome = _process_row(row, root, mode, model, refine_asr_times, language)
        except Exception as error:  # any failure of one clip is that clip's, never the run's
            reason = getattr(error, "reason", None) or f"{type(error).__name__}: {error}"
            log.warning("%s: transcript/word times not filled: %s", utt_id, reason)
            counts["failed"] += 1
            counts["failures"].append({"utt_id": utt_id, "reason": str(reason)})
            continue
        if isinstance(outcome, str):
            counts["skipped"] += 1
            reasons = counts["skip_reasons"]
            reasons[outcome] = reasons.get(outcome, 0) + 1
            continue
        kind, transcript, words = outcome
        path = words_file(words_dir, utt_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps([w.to_json() for w in words], indent=1, ensure_ascii=False) + "\n")
        table.at[index, "words_path"] = str(path)
        table.at[index, "words_source"] = kind
        if not _text(row.get("transcript")):
            table.at[index, "transcript"] = transcript
        counts["aligned" if kind.startswith("align") else "asr"] += 1
    for column in ("audio_path", "video_path"):  # the new manifest may live in another folder
        if column in table.columns:
            table[column] = [os.path.abspath(root / text) if text and not os.path.isabs(text) else text
                             for text in (_text(v) for v in table[column])]
    _write_table(table, manifest_out)
    log.info("transcripts: %d by ASR, %d aligned, %d failed, %d skipped of %d rows",
             counts["asr"], counts["aligned"], counts["failed"], counts["skipped"], counts["rows"])
    return counts


def main(argv: list[str] | None = None) -> None:
    """Command line: fill a manifest's transcripts and word times; prints the counts as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest_in", type=Path)
    parser.add_argument("manifest_out", type=Path)
    parser.add_argument("words_dir", type=Path)
    parser.add_argument("--mode", choices=MODES, default="auto")
    parser.add_argument("--model", default=BUNDLED_MODEL,
                        help="Whisper model: tiny.en (bundled), a CTranslate2 folder, or a cached id")
    parser.add_argument("--language", help="language of rows without a language column (e.g. en)")
    parser.add_argument("--whisper-times", action="store_true",
                        help="keep Whisper's word times (no refinement by forced alignment)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    counts = fill_transcripts(args.manifest_in, args.manifest_out, args.words_dir, args.mode,
                              model=args.model, refine_asr_times=not args.whisper_times,
                              language=args.language)
    print(json.dumps(counts, indent=1))


if __name__ == "__main__":
    main()
