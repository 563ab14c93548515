"""Audio media prep: decode any container/codec FFmpeg reads, to 16 kHz mono, segmented.

Decoding goes through PyAV (FFmpeg's libraries inside the wheel), so wav, flac, mp3, m4a/aac and
the audio track of mp4/mkv/webm all work without a system FFmpeg. The media-prep stage's
extractor (`affectflow.features.extractors.audio`) uses `load_audio` and `activity_stats` to
decide whether the segment holds speech at all.

Two kinds of bad input are caught here rather than passed on silently:

* truncated files: FFmpeg decodes a file cut short (an interrupted copy or download) without an
  error and simply stops early, so `load_audio` compares what decoded with the length the
  container declares and rejects a shortfall (`keep_partial` keeps what decoded instead);
* clips without speech: `activity_stats` finds voiced segments with an energy detector with
  hangover, and media prep rejects a clip whose longest segment is shorter than
  `min_speech_s`, however much silence surrounds the speech.
"""

from __future__ import annotations

import os
import struct
from typing import Any

import av
import numpy as np

from affectflow.media.errors import MediaError

# A decoded length this much shorter than the declared one is truncation: max(0.1 s, 2 %).
TRUNCATION_TOLERANCE_S = 0.1
TRUNCATION_TOLERANCE_FRACTION = 0.02
# Demuxers whose duration is only estimated from the bitrate and the file size (raw streams):
# their "declared" length is the file's, so a cut file cannot be told from a whole one.
_ESTIMATED_DURATION_FORMATS = {"aac", "ac3", "eac3", "dts", "truehd", "mlp", "amr", "amrnb",
                               "amrwb", "adts", "loas", "latm", "u8", "s16le", "f32le", "alaw",
                               "mulaw", "data"}


