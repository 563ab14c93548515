"""The Memory Fusion Network release's features (YouTube, ICT-MMMO) → ``mfn_audio`` / ``mfn_video``
stores and a manifest.

Why: pliang279/MFN ships word-aligned COVAREP and FACET sequences of two small opinion corpora
whose media are not public; importing them lets the model zoo train on real multimodal sentiment
features without extraction.

Layout (pliang279/MFN @ b0453fb, ``new_data/<dataset>/``): ``audio_{train,valid,test}.h5``
(N, 20, 74) COVAREP, ``video_*.h5`` (N, 20, 36) FACET, ``y_*.h5`` labels; each HDF5 file holds one
dataset ``d1``. The text embeddings of the original release are not read (the copy we use has
none). `read_mfn` accepts the release root (it then reads ``<root>/<dataset>/``) or the
dataset's folder itself.

How the files were made (the same lab's loaders that write these arrays: pliang279/factorized
@ 1e6cf28 ``mfm_you.py`` / ``mfm_mmmo.py``, Justin1904/Low-rank-Multimodal-Fusion @ 22499eb
``train_mmmo.py``): one vector per word, at most 20 words per segment (a longer one keeps its
last 20), zero rows appended after the words, and a segment without features is 20 zero rows;
train/valid/test are whole videos (YouTube videos 0-29 / 30-34 / 35-46 of their feature dicts,
MMMO 0-219 / 220-259 / 260-339), so the splits here are the files' own.

Import: the padding is stripped as the trailing all-zero rows (length = last non-zero row + 1,
at least 1). A segment with no features at all keeps one zero row, so it stays in the corpus as
the authors' models saw it; the YouTube release has many (125 of 173 training segments have no
audio, 129 no video), which `read_mfn` logs. Zero rows inside a sequence (words where FACET found
no face) are data and kept. Non-finite values become 0, as the authors' loaders do.

Labels, as the lab's code reads and scores them:

- ``youtube``: ``y`` is one-hot (N, 3); ``mfm_you.py`` builds it with
  ``to_categorical(label + 1, 3)`` from the labels -1 / 0 / +1, so column 0 is negative, 1 neutral,
  2 positive → ``sentiment_class`` (categorical negative, neutral, positive; the papers report
  3-class accuracy and weighted F1) and ``sentiment`` = column - 1 (regression in [-1, 1]).
- ``mmmo``: ``y`` (N,) is the rating 1-5 in half steps → ``sentiment`` (regression [1, 5]); their
  binary label is ``y > 3.5`` (``score()`` in ``mfm_mmmo.py`` and ``train_mmmo.py``: accuracy and
  weighted F1) → ``sentiment_binary`` (1 positive, 0 not).

Utterance ids are ``<dataset>_<split>_<index>`` (index within the split's files, from 0): the
release has no video or segment ids, and the same segment never appears in two splits.
Problems (a missing file or ``d1``, row counts that disagree, a label row that is not one-hot or
a rating outside 1-5) raise ValueError naming the file, and the row or field.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from affectflow.features.base import FeatureResult
from affectflow.features.store import Provenance, StoreRow
from affectflow.formats.imported import ImportedCorpus, write_imported_dir
from affectflow.formats.openface import IMPORTER_VERSION, file_sha256

log = logging.getLogger(__name__)
DATASETS = ("youtube", "mmmo")
SPLITS = ("train", "valid", "test")
# modality → (file prefix, feature set named in the value names)
MODALITIES = {"audio": ("audio", "covarep"), "video": ("video", "facet")}
YOUTUBE_CLASSES = ("negative", "neutral", "positive")  # the one-hot columns, label + 1
MMMO_RANGE = (1.0, 5.0)
MMMO_POSITIVE_ABOVE = 3.5
DATASET_KEY = "d1"
LAYOUT = "an MFN release folder has audio_, video_ and y_{train,valid,test}.h5"
LABELS: dict[str, dict[str, dict[str, Any]]] = {
    "youtube": {"sentiment": {"type": "regression", "min": -1, "max": 1},
                "sentiment_class": {"type": "categorical", "classes": list(YOUTUBE_CLASSES)}},
    "mmmo": {"sentiment": {"type": "regression", "min": MMMO_RANGE[0], "max": MMMO_RANGE[1]},
             "sentiment_binary": {"type": "binary"}},
}


def dataset_folder(root: str | os.PathLike[str], dataset: str) -> Path:
    """The folder holding `dataset`'s files: ``<root>/<dataset>`` when it exists, else `root`."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown MFN dataset {dataset!r}; known: {', '.join(DATASETS)}")
    root = Path(root)
    return root / dataset if (root / dataset).is_dir() else root


