"""Video decoding on real clips: probing, segment sampling, seeking, VFR and broken files."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from affectflow.media.errors import MediaError
from affectflow.media.video import iter_video_frames, probe_media, read_video_frames

pytestmark = pytest.mark.shared_data

OBAMA = "obama_talking_head.mp4"
WOLFGANG = "WolfgangLanger_Pexels.mp4"


def write_indexed_video(path: Path, pts_ms: list[int], fmt: str = "mp4") -> None:
    """A 64x48 video whose frame i is uniformly grey at level 20*i, shown at pts_ms[i]."""
    with av.open(str(path), "w", format=fmt) as container:
        stream = container.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        for i, pts in enumerate(pts_ms):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 20 * i, np.uint8), format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def frame_indices(frames: np.ndarray) -> list[int]:
    return [int(round(v)) for v in frames[:, 24, 32, 0] / 20.0]


def test_probe_real_clips(shared_media: Path) -> None:
    info = probe_media(str(shared_media / OBAMA))
    assert info.has_video and info.has_audio
    assert (info.width, info.height) == (450, 450)
    assert info.video_fps == pytest.approx(25.0)
    assert info.duration_s == pytest.approx(20.0, abs=0.1)
    assert info.audio_sample_rate == 48000
    audio_only = probe_media(str(shared_media / "jfk.flac"))
    assert audio_only.has_audio and not audio_only.has_video and audio_only.width is None


def test_whole_clip_at_5_fps(shared_media: Path) -> None:
    times, frames = read_video_frames(str(shared_media / OBAMA), fps=5)
    assert frames.shape == (100, 450, 450, 3) and frames.dtype == np.uint8
    np.testing.assert_allclose(times, np.arange(100) * 0.2, atol=1e-5)
    assert frames[:, ::8, ::8].std() > 10  # real picture, not blank


def test_segment_frames_match_a_full_decode(shared_media: Path) -> None:
    """A segment deep in the file (decoded after a seek) gives the same frames as a full pass."""
    path = str(shared_media / OBAMA)
    times, frames = read_video_frames(path, fps=5, start_s=12.31, end_s=14.1, max_side=64)
    assert len(times) == 9  # 12.31, 12.51, ..., 13.91 (< 14.1)
    np.testing.assert_allclose(times, np.arange(9) * 0.2, atol=1e-5)
    _, every = read_video_frames(path, fps=25, end_s=14.2, max_side=64)  # one per source frame
    nearest = np.round((12.31 + times) * 25).astype(int)
    np.testing.assert_array_equal(frames, every[nearest])


def test_downscale_and_segment_past_the_end(shared_media: Path) -> None:
    times, frames = read_video_frames(str(shared_media / WOLFGANG), fps=2, max_side=320)
    assert frames.shape[1:] == (180, 320, 3)
    assert len(times) == 40  # 19.69 s at 2 fps
    times, _ = read_video_frames(str(shared_media / OBAMA), fps=5, start_s=18.0, end_s=25.0)
    np.testing.assert_allclose(times, np.arange(10) * 0.2, atol=1e-5)  # stops at the video end
    times, _ = read_video_frames(str(shared_media / OBAMA), fps=1, start_s=5.0, end_s=9.0)
    np.testing.assert_allclose(times, [0.0, 1.0, 2.0, 3.0], atol=1e-5)  # sparse sampling


def test_iterator_streams_the_same_frames(shared_media: Path) -> None:
    path = str(shared_media / "single_face.mp4")
    times, frames = read_video_frames(path, fps=5)
    streamed = list(iter_video_frames(path, fps=5))
    assert [t for t, _ in streamed] == pytest.approx(list(times))
    np.testing.assert_array_equal(np.stack([f for _, f in streamed]), frames)


def test_variable_frame_rate_takes_the_nearest_frame(tmp_path: Path) -> None:
    path = tmp_path / "vfr.mp4"
    write_indexed_video(path, [0, 40, 80, 200, 210, 220, 400, 440, 1000, 1040])
    times, frames = read_video_frames(str(path), fps=10)
    np.testing.assert_allclose(times, np.arange(11) * 0.1, atol=1e-5)
    assert frame_indices(frames) == [0, 2, 3, 5, 6, 7, 7, 7, 8, 8, 8]


def test_stream_not_starting_at_zero(tmp_path: Path) -> None:
    """An MPEG-TS whose timestamps start at 1.4 s: time 0 is its first frame."""
    path = tmp_path / "offset.ts"
    write_indexed_video(path, [1400 + 40 * i for i in range(12)], fmt="mpegts")
    times, frames = read_video_frames(str(path), fps=25, start_s=0.1, end_s=0.3)
    assert frame_indices(frames) == [2, 3, 4, 5, 6]
    np.testing.assert_allclose(times, np.arange(5) * 0.04, atol=1e-5)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not found"):
        read_video_frames(str(tmp_path / "nope.mp4"), fps=5)
    with pytest.raises(MediaError, match="not found"):
        probe_media(str(tmp_path / "nope.mp4"))


def test_truncated_mp4_with_index_at_the_end(shared_media: Path, tmp_path: Path) -> None:
    """The obama mp4 keeps its index (moov) last: half the file cannot even be opened."""
    data = (shared_media / OBAMA).read_bytes()
    cut = tmp_path / "half.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="corrupt/truncated"):
        read_video_frames(str(cut), fps=5)


def test_truncated_mp4_with_index_first(shared_media: Path, tmp_path: Path) -> None:
    """The Pexels mp4 keeps its index first: half the file decodes, then stops early."""
    data = (shared_media / WOLFGANG).read_bytes()
    cut = tmp_path / "half.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match=r"stops at 9\.\d+ s .* truncated"):
        read_video_frames(str(cut), fps=5)
    times, _ = read_video_frames(str(cut), fps=5, start_s=1.0, end_s=3.0)  # intact part: fine
    assert len(times) == 10


def test_garbage_and_empty_files(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, np.uint8).tobytes())
    with pytest.raises(MediaError, match="cannot"):
        read_video_frames(str(garbage), fps=5)
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        read_video_frames(str(empty), fps=5)


def test_no_video_stream_and_bad_segments(shared_media: Path) -> None:
    with pytest.raises(MediaError, match="no video stream"):
        read_video_frames(str(shared_media / "jfk.flac"), fps=5)
    path = str(shared_media / OBAMA)
    with pytest.raises(MediaError, match="empty segment"):
        read_video_frames(path, fps=5, start_s=3.0, end_s=3.0)
    with pytest.raises(MediaError, match="starts after the video"):
        read_video_frames(path, fps=5, start_s=30.0, end_s=35.0)
