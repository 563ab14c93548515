"""Running the repository's Snakefile from tests, and reading what its shard jobs did."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STATS_PREFIX = "AFFECTFLOW_STATS "


def snakemake_command(workdir: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
            str(workdir), "--configfile", str(workdir / "config.yaml"), *args]


def snakemake_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}


def run_snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Run the Snakefile in `workdir` (its config.yaml); the finished process, whatever its code."""
    return subprocess.run(snakemake_command(workdir, *args), cwd=workdir, env=snakemake_env(),
                          capture_output=True, text=True)


def snakemake(workdir: Path, *args: str) -> str:
    """Run the Snakefile in `workdir`; returns stdout+stderr, fails the test on error."""
    result = run_snakemake(workdir, *args)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    return output


def base_config(**training) -> dict:
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    config["training"].update(training)
    return config


def planned_jobs(dry_run: str) -> Counter:
    """Job counts per rule from a dry run's stats table."""
    table = dry_run.split("Job stats:")[-1]
    return Counter({m.group(1): int(m.group(2))
                    for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) != "total"})


def stats_since(logs: Path, since: float) -> list[dict]:
    """The shard-job stats lines of the logs written after `since`."""
    found = []
    for log in logs.rglob("shard=*.log"):
        if log.stat().st_mtime >= since:
            found += [json.loads(line[len(STATS_PREFIX):]) for line in log.read_text().splitlines()
                      if line.startswith(STATS_PREFIX)]
    return found


def processed_since(logs: Path, since: float) -> Counter:
    """Utterances processed per extractor by the shard jobs that ran after `since`."""
    counts: Counter = Counter()
    for stats in stats_since(logs, since):
        counts[stats["extractor"]] += stats["processed"]
    return counts