def source_files(root: str | os.PathLike[str], dataset: str) -> list[Path]:
    """Every file `read_mfn` reads for `dataset` (features and labels of each split)."""
    folder = dataset_folder(root, dataset)
    prefixes = [prefix for prefix, _ in MODALITIES.values()] + ["y"]
    return [folder / f"{prefix}_{split}.h5" for split in SPLITS for prefix in prefixes]


def read_h5(path: Path) -> np.ndarray:
    """The ``d1`` array of one release file; ValueError naming the file otherwise."""
    import h5py

    if not path.is_file():
        raise ValueError(f"{path}: file not found ({LAYOUT})")
    try:
        with h5py.File(path, "r") as handle:
            if DATASET_KEY not in handle:
                raise ValueError(f"{path}: no HDF5 dataset {DATASET_KEY!r} "
                                 f"(it has: {', '.join(handle.keys()) or 'none'})")
            return np.asarray(handle[DATASET_KEY][()])
    except OSError as error:
        raise ValueError(f"{path}: not a readable HDF5 file ({error})") from None


def trailing_lengths(array: np.ndarray) -> np.ndarray:
    """Per row of an (N, L, D) array: the index of its last step that is not all zeros, plus one,
    and at least 1 (a row of zeros only keeps one step)."""
    nonzero = np.any(array != 0, axis=2)
    last = array.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), last, 1)


def _labels(y: np.ndarray, dataset: str, path: Path) -> list[dict[str, Any]]:
    """The label columns of each row of a ``y_*.h5`` array (see the module docstring)."""
    if dataset == "youtube":
        if y.ndim != 2 or y.shape[1] != len(YOUTUBE_CLASSES):
            raise ValueError(f"{path}: expected one-hot labels (N, 3), got shape {y.shape}")
        bad = np.flatnonzero(~((np.isin(y, (0, 1))).all(axis=1) & (y.sum(axis=1) == 1)))
        if len(bad):
            raise ValueError(f"{path}: row {bad[0]}: label {y[bad[0]].tolist()} is not one-hot "
                             f"over {', '.join(YOUTUBE_CLASSES)}")
        column = y.argmax(axis=1)
        return [{"sentiment": float(k - 1), "sentiment_class": YOUTUBE_CLASSES[k]} for k in column]
    y = y.reshape(-1) if y.ndim == 2 and y.shape[1] == 1 else y
    if y.ndim != 1:
        raise ValueError(f"{path}: expected one rating per row (N,), got shape {y.shape}")
    bad = np.flatnonzero(~((y >= MMMO_RANGE[0]) & (y <= MMMO_RANGE[1])))
    if len(bad):
        raise ValueError(f"{path}: row {bad[0]}: rating {y[bad[0]]} is outside "
                         f"{MMMO_RANGE[0]:g}-{MMMO_RANGE[1]:g}")
    return [{"sentiment": float(v), "sentiment_binary": int(v > MMMO_POSITIVE_ABOVE)} for v in y]


