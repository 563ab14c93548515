"""A compact value-by-value digest of a build's feature stores, to compare two builds.

Per store and utterance (the first `N_UTTERANCES` ids): whether it was accepted, its number of
steps, the per-column mean and standard deviation of its sequence over the steps, and its pooled
vector (at a stride when longer than MAX_POOLED). Written once from a reference build (`python tests/feature_digest.py RESULTS OUT.npz`)
and compared by `test_workflow.py`, so a refactoring of the extractors that changes any stored
value fails a test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

N_UTTERANCES = 12
MAX_POOLED = 1000  # longer pooled vectors are kept at an even stride (keeps the file small)


def store_digest(store: Path) -> dict[str, np.ndarray]:
    """`<utt_id>/<field>` → array for the first N_UTTERANCES utterances of one store folder."""
    tables = [pq.read_table(f) for f in sorted(store.glob("shard=*.parquet"))]
    rows = sorted((row for table in tables for row in table.select(
        ["utt_id", "ok", "n_steps", "values", "pooled"]).to_pylist()), key=lambda r: r["utt_id"])
    out: dict[str, np.ndarray] = {}
    for row in rows[:N_UTTERANCES]:
        key = row["utt_id"]
        out[f"{key}/ok"] = np.array(bool(row["ok"]))
        if not row["ok"]:
            continue
        values = np.asarray(row["values"], np.float64)
        values = values.reshape(len(values), -1)
        out[f"{key}/n_steps"] = np.array(int(row["n_steps"]))
        out[f"{key}/mean"] = values.mean(axis=0).astype(np.float32)
        out[f"{key}/std"] = values.std(axis=0).astype(np.float32)
        pooled = np.asarray(row["pooled"], np.float32)
        out[f"{key}/pooled"] = pooled[::max(len(pooled) // MAX_POOLED, 1)]  # ComParE: every 7th
    return out


def build_digest(features: Path) -> dict[str, np.ndarray]:
    """`<store>/<utt_id>/<field>` → array for every store under a corpus's features folder."""
    return {f"{store.name}/{key}": value for store in sorted(features.iterdir()) if store.is_dir()
            for key, value in store_digest(store).items()}


def differences(reference: dict[str, np.ndarray], current: dict[str, np.ndarray],
                rtol: float = 1e-3, atol: float = 1e-3) -> list[str]:
    """What differs between two digests, over the stores both hold (one line per difference)."""
    stores = {k.split("/")[0] for k in reference} & {k.split("/")[0] for k in current}
    found = []
    for key in sorted(k for k in reference.keys() | current.keys() if k.split("/")[0] in stores):
        if key not in reference or key not in current:
            found.append(f"{key}: only in the {'current' if key in current else 'reference'} build")
        elif reference[key].shape != current[key].shape:
            found.append(f"{key}: shape {current[key].shape}, reference {reference[key].shape}")
        elif not np.allclose(current[key], reference[key], rtol=rtol, atol=atol):
            worst = float(np.max(np.abs(current[key].astype(np.float64) - reference[key])))
            found.append(f"{key}: differs by up to {worst:.3g}")
    return found


if __name__ == "__main__":
    digest = build_digest(Path(sys.argv[1]))
    np.savez_compressed(sys.argv[2], **digest)
    print(f"{len(digest)} arrays from {sorted({k.split('/')[0] for k in digest})} -> {sys.argv[2]}")
