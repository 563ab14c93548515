"""Video decoding for the face extractor: frames of a segment, resampled to a fixed rate.

Decoding goes through PyAV (FFmpeg inside the wheel). Times are seconds from the container's
start (what players and ``ffmpeg -ss`` show), so odd stream start times (MPEG-TS, edit lists)
do not shift segments. Frames are picked as the decoded frame nearest to each target time on a
regular grid, which works the same for constant and variable frame rate streams. Failures raise
`MediaError` with a reason a user can act on (missing, corrupt, truncated, no video...).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Iterator

import av
import numpy as np

from affectflow.media.errors import MediaError

# Seek this far before the segment start so the nearest frame before it is also decoded.
_SEEK_MARGIN_S = 1.0
# A stream that stops this much (or 3 frames, if longer) before the duration its header
# claims is reported as truncated rather than silently giving a short segment.
_TRUNCATION_TOLERANCE_S = 0.5


@dataclass(frozen=True)
class MediaInfo:
    """What a media file holds, from its headers (no decoding). None where unknown/absent."""

    duration_s: float | None
    has_audio: bool
    has_video: bool
    video_fps: float | None
    width: int | None
    height: int | None
    audio_sample_rate: int | None
    audio_channels: int | None


def _name(path: str) -> str:
    return os.path.basename(path) or path


def _open(path: str) -> av.container.InputContainer:
    """Open `path` for reading, turning every failure into a MediaError."""
    if not os.path.exists(path):
        raise MediaError(f"media file not found: {path}")
    if not os.path.isfile(path):
        raise MediaError(f"media path is not a file: {path}")
    if os.path.getsize(path) == 0:
        raise MediaError(f"media file is empty (0 bytes): {path}")
    try:
        return av.open(path, mode="r", metadata_errors="ignore")
    except av.error.InvalidDataError as error:
        raise MediaError(
            f"cannot read {_name(path)}: not a valid media file, or corrupt/truncated "
            f"(e.g. an mp4 cut before its index) [FFmpeg: {error.strerror}]") from error
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as error:
        raise MediaError(f"cannot open media {_name(path)}: {error}") from error


def _container_duration(container: av.container.InputContainer) -> float | None:
    """Container duration in seconds, else the longest stream's, else None."""
    if container.duration is not None and container.duration > 0:
        return container.duration / av.time_base
    durations = [float(s.duration * s.time_base) for s in container.streams
                 if s.duration is not None and s.time_base is not None]
    return max(durations) if durations else None


def _stream_fps(stream: av.video.stream.VideoStream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate.denominator != 0 and 0 < float(rate) < 1000:
            return float(rate)
    return None


def probe_media(path: str) -> MediaInfo:
    """Describe `path` from its headers; raises MediaError when it cannot be opened."""
    with _open(path) as container:
        video = container.streams.video[0] if container.streams.video else None
        audio = container.streams.audio[0] if container.streams.audio else None
        return MediaInfo(
            duration_s=_container_duration(container),
            has_audio=audio is not None,
            has_video=video is not None,
            video_fps=_stream_fps(video) if video is not None else None,
            width=(video.codec_context.width or None) if video is not None else None,
            height=(video.codec_context.height or None) if video is not None else None,
            audio_sample_rate=(audio.codec_context.sample_rate or None) if audio else None,
            audio_channels=(audio.codec_context.channels or None) if audio else None,
        )


def _origin_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    """Absolute time (s) that time 0 of the file refers to: the container start."""
    if container.start_time is not None:
        return container.start_time / av.time_base
    if stream.start_time is not None:
        return float(stream.start_time * stream.time_base)
    return 0.0


def _video_end_s(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 origin: float) -> float | None:
    """Where the headers say the video stream ends, in file time (None when they do not say)."""
    if stream.duration is not None and stream.duration > 0:
        start = float(stream.start_time * stream.time_base) if stream.start_time is not None else origin
        return start + float(stream.duration * stream.time_base) - origin
    return _container_duration(container)


def _decoded_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                    origin: float, errors: list[str]) -> Iterator[tuple[float, av.VideoFrame]]:
    """(file time, frame) in presentation order; bad packets are skipped and noted in `errors`."""
    step = 1.0 / (_stream_fps(stream) or 25.0)
    last = -math.inf
    try:
        packets = container.demux(stream)
        for packet in packets:
            try:
                frames = packet.decode()
            except (av.error.FFmpegError, ValueError) as error:
                errors.append(str(error))
                continue
            for frame in frames:
                if frame.pts is None:  # no timestamp: assume the nominal frame step
                    t = last + step if math.isfinite(last) else 0.0
                else:
                    t = float(frame.pts * (frame.time_base or stream.time_base)) - origin
                if t <= last:  # broken timestamps going backwards: keep the stream monotonic
                    continue
                last = t
                yield t, frame
    except (av.error.FFmpegError, ValueError) as error:  # demuxer gave up (cut file)
        errors.append(str(error))


