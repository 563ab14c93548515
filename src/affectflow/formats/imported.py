"""What a feature-file importer reads: a corpus's manifest and its stores, before they are written.

Why: the MMSA pickle and MFN HDF5 importers both yield a manifest plus one store per modality, and
the workflow writes those stores under ``results/<corpus>/features/<store name>`` while a library
caller writes them beside each other (``<out_dir>/<modality>``). Keeping the read and the write
apart lets both callers share one writer and lets tests inspect what was read without files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import pandas as pd

from affectflow.atomic import atomic_path
from affectflow.features.store import Provenance, StoreRow
from affectflow.formats.openface import write_import_store


@dataclass
class ImportedCorpus:
    """A corpus read from feature files: its manifest rows (utt_id, dataset, split, labels ...)
    and, per modality (``text``/``audio``/``vision``/``video``), its store rows and provenance."""

    manifest: pd.DataFrame
    stores: dict[str, tuple[list[StoreRow], Provenance]]


def write_imported(data: ImportedCorpus, store_dirs: Mapping[str, str | os.PathLike[str]],
                   manifest_csv: str | os.PathLike[str]) -> dict[str, Path]:
    """Write each modality's store as ``<store_dirs[modality]>/shard=0.parquet`` and the manifest
    as CSV (atomically). Returns {modality: store folder, "manifest": CSV path}. A modality the
    files lack but `store_dirs` names is an error naming both, so a config cannot silently train
    on fewer modalities than it lists."""
    missing = sorted(set(store_dirs) - set(data.stores))
    if missing:
        raise ValueError(f"the imported files have no {', '.join(missing)} features "
                         f"(they have: {', '.join(sorted(data.stores)) or 'none'})")
    paths: dict[str, Path] = {}
    for modality, folder in store_dirs.items():
        rows, provenance = data.stores[modality]
        write_import_store(folder, rows, provenance)
        paths[modality] = Path(folder)
    manifest_csv = Path(manifest_csv)
    manifest_csv.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(manifest_csv) as tmp:
        data.manifest.to_csv(tmp, index=False)
    paths["manifest"] = manifest_csv
    return paths


def write_imported_dir(data: ImportedCorpus, out_dir: str | os.PathLike[str]) -> dict[str, Path]:
    """`write_imported` with every store beside the manifest: ``<out_dir>/<modality>/`` and
    ``<out_dir>/manifest.csv`` (what the library importers return)."""
    out_dir = Path(out_dir)
    return write_imported(data, {m: out_dir / m for m in data.stores}, out_dir / "manifest.csv")
