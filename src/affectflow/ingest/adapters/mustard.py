"""MUStARD (sarcasm in TV dialogue): `sarcasm_data.json` + `split_indices.p` to a manifest.

`utt_id` is the JSON key, `transcript` the utterance, `sarcasm` 0/1, `show`, and the context
(`context_turns`, `context_speakers` as lists, `context` as "SPEAKER: text" joined by " [SEP] ").
Each sample is its own dialogue (`dialogue_id` = `utt_id`, `turn` = number of context turns).

Folds. `split_indices.p` holds the 5 official (speaker-dependent) folds as a list of 5
`(train_indices, test_indices)` tuples of numpy int64 arrays (552 + 138 indices), pickled by
Python 2 with protocol 2. It is read with `load_split_indices`, a restricted unpickler that never
imports or calls anything from the file. The indices do NOT refer to the key order of the JSON
file: they refer to the iteration order of the Python 2.7 dict that `json.load` returned when the
folds were made (StratifiedKFold over that order). Under that order every test fold holds exactly
69 sarcastic of 138, as stratification demands; under file order the counts are 74/71/63/76/61.
`index_order="py2"` (default) reproduces that order (`py2_dict_order`), "json" uses file order.
Each fold tests one fifth, and every index is in exactly one test set (checked on load).

Speaker-independent split: in the authors' code (`DataLoader.speaker_independent_split` and
`data/sarcasm_speaker_independent_{train,test}.jsonnet` in soujanyaporia/MUStARD) the test set is
every FRIENDS utterance and training is BBT, GOLDENGIRLS and SARCASMOHOLICS (the docstring there
says the reverse; the code and the jsonnet files agree with each other and are what we implement).

Neither protocol has a validation set; `valid_fraction` moves a deterministic, label-stratified
share of the training rows (every k-th of each class in index order) to `valid` (0 disables it).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pandas as pd

from affectflow.ingest.adapters._common import (
    CONTEXT_SEP, context_strings, fix_mojibake, manifest_frame, read_text,
)
from affectflow.ingest.adapters.safe_pickle import UnsafePickleError, safe_unpickle
from affectflow.ingest.manifest import ManifestError

DATASET = "mustard"
LABELS: dict[str, dict[str, Any]] = {"sarcasm": {"type": "binary"}}
SPEAKER_INDEPENDENT_TEST_SHOWS: tuple[str, ...] = ("FRIENDS",)
EXTRA_COLUMNS: tuple[str, ...] = ("sarcasm", "show", "context_turns", "context_speakers",
                                  "context", "index", "cv_fold")
_FIELDS = ("utterance", "speaker", "context", "context_speakers", "show", "sarcasm")


def load_split_indices(path: Path, n_items: int | None = None) -> list[tuple[list[int], list[int]]]:
    """The official folds as [(train, test), ...]; ManifestError naming the file on any problem."""
    path = Path(path)
    try:
        data = path.read_bytes()
        folds = safe_unpickle(data)
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: {error}") from None
    except (OSError, pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
            AttributeError, KeyError) as error:  # corrupt or unexpected pickle contents
        raise ManifestError(f"{path}: cannot read split indices ({type(error).__name__}: {error})")
    if not (isinstance(folds, list) and folds and all(
            isinstance(f, list) and len(f) == 2 and all(isinstance(x, list) for x in f)
            for f in folds)):
        raise ManifestError(f"{path}: expected a list of (train, test) pairs of index lists")
    covered: list[int] = []
    for k, (train, test) in enumerate(folds):
        if not all(isinstance(i, int) for i in train + test) or set(train) & set(test):
            raise ManifestError(f"{path}: fold {k}: train/test must be disjoint lists of ints")
        if n_items is not None and sorted(train + test) != list(range(n_items)):
            raise ManifestError(f"{path}: fold {k}: train+test do not cover indices 0..{n_items - 1}")
        covered += test
    if n_items is not None and sorted(covered) != list(range(n_items)):
        raise ManifestError(f"{path}: the test sets do not hold every index exactly once")
    return [(list(train), list(test)) for train, test in folds]


def _py2_hash(text: str) -> int:
    """CPython 2.7's str/unicode hash (64-bit, no randomisation), as an unsigned machine word."""
    mask = (1 << 64) - 1
    if not text:
        return 0
    x = (ord(text[0]) << 7) & mask
    for char in text:
        x = ((1000003 * x) & mask) ^ ord(char)
    x ^= len(text)
    return mask - 1 if x == mask else x  # a hash of -1 becomes -2


def py2_dict_order(keys: list[str]) -> list[str]:
    """Iteration order of a CPython 2.7 (64-bit) dict filled with `keys` in this order."""
    table: list[str | None] = [None] * 8
    used = 0

    def slot(tab: list[str | None], key: str) -> int:
        mask, h = len(tab) - 1, _py2_hash(key)
        i = perturb = h
        while tab[i & mask] is not None:
            i = (i << 2) + i + perturb + 1
            perturb >>= 5
        return i & mask

    for key in keys:
        table[slot(table, key)] = key
        used += 1
        if used * 3 >= len(table) * 2:  # no deletions, so fill == used
            size = 8
            while size <= 4 * used:
                size <<= 1
            old, table = table, [None] * size
            for item in old:
                if item is not None:
                    table[slot(table, item)] = item
    return [k for k in table if k is not None]