def _wav_declared_seconds(path: str) -> float | None:
    """The length a RIFF/RF64 WAVE header declares: the `data` chunk's size over the byte rate.

    FFmpeg's wav demuxer (and libsndfile) derive the duration from the file size when the file
    is shorter than the header says, so the header itself must be read to see a truncation.
    None when the header declares no usable size (streamed wav with a 0 / 0xFFFFFFFF placeholder).
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[:4] not in (b"RIFF", b"RF64") or head[8:12] != b"WAVE":
                return None
            byte_rate = 0
            data64: int | None = None
            while True:
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return None
                chunk_id, size = chunk[:4], struct.unpack("<I", chunk[4:])[0]
                if chunk_id == b"ds64":
                    body = handle.read(size)
                    if len(body) >= 16:
                        data64 = struct.unpack("<Q", body[8:16])[0]
                elif chunk_id == b"fmt ":
                    body = handle.read(size)
                    if len(body) >= 12:
                        byte_rate = struct.unpack("<I", body[8:12])[0]
                elif chunk_id == b"data":
                    if size == 0xFFFFFFFF and data64 is not None:
                        size = data64
                    if size in (0, 0xFFFFFFFF) or byte_rate <= 0:
                        return None
                    return size / byte_rate
                else:
                    handle.seek(size, os.SEEK_CUR)
                if size % 2:
                    handle.seek(1, os.SEEK_CUR)
    except OSError:
        return None


def _mp3_has_length_header(path: str) -> bool:
    """Whether an mp3 carries a Xing/Info/VBRI frame (a frame count); without one FFmpeg only
    estimates the length from the first frame's bitrate and the file size."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(10)
            skip = 0
            if head[:3] == b"ID3" and len(head) == 10:
                skip = 10 + ((head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14
                             | (head[8] & 0x7F) << 7 | (head[9] & 0x7F))
            handle.seek(skip)
            first = handle.read(4096)
    except OSError:
        return False
    sync = next((i for i in range(len(first) - 1)
                 if first[i] == 0xFF and first[i + 1] & 0xE0 == 0xE0), None)
    if sync is None:
        return False
    window = first[sync: sync + 200]
    return any(tag in window for tag in (b"Xing", b"Info", b"VBRI"))


def _parse_clock(text: str) -> float | None:
    """'HH:MM:SS.nnnnnnnnn' (Matroska's per-track DURATION tag) in seconds."""
    try:
        hours, minutes, seconds = text.split(":")
        return int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except (ValueError, AttributeError):
        return None


def declared_duration(path: str, container: Any, stream: Any) -> float | None:
    """Seconds of audio the container declares for `stream`, or None when it declares none.

    wav: the RIFF header's data size; mp3: only with a Xing/Info/VBRI header; raw streams
    (adts aac, ac3, ...): None; others: the stream's duration, else Matroska's per-track DURATION
    tag, else the container's duration.
    """
    name = container.format.name
    if name == "wav":
        return _wav_declared_seconds(path)
    if name == "mp3" and not _mp3_has_length_header(path):
        return None
    if set(name.split(",")) & _ESTIMATED_DURATION_FORMATS:
        return None
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tagged = _parse_clock(stream.metadata.get("DURATION", "")) if stream.metadata else None
    if tagged:
        return tagged
    if container.duration:
        return float(container.duration) / av.time_base
    return None


def _frame_end(frame: Any) -> float | None:
    if frame.time is None or not frame.sample_rate:
        return None
    return float(frame.time) + frame.samples / frame.sample_rate


def _decode_end(container: Any, stream: Any, from_s: float) -> float | None:
    """The end time of the last frame that decodes, seeking to `from_s` first (0: from the start)."""
    end: float | None = None
    try:
        if from_s > 0:
            container.seek(int(from_s / stream.time_base), stream=stream)
        for frame in container.decode(stream):
            frame_end = _frame_end(frame)
            if frame_end is not None:
                end = frame_end if end is None else max(end, frame_end)
    except (av.error.FFmpegError, ValueError):
        pass
    return end


def _tolerance(declared: float) -> float:
    return max(TRUNCATION_TOLERANCE_S, TRUNCATION_TOLERANCE_FRACTION * declared)


def load_audio(path: str, sample_rate: int = 16000, start_s: float | None = None,
               end_s: float | None = None, keep_partial: bool = False) -> np.ndarray:
    """Decode `path` to mono float32 in [-1, 1] at `sample_rate`, cut to [start_s, end_s).

    Raises MediaError naming the reason: missing file, no audio stream, undecodable data,
    a segment ending after the audio does, and truncation. A file is truncated when its audio
    decodes to less than the container declares (`declared_duration`), by more than
    max(0.1 s, 2 %): the reason reads `truncated: decoded 2.50 s of 5.00 s declared (name)`.
    The check covers the whole file whatever the segment: a cut file is corrupt, and a segment
    that happens to lie inside the part that decoded is still rejected (for a segment, the file's
    end is checked by decoding its last seconds, and the whole file only when those are missing).
    With `keep_partial` the check is skipped and what decoded is kept (a segment reaching past
    it is still rejected). Streams declaring no length (raw aac/ac3, CBR mp3 without a Xing
    header, streamed wav) are not checked; nor can an ogg be, whose length is read from its
    last page.
    """
    name = os.path.basename(path)
    if not os.path.exists(path):
        raise MediaError(f"media file not found: {path}")
    try:
        container = av.open(path)
    except (av.error.FFmpegError, OSError) as error:
        raise MediaError(f"cannot open media {name}: {error}") from error
    with container:
        if not container.streams.audio:
            raise MediaError(f"no audio stream in {name}")
        stream = container.streams.audio[0]
        declared = None if keep_partial else declared_duration(path, container, stream)
        stream_start = (float(stream.start_time * stream.time_base)
                        if stream.start_time is not None and stream.time_base else 0.0)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        sought = bool(start_s and start_s > 1.0)
        if sought:
            container.seek(int(max(start_s - 0.5, 0) / stream.time_base), stream=stream)
        chunks: list[np.ndarray] = []
        first_time: float | None = None
        decoded_end: float | None = None
        stopped_early = False
        try:
            for frame in container.decode(stream):
                if first_time is None:
                    first_time = float(frame.time) if frame.time is not None else 0.0
                frame_end = _frame_end(frame)
                if frame_end is not None:
                    decoded_end = frame_end if decoded_end is None else max(decoded_end, frame_end)
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                if end_s is not None and frame.time is not None and frame.time > end_s + 0.5:
                    stopped_early = True
                    break
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except (av.error.FFmpegError, ValueError) as error:
            if not chunks:
                raise MediaError(f"cannot decode audio of {name}: {error}") from error
            # A truncated file: keep what decoded; the length checks below decide.
        if declared is not None:
            declared_end = stream_start + declared
            limit = declared_end - _tolerance(declared)
            if stopped_early:
                # Only the segment decoded: see whether the file's last seconds do too.
                decoded_end = _decode_end(container, stream, max(declared_end - 3.0, 0.0))
            if (decoded_end is None or decoded_end < limit) and (stopped_early or sought):
                # The end probe or the sought segment saw only part of the file: decode it all.
                with av.open(path) as whole:
                    decoded_end = _decode_end(whole, whole.streams.audio[0], 0.0)
            if decoded_end is None or decoded_end < limit:
                got = max((decoded_end or stream_start) - stream_start, 0.0)
                raise MediaError(
                    f"truncated: decoded {got:.2f} s of {declared:.2f} s declared ({name})")
    if not chunks and sought:
        raise MediaError(f"audio of {name} ends before the segment start {start_s:.2f} s "
                              f"(wrong start_s or truncated file)")
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    offset = first_time or 0.0
    begin = 0 if start_s is None else max(int(round((start_s - offset) * sample_rate)), 0)
    stop = len(samples) if end_s is None else int(round((end_s - offset) * sample_rate))
    if end_s is not None and stop > len(samples) + int(0.05 * sample_rate):
        raise MediaError(
            f"audio of {name} ends at {offset + len(samples) / sample_rate:.2f} s, "
            f"before the segment end {end_s:.2f} s (truncated file or wrong end_s)")
    segment = samples[begin:stop].astype(np.float32)
    if len(segment) == 0:
        raise MediaError(f"empty audio segment [{start_s}, {end_s}) in {name}")
    return segment


def frame_levels(samples: np.ndarray, sample_rate: int, frame_s: float = 0.03,
                 highpass_hz: float = 80.0) -> np.ndarray:
    """Level (dBFS) of each `frame_s` frame, counting only energy at or above `highpass_hz`.

    The high-pass (Hann-windowed spectrum, calibrated so a full-scale sine reads -3 dBFS) keeps
    DC offsets, hum and the slow swings of rumble/brown noise from looking like speech.
    """
    frame = max(int(frame_s * sample_rate), 1)
    n = len(samples) // frame
    frames = samples[: n * frame].reshape(n, frame).astype(np.float64)
    if highpass_hz <= 0 or frame < 8:
        power = (frames ** 2).mean(axis=1)
    else:
        window = np.hanning(frame)
        spectrum = np.abs(np.fft.rfft(frames * window, axis=1)) ** 2
        keep = np.fft.rfftfreq(frame, 1.0 / sample_rate) >= highpass_hz
        spectrum[:, 1:] *= 2.0  # one-sided spectrum
        power = spectrum[:, keep].sum(axis=1) / (frame * frame * np.mean(window ** 2))
    return 20 * np.log10(np.sqrt(power) + 1e-9)


def speech_segments(active: np.ndarray, frame_s: float, hangover_s: float = 0.2
                    ) -> list[tuple[float, float]]:
    """(start_s, end_s) of the runs of active frames, merged across gaps shorter than `hangover_s`."""
    index = np.flatnonzero(active)
    if len(index) == 0:
        return []
    max_gap = max(int(round(hangover_s / frame_s)), 1)
    breaks = np.flatnonzero(np.diff(index) - 1 >= max_gap)
    starts = np.concatenate([[index[0]], index[breaks + 1]])
    ends = np.concatenate([index[breaks], [index[-1]]]) + 1
    return [(float(a * frame_s), float(b * frame_s)) for a, b in zip(starts, ends)]


def activity_stats(samples: np.ndarray, sample_rate: int, frame_s: float = 0.03,
                   threshold_dbfs: float = -60.0, hangover_s: float = 0.2,
                   margin_db: float = 10.0) -> dict[str, float]:
    """Energy voice activity with hangover, and loudness figures.

    A 30 ms frame is active when its level above 80 Hz (`frame_levels`) exceeds `threshold_dbfs`
    and lies at least `margin_db` above the clip's noise floor (its 10th-percentile frame level), so
    silence, stationary noise and a steady tone never count, however loud. Active frames
    separated by gaps shorter than `hangover_s` join one segment. Returns duration_s,
    active_ratio (share of active frames), peak_dbfs (loudest frame), rms_dbfs (whole clip),
    speech_s (total length of the segments) and longest_speech_s (the longest one).
    """
    duration = len(samples) / sample_rate
    rms_db = frame_levels(samples, sample_rate, frame_s)
    if len(rms_db) == 0:
        return {"duration_s": duration, "active_ratio": 0.0, "peak_dbfs": -180.0,
                "rms_dbfs": -180.0, "speech_s": 0.0, "longest_speech_s": 0.0}
    overall = 20 * np.log10(np.sqrt((samples.astype(np.float64) ** 2).mean()) + 1e-9)
    floor = np.percentile(rms_db, 10)
    active = (rms_db > threshold_dbfs) & (rms_db > floor + margin_db)
    segments = speech_segments(active, max(int(frame_s * sample_rate), 1) / sample_rate, hangover_s)
    lengths = [end - start for start, end in segments]
    return {"duration_s": duration, "active_ratio": float(active.mean()),
            "peak_dbfs": float(rms_db.max()), "rms_dbfs": float(overall),
            "speech_s": float(sum(lengths)), "longest_speech_s": float(max(lengths, default=0.0))}
