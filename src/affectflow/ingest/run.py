"""The ingest stage: a source manifest in, a validated Parquet manifest and a rejected table out."""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from affectflow.atomic import atomic_path
from affectflow.ingest.manifest import (REJECTED_COLUMNS, IngestOptions, LabelSpec, fold_columns,
                                       read_table, validate_manifest)

log = logging.getLogger(__name__)

WORDS_TYPE = pa.list_(pa.struct([("word", pa.string()), ("start_s", pa.float64()),
                                 ("end_s", pa.float64())]))
REJECTED_SCHEMA = pa.schema([("utt_id", pa.string()), ("stage", pa.string()), ("row", pa.int64()),
                             ("field", pa.string()), ("reason", pa.string())])


def label_specs(labels: Mapping[str, Mapping[str, Any]]) -> tuple[LabelSpec, ...]:
    """Label specs from the corpus config's `labels` mapping."""
    return tuple(LabelSpec.from_config(name, spec) for name, spec in labels.items())


def manifest_schema(labels: list[LabelSpec], fold_columns: list[str] = ()) -> pa.Schema:
    """Arrow schema of the validated manifest (fixed, so empty and full manifests agree)."""
    fields = [("utt_id", pa.string()), ("dataset", pa.string()), ("speaker", pa.string()),
              ("dialogue_id", pa.string()), ("turn", pa.int64()), ("audio_path", pa.string()),
              ("video_path", pa.string()), ("start_s", pa.float64()), ("end_s", pa.float64()),
              ("transcript", pa.string()), ("context", pa.string()), ("split", pa.string()), ("words", WORDS_TYPE),
              ("shard", pa.int64())]
    fields += [(column, pa.string()) for column in fold_columns]
    fields += [(spec.name, pa.string() if spec.kind == "categorical" else pa.float64())
               for spec in labels]
    return pa.schema(fields)


def write_rejected(frame: pd.DataFrame, path: str | os.PathLike[str]) -> None:
    """Write a rejected table (utt_id, stage, row, field, reason), atomically."""
    frame = frame.reindex(columns=REJECTED_COLUMNS)
    frame["row"] = pd.to_numeric(frame["row"], errors="coerce").astype("Int64")
    with atomic_path(path) as tmp:
        pq.write_table(pa.Table.from_pandas(frame, schema=REJECTED_SCHEMA, preserve_index=False), tmp)


def ingest_corpus(source: str | os.PathLike[str], manifest_out: str | os.PathLike[str],
                  rejected_out: str | os.PathLike[str], options: IngestOptions) -> tuple[int, int]:
    """Validate `source` and write the manifest and rejected tables; returns (accepted utterances,
    rejection records). A manifest with no good row is written empty, with the reason logged."""
    table = read_table(source, options.encoding)
    manifest, rejected = validate_manifest(table, source, options)
    for reason in rejected["reason"]:
        log.warning("rejected at ingest: %s", reason)
    schema = manifest_schema(list(options.labels), fold_columns(table.columns))
    if len(manifest):
        arrow = pa.Table.from_pandas(manifest.reindex(columns=schema.names), schema=schema,
                                     preserve_index=False)
    else:
        arrow = schema.empty_table()
        log.warning("%s: no utterance accepted (%d rows, all rejected: see %s)", source, len(table),
                    rejected_out)
    with atomic_path(manifest_out) as tmp:
        pq.write_table(arrow, tmp)
    write_rejected(rejected, rejected_out)
    log.info("%s: %d utterances accepted, %d rows rejected", source, len(manifest),
             rejected["row"].nunique() if len(rejected) else 0)
    return len(manifest), len(rejected)
