"""The Whisper encoder extractor: real speech, 50 Hz frames trimmed to the clip, batches equal to
one-by-one, long audio in 30 s windows, and no download unless allowed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectflow.features.base import ExtractorSetupError, Utterance
from affectflow.features.runner import run_extractor_shard
from affectflow.features.registry import build
from affectflow.ingest.manifest import IngestOptions
from affectflow.ingest.run import ingest_corpus
from affectflow.media.audio import load_audio



@pytest.fixture(scope="module")
def speech(shared_media: Path) -> np.ndarray:
    return load_audio(str(shared_media / "jfk.flac"), 16000)


def _utt(name: str, audio: np.ndarray) -> Utterance:
    return Utterance(name, None, None, None, None, "", audio=audio)


def test_states_at_50_hz_trimmed_to_the_utterance(speech: np.ndarray) -> None:
    result = build("whisper", {}).extract(_utt("a", speech[:16000 * 3]))
    assert result.values.shape == (150, 384) and result.pooled.shape == (768,)
    assert np.allclose(result.times[:2], [0.01, 0.03]) and abs(result.times[-1] - 2.99) < 1e-4
    assert np.all(np.isfinite(result.values)) and result.values.std() > 0.1
    # Speech and silence give different states (the encoder hears the signal).
    silent = build("whisper", {}).extract(_utt("s", np.zeros(16000 * 3, np.float32)))
    assert np.linalg.norm(result.pooled - silent.pooled) > 1.0


def test_a_batch_equals_one_by_one_and_long_audio_is_windowed(speech: np.ndarray) -> None:
    clips = [speech[:16000 * 2], speech, np.concatenate([speech] * 3)]  # 2 s, 11 s, 33 s
    batched = build("whisper", {"batch_size": 3}).extract_batch([_utt(str(i), c) for i, c in enumerate(clips)])
    for clip, result in zip(clips, batched):
        alone = build("whisper", {"batch_size": 1}).extract(_utt("x", clip))
        np.testing.assert_allclose(result.values, alone.values, atol=1e-4)
        assert len(result.values) == int(np.ceil(len(clip) / 16000 / 0.02))
    long = batched[2]
    assert len(long.values) == 1650  # 33 s: a full 30 s window and 3 s of the next


def test_a_model_not_on_disk_is_refused_without_download(speech: np.ndarray) -> None:
    with pytest.raises(ExtractorSetupError, match="not available offline"):
        build("whisper", {"model": "openai/whisper-large-v3-not-here"}).extract(_utt("a", speech[:16000]))


def test_shard_runner_batches_and_device_is_not_in_the_cache_key(tmp_path: Path, shared_media: Path) -> None:
    rows = [{"utt_id": f"jfk{i}", "audio_path": str(shared_media / "jfk.flac"), "start_s": i, "end_s": i + 2 + i,
             "split": "train"} for i in range(4)]
    pd.DataFrame(rows).to_csv(tmp_path / "m.csv", index=False)
    manifest = tmp_path / "m.parquet"
    ingest_corpus(tmp_path / "m.csv", manifest, tmp_path / "r.parquet", IngestOptions("t", 1))
    audio = tmp_path / "audio.parquet"
    run_extractor_shard(manifest, 0, "audio", {}, audio)
    out, cache = tmp_path / "whisper" / "shard=0.parquet", tmp_path / "cache.parquet"
    first = run_extractor_shard(manifest, 0, "whisper", {"batch_size": 2}, out, cache, {"audio": audio})
    assert first.processed == 4 and not first.rejected
    lengths = pd.read_parquet(out).set_index("utt_id")["n_steps"].to_dict()
    assert lengths == {"jfk0": 100, "jfk1": 150, "jfk2": 200, "jfk3": 250}
    out.unlink()
    again = run_extractor_shard(manifest, 0, "whisper", {"batch_size": 4, "device": "auto"}, out, cache, {"audio": audio})
    assert (again.processed, again.reused) == (0, 4)
