"""The contract every extractor follows: one utterance in, one `FeatureResult` out.

An extractor is a plain function ``extract(utt: Utterance, params: Mapping) -> FeatureResult``
registered in `affectflow.features.registry`. It raises `ExtractionError` with a short,
human-readable reason when the utterance cannot give this feature (no face, no speech, corrupt
media...); the shard runner records the reason in the rejected table and goes on with the rest.
It raises `NotApplicable` when the utterance has no input of the kind it reads (the face
extractor on an audio-only row): that is not a failure, so it is counted apart and kept out of
the rejected table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np


NOT_APPLICABLE = "not applicable: "  # how a NotApplicable reason starts in a store's `reason`


class ExtractionError(Exception):
    """An utterance cannot give this feature; `reason` says why (shown to the user)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class NotApplicable(ExtractionError):
    """The utterance has nothing this extractor reads (no video, no transcript): not a rejection."""

    def __init__(self, what: str) -> None:
        super().__init__(NOT_APPLICABLE + what)


def is_not_applicable(reason: str | None) -> bool:
    """Whether a store row's `reason` records a NotApplicable (rather than a rejection)."""
    return bool(reason) and str(reason).startswith(NOT_APPLICABLE)


@dataclass(frozen=True)
class Utterance:
    """One manifest row as an extractor sees it (paths already resolved to absolute)."""

    utt_id: str
    audio_path: str | None
    video_path: str | None
    start_s: float | None
    end_s: float | None
    transcript: str
    speaker: str = ""
    context: str = ""  # text said before the utterance (preceding dialogue turns), if any
    words: tuple[tuple[str, float, float], ...] = ()  # (word, start_s, end_s) relative to utterance
    # Decoded 16 kHz mono float32 audio from the media-prep stage, when the extractor needs it.
    audio: np.ndarray | None = None
    sample_rate: int = 16000

    @classmethod
    def from_row(cls, row: Mapping[str, Any], audio: np.ndarray | None = None) -> "Utterance":
        """Build from a manifest row (a dict or a pandas Series)."""

        def opt_str(key: str) -> str | None:
            value = row.get(key)
            if value is None or (isinstance(value, float) and np.isnan(value)) or value == "":
                return None
            return str(value)

        def opt_float(key: str) -> float | None:
            value = row.get(key)
            if value is None or (isinstance(value, float) and np.isnan(value)):
                return None
            return float(value)

        transcript = row.get("transcript")
        if transcript is None or (isinstance(transcript, float) and np.isnan(transcript)):
            transcript = ""
        words_raw = row.get("words")
        words: tuple[tuple[str, float, float], ...] = ()
        if words_raw is not None and not (isinstance(words_raw, float) and np.isnan(words_raw)):
            words = tuple((str(w["word"]), float(w["start_s"]), float(w["end_s"])) for w in words_raw)
        return cls(
            utt_id=str(row["utt_id"]),
            audio_path=opt_str("audio_path"),
            video_path=opt_str("video_path"),
            start_s=opt_float("start_s"),
            end_s=opt_float("end_s"),
            transcript=str(transcript),
            speaker=str(row.get("speaker") or ""),
            context=opt_str("context") or "",
            words=words,
            audio=audio,
        )


@dataclass
class FeatureResult:
    """What an extractor returns for one utterance.

    values: (T, D) float32 sequence (frames, tokens), or (D,) when the feature is a single vector.
    times:  (T,) float32 frame-centre times in seconds from the utterance start, or None when the
            steps are not timed (tokens without alignment) or the feature is a single vector.
    pooled: (D_p,) float32 utterance-level vector (mean over valid frames, functionals, CLS...).
    extra:  further per-utterance arrays stored beside (landmarks, per-frame face flags, tokens).
    """

    values: np.ndarray
    pooled: np.ndarray
    times: np.ndarray | None = None
    extra: dict[str, np.ndarray | list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.values = np.asarray(self.values, dtype=np.float32)
        self.pooled = np.asarray(self.pooled, dtype=np.float32).reshape(-1)
        if self.times is not None:
            self.times = np.asarray(self.times, dtype=np.float32).reshape(-1)
            if self.values.ndim != 2 or len(self.times) != len(self.values):
                raise ValueError(
                    f"times has {len(self.times)} steps but values has shape {self.values.shape}"
                )
