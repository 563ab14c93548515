"""Tasks by kind and the masked multi-task loss (Eq. 1-2 of Dai et al. 2021).

A task is a label column of the corpus. Its *kind* is the corpus's label type (``categorical``
with class names, ``binary``, ``regression``); its loss follows the kind and the optional
``loss`` of ``training.tasks.<name>``:

============  ==========================================================================
categorical   ``ce`` (default): softmax cross-entropy over C classes, one label per sample;
              optional ``class_weight: balanced``.
              ``bce``: multi-label, one-vs-rest BCE over C sigmoid outputs with a per-class
              positive weight (negatives / positives on train), as the paper does for emotion.
binary        ``bce`` (1 logit); optional ``class_weight: balanced``.
regression    ``l1`` (default) or ``mse`` (1 value).
============  ==========================================================================

`multitask_loss` computes Σ_j λ_j · L_j; missing labels (NaN targets) contribute exactly 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor, nn

KINDS = ("categorical", "binary", "regression")
LOSSES = {"categorical": ("ce", "bce"), "binary": ("bce",), "regression": ("l1", "mse")}
DEFAULT_LOSS = {"categorical": "ce", "binary": "bce", "regression": "l1"}
CLASS_WEIGHTS = (None, "balanced")
# Kind of the three historical task names when no label type is given (direct API use).
LEGACY_KINDS = {"emotion": "categorical", "sentiment": "regression", "sarcasm": "binary"}
BINARY_CLASSES = ("0", "1")


def _infer_kind(n_outputs: int, loss: str) -> str:
    if loss in ("l1", "mse"):
        return "regression"
    if loss == "ce" or n_outputs > 1:
        return "categorical"
    return "binary"


@dataclass(frozen=True)
class TaskSpec:
    """One task as the model and the loss see it.

    `kind` is inferred from `n_outputs` and `loss` when left empty (``TaskSpec("emotion", 1.0, 4,
    "bce")`` is the multi-label emotion head). `classes` names the categorical outputs.
    """

    name: str
    weight: float
    n_outputs: int = 1
    loss: str = "bce"
    kind: str = ""
    class_weight: str | None = None
    classes: tuple[str, ...] = ()
    # regression: the label scale (min, max); predictions are clipped to it
    value_range: tuple[float, float] | None = None
    # weak task (labels predicted by another model): soft targets, (N, C) class probabilities
    # for a categorical task (soft cross-entropy), a probability in [0, 1] for a binary one
    soft: bool = False

    def __post_init__(self) -> None:
        kind = self.kind or _infer_kind(self.n_outputs, self.loss)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "classes", tuple(self.classes))
        if self.value_range is not None:
            low, high = (float(v) for v in self.value_range)
            object.__setattr__(self, "value_range", (low, high))
        if self.soft and (kind == "regression" or self.loss == "bce" and kind == "categorical"):
            raise ValueError(f"task {self.name!r}: soft (weak) targets need a categorical task "
                             "with loss ce or a binary task")
        if kind not in KINDS:
            raise ValueError(f"task {self.name!r}: unknown kind {kind!r}; known: {KINDS}")
        if self.loss not in LOSSES[kind]:
            raise ValueError(f"task {self.name!r} ({kind}): loss must be one of "
                             f"{LOSSES[kind]}, got {self.loss!r}")
        if self.class_weight not in CLASS_WEIGHTS:
            raise ValueError(f"task {self.name!r}: class_weight must be 'balanced' or none")
        if self.class_weight and self.multilabel:
            raise ValueError(f"task {self.name!r}: class_weight does not apply to loss 'bce' "
                             "(multi-label BCE always weights positives per class)")
        if self.class_weight and kind == "regression":
            raise ValueError(f"task {self.name!r}: class_weight needs a categorical/binary task")
        expected = self.n_outputs if kind == "categorical" else 1
        if self.n_outputs != expected or (kind == "categorical" and self.n_outputs < 2):
            raise ValueError(f"task {self.name!r} ({kind}): bad number of outputs {self.n_outputs}")
        if self.classes and len(self.classes) != self.n_outputs and kind == "categorical":
            raise ValueError(f"task {self.name!r}: {len(self.classes)} class names for "
                             f"{self.n_outputs} outputs")

    @property
    def multilabel(self) -> bool:
        """Categorical task trained one-vs-rest with BCE (targets (N, C) multi-hot)."""
        return self.kind == "categorical" and self.loss == "bce"

    @property
    def paper_metrics(self) -> bool:
        """Report the paper's per-class WAcc/F1 (for `emotion` or any multi-label task)."""
        return self.kind == "categorical" and (self.multilabel or self.name == "emotion")

    @property
    def class_names(self) -> list[str]:
        """Names of the classes (confusion-matrix labels); [] for regression."""
        if self.kind == "categorical":
            return list(self.classes) or [f"class{i}" for i in range(self.n_outputs)]
        return list(BINARY_CLASSES) if self.kind == "binary" else []

    @property
    def prediction_key(self) -> str:
        """Key of the task's predictions: ``<task>_prob`` ((N, C) or (N,)), or ``<task>``."""
        return self.name if self.kind == "regression" else f"{self.name}_prob"

    def to_dict(self) -> dict[str, Any]:
        """Plain-type view (JSON, and `torch.load(weights_only=True)`-safe)."""
        return {"kind": self.kind, "loss": self.loss, "weight": self.weight,
                "n_outputs": self.n_outputs, "class_weight": self.class_weight,
                "classes": self.class_names, "soft": self.soft,
                "value_range": list(self.value_range) if self.value_range else None}

    @classmethod
    def from_dict(cls, name: str, d: Mapping[str, Any]) -> "TaskSpec":
        """The inverse of `to_dict` (binary class names are implied, not stored)."""
        classes = tuple(d.get("classes") or ()) if d["kind"] == "categorical" else ()
        rng = d.get("value_range")
        return cls(name, float(d["weight"]), int(d["n_outputs"]), str(d["loss"]), str(d["kind"]),
                   d.get("class_weight"), classes, tuple(rng) if rng else None,
                   bool(d.get("soft", False)))


