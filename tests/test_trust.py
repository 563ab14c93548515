"""Nothing executed, nothing half-written: hostile config values, and a build killed mid-way.

Every value that reaches a shell command is quoted (a static check of every rule), values that
are enumerations are validated at start, and a DAG run with shell syntax in every free-form path
runs nothing of it. A build killed with SIGKILL to its process group resumes with `--unlock` and
`--rerun-incomplete` to the same results as a clean build.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from dag_helpers import REPO, base_config, run_snakemake, snakemake, snakemake_command, snakemake_env

SHELL_BLOCK = re.compile(r"^( +)shell:\n((?:\1    .*\n)+)", re.M)  # also rules made in a loop
PLACEHOLDER = re.compile(r"(?<!\{)\{([^{}]+)\}(?!\})")
OWN_CONSTANTS = {"params.cli"}  # built in common.smk from the checkout path, already quoted there


def test_every_shell_placeholder_is_quoted() -> None:
    unquoted = []
    for rules in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for _, block in SHELL_BLOCK.findall(rules.read_text()):
            unquoted += [f"{rules.name}: {{{p}}}" for p in PLACEHOLDER.findall(block)
                         if not p.endswith(":q") and p not in OWN_CONSTANTS]
    assert not unquoted, unquoted
    assert len(SHELL_BLOCK.findall((REPO / "workflow/rules/train.smk").read_text())) == 5


def _text_corpus(folder: Path, shared_data: Path, rows: int = 9) -> None:
    """A small corpus of real EmoDB clips with transcripts and word times (nothing to transcribe)."""
    folder.mkdir(parents=True, exist_ok=True)
    wavs = sorted((shared_data / "emodb" / "wav").glob("*.wav"))[:rows]
    records = []
    for i, wav in enumerate(wavs):
        words = folder / f"w{i}.json"
        words.write_text(json.dumps([{"word": "hallo", "start_s": 0.1, "end_s": 0.5}]))
        records.append({"utt_id": wav.stem, "audio_path": str(wav), "transcript": f"hallo number {i}",
                        "words_path": words.name, "split": ("train", "valid", "test")[i % 3],
                        "emotion": ("anger", "neutral")[i % 2]})
    pd.DataFrame(records).to_csv(folder / "manifest.csv", index=False)


def _small_config(results: str, cache: str, manifest: str, media_root: str) -> dict:
    config = base_config(models=["linear"], seeds=[0], modalities={"text": {"extractor": "text", "view": "pooled"}},
                         tasks={"emotion": {"weight": 1.0, "loss": "ce"}},
                         hparams={"max_epochs": 3, "patience": 2, "batch_size": 4, "hidden": 8})
    config["results_dir"], config["cache_dir"] = results, cache
    config["corpora"] = {"c": {"manifest": manifest, "media_root": media_root, "shards": 1,
                               "extractors": ["text"], "transcribe": {"mode": "auto", "language": "en"},
                               "labels": {"emotion": {"type": "categorical", "classes": ["anger", "neutral"]}}}}
    return config


@pytest.mark.slow
@pytest.mark.parametrize("mutate, key", [
    (lambda c: c["training"].update(device="cpu$(touch PWNED)"), "device"),
    (lambda c: c["corpora"]["c"]["transcribe"].update(language="en; touch PWNED"), "language"),
    (lambda c: c["extractors"]["text"].update(device="cpu`touch PWNED`"), "device"),
    (lambda c: c["corpora"].update({"x$(touch PWNED)": c["corpora"].pop("c")}), "x$(touch PWNED)"),
    (lambda c: c["corpora"]["c"].update(encoding="utf-8;touch PWNED"), "encoding"),
    (lambda c: c["training"]["tasks"].update({"t`touch PWNED`": {"weight": 1.0}}), "touch PWNED"),
])
def test_enumerated_values_with_shell_syntax_stop_the_run_at_start(tmp_path: Path, shared_data: Path,
                                                                   mutate, key: str) -> None:
    _text_corpus(tmp_path / "corpus", shared_data)
    config = _small_config("results", "work/cache", "corpus/manifest.csv", "corpus")
    mutate(config)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    result = run_snakemake(tmp_path, "--cores", "1")
    assert result.returncode != 0 and key in result.stdout + result.stderr
    assert not list(tmp_path.rglob("PWNED*")) and not (REPO / "PWNED").exists()


@pytest.mark.slow
def test_shell_syntax_in_every_free_form_path_runs_nothing(tmp_path: Path, shared_data: Path) -> None:
    """results_dir, cache_dir, manifest and media_root reach commands: with $(...), backticks, ;
    and spaces in them the whole DAG (transcribe → ingest → text → train → report) runs, makes
    its files under those literal names, and executes none of it. Also item 16: a corpus with a
    `transcribe` section whose rows need nothing finishes, and all of it lives in results_dir."""
    corpus = tmp_path / "in $(touch PWNED_M) x"
    _text_corpus(corpus, shared_data)
    results = "out $(touch PWNED_R) `touch PWNED_B`;touch PWNED_S"
    config = _small_config(results, "cache $(touch PWNED_C)", f"{corpus.name}/manifest.csv", str(corpus))
    hostile = "anger $(touch PWNED_L)'"  # a class name travels inside the quoted labels JSON
    config["corpora"]["c"]["labels"]["emotion"]["classes"][0] = hostile
    manifest = pd.read_csv(corpus / "manifest.csv")
    manifest["emotion"] = manifest["emotion"].replace("anger", hostile)
    manifest.to_csv(corpus / "manifest.csv", index=False)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    output = snakemake(tmp_path, "--cores", "2")
    assert not list(tmp_path.rglob("PWNED*")) and not (REPO / "PWNED_R").exists()
    out = tmp_path / results / "c"
    assert json.loads((out / "metrics.json").read_text())["linear"]["emotion"]["acc"]["mean"] is not None
    assert (out / "transcribed" / "manifest.csv").exists() and (out / "transcribed" / "words").is_dir()
    assert not (tmp_path / "resources").exists()
    assert "affectflow: corpus c: 9 of 9 utterances accepted" in output


def _crash_config(folder: Path, shared_data: Path) -> None:
    _text_corpus(folder / "corpus", shared_data, rows=12)
    config = base_config(models=["linear", "ef_lf_avg"], seeds=[0, 1],
                         modalities={"audio": {"extractor": "egemaps", "view": "pooled"},
                                     "text": {"extractor": "text", "view": "pooled"}},
                         tasks={"emotion": {"weight": 1.0, "loss": "ce"}},
                         hparams={"max_epochs": 4, "patience": 2, "batch_size": 4, "hidden": 8})
    config["corpora"] = {"c": {"manifest": "corpus/manifest.csv", "shards": 3,
                               "extractors": ["egemaps", "text"],
                               "labels": {"emotion": {"type": "categorical", "classes": ["anger", "neutral"]}}}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))


@pytest.mark.slow
def test_a_build_killed_mid_way_resumes_to_the_clean_result(tmp_path: Path, shared_data: Path) -> None:
    clean, crashed = tmp_path / "clean", tmp_path / "crashed"
    for folder in (clean, crashed):
        _crash_config(folder, shared_data)
    snakemake(clean, "--cores", "2")
    process = subprocess.Popen(snakemake_command(crashed, "--cores", "2"), cwd=crashed, env=snakemake_env(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not list((crashed / "results/c/features/egemaps").glob("shard=*.parquet")):
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # snakemake and every job it started, mid-write or not
    process.wait()
    assert not (crashed / "results/c/metrics.json").exists(), "the build ended before it was killed"
    # Every file that exists under its final name is complete.
    for part in (crashed / "results").rglob("*.parquet"):
        pq.read_metadata(part)
    locked = run_snakemake(crashed, "--cores", "2")
    assert locked.returncode != 0 and "LockException" in locked.stdout + locked.stderr
    snakemake(crashed, "--unlock")
    snakemake(crashed, "--cores", "2", "--rerun-incomplete")
    for name in ("metrics.json", "rejected_summary.json"):
        assert json.loads((crashed / "results/c" / name).read_text()) == \
            json.loads((clean / "results/c" / name).read_text())
    assert "Nothing to be done" in snakemake(crashed, "--cores", "2", "-n")


def _fail_after_partial_write(target_arg: int):
    """A writer that leaves half a file at the path it was given, then fails like a full disk."""
    def write(*args, **kwargs):
        where = args[target_arg]
        if hasattr(where, "write"):
            where.write(b"PK\x03\x04 partial")
        else:
            Path(where).write_bytes(b"PAR1 partial")
        raise OSError(28, "No space left on device")
    return write


def test_a_stage_that_fails_mid_write_leaves_no_file_under_the_output_name(tmp_path: Path, monkeypatch,
                                                                         shared_data: Path) -> None:
    """Ingest, dataset assembly and evaluation write to a temporary name and rename: a writer
    dying half-way leaves the output absent (Snakemake then reruns the job), never truncated."""
    import numpy as np

    from affectflow.features.base import FeatureResult
    from affectflow.features.store import Provenance, StoreRow, write_partition
    from affectflow.ingest import run as ingest_run
    from affectflow.ingest.manifest import IngestOptions
    from affectflow.report import figures
    from affectflow.train import dataset

    _text_corpus(tmp_path / "corpus", shared_data, rows=3)
    labels = {"emotion": {"type": "categorical", "classes": ["anger", "neutral"]}}
    monkeypatch.setattr(ingest_run.pq, "write_table", _fail_after_partial_write(1))
    with pytest.raises(OSError, match="No space"):
        ingest_run.ingest_corpus(tmp_path / "corpus/manifest.csv", tmp_path / "m.parquet",
                                 tmp_path / "r.parquet", IngestOptions("c", 1, ingest_run.label_specs(labels)))
    monkeypatch.undo()
    assert not (tmp_path / "m.parquet").exists()
    ingest_run.ingest_corpus(tmp_path / "corpus/manifest.csv", tmp_path / "m.parquet", tmp_path / "r.parquet",
                             IngestOptions("c", 1, ingest_run.label_specs(labels)))

    ids = pd.read_parquet(tmp_path / "m.parquet")["utt_id"].tolist()
    write_partition(tmp_path / "store/shard=0.parquet",
                    [StoreRow(u, "s", FeatureResult(np.ones((2, 2)), np.ones(2))) for u in ids], Provenance("t", "1", {}))
    monkeypatch.setattr(dataset.np, "savez", _fail_after_partial_write(0))
    with pytest.raises(OSError, match="No space"):
        dataset.assemble_dataset(tmp_path / "m.parquet", {"m": str(tmp_path / "store")}, labels,
                                 tmp_path / "d.npz")
    monkeypatch.undo()
    assert not (tmp_path / "d.npz").exists() and not list(tmp_path.glob(".*d*"))

    result = {"model_name": "m", "seed": 0, "test_metrics": {"t": {"acc": 0.5}}, "confusion": {},
              "curves": {"train_loss": [1.0], "valid_loss": [1.0]}}
    (tmp_path / "result.json").write_text(json.dumps(result))
    monkeypatch.setattr(figures, "plot_curves", _fail_after_partial_write(2))
    with pytest.raises(OSError, match="No space"):
        figures.evaluate_runs([tmp_path / "result.json"], tmp_path / "metrics.json", tmp_path / "figures")
    assert not (tmp_path / "figures").exists() and not (tmp_path / "metrics.json").exists()
