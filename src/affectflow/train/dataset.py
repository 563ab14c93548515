"""Assemble a corpus's modality feature stores and manifest labels into one dataset (.npz).

One dataset per corpus and protocol: every usable utterance once, every label of the corpus,
and each fold of the protocol as a column of split names (``train``/``valid``/``test``/empty)
over the same rows, so a cross-validation protocol does not write one padded copy per fold.
An utterance is usable when it has a split in some fold and accepted features in at least one
modality; each modality carries a ``present`` mask, and `load_dataset` keeps only the rows that
have every modality the model reads (a text-only model is not scored on the subset that also
has faces). Each modality is read in one of three views: ``sequence`` (the extractor's frames,
padded; the default), ``pooled`` (its utterance-level vector, e.g. eGeMAPS functionals, stored
as a sequence of length 1), ``aligned`` (one vector per word of the manifest's word times,
`affectflow.formats.aligned`; utterances without word times lack that modality) or ``raw`` (the
raw-input extractors' samples or token ids, uncut by `max_steps` and never standardised; chosen
automatically for them).

The .npz keys: ``utt_ids``, ``speakers``, ``fold/<fold>`` (split names), ``<modality>/x``
(N, T, D), ``<modality>/lengths``, ``<modality>/present``, ``label/<task>`` (class index, −1
missing, for categorical labels; float, NaN missing, otherwise), ``kind/<task>``,
``classes/<task>``, ``range/<task>`` (min, max of a regression label), ``view/<modality>`` and
``source/<modality>`` (JSON: extractor, version, params_hash: the provenance `predict` checks).
"""


from __future__ import annotations

import json
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

log = logging.getLogger(__name__)
VIEWS = ("sequence", "pooled", "aligned", "raw")


