"""CMU-MultimodalSDK computational sequences (``.csd``, HDF5) and word-level alignment.

Why: CMU-MOSI/MOSEI/POM features ship as computational sequences, and the SDK's ``align`` is
slow (hours and ~32 GB for MOSEI); here it is a few array operations per video.

File layout, as the SDK's ``file_ops.write_CSD`` writes it: ``/<name>/data/<video_id>/features``
(N × D) and ``/<name>/data/<video_id>/intervals`` (N × 2, start/end seconds), and
``/<name>/metadata/<key>``: one dataset of shape (1,) per key, a variable-length string holding
``json.dumps(value)``; the reader ``json.loads`` each (falling back to the plain string). The SDK
reads the first group of the file as the sequence and needs the ``root name`` key.

Alignment (``align_to_reference``) follows ``mmdataset.align`` + ``__intersect_and_copy``: a
frame [s0, s1] belongs to a reference interval [r0, r1] when their overlap
``min(s1, r1) - max(s0, r0)`` exceeds ``epsilon`` (1e-5 s, the SDK's); the frames of an interval
are collapsed by their plain (unweighted) mean. So frames of (near) zero length never count and
nor do reference intervals shorter than epsilon. Reference intervals with no frame are dropped
(``empty="drop"``, what the SDK ends with after ``hard_unify``) or filled with zeros (``"zero"``,
the SDK's ``impute``) or NaN. Unlike the SDK, the output keeps the reference interval itself
(not the span of the clipped frames) and the reference row index.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping, NamedTuple

import numpy as np
import pyarrow.parquet as pq

from affectflow.features.base import FeatureResult
from affectflow.features.reader import partition_files
from affectflow.features.store import Provenance, StoreRow, read_provenance
from affectflow.formats.openface import IMPORTER_VERSION, file_sha256, write_import_store

EPSILON = 1e-5  # the SDK's `epsilon=10e-6`
# The SDK's featuresetMetadataTemplate (metadataconfigs.py). Its list lacks a comma after
# "dimension names", so the SDK itself checks for "dimension namescomputational sequence
# version" and warns "missing metadata" for every file; we write the two keys separately.
SDK_METADATA_KEYS = (
    "root name", "computational sequence description", "dimension names",
    "computational sequence version", "alignment compatible", "dataset name", "dataset version",
    "creator", "contact", "featureset bib citation", "dataset bib citation",
)

Sequences = Mapping[str, tuple[np.ndarray, np.ndarray]]


class Aligned(NamedTuple):
    """One video aligned to its reference: features (M, D), the reference intervals (M, 2)
    and their row numbers in the reference (M,)."""

    features: np.ndarray
    intervals: np.ndarray
    index: np.ndarray


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:  # pragma: no cover - h5py is installed where csd is used
        raise ImportError("reading or writing .csd files needs h5py (pip install h5py)") from exc
    return h5py


def write_csd(path: str | os.PathLike[str], name: str,
              data: Mapping[str, tuple[np.ndarray, np.ndarray]], metadata: Mapping[str, Any],
              compression: str | None = "gzip", compression_opts: int | None = 4) -> Path:
    """Write a computational sequence: `data` maps video_id → (features (N, D), intervals (N, 2)).

    Missing SDK metadata keys are filled (``root name`` = `name`, ``uuid``, ``md5`` = null, the
    others empty or derived) so the SDK never prompts for them. Written with HDF5 format bounds
    (earliest, v108) so HDF5 1.8+ (any h5py the SDK runs on) reads it. Atomic (temp + rename).
    """
    h5py = _h5py()
    path = Path(path)
    meta = {key: "" for key in SDK_METADATA_KEYS}
    meta.update({"alignment compatible": True, "uuid": str(uuid.uuid4()), "md5": None})
    meta.update(dict(metadata))
    meta["root name"] = name
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    options = ({"compression": compression, "compression_opts": compression_opts}
               if compression else {})
    try:
        with h5py.File(tmp, "w", libver=("earliest", "v108")) as handle:
            group = handle.create_group(name).create_group("data")
            for video_id, (features, intervals) in data.items():
                if "/" in str(video_id):
                    raise ValueError(f"video id {video_id!r} has a '/', which HDF5 cannot name")
                features, intervals = np.asarray(features), np.asarray(intervals)
                if intervals.ndim != 2 or intervals.shape[1] != 2 or features.ndim < 2 \
                        or len(features) != len(intervals):
                    raise ValueError(f"video {video_id!r}: features {features.shape} and "
                                     f"intervals {intervals.shape} must be (N, D) and (N, 2)")
                entry = group.create_group(str(video_id))
                entry.create_dataset("features", data=features, **options)
                entry.create_dataset("intervals", data=intervals, **options)
            meta_group = handle[name].create_group("metadata")
            for key, value in meta.items():
                dataset = meta_group.create_dataset(key, (1,), dtype=h5py.string_dtype())
                dataset[0] = json.dumps(value, default=str)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def read_csd(path: str | os.PathLike[str], video_ids: Iterable[str] | None = None
             ) -> tuple[str, dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Any]]:
    """(name, {video_id: (features, intervals)}, metadata) of a .csd file, arrays in memory
    (only `video_ids` when given). The sequence is the file's first group, as in the SDK."""
    h5py = _h5py()
    with h5py.File(path, "r") as handle:
        roots = list(handle.keys())
        if not roots or "data" not in handle[roots[0]]:
            raise ValueError(f"{path}: not a computational sequence (no /<name>/data group)")
        root = handle[roots[0]]
        group = root["data"]
        wanted = list(group.keys()) if video_ids is None else [str(v) for v in video_ids]
        data = {v: (group[v]["features"][()], group[v]["intervals"][()]) for v in wanted}
        metadata: dict[str, Any] = {}
        for key, dataset in (root["metadata"].items() if "metadata" in root else ()):
            raw = dataset[0]
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
            try:
                metadata[key] = json.loads(text)
            except ValueError:
                metadata[key] = text
    return roots[0], data, metadata


