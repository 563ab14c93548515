"""Import OpenFace 2 per-frame CSVs (``FeatureExtraction`` output) as a face feature store.

Why: many users already ran OpenFace over their corpus; importing its CSVs gives them AU
intensities and presences in our stores without re-running any face model.

Per frame the values are, in this order (absent groups are left out, so every file of one import
must have the same groups):

- ``success`` (0/1), ``confidence`` (0-1);
- ``pose_Rx_deg``, ``pose_Ry_deg``, ``pose_Rz_deg``: OpenFace's head rotation, radians in the CSV,
  **degrees** here;
- ``gaze_angle_x_deg``, ``gaze_angle_y_deg``: from ``gaze_angle_x/y`` when the CSV has them, else
  computed from the two eye vectors as OpenFace does (``atan2(g.x, -g.z)``, ``atan2(g.y, -g.z)`` of
  their mean); degrees;
- ``AUxx_r`` intensities (0-5), then ``AUxx_c`` presences (0/1), by AU number.

``times`` come from ``timestamp`` (seconds). Extras: ``face_found`` (bool, from ``success``) and
``landmarks`` (T, 136), the 68 2-D points interleaved ``x_0, y_0, x_1, y_1, ...`` in pixels.
Pooled: ``success_ratio`` (share of frames with a face), then the means over successful frames of
the other values. Column names may carry leading spaces (OpenFace writes ``", timestamp"``).
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from affectflow.features.base import ExtractionError, FeatureResult
from affectflow.features.store import Provenance, StoreRow, write_partition

OPENFACE_EXTRACTOR = "openface2"
IMPORTER_VERSION = "1"
_AU_COLUMN = re.compile(r"^AU(\d+)_([rc])$")
_N_LANDMARKS = 68


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def numeric_columns(frame: pd.DataFrame, columns: Sequence[str], path: str | os.PathLike[str],
                    lines: int | np.ndarray, allow_empty: bool = False) -> np.ndarray:
    """`columns` as a float64 (T, C) array; a non-numeric (or, unless `allow_empty`, empty) cell
    raises ValueError naming the file, the column and the line. `lines`: the file line of each
    row, or the line of the first row when rows are consecutive."""
    out = np.empty((len(frame), len(columns)), dtype=np.float64)
    for j, column in enumerate(columns):
        raw = frame[column]
        values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        bad = np.isnan(values) & raw.notna().to_numpy()
        if not allow_empty:
            bad |= raw.isna().to_numpy()
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            cell = raw.iloc[i]
            what = ("empty cell (truncated or malformed row?)" if pd.isna(cell)
                    else f"not a number: {str(cell)!r}")
            line = lines + i if isinstance(lines, int) else int(lines[i])
            raise ValueError(f"{path}: column {column!r}, line {line}: {what}")
        out[:, j] = values
    return out


def read_delimited(path: str | os.PathLike[str], **kwargs: Any) -> pd.DataFrame:
    """pandas.read_csv with every parse problem re-raised as ValueError naming the file; only
    empty cells are missing (text such as "n/a" or "nan" stays text, so it is reported)."""
    kwargs = {"keep_default_na": False, "na_values": [""], **kwargs}
    try:
        frame = pd.read_csv(path, skipinitialspace=True, low_memory=False, **kwargs)
    except FileNotFoundError:
        raise
    except pd.errors.EmptyDataError as exc:
        raise ValueError(f"{path}: empty file, no header row") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable table: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _select_face(frame: pd.DataFrame, path: str | os.PathLike[str],
                 face_id: int | None) -> pd.DataFrame:
    """Keep one face of a multi-face CSV: `face_id`, or the face with the most successful frames."""
    if "face_id" not in frame.columns:
        return frame
    ids = pd.to_numeric(frame["face_id"], errors="coerce")
    if face_id is None:
        if ids.nunique() <= 1:
            return frame
        success = pd.to_numeric(frame.get("success", 1), errors="coerce").fillna(0)
        face_id = int(success.groupby(ids).sum().idxmax())
    picked = frame[ids == face_id]
    if picked.empty:
        raise ValueError(f"{path}: column 'face_id' has no rows for face {face_id}")
    return picked


def parse_openface_csv(path: str | os.PathLike[str], face_id: int | None = None
                       ) -> tuple[FeatureResult, list[str], list[str]]:
    """(result, value names, pooled names) of one OpenFace 2 CSV; see the module docstring."""
    frame = _select_face(read_delimited(path), path, face_id)
    columns = set(frame.columns)
    for required in ("timestamp", "success", "confidence"):
        if required not in columns:
            raise ValueError(f"{path}: missing column {required!r} (is this an OpenFace 2 "
                             "FeatureExtraction CSV?)")
    aus = [(int(m.group(1)), m.group(2), c) for c in frame.columns if (m := _AU_COLUMN.match(c))]
    if not aus:
        raise ValueError(f"{path}: missing column 'AUxx_r'/'AUxx_c': no action-unit columns "
                         "(run OpenFace with -aus)")
    au_columns = ([c for _, kind, c in sorted(aus) if kind == "r"]
                  + [c for _, kind, c in sorted(aus) if kind == "c"])
    if frame.empty:
        raise ValueError(f"{path}: header only, no frame rows")
    first_line = 2 + frame.index.to_numpy()  # file line of each row (header is line 1)
    times = numeric_columns(frame, ["timestamp"], path, first_line)[:, 0]
    success = numeric_columns(frame, ["success"], path, first_line)[:, 0] > 0.5
    parts = [success[:, None].astype(np.float64),
             numeric_columns(frame, ["confidence"], path, first_line)]
    names = ["success", "confidence"]
    pose = ["pose_Rx", "pose_Ry", "pose_Rz"]
    if set(pose) <= columns:
        parts.append(np.degrees(numeric_columns(frame, pose, path, first_line)))
        names += [f"{c}_deg" for c in pose]
    eyes = [f"gaze_{e}_{a}" for e in (0, 1) for a in "xyz"]
    if {"gaze_angle_x", "gaze_angle_y"} <= columns:
        parts.append(np.degrees(numeric_columns(frame, ["gaze_angle_x", "gaze_angle_y"], path,
                                                first_line)))
        names += ["gaze_angle_x_deg", "gaze_angle_y_deg"]
    elif set(eyes) <= columns:
        gaze = numeric_columns(frame, eyes, path, first_line)
        mean = (gaze[:, :3] + gaze[:, 3:]) / 2.0
        angles = np.stack([np.arctan2(mean[:, 0], -mean[:, 2]),
                           np.arctan2(mean[:, 1], -mean[:, 2])], axis=1)
        parts.append(np.degrees(angles))
        names += ["gaze_angle_x_deg", "gaze_angle_y_deg"]
    parts.append(numeric_columns(frame, au_columns, path, first_line))
    names += au_columns
    values = np.concatenate(parts, axis=1)
    if not success.any():
        raise ExtractionError(f"OpenFace found no face in any of {len(values)} frames")
    pooled = np.concatenate([[success.mean()], values[success, 1:].mean(axis=0)])
    extra: dict[str, Any] = {"face_found": success}
    landmark_columns = [f"{axis}_{i}" for i in range(_N_LANDMARKS) for axis in "xy"]
    if set(landmark_columns) <= columns:
        extra["landmarks"] = numeric_columns(frame, landmark_columns, path, first_line)
    result = FeatureResult(values=values, pooled=pooled, times=times, extra=extra)
    return result, names, ["success_ratio", *[f"{n}_mean" for n in names[1:]]]


def read_openface_csv(path: str | os.PathLike[str], face_id: int | None = None) -> FeatureResult:
    """One OpenFace 2 CSV as a FeatureResult (values, times, pooled, face_found, landmarks).

    Raises ValueError naming the file, column and line for a malformed CSV, and ExtractionError
    when no frame has a face. Multi-face CSVs (``face_id`` column): `face_id`, or by default the
    face with the most successful frames.
    """
    return parse_openface_csv(path, face_id)[0]


def write_import_store(store_dir: str | os.PathLike[str], rows: Sequence[StoreRow],
                       provenance: Provenance) -> Path:
    """Write an imported store as ``<store_dir>/shard=0.parquet``; other shard files in the folder
    (left by an earlier, larger store) are removed so the store is exactly this import."""
    store_dir = Path(store_dir)
    store_dir.mkdir(parents=True, exist_ok=True)
    target = store_dir / "shard=0.parquet"
    for stale in store_dir.glob("shard=*.parquet"):
        if stale.name != target.name:
            stale.unlink()
    write_partition(target, rows, provenance)
    return target


def import_files(files_by_utt: Mapping[str, str | os.PathLike[str]], parse: Any, extractor: str,
                 fmt: str, store_dir: str | os.PathLike[str], corpus: str,
                 params: Mapping[str, Any] | None = None) -> Path:
    """Shared import loop: parse each file (`parse(path) -> (result, names, pooled_names)`),
    record files without a usable face as rejected rows, check that all files give the same
    value names, and write the store with a provenance listing each source and its sha256."""
    rows: list[StoreRow] = []
    sources: dict[str, dict[str, str]] = {}
    names: list[str] | None = None
    pooled_names: list[str] = []
    first: str | os.PathLike[str] = ""
    for utt_id, path in files_by_utt.items():
        digest = file_sha256(path)
        sources[str(utt_id)] = {"path": str(Path(path).resolve()), "sha256": digest}
        signature = hashlib.sha256(f"{extractor}|{IMPORTER_VERSION}|{digest}".encode()).hexdigest()
        try:
            result, file_names, file_pooled = parse(path)
        except ExtractionError as exc:
            rows.append(StoreRow(str(utt_id), signature[:20], reason=exc.reason))
            continue
        if names is None:
            names, pooled_names, first = file_names, file_pooled, path
        elif file_names != names:
            raise ValueError(f"{path}: its columns give values {file_names}, but {first} gave "
                             f"{names}; import files of one layout together")
        rows.append(StoreRow(str(utt_id), signature[:20], result=result))
    provenance = Provenance(
        extractor=extractor, version=IMPORTER_VERSION, corpus=corpus, shard=0,
        value_names=tuple(names or ()),
        params={"imported": True, "format": fmt, "pooled_names": pooled_names,
                "sources": sources, **dict(params or {})})
    return write_import_store(store_dir, rows, provenance)


def import_openface(csv_by_utt: Mapping[str, str | os.PathLike[str]],
                    store_dir: str | os.PathLike[str], corpus: str,
                    face_id: int | None = None) -> Path:
    """Import OpenFace 2 CSVs (utt_id → CSV path) as the ``openface2`` face store.

    Writes ``<store_dir>/shard=0.parquet`` and returns its path. Utterances where OpenFace found no
    face become rejected rows (``ok`` false, with the reason); a malformed CSV raises ValueError
    naming the file, column and line. The provenance records that the store was imported, each
    source path and its sha256.
    """
    return import_files(csv_by_utt, lambda p: parse_openface_csv(p, face_id), OPENFACE_EXTRACTOR,
                        "OpenFace 2 FeatureExtraction CSV", store_dir, corpus,
                        {"face_id": face_id})
