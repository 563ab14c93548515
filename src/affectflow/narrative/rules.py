"""MONAH narrative rules (paper 003; Kim et al. 2021): one talk-turn's evidence → its narrative.

"The woman raised chin. The woman sadly and slowly said no." A narrative is the verbatim turn
with nonverbal phrases woven in, in four families: verbatim only (``v``), + prosody (``vp``:
pause before the turn, tone of voice, speech rate), + actions (``va``: smile, positive face,
action units, head nods), + both (``vpa``). The rules follow MONAH's public code
(../shared/docs/RESEARCH-NOTES.md), with their thresholds as `NarrativeConfig` fields:

- smile: AU06 and AU12 present together for at least `smile_min_s` (0.5 s) without a break;
- positive expression: AU12 present in every frame of the turn;
- AU05 / AU17 / AU20 / AU25 ("raised upper lid", "raised chin", "stretched lip", "dropped jaw"):
  present in every frame of the turn;
- nodded: at least one head nod in the turn (the head-gesture detector's count);
- tone: a tone score's per-speaker z above `tone_z` (2): "happily", "sadly", "angrily",
  "fearfully"; when several are, the highest z is said;
- pause: `pause_min_ms` (200 ms) or more before the turn, spelled in hundreds of ms ("two" ...
  "twelve", then "more than twelve"), qualified by its z bin: < 0 "a short", [0, 1) "a slightly
  long", [1, 2) "a long", ≥ 2 "a significantly long" delay;
- speech rate z: ≤ −2 "very slowly", (−2, −1] "slowly", [1, 2) "quickly", ≥ 2 "very quickly";
  nothing in between.

Unlike MONAH, which lower-cases the turn and drops its punctuation, the turn's words are kept as
transcribed (the text encoders read case and punctuation), and the action phrases are joined as
a list ("smiled, raised chin and dropped jaw"). Every phrase keeps the evidence it came from, so
a narrative can be audited against its features. Pure functions over plain arrays: the stage
that reads the face, prosody, tone and transcript stores builds a `TurnEvidence` per utterance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from affectflow.features.params import param

FAMILIES = ("v", "vp", "va", "vpa")
TONES = {"happiness": "happily", "sadness": "sadly", "anger": "angrily", "fear": "fearfully"}
AU_ACTIONS = {"AU05": "raised upper lid", "AU17": "raised chin", "AU20": "stretched lip",
              "AU25": "dropped jaw"}
NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six", 7: "seven", 8: "eight",
           9: "nine", 10: "ten", 11: "eleven", 12: "twelve"}


@dataclass(frozen=True)
class NarrativeConfig:
    """Thresholds of the narrative rules (defaults: MONAH's)."""

    smile_min_s: float = param(0.5, "Shortest unbroken run of AU06 and AU12 together that is a smile (s).",
                               minimum=0)
    tone_z: float = param(2.0, "A tone is said when its per-speaker z-score is above this.")
    pause_min_ms: float = param(200.0, "Shortest pause before a turn that is said (ms).", minimum=0)
    rate_slow_z: float = param(-1.0, "Speech-rate z at or below which the turn is said slowly.")
    rate_very_slow_z: float = param(-2.0, "Speech-rate z at or below which it is very slowly.")
    rate_fast_z: float = param(1.0, "Speech-rate z at or above which the turn is said quickly.")
    rate_very_fast_z: float = param(2.0, "Speech-rate z at or above which it is very quickly.")


@dataclass(frozen=True)
class TurnEvidence:
    """What the stores say about one talk-turn. Missing evidence (None, empty) gives no phrase.

    `au_present`: AU name (``AU06``...) → bool per frame of the turn at `frame_times` (s);
    frames without a face are left out by the caller. `tone_z`: tone name → per-speaker z.
    """

    role: str  # "the woman", "the man", or the speaker's name
    transcript: str
    frame_times: np.ndarray = field(default_factory=lambda: np.zeros(0))
    au_present: Mapping[str, np.ndarray] = field(default_factory=dict)
    nods: int = 0
    tone_z: Mapping[str, float] = field(default_factory=dict)
    pause_ms: float | None = None
    pause_z: float | None = None
    rate_z: float | None = None


@dataclass(frozen=True)
class Phrase:
    """One nonverbal phrase: its words, its family part (``p`` or ``a``) and its evidence."""

    text: str
    part: str
    evidence: str


@dataclass(frozen=True)
class Narrative:
    family: str
    text: str
    phrases: tuple[Phrase, ...]


def _longest_run_s(mask: np.ndarray, times: np.ndarray) -> float:
    """Duration of the longest unbroken run of True frames (from its first frame's time to one
    frame step after its last: a run of one frame lasts one step)."""
    if len(times) < 1 or not mask.any():
        return 0.0
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    best, start = 0.0, None
    for i, on in enumerate(mask):
        if on and start is None:
            start = i
        if start is not None and (not on or i == len(mask) - 1):
            end = i if on else i - 1
            best = max(best, float(times[end] - times[start]) + step)
            start = None
    return best


def action_phrases(turn: TurnEvidence, config: NarrativeConfig) -> list[Phrase]:
    """Smile, positive expression, the four every-frame AUs and head nods, in MONAH's order."""
    out: list[Phrase] = []
    au = {k: np.asarray(v, bool) for k, v in turn.au_present.items()}
    n = len(turn.frame_times)
    if "AU06" in au and "AU12" in au and n:
        run = _longest_run_s(au["AU06"] & au["AU12"], np.asarray(turn.frame_times, float))
        if run >= config.smile_min_s:
            out.append(Phrase("smiled", "a", f"AU06 and AU12 present together for {run:.2f} s "
                                             f"(≥ {config.smile_min_s} s)"))
    if "AU12" in au and n and au["AU12"].all():
        out.append(Phrase("displayed a positive expression", "a", f"AU12 present in all {n} frames"))
    for name, words in AU_ACTIONS.items():
        if name in au and n and au[name].all():
            out.append(Phrase(words, "a", f"{name} present in all {n} frames"))
    if turn.nods > 0:
        out.append(Phrase("nodded", "a", f"{turn.nods} head nod(s) in the turn"))
    return out


def _rate_words(z: float, config: NarrativeConfig) -> str:
    if z <= config.rate_very_slow_z:
        return "very slowly"
    if z <= config.rate_slow_z:
        return "slowly"
    if z >= config.rate_very_fast_z:
        return "very quickly"
    if z >= config.rate_fast_z:
        return "quickly"
    return ""


def _delay_words(z: float | None) -> str:
    if z is None or not math.isfinite(z) or z < 0:
        return "a short delay"
    return "a slightly long delay" if z < 1 else "a long delay" if z < 2 else "a significantly long delay"


def prosody_phrases(turn: TurnEvidence, config: NarrativeConfig) -> list[Phrase]:
    """Pause before the turn, tone of voice, speech rate (in that order)."""
    out: list[Phrase] = []
    if turn.pause_ms is not None and math.isfinite(turn.pause_ms) and turn.pause_ms >= config.pause_min_ms:
        hundreds = int(turn.pause_ms / 100 + 0.5)  # half up: 250 ms is "three hundred"
        amount = "more than twelve" if turn.pause_ms > 1200 else NUMBERS.get(hundreds, "less than one")
        z = "" if turn.pause_z is None else f", z {turn.pause_z:+.2f}"
        out.append(Phrase(f"after {amount} hundred milliseconds, {_delay_words(turn.pause_z)},", "p",
                          f"pause {turn.pause_ms:.0f} ms (≥ {config.pause_min_ms:.0f} ms{z})"))
    loud = {t: z for t, z in turn.tone_z.items() if t in TONES and z is not None and z > config.tone_z}
    if loud:
        tone = max(loud, key=loud.get)
        out.append(Phrase(TONES[tone], "p", f"tone {tone} z {loud[tone]:+.2f} (> {config.tone_z})"))
    if turn.rate_z is not None and math.isfinite(turn.rate_z):
        words = _rate_words(turn.rate_z, config)
        if words:
            out.append(Phrase(words, "p", f"speech rate z {turn.rate_z:+.2f}"))
    return out


def _listed(items: list[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def weave(turn: TurnEvidence, family: str, config: NarrativeConfig = NarrativeConfig()) -> Narrative:
    """The narrative of one turn in `family` (v, vp, va or vpa)."""
    if family not in FAMILIES:
        raise ValueError(f"narrative family must be one of {FAMILIES}, got {family!r}")
    words = " ".join(turn.transcript.split())
    actions = action_phrases(turn, config) if "a" in family else []
    prosody = prosody_phrases(turn, config) if "p" in family else []
    sentences = []
    if actions:
        sentences.append(_sentence(f"{turn.role} {_listed([p.text for p in actions])}."))
    pause = [p for p in prosody if p.text.startswith("after ")]
    manner = [p.text for p in prosody if not p.text.startswith("after ")]
    said = f"{turn.role} {_listed(manner) + ' ' if manner else ''}said {words}"
    if pause:
        said = f"{pause[0].text} {said}"
    sentences.append(_sentence(said if said.endswith((".", "!", "?")) else said + "."))
    return Narrative(family, " ".join(sentences), tuple(actions + prosody))
