"""Run one extractor over one shard of a manifest, reusing every row that has not changed.

A shard job rebuilds its partition file, but only the utterances whose inputs (media file
signature, segment, transcript, upstream audio) or extractor parameters changed are computed
again: the others are copied from the previous partition, kept as a hard link in the cache
folder (no extra disk). So adding one utterance to a corpus makes each extractor process exactly
one utterance. A failure of one utterance is recorded in its row (``ok=false``, ``reason``) and
never stops the shard.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from affectflow.atomic import atomic_path
from affectflow.features.base import (ExtractionError, Extractor, ExtractorSetupError, FeatureResult,
                                     NotApplicable, Utterance, is_not_applicable)
from affectflow.features.progress import Progress
from affectflow.features.registry import MEDIA_PREP, build
from affectflow.features.store import (METADATA_KEY, Provenance, StoreRow, read_provenance,
                                       read_results, rows_to_table)

STATS_PREFIX = "AFFECTFLOW_STATS "
log = logging.getLogger(__name__)


@dataclass
class ShardStats:
    """What a shard job did; printed to its log as one JSON line for benchmarks and reports."""

    extractor: str
    corpus: str
    shard: int
    rows: int = 0
    processed: int = 0
    reused: int = 0
    rejected: dict[str, str] = field(default_factory=dict)
    not_applicable: int = 0  # rows without the input this extractor reads (not rejections)
    seconds: float = 0.0

    def to_line(self) -> str:
        return STATS_PREFIX + json.dumps(vars(self), sort_keys=True)


def read_shard_rows(manifest: str | os.PathLike[str], shard: int) -> pd.DataFrame:
    """The manifest rows of one shard."""
    table = pq.read_table(manifest, filters=[("shard", "=", shard)])
    return table.to_pandas()


def media_signature(paths: list[str | None]) -> str:
    """Size and modification time (ns) of each media file, read now: any rewrite, touch or
    replacement of a file changes it. A missing file signs as `missing`."""
    parts = []
    for path in paths:
        if not isinstance(path, str) or not path:  # None / NaN: no such media for this row
            parts.append("-")
            continue
        try:
            info = os.stat(path)
            parts.append(f"{info.st_size}:{info.st_mtime_ns}")
        except OSError:
            parts.append("missing")
    return ";".join(parts)


def row_fingerprint(row: Mapping[str, Any], spec: type[Extractor]) -> str:
    """Hash of what one extractor's output for a manifest row depends on: the fields it reads
    and, for media it reads, the files' current signatures (so a changed file re-extracts its
    utterances, and only for the extractors that read it)."""
    payload: dict[str, Any] = {}
    for name in spec.fields():
        value = row.get(name)
        if name == "words":
            value = None if value is None or isinstance(value, float) else [dict(w) for w in value]
        payload[name] = value
    payload["media"] = media_signature([_first_filled(row, names) for names in spec.media()])
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _first_filled(row: Mapping[str, Any], names: tuple[str, ...]) -> str | None:
    """The first of `names` that the row fills with a path (the file an extractor reads)."""
    return next((row[n] for n in names if isinstance(row.get(n), str) and row[n]), None)


def shard_digest(rows: list[Mapping[str, Any]], spec: type[Extractor]) -> str:
    """Digest of one shard's rows as `spec` sees them: a shard job's parameter in the workflow,
    so Snakemake re-runs exactly the shards whose rows (or media files) changed."""
    hasher = hashlib.sha256()
    for row in sorted(rows, key=lambda r: r["utt_id"]):
        hasher.update(f"{row['utt_id']}={row_fingerprint(row, spec)};".encode())
    return hasher.hexdigest()[:20]


def _signature(params_hash: str, fingerprint: str, upstream: str = "") -> str:
    return hashlib.sha256(f"{params_hash}|{fingerprint}|{upstream}".encode()).hexdigest()[:20]


@dataclass
class Upstream:
    """One store a job reads: per utterance (ok, reason, input_sig, payload), where the payload is
    the samples for media prep's store and the FeatureResult for any other."""

    name: str
    rows: dict[str, tuple[bool, str | None, str, Any]]


