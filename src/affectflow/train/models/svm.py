"""The `svm` model's config: a scikit-learn SVM per task on the pooled, standardised modalities
(fitted by `affectflow.train.classic`, saved with skops)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from affectflow.features.params import param
from affectflow.train.models.base import register_model


@dataclass(frozen=True)
class SvmConfig:
    """Hyper-parameters of the svm model."""

    svm_c: float | list[float] = param(
        [0.1, 1.0, 10.0], "svm only: the C values tried (a number or a list); the one with the "
        "best validation headline metric (regression: the lowest MAE) is used.",
        oneOf=[{"type": "number", "exclusiveMinimum": 0},
               {"type": "array", "items": {"type": "number", "exclusiveMinimum": 0}, "minItems": 1}])
    svm_kernel: Literal["rbf", "linear", "poly", "sigmoid"] = param(
        "rbf", "svm only: the kernel (rbf by default, as MUStARD's authors' baseline).")
    block_scale: Literal["none", "sqrt_width"] = param(
        "none", "svm only: sqrt_width divides each modality's standardised pooled block by the "
        "square root of its width, so every modality carries the same total variance when they "
        "are concatenated (none, the default, lets the widest block dominate).")


register_model("svm", SvmConfig, None, "scikit-learn SVC/SVR per task on the time-means "
               "(C picked on the validation split)", kind="classic")
