"""Config validation: a wrong key or value stops the workflow at start, naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from affectflow.config import MAX_ERRORS, ConfigError, load_schema, validate_config
from affectflow.train.models import MODELS

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def _config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def _merged_schema_file(folder: Path) -> str:
    """The schema with the registry's parts, as a file (what Snakemake's own validate reads)."""
    path = folder / "schema.yaml"
    path.write_text(yaml.safe_dump(load_schema(SCHEMA)))
    return str(path)


def test_shipped_config_is_valid_and_every_key_is_documented(tmp_path: Path) -> None:
    validate(_config(), _merged_schema_file(tmp_path))

    def undocumented(schema: dict, path: str = "") -> list[str]:
        missing = []
        for name, sub in schema.get("properties", {}).items():
            if "description" not in sub and "$ref" not in sub:
                missing.append(f"{path}{name}")
            missing += undocumented(sub, f"{path}{name}.")
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            missing += undocumented(extra, f"{path}*.")
        return missing

    assert undocumented(load_schema(SCHEMA)) == []


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["extractors"]["logmel"].update(n_mel=64), "n_mel"),
    (lambda c: c["training"].update(models=["ef_lf_gru"]), "ef_lf_gru"),
    (lambda c: c["corpora"]["demo"]["labels"]["emotion"].update(type="ordinal"), "ordinal"),
    (lambda c: c["media"].update(keep_partial="yes"), "keep_partial"),
    (lambda c: c["training"].update(models=["svn"]), "unknown model 'svn'; known: ef_lf_avg"),
])
def test_wrong_keys_and_values_fail_at_start_naming_them(tmp_path: Path, mutate, expected: str) -> None:
    config = _config()
    mutate(config)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    result = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-n",
                             "--directory", str(tmp_path), "--configfile", str(tmp_path / "config.yaml")],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert expected in output
    # The key, its place and what is allowed: no schema or instance dump.
    assert len(output.strip().splitlines()) < 15, output
    assert "Failed validating" not in output and "On instance" not in output and "On schema" not in output


def _error(mutate) -> str:
    config = _config()
    mutate(config)
    with pytest.raises(ConfigError) as caught:
        validate_config(config, SCHEMA)
    return str(caught.value)


def test_unknown_key_names_its_place_and_the_allowed_keys() -> None:
    assert _error(lambda c: c["extractors"]["logmel"].update(n_mel=64)) == (
        "config error at extractors.logmel: unknown key 'n_mel'; allowed: hop_s, n_mels, win_s")
    assert _error(lambda c: c.update(reslts_dir="x")) == (
        "config error at (top level): unknown key 'reslts_dir'; allowed: actions, cache_dir, corpora, "
        "evaluation, extractors, media, narrative, predictions, prosody, results_dir, tone, training, weak_labels")


def test_resources_section_says_it_moved_to_the_profiles() -> None:
    """The analysis config keeps only the science; an old config's `resources` is told where it went."""
    message = _error(lambda c: c.update(resources={"train": {"mem_mb": 4000}}))
    assert message.startswith("config error at (top level): unknown key 'resources'; allowed: ")
    assert "set-resources in a workflow profile (profiles/default, profiles/slurm)" in message


KNOWN_MODELS = ", ".join(MODELS)  # the registry's order


@pytest.mark.parametrize("entry, place", [
    ("svn", "training.models[1]"),
    ({"id": "x", "model": "svn"}, "training.models[1].model"),
])
def test_unknown_model_lists_the_known_models(entry, place: str) -> None:
    message = _error(lambda c: c["training"].update(models=["linear", entry]))
    assert message == f"config error at {place}: unknown model 'svn'; known: {KNOWN_MODELS}"
    assert "any of the given schemas" not in message


def test_wrong_enum_value_lists_the_allowed_values() -> None:
    assert _error(lambda c: c["corpora"]["demo"]["labels"]["emotion"].update(type="ordinal")) == (
        "config error at corpora.demo.labels.emotion.type: unknown value 'ordinal'; "
        "allowed: categorical, binary, regression")
    assert _error(lambda c: c["training"]["modalities"].update(audio={"extractor": "egemaps", "view": "pool"})) == (
        "config error at training.modalities.audio.view: unknown value 'pool'; allowed: sequence, pooled, aligned")


def test_out_of_range_numbers_give_jsonschemas_short_message() -> None:
    assert _error(lambda c: c["media"].update(min_speech_s=-1)) == (
        "config error at media.min_speech_s: -1 is less than the minimum of 0")
    # Inside a oneOf (a number or a list of numbers), the branch of the value's type is reported.
    svm = {"id": "s", "model": "svm", "hparams": {"svm_c": [1, -1]}}
    assert _error(lambda c: c["training"].update(models=[svm])) == (
        "config error at training.models[0].hparams.svm_c[1]: -1 is less than or equal to the minimum of 0")


