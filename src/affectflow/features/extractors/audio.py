"""Media prep: every utterance's segment decoded once to 16 kHz mono, kept only if it holds speech.

The store `audio` holds the samples (one column, `sample`) and five activity statistics as its
pooled vector; the acoustic and speech-encoder extractors read it instead of decoding the media
again. The audio comes from `audio_path`, else from the video's audio track (`load_audio`: any
container FFmpeg reads). A truncated file is rejected unless `keep_partial`. The segment holds
speech when its longest voiced stretch (`activity_stats`) lasts at least `min_speech_s`, however
much silence surrounds it: silence, noise, a steady tone or a lone click have none. Its
parameters are the config's `media` section.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from affectflow.features.base import ExtractionError, Extractor, FeatureResult, NotApplicable, Utterance, register
from affectflow.features.params import param
from affectflow.media.audio import activity_stats, load_audio
from affectflow.media.errors import MediaError

STATS_NAMES = ["duration_s", "active_ratio", "peak_dbfs", "rms_dbfs", "speech_s"]


@dataclass(frozen=True)
class MediaConfig:
    sample_rate: int = param(16000, "Audio sample rate after decoding.", minimum=8000)
    min_duration_s: float = param(0.2, "Shorter audio segments are rejected.", minimum=0)
    min_speech_s: float = param(
        0.25, "A segment is rejected as 'no speech' when its longest voiced stretch is shorter "
        "than this (seconds): runs of active 30 ms frames (above vad_dbfs and noise_margin_db above "
        "the clip's noise floor) merged across gaps under 0.2 s. How much silence surrounds the "
        "speech does not matter.", minimum=0)
    vad_dbfs: float = param(-60.0, "Level (dBFS, energy above 80 Hz) a 30 ms frame must exceed "
                            "to count as active.")
    noise_margin_db: float = param(
        10.0, "How far (dB) a frame must rise above the clip's noise floor (its 10th-percentile "
        "frame) to count as voiced. 10 rejects steady noise and tones; speech in white noise at "
        "5 dB SNR is then rejected half the time: lower it (e.g. 6) for noisy broadcast corpora.",
        minimum=0)
    keep_partial: bool = param(
        False, "Keep what decodes from a truncated media file (audio shorter than its container or "
        "wav header declares, by more than max(0.1 s, 2 %)) instead of rejecting it as 'truncated'.")


@register
class MediaPrep(Extractor[MediaConfig]):
    name = "audio"
    version = "2"
    modality = "audio"
    description = "Media prep (decoding to 16 kHz mono, segmenting, the speech check)."
    config_type = MediaConfig
    inputs = ("media_audio",)

    def names(self) -> tuple[list[str], list[str]]:
        return ["sample"], list(STATS_NAMES)

    def extract(self, utt: Utterance) -> FeatureResult:
        """The segment's samples, (T, 1); ExtractionError when it is too short or has no speech."""
        config = self.config
        source = utt.audio_path or utt.video_path
        if source is None:
            raise NotApplicable("no audio_path or video_path to take audio from")
        try:
            samples = load_audio(source, config.sample_rate, utt.start_s, utt.end_s,
                                 keep_partial=config.keep_partial)
        except MediaError as error:
            raise ExtractionError(error.reason) from error
        if len(samples) < config.min_duration_s * config.sample_rate:
            raise ExtractionError(f"audio segment shorter than {config.min_duration_s} s "
                                  f"({len(samples) / config.sample_rate:.3f} s)")
        stats = activity_stats(samples, config.sample_rate, threshold_dbfs=config.vad_dbfs,
                               margin_db=config.noise_margin_db)
        if stats["longest_speech_s"] < config.min_speech_s:
            raise ExtractionError(
                f"no speech: longest voiced segment {stats['longest_speech_s']:.2f} s "
                f"(need {config.min_speech_s:.2f} s), loudest 30 ms frame {stats['peak_dbfs']:.1f} dBFS")
        pooled = np.array([stats[name] for name in STATS_NAMES], np.float32)
        return FeatureResult(values=samples.reshape(-1, 1), pooled=pooled)
