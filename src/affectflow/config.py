"""Config validation with short messages.

Snakemake's `validate` reports a config typo as jsonschema's full error: the key, then the whole
(sub)schema and instance, hundreds of lines. `validate_config` checks the same schema first and,
on errors, raises `ConfigError` with one line per error (at most `MAX_ERRORS`), each naming the
place in the config (e.g. `training.models[0]`), the wrong key or value, and the allowed keys or
values. oneOf/anyOf errors are reduced to the branch that matches the value's type, so a model
entry 'svn' reports the enum of models rather than "is not valid under any of the given schemas".
The schema file holds everything but the extractors: their names and parameter blocks (and the
`media` section, media prep's parameters) are generated from the extractor registry by
`with_registry`, so the schema, the workflow and the code cannot disagree. A valid config then
gets the schema's defaults filled in (jsonschema's documented `extend_with_default`, as
`snakemake.utils.validate` does).
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, validators
from jsonschema.exceptions import ValidationError
from jsonschema.validators import validator_for

MAX_ERRORS = 10
_MAX_VALUE = 60  # characters of a value's repr kept in a message
# Top-level keys that left the analysis config, and where they went (said with the error).
MOVED = {"resources": "threads, memory, runtime and GPUs are per machine now: set-threads and "
                      "set-resources in a workflow profile (profiles/default, profiles/slurm)"}


class ConfigError(ValueError):
    """The config does not match the schema; the message has one short line per error."""


def load_schema(schema_path: str | Path) -> dict:
    """The config schema: the file, with the registry's extractor parts filled in."""
    return with_registry(yaml.safe_load(Path(schema_path).read_text()))


def with_registry(schema: dict) -> dict:
    """Fill the extractor names and parameter blocks (and the media section) from the extractor
    registry (plus the imported store names, `affectflow.ingest.features_corpus`, where a
    training modality names its store), the model names and hyper-parameter block from the model
    registry, and the actions, prosody and narrative stages' blocks from their config
    dataclasses."""
    from affectflow.features.registry import schema_blocks

    blocks = schema_blocks()
    top = schema["properties"]
    top["media"]["properties"] = blocks["media"]["properties"]
    top["extractors"]["properties"] = blocks["extractors"]
    corpus = top["corpora"]["additionalProperties"]["properties"]
    corpus["extractors"]["items"]["enum"] = blocks["names"]
    corpus["extractor_params"]["properties"] = {
        name: {**block, "properties": {k: {x: v for x, v in p.items() if x != "default"}
                                       for k, p in block["properties"].items()}}
        for name, block in blocks["extractors"].items()}
    # A modality reads an extractor's store or one written by a features corpus's import.
    from affectflow.ingest.features_corpus import imported_store_names

    by_name, by_entry = top["training"]["properties"]["modalities"]["additionalProperties"]["oneOf"]
    stores = blocks["names"] + imported_store_names()
    by_name["enum"] = by_entry["properties"]["extractor"]["enum"] = stores
    from affectflow.train.models import MODELS, hparams_schema

    schema["definitions"]["hparams"]["properties"] = hparams_schema()["properties"]
    from affectflow.actions.stage import actions_schema

    top["actions"]["properties"] = actions_schema()
    from affectflow.features.params import config_schema
    from affectflow.narrative.rules import NarrativeConfig
    from affectflow.narrative.stage import StageConfig
    from affectflow.prosody.stage import ProsodyConfig

    top["prosody"]["properties"] = config_schema(ProsodyConfig, "")["properties"]
    top["narrative"]["properties"] = {**config_schema(NarrativeConfig, "")["properties"],
                                      **config_schema(StageConfig, "")["properties"]}
    plain, entry = top["training"]["properties"]["models"]["items"]["oneOf"]
    plain["enum"] = entry["properties"]["model"]["enum"] = list(MODELS)
    return schema


def validate_config(config: dict, schema_path: str | Path) -> None:
    """Raise ConfigError listing the config's errors; else fill the schema's defaults into it."""
    schema = load_schema(schema_path)
    validator = validator_for(schema, default=Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(config), key=_place)
    if errors:
        lines = list(dict.fromkeys(describe(e) for e in errors))
        if len(lines) > MAX_ERRORS:
            lines = lines[:MAX_ERRORS] + [f"... and {len(lines) - MAX_ERRORS} more config errors"]
        raise ConfigError("\n".join(lines))
    _with_defaults(type(validator))(schema).validate(config)


