"""RAVDESS speech (Ryerson Audio-Visual Database of Emotional Speech and Song) to a manifest.

A file name such as `Actor_07/03-01-05-02-01-01-07.flac` reads, in two-digit fields: modality
`03` (audio only), vocal channel `01` (speech), emotion `05` (angry), intensity `02` (strong),
statement `01`, repetition `01`, actor `07` (odd actors are male, even female). Only speech
(`01`) is taken; song files (`02`) are refused by name so a mixed folder is noticed. Neutral has
no strong intensity. The two statements carry no emotion, so the text modality is a control.

Protocols are speaker-independent: `loso` (24 folds: test one actor, valid the next in sorted
order, wrapping; train the other 22) and `actors` (6 folds of 4 actors, 01-04, 05-08, ...: test
one group, valid the next, train the other 4 groups). The copy in ../shared/data holds one
byte-identical pair in Actor_07; ingest's duplicate check reports it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from affectflow.ingest.adapters._common import apply_split_fold, cyclic_folds, manifest_frame
from affectflow.ingest.manifest import ManifestError

DATASET = "ravdess"
EMOTION_CODES: dict[str, str] = {
    "01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry", "06": "fearful",
    "07": "disgust", "08": "surprised",
}
INTENSITY_CODES: dict[str, str] = {"01": "normal", "02": "strong"}
STATEMENTS: dict[str, str] = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
EMOTIONS: tuple[str, ...] = tuple(EMOTION_CODES.values())
LABELS: dict[str, dict[str, Any]] = {
    "emotion": {"type": "categorical", "classes": list(EMOTIONS)},
    "intensity": {"type": "categorical", "classes": list(INTENSITY_CODES.values())},
}
EXTRA_COLUMNS: tuple[str, ...] = ("emotion", "intensity", "statement", "repetition", "gender",
                                  "actor_group")
ACTORS_PER_GROUP = 4
AUDIO_SUFFIXES = (".wav", ".flac")
_NAME = re.compile(r"^(?P<modality>\d{2})-(?P<channel>\d{2})-(?P<emotion>\d{2})-(?P<intensity>\d{2})-"
                   r"(?P<statement>\d{2})-(?P<repetition>\d{2})-(?P<actor>\d{2})$")


def parse_name(path: Path) -> dict[str, Any]:
    """The fields of one RAVDESS speech file name; ManifestError naming the file and field."""
    match = _NAME.match(path.stem)
    if not match:
        raise ManifestError(f"{path}: file name does not match the RAVDESS pattern "
                            "MM-VV-EE-II-SS-RR-AA (seven two-digit fields)")
    if match["channel"] != "01":
        raise ManifestError(f"{path}: vocal channel {match['channel']!r} (2nd field) is not speech "
                            "(01); song files are not part of this adapter")
    for field, table in (("emotion", EMOTION_CODES), ("intensity", INTENSITY_CODES),
                         ("statement", STATEMENTS)):
        if match[field] not in table:
            raise ManifestError(f"{path}: {field} code {match[field]!r} is unknown; expected one of "
                                f"{', '.join(table)}")
    if match["emotion"] == "01" and match["intensity"] == "02":
        raise ManifestError(f"{path}: neutral has no strong intensity in RAVDESS")
    actor = match["actor"]
    if not 1 <= int(actor) <= 24:
        raise ManifestError(f"{path}: actor {actor!r} (7th field) is not one of 01..24")
    if path.parent.name not in (f"Actor_{actor}", ""):
        raise ManifestError(f"{path}: actor {actor} in the name but the folder is {path.parent.name}")
    return {"speaker": actor, "emotion": EMOTION_CODES[match["emotion"]],
            "intensity": INTENSITY_CODES[match["intensity"]], "statement": match["statement"],
            "repetition": int(match["repetition"]), "gender": "m" if int(actor) % 2 else "f",
            "actor_group": f"{(int(actor) - 1) // ACTORS_PER_GROUP + 1:d}"}


def build_manifest(root: Path) -> pd.DataFrame:
    """One row per `<root>/Actor_*/<name>.{wav,flac}`, sorted by name; `split` left empty (the
    protocols' fold columns carry it)."""
    root = Path(root)
    files = sorted(p for p in root.glob("Actor_*/*") if p.suffix.lower() in AUDIO_SUFFIXES
                   and not p.name.startswith("."))
    if not files:
        raise ManifestError(f"{root}: no Actor_*/*.wav or *.flac files (RAVDESS layout)")
    rows = []
    for path in files:
        info = parse_name(path)
        rows.append({"utt_id": path.stem, "dataset": DATASET, "dialogue_id": path.stem, "turn": 0,
                     "audio_path": str(path.resolve()), "transcript": STATEMENTS[info["statement"]],
                     "split": None, **info})
    return manifest_frame(rows, EXTRA_COLUMNS)


def loso_folds(manifest: pd.DataFrame) -> list[dict[str, Any]]:
    """Leave-one-actor-out: fold k tests actor k (sorted), validates on actor k+1 (wrapping)."""
    return cyclic_folds(manifest["speaker"].astype(str).unique().tolist(), "speaker")


def actor_group_folds(manifest: pd.DataFrame) -> list[dict[str, Any]]:
    """6 folds of 4 actors: fold k tests group k, validates on group k+1 (wrapping)."""
    return cyclic_folds(manifest["actor_group"].astype(str).unique().tolist(), "actor_group")


def fold_splits(manifest: pd.DataFrame, folds: list[dict[str, Any]]) -> list[pd.Series]:
    """The `split` column of each fold, for the adapters' protocol columns."""
    return [apply_split_fold(manifest, fold)["split"] for fold in folds]
