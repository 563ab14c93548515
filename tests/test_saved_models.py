"""Saved models are data, not code: svm estimators go through skops with a fixed type list, and
`load_model` reads a `model.pt` without running anything the file names."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from affectflow.train.classic import (SKOPS_TRUSTED_TYPES, UnsafeModelError, estimators_blob,
                                      load_estimators, pooled_matrix, train_svm_seed)
from affectflow.train.data import apply_standardiser
from affectflow.train.dataset import load_dataset
from affectflow.train.run import train_to_files
from affectflow.train.saved import FORMAT, load_model

from test_models import LABELS, RING_TASKS, ring_data, toy_corpus  # noqa: F401 - toy_corpus is a fixture

TASKS = {"sentiment_class": {"weight": 1.0}, "flag": {"weight": 1.0}, "score": {"weight": 0.5}}


class Payload:
    """Pickled, it asks the unpickler to run `touch <marker>`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class SetstatePayload:
    """Loaded by skops with its type trusted, its `__setstate__` creates the marker."""

    def __setstate__(self, state) -> None:
        Path(state["marker"]).touch()


def write_model_file(path: Path, blob: bytes) -> None:
    """A self-describing svm model file around `blob` (its estimators)."""
    torch.save({"format": FORMAT, "architecture": "svm", "model_id": "svm", "model_config": {},
                "hparams": {}, "seed": 0, "modality_dims": {"a": 2}, "views": {"a": "pooled"},
                "sources": {}, "norm_stats": {"a": (torch.zeros(2), torch.ones(2))},
                "task_specs": {"flag": {"kind": "binary", "loss": "bce", "weight": 1.0,
                                        "n_outputs": 1}},
                "valid_metrics": {}, "corpus": "", "fold": "", "state_dict": {},
                "sklearn": torch.frombuffer(bytearray(blob), dtype=torch.uint8)}, path)


def test_svm_model_file_round_trip_predicts_the_same(toy_corpus, tmp_path) -> None:
    import json

    from affectflow.train.dataset import assemble_dataset, modality_sources

    root, _ = toy_corpus
    stores, views = modality_sources(root, {"audio": {"extractor": "egemaps", "view": "pooled"}, "text": "text"})
    assemble_dataset(root / "manifest.parquet", stores, LABELS, root / "ds.npz", views=views)
    result, weights = tmp_path / "result.json", tmp_path / "model.pt"
    train_to_files(root / "ds.npz", "svm", [0], TASKS, {"svm_c": [0.5, 2.0]}, "cpu", [result], [weights])
    blob = bytes(torch.load(weights, weights_only=True)["sklearn"].numpy())
    assert blob[:2] == b"PK"  # a skops (zip) file, not a pickle
    saved = load_model(weights)
    estimators = saved.estimators
    assert set(estimators) == set(TASKS) and saved.architecture == "svm"
    norm = saved.norm_stats
    test = pooled_matrix(apply_standardiser(load_dataset(root / "ds.npz").splits["test"].features, norm))
    record = json.loads(result.read_text())
    np.testing.assert_allclose(estimators["score"].predict(test), record["test_predictions"]["score"], rtol=1e-5)
    np.testing.assert_array_equal(estimators["flag"].predict(test), record["test_predictions"]["flag_prob"])


def test_estimators_round_trip_every_kernel_and_task_kind() -> None:
    data = ring_data(sizes=(60, 20, 30))
    tasks = RING_TASKS
    x = np.random.default_rng(1).normal(size=(15, 3))
    for kernel in ("rbf", "linear", "poly", "sigmoid"):
        fitted = train_svm_seed(data, tasks, {"svm_c": [1.0], "svm_kernel": kernel}, seed=0)
        loaded = load_estimators(estimators_blob(fitted))
        assert set(loaded) == set(tasks)
        for task, estimator in fitted.estimators.items():
            np.testing.assert_array_equal(loaded[task].predict(x), estimator.predict(x))
    assert SKOPS_TRUSTED_TYPES == ["sklearn.svm._classes.SVC", "sklearn.svm._classes.SVR"]


def test_pickled_estimators_are_refused_and_never_run(tmp_path) -> None:
    marker = tmp_path / "PWNED"
    weights = tmp_path / "model.pt"
    write_model_file(weights, pickle.dumps({"flag": Payload(marker)}))
    with pytest.raises(UnsafeModelError, match=r"model\.pt: the svm estimators are not a skops file"):
        load_model(weights)
    with pytest.raises(UnsafeModelError, match="not a skops file"):
        load_estimators(pickle.dumps(Payload(marker)))
    assert not marker.exists()


def test_a_model_file_that_is_a_plain_pickle_is_refused(tmp_path) -> None:
    marker = tmp_path / "PWNED"
    weights = tmp_path / "model.pt"
    torch.save({"state_dict": {}, "sklearn": Payload(marker)}, weights)
    with pytest.raises(UnsafeModelError, match=r"weights_only=True"):
        load_model(weights)
    assert not marker.exists()


def test_skops_files_with_other_types_are_refused_naming_them(tmp_path) -> None:
    import skops.io
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    marker = tmp_path / "PWNED"
    evil = SetstatePayload()
    evil.marker = str(marker)
    blob = skops.io.dumps({"flag": evil})
    name = f"{SetstatePayload.__module__}.SetstatePayload"
    # the plain skops path, trusting what the file reports, would run the payload ...
    assert skops.io.get_untrusted_types(data=blob) == [name]
    with pytest.raises(UnsafeModelError, match=rf"refused: {name} \(ObjectNode\)"):
        load_estimators(blob)
    assert not marker.exists()
    write_model_file(tmp_path / "model.pt", blob)
    with pytest.raises(UnsafeModelError, match=rf"model\.pt: .*{name}"):
        load_model(tmp_path / "model.pt")
    assert not marker.exists()
    skops.io.loads(blob, trusted=[name])
    assert marker.exists()  # ... as it does here, so the refusal above is what kept it from running
    # scikit-learn types skops trusts by default but an svm run never writes are refused too
    x, y = np.random.default_rng(0).normal(size=(20, 2)), np.arange(20) % 2
    pipe = Pipeline([("scale", StandardScaler()), ("svm", SVC())]).fit(x, y)
    assert skops.io.get_untrusted_types(data=skops.io.dumps({"flag": pipe})) == []
    with pytest.raises(UnsafeModelError, match="sklearn.pipeline.Pipeline"):
        load_estimators(skops.io.dumps({"flag": pipe}))
    with pytest.raises(UnsafeModelError, match="SVC or SVR"):
        load_estimators(skops.io.dumps([SVC().fit(x, y)]))


def test_a_model_file_without_its_description_is_refused(tmp_path) -> None:
    weights = tmp_path / "model.pt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "model": "linear"}, weights)
    with pytest.raises(UnsafeModelError, match="not a self-describing"):
        load_model(weights)


def test_sqrt_width_block_scale_gives_every_modality_the_same_total_variance() -> None:
    rng = np.random.default_rng(0)
    features = {"wide": (rng.standard_normal((200, 1, 900)), np.ones(200, np.int64)),
                "narrow": (rng.standard_normal((200, 1, 9)), np.ones(200, np.int64))}
    plain = pooled_matrix(features)
    scaled = pooled_matrix(features, "sqrt_width")
    assert plain.shape == scaled.shape == (200, 909)
    narrow, wide = scaled[:, :9], scaled[:, 9:]  # sorted by name
    assert abs(narrow.var(axis=0).sum() - wide.var(axis=0).sum()) < 0.15
    np.testing.assert_allclose(scaled[:, 9:] * 30, plain[:, 9:])
