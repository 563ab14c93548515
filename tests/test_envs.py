"""The per-rule conda environments pin the same versions as the local install."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _requirements() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower()] = version
    return pins


def test_env_pins_match_requirements() -> None:
    pins = _requirements()
    envs = sorted((ROOT / "envs").glob("*.yaml"))
    assert len(envs) >= 5
    for env in envs:
        spec = yaml.safe_load(env.read_text())
        pip = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict))
        assert "python=3.11" in spec["dependencies"]
        for requirement in pip:
            name, version = requirement.split("==")
            assert pins.get(name.lower()) == version, f"{env.name}: {requirement} vs requirements.txt"


def test_every_rule_names_an_existing_env() -> None:
    for rules in (ROOT / "workflow" / "rules").glob("*.smk"):
        for env in re.findall(r'conda:\n\s+"([^"]+)"', rules.read_text()):
            assert (rules.parent / env).resolve().is_file(), f"{rules.name}: {env}"
