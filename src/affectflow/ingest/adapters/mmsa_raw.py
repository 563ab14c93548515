"""The MMSA-FET raw layout (CMU-MOSI, CMU-MOSEI, CH-SIMS): `label.csv` + `Raw/<video>/<clip>.mp4`.

`label.csv` columns: video_id, clip_id, text, label, label_T, label_A, label_V (CH-SIMS only; empty
elsewhere), annotation (Positive/Neutral/Negative), mode (train/valid/test). Ids are read as text
so CH-SIMS's zero-padded clip ids ("0001") survive. Output: `utt_id` = `<video_id>_<clip_id>`,
`video_path` = the clip (audio is taken from it downstream), `transcript` = text, `sentiment` =
label (MOSI/MOSEI in [-3, 3], CH-SIMS in [-1, 1]), `sentiment_T/A/V` when the file has those
columns, `sentiment_class` = annotation in lower case, `split` from mode. There is no speaker
annotation: `speaker` and `dialogue_id` are the video id (one YouTube video = one speaker in
MOSI/MOSEI; CH-SIMS clips of a film scene may show several people), `turn` the clip's number
within its video (clip_id as an integer when numeric, else its order).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd

from affectflow.ingest.adapters._common import manifest_frame, read_csv_text, require_columns
from affectflow.ingest.manifest import ManifestError

LABELS: dict[str, dict[str, Any]] = {
    "sentiment": {"type": "regression", "min": -3, "max": 3},
    "sentiment_class": {"type": "categorical", "classes": ["negative", "neutral", "positive"]},
}
MODES: dict[str, str] = {"train": "train", "valid": "valid", "test": "test"}
REQUIRED = ("video_id", "clip_id", "text", "label", "mode")
UNIMODAL = {"label_T": "sentiment_T", "label_A": "sentiment_A", "label_V": "sentiment_V"}
ON_MISSING = ("error", "drop", "keep")


def _float(text: str, where: str, field: str) -> float:
    if text.strip() == "":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise ManifestError(f"{where}: {field}: not a number: {text!r}") from None
    if not math.isfinite(value):
        raise ManifestError(f"{where}: {field}: not a finite number: {text!r}")
    return value


def build_manifest(root: Path, dataset: str | None = None, label_file: str = "label.csv",
                   raw_dir: str = "Raw", extension: str = ".mp4",
                   on_missing: str = "error") -> pd.DataFrame:
    """Rows of `<root>/<label_file>`. A clip whose video is missing: `on_missing` = "error"
    (ManifestError naming it), "drop" (row left out) or "keep" (text-only row)."""
    root = Path(root)
    if on_missing not in ON_MISSING:
        raise ManifestError(f"on_missing must be one of {', '.join(ON_MISSING)}, got {on_missing!r}")
    path = root / label_file
    if not path.is_file():
        raise ManifestError(f"{path}: MMSA label file not found")
    table = read_csv_text(path)
    require_columns(table, path, REQUIRED)
    unimodal = {src: dst for src, dst in UNIMODAL.items() if src in table.columns}
    name = dataset or root.name.lower()
    rows: list[dict[str, Any]] = []
    first: dict[str, int] = {}
    for index, record in enumerate(table.to_dict("records")):
        line = index + 2  # the header is line 1
        where = f"{path}, row {line}"
        video_id, clip_id = record["video_id"].strip(), record["clip_id"].strip()
        for field, value in (("video_id", video_id), ("clip_id", clip_id)):
            if not value or "/" in value or "\\" in value or value in (".", ".."):
                raise ManifestError(f"{where}: {field}: empty or not a plain name: {value!r}")
        utt_id = f"{video_id}_{clip_id}"
        if utt_id in first:
            raise ManifestError(f"{where}: video_id/clip_id: utt_id {utt_id!r} repeats row "
                                f"{first[utt_id]}")
        first[utt_id] = line
        mode = record["mode"].strip().lower()
        if mode not in MODES:
            raise ManifestError(f"{where}: mode: unknown split {record['mode']!r}; "
                                f"expected one of {', '.join(MODES)}")
        label = _float(record["label"], where, "label")
        if math.isnan(label):
            raise ManifestError(f"{where}: label: empty")
        video = root / raw_dir / video_id / f"{clip_id}{extension}"
        if not video.is_file():
            if on_missing == "error":
                raise ManifestError(f"{where}: video file not found: {video}")
            if on_missing == "drop":
                continue
        annotation = record.get("annotation", "").strip()
        row = {"utt_id": utt_id, "dataset": name, "speaker": video_id, "dialogue_id": video_id,
               "turn": int(clip_id) if clip_id.isdigit() else None,
               "video_path": str(video.resolve()) if video.is_file() else None,
               "transcript": record["text"].strip(), "split": MODES[mode], "sentiment": label,
               "sentiment_class": annotation.lower() if annotation.lower() in
               ("negative", "neutral", "positive") else None,
               "annotation": annotation or None, "video_id": video_id, "clip_id": clip_id}
        for src, dst in unimodal.items():
            row[dst] = _float(record[src], where, src)
        rows.append(row)
    if not rows:
        raise ManifestError(f"{path}: no usable rows")
    extra = ["sentiment", *unimodal.values(), "sentiment_class", "annotation", "video_id",
             "clip_id"]
    manifest = manifest_frame(rows, extra)
    if manifest["turn"].isna().any():  # non-numeric clip ids: number clips in file order
        manifest["turn"] = manifest.groupby("dialogue_id").cumcount()
    manifest["turn"] = manifest["turn"].astype(int)
    return manifest
