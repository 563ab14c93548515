"""MMSA feature pickles (thuiar/MMSA ``aligned_50.pkl`` / ``unaligned_50.pkl``) ⇄ our stores.

Why: MMSA is where most multimodal-sentiment baselines live; importing its pickles lets users
train our models on the published MOSI/MOSEI/CH-SIMS features, and exporting lets them run any
MMSA model on features we extracted.

Layout (what ``MMSA.data_loader`` reads): a dict with ``train``, ``valid``, ``test``, each a dict
of ``raw_text`` (N,), ``id`` (N,), ``text`` (N, L_t, D_t), ``audio`` (N, L_a, D_a), ``vision``
(N, L_v, D_v) float32 zero-padded at the end, ``audio_lengths`` / ``vision_lengths`` (N,),
``regression_labels`` (N,) (+ ``regression_labels_T/_A/_V`` on CH-SIMS), ``annotations`` (N,) and,
when BERT token ids exist, ``text_bert`` (N, 3, L_t): token ids, attention mask, segment ids.

Unpickling runs code chosen by whoever wrote the file, so `import_mmsa` refuses unless
``trust=True``. Import notes: padding is not stored (audio/vision use their ``*_lengths``; text
uses the ``text_bert`` mask, else drops trailing all-zero steps); non-finite values (MOSI's
COVAREP has -inf) become 0, as MMSA's loader does; token ids are kept as the extra
``token_ids``. Export notes: ``text_bert`` is built from the text store's ``token_ids`` extra,
else from `tokenizer` (MMSA-FET style: [CLS] ... [SEP] of the transcript, so its positions are
one step off our ``text`` rows, which have no special tokens), else the key is **left out**:
MMSA then needs ``use_bert=False`` (models read ``text``); we never write fake ids.
"""

from __future__ import annotations

import logging
import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from affectflow.features.base import FeatureResult
from affectflow.features.store import Provenance, StoreRow
from affectflow.formats.csd import (EPSILON, align_to_reference, frame_intervals,
                                    read_store_rows)
from affectflow.formats.aligned import align_to_words, word_intervals
from affectflow.formats.imported import ImportedCorpus, write_imported_dir
from affectflow.formats.openface import IMPORTER_VERSION, file_sha256

log = logging.getLogger(__name__)
SPLITS = ("train", "valid", "test")
SPLIT_ALIASES = {"train": "train", "valid": "valid", "val": "valid", "dev": "valid",
                 "test": "test"}
MODALITIES = ("text", "audio", "vision")
DEFAULT_LENGTH = {"text": 50, "audio": 500, "vision": 375}
UNIMODAL = ("T", "A", "V")


class UntrustedPickleError(PermissionError):
    """A pickle was not loaded because the caller did not say it trusts the file."""