def _features(path: Path, n_rows: int, labels_path: Path) -> np.ndarray:
    """One features file as a finite float32 (N, L, D) array with as many rows as the labels."""
    array = read_h5(path)
    if array.ndim != 3:
        raise ValueError(f"{path}: expected (segments, steps, features), got shape {array.shape}")
    if len(array) != n_rows:
        raise ValueError(f"{path}: {len(array)} rows, but {labels_path} has {n_rows}")
    bad = int((~np.isfinite(array)).sum())
    if bad:
        log.warning("%s: %d non-finite values set to 0", path, bad)
    return np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def read_mfn(root: str | os.PathLike[str], dataset: str, corpus: str = "") -> ImportedCorpus:
    """Read one MFN dataset (``youtube`` or ``mmmo``): the manifest (utt_id, dataset, split, the
    dataset's labels, see `LABELS`) and the ``audio`` / ``video`` store rows (extractors
    ``mfn_audio``, ``mfn_video``) with their provenance."""
    corpus = corpus or dataset
    missing = [str(p) for p in source_files(root, dataset) if not p.is_file()]
    if missing:
        raise ValueError(f"{', '.join(missing)}: file not found ({LAYOUT})")
    records: list[dict[str, Any]] = []
    rows: dict[str, list[StoreRow]] = {m: [] for m in MODALITIES}
    widths: dict[str, tuple[int, Path]] = {}
    sources: dict[str, dict[str, str]] = {}
    featureless: dict[str, int] = {m: 0 for m in MODALITIES}
    folder = dataset_folder(root, dataset)
    for split in SPLITS:
        labels_path = folder / f"y_{split}.h5"
        labels = _labels(read_h5(labels_path), dataset, labels_path)
        ids = [f"{dataset}_{split}_{i}" for i in range(len(labels))]
        records += [{"utt_id": u, "dataset": dataset, "split": split, **y} for u, y in zip(ids, labels)]
        for modality, (prefix, _) in MODALITIES.items():
            path = folder / f"{prefix}_{split}.h5"
            array = _features(path, len(labels), labels_path)
            width, first = widths.setdefault(modality, (array.shape[2], path))
            if array.shape[2] != width:
                raise ValueError(f"{path}: {array.shape[2]} features per step, but {first} has {width}")
            digest = file_sha256(path)
            sources[f"{prefix}_{split}"] = {"path": str(path.resolve()), "sha256": digest}
            featureless[modality] += int((~np.any(array != 0, axis=(1, 2))).sum())
            for i, n in enumerate(trailing_lengths(array)):
                values = array[i, :n]
                rows[modality].append(StoreRow(ids[i], f"{digest[:12]}:{split}:{i}", result=FeatureResult(
                    values=values, pooled=values.mean(axis=0))))
    for modality, n in featureless.items():
        if n:
            log.info("%s %s: %d of %d segments have no features (kept as one zero step)",
                     dataset, modality, n, len(records))
    stores = {}
    for modality, (prefix, name) in MODALITIES.items():
        stores[modality] = (rows[modality], Provenance(
            extractor=f"mfn_{modality}", version=IMPORTER_VERSION, corpus=corpus, shard=0,
            value_names=tuple(f"{name}_{j}" for j in range(widths[modality][0])),
            params={"imported": True, "format": "MFN release HDF5", "dataset": dataset,
                    "sources": {k: v for k, v in sources.items() if k.startswith(prefix)}}))
    return ImportedCorpus(pd.DataFrame.from_records(records), stores)


def import_mfn(root: str | os.PathLike[str], dataset: str, out_dir: str | os.PathLike[str],
               corpus: str = "") -> dict[str, Path]:
    """Import one MFN dataset as ``out_dir/audio``, ``out_dir/video`` (stores ``mfn_audio``,
    ``mfn_video``) and ``out_dir/manifest.csv``; returns their paths under the keys audio, video,
    manifest."""
    data = read_mfn(root, dataset, corpus)
    return write_imported_dir(data, out_dir)