def normalize_tasks(
    tasks: Mapping[str, Any],
    n_emotion_classes: int | None = None,
    *,
    kinds: Mapping[str, str] | None = None,
    classes: Mapping[str, Any] | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
    weak: Mapping[str, float] | None = None,
) -> dict[str, TaskSpec]:
    """Turn the config's task mapping into `TaskSpec`s, keeping only tasks with λ > 0.

    Each value is a number (λ) or a dict with ``weight`` (alias ``lambda``, default 1.0), optional
    ``loss`` (see the module docstring) and ``class_weight`` (``balanced``). The kind of a task
    comes from `kinds` (the corpus's label types); failing that, a task with class names (in
    `classes`, or ``classes``/``n_classes`` in its dict) is categorical, and the historical names
    emotion/sentiment/sarcasm are categorical/regression/binary. Class names come from `classes`
    (dataset), else the task dict; `n_emotion_classes` gives the count for ``emotion`` (legacy).
    `ranges`: regression label scales {task: (min, max)}; `weak`: {task: confidence} of the
    dataset's weak tasks, which get soft targets and, unless the task's config sets ``weight``,
    their confidence as λ.
    """
    kinds, classes = dict(kinds or {}), dict(classes or {})
    ranges, weak = dict(ranges or {}), dict(weak or {})
    specs: dict[str, TaskSpec] = {}
    for name, value in tasks.items():
        is_number = isinstance(value, (int, float))
        cfg: Mapping[str, Any] = {"weight": value} if is_number else value or {}
        default_weight = float(weak[name]) if name in weak else 1.0
        weight = float(cfg.get("weight", cfg.get("lambda", default_weight)))
        if weight < 0:
            raise ValueError(f"task {name!r}: λ must be >= 0, got {weight}")
        if weight == 0:
            continue
        kind = kinds.get(name)
        if not kind:
            if name in classes or "classes" in cfg or "n_classes" in cfg:
                kind = "categorical"
            elif name in LEGACY_KINDS:
                kind = LEGACY_KINDS[name]
            else:
                raise ValueError(f"task {name!r}: unknown kind (give the corpus's label type)")
        if kind not in KINDS:
            raise ValueError(f"task {name!r}: unknown kind {kind!r}; known: {KINDS}")
        loss = str(cfg.get("loss") or DEFAULT_LOSS[kind]).lower()
        class_weight = cfg.get("class_weight")
        class_weight = None if class_weight in (None, "none", False) else str(class_weight)
        names: tuple[str, ...] = ()
        n_out = 1
        if kind == "categorical":
            names = tuple(classes.get(name) or cfg.get("classes") or ())
            n_cfg = cfg.get("n_classes") or (n_emotion_classes if name == "emotion" else None)
            if names and n_cfg and int(n_cfg) != len(names):
                raise ValueError(f"task {name!r}: n_classes {n_cfg} but {len(names)} class names")
            n_out = len(names) or int(n_cfg or 0)
            if not n_out:
                raise ValueError(f"task {name!r} needs its classes (or n_classes)")
        specs[name] = TaskSpec(name, weight, n_out, loss, kind, class_weight, names,
                               ranges.get(name) if kind == "regression" else None, name in weak)
    if not specs:
        raise ValueError("no task with λ > 0")
    return specs


