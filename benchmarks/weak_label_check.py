"""Score a weak-label table against the target corpus's real labels (the controlled check where
the truth is known, e.g. labelers trained on a second demo corpus built with another seed).

    python benchmarks/weak_label_check.py results/demo/weak/emotion_w.parquet \\
        results/demo/manifest.parquet emotion

Prints accuracy, UAR and the majority-class baseline per split, on the rows with a label. It
reads the labels only here, after the weak labels were made.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from affectflow.evaluate.metrics import multiclass_metrics
from affectflow.train.weak import read_weak_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weak")
    parser.add_argument("manifest")
    parser.add_argument("label")
    args = parser.parse_args()
    meta, table = read_weak_table(args.weak)
    frame = pd.read_parquet(args.manifest).set_index("utt_id")
    classes = meta["classes"] or ["0", "1"]
    print(f"{args.weak}: task {meta['task']} from {meta['from_corpus']}/{meta['model']} "
          f"({meta['n_models']} models), confidence {meta['confidence']:.3f}")
    for split in ("train", "valid", "test", "all"):
        rows = [u for u in table if u in frame.index and (split == "all" or frame.loc[u, "split"] == split)]
        truth = [frame.loc[u, args.label] for u in rows]
        keep = [i for i, t in enumerate(truth) if isinstance(t, str) and t in classes
                or not isinstance(t, str) and pd.notna(t)]
        if not keep:
            continue
        y = np.array([classes.index(truth[i]) if isinstance(truth[i], str) else int(truth[i]) for i in keep])
        scores = np.array([table[rows[i]] for i in keep])
        pred = scores.argmax(axis=1) if scores.ndim == 2 else (scores >= 0.5).astype(int)
        m = multiclass_metrics(y, pred)
        majority = np.bincount(y).max() / len(y)
        print(f"  {split:<5} n={len(y):4d}  acc {100 * m['acc']:.1f} %  uar {100 * m['uar']:.1f} %  "
              f"(majority class {100 * majority:.1f} %)")


if __name__ == "__main__":
    main()
