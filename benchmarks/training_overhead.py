"""Overhead per training when a model's seeds run in one job (the `train` rule) versus one job
per seed (the layout before): the issue's target is ≤ 2 s per training beyond its compute.

A synthetic pooled dataset (300 utterances, 88 + 384 dimensions, a binary task) is written once;
`python -m affectflow train` is run as the workflow runs it, once with one seed and once with
`--seeds` 0..N-1, timed with wall clocks. Overhead per training = (job wall − Σ train_seconds of
its seeds) / seeds. Prints both, and their ratio, measured in the same run.

    python benchmarks/training_overhead.py [--seeds 5] [--model svm]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def write_dataset(path: Path, n: int = 300) -> None:
    rng = np.random.default_rng(0)
    ids = np.array([f"u{i:04d}" for i in range(n)])
    arrays = {"utt_ids": ids, "speakers": ids,
              "fold/split": np.array(["train", "valid", "test"] * (n // 3), dtype=str)}
    for modality, dim in (("audio", 88), ("text", 384)):
        arrays[f"{modality}/x"] = rng.normal(size=(n, 1, dim)).astype(np.float32)
        arrays[f"{modality}/lengths"] = np.ones(n, np.int64)
        arrays[f"{modality}/present"] = np.ones(n, bool)
        arrays[f"view/{modality}"] = np.array("pooled")
        arrays[f"source/{modality}"] = np.array(json.dumps({"extractor": modality}))
    arrays["label/flag"] = (arrays["text/x"][:, 0, 0] > 0).astype(np.float32)
    arrays["kind/flag"] = np.array("binary")
    np.savez(path, **arrays)


def job(dataset: Path, out: Path, model: str, seeds: list[int]) -> tuple[float, float]:
    """(wall seconds of the job, Σ train_seconds its seeds report)."""
    results = [out / f"r{s}.json" for s in seeds]
    command = [sys.executable, "-m", "affectflow", "train", "--dataset", str(dataset),
               "--model", model, "--seeds", *map(str, seeds), "--tasks", '{"flag": {}}',
               "--hparams", '{"max_epochs": 5}', "--device", "cpu",
               "--results", *map(str, results), "--weights", *(str(out / f"m{s}.pt") for s in seeds)]
    t0 = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, cwd=REPO,
                   env={"PYTHONPATH": str(REPO / "src"), "PATH": str(Path(sys.executable).parent)})
    wall = time.perf_counter() - t0
    return wall, sum(json.loads(r.read_text())["train_seconds"] for r in results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--model", default="svm")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_dataset(root / "ds.npz")
        (root / "one").mkdir()
        (root / "all").mkdir()
        wall1, compute1 = job(root / "ds.npz", root / "one", args.model, [0])
        walln, computen = job(root / "ds.npz", root / "all", args.model, list(range(args.seeds)))
    one = wall1 - compute1
    per = (walln - computen) / args.seeds
    print(f"{args.model}: one seed per job   {wall1:6.2f} s wall, compute {compute1:.2f} s, "
          f"overhead {one:.2f} s per training")
    print(f"{args.model}: {args.seeds} seeds in one job {walln:6.2f} s wall, compute {computen:.2f} s, "
          f"overhead {per:.2f} s per training")
    print(f"overhead ratio (in one job / one per job): {per / one:.2f}; target ≤ 2 s: "
          f"{'met' if per <= 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
