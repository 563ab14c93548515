"""Print the real-data result tables (EmoDB, RAVDESS, MELD, MUStARD) from results/<corpus>/metrics.json.

Run after `snakemake --configfile configs/<dataset>.yaml`; corpora without results are listed
as missing. Compare across commits by keeping this script's output.

    python benchmarks/real_data_tables.py [--results results]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TABLES = {
    "EmoDB (audio, leave-one-speaker-out, 7 classes)": (["emodb", "emodb_whisper", "emodb_ssl"], "emotion",
                                                        ["uar", "acc", "f1_macro"]),
    "RAVDESS (speech audio, 6 folds of 4 actors, 8 classes)": (["ravdess", "ravdess_whisper"], "emotion",
                                                               ["uar", "acc", "f1_macro"]),
    "MELD (text, official test split, 7-class emotion)": (["meld", "meld_context"], "emotion",
                                                         ["f1_weighted", "acc", "uar"]),
    "MELD (text, official test split, 3-class sentiment)": (["meld", "meld_context"], "sentiment_class",
                                                           ["f1_weighted", "acc", "uar"]),
    "MUStARD (text, 5 official folds, sarcasm; weighted P/R/F1 as its authors report)": (
        ["mustard", "mustard_context"], "sarcasm",
        ["precision_weighted", "recall_weighted", "f1_weighted", "f1", "acc"]),
}


def cell(value: dict | None) -> str:
    if not value or value.get("mean") is None:
        return "n/a"
    std = value.get("std")
    return f"{100 * value['mean']:.1f} ± {0.0 if std is None else 100 * std:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default="results")
    args = parser.parse_args()
    for title, (corpora, task, metrics) in TABLES.items():
        print(f"\n{title}: % mean ± std over seeds")
        widths = [max(13, len(m)) for m in metrics]
        print(f"{'corpus':<16} {'model':<20} " + " ".join(f"{m:>{w}}" for m, w in zip(metrics, widths)))
        for corpus in corpora:
            path = Path(args.results) / corpus / "metrics.json"
            if not path.exists():
                config = next((c for c in (f"configs/{corpus}.yaml", f"configs/{corpus.split('_')[0]}.yaml")
                               if Path(c).exists()), "configs/<dataset>.yaml")
                print(f"{corpus:<16} (no results: snakemake --configfile {config})")
                continue
            for model, by_task in json.loads(path.read_text()).items():
                if model.startswith("@"):
                    continue
                values = by_task.get(task, {})
                print(f"{corpus:<16} {model:<20} "
                      + " ".join(f"{cell(values.get(m)):>{w}}" for m, w in zip(metrics, widths)))


if __name__ == "__main__":
    main()
