"""The model registry: every architecture by name, with its typed config and builder.

A model family is one module of this package (`fusion`: the nine EF/LF/EF-LF × AVG/LSTM/TRANS
baselines of Dai et al. 2021; `linear`; `svm`, a scikit-learn model); it registers each of its
architectures with `register_model(name, config_type, build, kind)`. Adding a model is one file
here plus its test: the config schema's model list and hyper-parameter block (`hparams_schema`)
and the training job's parsing of a model's hyper-parameters (`split_hparams`) all come from
this registry. Read MMSA's `AMIO` (model map) for the idea; the training side (`Trainer`) is
`affectflow.train.trainer`, whose `TrainerConfig` holds the optimiser's hyper-parameters.
"""

from __future__ import annotations

import importlib
import pkgutil

from affectflow.train.models.base import (  # noqa: F401  (the registry's public face)
    MODELS,
    ModelEntry,
    MultiTaskModel,
    TaskOutputs,
    build_model,
    get_model,
    hparams_schema,
    model_config,
    register_model,
    split_hparams,
)


def _discover() -> None:
    for module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
        if module not in ("base", "layers"):
            importlib.import_module(f"{__name__}.{module}")


_discover()
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)
