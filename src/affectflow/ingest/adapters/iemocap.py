"""IEMOCAP (native release layout) to a manifest, with the common label mappings and session folds.

Read per session `Session<n>/`:
- `dialog/EmoEvaluation/<dialog>.txt`: one summary line per utterance,
  `[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]`
  (time range in the dialog, utterance id, majority label, [valence, activation, dominance] as
  the file header names them, 1-5 scale); the per-annotator lines below it are ignored;
- `dialog/transcriptions/<dialog>.txt`: `Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.`;
- `sentences/wav/<dialog>/<utt>.wav`: the utterance audio (so `start_s`/`end_s` stay empty; the
  times in the dialog are kept as `dialog_start_s`/`dialog_end_s`);
- optional `sentences/ForcedAlignment/<dialog>/<utt>.wdseg` (HTK word segmentation, 10 ms
  frames): word timings in the `words` column when `words=True`.

`speaker` is the session plus the gender letter of the utterance id (`Ses01F_impro01_M003` is
spoken by `Ses01M`; the F in `Ses01F` only names the dialog's motion-captured actor).
Labels: `emotion_raw` (neu hap exc sad ang fru sur fea dis oth xxx), `emotion4` (neutral, happy
= hap + exc, sad, angry), `emotion6` (happy, sad, neutral, angry, excited, frustrated), and
`emotion` = one of them (`scheme`); unmapped utterances get an empty label (missing) or, with
`drop_unmapped`, are left out. `valence`, `activation`, `dominance` are numbers.
`session_folds` gives leave-one-session-out folds (test = session k, valid = the next session,
wrapping; train = the rest).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from affectflow.ingest.adapters._common import (apply_fold_index, apply_split_fold, cyclic_folds,
                                                manifest_frame, read_text)
from affectflow.ingest.manifest import ManifestError

DATASET = "iemocap"
RAW_LABELS: tuple[str, ...] = ("neu", "hap", "exc", "sad", "ang", "fru", "sur", "fea", "dis",
                               "oth", "xxx")
MAP_4: dict[str, str] = {"neu": "neutral", "hap": "happy", "exc": "happy", "sad": "sad",
                         "ang": "angry"}
MAP_6: dict[str, str] = {"hap": "happy", "sad": "sad", "neu": "neutral", "ang": "angry",
                         "exc": "excited", "fru": "frustrated"}
SCHEMES: dict[str, dict[str, str]] = {"4class": MAP_4, "6class": MAP_6}
CLASSES: dict[str, list[str]] = {
    "4class": ["neutral", "happy", "sad", "angry"],
    "6class": ["happy", "sad", "neutral", "angry", "excited", "frustrated"],
}


def label_config(scheme: str = "4class") -> dict[str, dict[str, Any]]:
    """Corpus-config `labels` for a manifest built with `scheme` (emotion, emotion4/6, V/A/D)."""
    config: dict[str, dict[str, Any]] = {
        "emotion": {"type": "categorical", "classes": CLASSES[scheme]},
        "emotion4": {"type": "categorical", "classes": CLASSES["4class"]},
        "emotion6": {"type": "categorical", "classes": CLASSES["6class"]},
    }
    for name in ("valence", "activation", "dominance"):
        config[name] = {"type": "regression", "min": 1, "max": 5}
    return config


LABELS: dict[str, dict[str, Any]] = label_config("4class")
EXTRA_COLUMNS: tuple[str, ...] = (
    "emotion", "emotion_raw", "emotion4", "emotion6", "valence", "activation", "dominance",
    "session", "gender", "improvised", "dialog_start_s", "dialog_end_s", "words")
_UTT = re.compile(r"^(?P<dialog>Ses(?P<session>\d{2})[FM]_.+)_(?P<gender>[FM])[A-Z]*\d+$")
_SUMMARY = re.compile(r"^\[(?P<times>[^\]]*)\]\s+(?P<utt>\S+)\s+(?P<code>\S+)\s+\[(?P<vad>[^\]]*)\]\s*$")
_TIMES = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\s*$")
_TRANSCRIPT = re.compile(r"^(?P<utt>Ses\S+)\s+\[[^\]]*\]:\s?(?P<text>.*)$")
_NOISE = re.compile(r"^(<.*>|\+\+.*\+\+|\[.*\])$")


def parse_evaluation(path: Path) -> list[dict[str, Any]]:
    """The summary lines of one EmoEvaluation file; ManifestError naming file, line and field."""
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.startswith("["):
            continue  # header, blank, per-annotator lines
        where = f"{path}, line {number}"
        match = _SUMMARY.match(line)
        if not match:
            raise ManifestError(f"{where}: expected '[start - end] <utt id> <label> [V, A, D]', "
                                f"got {line.strip()!r}")
        times = _TIMES.match(match["times"])
        if not times:
            raise ManifestError(f"{where}: time range: not 'start - end': [{match['times']}]")
        start, end = float(times[1]), float(times[2])
        if end <= start:
            raise ManifestError(f"{where}: time range: end {end} is not after start {start}")
        utt = _UTT.match(match["utt"])
        if not utt:
            raise ManifestError(f"{where}: utterance id: not an IEMOCAP id: {match['utt']!r}")
        if utt["dialog"] != path.stem:
            raise ManifestError(f"{where}: utterance id: {match['utt']!r} is not in dialog "
                                f"{path.stem!r}")
        if match["code"] not in RAW_LABELS:
            raise ManifestError(f"{where}: label: unknown {match['code']!r}; expected one of "
                                f"{', '.join(RAW_LABELS)}")
        try:
            vad = [float(v) for v in match["vad"].split(",")]
        except ValueError:
            vad = []
        if len(vad) != 3 or not all(math.isfinite(v) for v in vad):
            raise ManifestError(f"{where}: [V, A, D]: expected 3 numbers, got [{match['vad']}]")
        rows.append({"utt_id": match["utt"], "session": int(utt["session"]),
                     "gender": utt["gender"], "dialog": path.stem, "start": start, "end": end,
                     "code": match["code"], "vad": vad})
    return rows


def parse_transcriptions(path: Path) -> dict[str, str]:
    """utterance id -> text; lines without an utterance id (noise, comments) are skipped."""
    texts = {}
    for line in read_text(path).splitlines():
        match = _TRANSCRIPT.match(line.strip())
        if match:
            texts[match["utt"]] = match["text"].strip()
    return texts


def parse_wdseg(path: Path) -> list[dict[str, Any]]:
    """Words of an HTK `.wdseg` (SFrm EFrm SegAScr Word, 10 ms frames), without <s>, <sil>, ++noise++."""
    words = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        fields = line.split()
        if len(fields) != 4 or not (fields[0].isdigit() and fields[1].isdigit()):
            continue  # header "SFrm EFrm SegAScr Word" and the "Total score" footer
        token = re.sub(r"\(\d+\)$", "", fields[3])
        if _NOISE.match(token):
            continue
        start, end = int(fields[0]) * 0.01, (int(fields[1]) + 1) * 0.01
        if end < start:
            raise ManifestError(f"{path}, line {number}: frames: EFrm before SFrm")
        words.append({"word": token.lower(), "start_s": round(start, 2), "end_s": round(end, 2)})
    return words


def build_manifest(root: Path, scheme: str = "4class", drop_unmapped: bool = False,
                   fold: int | None = -1, words: bool = True,
                   on_missing: str = "error") -> pd.DataFrame:
    """All utterances of `<root>/Session*/`; `split` from session fold `fold` (default: the last,
    i.e. test = highest session), None for no split. Missing wav: `on_missing` = "error", "drop"
    or "keep" (a text-only row)."""
    root = Path(root)
    if scheme not in SCHEMES:
        raise ManifestError(f"scheme must be one of {', '.join(SCHEMES)}, got {scheme!r}")
    if on_missing not in ("error", "drop", "keep"):
        raise ManifestError(f"on_missing must be error, drop or keep, got {on_missing!r}")
    sessions = sorted(p for p in root.glob("Session*") if p.is_dir())
    if not sessions:
        raise ManifestError(f"{root}: no Session* folders (IEMOCAP release layout expected)")
    rows = []
    for session_dir in sessions:
        evaluations = sorted(p for p in (session_dir / "dialog" / "EmoEvaluation").glob("*.txt")
                             if not p.name.startswith("."))
        for evaluation in evaluations:
            transcript_file = session_dir / "dialog" / "transcriptions" / evaluation.name
            texts = parse_transcriptions(transcript_file) if transcript_file.is_file() else {}
            utterances = sorted(parse_evaluation(evaluation), key=lambda u: (u["start"], u["utt_id"]))
            for turn, utt in enumerate(utterances):
                label = SCHEMES[scheme].get(utt["code"])
                if label is None and drop_unmapped:
                    continue
                wav = session_dir / "sentences" / "wav" / utt["dialog"] / f"{utt['utt_id']}.wav"
                if not wav.is_file():
                    if on_missing == "error":
                        raise ManifestError(f"{evaluation}: {utt['utt_id']}: audio not found: {wav}")
                    if on_missing == "drop":
                        continue
                seg = session_dir / "sentences" / "ForcedAlignment" / utt["dialog"] / f"{utt['utt_id']}.wdseg"
                rows.append({
                    "utt_id": utt["utt_id"], "dataset": DATASET,
                    "speaker": f"Ses{utt['session']:02d}{utt['gender']}",
                    "dialogue_id": utt["dialog"], "turn": turn,
                    "audio_path": str(wav.resolve()) if wav.is_file() else None,
                    "transcript": texts.get(utt["utt_id"], ""), "split": None,
                    "emotion": label, "emotion_raw": utt["code"],
                    "emotion4": MAP_4.get(utt["code"]), "emotion6": MAP_6.get(utt["code"]),
                    "valence": utt["vad"][0], "activation": utt["vad"][1],
                    "dominance": utt["vad"][2], "session": utt["session"],
                    "gender": utt["gender"], "improvised": "_impro" in utt["dialog"],
                    "dialog_start_s": utt["start"], "dialog_end_s": utt["end"],
                    "words": parse_wdseg(seg) if words and seg.is_file() else None,
                })
    if not rows:
        raise ManifestError(f"{root}: no IEMOCAP utterances found")
    manifest = manifest_frame(rows, EXTRA_COLUMNS)
    duplicated = manifest["utt_id"][manifest["utt_id"].duplicated()].tolist()
    if duplicated:
        raise ManifestError(f"{root}: utterance ids listed twice: {duplicated[:5]}")
    if fold is not None:
        manifest = apply_fold_index(manifest, session_folds(manifest), fold, root)
    return manifest


def session_folds(manifest: pd.DataFrame | None = None) -> list[dict[str, Any]]:
    """Leave-one-session-out over the sessions present (1-5 without a manifest): fold k tests
    session k, validates on the next session (wrapping), trains on the rest."""
    sessions = [1, 2, 3, 4, 5] if manifest is None else manifest["session"].unique().tolist()
    return cyclic_folds([int(s) for s in sessions], "session")


def apply_fold(manifest: pd.DataFrame, fold: dict[str, Any] | int) -> pd.DataFrame:
    """Copy of `manifest` with `split` from `fold` (a dict of `session_folds`, or its index)."""
    if isinstance(fold, int):
        fold = session_folds(manifest)[fold]
    return apply_split_fold(manifest, fold)
