"""Cross-corpus emotion recognition: train on EmoDB, test on RAVDESS, and the reverse.

On the six classes both corpora share (neutral, happiness, sadness, anger, fear, disgust; RAVDESS
calm and surprised and EmoDB boredom are left out), from the pooled feature stores the real-data
configs build (`configs/emodb_whisper.yaml`, `configs/ravdess_whisper.yaml`). Features are
z-normalised per speaker within each corpus (no labels used, as the configs do), then a
class-balanced logistic regression is trained on one corpus, its C chosen by speaker-grouped
5-fold cross-validation on that corpus (UAR), and tested on every utterance of the other. For
reference, the same recipe within each corpus (speaker-grouped 5-fold, six classes) is printed in
the same run. UAR = balanced accuracy (scikit-learn).

    python benchmarks/cross_corpus.py [--results results] [--features whisper compare]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import GroupKFold

from affectflow.features.reader import read_pooled

from _common import per_speaker

SHARED = ["neutral", "happiness", "sadness", "anger", "fear", "disgust"]
TO_SHARED = {"emodb": {c: c for c in SHARED},
             "ravdess": {"neutral": "neutral", "happy": "happiness", "sad": "sadness", "angry": "anger",
                         "fearful": "fear", "disgust": "disgust"}}
C_GRID = (0.001, 0.01, 0.1, 1.0)


def load(corpus_dir: Path, kind: str, features: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X, y as shared class index, speakers) of the utterances in a shared class with every feature."""
    manifest = pd.read_parquet(corpus_dir / "manifest.parquet")
    manifest = manifest[manifest["emotion"].map(TO_SHARED[kind]).notna()]
    blocks, ids = [], None
    for name in features:
        pooled = read_pooled(corpus_dir / "features" / name)
        frame = pd.DataFrame(pooled.values, index=pooled.utt_ids)
        ids = frame.index if ids is None else ids.intersection(frame.index)
        blocks.append(frame)
    manifest = manifest[manifest["utt_id"].isin(ids)].sort_values("utt_id")
    x = np.concatenate([b.loc[manifest["utt_id"]].to_numpy(np.float64) for b in blocks], axis=1)
    y = manifest["emotion"].map(TO_SHARED[kind]).map(SHARED.index).to_numpy()
    speakers = manifest["speaker"].astype(str).to_numpy()
    return per_speaker(x, speakers), y, speakers



def _model(c: float) -> LogisticRegression:
    return LogisticRegression(C=c, class_weight="balanced", max_iter=2000)


def pick_c(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> tuple[float, float]:
    """The C with the best speaker-grouped 5-fold UAR, and that UAR."""
    scores = {}
    for c in C_GRID:
        predictions = np.empty_like(y)
        for train, test in GroupKFold(5).split(x, y, groups):
            predictions[test] = _model(c).fit(x[train], y[train]).predict(x[test])
        scores[c] = balanced_accuracy_score(y, predictions)
    best = max(scores, key=scores.get)
    return best, scores[best]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default="results")
    parser.add_argument("--emodb", default="emodb_whisper")
    parser.add_argument("--ravdess", default="ravdess_whisper")
    parser.add_argument("--features", nargs="+", default=["whisper", "compare"])
    args = parser.parse_args()
    results = Path(args.results)
    sets = [[f] for f in args.features] + ([args.features] if len(args.features) > 1 else [])
    print(f"shared classes: {', '.join(SHARED)}; UAR (chance {100 / len(SHARED):.1f} %)")
    print(f"{'features':<18} {'EmoDB in-corpus':>16} {'RAVDESS in-corpus':>18} "
          f"{'EmoDB→RAVDESS':>14} {'RAVDESS→EmoDB':>14}")
    for features in sets:
        emodb = load(results / args.emodb, "emodb", features)
        ravdess = load(results / args.ravdess, "ravdess", features)
        cells = []
        fitted = {}
        for name, (x, y, groups) in (("emodb", emodb), ("ravdess", ravdess)):
            c, uar = pick_c(x, y, groups)
            fitted[name] = _model(c).fit(x, y)
            cells.append(f"{100 * uar:.1f} (C={c:g})")
        for source, (x, y, _) in (("emodb", ravdess), ("ravdess", emodb)):
            cells.append(f"{100 * balanced_accuracy_score(y, fitted[source].predict(x)):.1f}")
        print(f"{'+'.join(features):<18} {cells[0]:>16} {cells[1]:>18} {cells[2]:>14} {cells[3]:>14}",
              flush=True)
    print(f"utterances: EmoDB {len(emodb[1])}, RAVDESS {len(ravdess[1])} (six shared classes)")


if __name__ == "__main__":
    main()