def _with_defaults(validator_class: type) -> type:
    """The validator class that also sets each property's schema default where it is missing."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def _place(error: ValidationError) -> list[str]:
    return [f"{p:09d}" if isinstance(p, int) else str(p) for p in error.absolute_path]


def describe(error: ValidationError) -> str:
    """One line: `config error at <path>: <what is wrong>; allowed: <...>`."""
    error = _most_specific(error)
    return f"config error at {_path(error.absolute_path)}: {_what(error)}"


def _most_specific(error: ValidationError) -> ValidationError:
    """Descend oneOf/anyOf errors into the one branch that fits the value's type, if there is one."""
    while error.validator in ("oneOf", "anyOf") and error.context:
        branches: dict[int, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        # A branch whose type does not fit the value is not what the user meant; among the
        # rest, prefer the one whose required keys are all there.
        fitting = [subs for subs in branches.values() if not _fails_at_top(subs, "type")]
        if len(fitting) > 1:
            fitting = [subs for subs in fitting if not _fails_at_top(subs, "required")]
        if len(fitting) != 1:
            break
        error = max(fitting[0], key=lambda s: len(s.absolute_path))
    return error


def _fails_at_top(errors: list[ValidationError], kind: str) -> bool:
    return any(e.validator == kind and not e.relative_path for e in errors)


def _what(error: ValidationError) -> str:
    kind, value, schema = error.validator, error.instance, error.schema
    path = list(error.absolute_path)
    if kind == "additionalProperties" and isinstance(value, dict):
        known = set(schema.get("properties", {}))
        patterns = list(schema.get("patternProperties", {}))
        extra = [k for k in value if k not in known and not any(re.search(p, k) for p in patterns)]
        allowed = ", ".join(sorted(known) + [f"/{p}/" for p in patterns]) or "none"
        keys = ", ".join(repr(k) for k in extra)
        moved = "".join(f" ({k}: {MOVED[k]})" for k in extra if not path and k in MOVED)
        return f"unknown key{'s' if len(extra) > 1 else ''} {keys}; allowed: {allowed}{moved}"
    if kind == "enum":
        allowed = ", ".join(str(v) for v in error.validator_value)
        is_model = path[:2] == ["training", "models"] and (len(path) == 3 or path[3:] == ["model"])
        return f"unknown model {_short(value)}; known: {allowed}" if is_model else \
            f"unknown value {_short(value)}; allowed: {allowed}"
    if kind == "required":
        return f"missing key {error.message.removesuffix(' is a required property')}"
    if kind == "type":
        wanted = error.validator_value
        wanted = " or ".join(wanted) if isinstance(wanted, list) else wanted
        return f"{_short(value)} is not of type {wanted}"
    if kind in ("oneOf", "anyOf"):
        options = error.validator_value
        if all(set(o) == {"required"} for o in options):
            keys = ", ".join(k for o in options for k in o["required"])
            return f"{'give only' if not error.context else 'needs'} one of the keys {keys}"
        if not error.context:
            return f"{_short(value)} matches more than one of: {_branches(options)}"
        return f"{_short(value)} is none of: {_branches(options)}"
    if "propertyNames" in error.relative_schema_path:
        return f"key {_short(value)} does not match {error.validator_value!r}"
    return error.message if len(error.message) <= 2 * _MAX_VALUE else f"{_short(value)} is invalid ({kind})"


def _branches(options: list[dict]) -> str:
    """Short names of oneOf/anyOf branches: their required keys, enum or type."""
    names = []
    for option in options:
        if "enum" in option:
            names.append("one of " + ", ".join(str(v) for v in option["enum"]))
        else:
            kind = str(option.get("type", "schema"))
            names.append(f"{'an' if kind[0] in 'aeiou' else 'a'} {kind}")
    return "; ".join(names)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."


def _path(parts) -> str:
    text = ""
    for part in parts:
        if isinstance(part, int):
            text += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z0-9_-]+", str(part)):
            text += f".{part}" if text else str(part)
        else:
            text += f"[{part!r}]"
    return text or "(top level)"
