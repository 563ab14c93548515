"""Print the weak-label MTL tables (paper 000, Table 4) of a results folder: every model of MUStARD
and MELD with its strong (S) and weak (W) tasks, the main task's metrics (mean ± std over seeds),
and the paired bootstrap CIs of each challenger against its single-task baseline.

Run after `snakemake --configfile configs/weak_labels.yaml` (results/) or
`configs/weak_labels_mpnet.yaml` (results/mpnet):

    python benchmarks/weak_label_tables.py --results results/mpnet
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

MAIN = {"mustard": ("sarcasm", ["f1_weighted", "acc", "f1", "precision_weighted", "recall_weighted"]),
        "meld": ("emotion", ["f1_weighted", "acc", "uar", "f1_macro"])}


def cell(value: dict | None) -> str:
    if not value or value.get("mean") is None:
        return "n/a"
    return f"{100 * value['mean']:.1f} ± {100 * (value.get('std') or 0.0):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    args = parser.parse_args()
    for corpus, (task, names) in MAIN.items():
        path = Path(args.results) / corpus / "metrics.json"
        if not path.exists():
            print(f"\n{corpus}: no {path}")
            continue
        metrics = json.loads(path.read_text())
        labels = metrics.get("@labels", {})
        print(f"\n{corpus}, {task} (test; % mean ± std over seeds)")
        print(f"{'model':<16} {'tasks':<56} " + " ".join(f"{n:>18}" for n in names))
        for model, by_task in sorted(metrics.items()):
            if model.startswith("@") or task not in by_task:
                continue
            tasks = " + ".join(f"{t} ({k})" for t, k in sorted(labels.get(model, {}).items(),
                                                                key=lambda item: (item[0] != task, item[0])))
            print(f"{model:<16} {tasks:<56} " + " ".join(f"{cell(by_task[task].get(n)):>18}" for n in names))
        for c in metrics.get("@comparisons", []):
            print(f"  {c['challenger']:<16} − {c['baseline']:<10} {c['metric']}: {100 * c['diff']:+.2f} "
                  f"[{100 * c['low']:+.2f}, {100 * c['high']:+.2f}] {'significant' if c['significant'] else 'n.s.'}"
                  f" (n={c['n']}, {c['resamples']} resamples)")
        for check in metrics.get("@weak_checks", []):
            s = check["splits"]["all"]
            print(f"  weak {check['name']} vs own labels: acc {100 * s['acc']:.1f} (majority {100 * s['majority']:.1f})")
    for corpus in ("mustard", "meld"):
        for weak in sorted((Path(args.results) / corpus / "weak").glob("*.parquet")):
            from affectflow.train.weak import read_weak_table

            meta, table = read_weak_table(weak)
            print(f"weak labels {corpus}/{weak.stem}: from {meta['from_corpus']}/{meta['model']} "
                  f"({meta['n_models']} models), confidence {meta['confidence']:.3f}, {len(table)} utterances")


if __name__ == "__main__":
    main()
