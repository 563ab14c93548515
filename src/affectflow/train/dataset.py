"""Assemble modality feature stores and manifest labels into one padded training dataset (.npz).

Only utterances with accepted features in every training modality are used; the others are in
the corpus's rejected table with the reason. Each modality is read in one of three views:
``sequence`` (the extractor's frames, padded; the default), ``pooled`` (its utterance-level
vector, e.g. eGeMAPS functionals, stored as a sequence of length 1) or ``aligned`` (one vector
per word of the manifest's word times, `affectflow.formats.aligned`: every aligned modality then
shares the words' time axis; utterances without word times are left out).

The .npz keys: ``<split>/<modality>/x`` (N, T, D), ``<split>/<modality>/lengths``,
``<split>/utt_ids``, ``<split>/<task>`` (class index, −1 missing, for categorical tasks; float,
NaN missing, otherwise), ``kind/<task>`` (categorical | binary | regression), ``classes/<task>``
(class names of a categorical task), ``view/<modality>`` and, for a categorical ``emotion``,
``emotion_classes`` (the historical key).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from affectflow.atomic import atomic_path
from affectflow.features.reader import accepted_ids, read_pooled, read_sequences, store_provenance
from affectflow.features.registry import get_extractor
from affectflow.formats.aligned import aligned_batch, word_intervals
from affectflow.train.data import SPLITS, SplitData, TrainingData
from affectflow.train.tasks import LEGACY_KINDS, normalize_tasks

log = logging.getLogger(__name__)
VIEWS = ("sequence", "pooled", "aligned")


def modality_sources(corpus_dir: str | os.PathLike[str],
                     modalities: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """``training.modalities`` → ({modality: store folder}, {modality: view}), stores being
    ``<corpus_dir>/features/<extractor>`` (the workflow passes its planned partition files)."""
    extractors, views = modality_views(modalities)
    return {m: str(Path(corpus_dir) / "features" / e) for m, e in extractors.items()}, views


def modality_views(modalities: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """``training.modalities`` → ({modality: extractor}, {modality: view}). A value is an
    extractor name (sequence view) or ``{"extractor": name, "view": "sequence" | "pooled"}``."""
    extractors, views = {}, {}
    for modality, spec in modalities.items():
        if isinstance(spec, str):
            extractor, view = spec, "sequence"
        elif isinstance(spec, Mapping) and "extractor" in spec:
            extractor, view = str(spec["extractor"]), str(spec.get("view", "sequence"))
        else:
            raise ValueError(f"modality {modality!r}: expected an extractor name or "
                             f"{{extractor, view}}, got {spec!r}")
        if view not in VIEWS:
            raise ValueError(f"modality {modality!r}: view must be one of {VIEWS}, got {view!r}")
        extractors[modality] = extractor
        views[modality] = view
    return extractors, views


def _task_array(frame: pd.DataFrame, task: str, spec: Mapping[str, Any]) -> np.ndarray:
    """Labels of one task: class indices (−1 missing) for categorical, floats (NaN missing) else."""
    if spec["type"] == "categorical":
        classes = list(spec["classes"])
        return np.array([classes.index(v) if isinstance(v, str) and v in classes else -1
                         for v in frame[task]], np.int64)
    return pd.to_numeric(frame[task], errors="coerce").to_numpy(np.float32)


def _read_view(store: str | Sequence[str], ids: list[str], view: str, max_steps: int,
               words: Sequence[np.ndarray] = ()) -> tuple[np.ndarray, np.ndarray]:
    if view == "aligned":
        seq = read_sequences(store, ids)
        if seq.times is None:
            raise ValueError(f"{store}: the store has no frame times, so it cannot be word-aligned")
        files = [store] if isinstance(store, (str, os.PathLike)) else list(store)
        extractor = store_provenance(files[0])["extractor"]
        points = get_extractor(extractor).modality == "text"  # tokens sit at their word's centre
        return aligned_batch(seq.values, seq.lengths, seq.times, words, points, max_steps)
    if view == "pooled":
        values = read_pooled(store, ids).values
        if values.ndim != 2 or (len(ids) and values.shape[1] == 0):
            raise ValueError(f"{store}: no pooled vectors for the pooled view")
        return values[:, None, :].astype(np.float32), np.ones(len(ids), np.int64)
    seq = read_sequences(store, ids, max_steps=max_steps)
    return seq.values, seq.lengths


def speaker_standardise(x: np.ndarray, lengths: np.ndarray, speakers: np.ndarray) -> np.ndarray:
    """Z-normalise each speaker's valid frames with that speaker's own mean and std.

    Speaker normalisation is the usual remedy for speaker-independent protocols (a new speaker's
    voice shifts every acoustic feature); it uses no labels, only the speaker's own recordings.
    """
    out = x.copy()
    valid = np.arange(x.shape[1])[None, :] < lengths[:, None]
    for speaker in np.unique(speakers):
        rows = speakers == speaker
        frames = x[rows][valid[rows]].astype(np.float64)
        std = frames.std(axis=0)
        mean, std = frames.mean(axis=0), np.where(std > 1e-8, std, 1.0)
        block = out[rows]
        block[valid[rows]] = ((block[valid[rows]] - mean) / std).astype(np.float32)
        out[rows] = block
    return out


def assemble_dataset(manifest: str | os.PathLike[str],
                     stores: Mapping[str, str | os.PathLike[str] | Sequence[str]],
                     labels: Mapping[str, Mapping[str, Any]], tasks: Mapping[str, Any],
                     output: str | os.PathLike[str], max_steps: int = 200,
                     views: Mapping[str, str] | None = None,
                     split_column: str = "split", normalise: str = "none") -> dict[str, int]:
    """Write the dataset; returns the number of utterances per split.

    `stores`: {modality: its partition files (what the workflow passes: exactly the shards it
    planned, never a glob that could pick up a stale shard), or a store folder}; `views`: {modality: "sequence" (default) | "pooled" | "aligned"}
    (see `modality_sources` for the config form). `labels`: the corpus's label types; `tasks`:
    ``training.tasks`` (checked here against the label types, so a bad loss fails early).
    `split_column`: the manifest column giving train/valid/test (e.g. ``split_loso_03`` for one
    fold of a cross-validation protocol); rows with any other value (empty) are left out.
    `normalise`: "speaker" z-normalises every modality per speaker (`speaker_standardise`) over
    all the speaker's usable utterances; "none" leaves the features as stored.
    """
    if normalise not in ("none", "speaker"):
        raise ValueError(f"normalise must be 'none' or 'speaker', got {normalise!r}")
    views = dict(views or {})
    bad = {m: v for m, v in views.items() if v not in VIEWS or m not in stores}
    if bad:
        raise ValueError(f"bad views {bad}: each must name a modality and be one of {VIEWS}")
    frame = pd.read_parquet(manifest)
    if split_column not in frame.columns:
        raise ValueError(f"manifest has no split column {split_column!r}")
    odd = [t for t in tasks if "/" in t or t == "utt_ids"]
    if odd:
        raise ValueError(f"task names {odd} cannot be stored (no '/', not 'utt_ids')")
    unknown = [t for t in tasks if t not in labels]
    if unknown:
        raise ValueError(f"training tasks {unknown} are not labels of this corpus "
                         f"(labels: {sorted(labels)})")
    kinds = {t: str(labels[t]["type"]) for t in tasks}
    classes = {t: list(labels[t]["classes"]) for t in tasks if kinds[t] == "categorical"}
    normalize_tasks(tasks, kinds=kinds, classes=classes)  # fail now on a loss that does not fit
    usable = set(frame["utt_id"])
    if "aligned" in views.values():
        timed = {u for u, w in zip(frame["utt_id"], frame.get("words", [None] * len(frame)))
                 if len(word_intervals(w))}
        if usable - timed:
            log.info("aligned view: %d utterances have no word times, left out", len(usable - timed))
        usable &= timed
    for modality, store in stores.items():
        have = accepted_ids(store)
        dropped = usable - have
        if dropped:
            log.info("%s: %d utterances have no accepted features, left out", modality, len(dropped))
        usable &= have
    frame = frame[frame["utt_id"].isin(usable) & frame[split_column].isin(SPLITS)].sort_values("utt_id")
    ids = frame["utt_id"].tolist()
    words = [word_intervals(w) for w in frame["words"]] if "aligned" in views.values() else []
    features = {}
    for modality, store in stores.items():
        x, lengths = _read_view(store, ids, views.get(modality, "sequence"), max_steps, words)
        if normalise == "speaker":
            x = speaker_standardise(x, lengths, frame["speaker"].to_numpy())
        features[modality] = (x, lengths)
    arrays: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for split in SPLITS:
        in_split = (frame[split_column] == split).to_numpy()
        part = frame[in_split]
        counts[split] = len(part)
        if part.empty:
            raise ValueError(f"no usable utterances in the {split} split of {split_column!r} "
                             f"({len(frame)} usable in all; check the rejected table)")
        arrays[f"{split}/utt_ids"] = np.array(part["utt_id"].tolist())
        for modality, (x, lengths) in features.items():
            arrays[f"{split}/{modality}/x"] = x[in_split]
            arrays[f"{split}/{modality}/lengths"] = lengths[in_split]
        for task in tasks:
            arrays[f"{split}/{task}"] = _task_array(part, task, labels[task])
    for task in tasks:
        arrays[f"kind/{task}"] = np.array(kinds[task])
        if task in classes:
            arrays[f"classes/{task}"] = np.array(classes[task])
    for modality in stores:
        arrays[f"view/{modality}"] = np.array(views.get(modality, "sequence"))
    if "emotion" in classes:
        arrays["emotion_classes"] = np.array(classes["emotion"])
    with atomic_path(output) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    return counts


def load_dataset(path: str | os.PathLike[str]) -> TrainingData:
    """Read an assembled .npz back as `TrainingData` (also datasets written before task kinds
    were stored: their emotion/sentiment/sarcasm columns get the historical kinds)."""
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        kinds = {k.split("/", 1)[1]: str(data[k]) for k in keys if k.startswith("kind/")}
        if not kinds:
            kinds = {t: kind for t, kind in LEGACY_KINDS.items() if f"train/{t}" in keys}
        classes = {k.split("/", 1)[1]: data[k].tolist() for k in keys if k.startswith("classes/")}
        if "emotion_classes" in keys and "emotion" not in classes:
            classes["emotion"] = data["emotion_classes"].tolist()
        views = {k.split("/", 1)[1]: str(data[k]) for k in keys if k.startswith("view/")}
        splits: dict[str, SplitData] = {}
        for split in SPLITS:
            modalities = sorted({k.split("/")[1] for k in keys
                                 if k.startswith(f"{split}/") and k.endswith("/x")})
            features = {m: (data[f"{split}/{m}/x"], data[f"{split}/{m}/lengths"]) for m in modalities}
            labels = {task: data[f"{split}/{task}"] for task in kinds if f"{split}/{task}" in keys}
            splits[split] = SplitData(features=features, utt_ids=data[f"{split}/utt_ids"].tolist(),
                                      labels=labels)
    return TrainingData(splits=splits, emotion_classes=classes.get("emotion", []),
                        classes=classes, kinds=kinds, views=views)