def _numpy(value: Any) -> np.ndarray:
    """Arrays, lists and torch tensors (MMSA-FET's default output) as numpy."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _trailing_lengths(array: np.ndarray) -> np.ndarray:
    """Steps up to the last one that is not all zeros, per row of an (N, L, D) array."""
    nonzero = np.any(array.reshape(array.shape[0], array.shape[1], -1) != 0, axis=2)
    last = array.shape[1] - np.argmax(nonzero[:, ::-1], axis=1)
    return np.where(nonzero.any(axis=1), last, 0)


def _lengths(part: Mapping[str, Any], modality: str, array: np.ndarray) -> np.ndarray:
    if modality == "text" and "text_bert" in part:
        lengths = _numpy(part["text_bert"])[:, 1, :].sum(axis=1)
    elif f"{modality}_lengths" in part:
        lengths = _numpy(part[f"{modality}_lengths"]).reshape(-1)
    else:
        lengths = _trailing_lengths(array)
    return np.clip(np.round(lengths).astype(np.int64), 0, array.shape[1])


def import_mmsa(pkl_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], corpus: str,
                trust: bool = False) -> dict[str, Path]:
    """Import an MMSA pickle as three stores (``out_dir/text``, ``/audio``, ``/vision``: extractors
    ``mmsa_text``, ``mmsa_audio``, ``mmsa_vision``) and ``out_dir/manifest.csv`` (utt_id, dataset,
    split, transcript, sentiment, sentiment_T/A/V where present, annotation). Returns their paths
    under the keys text, audio, vision, manifest. Refuses (UntrustedPickleError) unless `trust`.
    """
    data = read_mmsa(pkl_path, corpus, trust)
    return write_imported_dir(data, out_dir)


def read_mmsa(pkl_path: str | os.PathLike[str], corpus: str, trust: bool = False) -> ImportedCorpus:
    """Read an MMSA pickle: the manifest (see `import_mmsa`) and, per modality present, the store
    rows and provenance (extractor ``mmsa_<modality>``). Refuses (UntrustedPickleError) unless
    `trust`; a file that is not an MMSA pickle, or repeats an id, is a ValueError naming it."""
    if not trust:
        raise UntrustedPickleError(
            f"{pkl_path}: not loaded. Unpickling executes code chosen by whoever made the file, "
            "so a pickle is loaded only when you trust its source: call "
            "import_mmsa(..., trust=True) for a file you trust (in a workflow config: "
            "`features: {format: mmsa, path: ..., trust: true}`).")
    try:
        with open(pkl_path, "rb") as handle:
            data = pickle.load(handle)  # noqa: S301 - the caller passed trust=True
    except (pickle.UnpicklingError, EOFError, ImportError, AttributeError) as error:
        raise ValueError(f"{pkl_path}: not a readable pickle ({type(error).__name__}: {error})"
                         ) from None
    splits = [s for s in SPLITS if isinstance(data, Mapping) and s in data]
    if not splits:
        raise ValueError(f"{pkl_path}: not an MMSA pickle (no train/valid/test keys)")
    digest = file_sha256(pkl_path)
    rows: dict[str, list[StoreRow]] = {m: [] for m in MODALITIES}
    widths: dict[str, int] = {}
    records: list[dict[str, Any]] = []
    for split in splits:
        part = data[split]
        missing = [k for k in ("id", "regression_labels") if k not in part]
        if missing:
            raise ValueError(f"{pkl_path}: split {split!r} has no {', '.join(missing)} "
                             f"(keys: {', '.join(map(str, part))})")
        ids = [_text(v) for v in _numpy(part["id"]).reshape(-1)]
        raw = [_text(v) for v in _numpy(part.get("raw_text", [""] * len(ids))).reshape(-1)]
        labels = _numpy(part["regression_labels"]).astype(np.float64).reshape(-1)
        unimodal = {m: _numpy(part[key]).astype(np.float64).reshape(-1) for m in UNIMODAL
                    for key in (f"regression_labels_{m}", f"label_{m}") if key in part}
        notes = _numpy(part["annotations"]).reshape(-1) if "annotations" in part else None
        for i, utt_id in enumerate(ids):
            record = {"utt_id": utt_id, "dataset": corpus, "split": split,
                      "transcript": raw[i], "sentiment": labels[i]}
            record.update({f"sentiment_{m}": v[i] for m, v in unimodal.items()})
            if notes is not None:
                record["annotation"] = _text(notes[i])
            records.append(record)
        token_ids = _numpy(part["text_bert"])[:, 0, :] if "text_bert" in part else None
        for modality in MODALITIES:
            if modality not in part:
                continue
            array = np.asarray(_numpy(part[modality]), dtype=np.float32)  # no copy if float32
            array = array.reshape(array.shape[0], array.shape[1], -1)
            if len(array) != len(ids):
                raise ValueError(f"{pkl_path}: split {split!r}: {modality} has {len(array)} rows "
                                 f"but id has {len(ids)}")
            widths[modality] = array.shape[2]
            for i, n in enumerate(_lengths(part, modality, array)):
                signature = f"{digest[:12]}:{split}:{i}"
                if n == 0:
                    rows[modality].append(StoreRow(ids[i], signature, reason="no steps (length 0)"
                                                   " in the MMSA pickle"))
                    continue
                values = np.nan_to_num(array[i, :n], nan=0.0, posinf=0.0, neginf=0.0)
                extra = ({"token_ids": token_ids[i, :n].astype(np.float64)}
                         if modality == "text" and token_ids is not None else {})
                rows[modality].append(StoreRow(ids[i], signature, result=FeatureResult(
                    values=values, pooled=values.mean(axis=0), extra=extra)))
    manifest = pd.DataFrame.from_records(records)
    duplicated = manifest["utt_id"][manifest["utt_id"].duplicated()].tolist()
    if duplicated:
        raise ValueError(f"{pkl_path}: ids occur more than once, e.g. {duplicated[:3]}")
    stores = {}
    for modality in MODALITIES:
        if not rows[modality]:
            continue
        stores[modality] = (rows[modality], Provenance(
            extractor=f"mmsa_{modality}", version=IMPORTER_VERSION, corpus=corpus, shard=0,
            value_names=tuple(f"{modality}_{j}" for j in range(widths[modality])),
            params={"imported": True, "format": "MMSA pickle", "splits": splits,
                    "sources": {"path": str(Path(pkl_path).resolve()), "sha256": digest}}))
    return ImportedCorpus(manifest, stores)


def token_intervals(row: Mapping[str, Any]) -> np.ndarray:
    """(T, 2) time span of each text step: the ``intervals`` extra, else cut from the token
    centre times (tokens of one word share its centre): each word reaches half way to its
    neighbours' centres, the first and last as far out as inwards; a single word spans all."""
    if row.get("intervals") is not None:
        return np.asarray(row["intervals"], dtype=np.float64)
    if row.get("times") is None:
        raise ValueError("the text store has no token times (the manifest had no word "
                         "timings), so audio and vision cannot be aligned to its tokens")
    times = np.asarray(row["times"], dtype=np.float64)
    centres = np.unique(times)
    if len(centres) == 1:
        edges = np.array([centres[0] - 1e6, centres[0] + 1e6])
    else:
        middles = (centres[1:] + centres[:-1]) / 2.0
        edges = np.concatenate([[2 * centres[0] - middles[0]], middles,
                                [2 * centres[-1] - middles[-1]]])
    k = np.searchsorted(centres, times)
    return np.stack([edges[k], edges[k + 1]], axis=1)


