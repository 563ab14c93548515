"""Writing the demo media: 16-bit PCM wav (stdlib `wave`) and H.264 + AAC mp4 (PyAV).

Both writers are deterministic: the wav header carries no timestamps, and the mp4 is encoded
single-threaded (x264 and FFmpeg's native AAC encoder give identical bytes for identical input)
with no creation time in the container.
"""

from __future__ import annotations

import wave
from fractions import Fraction
from pathlib import Path
from typing import Callable

import av
import numpy as np


def write_wav(path: Path, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono int16 `samples` as a 16-bit PCM wav."""
    data = np.ascontiguousarray(samples, dtype="<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(int(sample_rate))
        w.writeframes(data.tobytes())


def write_mp4(
    path: Path, render: Callable[[int], np.ndarray], n_frames: int, fps: int, size: int,
    samples: np.ndarray, sample_rate: int, crf: int = 23,
) -> None:
    """Encode `n_frames` frames from `render(i)` (RGB uint8) as H.264 plus `samples` as AAC."""
    with av.open(str(path), mode="w", format="mp4") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        video.time_base = Fraction(1, fps)
        video.codec_context.thread_count = 1
        # Fixed GOP and no scene-cut decisions that depend on threading; bitexact metadata.
        video.options = {"preset": "veryfast", "crf": str(crf), "threads": "1", "g": str(2 * fps)}
        audio = container.add_stream("aac", rate=sample_rate, layout="mono")
        audio.codec_context.thread_count = 1
        pcm = np.ascontiguousarray(samples, dtype=np.int16)
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(render(i), format="rgb24")
            frame.pts = i
            for packet in video.encode(frame):
                container.mux(packet)
            # The audio that plays during this frame, so the streams interleave in the file.
            a0 = int(round(i * sample_rate / fps))
            a1 = len(pcm) if i == n_frames - 1 else int(round((i + 1) * sample_rate / fps))
            if a1 > a0:
                aframe = av.AudioFrame.from_ndarray(pcm[a0:a1].reshape(1, -1), format="s16", layout="mono")
                aframe.sample_rate = sample_rate
                aframe.pts = a0
                aframe.time_base = Fraction(1, sample_rate)
                for packet in audio.encode(aframe):  # PyAV converts to fltp and 1024-sample frames
                    container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        for packet in audio.encode(None):
            container.mux(packet)