def load_upstream(name: str, path: str | os.PathLike[str], utt_ids: Sequence[str]) -> Upstream:
    """The rows of `utt_ids` in one partition of the store `name`."""
    if name == MEDIA_PREP:
        table = pq.read_table(path, columns=["utt_id", "ok", "reason", "input_sig", "values"])
        wanted = set(utt_ids)
        rows: dict[str, tuple] = {}
        for i, utt_id in enumerate(table["utt_id"].to_pylist()):
            if utt_id not in wanted:
                continue
            ok = table["ok"][i].as_py()
            samples = None
            if ok:
                samples = table["values"][i].values.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
            rows[utt_id] = (ok, table["reason"][i].as_py(), table["input_sig"][i].as_py(), samples)
        return Upstream(name, rows)
    return Upstream(name, read_results(path, utt_ids))


def _upstream_signatures(upstream: Sequence[Upstream]) -> dict[str, str]:
    """utt_id → the input signatures of its rows in every store read, joined."""
    joined: dict[str, list[str]] = {}
    for store in upstream:
        for utt_id, entry in store.rows.items():
            joined.setdefault(utt_id, []).append(f"{store.name}:{entry[2]}")
    return {u: ";".join(parts) for u, parts in joined.items()}


def _signatures_of(stores: Mapping[str, str | os.PathLike[str]]) -> list[Upstream]:
    """The (utt_id, input_sig) of every row of each store read: all a signature needs."""
    return [Upstream(name, {u: (True, None, sig, None) for u, sig in zip(*pq.read_table(
        path, columns=["utt_id", "input_sig"]).to_pydict().values())}) for name, path in stores.items()]


def _reusable_rows(cache: Path | None, params_hash: str, wanted: dict[str, str]) -> pa.Table | None:
    """Rows of the cached partition whose input signature still matches."""
    if cache is None or not cache.exists():
        return None
    try:
        if read_provenance(cache).get("params_hash") != params_hash:
            return None
        table = pq.read_table(cache)
    except (OSError, ValueError, pa.ArrowInvalid) as error:
        log.warning("ignoring unreadable cache %s: %s", cache, error)
        return None
    sigs = table["input_sig"].to_pylist()
    keep = [i for i, (u, s) in enumerate(zip(table["utt_id"].to_pylist(), sigs)) if wanted.get(u) == s]
    return table.take(pa.array(keep, pa.int64())) if keep else None


def _merge(reused: pa.Table | None, fresh: pa.Table | None) -> pa.Table:
    """Stack reused and freshly computed rows, giving all-rejected fresh rows the reused schema."""
    if reused is None:
        assert fresh is not None
        return fresh
    if fresh is None:
        return reused
    if fresh.schema.remove_metadata() != reused.schema.remove_metadata():
        if not any(fresh["ok"].to_pylist()):
            fresh = pa.table({name: (fresh[name] if name in ("utt_id", "ok", "reason", "input_sig",
                                                             "n_steps")
                                     else pa.nulls(len(fresh), reused.schema.field(name).type))
                              for name in reused.schema.names}, schema=reused.schema)
        else:
            reused = reused.cast(fresh.schema) if reused.schema.names == fresh.schema.names else reused
    return pa.concat_tables([reused.replace_schema_metadata(None), fresh.replace_schema_metadata(None)],
                            promote_options="permissive")


def _count_outcomes(table: pa.Table, stats: ShardStats) -> None:
    """Fill the stats' rejections (utt_id → reason) and not-applicable count from a partition."""
    failed = table.filter(pc.invert(table["ok"]))
    reasons = dict(zip(failed["utt_id"].to_pylist(), failed["reason"].to_pylist()))
    stats.rejected = {u: r for u, r in reasons.items() if not is_not_applicable(r)}
    stats.not_applicable = len(reasons) - len(stats.rejected)


def _row_signatures(rows: list[Mapping[str, Any]], spec: type[Extractor], params_hash: str,
                    upstream: Mapping[str, str]) -> dict[str, str]:
    """utt_id → the signature its stored row must carry to be reusable."""
    return {row["utt_id"]: _signature(params_hash, row_fingerprint(row, spec),
                                      upstream.get(row["utt_id"], "")) for row in rows}


def _provenance(extractor: Extractor, corpus: str = "", shard: int = -1) -> Provenance:
    """The provenance of a partition: the full config (defaults filled), runtime fields unhashed."""
    return Provenance(extractor.name, extractor.version, asdict(extractor.config), corpus, shard,
                      runtime=type(extractor).runtime())


def _covers_exactly(cache: Path | None, reused: pa.Table | None, signatures: Mapping[str, str]) -> bool:
    """Whether the reusable cached rows are the whole shard and the cache holds no others."""
    return (cache is not None and reused is not None and reused.num_rows == len(signatures)
            and len(set(reused["utt_id"].to_pylist())) == len(signatures)
            and reused.num_rows == pq.read_metadata(cache).num_rows)