def _per_token(row: Mapping[str, Any], token_times: np.ndarray, words: Any) -> np.ndarray:
    """(T, D): for each token, the word-aligned frames of the word its time falls in."""
    spans = word_intervals(words)
    if not len(spans) or row.get("times") is None:
        raise ValueError("aligned export needs word times in the manifest and timed frames")
    per_word = align_to_words(row["values"], row["times"], spans)
    index = np.clip(np.searchsorted(spans[:, 0], np.asarray(token_times, np.float64), side="right") - 1,
                    0, len(spans) - 1)
    return per_word[index]


def _pad(arrays: list[np.ndarray], length: int, width: int) -> tuple[np.ndarray, list[int]]:
    """Zero-padded / truncated (N, length, width) float32 and the kept lengths."""
    out = np.zeros((len(arrays), length, width), dtype=np.float32)
    kept = []
    for i, values in enumerate(arrays):
        n = min(len(values), length)
        out[i, :n] = values[:n]
        kept.append(int(n))
    return out, kept


def _text_bert(text_rows: list[dict], transcripts: list[str], length: int,
               tokenizer: Any) -> np.ndarray | None:
    """(N, 3, length) ids / mask / segments from stored token ids or a tokenizer, else None."""
    if text_rows and all(r.get("token_ids") is not None for r in text_rows):
        out = np.zeros((len(text_rows), 3, length), dtype=np.float32)
        for i, row in enumerate(text_rows):
            n = min(len(row["token_ids"]), length)
            out[i, 0, :n] = row["token_ids"][:n]
            out[i, 1, :n] = 1
        return out
    if tokenizer is None:
        return None
    encoded = tokenizer(list(transcripts), padding="max_length", truncation=True,
                        max_length=length)
    ids = np.asarray(encoded["input_ids"], dtype=np.float32)
    mask = np.asarray(encoded["attention_mask"], dtype=np.float32)
    segments = np.asarray(encoded.get("token_type_ids", np.zeros_like(ids)), dtype=np.float32)
    return np.stack([ids, mask, segments], axis=1)


