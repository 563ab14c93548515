"""The actions stage: a corpus's face store → one store of action units and head gestures.

Why a corpus-level stage and not an extractor: an AU's neutral level is the speaker's, taken
over all of that speaker's frames (`affectflow.actions.au`), so one utterance's intensities
depend on the speaker's other utterances. The stage reads every face partition and the manifest
(for the speaker of each row; a row without a speaker is its own speaker) and writes one file
in the feature-store format (`affectflow.features.store`), extractor ``actions``:

- values (T, 34): ``AU01_r`` ... ``AU45_r`` then ``AU01_c`` ... ``AU45_c`` per face frame (the
  column layout of OpenFace 2, so an OpenFace import reads the same way); zeros in frames without
  a face, which ``x_face_found`` marks;
- ``x_nods`` and ``x_shakes``: (K, 2) start and end times (s) of each head gesture
  (`affectflow.actions.gestures`), and their counts in the pooled vector;
- pooled: each AU's mean intensity and share of frames present over the face frames, then the
  numbers of nods and shakes.

Rows the face extractor rejected (or that had no video) are carried over as rejected, with the
face store's reason.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from affectflow.actions.au import AU_COLUMNS, AU_NAMES, AUConfig, intensities, measures, speaker_baseline
from affectflow.actions.gestures import GestureConfig, detect
from affectflow.features.base import FeatureResult
from affectflow.features.params import config_schema, parse_config
from affectflow.features.store import Provenance, StoreRow, read_provenance, write_partition

log = logging.getLogger(__name__)
STAGE = "actions"
VERSION = "1"
POOLED_NAMES: tuple[str, ...] = (tuple(f"{n}_r_mean" for n in AU_NAMES) + tuple(f"{n}_c_share" for n in AU_NAMES)
                                 + ("nods", "shakes"))


@dataclass(frozen=True)
class ActionsConfig:
    au: AUConfig
    gestures: GestureConfig

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "ActionsConfig":
        """From ``{"au": {...}, "gestures": {...}}`` (ValueError naming a bad key)."""
        unknown = sorted(set(params) - {"au", "gestures"})
        if unknown:
            raise ValueError(f"actions: unknown keys {unknown}; known: au, gestures")
        return cls(parse_config(AUConfig, params.get("au", {}), "actions.au"),
                   parse_config(GestureConfig, params.get("gestures", {}), "actions.gestures"))


def actions_schema() -> dict[str, Any]:
    """The config schema's `actions` properties, from the config dataclasses (defaults filled)."""
    return {"au": {**config_schema(AUConfig, "Action-unit intensities and presences."), "default": {}},
            "gestures": {**config_schema(GestureConfig, "Head nods and shakes."), "default": {}}}


@dataclass
class _FaceRow:
    utt_id: str
    ok: bool
    reason: str | None
    input_sig: str
    times: np.ndarray
    values: np.ndarray
    found: np.ndarray


def read_face_rows(files: Sequence[str | os.PathLike[str]]) -> tuple[list[_FaceRow], list[str]]:
    """The face partitions' rows (no landmarks) and their value names (one layout for all)."""
    rows: list[_FaceRow] = []
    names: list[str] | None = None
    for path in files:
        provenance = read_provenance(path)
        if provenance.get("extractor") != "face":
            raise ValueError(f"{path}: a {provenance.get('extractor')!r} store, not a face store")
        if names is not None and list(provenance["value_names"]) != names:
            raise ValueError(f"{path}: face values differ from the other partitions' (mixed versions?)")
        names = list(provenance["value_names"])
        table = pq.read_table(path, columns=["utt_id", "ok", "reason", "input_sig", "times", "values",
                                             "x_face_found"]).to_pydict()
        for i, utt_id in enumerate(table["utt_id"]):
            ok = bool(table["ok"][i])
            values = np.asarray(table["values"][i] or [], np.float64).reshape(-1, len(names)) if ok \
                else np.zeros((0, len(names)))
            rows.append(_FaceRow(utt_id, ok, table["reason"][i], table["input_sig"][i],
                                 np.asarray(table["times"][i] or [], np.float64), values,
                                 np.asarray(table["x_face_found"][i] or [], bool)))
    return rows, names or []


def _events(gestures: list) -> np.ndarray:
    return np.array([[g.start_s, g.end_s] for g in gestures], np.float64).reshape(-1, 2)


def compute_actions(face_files: Sequence[str | os.PathLike[str]], manifest: str | os.PathLike[str],
                    output: str | os.PathLike[str], config: ActionsConfig, corpus: str = "") -> dict[str, Any]:
    """Write the actions store for the rows of `face_files`; returns a summary."""
    rows, names = read_face_rows(face_files)
    try:
        speakers = pd.read_parquet(manifest, columns=["utt_id", "speaker"]).set_index("utt_id")["speaker"]
    except (KeyError, ValueError):  # a manifest without a speaker column
        speakers = pd.Series(dtype=object)
    speaker_of = {r.utt_id: (str(speakers.get(r.utt_id) or "") or f"utt:{r.utt_id}") for r in rows}
    by_speaker: dict[str, list[dict[str, np.ndarray]]] = defaultdict(list)
    per_row: dict[str, dict[str, np.ndarray]] = {}
    for row in rows:
        if row.ok and row.found.any():
            m = measures(row.values[row.found], names)
            per_row[row.utt_id] = m
            by_speaker[speaker_of[row.utt_id]].append(m)
    baselines = {s: speaker_baseline({k: np.concatenate([m[k] for m in ms]) for k in ms[0]}, config.au)
                 for s, ms in by_speaker.items()}
    pitch, yaw = names.index("pitch"), names.index("yaw")
    out: list[StoreRow] = []
    for row in rows:
        if row.utt_id not in per_row:
            out.append(StoreRow(row.utt_id, row.input_sig, None, f"face: {row.reason or 'no face in any frame'}"))
            continue
        r, c = intensities(per_row[row.utt_id], baselines[speaker_of[row.utt_id]], config.au)
        values = np.zeros((len(row.times), len(AU_COLUMNS)))
        values[row.found] = np.concatenate([r, c], axis=1)
        nods = detect(row.times, row.values[:, pitch], config.gestures, row.found)
        shakes = detect(row.times, row.values[:, yaw], config.gestures, row.found)
        pooled = np.concatenate([r.mean(axis=0), c.mean(axis=0), [len(nods), len(shakes)]])
        out.append(StoreRow(row.utt_id, row.input_sig, FeatureResult(
            values=values, times=row.times, pooled=pooled,
            extra={"face_found": row.found, "nods": _events(nods), "shakes": _events(shakes)})))
    params = {"au": asdict(config.au), "gestures": asdict(config.gestures)}
    write_partition(output, out, Provenance(STAGE, VERSION, params, corpus, 0, AU_COLUMNS, POOLED_NAMES))
    summary = {"rows": len(out), "with_face": len(per_row), "rejected": len(out) - len(per_row),
               "speakers": {s: b.n_frames for s, b in sorted(baselines.items())}}
    log.info("actions: %s", summary)
    return summary
