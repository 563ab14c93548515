"""The contract every extractor follows: a registered class, utterances in, `FeatureResult`s out.

An extractor is a subclass of `Extractor` in `affectflow.features.extractors`, registered with
`@register`. It declares its name, version and modality; its parameters as a `config_type`
dataclass (`affectflow.features.params`: the defaults, the schema, the cache key); what it reads
(`inputs`: manifest inputs such as ``media_audio``, ``video``, ``transcript``, ``words``,
``context``, or other stores by name, e.g. ``audio`` for media prep's decoded samples); its
column names (`names`); and `extract(utterance)`, or `extract_batch(utterances)` when it
batches (then `batch_call` says how many utterances the shard runner hands it per call).

`extract` raises `ExtractionError` with a short, human-readable reason when the utterance cannot
give this feature (no face, no speech, corrupt media...); the shard runner records the reason in
the rejected table and goes on with the rest. It raises `NotApplicable` when the utterance has
no input of the kind it reads (the face extractor on an audio-only row): that is not a failure,
so it is counted apart and kept out of the rejected table.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Mapping, Sequence, TypeVar

import numpy as np

from affectflow.features.params import parse_config, runtime_names
from affectflow.media.errors import MediaError

log = logging.getLogger(__name__)
C = TypeVar("C")
REGISTERED: dict[str, type["Extractor"]] = {}  # name → class, filled by @register
# What an utterance can hand an extractor from its manifest row: for each input, the fields
# the values depend on (its cache key) and the media files read (the first filled one of each
# entry), whose size and mtime count too.
MANIFEST_INPUTS: dict[str, tuple[tuple[str, ...], tuple[tuple[str, ...], ...]]] = {
    "media_audio": (("audio_path", "video_path", "start_s", "end_s"), (("audio_path", "video_path"),)),
    "video": (("video_path", "start_s", "end_s"), (("video_path",),)),
    "transcript": (("transcript",), ()),
    "words": (("words",), ()),
    "context": (("context",), ()),
}


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


class ExtractorSetupError(RuntimeError):
    """The extractor cannot run at all (its model is not on disk, a parameter does not fit the
    model): the job fails with this message instead of rejecting every utterance."""


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
    # The rows of the other stores the extractor declares as inputs, by store name.
    stores: Mapping[str, "FeatureResult"] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], audio: np.ndarray | None = None,
                 stores: Mapping[str, "FeatureResult"] | None = None) -> "Utterance":
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
            stores=dict(stores or {}),
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


class Extractor(Generic[C]):
    """One feature extractor: declared metadata, a typed config, `extract` / `extract_batch`."""

    name: ClassVar[str]
    version: ClassVar[str]
    modality: ClassVar[str]  # audio, text or video: what a training modality of it is called
    description: ClassVar[str]  # one line, shown in the config schema
    config_type: ClassVar[type]
    inputs: ClassVar[tuple[str, ...]]  # MANIFEST_INPUTS keys and store names
    batch_call: ClassVar[int] = 1  # utterances per extract_batch call from the shard runner
    # values are an end-to-end model's input (audio samples, token ids), not features: training
    # reads them in the "raw" view, never standardised or cut to `max_steps`
    raw: ClassVar[bool] = False

    def __init__(self, config: C) -> None:
        self.config = config

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> "Extractor[C]":
        """The extractor with `params` over its config's defaults (ValueError naming a bad key)."""
        return cls(parse_config(cls.config_type, params, f"extractors.{cls.name}"))

    @classmethod
    def runtime(cls) -> tuple[str, ...]:
        """Parameters that change how, not what, is computed: outside the cache key."""
        return runtime_names(cls.config_type)

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """Manifest fields the values depend on (part of each row's signature)."""
        return tuple(f for name in cls.inputs if name in MANIFEST_INPUTS for f in MANIFEST_INPUTS[name][0])

    @classmethod
    def media(cls) -> tuple[tuple[str, ...], ...]:
        """Media files read: per entry, the first of those fields a row fills."""
        return tuple(m for name in cls.inputs if name in MANIFEST_INPUTS for m in MANIFEST_INPUTS[name][1])

    @classmethod
    def stores(cls) -> tuple[str, ...]:
        """The other stores read (inputs that are not manifest inputs), in declaration order."""
        return tuple(name for name in cls.inputs if name not in MANIFEST_INPUTS)

    def names(self) -> tuple[list[str], list[str]] | None:
        """(sequence, pooled) column names for this config; None when not declared."""
        return None

    def extract(self, utt: Utterance) -> "FeatureResult":
        """The features of one utterance (ExtractionError / NotApplicable when there are none)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither extract nor extract_batch")

    def extract_batch(self, utts: Sequence[Utterance]) -> list["FeatureResult | ExtractionError"]:
        """One result or error per utterance, in order; a failure costs only its utterance."""
        out: list[FeatureResult | ExtractionError] = []
        for utt in utts:
            try:
                out.append(self.extract(utt))
            except ExtractionError as error:
                out.append(error)
            except ExtractorSetupError:
                raise
            except MediaError as error:
                out.append(ExtractionError(error.reason))
            except Exception as error:  # one broken clip must never sink a corpus
                reason = f"{self.name} failed: {type(error).__name__}: {error}"
                log.error("utterance %s: %s\n%s", utt.utt_id, reason, traceback.format_exc())
                out.append(ExtractionError(reason))
        return out


class BatchExtractor(Extractor[C]):
    """An extractor that computes whole batches (`extract_batch`); `extract` is one-item batch."""

    batch_call: ClassVar[int] = 64

    def extract(self, utt: Utterance) -> "FeatureResult":
        result = self.extract_batch([utt])[0]
        if isinstance(result, ExtractionError):
            raise result
        return result


def mean_std_names(dims: Sequence[str]) -> tuple[list[str], list[str]]:
    """(sequence, pooled) names of a store whose pooled vector is the frames' mean ‖ std."""
    return list(dims), [f"{d}_mean" for d in dims] + [f"{d}_std" for d in dims]


E = TypeVar("E", bound=type[Extractor])


def register(cls: E) -> E:
    """Class decorator: make `cls` an extractor of the pipeline under `cls.name`."""
    for attribute in ("name", "version", "modality", "description", "config_type", "inputs"):
        if not hasattr(cls, attribute):
            raise TypeError(f"extractor {cls.__name__} does not declare `{attribute}`")
    if REGISTERED.get(cls.name, cls) is not cls:
        raise ValueError(f"two extractors are named {cls.name!r}: {REGISTERED[cls.name].__name__} "
                         f"and {cls.__name__}")
    REGISTERED[cls.name] = cls
    return cls