def modality_sources(corpus_dir: str | os.PathLike[str],
                     modalities: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """``training.modalities`` → ({modality: store folder}, {modality: view}), stores being
    ``<corpus_dir>/features/<extractor>`` (the workflow passes its planned partition files)."""
    extractors, views = modality_views(modalities)
    return {m: str(Path(corpus_dir) / "features" / e) for m, e in extractors.items()}, views


def modality_histories(modalities: Mapping[str, Any]) -> dict[str, int]:
    """{modality: k} for the modalities that read the k-th previous turn (``history: k``)."""
    out = {}
    for modality, spec in modalities.items():
        k = spec.get("history", 0) if isinstance(spec, Mapping) else 0
        if not isinstance(k, int) or k < 0:
            raise ValueError(f"modality {modality!r}: history must be a whole number ≥ 0, got {k!r}")
        suffix = modality.rpartition("@")[2] if "@" in modality else "0"
        if str(k) != suffix:
            raise ValueError(f"modality {modality!r}: a history modality is named <name>@<k> with "
                             f"history: k (got history {k}); others have no '@'")
        if k:
            out[modality] = k
    return out


def previous_turns(frame: pd.DataFrame, ids: Sequence[str], k: int) -> list[str | None]:
    """For each of `ids`, the utt_id of the k-th turn before it in its dialogue (by ``turn``,
    among all manifest rows), or None at a dialogue's start or without dialogue columns."""
    if "dialogue_id" not in frame or "turn" not in frame:
        return [None] * len(ids)
    order = frame.assign(_turn=pd.to_numeric(frame["turn"], errors="coerce")).sort_values(["dialogue_id", "_turn"])
    before: dict[str, str | None] = {}
    for _, dialogue in order.groupby("dialogue_id", sort=False):
        turns = dialogue["utt_id"].astype(str).tolist()
        before.update({u: (turns[i - k] if i >= k else None) for i, u in enumerate(turns)})
    return [before.get(u) for u in ids]


def modality_views(modalities: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """``training.modalities`` → ({modality: extractor}, {modality: view}). A value is an
    extractor name (sequence view) or ``{"extractor": name, "view": "sequence" | "pooled",
    "history": k}`` (k ≥ 1: the features of the k-th previous turn of the dialogue)."""
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
        if _is_raw(extractor) != (view == "raw"):
            if view != "sequence" or not _is_raw(extractor):
                raise ValueError(f"modality {modality!r}: the raw view is for the raw-input extractors "
                                 f"(waveform, tokens), and those have no other view; got {extractor!r} "
                                 f"with view {view!r}")
            view = "raw"
        extractors[modality] = extractor
        views[modality] = view
    return extractors, views


def _is_raw(extractor: str) -> bool:
    """Whether a store holds an end-to-end model's raw input (`Extractor.raw`); an imported or
    unknown store name is not raw."""
    try:
        return bool(get_extractor(extractor).raw)
    except (KeyError, ValueError):
        return False


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
    seq = read_sequences(store, ids, max_steps=None if view == "raw" else max_steps)
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


def _provenance(store: str | os.PathLike[str] | Sequence[str], view: str) -> dict[str, Any]:
    files = [store] if isinstance(store, (str, os.PathLike)) else list(store)
    record = store_provenance(files[0])
    return {"extractor": record["extractor"], "version": str(record.get("version", "")),
            "params_hash": str(record.get("params_hash", "")), "view": view,
            "params": record.get("params", {})}


def assemble_dataset(manifest: str | os.PathLike[str],
                     stores: Mapping[str, str | os.PathLike[str] | Sequence[str]],
                     labels: Mapping[str, Mapping[str, Any]], output: str | os.PathLike[str],
                     max_steps: int = 200, views: Mapping[str, str] | None = None,
                     split_columns: Sequence[str] = ("split",),
                     normalise: str = "none", histories: Mapping[str, int] | None = None
                     ) -> dict[str, dict[str, int]]:
    """Write the dataset; returns {fold: {split: utterances with every modality}}.

    `stores`: {modality: its partition files (what the workflow passes: exactly the shards it
    planned, never a glob that could pick up a stale shard), or a store folder}; `views`:
    {modality: "sequence" (default) | "pooled" | "aligned"}. `labels`: the corpus's label types
    (all are stored; which are trained is the model's choice). `split_columns`: the manifest
    columns giving train/valid/test, one per fold of the protocol (e.g. ``split_loso_03``);
    other values (empty) leave the row out of that fold. `normalise`: "speaker" z-normalises
    every modality per speaker (`speaker_standardise`) over all the speaker's usable utterances.
    `histories`: {modality: k} for modalities holding the k-th previous turn's features (HAN's
    talk-turn context): every row has them, zeros of length 1 where there is no such turn (or it
    has no features), so history never removes an utterance.
    """
    histories = dict(histories or {})
    if normalise not in ("none", "speaker"):
        raise ValueError(f"normalise must be 'none' or 'speaker', got {normalise!r}")
    views = dict(views or {})
    bad = {m: v for m, v in views.items() if v not in VIEWS or m not in stores}
    if bad:
        raise ValueError(f"bad views {bad}: each must name a modality and be one of {VIEWS}")
    frame = pd.read_parquet(manifest)
    missing = [c for c in split_columns if c not in frame.columns]
    if missing:
        raise ValueError(f"manifest has no split column(s) {missing}")
    odd = [t for t in labels if "/" in t]
    if odd:
        raise ValueError(f"label names {odd} cannot be stored (no '/')")
    in_a_fold = frame[list(split_columns)].isin(SPLITS).any(axis=1)
    timed = {u for u, w in zip(frame["utt_id"], frame.get("words", [None] * len(frame)))
             if len(word_intervals(w))}
    have = {}
    for modality, store in stores.items():
        have[modality] = accepted_ids(store)
        if views.get(modality) == "aligned":
            have[modality] &= timed
    usable = set().union(*(h for m, h in have.items() if m not in histories)) if have else set()
    everything = frame
    speaker_of = dict(zip(frame["utt_id"].astype(str), frame.get("speaker", pd.Series([""] * len(frame), index=frame.index)).fillna("").astype(str)))
    frame = frame[frame["utt_id"].isin(usable) & in_a_fold].sort_values("utt_id")
    ids = frame["utt_id"].tolist()
    for modality, ok in have.items():
        lacking = len(set(ids) - ok)
        if lacking:
            log.info("%s: %d usable utterances have no accepted features (a model reading it "
                     "leaves them out)", modality, lacking)
    arrays: dict[str, np.ndarray] = {"utt_ids": np.array(ids, dtype=str),
                                     "speakers": np.array(frame.get("speaker", pd.Series(
                                         [""] * len(frame))).fillna("").astype(str).tolist(), dtype=str)}
    for modality, store in stores.items():
        view = views.get(modality, "sequence")
        source = previous_turns(everything, ids, histories[modality]) if modality in histories else ids
        present = np.array([u is not None and u in have[modality] for u in source])
        rows = [u for u, p in zip(source, present) if p]
        words = [word_intervals(w) for w, p in zip(frame.get("words", [None] * len(frame)), present)
                 if p] if view == "aligned" else []
        x_part, len_part = _read_view(store, rows, view, max_steps, words)
        if normalise == "speaker" and rows:
            x_part = speaker_standardise(x_part, len_part, np.array([speaker_of.get(u, "") for u in rows], dtype=str))
        x = np.zeros((len(ids), max(x_part.shape[1], 1), x_part.shape[2]), np.float32)
        lengths = np.ones(len(ids), np.int64)
        x[present, : x_part.shape[1]] = x_part
        lengths[present] = len_part
        if modality in histories:
            present = np.ones(len(ids), bool)  # no such turn: an empty (zero) turn
        arrays.update({f"{modality}/x": x, f"{modality}/lengths": lengths,
                       f"{modality}/present": present,
                       f"view/{modality}": np.array(view),
                       f"source/{modality}": np.array(json.dumps(_provenance(store, view)))})
    for task, spec in labels.items():
        arrays[f"label/{task}"] = _task_array(frame, task, spec)
        arrays[f"kind/{task}"] = np.array(str(spec["type"]))
        if spec["type"] == "categorical":
            arrays[f"classes/{task}"] = np.array(list(spec["classes"]))
        if spec["type"] == "regression" and "min" in spec and "max" in spec:
            arrays[f"range/{task}"] = np.array([float(spec["min"]), float(spec["max"])])
    everywhere = np.all([arrays[f"{m}/present"] for m in stores], axis=0) if stores else []
    counts: dict[str, dict[str, int]] = {}
    for column in split_columns:
        arrays[f"fold/{column}"] = np.array(frame[column].fillna("").astype(str).tolist(), dtype=str)
        counts[column] = {s: int(((arrays[f"fold/{column}"] == s) & everywhere).sum())
                          for s in SPLITS}
    with atomic_path(output) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, **arrays)
    return counts


def dataset_folds(path: str | os.PathLike[str]) -> list[str]:
    """The fold columns of a dataset."""
    with np.load(path, allow_pickle=False) as data:
        return sorted(k.split("/", 1)[1] for k in data.files if k.startswith("fold/"))


def load_dataset(path: str | os.PathLike[str], fold: str = "split",
                 modalities: Sequence[str] | None = None) -> TrainingData:
    """The `fold` of a dataset as `TrainingData`, with `modalities` only (default all) and the
    rows that have every one of them. An unknown fold or modality is a ValueError naming it."""
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        have = sorted(k.split("/")[0] for k in keys if k.endswith("/present"))
        modalities = list(modalities or have)
        unknown = sorted(set(modalities) - set(have))
        if unknown:
            raise ValueError(f"{path}: modalities {unknown} are not in the dataset (has {have})")
        if f"fold/{fold}" not in keys:
            folds = sorted(k.split("/", 1)[1] for k in keys if k.startswith("fold/"))
            raise ValueError(f"{path}: no fold {fold!r} (has {folds})")
        split_of = data[f"fold/{fold}"]
        present = np.all([data[f"{m}/present"] for m in modalities], axis=0)
        kinds = {k.split("/", 1)[1]: str(data[k]) for k in keys if k.startswith("kind/")}
        classes = {k.split("/", 1)[1]: data[k].tolist() for k in keys if k.startswith("classes/")}
        ranges = {k.split("/", 1)[1]: tuple(float(v) for v in data[k])
                  for k in keys if k.startswith("range/")}
        views = {m: str(data[f"view/{m}"]) for m in modalities}
        sources = {m: json.loads(str(data[f"source/{m}"])) for m in modalities
                   if f"source/{m}" in keys}
        ids = data["utt_ids"]
        splits: dict[str, SplitData] = {}
        for split in SPLITS:
            rows = np.flatnonzero((split_of == split) & present)
            features = {}
            for m in modalities:
                lengths = data[f"{m}/lengths"][rows]
                t = int(lengths.max()) if rows.size else 1
                features[m] = (data[f"{m}/x"][rows, :t], lengths)
            labels = {task: data[f"label/{task}"][rows] for task in kinds}
            splits[split] = SplitData(features=features, utt_ids=ids[rows].tolist(), labels=labels)
    return TrainingData(splits=splits, emotion_classes=classes.get("emotion", []),
                        classes=classes, kinds=kinds, views=views, ranges=ranges, sources=sources)


def load_all_rows(path: str | os.PathLike[str], modalities: Sequence[str]
                  ) -> tuple[list[str], dict[str, tuple[np.ndarray, np.ndarray]], dict[str, Any]]:
    """(utt_ids, features, sources) of every row that has all `modalities`, whatever its split:
    what `predict` labels. Labels are never read."""
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        lacking = [m for m in modalities if f"{m}/present" not in keys]
        if lacking:
            have = sorted(k.split("/")[0] for k in keys if k.endswith("/present"))
            raise ValueError(f"{path}: the model reads modalities {lacking}, not in the dataset "
                             f"(has {have})")
        present = np.all([data[f"{m}/present"] for m in modalities], axis=0)
        rows = np.flatnonzero(present)
        features = {}
        for m in modalities:
            lengths = data[f"{m}/lengths"][rows]
            t = int(lengths.max()) if rows.size else 1
            features[m] = (data[f"{m}/x"][rows, :t], lengths)
        sources = {m: json.loads(str(data[f"source/{m}"])) for m in modalities
                   if f"source/{m}" in keys}
        return data["utt_ids"][rows].tolist(), features, sources