def _align_one(features: np.ndarray, intervals: np.ndarray, ref: np.ndarray, epsilon: float,
               collapse: str) -> tuple[np.ndarray, np.ndarray]:
    """(collapsed (M, D) float64, frame count (M,)) of one video, with sorts and searchsorted.

    Frames of [r0, r1] = {s0 < r1 - eps} minus {s1 <= r0 + eps}; for frames and references longer
    than eps the second set lies inside the first. When frame ends rise with frame starts (the
    usual case) the frames of each reference are one run [lo, hi) of the start-sorted frames,
    summed with ``np.add.reduceat``; otherwise each sum is a difference of two prefix sums (by
    start and by end)."""
    flat = features.reshape(len(features), int(np.prod(features.shape[1:])))
    s0 = intervals[:, 0].astype(np.float64)
    s1 = intervals[:, 1].astype(np.float64)
    valid = (s1 - s0) > epsilon
    if not valid.all():
        flat, s0, s1 = flat[valid], s0[valid], s1[valid]
    n, dim = flat.shape
    if n and not np.all(s0[1:] >= s0[:-1]):
        order = np.argsort(s0, kind="stable")
        flat, s0, s1 = flat[order], s0[order], s1[order]
    r0 = ref[:, 0].astype(np.float64)
    r1 = ref[:, 1].astype(np.float64)
    hi = np.searchsorted(s0, r1 - epsilon, side="left")
    if not n or np.all(s1[1:] >= s1[:-1]):
        lo = np.searchsorted(s1, r0 + epsilon, side="right")
        count = np.where((r1 - r0) > epsilon, np.maximum(hi - lo, 0), 0)
        bounds = np.empty(2 * len(ref), dtype=np.intp)
        bounds[0::2] = np.where(count > 0, lo, n)
        bounds[1::2] = np.where(count > 0, hi, n)
        padded = np.concatenate([flat, np.zeros((1, dim), flat.dtype)])
        out = np.add.reduceat(padded, bounds, axis=0, dtype=np.float64)[0::2]
        out[count == 0] = 0.0
    else:
        order = np.argsort(s1, kind="stable")
        lo = np.searchsorted(s1[order], r0 + epsilon, side="right")
        count = np.where((r1 - r0) > epsilon, np.maximum(hi - lo, 0), 0)
        by_start = np.zeros((n + 1, dim))
        np.cumsum(flat, axis=0, dtype=np.float64, out=by_start[1:])
        by_end = np.zeros((n + 1, dim))
        np.cumsum(flat[order], axis=0, dtype=np.float64, out=by_end[1:])
        out = np.where(count[:, None] > 0, by_start[hi] - by_end[lo], 0.0)
    if collapse == "mean":
        out /= np.maximum(count, 1)[:, None]
    return out, count


