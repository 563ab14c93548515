"""The narrative stage: manifest + actions store + prosody table → MONAH narratives per utterance.

For each manifest row it gathers one `TurnEvidence` (`affectflow.narrative.rules`) and weaves
the four families. What each family can say depends on what the corpus has: action phrases need
an actions store (ours, or any store with ``AUxx_c`` value columns and an ``x_face_found``
extra, such as an OpenFace import), prosody phrases a prosody table (`affectflow.prosody`);
without them ``va`` / ``vp`` / ``vpa`` equal ``v`` for that row, and the summary counts the rows
each evidence reached. Tone-of-voice phrases need a tone table (`affectflow.tone`: the per-speaker
z of four tone scores).

Outputs:
- ``narratives.parquet``: utt_id, family, text, phrases (JSON: each phrase's words, part and the
  evidence it came from), one row per (utterance, family);
- ``manifest_<family>.csv`` per family: the corpus's manifest with the narrative as the
  transcript (word times dropped: they time the original words), so a config corpus
  ``{narrative: {from: <corpus>, family: vpa}}`` trains any text extractor and model on it.

The role word is the speaker's name where the speaker id is a name (letters, spaces, dots,
apostrophes, hyphens: "Chandler", "SHELDON" → "Sheldon"), else `roles` from the config (speaker
id → "The woman"...), else `default_role`.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from affectflow.atomic import atomic_path
from affectflow.features.params import param, parse_config
from affectflow.features.store import read_provenance
from affectflow.narrative.aux import aux_targets
from affectflow.narrative.rules import FAMILIES, TONES, NarrativeConfig, TurnEvidence, weave

log = logging.getLogger(__name__)
_NAME = re.compile(r"^[A-Za-z][A-Za-z .'-]*$")
MANIFEST_KEEP = ("utt_id", "dataset", "speaker", "dialogue_id", "turn", "audio_path", "video_path",
                 "start_s", "end_s", "context", "split")


@dataclass(frozen=True)
class StageConfig:
    """The role words; the rules' thresholds are `NarrativeConfig`."""

    default_role: str = param("The speaker", "Role word for a speaker whose id is not a name.")
    roles: dict[str, str] = param({}, "Speaker id → role word (e.g. s01: The woman), over the name rule.")
    aux_primary: str = param("", "A label column: the narrative manifests then carry HAN-ROCK's auxiliary "
                                 "targets for it (AUs and tones as percentile ranks, its label 1-4 turns "
                                 "back and ahead; README).")


def role_of(speaker: str, config: StageConfig) -> str:
    if speaker in config.roles:
        return str(config.roles[speaker])
    if speaker and _NAME.match(speaker):
        return speaker.title() if speaker.isupper() else speaker
    return config.default_role


def read_actions(path: str | os.PathLike[str]) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray], int, dict[str, float]]]:
    """utt_id → (face frame times, AU name → presence per face frame, number of nods, AU name →
    mean intensity over the face frames)."""
    names = list(read_provenance(path)["value_names"])
    present = {n[:-2]: i for i, n in enumerate(names) if n.endswith("_c")}
    intensity = {n[:-2]: i for i, n in enumerate(names) if n.endswith("_r")}
    columns = ["utt_id", "ok", "times", "values", "x_face_found"]
    schema = pq.read_schema(path).names
    table = pq.read_table(path, columns=columns + (["x_nods"] if "x_nods" in schema else [])).to_pydict()
    out = {}
    for i, utt_id in enumerate(table["utt_id"]):
        if not table["ok"][i]:
            continue
        found = np.asarray(table["x_face_found"][i], bool)
        values = np.asarray(table["values"][i], np.float64).reshape(len(found), len(names))[found]
        nods = len(table["x_nods"][i] or []) if "x_nods" in table else 0
        means = {au: float(values[:, j].mean()) if len(values) else float("nan") for au, j in intensity.items()}
        out[utt_id] = (np.asarray(table["times"][i], np.float64)[found],
                       {au: values[:, j] > 0.5 for au, j in present.items()}, nods, means)
    return out


def _value(row: Mapping[str, Any], key: str) -> float | None:
    value = row.get(key)
    return None if value is None or pd.isna(value) else float(value)


