"""Parquet feature stores: one dataset per (corpus, extractor), one file per shard.

Layout: ``<store>/shard=<k>.parquet``. Each row is one utterance, keyed by ``utt_id``:

| column     | type                                   | meaning                                   |
|------------|----------------------------------------|-------------------------------------------|
| utt_id     | string                                 | manifest key                              |
| ok         | bool                                   | false: the extractor rejected the utterance |
| reason     | string                                 | why it was rejected (null when ok)        |
| input_sig  | string                                 | hash of what the row was computed from    |
| n_steps    | int32                                  | number of frames/tokens (1 for a vector)  |
| times      | list<float32>                          | frame-centre times in s (null if untimed) |
| values     | list<fixed_size_list<float32, D>>      | the sequence, (n_steps, D)                |
| pooled     | list<float32> (length D_p)             | utterance-level vector                    |
| x_<name>   | list<...>                              | extras (landmarks, per-frame face flags)  |

The file's key-value metadata ``affectflow`` holds the provenance: extractor name and version,
its parameters and their hash, library versions, value names. Files read as plain tables in
pandas, pyarrow and DuckDB.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from affectflow.atomic import atomic_path
from affectflow.features.base import FeatureResult

METADATA_KEY = b"affectflow"
PROVENANCE_PACKAGES = ("affectflow", "numpy", "pyarrow", "torch", "transformers", "opensmile",
                       "mediapipe", "librosa", "av")


def params_hash(params: Mapping[str, Any]) -> str:
    """A stable short hash of a parameter mapping (key order does not matter)."""
    canonical = json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def library_versions(packages: Iterable[str] = PROVENANCE_PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape the features (absent ones are skipped)."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            continue
    return versions


@dataclass(frozen=True)
class Provenance:
    """Who made a feature file and how; stored in every partition's metadata."""

    extractor: str
    version: str
    params: Mapping[str, Any]
    corpus: str = ""
    shard: int = -1
    value_names: Sequence[str] = ()
    pooled_names: Sequence[str] = ()
    # Parameters that change how, not what, is computed (device, ...): stored, but not hashed, so
    # moving an extractor to a GPU reuses every cached row.
    runtime: Sequence[str] = ()

    def to_json(self) -> str:
        return json.dumps(
            {
                "extractor": self.extractor,
                "version": self.version,
                "params": dict(self.params),
                "params_hash": self.params_hash,
                "corpus": self.corpus,
                "shard": self.shard,
                "value_names": list(self.value_names),
                "pooled_names": list(self.pooled_names),
                "libraries": library_versions(),
            },
            sort_keys=True,
            default=str,
        )

    @property
    def params_hash(self) -> str:
        values = {k: v for k, v in dict(self.params).items() if k not in self.runtime}
        return params_hash({"version": self.version, **values})


def _sequence_array(arrays: Sequence[np.ndarray | None]) -> pa.Array:
    """(T_i, D) float arrays → list<fixed_size_list<float32, D>>; None → null."""
    dims = {a.shape[1] for a in arrays if a is not None and a.ndim == 2}
    if len(dims) > 1:
        raise ValueError(f"rows have different feature widths: {sorted(dims)}")
    dim = dims.pop() if dims else 1
    present = [a for a in arrays if a is not None]
    flat = (np.concatenate([a.reshape(-1) for a in present]).astype(np.float32)
            if present else np.zeros(0, np.float32))
    inner = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dim)
    lengths = [0 if a is None else len(a) for a in arrays]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    mask = pa.array([a is None for a in arrays], pa.bool_())
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), inner, mask=mask)


def _flat_list_array(arrays: Sequence[np.ndarray | None], value_type: pa.DataType) -> pa.Array:
    """(T_i,) arrays → list<value_type>; None → null."""
    return pa.array([None if a is None else np.asarray(a).tolist() for a in arrays],
                    pa.list_(value_type))


def _vector_array(arrays: Sequence[np.ndarray | None]) -> pa.Array:
    """(D,) arrays → list<float32>; None → null. (A plain list: Parquet cannot round-trip null
    entries of a fixed-size list.)"""
    dims = {len(a) for a in arrays if a is not None}
    if len(dims) > 1:
        raise ValueError(f"pooled vectors have different widths: {sorted(dims)}")
    return _flat_list_array(arrays, pa.float32())


@dataclass
class StoreRow:
    """One utterance's outcome for one extractor: a result, or the reason it has none."""

    utt_id: str
    input_sig: str
    result: FeatureResult | None = None
    reason: str | None = None