def align_to_reference(seq: Sequences, reference: Mapping[str, Any], collapse: str = "mean",
                       empty: str = "drop", epsilon: float = EPSILON) -> dict[str, Aligned]:
    """Collapse the frames of `seq` that overlap each reference interval (e.g. words).

    `seq`: video_id → (features (N, ...), intervals (N, 2)); `reference`: video_id → intervals
    (M, 2), or (features, intervals) as in `seq` (features of more than 2 dimensions are
    flattened to (N, D)). `collapse`: "mean" (the SDK's usual average)
    or "sum". `empty`: what a reference interval with no overlapping frame gets: "drop" (the SDK),
    "zero" or "nan". Videos missing from `seq` have no frames. Returns video_id → `Aligned`;
    with "drop", videos left with no interval are absent. float32 in → float32 out.
    """
    if collapse not in {"mean", "sum"}:
        raise ValueError(f"collapse must be 'mean' or 'sum', not {collapse!r}")
    if empty not in {"drop", "zero", "nan"}:
        raise ValueError(f"empty must be 'drop', 'zero' or 'nan', not {empty!r}")
    sample = next(iter(seq.values()), None)
    width = int(np.prod(np.asarray(sample[0]).shape[1:])) if sample is not None else 0
    dtype = (np.result_type(np.asarray(sample[0]).dtype, np.float32) if sample is not None
             else np.float64)
    out: dict[str, Aligned] = {}
    for video_id, ref_entry in reference.items():
        ref = np.asarray(ref_entry[1] if isinstance(ref_entry, tuple) else ref_entry)
        if video_id in seq:
            features, intervals = (np.asarray(a) for a in seq[video_id])
        else:
            features, intervals = np.zeros((0, width)), np.zeros((0, 2))
        values, count = _align_one(features, intervals, ref, epsilon, collapse)
        index = np.arange(len(ref))
        if empty == "drop":
            index = index[count > 0]
            if not len(index):
                continue
            values = values[index]
        elif empty == "nan":
            values[count == 0] = np.nan
        out[video_id] = Aligned(values.astype(dtype, copy=False), ref[index], index)
    return out


def _align_naive(features: np.ndarray, intervals: np.ndarray, ref: np.ndarray,
                 epsilon: float = EPSILON) -> dict[int, np.ndarray]:
    """The SDK's per-interval loop (``__intersect_and_copy`` + mean); for benchmarks."""
    out = {}
    for i, (r0, r1) in enumerate(ref):
        if abs(r0 - r1) < epsilon:
            continue
        hit = (intervals[:, 0] < r1 + epsilon) & (intervals[:, 1] > r0 - epsilon)
        start = np.maximum(intervals[hit, 0], r0)
        end = np.minimum(intervals[hit, 1], r1)
        keep = np.abs(end - start) > epsilon
        if keep.any():
            out[i] = features[hit][keep].mean(axis=0)
    return out


def benchmark_alignment(n_videos: int = 2000, n_frames: int = 1500, dim: int = 35,
                        n_words: int = 60, naive_videos: int = 100, seed: int = 0) -> dict:
    """Time `align_to_reference` on random videos (100 frames/s, words with gaps) against the
    SDK-style per-interval loop on the first `naive_videos` videos; returns the timings."""
    rng = np.random.default_rng(seed)
    seq, ref = {}, {}
    for v in range(n_videos):
        starts = np.arange(n_frames) * 0.01
        seq[f"v{v}"] = (rng.standard_normal((n_frames, dim)).astype(np.float32),
                        np.stack([starts, starts + 0.01], axis=1))
        cuts = np.sort(rng.uniform(0, n_frames * 0.01, 2 * n_words)).reshape(n_words, 2)
        ref[f"v{v}"] = cuts
    t0 = time.perf_counter()
    align_to_reference(seq, ref)
    fast = time.perf_counter() - t0
    subset = list(ref)[:naive_videos]
    t0 = time.perf_counter()
    for v in subset:
        _align_naive(seq[v][0], seq[v][1], ref[v])
    naive = (time.perf_counter() - t0) / len(subset) * n_videos
    return {"videos": n_videos, "frames": n_frames, "dim": dim, "words": n_words,
            "vectorised_s": fast, "naive_s_extrapolated": naive, "speedup": naive / fast}