def evidence(row: Mapping[str, Any], role: str, actions: Mapping[str, Any] | None,
             prosody: Mapping[str, Any] | None, tone: Mapping[str, Any] | None = None) -> TurnEvidence:
    """One row's evidence from what the stores hold for it (None: that store lacks the row)."""
    transcript = row.get("transcript")
    kwargs: dict[str, Any] = {}
    if actions is not None:
        times, present, nods, _ = actions
        kwargs.update(frame_times=times, au_present=present, nods=nods)
    if prosody is not None:
        kwargs.update(pause_ms=_value(prosody, "pause_ms"), pause_z=_value(prosody, "pause_z"),
                      rate_z=_value(prosody, "rate_z"))
    if tone is not None:
        kwargs["tone_z"] = {t: z for t in TONES if (z := _value(tone, f"{t}_z")) is not None}
    return TurnEvidence(role, transcript if isinstance(transcript, str) else "", **kwargs)


def write_narratives(manifest_path: str | os.PathLike[str], out_dir: str | os.PathLike[str],
                     rules: NarrativeConfig, config: StageConfig, actions: str | None = None,
                     prosody: str | None = None, tone: str | None = None,
                     labels: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Write narratives.parquet and manifest_<family>.csv into `out_dir`; returns a summary.
    `labels`: the corpus's label types (the auxiliary targets' scale comes from the primary's)."""
    manifest = pd.read_parquet(manifest_path)
    acts = read_actions(actions) if actions else {}
    pros = pd.read_parquet(prosody).set_index("utt_id").to_dict("index") if prosody else {}
    tones = pd.read_parquet(tone).set_index("utt_id").to_dict("index") if tone else {}
    records, texts = [], {f: [] for f in FAMILIES}
    reached = {"actions": 0, "prosody": 0, "tone": 0, "phrases": {f: 0 for f in FAMILIES}}
    for row in manifest.to_dict("records"):
        utt_id = str(row["utt_id"])
        role = role_of(str(row.get("speaker") or ""), config)
        turn = evidence(row, role, acts.get(utt_id), pros.get(utt_id), tones.get(utt_id))
        reached["actions"] += utt_id in acts
        reached["prosody"] += utt_id in pros
        reached["tone"] += utt_id in tones
        for family in FAMILIES:
            narrative = weave(turn, family, rules)
            reached["phrases"][family] += len(narrative.phrases)
            texts[family].append(narrative.text)
            records.append({"utt_id": utt_id, "family": family, "text": narrative.text,
                            "phrases": json.dumps([asdict(p) for p in narrative.phrases], ensure_ascii=False)})
    os.makedirs(out_dir, exist_ok=True)
    with atomic_path(os.path.join(out_dir, "narratives.parquet")) as tmp:
        pd.DataFrame(records).to_parquet(tmp, index=False)
    label_columns = [c for c in manifest.columns if c not in MANIFEST_KEEP and c not in ("transcript", "words", "shard")]
    extra = pd.DataFrame(index=manifest.index)
    if config.aux_primary:
        spec = dict(labels or {}).get(config.aux_primary, {})
        extra = aux_targets(manifest, config.aux_primary, spec, {u: a[3] for u, a in acts.items()}, tones, list(TONES))
    for family in FAMILIES:
        frame = pd.concat([manifest[[c for c in MANIFEST_KEEP if c in manifest.columns] + label_columns], extra], axis=1)
        frame.insert(frame.columns.get_loc("utt_id") + 1, "transcript", texts[family])
        with atomic_path(os.path.join(out_dir, f"manifest_{family}.csv")) as tmp:
            frame.to_csv(tmp, index=False)
    summary = {"rows": len(manifest), "with_actions": reached["actions"], "with_prosody": reached["prosody"],
               "with_tone": reached["tone"], "phrases": reached["phrases"]}
    log.info("narratives: %s", summary)
    return summary


def configs_from(params: Mapping[str, Any]) -> tuple[NarrativeConfig, StageConfig]:
    """The rules' and the stage's configs from the config's `narrative` block."""
    rule_keys = set(NarrativeConfig.__dataclass_fields__)
    return (parse_config(NarrativeConfig, {k: v for k, v in params.items() if k in rule_keys}, "narrative"),
            parse_config(StageConfig, {k: v for k, v in params.items() if k not in rule_keys}, "narrative"))

