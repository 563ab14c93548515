"""Print the sentiment zoo's MOSI-style table from results/<corpus>/metrics.json.

Acc2 and F1 both ways (has-0: negative vs non-negative; non-0: zeros dropped, negative vs
positive), Acc5, Acc7, MAE, Corr; mean ± std over seeds. Run after the corpus's snakemake run:

    python benchmarks/zoo_table.py --results results/zoo_demo --corpus demo [--task sentiment]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

METRICS = [("acc2_has0", "Acc2 has0", 100), ("acc2_non0", "Acc2 non0", 100), ("f1_has0", "F1 has0", 100),
           ("f1_non0", "F1 non0", 100), ("acc5", "Acc5", 100), ("acc7", "Acc7", 100), ("mae", "MAE", 1),
           ("corr", "Corr", 1)]


def cell(value: dict | None, scale: float) -> str:
    if not value or value.get("mean") is None:
        return "n/a"
    std = value.get("std") or 0.0
    digits = 1 if scale == 100 else 3
    return f"{scale * value['mean']:.{digits}f} ± {scale * std:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results/zoo_demo")
    parser.add_argument("--corpus", default="demo")
    parser.add_argument("--task", default="sentiment")
    args = parser.parse_args()
    path = Path(args.results) / args.corpus / "metrics.json"
    metrics = json.loads(path.read_text())
    print(f"{args.corpus}, {args.task}: mean ± std over seeds ({path})")
    print(f"{'model':<12} " + " ".join(f"{label:>13}" for _, label, _ in METRICS))
    for model, by_task in metrics.items():
        if model.startswith("@") or args.task not in by_task:
            continue
        values = by_task[args.task]
        print(f"{model:<12} " + " ".join(f"{cell(values.get(key), scale):>13}" for key, _, scale in METRICS))


if __name__ == "__main__":
    main()