def read_store_rows(store: str | os.PathLike[str], only_ok: bool = True) -> dict[str, dict]:
    """utt_id → {"values" (T, D), "times" (T,) or None, "pooled", and each extra ``x_<name>``
    under ``<name>``} for the rows of a feature store."""
    rows: dict[str, dict] = {}
    for file in partition_files(store):
        table = pq.read_table(file)
        columns = table.column_names
        for i, utt_id in enumerate(table["utt_id"].to_pylist()):
            if only_ok and not table["ok"][i].as_py():
                continue
            row: dict[str, Any] = {}
            for name in ["values", "times", "pooled"] + [c for c in columns if c.startswith("x_")]:
                item = table[name][i]
                key = name[2:] if name.startswith("x_") else name
                if not item.is_valid:
                    row[key] = None
                elif hasattr(item.type, "value_type") and hasattr(item.type.value_type,
                                                                   "list_size"):
                    dim = item.type.value_type.list_size
                    flat = item.values.flatten().to_numpy(zero_copy_only=False)
                    row[key] = flat.reshape(-1, dim)
                else:
                    row[key] = item.values.to_numpy(zero_copy_only=False)
            rows[str(utt_id)] = row
    return rows


def frame_intervals(row: Mapping[str, Any], default_step: float | None = None) -> np.ndarray:
    """(T, 2) intervals of a store row: its ``intervals`` extra, else times ± half the median
    step (of this row; `default_step` for a row with one step)."""
    if row.get("intervals") is not None:
        return np.asarray(row["intervals"], dtype=np.float64)
    if row.get("times") is None:
        raise ValueError("row has no times (untimed steps cannot become intervals)")
    times = np.asarray(row["times"], dtype=np.float64)
    steps = np.diff(times)
    step = float(np.median(steps)) if len(steps) else default_step
    if step is None:
        raise ValueError("a single step and no default_step: its duration is unknown")
    return np.stack([times - step / 2.0, times + step / 2.0], axis=1)


def store_to_csd(store_dir: str | os.PathLike[str], out_path: str | os.PathLike[str],
                 name: str, default_step: float | None = None) -> Path:
    """Write a feature store's accepted rows as a .csd (video_id = utt_id, intervals from the
    ``intervals`` extra, else times ± half a step; ``dimension names`` from the provenance)."""
    rows = read_store_rows(store_dir)
    untimed = [u for u, r in rows.items() if r.get("times") is None and r.get("intervals") is None]
    if untimed:
        raise ValueError(f"{store_dir}: {len(untimed)} rows have no times (e.g. {untimed[:3]}); "
                         "a computational sequence needs intervals")
    provenance = read_provenance(partition_files(store_dir)[0])
    data = {u: (r["values"], frame_intervals(r, default_step)) for u, r in rows.items()}
    metadata = {"computational sequence description":
                f"affectflow {provenance.get('extractor')} features, corpus "
                f"{provenance.get('corpus')}",
                "dimension names": list(provenance.get("value_names", [])),
                "computational sequence version": str(provenance.get("version", "")),
                "dataset name": str(provenance.get("corpus", "")), "creator": "affectflow",
                "affectflow provenance": provenance}
    return write_csd(out_path, name, data, metadata)


def csd_to_store(path: str | os.PathLike[str], store_dir: str | os.PathLike[str],
                 corpus: str) -> Path:
    """Import a .csd as the store ``csd_<name>`` (one row per video: values = features
    flattened to (N, D), times = interval centres, extra ``intervals`` (N, 2) kept so a
    store → csd round trip gives the same intervals (at float32 precision); pooled = the mean
    of the finite values per dimension)."""
    name, data, metadata = read_csd(path)
    rows = []
    digest = file_sha256(path)
    for video_id, (features, intervals) in data.items():
        values = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
        finite = np.isfinite(values)
        pooled = np.where(finite, values, 0.0).sum(axis=0) / np.maximum(finite.sum(axis=0), 1)
        intervals = np.asarray(intervals, dtype=np.float64)
        result = FeatureResult(values=values, pooled=pooled, times=intervals.mean(axis=1),
                               extra={"intervals": intervals})
        rows.append(StoreRow(str(video_id), digest[:20], result=result))
    names = metadata.get("dimension names")
    width = rows[0].result.values.shape[1] if rows else 0
    if not (isinstance(names, list) and len(names) == width):
        names = [f"{name}_{i}" for i in range(width)]
    provenance = Provenance(
        extractor=f"csd_{name}", version=IMPORTER_VERSION, corpus=corpus, shard=0,
        value_names=tuple(str(n) for n in names),
        params={"imported": True, "format": "CMU-MultimodalSDK computational sequence",
                "sources": {"path": str(Path(path).resolve()), "sha256": digest},
                "csd_metadata": metadata})
    return write_import_store(store_dir, rows, provenance)
