"""Incremental build: add 1 utterance to N already built, compare with the full build.

Builds every feature store and the rejected table (`snakemake <results>/<corpus>/rejected.parquet`)
for N real utterances (2 s segments of the talking-head clip in ../shared/data/media at distinct
offsets), appends one utterance to the manifest, builds again, and prints: the full build time
(the baseline, same run), the incremental time, their ratio, and how many utterances each
extractor actually processed in the incremental build (from the shard logs; must be exactly 1).

    python benchmarks/incremental_build.py [--utterances 1000] [--shards 16]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

import pandas as pd

from _common import SHARED_MEDIA, snakemake, write_config

STATS_PREFIX = "AFFECTFLOW_STATS "


def segments(n: int, offset: int = 0) -> pd.DataFrame:
    """n distinct 2 s segments of the real talking-head clip (speech and a face in each)."""
    clip = SHARED_MEDIA / "obama_talking_head.mp4"
    starts = [round(((i + offset) * 0.0173) % 17.5, 4) for i in range(n)]
    return pd.DataFrame({
        "utt_id": [f"seg{i + offset:05d}" for i in range(n)], "speaker": "obama",
        "video_path": str(clip), "start_s": starts, "end_s": [s + 2.0 for s in starts],
        "transcript": [f"segment number {i + offset} of the speech" for i in range(n)],
        "split": [("train", "train", "train", "valid", "test")[i % 5] for i in range(n)],
        "emotion": "neutral", "sentiment": 0.0, "sarcasm": 0,
    })


def processed_since(logs: Path, since: float) -> Counter:
    """Utterances processed per extractor, from shard logs written after `since`."""
    counts: Counter = Counter()
    for log in logs.rglob("shard=*.log"):
        if log.stat().st_mtime < since:
            continue
        for line in log.read_text().splitlines():
            if line.startswith(STATS_PREFIX):
                stats = json.loads(line[len(STATS_PREFIX):])
                counts[stats["extractor"]] += stats["processed"]
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utterances", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=16)
    parser.add_argument("--cores", type=int, default=2)
    args = parser.parse_args()
    if not SHARED_MEDIA.exists():
        raise SystemExit(f"needs real media at {SHARED_MEDIA}")
    with tempfile.TemporaryDirectory() as scratch:
        workdir = Path(scratch)
        manifest = workdir / "manifest.csv"
        segments(args.utterances).to_csv(manifest, index=False)
        write_config(workdir, "bench", manifest, args.shards)
        target = "results/bench/rejected.parquet"
        full = snakemake(workdir, "--cores", str(args.cores), target)
        noop = snakemake(workdir, "--cores", str(args.cores), target)
        # Append one line, as a user would (rewriting the table through a float parser can
        # change other rows' digits, and then those rows really are different inputs).
        segments(1, offset=args.utterances).to_csv(manifest, mode="a", header=False, index=False)
        time.sleep(1.0)
        since = time.time()
        incremental = snakemake(workdir, "--cores", str(args.cores), target)
        counts = processed_since(workdir / "results" / "logs" / "bench", since)
    print(f"full build of {args.utterances} utterances ({args.shards} shards): {full:.1f} s (baseline)")
    print(f"re-run with nothing changed: {noop:.1f} s (ratio {noop / full:.3f})")
    print(f"incremental build after adding 1 utterance: {incremental:.1f} s; "
          f"ratio to the full build: {incremental / full:.3f}")
    print("utterances processed per extractor in the incremental build: "
          + ", ".join(f"{name}={counts.get(name, 0)}" for name in ("audio", "egemaps", "logmel", "text", "face")))


if __name__ == "__main__":
    main()
