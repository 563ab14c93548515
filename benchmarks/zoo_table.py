"""Print the sentiment zoo's MOSI-style table from results/<corpus>/metrics.json.

Acc2 and F1 both ways (has-0: negative vs non-negative; non-0: zeros dropped, negative vs
positive), Acc5, Acc7, MAE, Corr; mean ± std over seeds. Run after the corpus's snakemake run:

    python benchmarks/zoo_table.py --results results/zoo_demo --corpus demo [--task sentiment]

`--bins T1 [T2 ...]` also scores the saved test predictions as classes cut at those thresholds
(accuracy and weighted F1 per seed, then mean ± std): ICT-MMMO's binary (`--bins 3.5`, as MFN's
authors score it) or YouTube's three classes (`--bins -0.5 0.5`) from a regression model.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

METRICS = [("acc2_has0", "Acc2 has0", 100), ("acc2_non0", "Acc2 non0", 100), ("f1_has0", "F1 has0", 100),
           ("f1_non0", "F1 non0", 100), ("acc5", "Acc5", 100), ("acc7", "Acc7", 100), ("mae", "MAE", 1),
           ("corr", "Corr", 1)]


def cell(value: dict | None, scale: float) -> str:
    if not value or value.get("mean") is None:
        return "n/a"
    std = value.get("std") or 0.0
    digits = 1 if scale == 100 else 3
    return f"{scale * value['mean']:.{digits}f} ± {scale * std:.{digits}f}"


def binned(results: Path, corpus: str, model: str, task: str, bins: list[float]) -> str:
    """Accuracy and weighted F1 of the test predictions cut at `bins`, mean ± std over seeds."""
    accs, f1s = [], []
    for path in sorted((results / corpus / "models" / model).glob("*/seed=*/result.json")):
        result = json.loads(path.read_text())
        y = np.asarray(result["test_labels"][task], float)
        pred = np.asarray(result["test_predictions"][task], float)
        ok = np.isfinite(y)
        y_cls, p_cls = np.digitize(y[ok], bins, right=True), np.digitize(pred[ok], bins, right=True)  # class k: above k cuts
        accs.append(100 * accuracy_score(y_cls, p_cls))
        f1s.append(100 * f1_score(y_cls, p_cls, average="weighted", zero_division=0.0))
    if not accs:
        return "n/a"
    return f"{np.mean(accs):.1f} ± {np.std(accs, ddof=1) if len(accs) > 1 else 0:.1f} / " \
           f"{np.mean(f1s):.1f} ± {np.std(f1s, ddof=1) if len(f1s) > 1 else 0:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results/zoo_demo")
    parser.add_argument("--corpus", default="demo")
    parser.add_argument("--task", default="sentiment")
    parser.add_argument("--bins", type=float, nargs="*", default=[])
    args = parser.parse_args()
    path = Path(args.results) / args.corpus / "metrics.json"
    metrics = json.loads(path.read_text())
    print(f"{args.corpus}, {args.task}: mean ± std over seeds ({path})")
    extra = f"  acc / F1w cut at {args.bins}" if args.bins else ""
    print(f"{'model':<12} " + " ".join(f"{label:>13}" for _, label, _ in METRICS) + extra)
    for model, by_task in metrics.items():
        if model.startswith("@") or args.task not in by_task:
            continue
        values = by_task[args.task]
        binned_cell = (f"  {binned(Path(args.results), args.corpus, model, args.task, args.bins)}"
                       if args.bins else "")
        print(f"{model:<12} " + " ".join(f"{cell(values.get(key), scale):>13}" for key, _, scale in METRICS)
              + binned_cell)


if __name__ == "__main__":
    main()
