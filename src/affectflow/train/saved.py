"""Self-describing saved models: `save_model` writes one `model.pt`, `load_model` rebuilds it
with no training data at hand.

A file holds the architecture and its config, the trainer's config, modality names, sizes and
views, where each modality's features came from (extractor, version, params hash: `predict`
refuses features made otherwise), the normalisation statistics, the task specs with their label
vocabularies and scales, the seed, the validation metrics, and the weights (torch state_dict) or
the scikit-learn estimators (a skops file, never a pickle). It is read with
`torch.load(weights_only=True)`: tensors and plain containers only, so loading runs no code from
the file; the estimators are rebuilt by `affectflow.train.classic.load_estimators`, which accepts
SVC/SVR only.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch

from affectflow.atomic import atomic_path
from affectflow.train.classic import (UnsafeModelError, estimators_blob, load_estimators,
                                      pooled_matrix, svm_outputs)
from affectflow.train.data import Features, apply_standardiser
from affectflow.train.evaluation import predict_outputs
from affectflow.train.loop import SeedResult
from affectflow.train.models import MultiTaskModel, build_model, get_model, model_config
from affectflow.train.tasks import TaskSpec

FORMAT = 2


def save_model(path: str | os.PathLike[str], result: SeedResult, *, architecture: str,
               model_id: str, hparams: Mapping[str, Any], modality_dims: Mapping[str, int],
               views: Mapping[str, str], sources: Mapping[str, Any], corpus: str = "",
               fold: str = "") -> None:
    """Write `result`'s model as a self-describing file (atomically)."""
    config = dataclasses.asdict(model_config(architecture, hparams))
    blob = (torch.frombuffer(bytearray(estimators_blob(result)), dtype=torch.uint8)
            if result.estimators else torch.zeros(0, dtype=torch.uint8))
    saved = {
        "format": FORMAT, "architecture": architecture, "model_id": model_id,
        "model_config": config, "hparams": dict(hparams), "seed": int(result.seed),
        "modality_dims": {m: int(d) for m, d in modality_dims.items()},
        "views": dict(views), "sources": {m: dict(s) for m, s in sources.items()},
        "norm_stats": {m: (torch.as_tensor(mean), torch.as_tensor(std))
                       for m, (mean, std) in (result.norm_stats or {}).items()},
        "task_specs": {t: s.to_dict() for t, s in result.specs.items()},
        "valid_metrics": result.valid_metrics, "corpus": corpus, "fold": fold,
        "state_dict": result.model.state_dict() if result.model is not None else {},
        "sklearn": blob,
    }
    with atomic_path(path) as tmp:
        torch.save(saved, tmp)


@dataclass
class TrainedModel:
    """A model rebuilt from its file; `predict` labels raw (unstandardised) features."""

    path: str
    architecture: str
    model_id: str
    seed: int
    specs: dict[str, TaskSpec]
    modality_dims: dict[str, int]
    views: dict[str, str]
    sources: dict[str, dict[str, Any]]
    norm_stats: dict[str, tuple[np.ndarray, np.ndarray]]
    valid_metrics: dict[str, dict[str, float]]
    config: Any
    corpus: str
    module: MultiTaskModel | None = None
    estimators: dict[str, Any] | None = None

    @property
    def modalities(self) -> list[str]:
        return sorted(self.modality_dims)

    def check_sources(self, sources: Mapping[str, Mapping[str, Any]], where: str) -> None:
        """ValueError unless every modality's features come from the same extractor, version
        and parameters (params hash) as the model's training features."""
        bad = []
        for m in self.modalities:
            want, got = self.sources.get(m, {}), sources.get(m, {})
            keys = ("extractor", "version", "params_hash", "view")
            if want and any(str(want.get(k)) != str(got.get(k)) for k in keys):
                bad.append(f"{m}: model {[want.get(k) for k in keys]} vs "
                           f"{[got.get(k) for k in keys]}")
        if bad:
            raise ValueError(f"{where}: features differ from those {self.path} was trained on "
                             "(extractor, version, params hash, view): " + "; ".join(bad))

    def predict(self, features: Features, device: str = "cpu") -> dict[str, np.ndarray]:
        """Outputs keyed by `TaskSpec.prediction_key` (probabilities / clipped values)."""
        missing = [m for m in self.modalities if m not in features]
        if missing:
            raise ValueError(f"{self.path}: needs modalities {missing}")
        feats = {m: features[m] for m in self.modalities}
        for m, (x, _) in feats.items():
            if x.shape[2] != self.modality_dims[m]:
                raise ValueError(f"{self.path}: modality {m} has width {x.shape[2]}, the model "
                                 f"was trained on {self.modality_dims[m]}")
        z = apply_standardiser(feats, self.norm_stats)
        if self.module is not None:
            dev = torch.device(device)
            return predict_outputs(self.module.to(dev), z, dev)
        x = pooled_matrix(z, self.config.block_scale)
        return {s.prediction_key: svm_outputs(self.estimators[t], s, x)
                for t, s in self.specs.items()}


def load_model(path: str | os.PathLike[str]) -> TrainedModel:
    """Rebuild a `model.pt` written by `save_model` (UnsafeModelError for anything else)."""
    try:
        saved = torch.load(path, weights_only=True, map_location="cpu")
    except pickle.UnpicklingError as error:
        raise UnsafeModelError(f"{path}: refused by torch.load(weights_only=True): {error}") from None
    if not isinstance(saved, dict) or saved.get("format") != FORMAT:
        raise UnsafeModelError(f"{path}: not a self-describing affectflow model (format "
                               f"{FORMAT}); retrain it")
    architecture = str(saved["architecture"])
    specs = {t: TaskSpec.from_dict(t, d) for t, d in saved["task_specs"].items()}
    config = model_config(architecture, saved["model_config"])
    model = TrainedModel(
        path=os.fspath(path), architecture=architecture, model_id=str(saved["model_id"]),
        seed=int(saved["seed"]), specs=specs, modality_dims=dict(saved["modality_dims"]),
        views=dict(saved["views"]), sources=dict(saved["sources"]),
        norm_stats={m: (mean.numpy(), std.numpy()) for m, (mean, std) in saved["norm_stats"].items()},
        valid_metrics=dict(saved["valid_metrics"]), config=config, corpus=str(saved["corpus"]))
    if get_model(architecture).kind == "classic":
        try:
            model.estimators = load_estimators(bytes(saved["sklearn"].numpy()))
        except UnsafeModelError as error:
            raise UnsafeModelError(f"{path}: {error}") from None
    else:
        module = build_model(architecture, model.modality_dims, specs, config)
        module.load_state_dict(saved["state_dict"])
        model.module = module.eval()
    return model