def _to_rgb(frame: av.VideoFrame, max_side: int | None) -> np.ndarray:
    """(H, W, 3) uint8 RGB, downscaled (area filter) so the longer side is <= max_side, upright."""
    width, height = frame.width, frame.height
    if max_side is not None and max(width, height) > max_side:
        scale = max_side / max(width, height)
        width, height = max(2, round(width * scale)), max(2, round(height * scale))
    if (width, height) == (frame.width, frame.height):
        image = frame.to_ndarray(format="rgb24")
    else:
        image = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
    # Display-matrix rotation (phone videos): `rotation` is counter-clockwise, like np.rot90.
    quarter_turns = round((frame.rotation or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(image, quarter_turns)) if quarter_turns else image


def read_video_frames(path: str, fps: float, start_s: float | None = None,
                      end_s: float | None = None,
                      max_side: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Frames of [start_s, end_s) at `fps`: (times (T,) float32 s from start_s, (T,H,W,3) uint8 RGB).

    Target times are start_s + k/fps; each takes the decoded frame nearest to it. Seeks to the
    keyframe before start_s, so segments deep in long files cost only their own decoding. Without
    end_s the segment runs to the end of the video. A segment reaching past the end of the video
    stops there; a stream that ends well before the duration its header claims raises (truncated).
    Holds every frame in memory; `iter_video_frames` streams them instead.
    """
    times, frames = [], []
    for t, frame in iter_video_frames(path, fps, start_s, end_s, max_side):
        times.append(t)
        frames.append(frame)
    return np.array(times, dtype=np.float32), np.stack(frames)


@dataclass
class _Scan:
    """What a pass over the stream learnt: how far it decoded, which FFmpeg errors it skipped."""

    covered_until: float | None = None
    reached_end: bool = False  # decoded to the end of the stream (not stopped after the segment)
    errors: list[str] = field(default_factory=list)


def iter_video_frames(path: str, fps: float, start_s: float | None = None,
                      end_s: float | None = None,
                      max_side: int | None = None) -> Iterator[tuple[float, np.ndarray]]:
    """Stream (time s from start_s, (H,W,3) uint8 RGB) pairs, as `read_video_frames` returns them.

    Errors (MediaError) surface while iterating; a truncated file raises after the frames it
    did hold, so consume the iterator to the end before trusting what it gave.
    """
    if not fps or fps <= 0 or not math.isfinite(fps):
        raise ValueError(f"fps must be a positive number, got {fps}")
    start = max(float(start_s or 0.0), 0.0)
    if end_s is not None and end_s <= start:
        raise MediaError(f"empty segment [{start_s}, {end_s}) in {_name(path)}")
    with _open(path) as container:
        if not container.streams.video:
            raise MediaError(f"no video stream in {_name(path)}")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        origin = _origin_s(container, stream)
        claimed_end = _video_end_s(container, stream, origin)
        frame_s = 1.0 / (_stream_fps(stream) or 25.0)
        seg_end = float(end_s) if end_s is not None else (claimed_end or math.inf)
        if claimed_end is not None and start >= claimed_end:
            raise MediaError(f"segment [{start:.2f}, {seg_end:.2f}) starts after the video "
                                  f"of {_name(path)} ends ({claimed_end:.2f} s)")
        seeked = start > _SEEK_MARGIN_S
        if seeked:
            try:
                seek_to = origin + start - _SEEK_MARGIN_S
                container.seek(int(seek_to / stream.time_base), stream=stream, backward=True)
            except (av.error.FFmpegError, OverflowError, ValueError):
                container.seek(0)  # unseekable: decode from the start
        scan = _Scan()
        picks = _pick_frames(container, stream, origin, fps, start, seg_end, max_side, scan)
        first = next(picks, None)
        if seeked and first is not None and first[0] > start + 2.0 / fps:
            # The seek landed past the segment start (bad index): decode from the beginning.
            container.seek(0)
            scan = _Scan()
            picks = _pick_frames(container, stream, origin, fps, start, seg_end, max_side, scan)
            first = next(picks, None)
        if first is None:
            reason = f" [FFmpeg: {scan.errors[-1]}]" if scan.errors else ""
            raise MediaError(f"no video frames decoded in segment [{start:.2f}, "
                                  f"{seg_end:.2f}) of {_name(path)}{reason}")
        yield first[0] - start, first[1]
        for t, image in picks:
            yield t - start, image
        expected_end = min(seg_end, claimed_end) if claimed_end is not None else None
        if (scan.reached_end and expected_end is not None and scan.covered_until is not None
                and expected_end - scan.covered_until > max(_TRUNCATION_TOLERANCE_S, 3 * frame_s)):
            reason = f" [FFmpeg: {scan.errors[-1]}]" if scan.errors else ""
            raise MediaError(
                f"video of {_name(path)} stops at {scan.covered_until:.2f} s but its header says "
                f"{claimed_end:.2f} s: file truncated or corrupt{reason}")


def _pick_frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream,
                 origin: float, fps: float, start: float, seg_end: float, max_side: int | None,
                 scan: _Scan) -> Iterator[tuple[float, np.ndarray]]:
    """(target time, RGB image) with the nearest decoded frame for each start + k/fps < seg_end.

    Records in `scan` the file time up to which frames were decoded and the FFmpeg errors.
    """
    frame_s = 1.0 / (_stream_fps(stream) or 25.0)
    # Targets before the first or after the last frame take it only when this close; gaps inside
    # a variable-rate stream always take the nearest frame (the screen shows one of them).
    max_gap = max(2 * frame_s, 1.0 / fps)
    converted: dict[float, np.ndarray] = {}  # a frame picked for several targets converts once

    def image_of(t: float, frame: av.VideoFrame) -> np.ndarray:
        if t not in converted:
            converted.clear()
            converted[t] = _to_rgb(frame, max_side)
        return converted[t]

    k = 0
    target = start
    prev: tuple[float, av.VideoFrame] | None = None
    for t, frame in _decoded_frames(container, stream, origin, scan.errors):
        scan.covered_until = t + frame_s
        while target < seg_end and target <= t:
            if prev is not None and target - prev[0] <= t - target:
                yield target, image_of(*prev)
            elif prev is not None or t - target <= max_gap:  # before the first frame: if close
                yield target, image_of(t, frame)
            k += 1
            target = start + k / fps
        if target >= seg_end:
            return
        prev = (t, frame)
    scan.reached_end = True
    if prev is not None and scan.covered_until is not None:
        # Past the last frame: targets within its display time (and max_gap) still take it.
        while (target < seg_end and target - prev[0] <= max_gap
               and target < scan.covered_until - 1e-6):
            yield target, image_of(*prev)
            k += 1
            target = start + k / fps
