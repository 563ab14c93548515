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

A store extracted with `layers: all` can be split into its layers (`--split ssl=5`): each
layer is then scored alone, and "<layer on valid>" variants pick, in each fold, the layer whose
valid UAR is best (the test speaker never chooses).

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


def _fold_uar(blocks: list[np.ndarray], y: np.ndarray, split: np.ndarray, kind: str,
              mode: str) -> tuple[float, float]:
    """(valid UAR, test UAR) of one fold, C picked on valid."""
    train, valid, test = (split == "train"), (split == "valid"), (split == "test")
    if mode == "late":
        best = []
        for block in blocks:
            scores = {c: balanced_accuracy_score(y[valid], _classifier(kind, c).fit(block[train], y[train])
                                                 .predict(block[valid])) for c in C_GRID}
            best.append(_classifier(kind, max(scores, key=scores.get)).fit(block[train], y[train]))

        def fused(rows: np.ndarray) -> np.ndarray:
            probabilities = np.mean([m.predict_proba(b[rows]) for m, b in zip(best, blocks)], axis=0)
            return best[0].classes_[probabilities.argmax(axis=1)]

        return balanced_accuracy_score(y[valid], fused(valid)), balanced_accuracy_score(y[test], fused(test))
    weights = [1 / np.sqrt(b.shape[1]) if mode == "weighted" else 1.0 for b in blocks]
    x = np.concatenate([b * w for b, w in zip(blocks, weights)], axis=1)
    scores = {}
    for c in C_GRID:
        scores[c] = balanced_accuracy_score(y[valid], _classifier(kind, c).fit(x[train], y[train]).predict(x[valid]))
    model = _classifier(kind, max(scores, key=scores.get)).fit(x[train], y[train])
    return max(scores.values()), balanced_accuracy_score(y[test], model.predict(x[test]))


def split_layers(pooled: np.ndarray, n_layers: int) -> list[np.ndarray]:
    """Per-layer mean ‖ std blocks of a pooled `layers: all` store (mean of every layer, then std)."""
    half = pooled.shape[1] // 2
    width = half // n_layers
    return [np.concatenate([pooled[:, k * width:(k + 1) * width], pooled[:, half + k * width:half + (k + 1) * width]],
                           axis=1) for k in range(n_layers)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", default="results/emodb_whisper")
    parser.add_argument("--protocol", default="loso")
    parser.add_argument("--features", nargs="+", default=["whisper", "compare"])
    parser.add_argument("--fusions", nargs="+", default=["concat:logistic", "concat:svm", "weighted:logistic",
                                                          "weighted:svm", "late:logistic"],
                        help="fusion variants to run, as mode:classifier")
    parser.add_argument("--skip-singles", action="store_true", help="run only the fusion variants")
    parser.add_argument("--split", action="append", default=[], metavar="STORE=LAYERS",
                        help="a `layers: all` store to split into its layers (e.g. ssl=5)")
    args = parser.parse_args()
    corpus = Path(args.corpus)
    manifest = pd.read_parquet(corpus / "manifest.parquet").sort_values("utt_id")
    stores = {name: read_pooled(corpus / "features" / name) for name in args.features}
    keep = set(manifest["utt_id"])
    for pooled in stores.values():
        keep &= set(pooled.utt_ids)
    manifest = manifest[manifest["utt_id"].isin(keep)]
    speakers = manifest["speaker"].astype(str).to_numpy()
    splits = dict(item.split("=") for item in args.split)
    blocks, layered = {}, {}
    for name, pooled in stores.items():
        values = pd.DataFrame(pooled.values, index=pooled.utt_ids).loc[manifest["utt_id"]].to_numpy(np.float64)
        if name in splits:
            parts = split_layers(values, int(splits[name]))
            layered[name] = [f"{name}_l{k}" for k in range(len(parts))]
            blocks.update({f"{name}_l{k}": per_speaker(part, speakers) for k, part in enumerate(parts)})
        else:
            blocks[name] = per_speaker(values, speakers)
    y = manifest["emotion"].astype(str).to_numpy()
    folds = sorted(c for c in manifest.columns if c.startswith(f"split_{args.protocol}_"))
    print(f"{corpus.name}: {len(manifest)} utterances, {len(folds)} folds ({args.protocol}), "
          f"blocks {', '.join(f'{n} ({b.shape[1]})' for n, b in blocks.items())}; UAR % mean ± std over folds")
    # A variant: candidate block lists (more than one: the one with the best valid UAR is taken
    # in each fold, so a layer is chosen without looking at the test speaker), mode, classifier.
    singles = [n for n in blocks]
    variants = [] if args.skip_singles else \
        [([[n]], "concat", kind) for n in singles for kind in ("logistic", "svm")]
    for name, names in ({} if args.skip_singles else layered).items():
        variants.append(([[n] for n in names], "concat", "logistic"))
    others = [n for n in args.features if n not in layered]
    if len(args.features) > 1:
        candidates = [[*layer, *others] for layer in
                      ([[n] for n in layered[next(iter(layered))]] if layered else [[]])]
        for fusion in args.fusions:
            mode, kind = fusion.split(":")
            variants.append((candidates, mode, kind))
    for candidates, mode, kind in variants:
        uars = []
        for fold in folds:
            split = manifest[fold].to_numpy()
            scored = [_fold_uar([blocks[n] for n in names], y, split, kind, mode) for names in candidates]
            uars.append(scored[int(np.argmax([v for v, _ in scored]))][1])  # the best valid UAR's test UAR (ties: the first)
        label = "+".join(candidates[0]) if len(candidates) == 1 else \
            "+".join(["<layer on valid>"] + [n for n in candidates[0] if not any(n in v for v in layered.values())])
        label += "" if len(candidates[0]) == 1 else f" {mode}"
        print(f"  {label:<36} {kind:<9} {100 * np.mean(uars):5.1f} ± {100 * np.std(uars):4.1f}", flush=True)


if __name__ == "__main__":
    main()