def rows_to_table(rows: Sequence[StoreRow], provenance: Provenance) -> pa.Table:
    """Build the partition table (see the module docstring for the columns)."""
    results = [r.result for r in rows]
    columns: dict[str, pa.Array] = {
        "utt_id": pa.array([r.utt_id for r in rows], pa.string()),
        "ok": pa.array([r.result is not None for r in rows], pa.bool_()),
        "reason": pa.array([r.reason for r in rows], pa.string()),
        "input_sig": pa.array([r.input_sig for r in rows], pa.string()),
        "n_steps": pa.array([0 if x is None else (len(x.values) if x.values.ndim == 2 else 1)
                             for x in results], pa.int32()),
        "times": _flat_list_array([None if x is None else x.times for x in results], pa.float32()),
        "values": _sequence_array([None if x is None else np.atleast_2d(x.values) for x in results]),
        "pooled": _vector_array([None if x is None else x.pooled for x in results]),
    }
    extra_names = sorted({k for x in results if x is not None for k in x.extra})
    for name in extra_names:
        values = [None if x is None else x.extra.get(name) for x in results]
        sample = next(v for v in values if v is not None)
        if isinstance(sample, list) or (isinstance(sample, np.ndarray) and sample.dtype.kind in "US"):
            columns[f"x_{name}"] = pa.array([None if v is None else [str(s) for s in v]
                                             for v in values], pa.list_(pa.string()))
        elif np.asarray(sample).ndim == 2:
            columns[f"x_{name}"] = _sequence_array(values)  # type: ignore[arg-type]
        elif np.asarray(sample).dtype == bool:
            columns[f"x_{name}"] = _flat_list_array(values, pa.bool_())
        else:
            columns[f"x_{name}"] = _flat_list_array(values, pa.float32())
    table = pa.table(columns)
    return table.replace_schema_metadata({METADATA_KEY: provenance.to_json().encode()})


def write_partition(path: str | os.PathLike[str], rows: Sequence[StoreRow],
                    provenance: Provenance) -> None:
    """Write one shard atomically (temp file + rename), so a killed job leaves no half file."""
    table = rows_to_table(rows, provenance)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The provenance record stored in a partition's metadata."""
    meta = pq.read_schema(path).metadata or {}
    if METADATA_KEY not in meta:
        raise ValueError(f"{path}: not an affectflow feature file (no provenance metadata)")
    return json.loads(meta[METADATA_KEY])


def _list_of_2d(column: pa.ChunkedArray | pa.Array, index: int) -> np.ndarray:
    """One row of a list<fixed_size_list<float32>> column as a (T, D) array."""
    item = column[index]
    if not item.is_valid:
        return np.zeros((0, 0), np.float32)
    inner = item.values  # FixedSizeListArray
    dim = inner.type.list_size
    return inner.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32)


def read_results(path: str | os.PathLike[str], utt_ids: Sequence[str]
                 ) -> dict[str, tuple[bool, str | None, str, FeatureResult | None]]:
    """utt_id → (ok, reason, input_sig, FeatureResult or None) for the `utt_ids` rows of one
    partition: how an extractor reading another store sees its rows (extras included)."""
    table = pq.read_table(path)
    wanted = set(utt_ids)
    extras = [n for n in table.schema.names if n.startswith("x_")]
    out: dict[str, tuple[bool, str | None, str, FeatureResult | None]] = {}
    for i, utt_id in enumerate(table["utt_id"].to_pylist()):
        if utt_id not in wanted:
            continue
        ok = bool(table["ok"][i].as_py())
        result = None
        if ok:
            times = table["times"][i].as_py()
            extra: dict[str, Any] = {}
            for name in extras:
                column = table[name]
                if pa.types.is_list(column.type) and pa.types.is_fixed_size_list(column.type.value_type):
                    extra[name[2:]] = _list_of_2d(column, i)
                else:
                    value = column[i].as_py()
                    extra[name[2:]] = value if value is None or (value and isinstance(value[0], str)) \
                        else np.asarray(value)
            result = FeatureResult(values=_list_of_2d(table["values"], i),
                                   pooled=np.asarray(table["pooled"][i].as_py(), np.float32),
                                   times=None if times is None else np.asarray(times, np.float32),
                                   extra=extra)
        out[utt_id] = (ok, table["reason"][i].as_py(), table["input_sig"][i].as_py(), result)
    return out
