"""Union corpora (several datasets, one mapped label, speaker-independent and cross-corpus folds)
and the tone table (prediction probabilities → four tone scores with per-speaker z, read by the
narratives)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectflow.ingest.union import UnionPart, union_frame, write_union_manifest
from affectflow.narrative.rules import NarrativeConfig
from affectflow.narrative.stage import StageConfig, write_narratives
from affectflow.tone.stage import TONES, tone_table

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _frame(name: str, classes: list[str], speakers: int) -> pd.DataFrame:
    rows = [{"utt_id": f"u{s}_{i}", "speaker": f"{s:02d}", "audio_path": f"/{name}/{s}_{i}.wav",
             "emotion": c, "transcript": "x"} for s in range(speakers) for i, c in enumerate(classes)]
    return pd.DataFrame(rows)


PARTS = [UnionPart({"name": "emodb", "root": "/e"}, "emotion", {"anger": "anger", "neutral": "neutral"}),
         UnionPart({"name": "ravdess", "root": "/r"}, "emotion", {"angry": "anger", "neutral": "neutral"})]


def test_union_maps_labels_prefixes_ids_and_splits_by_speaker() -> None:
    frames = [_frame("e", ["anger", "neutral", "boredom"], 10), _frame("r", ["angry", "calm", "neutral"], 6)]
    union, left_out = union_frame(frames, PARTS, "tone")
    assert left_out == {"emodb": {"boredom": 10}, "ravdess": {"calm": 6}}
    assert len(union) == 20 + 12 and set(union["tone"]) == {"anger", "neutral"}
    assert union["utt_id"].is_unique and union["utt_id"].str.match(r"^(emodb|ravdess)_u").all()
    assert set(union.loc[union.dataset == "ravdess", "speaker"]) == {f"ravdess_{s:02d}" for s in range(6)}
    # split: each speaker in one split; every fifth speaker of each dataset is test, the next valid
    per_speaker = union.groupby("speaker")["split"].nunique()
    assert (per_speaker == 1).all()
    tests = sorted(union.loc[union.split == "test", "speaker"].unique())
    assert tests == ["emodb_00", "emodb_05", "ravdess_00", "ravdess_05"]
    # corpus folds: fold k tests on dataset k, trains on the other with its own valid speakers
    fold0 = union.groupby(["dataset", "split_corpus_00"]).size().to_dict()
    assert fold0 == {("emodb", "test"): 20, ("ravdess", "train"): 10, ("ravdess", "valid"): 2}
    assert set(union.loc[union.dataset == "ravdess", "split_corpus_01"]) == {"test"}


def test_union_names_a_missing_label_column() -> None:
    with pytest.raises(ValueError, match=r"union part 1 \(ravdess\): no label column 'emotion'"):
        union_frame([_frame("e", ["anger"], 2), _frame("r", ["angry"], 2).rename(columns={"emotion": "emo"})],
                    PARTS, "tone")


@pytest.mark.shared_data
def test_union_of_the_real_emodb_and_ravdess(tmp_path: Path) -> None:
    if not (SHARED / "emodb").exists() or not (SHARED / "ravdess").exists():
        if os.environ.get("CI") == "true":
            pytest.fail("../shared/data/emodb and ravdess are required under CI=true")
        pytest.skip("../shared/data/emodb or ravdess is absent")
    parts = [UnionPart({"name": "emodb", "root": str(SHARED / "emodb")}, "emotion",
                       {"neutral": "neutral", "happiness": "happiness", "sadness": "sadness", "anger": "anger",
                        "fear": "fear"}),
             UnionPart({"name": "ravdess", "root": str(SHARED / "ravdess")}, "emotion",
                       {"neutral": "neutral", "happy": "happiness", "sad": "sadness", "angry": "anger",
                        "fearful": "fear"})]
    summary = write_union_manifest(parts, "tone", tmp_path / "union.csv")
    assert summary["by_dataset"] == {"ravdess": 864, "emodb": 408}
    assert summary["left_out"]["emodb"] == {"boredom": 81, "disgust": 46}
    union = pd.read_csv(tmp_path / "union.csv")
    assert union["audio_path"].map(os.path.isabs).all() and union["speaker"].nunique() == 10 + 24


def _predictions(path: Path, n: int, seeds: tuple[str, ...] = ("0", "1", "mean")) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for seed in seeds:
        probs = rng.dirichlet(np.ones(5), size=n)
        for i in range(n):
            rows.append({"utt_id": f"u{i}", "task": "tone", "seed": seed, "model": "m",
                         **{f"prob_{c}": probs[i, j] for j, c in enumerate(["neutral", *TONES])}})
    pd.DataFrame(rows).to_parquet(path)


def test_tone_table_takes_the_seed_mean_and_z_scores_per_speaker(tmp_path: Path) -> None:
    _predictions(tmp_path / "pred.parquet", 8)
    pd.DataFrame({"utt_id": [f"u{i}" for i in range(8)], "speaker": ["a"] * 4 + ["b"] * 4}).to_parquet(
        tmp_path / "manifest.parquet")
    summary = tone_table(tmp_path / "pred.parquet", tmp_path / "manifest.parquet", "tone", tmp_path / "tone.parquet")
    table = pd.read_parquet(tmp_path / "tone.parquet")
    pred = pd.read_parquet(tmp_path / "pred.parquet")
    mean = pred[pred.seed == "mean"].set_index("utt_id")
    np.testing.assert_allclose(table.set_index("utt_id")["anger"], mean.loc[table["utt_id"], "prob_anger"])
    for tone in TONES:
        z = table.groupby("speaker")[f"{tone}_z"]
        np.testing.assert_allclose(z.mean(), 0, atol=1e-9)  # centred within each speaker
    assert summary["rows"] == 8
    with pytest.raises(ValueError, match="no 'emotion' predictions"):
        tone_table(tmp_path / "pred.parquet", tmp_path / "manifest.parquet", "emotion", tmp_path / "x.parquet")


def test_narrative_says_the_tone_above_two_z(tmp_path: Path) -> None:
    pd.DataFrame([{"utt_id": "u1", "speaker": "Ann", "transcript": "fine", "words": None}]).to_parquet(
        tmp_path / "manifest.parquet")
    pd.DataFrame([{"utt_id": "u1", "happiness_z": 0.5, "sadness_z": 2.4, "anger_z": 2.1, "fear_z": None}]).to_parquet(
        tmp_path / "tone.parquet")
    summary = write_narratives(tmp_path / "manifest.parquet", tmp_path / "out", NarrativeConfig(), StageConfig(),
                               tone=str(tmp_path / "tone.parquet"))
    text = pd.read_parquet(tmp_path / "out" / "narratives.parquet").set_index("family")["text"]
    assert summary["with_tone"] == 1
    assert text["vp"] == "Ann sadly said fine." and text["va"] == text["v"] == "Ann said fine."
