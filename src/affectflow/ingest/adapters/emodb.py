"""EmoDB (Berlin Database of Emotional Speech): `wav/*.wav` to a manifest, plus LOSO folds.

A file name such as `03a01Fa.wav` reads: speaker `03`, sentence `a01`, emotion letter `F`
(German initial: Freude = happiness), version `a`. The optional `erkennung.txt` adds the
perception test's recognition rate and naturalness (percent of 20 listeners).

The usual protocol is leave-one-speaker-out: `loso_folds` gives 10 folds (test = one speaker,
valid = the next speaker in sorted order, wrapping; train = the other 8) and `apply_fold` sets
`split` from one of them. `build_manifest(root, fold=k)` does both; `fold=None` leaves `split`
empty.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import pandas as pd

from affectflow.ingest.adapters._common import apply_fold_index, apply_split_fold, cyclic_folds, manifest_frame
from affectflow.ingest.manifest import ManifestError

DATASET = "emodb"
# German initials of the emotions (EmoDB documentation; F is Freude = happiness, not disgust).
EMOTION_LETTERS: dict[str, str] = {
    "W": "anger", "L": "boredom", "E": "disgust", "A": "fear", "F": "happiness",
    "T": "sadness", "N": "neutral",
}
EMOTIONS: tuple[str, ...] = tuple(EMOTION_LETTERS.values())
LABELS: dict[str, dict[str, Any]] = {"emotion": {"type": "categorical", "classes": list(EMOTIONS)}}
# Speaker -> (gender, age at recording), from the EmoDB documentation (emodb.bilderbar.info).
SPEAKERS: dict[str, tuple[str, int]] = {
    "03": ("m", 31), "08": ("f", 34), "09": ("f", 21), "10": ("m", 32), "11": ("m", 26),
    "12": ("m", 30), "13": ("f", 32), "14": ("f", 35), "15": ("m", 25), "16": ("f", 31),
}
# The ten sentence texts are not in the distributed files (erklaerung.txt only explains the
# perception test); these are the official texts as given by the EmoDB documentation at
# emodb.bilderbar.info and reproduced in audeering/audformat docs/emodb-example.rst. The syllable
# labels (silb/) agree except for a05, where the actors say "Blatt Papier" for "Stück Papier".
SENTENCES: dict[str, str] = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
EXTRA_COLUMNS: tuple[str, ...] = ("emotion", "sentence", "version", "gender", "age",
                                  "recognition", "naturalness")
_NAME = re.compile(r"^(?P<speaker>\d{2})(?P<sentence>[ab]\d{2})(?P<letter>[A-Za-z])(?P<version>[a-z])$")


def parse_name(path: Path) -> dict[str, Any]:
    """Speaker, sentence, emotion, version of one EmoDB file; ManifestError naming the file."""
    match = _NAME.match(path.stem)
    if not match:
        raise ManifestError(f"{path}: file name does not match the EmoDB pattern "
                            "<speaker 2 digits><sentence a01..b10><emotion letter><version>.wav")
    letter, speaker, sentence = match["letter"], match["speaker"], match["sentence"]
    if letter not in EMOTION_LETTERS:
        raise ManifestError(f"{path}: emotion letter {letter!r} (6th character of the file name) "
                            f"is unknown; expected one of {', '.join(EMOTION_LETTERS)}")
    if speaker not in SPEAKERS:
        raise ManifestError(f"{path}: speaker {speaker!r} (first 2 characters) is not one of the "
                            f"EmoDB speakers {', '.join(SPEAKERS)}")
    if sentence not in SENTENCES:
        raise ManifestError(f"{path}: sentence code {sentence!r} (characters 3-5) is not one of "
                            f"{', '.join(SENTENCES)}")
    return {"speaker": speaker, "sentence": sentence, "emotion": EMOTION_LETTERS[letter],
            "version": match["version"]}


def _percent(text: str, path: Path, line: int, field: str) -> float:
    cleaned = text.replace("\u00a0", "").strip().replace(",", ".")
    try:
        return float(cleaned)
    except ValueError:
        raise ManifestError(f"{path}, line {line}: {field}: not a number: {text!r}") from None


def read_perception(path: Path) -> dict[str, tuple[float, float]]:
    """erkennung.txt: file stem -> (recognition %, naturalness %). Latin-1, tab-separated."""
    result: dict[str, tuple[float, float]] = {}
    lines = path.read_text(encoding="latin-1").splitlines()
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 4:
            raise ManifestError(f"{path}, line {number}: expected 4 tab-separated fields "
                                f"(Nr., Satz, erkannt, natuerlich), got {len(fields)}")
        stem = Path(fields[1].strip()).stem
        result[stem] = (_percent(fields[2], path, number, "erkannt"),
                        _percent(fields[3], path, number, "natuerlich"))
    return result


def build_manifest(root: Path, fold: int | None = 0, wav_dir: str = "wav") -> pd.DataFrame:
    """One row per `<root>/<wav_dir>/*.wav`, sorted by name; `split` from LOSO fold `fold`."""
    root = Path(root)
    folder = root / wav_dir
    if not folder.is_dir():
        raise ManifestError(f"{folder}: EmoDB wav folder not found")
    perception_file = root / "erkennung.txt"
    perception = read_perception(perception_file) if perception_file.is_file() else {}
    rows = []
    for path in sorted(p for p in folder.glob("*.wav") if not p.name.startswith(".")):
        info = parse_name(path)
        gender, age = SPEAKERS[info["speaker"]]
        recognition, naturalness = perception.get(path.stem, (math.nan, math.nan))
        rows.append({"utt_id": path.stem, "dataset": DATASET, "speaker": info["speaker"],
                     "dialogue_id": path.stem, "turn": 0, "audio_path": str(path.resolve()),
                     "transcript": SENTENCES[info["sentence"]], "split": None,
                     "emotion": info["emotion"], "sentence": info["sentence"],
                     "version": info["version"], "gender": gender, "age": age,
                     "recognition": recognition, "naturalness": naturalness})
    if not rows:
        raise ManifestError(f"{folder}: no .wav files")
    manifest = manifest_frame(rows, EXTRA_COLUMNS)
    if fold is not None:
        manifest = apply_fold_index(manifest, loso_folds(manifest), fold, folder)
    return manifest


def loso_folds(manifest: pd.DataFrame) -> list[dict[str, Any]]:
    """Leave-one-speaker-out: fold k tests speaker k (sorted), validates on speaker k+1 (wrapping).

    Each fold is {"fold": k, "by": "speaker", "test": [s_k], "valid": [s_k+1], "train": [...]}.
    """
    return cyclic_folds(manifest["speaker"].astype(str).unique().tolist(), "speaker")


def apply_fold(manifest: pd.DataFrame, fold: dict[str, Any] | int) -> pd.DataFrame:
    """Copy of `manifest` with `split` from `fold` (a dict of `loso_folds`, or its index)."""
    if isinstance(fold, int):
        fold = loso_folds(manifest)[fold]
    return apply_split_fold(manifest, fold)
