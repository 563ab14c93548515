"""Import iMotions exports of Emotient FACET (the face features behind CMU-MOSI/MOSEI).

Why: FACET is the face feature set most multimodal-sentiment baselines were trained on; users
who licensed iMotions have these exports and want them next to our own features.

The export (v5, tab-separated, CRLF) starts with ``#Key : value`` metadata lines (study, date,
iMotions version, test run date) and a blank line, then one table in which rows from every
sensor are interleaved: ``EventSource`` says which sensor a row comes from (``ET`` eye tracker,
``Emotient FACET``, or both ``ET|Emotient FACET``). On eye-tracker rows the FACET columns repeat
the last FACET frame, so only rows whose source includes FACET are kept: one row per video frame.
A frame without a face has ``NoOfFaces`` = -1 and empty FACET cells.

Per frame the values are, in this order: ``face_found`` (0/1), ``yaw_deg``, ``pitch_deg``,
``roll_deg`` (FACET's head pose), the emotion evidences (``Joy Evidence``, ``Anger Evidence``, ...
as in the file, log-odds) and the AU evidences (``AU1 Evidence`` ...). Intensity columns are left
out (a thresholded transform of the evidences). Frames without a face are zeros. ``times``: the
``Timestamp`` column (ms from the recording start) in seconds, or another time column in ms.
Extras: ``face_found`` and, when present, ``landmarks`` (T, 2K): FACET's K tracked points
(eye corners, pupils, nose tip, ...) as x, y pixels. Pooled: ``face_found_ratio``, then means
over the frames with a face.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from affectflow.features.base import ExtractionError, FeatureResult
from affectflow.formats.openface import import_files, numeric_columns, read_delimited

FACET_EXTRACTOR = "facet"
_POSE = [("Yaw Degrees", "yaw_deg"), ("Pitch Degrees", "pitch_deg"), ("Roll Degrees", "roll_deg")]
_AU_EVIDENCE = re.compile(r"^AU(\d+) Evidence$")
_POINT = re.compile(r"^(.+) X$")
_NOT_POINTS = {"FaceRect", "Camera Left", "Camera Right", "Gaze", "Fixation"}


def read_header(path: str | os.PathLike[str], time_column: str = "Timestamp"
                ) -> tuple[dict[str, str], int, str]:
    """(metadata from the ``#Key : value`` lines, 0-based index of the table's header line,
    field separator). The header is the first line that has `time_column` as a field."""
    metadata: dict[str, str] = {}
    with open(path, encoding="utf-8-sig", errors="replace", newline="") as handle:
        for index, line in enumerate(handle):
            text = line.rstrip("\r\n")
            stripped = text.strip("\t ,;")
            if stripped.startswith("#"):
                key, _, value = stripped[1:].partition(":")
                metadata[key.strip()] = value.strip()
                continue
            separator = "\t" if "\t" in text else ","
            if time_column in [f.strip() for f in text.split(separator)]:
                return metadata, index, separator
            if index > 200:
                break
    raise ValueError(f"{path}: missing column {time_column!r}: no table header found "
                     "(is this an iMotions FACET export?)")


def _names(columns: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(emotion evidence columns, AU evidence columns by AU number, landmark point names)."""
    emotions = [c for c in columns if c.endswith(" Evidence") and not c.startswith("AU")]
    aus = sorted((int(m.group(1)), c) for c in columns if (m := _AU_EVIDENCE.match(c)))
    points = [m.group(1) for c in columns if (m := _POINT.match(c))
              and m.group(1) not in _NOT_POINTS and f"{m.group(1)} Y" in columns]
    return emotions, [c for _, c in aus], points


