"""The extractors the pipeline knows, by name; imported lazily so a job loads only its own."""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from affectflow.features.base import FeatureResult, Utterance

ExtractFunction = Callable[[Utterance, Mapping[str, Any]], FeatureResult]
BatchFunction = Callable[[Sequence[Utterance], Mapping[str, Any]], list]


def _load(target: str) -> Any:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class ExtractorSpec:
    """How to run one extractor: where its function lives, its version, what input it needs."""

    name: str
    target: str  # "module:function"
    version_attr: str  # "module:CONSTANT" holding the extractor's version string
    needs_audio: bool  # reads the media-prep audio store rather than the media files
    modality: str  # audio, text, video
    fields: tuple[str, ...] = ()  # manifest fields the output depends on (its cache key)
    # The media files it reads, whose size and mtime count too: per entry, the first of those
    # fields that a row fills is the file read (audio comes from audio_path, else the video).
    media: tuple[tuple[str, ...], ...] = ()
    runtime: tuple[str, ...] = ()  # parameters that do not change the values (not in the cache key)
    # "module:function" taking a list of utterances, returning a FeatureResult or an
    # ExtractionError per utterance: one call for a whole shard, batched inside.
    batch_target: str | None = None
    # "module:function" (params → (sequence names, pooled names)): the declared columns, stored
    # once per partition and checked against every result.
    names_target: str | None = None

    def function(self) -> ExtractFunction:
        return _load(self.target)

    def batch_function(self) -> BatchFunction | None:
        return _load(self.batch_target) if self.batch_target else None

    def names(self, params: Mapping[str, Any]) -> tuple[list[str], list[str]] | None:
        """The declared (sequence, pooled) column names for these parameters, if declared."""
        return _load(self.names_target)(params) if self.names_target else None

    @property
    def version(self) -> str:
        module, name = self.version_attr.split(":")
        return str(getattr(importlib.import_module(module), name))


EXTRACTORS: dict[str, ExtractorSpec] = {
    spec.name: spec
    for spec in (
        ExtractorSpec("audio", "affectflow.media.audio:prepare_audio",
                      "affectflow.media.audio:AUDIO_PREP_VERSION", False, "audio",
                      fields=("audio_path", "video_path", "start_s", "end_s"),
                      media=(("audio_path", "video_path"),),
                      names_target="affectflow.media.audio:audio_store_names"),
        ExtractorSpec("egemaps", "affectflow.features.acoustic:extract_egemaps",
                      "affectflow.features.acoustic:EGEMAPS_VERSION", True, "audio",
                      names_target="affectflow.features.acoustic:egemaps_store_names"),
        ExtractorSpec("compare", "affectflow.features.acoustic:extract_compare",
                      "affectflow.features.acoustic:COMPARE_VERSION", True, "audio",
                      names_target="affectflow.features.acoustic:compare_store_names"),
        ExtractorSpec("logmel", "affectflow.features.acoustic:extract_logmel",
                      "affectflow.features.acoustic:LOGMEL_VERSION", True, "audio",
                      names_target="affectflow.features.acoustic:logmel_store_names"),
        ExtractorSpec("text", "affectflow.features.text:extract_text",
                      "affectflow.features.text:TEXT_VERSION", False, "text",
                      fields=("transcript", "context", "words"), runtime=("device",)),
        ExtractorSpec("whisper", "affectflow.features.whisper:extract_whisper",
                      "affectflow.features.whisper:WHISPER_VERSION", True, "audio",
                      runtime=("device", "batch_size", "cpu_threads"),
                      batch_target="affectflow.features.whisper:extract_whisper_batch",
                      names_target="affectflow.features.whisper:whisper_store_names"),
        ExtractorSpec("face", "affectflow.features.face:extract_face",
                      "affectflow.features.face:FACE_EXTRACTOR_VERSION", False, "video",
                      fields=("video_path", "start_s", "end_s"), media=(("video_path",),),
                      names_target="affectflow.features.face:face_store_names"),
    )
}


def get_extractor(name: str) -> ExtractorSpec:
    """The spec for `name`, with a message listing the known ones otherwise."""
    try:
        return EXTRACTORS[name]
    except KeyError:
        raise KeyError(f"unknown extractor {name!r}; known: {', '.join(sorted(EXTRACTORS))}") from None
