"""Read feature stores back as arrays: pooled vectors or padded sequences, for any extractors.

    >>> pooled = read_pooled("results/demo/features/egemaps")
    >>> seq = read_sequences("results/demo/features/face", max_steps=64)
    >>> seq.values.shape, seq.lengths.shape    # (N, T, D), (N,)

Rows an extractor rejected (``ok == false``) are left out; `read_rejections` lists them.
"""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from affectflow.features.store import read_provenance


def partition_files(store: str | os.PathLike[str]) -> list[str]:
    """The shard files of a store folder (or the file itself), in shard order."""
    store = str(store)
    if os.path.isfile(store):
        return [store]
    files = sorted(glob.glob(os.path.join(store, "shard=*.parquet")))
    if not files:
        raise FileNotFoundError(f"no feature partitions (shard=*.parquet) in {store}")
    return files


def _read(store: str | os.PathLike[str] | Sequence[str], columns: list[str],
          only_ok: bool = True) -> pa.Table:
    """Concatenate the shards' `columns`, keeping accepted rows only unless told otherwise."""
    files = list(store) if isinstance(store, (list, tuple)) else partition_files(store)
    table = pa.concat_tables([pq.read_table(f, columns=columns) for f in files],
                             promote_options="permissive")
    return table.filter(pc.equal(table["ok"], True)) if only_ok else table


@dataclass
class PooledFeatures:
    utt_ids: list[str]
    values: np.ndarray  # (N, D) float32


@dataclass
class SequenceFeatures:
    utt_ids: list[str]
    values: np.ndarray  # (N, T_max, D) float32, zero-padded
    lengths: np.ndarray  # (N,) int64, ≥ 1
    times: np.ndarray | None  # (N, T_max) float32 or None when untimed


def read_pooled(store: str | os.PathLike[str] | Sequence[str],
                utt_ids: Sequence[str] | None = None) -> PooledFeatures:
    """Utterance-level vectors of the accepted rows, optionally in the order of `utt_ids`."""
    table = _read(store, ["utt_id", "ok", "pooled"])
    ids = table["utt_id"].to_pylist()
    column = table["pooled"].combine_chunks()
    flat = column.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
    values = flat.reshape(len(ids), -1) if len(ids) else np.zeros((0, 0), np.float32)
    return _select(PooledFeatures(ids, values), utt_ids)


def read_sequences(store: str | os.PathLike[str] | Sequence[str],
                   utt_ids: Sequence[str] | None = None,
                   max_steps: int | None = None) -> SequenceFeatures:
    """Padded sequences of the accepted rows; longer ones are cut to `max_steps` (evenly sampled)."""
    table = _read(store, ["utt_id", "ok", "values", "times"])
    ids = table["utt_id"].to_pylist()
    values_col = table["values"].combine_chunks()
    offsets = values_col.offsets.to_numpy()
    inner = values_col.values
    dim = inner.type.list_size
    flat = inner.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32)
    times_col = table["times"].combine_chunks()
    timed = times_col.null_count < len(times_col)
    lengths = np.diff(offsets).astype(np.int64)
    t_max = int(lengths.max()) if len(lengths) else 1
    if max_steps is not None:
        t_max = min(t_max, max_steps)
    padded = np.zeros((len(ids), max(t_max, 1), dim), np.float32)
    times_out = np.zeros((len(ids), max(t_max, 1)), np.float32) if timed else None
    out_lengths = np.ones(len(ids), np.int64)
    for i, (start, n) in enumerate(zip(offsets[:-1], lengths)):
        index = np.arange(n) if n <= t_max else np.linspace(0, n - 1, t_max).round().astype(int)
        padded[i, : len(index)] = flat[start + index]
        out_lengths[i] = max(len(index), 1)
        if times_out is not None and times_col[i].is_valid:
            row_times = times_col[i].values.to_numpy(zero_copy_only=False)
            times_out[i, : len(index)] = row_times[index]
    return _select(SequenceFeatures(ids, padded, out_lengths, times_out), utt_ids)


def _select(features, utt_ids: Sequence[str] | None):
    """Reorder rows to follow `utt_ids` (those missing from the store raise KeyError)."""
    if utt_ids is None:
        return features
    position = {u: i for i, u in enumerate(features.utt_ids)}
    missing = [u for u in utt_ids if u not in position]
    if missing:
        raise KeyError(f"{len(missing)} utterances have no accepted features, e.g. {missing[:3]}")
    index = np.array([position[u] for u in utt_ids], dtype=np.int64)
    picked = {name: (value[index] if isinstance(value, np.ndarray) else value)
              for name, value in vars(features).items() if name != "utt_ids"}
    return type(features)(utt_ids=list(utt_ids), **picked)


def read_rejections(store: str | os.PathLike[str]) -> pd.DataFrame:
    """The rows an extractor rejected: utt_id and reason."""
    frame = _read(store, ["utt_id", "ok", "reason"], only_ok=False).to_pandas()
    return frame.loc[~frame["ok"], ["utt_id", "reason"]].reset_index(drop=True)


def store_provenance(store: str | os.PathLike[str]) -> dict:
    """The provenance of a store (taken from its first partition)."""
    return read_provenance(partition_files(store)[0])


def accepted_ids(store: str | os.PathLike[str] | Sequence[str]) -> set[str]:
    """utt_ids that have features in this store."""
    return set(_read(store, ["utt_id", "ok"])["utt_id"].to_pylist())
