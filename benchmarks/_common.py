"""Helpers shared by the benchmark scripts: a scratch workflow directory and timed snakemake runs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED_MEDIA = REPO.parent / "shared" / "data" / "media"


def write_config(workdir: Path, corpus: str, manifest: Path, shards: int, **training) -> Path:
    """A config.yaml for one manifest corpus, based on the repository's own config."""
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    labels = config["corpora"]["demo"]["labels"]
    config["corpora"] = {corpus: {"manifest": str(manifest), "shards": shards, "labels": labels}}
    config["training"].update(training)
    path = workdir / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def snakemake(workdir: Path, *args: str) -> float:
    """Run snakemake on the repository's Snakefile in `workdir`; returns wall seconds."""
    command = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
               str(workdir), "--configfile", str(workdir / "config.yaml"), *args]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    started = time.perf_counter()
    result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise SystemExit(f"snakemake {' '.join(args)} failed in {workdir}")
    return seconds


def per_speaker(x: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Each speaker's rows z-normalised with that speaker's own mean and std (no labels used)."""
    out = np.empty_like(x)
    for speaker in np.unique(speakers):
        rows = speakers == speaker
        std = x[rows].std(axis=0)
        out[rows] = (x[rows] - x[rows].mean(axis=0)) / np.where(std > 1e-8, std, 1.0)
    return out
