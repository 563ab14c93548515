"""The `ssl` extractor on tiny randomly initialised models of every supported family, built here
with `save_pretrained`: shapes, frame times, stitched windows, layer choice, batching that gives
what one window alone gives, and the offline refusal of a hub id."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectflow.features.base import ExtractorSetupError, Utterance
from affectflow.features.extractors.ssl import load_encoder
from affectflow.features.registry import build
from affectflow.features.runner import run_extractor_shard
from affectflow.ingest.manifest import IngestOptions
from affectflow.ingest.run import ingest_corpus
from affectflow.media.audio import load_audio

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
             conv_dim=(8,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2)
FAMILIES = ["wav2vec2", "wav2vec2_stable", "hubert", "data2vec", "wavlm", "whisper"]


def _save(kind: str, folder: Path) -> str:
    import torch
    import transformers as tf

    torch.manual_seed(0)
    if kind == "whisper":
        config = tf.WhisperConfig(d_model=32, encoder_layers=2, decoder_layers=1, encoder_attention_heads=2,
                                  decoder_attention_heads=2, encoder_ffn_dim=37, decoder_ffn_dim=37,
                                  num_mel_bins=80, vocab_size=100, max_target_positions=32, pad_token_id=0,
                                  bos_token_id=1, eos_token_id=2, decoder_start_token_id=1)
        tf.WhisperModel(config).save_pretrained(folder)
        tf.WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
        return str(folder)
    classes = {"wav2vec2": (tf.Wav2Vec2Config, tf.Wav2Vec2Model, {}),
               "wav2vec2_stable": (tf.Wav2Vec2Config, tf.Wav2Vec2Model,
                                   {"do_stable_layer_norm": True, "feat_extract_norm": "layer"}),
               "hubert": (tf.HubertConfig, tf.HubertModel, {}),
               "data2vec": (tf.Data2VecAudioConfig, tf.Data2VecAudioModel, {}),
               "wavlm": (tf.WavLMConfig, tf.WavLMModel, {})}
    config_class, model_class, extra = classes[kind]
    model_class(config_class(**SMALL, **extra)).save_pretrained(folder)
    if kind != "hubert":  # hubert: no preprocessor config, the default normalisation applies
        tf.Wav2Vec2FeatureExtractor(do_normalize=kind != "wavlm").save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("ssl_models")
    return {kind: _save(kind, root / kind) for kind in FAMILIES}


@pytest.fixture(scope="module")
def speech(shared_media: Path) -> np.ndarray:
    return load_audio(str(shared_media / "jfk.flac"), 16000)


def _utt(name: str, samples: np.ndarray) -> Utterance:
    return Utterance(name, None, None, None, None, "", audio=samples)


@pytest.mark.parametrize("kind", FAMILIES)
def test_frames_times_and_batching(models: dict[str, str], speech: np.ndarray, kind: str) -> None:
    clips = [speech[:16000], speech[:int(16000 * 2.3)], speech[4000:16000 * 3]]
    extractor = build("ssl", {"model": models[kind], "batch_size": 3, "device": "cpu"})
    batched = extractor.extract_batch([_utt(str(i), c) for i, c in enumerate(clips)])
    sequence, pooled = extractor.names()
    assert len(sequence) == 32 and len(pooled) == 64
    for clip, result in zip(clips, batched):
        n = int(np.ceil(len(clip) / 320))
        assert abs(len(result.values) - n) <= 1 and result.values.shape[1] == 32
        np.testing.assert_allclose(result.times, (np.arange(len(result.values)) + 0.5) * 0.02, atol=1e-6)
        np.testing.assert_allclose(result.pooled, np.concatenate([result.values.mean(0), result.values.std(0)]),
                                   atol=1e-5)
        alone = build("ssl", {"model": models[kind], "batch_size": 1, "device": "cpu"}).extract(_utt("x", clip))
        np.testing.assert_allclose(result.values, alone.values, atol=1e-4)


def test_padding_check_finds_the_model_that_sees_padding(models: dict[str, str]) -> None:
    exact = {kind: load_encoder(models[kind], False, "cpu").pads_exactly for kind in FAMILIES}
    assert exact == {"wav2vec2": True, "wav2vec2_stable": True, "hubert": True, "data2vec": False,
                     "wavlm": True, "whisper": True}


def test_long_audio_is_stitched_from_overlapping_windows(models: dict[str, str], speech: np.ndarray) -> None:
    clip = speech[: 16000 * 7]
    windowed = build("ssl", {"model": models["wav2vec2"], "window_s": 2.0, "overlap_s": 0.6,
                             "device": "cpu"}).extract(_utt("long", clip))
    whole = build("ssl", {"model": models["wav2vec2"], "window_s": 30.0, "device": "cpu"}).extract(_utt("w", clip))
    assert len(windowed.values) == len(whole.values) == 349
    assert np.all(np.diff(windowed.times) > 0.0199) and np.all(np.diff(windowed.times) < 0.0201)
    # Far from a window's edge the stitched frames are close to the whole-clip ones (the context
    # differs, so not equal); at 0.6 s of overlap, every frame has context on both sides.
    similarity = (windowed.values * whole.values).sum(1) / (
        np.linalg.norm(windowed.values, axis=1) * np.linalg.norm(whole.values, axis=1))
    assert np.median(similarity) > 0.9


def test_whisper_pads_to_30_s_and_trims(models: dict[str, str], speech: np.ndarray) -> None:
    long = np.concatenate([speech, speech, speech])[: 16000 * 33]
    result = build("ssl", {"model": models["whisper"], "device": "cpu"}).extract(_utt("w", long))
    assert len(result.values) == 1650  # a full 30 s window (1,500 frames) and 3 s of the next


def test_layers_one_list_or_all(models: dict[str, str], speech: np.ndarray) -> None:
    clip = _utt("a", speech[:16000])
    first = build("ssl", {"model": models["hubert"], "layers": 0, "device": "cpu"})
    both = build("ssl", {"model": models["hubert"], "layers": [0, -1], "device": "cpu"})
    every = build("ssl", {"model": models["hubert"], "layers": "all", "device": "cpu"})
    a, b, c = first.extract(clip), both.extract(clip), every.extract(clip)
    assert (a.values.shape[1], b.values.shape[1], c.values.shape[1]) == (32, 64, 96)
    np.testing.assert_allclose(b.values[:, :32], a.values, atol=1e-6)
    np.testing.assert_allclose(c.values[:, 64:], b.values[:, 32:], atol=1e-6)
    assert both.names()[0][32] == "l02_0000" and every.names()[0][-1] == "l02_0031"
    with pytest.raises(ExtractorSetupError, match="out of range"):
        build("ssl", {"model": models["hubert"], "layers": 5, "device": "cpu"}).extract(clip)


def test_a_hub_id_is_refused_offline(speech: np.ndarray) -> None:
    with pytest.raises(ExtractorSetupError, match="not in the local Hugging Face cache.*allow_download"):
        build("ssl", {"model": "facebook/hubert-not-a-real-model"}).extract(_utt("a", speech[:16000]))


def test_a_bad_parameter_names_itself() -> None:
    with pytest.raises(ValueError, match="extractors.ssl.layers"):
        build("ssl", {"layers": "some"})
    with pytest.raises(ValueError, match="window_sec"):
        build("ssl", {"window_sec": 3})


def test_runner_and_device_or_batch_size_outside_the_cache_key(tmp_path: Path, shared_media: Path,
                                                               models: dict[str, str]) -> None:
    rows = [{"utt_id": f"jfk{i}", "audio_path": str(shared_media / "jfk.flac"), "start_s": i,
             "end_s": i + 1.5 + i, "split": "train"} for i in range(3)]
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    manifest = tmp_path / "m.parquet"
    ingest_corpus(tmp_path / "m.csv", manifest, tmp_path / "r.parquet", IngestOptions("t", 1))
    audio = tmp_path / "audio.parquet"
    run_extractor_shard(manifest, 0, "audio", {}, audio)
    out, cache = tmp_path / "ssl" / "shard=0.parquet", tmp_path / "cache.parquet"
    params = {"model": models["wavlm"], "batch_size": 2, "device": "cpu"}
    first = run_extractor_shard(manifest, 0, "ssl", params, out, cache, {"audio": audio})
    assert first.processed == 3 and not first.rejected
    assert pd.read_parquet(out).set_index("utt_id")["n_steps"].to_dict() == {"jfk0": 74, "jfk1": 124, "jfk2": 174}  # (n - 400) // 320 + 1: valid convolutions
    out.unlink()
    again = run_extractor_shard(manifest, 0, "ssl", {**params, "batch_size": 3, "device": "auto",
                                                      "half_on_gpu": False}, out, cache, {"audio": audio})
    assert (again.processed, again.reused) == (0, 3)
    assert run_extractor_shard(manifest, 0, "ssl", {**params, "layers": 0}, out, cache,
                               {"audio": audio}).processed == 3
