"""Dataset assembly options: per-speaker normalisation and fold split columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from affectflow.features.base import FeatureResult
from affectflow.features.store import Provenance, StoreRow, write_partition
from affectflow.train.dataset import assemble_dataset, load_dataset, speaker_standardise


def test_speaker_standardise_uses_each_speakers_own_statistics() -> None:
    rng = np.random.default_rng(0)
    x = np.zeros((4, 3, 2), np.float32)
    lengths = np.array([3, 2, 3, 1])
    speakers = np.array(["a", "a", "b", "b"])
    x[:2] = rng.normal(10, 2, size=(2, 3, 2))
    x[2:] = rng.normal(-5, 0.5, size=(2, 3, 2))
    out = speaker_standardise(x, lengths, speakers)
    for speaker in "ab":
        rows = speakers == speaker
        valid = np.arange(3)[None, :] < lengths[rows][:, None]
        frames = out[rows][valid]
        assert np.allclose(frames.mean(axis=0), 0, atol=1e-5) and np.allclose(frames.std(axis=0), 1, atol=1e-4)
    assert np.array_equal(out[1, 2], x[1, 2]) and np.array_equal(out[3, 1:], x[3, 1:])  # padding untouched


def test_assemble_with_fold_column_and_speaker_normalisation(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ids = [f"u{i}" for i in range(12)]
    speakers = ["s1"] * 6 + ["s2"] * 6
    rows = [StoreRow(u, "sig", FeatureResult(rng.normal(3 * (s == "s2"), 1, size=(4, 2)), rng.normal(size=2),
                                             np.arange(4) * 0.1)) for u, s in zip(ids, speakers)]
    write_partition(tmp_path / "store" / "shard=0.parquet", rows, Provenance("toy", "1", {}))
    manifest = pd.DataFrame({"utt_id": ids, "speaker": speakers, "split": "train",
                             "split_cv_00": ["train", "train", "valid", "test", "", "train"] * 2,
                             "label": ["a", "b"] * 6})
    manifest.to_parquet(tmp_path / "manifest.parquet")
    labels = {"label": {"type": "categorical", "classes": ["a", "b"]}}
    counts = assemble_dataset(tmp_path / "manifest.parquet", {"m": str(tmp_path / "store")}, labels,
                              tmp_path / "d.npz", split_columns=["split_cv_00"],
                              normalise="speaker")
    assert counts == {"split_cv_00": {"train": 6, "valid": 2, "test": 2}}  # empty cells left out
    data = load_dataset(tmp_path / "d.npz", "split_cv_00")
    x = np.concatenate([data.splits[s].features["m"][0].reshape(-1, 2) for s in ("train", "valid", "test")])
    assert abs(x.mean()) < 0.2  # the speaker offset of 3 is gone
    assert data.splits["valid"].utt_ids == ["u2", "u8"]
