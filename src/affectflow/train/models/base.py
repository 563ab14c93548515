"""Registry entries, the multi-task model around a registered encoder, and hyper-parameters.

A registered architecture gives an encoder (`build(modality_dims, config) -> nn.Module` with an
`out_dim`) for torch models, or nothing for a classic (scikit-learn) model that
`affectflow.train.classic` fits. `MultiTaskModel` puts one linear head per task on the encoder.
Hyper-parameters arrive as one flat mapping (the config's `training.hparams` updated by the
model entry's own); `split_hparams` splits it into the trainer's and the model's typed configs,
and an unknown key is an error naming it and the known ones.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Literal, Mapping, Sequence

from torch import Tensor, nn

from affectflow.features.params import config_schema, param, parse_config
from affectflow.train.tasks import TaskSpec, normalize_tasks

Batch = Mapping[str, tuple[Tensor, Tensor]]


@dataclass(frozen=True)
class ModelEntry:
    """One architecture: its name, config dataclass, encoder builder (None: classic model)."""

    name: str
    config_type: type
    build: Callable[[Mapping[str, int], Any], nn.Module] | None
    kind: Literal["torch", "classic"]
    description: str
    # "any": any set of modalities; "turns": one turn's sequence modality and its history
    # (<name>@<k>, `affectflow.train.models.han`)
    reads: Literal["any", "turns"] = "any"
    # the model's own training hooks (`affectflow.train.trainer.Hook`) from its config: what a
    # method needs beyond a loss on the task outputs (unimodal label generation, momentum models)
    hooks: Callable[[Any], list] | None = None


MODELS: dict[str, ModelEntry] = {}


def register_model(name: str, config_type: type, build: Callable | None, description: str,
                   kind: Literal["torch", "classic"] = "torch", reads: Literal["any", "turns"] = "any",
                   hooks: Callable[[Any], list] | None = None) -> None:
    """Register architecture `name` (twice is an error: one name, one place)."""
    if name in MODELS:
        raise ValueError(f"model {name!r} is registered twice")
    MODELS[name] = ModelEntry(name, config_type, build, kind, description, reads, hooks)


def unimodal_field() -> Any:
    """The `unimodal` hyper-parameter, one definition for every model family that has it."""
    return param(["*"], "Modalities with a unimodal subtask (['*']: all; []: none, the fused task "
                        "alone; the ablations M / M+T / ... of SUGRM and MTMD).")


def ulgm_task_field() -> Any:
    """The `ulgm_task` hyper-parameter, shared like `unimodal_field`."""
    return param("", "The fused regression task the unimodal labels come from (default: the run's "
                     "first regression task).")


def unimodal_names(wanted: Sequence[str], modalities: Sequence[str]) -> list[str]:
    """The modalities of `modalities` that get a unimodal subtask (`wanted` may hold '*')."""
    if "*" in wanted:
        return list(modalities)
    unknown = sorted(set(wanted) - set(modalities))
    if unknown:
        raise ValueError(f"unimodal: {unknown} are not modalities of the model ({sorted(modalities)})")
    return [m for m in modalities if m in wanted]


def get_model(name: str) -> ModelEntry:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(MODELS)}") from None


def _trainer_config_type() -> type:
    from affectflow.train.trainer import TrainerConfig

    return TrainerConfig


def _names(config_type: type) -> set[str]:
    return {f.name for f in dataclasses.fields(config_type)}


def split_hparams(name: str, hparams: Mapping[str, Any]) -> tuple[Any, Any]:
    """(TrainerConfig, the model's config) from one flat hyper-parameter mapping.

    Keys of other registered models are accepted and ignored (`training.hparams` is shared by
    every model of a run); a key no model or trainer knows is a ValueError naming it."""
    entry = get_model(name)
    trainer_type = _trainer_config_type()
    known = set().union(*(_names(e.config_type) for e in MODELS.values()), _names(trainer_type))
    unknown = sorted(set(hparams) - known)
    if unknown:
        raise ValueError(f"hparams: unknown key(s) {unknown}; known: {', '.join(sorted(known))}")
    trainer = parse_config(trainer_type, {k: v for k, v in hparams.items()
                                          if k in _names(trainer_type)}, "hparams")
    own = {k: v for k, v in hparams.items() if k in _names(entry.config_type)}
    return trainer, parse_config(entry.config_type, own, f"hparams ({name})")


def model_config(name: str, hparams: Mapping[str, Any]) -> Any:
    """The model's own typed config from a flat hyper-parameter mapping."""
    return split_hparams(name, hparams)[1]


def hparams_schema() -> dict[str, Any]:
    """The config schema's `hparams` block: the trainer's fields and every model's, each field
    described once (a name two families share must have the same schema, or this raises)."""
    blocks = [config_schema(_trainer_config_type(), "trainer")]
    blocks += [config_schema(e.config_type, e.name) for e in MODELS.values()]
    properties: dict[str, Any] = {}
    for block in blocks:
        for key, prop in block["properties"].items():
            plain = {k: v for k, v in prop.items() if k != "default"}
            if key in properties and properties[key] != plain:
                raise ValueError(f"hparam {key!r} has two different schemas in the registry")
            properties[key] = plain
    return {"type": "object", "additionalProperties": False,
            "description": "Optimiser and model hyper-parameters (from the trainer's and the "
                           "registered models' config dataclasses).",
            "properties": dict(sorted(properties.items()))}


class TaskOutputs(dict):
    """{task: output} of a model, and `aux`: named tensors its training hooks read (unimodal
    predictions and representations, ``pred/<modality>``, ``feat/<modality>``); never scored."""

    def __init__(self, outputs: Mapping[str, Tensor] = (), aux: Mapping[str, Tensor] | None = None
                 ) -> None:
        super().__init__(outputs)
        self.aux: dict[str, Tensor] = dict(aux or {})


class MultiTaskModel(nn.Module):
    """Shared encoder + one linear head per active task. forward -> {task: output}: categorical
    (B, C) logits, binary (B,) logit, regression (B,) value.

    The encoder returns one representation for every head, a dict of them by task (with
    `bind_tasks`), or either of these and a dict of auxiliary tensors (`TaskOutputs.aux`)."""

    def __init__(self, encoder: nn.Module, tasks: Mapping[str, TaskSpec], name: str = "") -> None:
        super().__init__()
        self.name = name
        self.encoder = encoder
        self.tasks = dict(tasks)
        # An encoder with `bind_tasks` gives each task its own representation (a dict from
        # forward), e.g. HAN-ROCK's primary and auxiliary branches; the others give one for all.
        widths = (encoder.bind_tasks(list(self.tasks)) if hasattr(encoder, "bind_tasks")
                  else {t: encoder.out_dim for t in self.tasks})
        self.heads = nn.ModuleDict(
            {t: nn.Linear(widths[t], s.n_outputs) for t, s in self.tasks.items()}
        )

    def forward(self, inputs: Batch) -> TaskOutputs:
        r = self.encoder(inputs)
        r, aux = r if isinstance(r, tuple) else (r, None)
        out = TaskOutputs(aux=aux)
        for task, head in self.heads.items():
            y = head(r[task] if isinstance(r, dict) else r)
            out[task] = y if self.tasks[task].kind == "categorical" else y.squeeze(-1)
        return out


def build_model(name: str, modality_dims: Mapping[str, int], tasks: Mapping[str, Any],
                hparams: Mapping[str, Any] | Any) -> MultiTaskModel:
    """The registered torch architecture `name` with one head per task.

    `tasks` is as in `normalize_tasks` (or already ``{name: TaskSpec}``); `hparams` is the flat
    hyper-parameter mapping (trainer keys are ignored here) or the model's config object."""
    entry = get_model(name)
    if entry.build is None:
        raise ValueError(f"model {name!r} is a {entry.kind} model, not a torch module")
    if not modality_dims:
        raise ValueError("at least one modality is needed")
    config = (hparams if isinstance(hparams, entry.config_type)
              else model_config(name, hparams))
    is_specs = bool(tasks) and all(isinstance(v, TaskSpec) for v in tasks.values())
    specs = dict(tasks) if is_specs else normalize_tasks(tasks)
    return MultiTaskModel(entry.build(modality_dims, config), specs, name)
