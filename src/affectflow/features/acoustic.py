"""Acoustic extractors on the media-prep audio: openSMILE eGeMAPSv02 and ComParE 2016, and
128-band log-mel.

All use the framing of the MMML paper's hand-crafted baselines: 60 ms windows every 20 ms.
openSMILE computes its low-level descriptors at its standard 10 ms hop (pitch, jitter and
shimmer on 60 ms windows, loudness and spectral descriptors on 20-25 ms windows); we average
consecutive frames onto the configured step (20 ms by default) so every acoustic sequence in the
store shares one time axis. The functionals (88 for eGeMAPS, 6,373 for ComParE) are the pooled
vector.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from affectflow.features.base import ExtractionError, FeatureResult, Utterance

EGEMAPS_VERSION = "1"
COMPARE_VERSION = "1"
LOGMEL_VERSION = "1"


def _require_audio(utt: Utterance) -> np.ndarray:
    if utt.audio is None or len(utt.audio) == 0:
        raise ExtractionError("no prepared audio for this utterance")
    return utt.audio.reshape(-1)


@lru_cache(maxsize=4)
def _smile(feature_set: str, level: str):
    import opensmile

    return opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set),
                           feature_level=getattr(opensmile.FeatureLevel, level))


def _resample_steps(values: np.ndarray, times: np.ndarray, step_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Average frames into bins of `step_s` (frame times are centres); returns (values, centres)."""
    bins = np.floor(times / step_s).astype(int)
    n_bins = int(bins.max()) + 1 if len(bins) else 0
    sums = np.zeros((n_bins, values.shape[1]), np.float64)
    counts = np.zeros(n_bins, np.float64)
    np.add.at(sums, bins, values)
    np.add.at(counts, bins, 1)
    keep = counts > 0
    return (sums[keep] / counts[keep, None]).astype(np.float32), \
        ((np.arange(n_bins)[keep] + 0.5) * step_s).astype(np.float32)


def egemaps_names() -> list[str]:
    """Names of the 25 eGeMAPSv02 low-level descriptors, in store column order."""
    return list(_smile("eGeMAPSv02", "LowLevelDescriptors").feature_names)


def compare_names() -> list[str]:
    """Names of the 65 ComParE 2016 low-level descriptors, in store column order."""
    return list(_smile("ComParE_2016", "LowLevelDescriptors").feature_names)


def egemaps_store_names(params: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(sequence, pooled) names of the egemaps store: 25 LLDs, 88 functionals."""
    return egemaps_names(), list(_smile("eGeMAPSv02", "Functionals").feature_names)


def compare_store_names(params: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(sequence, pooled) names of the compare store: 65 LLDs, 6,373 functionals."""
    return compare_names(), list(_smile("ComParE_2016", "Functionals").feature_names)


def logmel_store_names(params: Mapping[str, Any]) -> tuple[list[str], list[str]]:
    """(sequence, pooled) names of the logmel store: one per band, then their mean and std."""
    bands = [f"mel_{i:03d}" for i in range(int(params.get("n_mels", 128)))]
    return bands, [f"{b}_mean" for b in bands] + [f"{b}_std" for b in bands]


def _opensmile_features(utt: Utterance, params: Mapping[str, Any], feature_set: str) -> FeatureResult:
    """One openSMILE feature set: LLDs averaged onto the `step_s` grid, functionals as pooled."""
    samples = _require_audio(utt)
    sample_rate = utt.sample_rate
    lld = _smile(feature_set, "LowLevelDescriptors").process_signal(samples, sample_rate)
    if lld.empty:
        raise ExtractionError(f"openSMILE produced no {feature_set} frames (segment too short)")
    starts = lld.index.get_level_values("start").total_seconds().to_numpy()
    ends = lld.index.get_level_values("end").total_seconds().to_numpy()
    values, times = _resample_steps(lld.to_numpy(np.float32), (starts + ends) / 2,
                                    float(params.get("step_s", 0.02)))
    functionals = _smile(feature_set, "Functionals").process_signal(samples, sample_rate)
    return FeatureResult(values=np.nan_to_num(values), times=times,
                         pooled=np.nan_to_num(functionals.to_numpy(np.float32).reshape(-1)))


def extract_egemaps(utt: Utterance, params: Mapping[str, Any]) -> FeatureResult:
    """eGeMAPSv02 LLD sequence (T, 25) on a `step_s` grid, and the 88 functionals as pooled."""
    return _opensmile_features(utt, params, "eGeMAPSv02")


def extract_compare(utt: Utterance, params: Mapping[str, Any]) -> FeatureResult:
    """ComParE 2016 LLD sequence (T, 65) on a `step_s` grid, and its 6,373 functionals as pooled:
    the large brute-force set of the Interspeech challenges, the usual partner of a linear SVM."""
    return _opensmile_features(utt, params, "ComParE_2016")


@lru_cache(maxsize=4)
def _mel_transform(sample_rate: int, n_mels: int, win: int, hop: int, n_fft: int):
    import torchaudio

    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, win_length=win, hop_length=hop, n_mels=n_mels,
        center=True, power=2.0)


def extract_logmel(utt: Utterance, params: Mapping[str, Any]) -> FeatureResult:
    """Log-mel spectrogram (T, n_mels), 60 ms Hann windows every 20 ms; pooled = mean ‖ std."""
    import torch

    samples = _require_audio(utt)
    sample_rate = utt.sample_rate
    win = int(round(float(params.get("win_s", 0.06)) * sample_rate))
    hop = int(round(float(params.get("hop_s", 0.02)) * sample_rate))
    n_fft = 1 << (win - 1).bit_length()
    transform = _mel_transform(sample_rate, int(params.get("n_mels", 128)), win, hop, n_fft)
    with torch.no_grad():
        mel = transform(torch.from_numpy(np.ascontiguousarray(samples)))
    logmel = torch.log(mel + 1e-6).T.numpy()  # (T, n_mels)
    times = (np.arange(len(logmel)) * hop / sample_rate).astype(np.float32)
    pooled = np.concatenate([logmel.mean(axis=0), logmel.std(axis=0)])
    return FeatureResult(values=logmel, times=times, pooled=pooled)
