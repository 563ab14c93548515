"""The word-aligned view against a literal per-word loop: the function, the training dataset's
`aligned` view and the MMSA `aligned_50` export."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd

from affectflow.features.base import FeatureResult
from affectflow.features.store import Provenance, StoreRow, write_partition
from affectflow.formats.aligned import align_to_words
from affectflow.formats.mmsa import export_mmsa
from affectflow.train.dataset import assemble_dataset, load_dataset


def literal(values: np.ndarray, times: np.ndarray, words: np.ndarray, points: bool) -> np.ndarray:
    """Per word: the mean of the frames (centre ± half the median step; points for tokens) that
    overlap it by more than 1e-5 s, else the frame whose centre is nearest the word's middle."""
    half = 0.0 if points else float(np.median(np.diff(times))) / 2
    out = []
    for start, end in words:
        inside = [v for v, t in zip(values, times)
                  if (points and start + 1e-5 < t < end - 1e-5)
                  or (not points and min(t + half, end) - max(t - half, start) > 1e-5)]
        if inside:
            out.append(np.mean(inside, axis=0))
        else:
            out.append(values[int(np.argmin(np.abs(times - (start + end) / 2)))])
    return np.array(out, np.float32)


def _words(rng: np.random.Generator, duration: float) -> np.ndarray:
    """Words with gaps between them, some shorter than a 20 ms frame."""
    edges = np.sort(rng.uniform(0.05, duration - 0.05, 2 * int(rng.integers(3, 12))))
    words = edges.reshape(-1, 2)
    words[::3, 1] = words[::3, 0] + 0.004  # a few words of 4 ms
    return words


def test_align_to_words_is_the_literal_loop() -> None:
    rng = np.random.default_rng(0)
    for _ in range(30):
        duration = rng.uniform(0.5, 4.0)
        times = (np.arange(int(duration / 0.02)) + 0.5) * 0.02
        values = rng.standard_normal((len(times), 3))
        words = _words(rng, duration)
        np.testing.assert_allclose(align_to_words(values, times, words), literal(values, times, words, False),
                                   atol=1e-5)
        # Tokens at their word's centre (two tokens in some words): points.
        token_times = np.repeat(words.mean(axis=1), rng.integers(1, 3, len(words)))
        tokens = rng.standard_normal((len(token_times), 4))
        np.testing.assert_allclose(align_to_words(tokens, token_times, words, points=True),
                                   literal(tokens, token_times, words, True), atol=1e-5)


def _corpus(root: Path) -> tuple[pd.DataFrame, dict[str, Path], dict[str, list]]:
    rng = np.random.default_rng(1)
    rows: dict[str, list[StoreRow]] = {"text": [], "audio": [], "vision": []}
    records, frames = [], {"audio": [], "vision": []}
    for i in range(9):
        duration = rng.uniform(1.0, 3.0)
        words = _words(rng, duration)
        token_times = np.repeat(words.mean(axis=1), 2)
        text = rng.standard_normal((len(token_times), 6))
        rows["text"].append(StoreRow(f"u{i}", "t", FeatureResult(text, text.mean(0), token_times)))
        for name, rate, dim in (("audio", 50, 5), ("vision", 5, 4)):
            t = (np.arange(int(duration * rate)) + 0.5) / rate
            values = rng.standard_normal((len(t), dim))
            rows[name].append(StoreRow(f"u{i}", "a", FeatureResult(values, values.mean(0), t)))
            frames[name].append((values, t, words))
        records.append({"utt_id": f"u{i}", "split": ["train", "valid", "test"][i % 3], "speaker": "s",
                        "transcript": " ".join(f"w{k}" for k in range(len(words))),
                        "sentiment": float(rng.uniform(-3, 3)),
                        "words": [{"word": f"w{k}", "start_s": float(a), "end_s": float(b)}
                                  for k, (a, b) in enumerate(words)]})
    stores = {}
    for name, store_rows in rows.items():
        write_partition(root / name / "shard=0.parquet", store_rows,
                        Provenance("text" if name == "text" else "egemaps", "1", {}, "toy", 0))
        stores[name] = root / name
    return pd.DataFrame(records), stores, frames


def test_aligned_view_puts_every_modality_on_the_words(tmp_path: Path) -> None:
    manifest, stores, frames = _corpus(tmp_path / "stores")
    manifest.loc[8, "words"] = None  # no word times: left out of an aligned dataset
    manifest.to_parquet(tmp_path / "manifest.parquet")
    labels = {"sentiment": {"type": "regression", "min": -3, "max": 3}}
    views = {"text": "aligned", "audio": "aligned", "vision": "aligned"}
    counts = assemble_dataset(tmp_path / "manifest.parquet", stores, labels, tmp_path / "d.npz",
                              views=views)
    assert counts == {"split": {"train": 3, "valid": 3, "test": 2}}
    data = load_dataset(tmp_path / "d.npz")
    for split in ("train", "valid", "test"):
        part = data.splits[split]
        assert "u8" not in part.utt_ids
        for i, utt in enumerate(part.utt_ids):
            k = int(utt[1:])
            n = len(manifest.loc[k, "words"])
            for name in ("text", "audio", "vision"):
                assert part.features[name][1][i] == n
            for name in ("audio", "vision"):
                values, t, words = frames[name][k]
                np.testing.assert_allclose(part.features[name][0][i, :n], literal(values, t, words, False),
                                           atol=1e-5)


def test_mmsa_aligned_export_takes_each_tokens_word(tmp_path: Path) -> None:
    manifest, stores, frames = _corpus(tmp_path / "stores")
    out = export_mmsa(manifest, stores, tmp_path / "aligned_50.pkl", aligned=True)
    with open(out, "rb") as handle:
        data = pickle.load(handle)
    for split, part in data.items():
        for i, utt in enumerate(part["id"]):
            k = int(utt[1:])
            values, t, words = frames["audio"][k]
            per_word = literal(values, t, words, False)
            expected = np.repeat(per_word, 2, axis=0)  # two tokens per word
            n = part["audio_lengths"][i]
            assert n == len(expected) == part["vision_lengths"][i]
            np.testing.assert_allclose(part["audio"][i, :n], expected, atol=1e-5)
