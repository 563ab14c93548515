"""Dataset assembly options: per-speaker normalisation and fold split columns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

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


def test_history_modalities_hold_the_previous_turns(tmp_path: Path) -> None:
    """`text@k` is the k-th previous turn of the dialogue (by turn number, including rows
    without a split), zeros of length 1 at a dialogue's start; it never removes a row."""
    ids = ["a0", "a1", "a2", "b0", "b1"]
    values = {u: np.full((i + 1, 2), float(n), np.float32) for n, (i, u) in enumerate(zip([0, 1, 2, 0, 1], ids))}
    rows = [StoreRow(u, "sig", FeatureResult(v, v.mean(0))) for u, v in values.items()]
    write_partition(tmp_path / "store" / "shard=0.parquet", rows, Provenance("toy", "1", {}))
    manifest = pd.DataFrame({"utt_id": ids, "dialogue_id": ["a", "a", "a", "b", "b"], "turn": [0, 1, 2, 0, 1],
                             "speaker": ["x", "y", "x", "x", "y"],
                             "split": ["", "train", "train", "test", "test"], "label": ["p", "q", "p", "q", "p"]})
    manifest.sample(frac=1, random_state=0).to_parquet(tmp_path / "manifest.parquet")  # order must not matter
    store = str(tmp_path / "store")
    counts = assemble_dataset(tmp_path / "manifest.parquet", {"text": store, "text@1": store, "text@2": store},
                              {"label": {"type": "categorical", "classes": ["p", "q"]}}, tmp_path / "d.npz",
                              histories={"text@1": 1, "text@2": 2})
    assert counts == {"split": {"train": 2, "valid": 0, "test": 2}}
    data = load_dataset(tmp_path / "d.npz")
    train, test = data.splits["train"], data.splits["test"]
    assert train.utt_ids == ["a1", "a2"] and test.utt_ids == ["b0", "b1"]
    x1, n1 = train.features["text@1"]
    assert list(n1) == [1, 2] and x1[0, 0, 0] == 0.0 and x1[1, 0, 0] == 1.0  # a0 (no split) counts as a turn
    x2, _ = train.features["text@2"]
    assert not x2[0].any() and x2[1, 0, 0] == 0.0  # a2's second previous turn is a0 (value 0)
    xb, nb = test.features["text@1"]
    assert not xb[0].any() and nb[0] == 1 and xb[1, 0, 0] == 3.0  # b0 opens its dialogue


def test_history_modality_names_carry_their_depth() -> None:
    from affectflow.train.dataset import modality_histories

    assert modality_histories({"text": "text", "text@2": {"extractor": "text", "history": 2}}) == {"text@2": 2}
    with pytest.raises(ValueError, match="named <name>@<k>"):
        modality_histories({"text@1": {"extractor": "text", "history": 2}})
    with pytest.raises(ValueError, match="named <name>@<k>"):
        modality_histories({"prev": {"extractor": "text", "history": 1}})
