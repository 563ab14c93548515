"""Action-unit intensities (0-5) and presences from the face store's geometric measures.

These are **landmark-based estimates, not FACS coding**: each AU is a signed combination of the
face extractor's named geometric measures (`affectflow.features.extractors.face`, in
inter-ocular distances), taken relative to the speaker's own neutral level and scaled so that
`full_scale` of movement reads 5. What moves which measure (see the face module for the mesh
points):

| AU   | name                 | activation (change from neutral)            | full scale |
|------|----------------------|---------------------------------------------|-----------:|
| AU01 | inner brow raiser    | + inner_brow_raise                          | 0.12 |
| AU02 | outer brow raiser    | + outer_brow_raise                          | 0.12 |
| AU04 | brow lowerer         | − 0.5 inner_brow_raise − 0.5 outer_brow_raise | 0.10 |
| AU05 | upper lid raiser     | + eye_open (mean of both eyes)              | 0.06 |
| AU06 | cheek raiser         | + cheek_raise                               | 0.08 |
| AU07 | lid tightener        | − eye_open (blink frames excluded)          | 0.06 |
| AU09 | nose wrinkler        | − nose_length                               | 0.06 |
| AU10 | upper lip raiser     | − philtrum                                  | 0.06 |
| AU12 | lip corner puller    | + lip_corner_lift                           | 0.10 |
| AU14 | dimpler              | + mouth_width − lip_corner_lift             | 0.10 |
| AU15 | lip corner depressor | − lip_corner_lift                           | 0.08 |
| AU17 | chin raiser          | − chin_height                               | 0.08 |
| AU20 | lip stretcher        | + mouth_width − 0.5 lip_corner_lift − 0.5 lip_thickness | 0.10 |
| AU23 | lip tightener        | − lip_thickness                             | 0.04 |
| AU25 | lips part            | + mouth_open                                | 0.30 |
| AU26 | jaw drop             | + jaw_drop                                  | 0.25 |
| AU45 | blink                | eye closed: 5 · (1 − eye_open / the speaker's median), shown when it closes past `blink_ratio` |

Neutral: for each AU, the `baseline_percentile` (default 20) of its activation over all the
speaker's frames with a face. An AU moving both ways (the eyelids: AU05 up, AU07 down; the mouth
corners: AU12 and AU15) gets its own low percentile in each direction, so a speaker's ordinary face
sits between the two and reads 0 for both. This assumes a speaker is mostly at rest (as
OpenFace's person-specific normalisation does); a speaker who smiles in every frame reads as
smiling only when smiling more than usual. Presence (``_c``): intensity ≥ `presence_threshold`.
A neutral-labelled segment as the baseline is left out on purpose: the labels of test
utterances would shape their features.

Output columns follow OpenFace 2's layout (``AU01_r`` ... ``AU45_r``, then ``AU01_c`` ...
``AU45_c``), so a store imported from OpenFace CSVs and this one are read the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from affectflow.features.params import param


@dataclass(frozen=True)
class AUDef:
    """One AU: its FACS name, measure → coefficient of its activation, and the full-scale change."""

    name: str
    label: str
    terms: Mapping[str, float]
    full_scale: float


AU_DEFS: tuple[AUDef, ...] = (
    AUDef("AU01", "inner brow raiser", {"inner_brow_raise": 1.0}, 0.12),
    AUDef("AU02", "outer brow raiser", {"outer_brow_raise": 1.0}, 0.12),
    AUDef("AU04", "brow lowerer", {"inner_brow_raise": -0.5, "outer_brow_raise": -0.5}, 0.10),
    AUDef("AU05", "upper lid raiser", {"eye_open": 1.0}, 0.06),
    AUDef("AU06", "cheek raiser", {"cheek_raise": 1.0}, 0.08),
    AUDef("AU07", "lid tightener", {"eye_open": -1.0}, 0.06),
    AUDef("AU09", "nose wrinkler", {"nose_length": -1.0}, 0.06),
    AUDef("AU10", "upper lip raiser", {"philtrum": -1.0}, 0.06),
    AUDef("AU12", "lip corner puller", {"lip_corner_lift": 1.0}, 0.10),
    AUDef("AU14", "dimpler", {"mouth_width": 1.0, "lip_corner_lift": -1.0}, 0.10),
    AUDef("AU15", "lip corner depressor", {"lip_corner_lift": -1.0}, 0.08),
    AUDef("AU17", "chin raiser", {"chin_height": -1.0}, 0.08),
    AUDef("AU20", "lip stretcher", {"mouth_width": 1.0, "lip_corner_lift": -0.5, "lip_thickness": -0.5}, 0.10),
    AUDef("AU23", "lip tightener", {"lip_thickness": -1.0}, 0.04),
    AUDef("AU25", "lips part", {"mouth_open": 1.0}, 0.30),
    AUDef("AU26", "jaw drop", {"jaw_drop": 1.0}, 0.25),
    AUDef("AU45", "blink", {"eye_open": -1.0}, 0.0),  # scored by `blink`, not linearly
)
AU_NAMES: tuple[str, ...] = tuple(d.name for d in AU_DEFS)
AU_COLUMNS: tuple[str, ...] = tuple(f"{n}_r" for n in AU_NAMES) + tuple(f"{n}_c" for n in AU_NAMES)
MAX_INTENSITY = 5.0


@dataclass(frozen=True)
class AUConfig:
    """How measures become intensities and presences."""

    baseline_percentile: float = param(20.0, "Percentile of an AU's activation over the speaker's "
                                       "frames taken as the speaker's neutral level.", minimum=0, maximum=100)
    presence_threshold: float = param(1.5, "Intensity (0-5) at or above which an AU is present.",
                                      minimum=0, maximum=5)
    blink_ratio: float = param(0.5, "A blink (AU45) when the eyes are open less than this share of "
                                    "the speaker's median opening.", exclusiveMinimum=0, maximum=1)


def measures(values: np.ndarray, names: Sequence[str]) -> dict[str, np.ndarray]:
    """The named per-frame measures the AU definitions read, from face-store values (T, D)
    with column `names`; ``eye_open`` is the mean of the two eyes. KeyError names a missing one."""
    index = {name: i for i, name in enumerate(names)}
    wanted = {m for d in AU_DEFS for m in d.terms} - {"eye_open"}
    missing = sorted((wanted | {"eye_open_l", "eye_open_r"}) - set(index))
    if missing:
        raise KeyError(f"the face store lacks the measures {missing} (face extractor version 2 or later has them)")
    out = {m: np.asarray(values[:, index[m]], np.float64) for m in wanted}
    out["eye_open"] = (values[:, index["eye_open_l"]] + values[:, index["eye_open_r"]]) / 2.0
    return out


def activations(m: Mapping[str, np.ndarray]) -> np.ndarray:
    """(T, n_AU) raw activations Σ coef · measure, before the neutral level is taken off."""
    return np.stack([sum(c * m[k] for k, c in d.terms.items()) for d in AU_DEFS], axis=1)


@dataclass(frozen=True)
class Baseline:
    """A speaker's neutral level of each AU's activation, and the median eye opening."""

    neutral: np.ndarray  # (n_AU,)
    eye_median: float
    n_frames: int


def speaker_baseline(m: Mapping[str, np.ndarray], config: AUConfig) -> Baseline:
    """The baseline from all of one speaker's face frames (`m`: their measures, concatenated).

    Blink frames are left out of the eyelid AUs' neutral levels (a blink is not a lid position).
    """
    act = activations(m)
    eyes = np.asarray(m["eye_open"], np.float64)
    eye_median = float(np.median(eyes)) if len(eyes) else 0.0
    open_eyes = eyes >= config.blink_ratio * eye_median
    neutral = np.zeros(len(AU_DEFS))
    for j, d in enumerate(AU_DEFS):
        column = act[open_eyes, j] if "eye_open" in d.terms and open_eyes.any() else act[:, j]
        neutral[j] = np.percentile(column, config.baseline_percentile) if len(column) else 0.0
    return Baseline(neutral, eye_median, len(eyes))


def intensities(m: Mapping[str, np.ndarray], baseline: Baseline, config: AUConfig) -> tuple[np.ndarray, np.ndarray]:
    """(T, n_AU) intensities in [0, 5] and (T, n_AU) presences (0/1) of one utterance's frames."""
    act = activations(m) - baseline.neutral
    scale = np.array([d.full_scale for d in AU_DEFS])
    out = np.zeros_like(act)
    linear = scale > 0
    out[:, linear] = np.clip(act[:, linear] / scale[linear] * MAX_INTENSITY, 0.0, MAX_INTENSITY)
    eyes = np.asarray(m["eye_open"], np.float64)
    closed = 1.0 - eyes / baseline.eye_median if baseline.eye_median > 0 else np.zeros_like(eyes)
    blink = AU_NAMES.index("AU45")
    out[:, blink] = np.clip(closed, 0.0, 1.0) * MAX_INTENSITY
    present = out >= config.presence_threshold
    present[:, blink] = closed > 1.0 - config.blink_ratio
    blinking = present[:, blink]
    out[blinking, AU_NAMES.index("AU07")] = 0.0  # a closed eye is a blink, not a tightened lid
    present[blinking, AU_NAMES.index("AU07")] = False
    return out, present.astype(np.float64)