LossWeights = Mapping[str, Tensor]


def _weights_by_task(weights: Tensor | LossWeights | None,
                     tasks: Mapping[str, TaskSpec]) -> dict[str, Tensor]:
    """A bare tensor is the legacy ``emotion_pos_weight`` argument."""
    if weights is None:
        return {}
    if isinstance(weights, Tensor):
        return {"emotion": weights} if "emotion" in tasks else {}
    return dict(weights)


def per_sample_losses(
    outputs: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
    tasks: Mapping[str, TaskSpec],
    weights: Tensor | LossWeights | None = None,
) -> dict[str, tuple[Tensor, Tensor]]:
    """{task: (loss per sample (B,), labelled mask (B,))}; unlabelled samples have loss exactly 0.

    Targets: multi-label (B, C) multi-hot with NaN rows missing; weak (soft) ``ce`` (B, C) class
    probabilities, NaN rows missing (soft cross-entropy); ``ce`` (B,) class index as float,
    NaN missing; binary (B,) 0/1; regression (B,). Targets are sanitised before the loss so no
    NaN reaches the graph. `weights` {task: tensor}: multi-label → per-class ``pos_weight`` (C,);
    ``ce``/binary → per-class weight (C,) / (2,) that multiplies each sample's loss by its true
    class's weight (``class_weight: balanced``). Multi-label BCE is averaged over the C classes,
    so a fully labelled batch gives exactly ``BCEWithLogitsLoss(pos_weight=...)`` (mean over B·C),
    the scale the paper's λ values were tuned on.
    """
    by_task = _weights_by_task(weights, tasks)
    fn = nn.functional
    result = {}
    for task, spec in tasks.items():
        if task not in targets:
            continue
        out, y = outputs[task], targets[task].to(outputs[task].dtype)
        labelled = ~torch.isnan(y) if y.dim() == 1 else ~torch.isnan(y).any(dim=-1)
        y_safe = torch.nan_to_num(y, nan=0.0)
        w = by_task.get(task)
        if spec.multilabel:
            loss = fn.binary_cross_entropy_with_logits(out, y_safe, pos_weight=w,
                                                       reduction="none").mean(dim=-1)
        elif spec.kind == "categorical" and spec.soft:
            if y.dim() != 2:
                raise ValueError(f"weak task {task!r} needs (B, C) class-probability targets")
            loss = -(y_safe * fn.log_softmax(out, dim=-1)).sum(dim=-1)
        elif spec.kind == "categorical":
            if y.dim() != 1:
                raise ValueError(f"task {task!r} (loss 'ce') needs class-index targets (B,), "
                                 f"got shape {tuple(y.shape)}; multi-hot targets need loss 'bce'")
            loss = fn.cross_entropy(out, y_safe.long(), weight=w, reduction="none")
        elif spec.kind == "binary":
            loss = fn.binary_cross_entropy_with_logits(out, y_safe, reduction="none")
            if w is not None:
                loss = loss * w[y_safe.long()]
        elif spec.loss == "mse":
            loss = fn.mse_loss(out, y_safe, reduction="none")
        else:
            loss = fn.l1_loss(out, y_safe, reduction="none")
        result[task] = (torch.where(labelled, loss, torch.zeros_like(loss)), labelled)
    return result


def multitask_loss(
    outputs: Mapping[str, Tensor],
    targets: Mapping[str, Tensor],
    tasks: Mapping[str, TaskSpec],
    weights: Tensor | LossWeights | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Total loss Σ_j λ_j · (Σ_i l_ij) / B (Eq. 2 of the paper, normalised by batch size B).

    Dividing the per-task sum by B, not by the number of labelled samples, gives every labelled
    sample the same weight λ_j / B whatever the rest of the batch holds: an unlabelled sample
    contributes nothing and a batch with one sarcasm label does not blow that label up.
    Returns (total, {task: unweighted Σ_i l_ij / B}). `weights` as in `per_sample_losses`.
    """
    losses = per_sample_losses(outputs, targets, tasks, weights)
    any_out = next(iter(outputs.values()))
    total = any_out.new_zeros(())
    parts = {}
    for task, (loss, _) in losses.items():
        parts[task] = loss.sum() / loss.shape[0]
        total = total + tasks[task].weight * parts[task]
    return total, parts