def _valid_mask(frame: pd.DataFrame, fraction: float) -> pd.Series:
    """Every k-th training row of each sarcasm class (in index order) -> True."""
    mask = pd.Series(False, index=frame.index)
    if fraction <= 0:
        return mask
    step = max(2, round(1 / fraction))
    train = frame[frame["split"] == "train"].sort_values("index")
    for _, group in train.groupby("sarcasm"):
        mask.loc[group.index[step - 1::step]] = True
    return mask


def build_manifest(root: Path, fold: int | str | None = 0, valid_fraction: float = 0.1,
                   index_order: str = "py2", context_turns: int | None = None,
                   fix_text: bool = True, ascii_punct: bool = False) -> pd.DataFrame:
    """The 690 samples; `fold` 0-4 (official), "speaker_independent", or None (no split)."""
    root = Path(root)
    json_path = root / "sarcasm_data.json"
    try:
        data = json.loads(read_text(json_path))
    except json.JSONDecodeError as error:
        raise ManifestError(f"{json_path}: not valid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ManifestError(f"{json_path}: expected a JSON object of samples")
    clean = (lambda s: fix_mojibake(str(s), ascii_punct)) if fix_text else str
    if index_order not in ("py2", "json"):
        raise ManifestError(f"index_order must be 'py2' or 'json', got {index_order!r}")
    order = py2_dict_order(list(data)) if index_order == "py2" else list(data)
    position = {key: i for i, key in enumerate(order)}
    rows = []
    for key in data:  # rows in file order; `index` is the position the fold indices refer to
        item = data[key]
        missing = [f for f in _FIELDS if not isinstance(item, dict) or f not in item]
        if missing:
            raise ManifestError(f"{json_path}: sample {key!r}: missing field(s) {', '.join(missing)}")
        if not (isinstance(item["context"], list) and isinstance(item["context_speakers"], list)):
            raise ManifestError(f"{json_path}: sample {key!r}: context/context_speakers: not lists")
        context, speakers = item["context"], item["context_speakers"]
        if len(context) != len(speakers):
            raise ManifestError(f"{json_path}: sample {key!r}: context_speakers has {len(speakers)} "
                                f"entries for {len(context)} context turns")
        if item["sarcasm"] not in (True, False, 0, 1):
            raise ManifestError(f"{json_path}: sample {key!r}: sarcasm: not a boolean: {item['sarcasm']!r}")
        rows.append({
            "utt_id": str(key), "dataset": DATASET, "speaker": str(item["speaker"]),
            "dialogue_id": str(key), "turn": len(context), "transcript": clean(item["utterance"]),
            "split": None, "sarcasm": int(item["sarcasm"]), "show": str(item["show"]),
            "context_turns": [clean(c) for c in context],
            "context_speakers": [str(s) for s in speakers], "index": position[key],
            "cv_fold": None,
        })
    manifest = manifest_frame(rows, EXTRA_COLUMNS)
    split_file = root / "split_indices.p"
    if split_file.is_file():
        fold_of = {order[i]: k for k, (_, test) in
                   enumerate(load_split_indices(split_file, len(manifest))) for i in test}
        manifest["cv_fold"] = manifest["utt_id"].map(fold_of).astype(object)
    manifest = with_context(manifest, context_turns)
    return apply_fold(manifest, fold, valid_fraction) if fold is not None else manifest


def apply_fold(manifest: pd.DataFrame, fold: int | str, valid_fraction: float = 0.1,
               test_shows: tuple[str, ...] = SPEAKER_INDEPENDENT_TEST_SHOWS) -> pd.DataFrame:
    """Copy with `split`: official fold k (test = rows with cv_fold == k) or "speaker_independent"
    (test = rows of `test_shows`, FRIENDS as in the authors' code; train = the other shows)."""
    out = manifest.copy()
    if fold in ("speaker_independent", "si"):
        test = out["show"].isin(test_shows)
    elif isinstance(fold, int) and out["cv_fold"].notna().any():
        if fold not in set(out["cv_fold"].dropna()):
            raise ManifestError(f"MUStARD fold {fold} does not exist (folds 0..4)")
        test = out["cv_fold"] == fold
    else:
        raise ManifestError(f"MUStARD fold {fold!r}: expected 0-4 (needs split_indices.p) "
                            "or 'speaker_independent'")
    out["split"] = test.map({True: "test", False: "train"})
    out.loc[_valid_mask(out, valid_fraction), "split"] = "valid"
    return out


def with_context(manifest: pd.DataFrame, n_turns: int | None,
                 sep: str = CONTEXT_SEP) -> pd.DataFrame:
    """Copy with `context` from each sample's own context turns: the last `n_turns` (None: all),
    oldest first, as "SPEAKER: text" joined by " [SEP] " (the MELD format)."""
    out = manifest.copy()
    context = []
    for turns, speakers in zip(out["context_turns"], out["context_speakers"]):
        pairs = list(zip(speakers, turns)) + [("", "")]  # the sample itself closes the list
        context.append(context_strings(pairs, n_turns, sep)[-1])
    out["context"] = context
    return out
