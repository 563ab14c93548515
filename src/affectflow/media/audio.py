"""Audio media prep: decode any container/codec FFmpeg reads, to 16 kHz mono, segmented.

Decoding goes through PyAV (FFmpeg's libraries inside the wheel), so wav, flac, mp3, m4a/aac and
the audio track of mp4/mkv/webm all work without a system FFmpeg. `prepare_audio` is the
media-prep stage's extractor: it also decides whether the segment holds speech at all.
"""

from __future__ import annotations

import os
from typing import Any, Mapping

import av
import numpy as np

from affectflow.features.base import ExtractionError, FeatureResult, Utterance

AUDIO_PREP_VERSION = "1"
AUDIO_STATS_NAMES = ["duration_s", "active_ratio", "peak_dbfs", "rms_dbfs"]


def load_audio(path: str, sample_rate: int = 16000, start_s: float | None = None,
               end_s: float | None = None) -> np.ndarray:
    """Decode `path` to mono float32 in [-1, 1] at `sample_rate`, cut to [start_s, end_s).

    Raises ExtractionError naming the reason: missing file, no audio stream, undecodable data.
    """
    if not os.path.exists(path):
        raise ExtractionError(f"media file not found: {path}")
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError) as error:
        raise ExtractionError(f"cannot open media {os.path.basename(path)}: {error}") from error
    with container:
        if not container.streams.audio:
            raise ExtractionError(f"no audio stream in {os.path.basename(path)}")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        if start_s and start_s > 1.0:
            container.seek(int(max(start_s - 0.5, 0) / stream.time_base), stream=stream)
        chunks: list[np.ndarray] = []
        first_time: float | None = None
        try:
            for frame in container.decode(stream):
                if first_time is None:
                    first_time = float(frame.time) if frame.time is not None else 0.0
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                if end_s is not None and frame.time is not None and frame.time > end_s + 0.5:
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.error.FFmpegError, ValueError) as error:
            if not chunks:
                raise ExtractionError(
                    f"cannot decode audio of {os.path.basename(path)}: {error}") from error
            # A truncated file: keep what decoded; the length check below decides.
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    offset = first_time or 0.0
    begin = 0 if start_s is None else max(int(round((start_s - offset) * sample_rate)), 0)
    stop = len(samples) if end_s is None else int(round((end_s - offset) * sample_rate))
    if end_s is not None and stop > len(samples) + int(0.05 * sample_rate):
        raise ExtractionError(
            f"audio of {os.path.basename(path)} ends at {offset + len(samples) / sample_rate:.2f} s, "
            f"before the segment end {end_s:.2f} s (truncated file or wrong end_s)")
    segment = samples[begin:stop].astype(np.float32)
    if len(segment) == 0:
        raise ExtractionError(f"empty audio segment [{start_s}, {end_s}) in {os.path.basename(path)}")
    return segment


def activity_stats(samples: np.ndarray, sample_rate: int, frame_s: float = 0.03,
                   threshold_dbfs: float = -45.0) -> dict[str, float]:
    """Energy-based voice activity: share of 30 ms frames above a level, and loudness figures."""
    frame = max(int(frame_s * sample_rate), 1)
    n = len(samples) // frame
    if n == 0:
        return {"duration_s": len(samples) / sample_rate, "active_ratio": 0.0,
                "peak_dbfs": -120.0, "rms_dbfs": -120.0}
    frames = samples[: n * frame].reshape(n, frame).astype(np.float64)
    rms_db = 20 * np.log10(np.sqrt((frames ** 2).mean(axis=1)) + 1e-9)
    overall = 20 * np.log10(np.sqrt((samples.astype(np.float64) ** 2).mean()) + 1e-9)
    # A frame is active when loud in absolute terms and well above the clip's own noise floor.
    floor = np.percentile(rms_db, 10)
    active = (rms_db > threshold_dbfs) & (rms_db > floor + 10.0)
    return {"duration_s": len(samples) / sample_rate, "active_ratio": float(active.mean()),
            "peak_dbfs": float(rms_db.max()), "rms_dbfs": float(overall)}


def prepare_audio(utt: Utterance, params: Mapping[str, Any]) -> FeatureResult:
    """The media-prep extractor: 16 kHz mono samples of the segment, rejected without speech.

    The audio comes from `audio_path`, else from the video's audio track.
    """
    sample_rate = int(params.get("sample_rate", 16000))
    source = utt.audio_path or utt.video_path
    if source is None:
        raise ExtractionError("no audio_path or video_path to take audio from")
    samples = load_audio(source, sample_rate, utt.start_s, utt.end_s)
    min_duration = float(params.get("min_duration_s", 0.2))
    if len(samples) < min_duration * sample_rate:
        raise ExtractionError(f"audio segment shorter than {min_duration} s "
                              f"({len(samples) / sample_rate:.3f} s)")
    stats = activity_stats(samples, sample_rate, threshold_dbfs=float(params.get("vad_dbfs", -45.0)))
    min_active = float(params.get("min_active_ratio", 0.05))
    if stats["active_ratio"] < min_active:
        raise ExtractionError(
            f"no speech: {stats['active_ratio']:.1%} of 30 ms frames active "
            f"(need {min_active:.0%}), loudest frame {stats['peak_dbfs']:.1f} dBFS")
    pooled = np.array([stats[name] for name in AUDIO_STATS_NAMES], np.float32)
    return FeatureResult(values=samples.reshape(-1, 1), pooled=pooled)
