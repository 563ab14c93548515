"""A corpus made of several datasets: their adapters' rows, one label mapped onto shared classes.

Why: some models are meant to be trained across datasets, e.g. the tone-of-voice scores that
stand in for Vokaturi (paper 003), trained on EmoDB and RAVDESS together. Each part names an
adapter, the label column to read and a map from its classes to the shared ones; rows whose class
is not in the map are left out (and counted). Utterance and speaker ids are prefixed with the
dataset (``emodb_03a01Fa``, speaker ``emodb_03``) so ids from two datasets never collide.

Splits, all speaker-independent and deterministic (speakers in sorted order per dataset):

- ``split``: per dataset, every fifth speaker (the 1st, 6th, ...) is test, the next one valid,
  the rest train: the protocol a model applied elsewhere is trained with;
- ``split_corpus_<k>``: dataset k is test (all of it), the other datasets train, with their
  every-fifth speakers (the 2nd, 7th, ...) as valid: cross-corpus accuracy, one fold per dataset.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import pandas as pd

from affectflow.atomic import atomic_path

log = logging.getLogger(__name__)
KEEP = ("utt_id", "dataset", "speaker", "dialogue_id", "turn", "audio_path", "video_path", "start_s", "end_s",
        "transcript", "gender")


@dataclass(frozen=True)
class UnionPart:
    adapter: Mapping[str, Any]  # {name, root, options}
    label: str
    map: Mapping[str, str]


def _speaker_roles(speakers: Sequence[str]) -> dict[str, int]:
    """speaker → its position mod 5 in sorted order (0: test in `split`, 1: valid)."""
    return {s: i % 5 for i, s in enumerate(sorted(set(speakers)))}


def union_frame(frames: Sequence[pd.DataFrame], parts: Sequence[UnionPart], label: str) -> tuple[pd.DataFrame, dict]:
    """The union of the parts' adapter manifests (`frames`, in order), and what was left out."""
    out, left_out = [], {}
    for k, (frame, part) in enumerate(zip(frames, parts)):
        name = str(part.adapter["name"])
        if part.label not in frame.columns:
            raise ValueError(f"union part {k} ({name}): no label column {part.label!r}; "
                             f"columns: {', '.join(map(str, frame.columns))}")
        mapped = frame[part.label].map(lambda v: part.map.get(str(v)))
        left_out[name] = frame.loc[mapped.isna(), part.label].astype(str).value_counts().to_dict()
        rows = frame[mapped.notna()].copy()
        rows = rows[[c for c in KEEP if c in rows.columns]].assign(**{label: mapped[mapped.notna()]})
        rows["utt_id"] = f"{name}_" + rows["utt_id"].astype(str)
        rows["dialogue_id"] = f"{name}_" + rows.get("dialogue_id", rows["utt_id"]).astype(str)
        rows["speaker"] = f"{name}_" + rows["speaker"].astype(str)
        rows["dataset"] = name
        roles = rows["speaker"].map(_speaker_roles(rows["speaker"]))
        rows["split"] = roles.map({0: "test", 1: "valid"}).fillna("train")
        rows["_part"] = k
        rows["_role"] = roles
        out.append(rows)
    union = pd.concat(out, ignore_index=True)
    for k in range(len(parts)):
        union[f"split_corpus_{k:02d}"] = "train"
        union.loc[(union["_part"] != k) & (union["_role"] == 1), f"split_corpus_{k:02d}"] = "valid"
        union.loc[union["_part"] == k, f"split_corpus_{k:02d}"] = "test"
    return union.drop(columns=["_part", "_role"]), left_out


def write_union_manifest(parts: Sequence[UnionPart], label: str, out_csv: str | os.PathLike[str]) -> dict:
    """Build each part's adapter manifest, unite them, write the CSV; returns a summary."""
    from affectflow.ingest.adapters import build_adapter_manifest

    frames = [build_adapter_manifest(p.adapter["name"], p.adapter["root"], **p.adapter.get("options", {}))
              for p in parts]
    union, left_out = union_frame(frames, parts, label)
    with atomic_path(out_csv) as tmp:
        union.to_csv(tmp, index=False)
    summary = {"rows": len(union), "by_dataset": union["dataset"].value_counts().to_dict(),
               "classes": union[label].value_counts().to_dict(), "left_out": left_out}
    log.info("union manifest %s: %s", out_csv, summary)
    return summary