def restore_unchanged(rows: list[Mapping[str, Any]], extractor: str, params: Mapping[str, Any],
                      output: str | os.PathLike[str], cache: str | os.PathLike[str],
                      upstream: Mapping[str, str | os.PathLike[str]] | None = None) -> bool:
    """Put a deleted partition back from the cache, as it was (bytes and mtime), when nothing
    it depends on changed; False when it must be recomputed. `upstream`: the partition of each
    store the extractor reads, by name. The workflow calls this while it plans, so a deleted but
    unchanged partition makes no job run, and none of its consumers."""
    instance = build(extractor, params)
    spec = type(instance)
    stores = dict(upstream or {})
    if any(not os.path.exists(stores.get(name, "")) for name in spec.stores()):
        return False
    params_hash = _provenance(instance).params_hash
    upstream_sigs = _upstream_signatures(_signatures_of({n: stores[n] for n in spec.stores()}))
    signatures = _row_signatures(rows, spec, params_hash, upstream_sigs)
    cache_path = Path(cache)
    if not _covers_exactly(cache_path, _reusable_rows(cache_path, params_hash, signatures), signatures):
        return False
    _copy_keeping_mtime(cache_path, Path(output))
    return True


def _copy_keeping_mtime(source: Path, target: Path) -> None:
    """Atomically make `target` a copy of `source` with its mtime: its own inode, so when
    Snakemake touches this output (it does when an input is newer) neither the cache nor another
    results folder restored from the same cache entry changes with it."""
    with atomic_path(target) as tmp:
        shutil.copy2(source, tmp)