def parse_facet_export(path: str | os.PathLike[str], time_column: str = "Timestamp",
                       stimulus: str | None = None
                       ) -> tuple[FeatureResult, list[str], list[str]]:
    """(result, value names, pooled names) of one iMotions FACET export; see the module docs."""
    metadata, header_index, separator = read_header(path, time_column)
    frame = read_delimited(path, sep=separator, skiprows=header_index, encoding="utf-8-sig",
                           dtype=str)
    first_line = header_index + 2  # 1-based line of the first data row
    frame = frame.reset_index(names="_row")
    columns = list(frame.columns)
    for required in ("EventSource", "NoOfFaces", time_column):
        if required not in columns:
            raise ValueError(f"{path}: missing column {required!r}")
    emotions, aus, points = _names(columns)
    if not aus and not emotions:
        raise ValueError(f"{path}: missing column 'AUx Evidence': no FACET evidence columns")
    missing_pose = [c for c, _ in _POSE if c not in columns]
    if missing_pose:
        raise ValueError(f"{path}: missing column {missing_pose[0]!r}")
    facet = frame["EventSource"].fillna("").str.contains("FACET", case=False)
    if stimulus is not None:
        if "StimulusName" not in columns:
            raise ValueError(f"{path}: missing column 'StimulusName' (needed for stimulus=)")
        facet &= frame["StimulusName"].fillna("") == stimulus
    facet &= frame[time_column].notna()  # e.g. MediaTime is empty before a video starts
    frame = frame[facet]
    if frame.empty:
        raise ValueError(f"{path}: column 'EventSource': no Emotient FACET rows with a time"
                         + (f" for stimulus {stimulus!r}" if stimulus else ""))
    lines = first_line + frame["_row"].to_numpy()

    def numbers(cols: list[str], allow_empty: bool = False) -> np.ndarray:
        return numeric_columns(frame, cols, path, lines, allow_empty)

    times = numbers([time_column])[:, 0] / 1000.0
    found = numbers(["NoOfFaces"])[:, 0] > 0
    evidence_columns = [c for c, _ in _POSE] + emotions + aus
    evidence = numbers(evidence_columns, allow_empty=True)
    empty = np.isnan(evidence) & found[:, None]
    if empty.any():
        i = int(np.flatnonzero(empty.any(axis=1))[0])  # first bad row; its first empty column
        j = min(np.flatnonzero(empty[i]), key=lambda k: columns.index(evidence_columns[k]))
        raise ValueError(f"{path}: column {evidence_columns[j]!r}, line {int(lines[i])}: empty "
                         "cell in a frame with a face (truncated or malformed row?)")
    evidence[~found] = 0.0
    values = np.concatenate([found[:, None].astype(np.float64), evidence], axis=1)
    names = ["face_found", *[n for _, n in _POSE], *emotions, *aus]
    if not found.any():
        raise ExtractionError(f"FACET found no face in any of {len(values)} frames")
    pooled = np.concatenate([[found.mean()], values[found, 1:].mean(axis=0)])
    extra: dict[str, Any] = {"face_found": found}
    if points:
        xy = numbers([f"{p} {a}" for p in points for a in "XY"], allow_empty=True)
        extra["landmarks"] = np.where(found[:, None], np.nan_to_num(xy), 0.0)
    result = FeatureResult(values=values, pooled=pooled, times=times, extra=extra)
    return result, names, ["face_found_ratio", *[f"{n}_mean" for n in names[1:]]]


def read_facet_export(path: str | os.PathLike[str], time_column: str = "Timestamp",
                      stimulus: str | None = None) -> FeatureResult:
    """One iMotions FACET export as a FeatureResult, one step per FACET frame.

    `time_column`: a column in milliseconds (``Timestamp``: from the recording start;
    ``MediaTime``: from the start of a video stimulus); frames with an empty time cell are left
    out. `stimulus`: keep only the frames shown during this ``StimulusName``. Malformed files
    raise ValueError naming file, column and line; a file with no face in any frame raises
    ExtractionError.
    """
    return parse_facet_export(path, time_column, stimulus)[0]


def import_facet(export_by_utt: Mapping[str, str | os.PathLike[str]],
                 store_dir: str | os.PathLike[str], corpus: str,
                 time_column: str = "Timestamp", stimulus: str | None = None) -> Path:
    """Import iMotions FACET exports (utt_id → file) as the ``facet`` store.

    Writes ``<store_dir>/shard=0.parquet`` and returns its path; files without any face become
    rejected rows. The provenance records the import, each source path, its sha256 and header.
    """
    headers = {str(u): read_header(p, time_column)[0] for u, p in export_by_utt.items()}
    return import_files(export_by_utt, lambda p: parse_facet_export(p, time_column, stimulus),
                        FACET_EXTRACTOR, "iMotions Emotient FACET export", store_dir, corpus,
                        {"time_column": time_column, "stimulus": stimulus, "headers": headers})
