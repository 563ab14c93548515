"""Fusion variants of pooled feature stores on a corpus's cross-validation protocol, in one run.

For the EmoDB (or RAVDESS) stores that `configs/emodb_whisper.yaml` builds, it scores
concatenation against block-weighted concatenation and late fusion, with the workflow's own
protocol: the manifest's fold columns `split_<protocol>_<k>` (train / valid / test), features
z-normalised per speaker (no labels), C picked on each fold's valid split, UAR on its test split,
averaged over folds. Every variant run is printed, not only the best.

* concat: the blocks side by side (what `svm_whisper_compare` does);
* weighted: each block divided by the square root of its width, so every block has the same
  total variance (6,373 ComParE dimensions no longer outweigh 768 Whisper ones);
* late: the mean of the per-block classifiers' class probabilities (each with its own C).

Classifiers: class-balanced logistic regression, and a linear SVM (`SVC(kernel="linear")`, the
workflow's svm) for concat and weighted.

    python benchmarks/fusion_variants.py [--corpus results/emodb_whisper] [--protocol loso]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.svm import SVC

from affectflow.features.reader import read_pooled

from _common import per_speaker

C_GRID = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)



def _classifier(kind: str, c: float):
    if kind == "svm":
        return SVC(kernel="linear", C=c, class_weight="balanced", probability=False)
    return LogisticRegression(C=c, class_weight="balanced", max_iter=3000)


def _fold_uar(blocks: list[np.ndarray], y: np.ndarray, split: np.ndarray, kind: str, mode: str) -> float:
    train, valid, test = (split == "train"), (split == "valid"), (split == "test")
    if mode == "late":
        best = []
        for block in blocks:
            scores = {c: balanced_accuracy_score(y[valid], _classifier(kind, c).fit(block[train], y[train])
                                                 .predict(block[valid])) for c in C_GRID}
            best.append(_classifier(kind, max(scores, key=scores.get)).fit(block[train], y[train]))
        probabilities = np.mean([m.predict_proba(b[test]) for m, b in zip(best, blocks)], axis=0)
        return balanced_accuracy_score(y[test], best[0].classes_[probabilities.argmax(axis=1)])
    weights = [1 / np.sqrt(b.shape[1]) if mode == "weighted" else 1.0 for b in blocks]
    x = np.concatenate([b * w for b, w in zip(blocks, weights)], axis=1)
    scores = {}
    for c in C_GRID:
        scores[c] = balanced_accuracy_score(y[valid], _classifier(kind, c).fit(x[train], y[train]).predict(x[valid]))
    model = _classifier(kind, max(scores, key=scores.get)).fit(x[train], y[train])
    return balanced_accuracy_score(y[test], model.predict(x[test]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="results/emodb_whisper")
    parser.add_argument("--protocol", default="loso")
    parser.add_argument("--features", nargs="+", default=["whisper", "compare"])
    args = parser.parse_args()
    corpus = Path(args.corpus)
    manifest = pd.read_parquet(corpus / "manifest.parquet").sort_values("utt_id")
    stores = {name: read_pooled(corpus / "features" / name) for name in args.features}
    keep = set(manifest["utt_id"])
    for pooled in stores.values():
        keep &= set(pooled.utt_ids)
    manifest = manifest[manifest["utt_id"].isin(keep)]
    speakers = manifest["speaker"].astype(str).to_numpy()
    blocks = {}
    for name, pooled in stores.items():
        frame = pd.DataFrame(pooled.values, index=pooled.utt_ids).loc[manifest["utt_id"]]
        blocks[name] = per_speaker(frame.to_numpy(np.float64), speakers)
    y = manifest["emotion"].astype(str).to_numpy()
    folds = sorted(c for c in manifest.columns if c.startswith(f"split_{args.protocol}_"))
    print(f"{corpus.name}: {len(manifest)} utterances, {len(folds)} folds ({args.protocol}), "
          f"blocks {', '.join(f'{n} ({b.shape[1]})' for n, b in blocks.items())}; UAR % mean ± std over folds")
    variants = [([n], "concat", kind) for n in args.features for kind in ("logistic", "svm")]
    if len(args.features) > 1:
        variants += [(args.features, mode, kind) for mode in ("concat", "weighted") for kind in ("logistic", "svm")]
        variants += [(args.features, "late", "logistic")]
    for names, mode, kind in variants:
        uars = [_fold_uar([blocks[n] for n in names], y, manifest[f].to_numpy(), kind, mode) for f in folds]
        label = "+".join(names) + ("" if len(names) == 1 else f" {mode}")
        print(f"  {label:<28} {kind:<9} {100 * np.mean(uars):5.1f} ± {100 * np.std(uars):4.1f}", flush=True)


if __name__ == "__main__":
    main()
