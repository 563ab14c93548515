"""Typed extractor configs: a dataclass per extractor whose field defaults are the only defaults.

Each field is declared with `param(default, doc, ...)`, carrying its description, JSON-schema
constraints (minimum, enum, pattern...) and whether it is a *runtime* parameter: one that
changes how the values are computed but not what they are (device, batch size, threads). From
the dataclass come the config schema's block for the extractor (`config_schema`), the parsing
and checking of a job's parameters (`parse_config`, an error naming the key), and the cache key
(`cache_params`: every field but the runtime ones, defaults filled in).
"""

from __future__ import annotations

import copy
import dataclasses
import types
import typing
from typing import Any, Literal, Mapping, TypeVar, Union, get_args, get_origin

from jsonschema import Draft202012Validator

C = TypeVar("C")
_SCALARS = {bool: "boolean", int: "integer", float: "number", str: "string"}


def param(default: Any, doc: str, *, runtime: bool = False, **schema: Any) -> Any:
    """A config field: its default, its description, runtime or not, extra JSON-schema keys."""
    metadata = {"doc": doc, "runtime": runtime, "schema": schema}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: copy.deepcopy(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _type_schema(hint: Any) -> dict[str, Any]:
    """The JSON schema of a field's annotation: scalars, Literal, list[...], unions of them."""
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]} if hint is not float else {"type": "number"}
    origin = get_origin(hint)
    if origin is Literal:
        return {"enum": list(get_args(hint))}
    if origin is dict:
        _, value = get_args(hint)
        return {"type": "object", "additionalProperties": _type_schema(value)}
    if origin in (list, tuple):
        (item,) = get_args(hint)[:1] or (Any,)
        return {"type": "array", "items": _type_schema(item)} if item is not Any else {"type": "array"}
    if origin in (Union, types.UnionType):
        return {"oneOf": [_type_schema(arg) for arg in get_args(hint) if arg is not type(None)]}
    raise TypeError(f"no JSON schema for the annotation {hint!r}")


def config_schema(config_type: type, description: str) -> dict[str, Any]:
    """The schema block of one extractor's parameters (unknown keys are errors)."""
    hints = typing.get_type_hints(config_type)
    properties = {}
    for field in dataclasses.fields(config_type):
        meta = field.metadata
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        doc = meta.get("doc", "")
        if meta.get("runtime"):
            doc += " (Not part of the cache key: changing it re-extracts nothing.)"
        properties[field.name] = {**_type_schema(hints[field.name]), **meta.get("schema", {}),
                                  "default": default, "description": doc}
    return {"type": "object", "additionalProperties": False, "description": description,
            "properties": properties}


def runtime_names(config_type: type) -> tuple[str, ...]:
    """The fields that do not change the values (kept out of the cache key)."""
    return tuple(f.name for f in dataclasses.fields(config_type) if f.metadata.get("runtime"))


def parse_config(config_type: type[C], params: Mapping[str, Any], where: str) -> C:
    """The config for `params` (missing keys take their defaults); ValueError naming `where` and
    the key for an unknown key or a value of the wrong type or range."""
    schema = config_schema(config_type, where)
    errors = sorted(Draft202012Validator(schema).iter_errors(dict(params)), key=lambda e: list(e.path))
    if errors:
        error = errors[0]
        key = ".".join(str(p) for p in error.path)
        if error.validator == "additionalProperties":
            known = ", ".join(schema["properties"])
            raise ValueError(f"{where}: {error.message}; known parameters: {known}")
        raise ValueError(f"{where}.{key}: {error.message}")
    hints = typing.get_type_hints(config_type)
    values = {k: (float(v) if hints[k] is float and not isinstance(v, bool) else v)
              for k, v in params.items()}
    return config_type(**values)


def cache_params(config: Any) -> dict[str, Any]:
    """Every field of a config but its runtime ones: what the cache key hashes."""
    runtime = set(runtime_names(type(config)))
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in runtime}