def export_mmsa(manifest: pd.DataFrame, stores: Mapping[str, str | os.PathLike[str]],
                out_pkl: str | os.PathLike[str], length: Mapping[str, int] | None = None,
                aligned: bool = False, tokenizer: Any = None, epsilon: float = EPSILON) -> Path:
    """Write our stores as an MMSA pickle that ``MMSA.data_loader`` loads as it loads
    ``unaligned_50.pkl`` (`aligned` False) or ``aligned_50.pkl`` (`aligned` True).

    `manifest`: utt_id, split (train/valid/test; dev/val mean valid), transcript, sentiment,
    optional sentiment_T/A/V and annotation. `stores`: {"text", "audio", "vision"} → folders.
    `length`: steps per modality (default 50/500/375); longer rows are cut, shorter zero padded.
    `aligned`: audio and vision get one vector per text token, so all three have
    `length["text"]` steps and the ``*_lengths`` equal the text length. With the manifest's word
    times (a `words` column), that vector is the word-aligned view of the token's word
    (`formats.aligned`: the mean of the frames inside the word, the nearest frame for a word
    shorter than a frame); without them, the mean over the token's span cut half way to its
    neighbours' centres (zeros where no frame falls in it). Utterances missing from a store are
    left out (logged).
    """
    lengths = {**DEFAULT_LENGTH, **dict(length or {})}
    missing = [c for c in ("utt_id", "split", "transcript", "sentiment") if c not in manifest]
    if missing:
        raise ValueError(f"manifest lacks column(s) {missing}")
    rows = {m: read_store_rows(stores[m]) for m in MODALITIES}
    widths = {m: next(iter(r.values()))["values"].shape[1] if r else 0 for m, r in rows.items()}
    frame = manifest.assign(utt_id=manifest["utt_id"].astype(str),
                            split=manifest["split"].astype(str).str.lower().map(SPLIT_ALIASES))
    if frame["split"].isna().any():
        bad = manifest.loc[frame["split"].isna(), "split"].unique()[:3]
        raise ValueError(f"manifest has rows with split {list(bad)}; expected train/valid/test")
    present = frame["utt_id"].map(lambda u: all(u in rows[m] for m in MODALITIES))
    if not present.all():
        log.warning("MMSA export leaves out %d utterances missing from a store, e.g. %s",
                    int((~present).sum()), frame.loc[~present, "utt_id"].tolist()[:5])
    frame = frame[present]
    out: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        part = frame[frame["split"] == split]
        ids = part["utt_id"].tolist()
        transcripts = part["transcript"].fillna("").astype(str).tolist()
        text_rows = [rows["text"][u] for u in ids]
        text, text_kept = _pad([r["values"] for r in text_rows], lengths["text"], widths["text"])
        entry: dict[str, Any] = {"raw_text": np.array(transcripts, dtype=object),
                                 "id": np.array(ids, dtype=object), "text": text}
        for modality in ("audio", "vision"):
            if aligned and "words" in part:
                array, _ = _pad([_per_token(rows[modality][u], row["times"][:n], words)
                                 for u, row, n, words in zip(ids, text_rows, text_kept, part["words"])],
                                lengths["text"], widths[modality])
                kept = list(text_kept)
            elif aligned:
                seq, ref = {}, {}
                for u, row, n in zip(ids, text_rows, text_kept):
                    try:
                        ref[u] = token_intervals(row)[:n]
                    except ValueError as exc:
                        raise ValueError(f"utterance {u}: {exc}") from None
                    seq[u] = (rows[modality][u]["values"], frame_intervals(rows[modality][u]))
                result = align_to_reference(seq, ref, empty="zero", epsilon=epsilon)
                array, _ = _pad([result[u].features for u in ids], lengths["text"],
                                widths[modality])
                kept = list(text_kept)
            else:
                array, kept = _pad([rows[modality][u]["values"] for u in ids],
                                   lengths[modality], widths[modality])
            entry[modality], entry[f"{modality}_lengths"] = array, kept
        entry["regression_labels"] = part["sentiment"].to_numpy(dtype=np.float32)
        for m in UNIMODAL:
            if f"sentiment_{m}" in part:
                entry[f"regression_labels_{m}"] = part[f"sentiment_{m}"].to_numpy(np.float32)
        if "annotation" in part:
            notes = part["annotation"].fillna("").astype(str).tolist()
        else:
            notes = ["Positive" if y > 0 else "Negative" if y < 0 else "Neutral" if y == 0
                     else "" for y in entry["regression_labels"]]
        entry["annotations"] = np.array(notes, dtype=object)
        bert = _text_bert(text_rows, transcripts, lengths["text"], tokenizer)
        if bert is not None:
            entry["text_bert"] = bert
        out[split] = entry
    out_pkl = Path(out_pkl)
    out_pkl.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_pkl.with_name(f".{out_pkl.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as handle:
        pickle.dump(out, handle, protocol=4)
    os.replace(tmp, out_pkl)
    return out_pkl
