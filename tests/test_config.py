"""Config validation: a wrong key or value stops the workflow at start, naming it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

REPO = Path(__file__).resolve().parents[1]
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"


def _config() -> dict:
    return yaml.safe_load((REPO / "config.yaml").read_text())


def test_shipped_config_is_valid_and_every_key_is_documented() -> None:
    validate(_config(), str(SCHEMA))

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

    assert undocumented(yaml.safe_load(SCHEMA.read_text())) == []


@pytest.mark.parametrize("mutate, expected", [
    (lambda c: c["extractors"]["logmel"].update(n_mel=64), "n_mel"),
    (lambda c: c["training"].update(models=["ef_lf_gru"]), "ef_lf_gru"),
    (lambda c: c["corpora"]["demo"]["labels"]["emotion"].update(type="ordinal"), "ordinal"),
    (lambda c: c["media"].update(min_active_ratio=2), "min_active_ratio"),
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
    assert expected in result.stdout + result.stderr
