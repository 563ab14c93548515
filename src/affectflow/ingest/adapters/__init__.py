"""Dataset adapters: a corpus in its native layout -> a manifest in affectflow's schema.

Each module has `build_manifest(root, **options) -> DataFrame` (paths absolute, BASE_COLUMNS
first, dataset extras after) and a `LABELS` dict usable as a corpus config's `labels`:

    emodb     EmoDB wav/ (+ erkennung.txt); LOSO folds (`emodb.loso_folds`, `emodb.apply_fold`)
    meld      MELD {train,dev,test}_sent_emo.csv (+ optional MELD.Raw videos); `meld.with_context`
    mustard   MUStARD sarcasm_data.json + split_indices.p (restricted unpickler); 5 folds or
              the speaker-independent split; `mustard.with_context`
    mmsa_raw  MMSA-FET raw layout (CMU-MOSI, CMU-MOSEI, CH-SIMS): label.csv + Raw/<video>/<clip>.mp4
    iemocap   IEMOCAP release layout (Session1..5); 4/6-class mappings, V/A/D; `iemocap.session_folds`
    ravdess   RAVDESS speech Actor_*/MM-VV-EE-II-SS-RR-AA.{wav,flac}; 8 emotions, intensity;
              leave-one-actor-out and 6 folds of 4 actors

`write_adapter_manifest(name, root, out_csv, **options)` writes the manifest CSV that the ingest
stage reads. Native-format problems raise `ManifestError` naming the file and the field or row.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from affectflow.atomic import atomic_path
from affectflow.ingest.adapters import emodb, iemocap, meld, mmsa_raw, mustard, ravdess
from affectflow.ingest.adapters._common import BASE_COLUMNS, fix_mojibake
from affectflow.ingest.manifest import ManifestError

ADAPTERS: dict[str, Callable[..., pd.DataFrame]] = {
    "emodb": emodb.build_manifest,
    "meld": meld.build_manifest,
    "mustard": mustard.build_manifest,
    "mmsa_raw": mmsa_raw.build_manifest,
    "iemocap": iemocap.build_manifest,
    "ravdess": ravdess.build_manifest,
}

# Cross-validation protocols per adapter: protocol → the fold splits as (k, split Series). They
# become manifest columns split_<protocol>_<k>, which a corpus config selects with `protocol:`.
PROTOCOLS: dict[str, dict[str, Callable[[pd.DataFrame], list[pd.Series]]]] = {
    "emodb": {"loso": lambda m: [emodb.apply_fold(m, f)["split"] for f in emodb.loso_folds(m)]},
    "mustard": {
        "folds": lambda m: [mustard.apply_fold(m, k)["split"] for k in sorted(m["cv_fold"].dropna().unique())],
        "speakerind": lambda m: [mustard.apply_fold(m, "speaker_independent")["split"]],
    },
    "iemocap": {"session": lambda m: [iemocap.apply_fold(m, f)["split"] for f in iemocap.session_folds(m)]},
    "ravdess": {"loso": lambda m: ravdess.fold_splits(m, ravdess.loso_folds(m)),
                "actors": lambda m: ravdess.fold_splits(m, ravdess.actor_group_folds(m))},
}

__all__ = ["ADAPTERS", "BASE_COLUMNS", "PROTOCOLS", "add_protocol_columns", "build_adapter_manifest",
           "fix_mojibake", "write_adapter_manifest"]


def add_protocol_columns(name: str, manifest: pd.DataFrame) -> pd.DataFrame:
    """Copy with one split_<protocol>_<k> column per fold of every protocol of adapter `name`."""
    columns = {}
    for protocol, folds in PROTOCOLS.get(name, {}).items():
        for k, split in enumerate(folds(manifest)):
            columns[f"split_{protocol}_{k:02d}"] = split.to_numpy()
    return manifest.assign(**columns)


def build_adapter_manifest(name: str, root: str | os.PathLike[str], **options: Any) -> pd.DataFrame:
    """The manifest DataFrame of adapter `name` for the corpus at `root`."""
    if name not in ADAPTERS:
        raise ManifestError(f"unknown dataset adapter {name!r}; known: {', '.join(ADAPTERS)}")
    return ADAPTERS[name](Path(root), **options)


def _cell(value: Any) -> Any:
    """CSV-safe cell: lists/dicts as JSON, missing values as empty."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def write_adapter_manifest(name: str, root: str | os.PathLike[str],
                           out_csv: str | os.PathLike[str], **options: Any) -> Path:
    """Build adapter `name`'s manifest and write it as CSV; returns the CSV path.

    A `words` column (lists of {word, start_s, end_s}) is written as one JSON file per utterance
    under `<out_csv folder>/words/` and referenced by an absolute `words_path`. List cells
    (e.g. MUStARD's context turns) become JSON strings. The folds of the adapter's protocols are
    added as split_<protocol>_<k> columns. The file is replaced atomically.
    """
    out_csv = Path(out_csv)
    manifest = add_protocol_columns(name, build_adapter_manifest(name, root, **options))
    out_csv.parent.mkdir(parents=True, exist_ok=True)
    if "words" in manifest.columns:
        words_dir = out_csv.parent / "words"
        paths = []
        for utt_id, words in zip(manifest["utt_id"], manifest["words"]):
            if not isinstance(words, list):
                paths.append(None)
                continue
            words_dir.mkdir(exist_ok=True)
            path = words_dir / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', str(utt_id))}.json"
            path.write_text(json.dumps(words, indent=1) + "\n")
            paths.append(str(path.resolve()))
        manifest = manifest.assign(words_path=paths).drop(columns=["words"])
    table = manifest.astype(object).apply(lambda column: column.map(_cell))
    with atomic_path(out_csv) as tmp:
        table.to_csv(tmp, index=False, lineterminator="\n")
    return out_csv
