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

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from affectflow.features.base import ExtractionError, Extractor, FeatureResult, Utterance, mean_std_names, register
from affectflow.features.params import param


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


@dataclass(frozen=True)
class OpenSmileConfig:
    step_s: float = param(0.02, "Time step of the LLD sequence in seconds.", exclusiveMinimum=0)


class _OpenSmile(Extractor[OpenSmileConfig]):
    """One openSMILE feature set: LLDs averaged onto the `step_s` grid, functionals as pooled."""

    feature_set: str
    version = "1"
    modality = "audio"
    config_type = OpenSmileConfig
    inputs = ("audio",)

    def names(self) -> tuple[list[str], list[str]]:
        return (list(_smile(self.feature_set, "LowLevelDescriptors").feature_names),
                list(_smile(self.feature_set, "Functionals").feature_names))

    def extract(self, utt: Utterance) -> FeatureResult:
        samples = _require_audio(utt)
        lld = _smile(self.feature_set, "LowLevelDescriptors").process_signal(samples, utt.sample_rate)
        if lld.empty:
            raise ExtractionError(f"openSMILE produced no {self.feature_set} frames (segment too short)")
        starts = lld.index.get_level_values("start").total_seconds().to_numpy()
        ends = lld.index.get_level_values("end").total_seconds().to_numpy()
        values, times = _resample_steps(lld.to_numpy(np.float32), (starts + ends) / 2, self.config.step_s)
        functionals = _smile(self.feature_set, "Functionals").process_signal(samples, utt.sample_rate)
        return FeatureResult(values=np.nan_to_num(values), times=times,
                             pooled=np.nan_to_num(functionals.to_numpy(np.float32).reshape(-1)))


@register
class Egemaps(_OpenSmile):
    """eGeMAPSv02 LLD sequence (T, 25) on a `step_s` grid, and the 88 functionals as pooled."""

    name = "egemaps"
    feature_set = "eGeMAPSv02"
    description = "openSMILE eGeMAPSv02 low-level descriptors (25, sequence) and functionals (88, pooled)."


@register
class Compare(_OpenSmile):
    """ComParE 2016 LLD sequence (T, 65) on a `step_s` grid, and its 6,373 functionals as pooled:
    the large brute-force set of the Interspeech challenges, the usual partner of a linear SVM."""

    name = "compare"
    feature_set = "ComParE_2016"
    description = "openSMILE ComParE 2016 low-level descriptors (65, sequence) and functionals (6,373, pooled)."


@lru_cache(maxsize=4)
def _mel_transform(sample_rate: int, n_mels: int, win: int, hop: int, n_fft: int):
    import torchaudio

    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, win_length=win, hop_length=hop, n_mels=n_mels,
        center=True, power=2.0)


@dataclass(frozen=True)
class LogmelConfig:
    n_mels: int = param(128, "Number of mel bands.", minimum=8)
    win_s: float = param(0.06, "Window length in seconds.", exclusiveMinimum=0)
    hop_s: float = param(0.02, "Hop in seconds.", exclusiveMinimum=0)


@register
class Logmel(Extractor[LogmelConfig]):
    """Log-mel spectrogram (T, n_mels), Hann windows of `win_s` every `hop_s`; pooled = mean ‖ std."""

    name = "logmel"
    version = "1"
    modality = "audio"
    description = "Log-mel spectrogram."
    config_type = LogmelConfig
    inputs = ("audio",)

    def names(self) -> tuple[list[str], list[str]]:
        bands = [f"mel_{i:03d}" for i in range(self.config.n_mels)]
        return mean_std_names(bands)

    def extract(self, utt: Utterance) -> FeatureResult:
        import torch

        samples = _require_audio(utt)
        sample_rate = utt.sample_rate
        win = int(round(self.config.win_s * sample_rate))
        hop = int(round(self.config.hop_s * sample_rate))
        n_fft = 1 << (win - 1).bit_length()
        transform = _mel_transform(sample_rate, self.config.n_mels, win, hop, n_fft)
        with torch.no_grad():
            mel = transform(torch.from_numpy(np.ascontiguousarray(samples)))
        logmel = torch.log(mel + 1e-6).T.numpy()  # (T, n_mels)
        times = (np.arange(len(logmel)) * hop / sample_rate).astype(np.float32)
        pooled = np.concatenate([logmel.mean(axis=0), logmel.std(axis=0)])
        return FeatureResult(values=logmel, times=times, pooled=pooled)