def test_corpus_source_and_missing_keys() -> None:
    assert _error(lambda c: c["corpora"]["demo"].pop("generator")) == (
        "config error at corpora.demo: needs one of the keys manifest, generator, adapter, union, features")
    assert _error(lambda c: c["corpora"]["demo"].update(manifest="m.csv")) == (
        "config error at corpora.demo: give only one of the keys manifest, generator, adapter, union, features")
    assert _error(lambda c: c.pop("training")) == "config error at (top level): missing key 'training'"
    assert _error(lambda c: c["training"].update(models=[{"model": "svm"}])) == (
        "config error at training.models[0]: missing key 'id'")


def test_every_error_is_listed_one_short_line_each_up_to_a_limit() -> None:
    def many(config: dict) -> None:
        demo = config["corpora"].pop("demo")
        for i in range(MAX_ERRORS + 5):
            config["corpora"][f"c{i:02d}"] = {**demo, "shards": 0}
        config["media"]["min_speech_s"] = -1

    lines = _error(many).splitlines()
    assert len(lines) == MAX_ERRORS + 1
    assert lines[0] == "config error at corpora.c00.shards: 0 is less than the minimum of 1"
    assert lines[-1] == "... and 6 more config errors"
    assert all(len(line) < 200 for line in lines)


def test_valid_config_passes_and_gets_the_defaults(tmp_path: Path) -> None:
    def trimmed() -> dict:
        config = _config()
        del config["results_dir"], config["extractors"]["logmel"]["n_mels"], config["corpora"]["demo"]["shards"]
        return config

    config = trimmed()
    validate_config(config, SCHEMA)
    assert config["results_dir"] == "results"
    assert config["extractors"]["logmel"]["n_mels"] == 128
    assert config["corpora"]["demo"]["shards"] == 8
    assert config["corpora"]["demo"]["encoding"] == "utf-8"
    assert config["training"]["normalise"] == "none"
    expected = trimmed()
    validate(expected, _merged_schema_file(tmp_path))  # exactly what Snakemake's own validate fills in
    assert config == expected
    assert issubclass(ConfigError, ValueError)


def test_schema_extractor_parts_come_from_the_registry() -> None:
    """The schema file names no extractor and holds no extractor parameter: the loaded schema's
    three extractor lists (the two of training modalities with the imported stores), its parameter
    blocks and the media section are the registry's, with each config dataclass's defaults."""
    import dataclasses

    from affectflow.features.registry import EXTRACTORS

    assert not any(name in SCHEMA.read_text() for name in ("egemaps", "whisper", "min_speech_s"))
    registered = sorted(set(EXTRACTORS) - {"audio"})
    schema = load_schema(SCHEMA)
    lists = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if "egemaps" in node.get("enum", []):
                lists.append(sorted(node["enum"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    # a corpus's extractors; a training modality's store may also be one a features corpus imports
    from affectflow.ingest.features_corpus import imported_store_names

    assert sorted(lists) == sorted([registered] + 2 * [sorted(registered + imported_store_names())]), lists
    blocks = schema["properties"]["extractors"]["properties"]
    assert sorted(blocks) == registered
    blocks = {**blocks, "audio": schema["properties"]["media"]}
    for name, cls in EXTRACTORS.items():
        defaults = {f.name: getattr(cls.config_type(), f.name) for f in dataclasses.fields(cls.config_type)}
        assert {k: p["default"] for k, p in blocks[name]["properties"].items()} == defaults, name


def test_extractor_parameters_are_checked_per_corpus_too() -> None:
    config = _config()
    config["corpora"]["demo"]["extractor_params"] = {"text": {"use_contxt": True}}
    with pytest.raises(ConfigError, match="use_contxt"):
        validate_config(config, SCHEMA)
    config["corpora"]["demo"]["extractor_params"] = {"whisper": {"batch_size": 0}}
    with pytest.raises(ConfigError, match="batch_size"):
        validate_config(config, SCHEMA)
    config["corpora"]["demo"]["extractor_params"] = {"text": {"use_context": True}}
    validate_config(config, SCHEMA)
    assert config["corpora"]["demo"]["extractor_params"] == {"text": {"use_context": True}}  # no defaults filled


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_real_data_config_is_valid(path: Path) -> None:
    validate_config(yaml.safe_load(path.read_text()), SCHEMA)
