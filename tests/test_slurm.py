"""Cluster batch submission, for real: a small demo DAG through `--workflow-profile profiles/slurm`
on a single-node Slurm (slurmctld, slurmd, slurmdbd + MariaDB, munge; tests/slurm_cluster.py).

It checks what a researcher relies on when moving from a laptop to a cluster: the extraction and
training jobs really are Slurm jobs (sacct lists them by rule), the tiny trainings go in one
submission (a job group), the bookkeeping rules stay local, the results are those of a local
run of the same config, and a job killed with `scancel` mid-run is submitted again by Snakemake
and the build completes (profiles/slurm polls with squeue for that: see its comment). Where the
machine cannot run the daemons the test says why: a skip locally, a failure under CI=true (CI
runs as root on a machine that can).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest
import yaml
from dag_helpers import REPO, base_config, snakemake, snakemake_command, snakemake_env
from slurm_cluster import SingleNodeSlurm, SlurmUnavailable, install_packages

pytestmark = [pytest.mark.slow, pytest.mark.slurm]

TARGET = "results/demo/metrics.json"
MODELS = ["ef_lf_avg", "linear"]
RUN_TIMEOUT_S = 540


def _unavailable(reason: str) -> None:
    message = f"cannot run a single-node Slurm on this machine: {reason}"
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(message + "\n(CI=true: CI runs as root on a machine that can run the daemons)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def slurm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SingleNodeSlurm]:
    """The packages (installed once per machine) and a running cluster, stopped at the end
    whatever happened."""
    try:
        seconds = install_packages()
        start = time.monotonic()
        cluster = SingleNodeSlurm(tmp_path_factory.mktemp("slurm"))
        cluster.start()
    except SlurmUnavailable as error:
        _unavailable(str(error))
    print(f"\n{cluster.slurm_version}: packages {seconds:.0f} s, daemons up in {time.monotonic() - start:.0f} s")
    try:
        yield cluster
    finally:
        cluster.stop()


def _tiny_config() -> dict:
    """12 demo utterances in one shard, eGeMAPS + text, two models with one seed each."""
    config = base_config(models=MODELS, seeds=[0], modalities={"audio": "egemaps", "text": "text"},
                         hparams={"max_epochs": 4, "patience": 2, "batch_size": 8, "hidden": 16})
    config["corpora"]["demo"]["generator"].update(n_utterances=12)
    config["corpora"]["demo"]["shards"] = 1
    config["extractors"] = {name: config["extractors"][name] for name in ("egemaps", "text")}
    return config


def _cancel_mid_run(cluster: SingleNodeSlurm, process: subprocess.Popen, comment: str,
                    started: list[Path]) -> str:
    """scancel the running job whose comment starts with `comment` once its rule's command has
    started (one of the `started` logs exists: the shell writes it first); its Slurm id."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        running = [j for j in cluster.squeue() if j["Comment"].startswith(comment) and j["State"] == "RUNNING"]
        if running and any(log.exists() for log in started):
            cluster.client("scancel", running[0]["JobID"])
            return running[0]["JobID"]
        time.sleep(0.2)
    raise AssertionError(f"no {comment} job ran (snakemake exit code {process.poll()})")


def _results(workdir: Path) -> dict:
    """metrics.json and every result.json but its training time."""
    found = {"metrics": json.loads((workdir / TARGET).read_text())}
    for path in sorted((workdir / "results/demo/models").rglob("result.json")):
        record = json.loads(path.read_text())
        record.pop("train_seconds")
        found[str(path.relative_to(workdir))] = record
    return found


def test_demo_dag_on_slurm_equals_local_and_survives_scancel(slurm: SingleNodeSlurm, tmp_path: Path) -> None:
    local, cluster = tmp_path / "local", tmp_path / "slurm"
    for folder in (local, cluster):
        folder.mkdir()
        (folder / "config.yaml").write_text(yaml.safe_dump(_tiny_config()))
    log_path = cluster / "snakemake.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            snakemake_command(cluster, "--workflow-profile", str(REPO / "profiles" / "slurm"), TARGET),
            cwd=cluster, env={**snakemake_env(), **slurm.env}, stdout=log, stderr=subprocess.STDOUT)
    try:
        snakemake(local, "--cores", "2", "--workflow-profile", "none", TARGET)  # meanwhile, locally
        train_logs = [cluster / f"results/logs/demo/train/{model}/split.log" for model in MODELS]
        cancelled = _cancel_mid_run(slurm, process, "rule_trainings", train_logs)
        returncode = process.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:  # Ctrl-C: snakemake scancels its jobs on the way out
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
    output = log_path.read_text()
    assert returncode == 0, output[-6000:]

    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    jobs = [j for j in slurm.sacct() if j["JobName"] == run_id]
    print("\n" + "\n".join("|".join(j.values()) for j in jobs))
    states: dict[str, list[str]] = {}
    for job in sorted(jobs, key=lambda j: int(j["JobID"])):
        states.setdefault(job["Comment"], []).append(job["State"].split()[0])  # "CANCELLED by 0"
    comments = set(states)
    # Extraction and training ran as Slurm jobs, named by rule (and wildcards) in sacct.
    for rule in ("rule_ingest", "rule_prep_audio", "rule_extract_wildcards_demo_egemaps",
                 "rule_extract_wildcards_demo_text", "rule_assemble_dataset", "rule_trainings_train"):
        assert any(c.startswith(rule) for c in comments), (rule, comments)
    # Both trainings in one submission (the `trainings` group); cancelled, then run again.
    assert states["rule_trainings_train"] == ["CANCELLED", "COMPLETED"], states
    assert [j for j in jobs if j["JobID"] == cancelled][0]["State"].startswith("CANCELLED")
    assert "Trying to restart job" in output
    # Every other job completed the first time; the bookkeeping rules were not submitted.
    assert all(s == ["COMPLETED"] for c, s in states.items() if c != "rule_trainings_train"), states
    assert not any(r in c for c in comments for r in ("demo_corpus", "rejected", "evaluate", "report"))
    # The results are a local run's, bit for bit (CPU training is deterministic).
    assert _results(cluster) == _results(local)
    assert set(json.loads((cluster / TARGET).read_text())) >= set(MODELS)
