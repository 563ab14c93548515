"""Strict JSON for metrics: undefined values (NaN, inf) become null. At the bottom of the layers,
so training, evaluation and the report share it without importing each other."""

from __future__ import annotations

import math
from typing import Any


def json_safe(value: Any) -> Any:
    """Replace NaN/inf (undefined metrics, e.g. a class absent from a small test split) by None,
    so the files are strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
