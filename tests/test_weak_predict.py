"""Predict on a corpus's dataset and weak labels: provenance checked, target labels never read."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from affectflow.predict.corpus import predict_dataset
from affectflow.predict.weak import make_weak_labels
from affectflow.train.dataset import assemble_dataset, load_dataset, modality_sources
from affectflow.train.run import train_to_files
from affectflow.train.weak import attach_weak_labels, read_weak_table

from test_models import LABELS, toy_corpus  # noqa: F401 - toy_corpus is a fixture

MODALITIES = {"audio": {"extractor": "egemaps", "view": "pooled"}, "text": "text"}
TASKS = {"sentiment_class": {"weight": 1.0}, "flag": {"weight": 1.0}}


@pytest.fixture()
def labeler(toy_corpus, tmp_path):  # noqa: F811
    root, _ = toy_corpus
    stores, views = modality_sources(root, MODALITIES)
    assemble_dataset(root / "manifest.parquet", stores, LABELS, root / "ds.npz", views=views)
    weights = [tmp_path / f"s{s}" / "model.pt" for s in (0, 1)]
    train_to_files(root / "ds.npz", "linear", [0, 1], TASKS, {"max_epochs": 3}, "cpu",
                   [tmp_path / f"s{s}" / "result.json" for s in (0, 1)], weights, corpus="toy")
    return root, stores, views, weights


def test_weak_labels_never_read_the_target_labels(labeler, tmp_path) -> None:
    root, stores, views, weights = labeler
    info = make_weak_labels(weights, "sentiment_class", root / "ds.npz", tmp_path / "w1.parquet",
                            "sentiment_w")
    assert info["kind"] == "categorical" and info["n"] == 11 and 0 <= info["confidence"] <= 1
    # the same corpus with every label shuffled (and one removed): identical weak labels
    frame = pd.read_parquet(root / "manifest.parquet")
    rng = np.random.default_rng(0)
    for column in ("emotion", "sentiment_class", "flag", "score"):
        frame[column] = rng.permutation(frame[column].to_numpy())
    frame.loc[0, "sentiment_class"] = None
    frame.to_parquet(root / "shuffled.parquet")
    assemble_dataset(root / "shuffled.parquet", stores, LABELS, root / "shuffled.npz", views=views)
    make_weak_labels(weights, "sentiment_class", root / "shuffled.npz", tmp_path / "w2.parquet",
                     "sentiment_w")
    meta1, table1 = read_weak_table(tmp_path / "w1.parquet")
    meta2, table2 = read_weak_table(tmp_path / "w2.parquet")
    assert meta1 == meta2 and table1.keys() == table2.keys()
    for u in table1:
        np.testing.assert_array_equal(table1[u], table2[u])
        assert table1[u].sum() == pytest.approx(1.0, abs=1e-5)  # soft targets: a distribution
    # joined as a weak task: soft targets, confidence as its default λ, trainable
    data = attach_weak_labels(load_dataset(root / "ds.npz"), [tmp_path / "w1.parquet"])
    assert data.weak == {"sentiment_w": meta1["confidence"]}
    assert data.splits["train"].labels["sentiment_w"].shape == (data.splits["train"].n, 3)
    result = train_to_files(root / "ds.npz", "linear", [0], {"flag": {}, "sentiment_w": {}}, {"max_epochs": 2},
                            "cpu", [tmp_path / "r.json"], [tmp_path / "m.pt"],
                            weak=[tmp_path / "w1.parquet"])[0]
    assert result["weak_tasks"] == ["sentiment_w"]
    assert result["task_specs"]["sentiment_w"]["soft"] and "sentiment_w" in result["test_metrics"]
    assert result["task_specs"]["sentiment_w"]["weight"] == pytest.approx(meta1["confidence"])


def test_predict_on_a_corpus_checks_provenance(labeler, tmp_path) -> None:
    root, stores, views, weights = labeler
    n = predict_dataset(weights, root / "ds.npz", tmp_path / "p.parquet", corpus="toy2")
    table = pd.read_parquet(tmp_path / "p.parquet")
    assert n == 11 and set(table["seed"]) == {"0", "1", "mean"}
    assert set(table["task"]) == set(TASKS) and (table["source_corpus"] == "toy").all()
    probs = table[table["task"] == "sentiment_class"][[f"prob_{c}" for c in LABELS["sentiment_class"]["classes"]]]
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    # features from another extractor version: a clear error naming the modality
    with np.load(root / "ds.npz") as data:
        arrays = dict(data)
    source = json.loads(str(arrays["source/audio"]))
    arrays["source/audio"] = np.array(json.dumps({**source, "params_hash": "0000"}))
    np.savez(tmp_path / "other.npz", **arrays)
    with pytest.raises(ValueError, match="audio: model"):
        predict_dataset(weights, tmp_path / "other.npz", tmp_path / "q.parquet")