def _link(source: Path, target: Path) -> None:
    """Atomically make `target` a hard link to `source` (a copy, mtime kept, where links fail)."""
    with atomic_path(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            shutil.copy2(source, tmp)


def _utterance(row: Mapping[str, Any], upstream: Sequence[Upstream]) -> Utterance:
    """The extractor's view of a row, with the rows of the stores it reads; ExtractionError (or
    NotApplicable) when one of them has nothing to compute from."""
    samples, results = None, {}
    for store in upstream:
        if row["utt_id"] not in store.rows:
            raise ExtractionError(f"no entry in the {store.name} store")
        ok, reason, _, payload = store.rows[row["utt_id"]]
        if not ok and is_not_applicable(reason):
            raise NotApplicable(f"no {store.name} ({reason})")
        if not ok:
            what = "audio rejected at media prep" if store.name == MEDIA_PREP else f"{store.name} rejected"
            raise ExtractionError(f"{what}: {reason}")
        if store.name == MEDIA_PREP:
            samples = payload
        else:
            results[store.name] = payload
    return Utterance.from_row(row, audio=samples, stores=results)


def _record(out: StoreRow, result: FeatureResult | ExtractionError, extractor: str) -> None:
    if isinstance(result, ExtractionError):
        out.reason = result.reason
    elif isinstance(result, FeatureResult):
        out.result = result
    else:
        out.reason = f"{extractor} failed: returned {type(result).__name__}, not a FeatureResult"


def _with_names(provenance: Provenance, extractor: Extractor, fresh: list[StoreRow],
                cache: Path | None) -> Provenance:
    """The provenance with the extractor's declared column names; a fresh result whose width
    differs from them becomes a rejection. Without fresh results the cached partition's names
    are kept (declaring them may need the model loaded)."""
    if not any(out.result is not None for out in fresh):
        try:
            old = read_provenance(cache) if cache is not None and cache.exists() else {}
        except (OSError, ValueError, pa.ArrowInvalid):
            old = {}
        return replace(provenance, value_names=tuple(old.get("value_names", ())),
                       pooled_names=tuple(old.get("pooled_names", ())))
    names = extractor.names()
    if names is None:
        return provenance
    sequence, pooled = names
    for out in fresh:
        result = out.result
        if result is None:
            continue
        width = result.values.shape[1] if result.values.ndim == 2 else len(result.values)
        if width != len(sequence) or len(result.pooled) != len(pooled):
            out.result, out.reason = None, (
                f"{extractor.name} failed: returned {width} sequence and {len(result.pooled)} pooled "
                f"columns, declared {len(sequence)} and {len(pooled)}")
    return replace(provenance, value_names=tuple(sequence), pooled_names=tuple(pooled))


def _run_batch(extractor: Extractor, utts: list[Utterance]) -> list[FeatureResult | ExtractionError]:
    """extract_batch on `utts`; when the batch as a whole fails, one utterance at a time, so the
    failure costs only the utterances that cause it."""
    try:
        results = extractor.extract_batch(utts)
        if len(results) == len(utts):
            return results
        log.error("%s returned %d results for %d utterances", extractor.name, len(results), len(utts))
    except ExtractorSetupError:
        raise
    except Exception as error:  # noqa: BLE001 - retried one by one below
        log.error("%s batch of %d failed (%s: %s); retrying one by one", extractor.name, len(utts),
                  type(error).__name__, error)
    return Extractor.extract_batch(extractor, utts)


def run_extractor_shard(manifest: str | os.PathLike[str], shard: int, extractor: str,
                        params: Mapping[str, Any], output: str | os.PathLike[str],
                        cache: str | os.PathLike[str] | None = None,
                        upstream: Mapping[str, str | os.PathLike[str]] | None = None,
                        corpus: str = "") -> ShardStats:
    """Compute `extractor` for the shard's utterances and write the partition `output`;
    `upstream` holds the partition of each store it reads, by name."""
    started = time.perf_counter()
    instance = build(extractor, params)
    spec = type(instance)
    provenance = _provenance(instance, corpus, shard)
    rows = read_shard_rows(manifest, shard)
    stats = ShardStats(extractor, corpus, shard, rows=len(rows))
    utt_ids = rows["utt_id"].tolist()
    stores = dict(upstream or {})
    missing = [name for name in spec.stores() if name not in stores]
    if missing:
        raise ValueError(f"{extractor} reads the store(s) {', '.join(missing)}: pass their partitions")
    loaded = [load_upstream(name, stores[name], utt_ids) for name in spec.stores()]
    signatures = _row_signatures(rows.to_dict("records"), spec, provenance.params_hash,
                                 _upstream_signatures(loaded))
    cache_path = Path(cache) if cache else None
    reused = _reusable_rows(cache_path, provenance.params_hash, signatures)
    reused_ids = set(reused["utt_id"].to_pylist()) if reused is not None else set()
    if _covers_exactly(cache_path, reused, signatures):
        # Nothing changed: the output is the cached file again (same bytes, same mtime), so
        # rebuilding a deleted partition does not make its consumers out of date.
        _copy_keeping_mtime(cache_path, Path(output))
        stats.reused = len(reused_ids)
        _count_outcomes(reused, stats)
        stats.seconds = round(time.perf_counter() - started, 3)
        return stats
    todo: list[tuple[StoreRow, Utterance | None]] = []
    for row in rows.to_dict("records"):
        utt_id = row["utt_id"]
        if utt_id in reused_ids:
            continue
        out = StoreRow(utt_id, signatures[utt_id])
        try:
            todo.append((out, _utterance(row, loaded)))
        except ExtractionError as error:
            out.reason = error.reason
            todo.append((out, None))
    progress = Progress(f"{extractor} shard {shard}", len(todo))
    ready = [(out, utt) for out, utt in todo if utt is not None]
    progress.step(len(todo) - len(ready))
    for start in range(0, len(ready), spec.batch_call):  # a few batches per call: progress moves
        chunk = ready[start:start + spec.batch_call]
        for (out, _), result in zip(chunk, _run_batch(instance, [utt for _, utt in chunk])):
            _record(out, result, extractor)
        progress.step(len(chunk))
    fresh = [out for out, _ in todo]
    stats.processed = len(fresh)
    for out in fresh:
        if out.reason and not is_not_applicable(out.reason):
            log.warning("utterance %s rejected by %s: %s", out.utt_id, extractor, out.reason)
    progress.finish()
    provenance = _with_names(provenance, instance, fresh, cache_path)
    fresh_table = rows_to_table(fresh, provenance) if fresh else None
    table = _merge(reused, fresh_table) if (reused is not None or fresh) else \
        rows_to_table([], provenance)
    table = table.sort_by("utt_id").replace_schema_metadata({METADATA_KEY: provenance.to_json().encode()})
    _count_outcomes(table, stats)
    stats.reused = len(reused_ids)
    output = Path(output)
    with atomic_path(output) as tmp:
        pq.write_table(table, tmp, compression="zstd")
    if cache_path is not None:
        _link(output, cache_path)
    stats.seconds = round(time.perf_counter() - started, 3)
    return stats
