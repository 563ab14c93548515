"""Dry-run planning time of the DAG for a CMU-MOSEI-sized manifest (25,000 utterances).

Prints the planning time and job count for 25,000 utterances and, as the baseline measured in
the same run, for 1,000 utterances: sharding should keep the ratio far below 25×. Each manifest
is ingested first (the shard list comes from the ingest checkpoint), then `snakemake -n` is
timed. Media rows all point at one short real clip, so only planning is measured.

    python benchmarks/dag_planning.py [--utterances 25000] [--shards 64]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

from _common import REPO, SHARED_MEDIA, snakemake, write_config


def plan(n_utterances: int, shards: int, scratch: Path) -> tuple[float, float, int]:
    """(ingest seconds, dry-run seconds, planned jobs) for a synthetic manifest."""
    workdir = scratch / f"n{n_utterances}"
    workdir.mkdir()
    clip = SHARED_MEDIA / "single_face.mp4"
    manifest = pd.DataFrame({
        "utt_id": [f"v{i // 20:05d}_c{i % 20:02d}" for i in range(n_utterances)],
        "speaker": [f"s{i % 300}" for i in range(n_utterances)],
        "video_path": str(clip), "start_s": 0.0, "end_s": 2.0,
        "transcript": "a synthetic utterance", "split": ["train", "valid", "test"] * (n_utterances // 3)
        + ["train"] * (n_utterances % 3),
        "emotion": "neutral", "sentiment": 0.0, "sarcasm": 0,
    })
    manifest.to_csv(workdir / "manifest.csv", index=False)
    write_config(workdir, "bench", workdir / "manifest.csv", shards)
    ingest = snakemake(workdir, "--cores", "1", "results/bench/manifest.parquet")
    dry = snakemake(workdir, "-n", "--quiet", "rules")
    out = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "--directory",
                          str(workdir), "--configfile", str(workdir / "config.yaml"), "-n"],
                         capture_output=True, text=True, cwd=workdir).stdout
    total = re.search(r"^total\s+(\d+)", out, re.M)
    return ingest, dry, int(total.group(1)) if total else -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=25000)
    parser.add_argument("--baseline", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=64)
    args = parser.parse_args()
    if not SHARED_MEDIA.exists():
        raise SystemExit(f"needs real media at {SHARED_MEDIA}")
    with tempfile.TemporaryDirectory() as scratch:
        base = plan(args.baseline, args.shards, Path(scratch))
        big = plan(args.utterances, args.shards, Path(scratch))
    print(f"{'utterances':>10} {'ingest s':>9} {'dry-run s':>10} {'jobs':>6}")
    for n, (ingest, dry, jobs) in ((args.baseline, base), (args.utterances, big)):
        print(f"{n:>10} {ingest:>9.2f} {dry:>10.2f} {jobs:>6}")
    print(f"dry-run time ratio {args.utterances}/{args.baseline} utterances: {big[1] / base[1]:.2f} "
          f"(utterance ratio {args.utterances / args.baseline:.0f}); jobs per utterance at "
          f"{args.utterances}: {big[2] / args.utterances:.4f} (one job per utterance and extractor "
          f"would be {5 * args.utterances} jobs)")


if __name__ == "__main__":
    main()
