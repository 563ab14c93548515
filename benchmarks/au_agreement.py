"""Agreement of the landmark-based action units with the demo corpus's known face animation.

Builds a demo corpus (or reuses one in --work), runs the face extractor over its videos, the
actions stage over the face store, and prints per AU the Pearson r of our intensity with the
true movement and the presence precision / recall / F1 / kappa (see
`affectflow.evaluate.au_agreement` for the truth each AU is scored against).

    python benchmarks/au_agreement.py --work /tmp/au --utterances 40 --seed 1
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from affectflow.actions.stage import ActionsConfig, compute_actions
from affectflow.demo import build_demo_corpus
from affectflow.evaluate.au_agreement import au_agreement
from affectflow.features.base import ExtractionError, Utterance
from affectflow.features.extractors.face import FACE_FEATURE_NAMES, FACE_POOLED_NAMES
from affectflow.features.registry import build
from affectflow.features.store import Provenance, StoreRow, write_partition


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", required=True, help="folder for the corpus and the stores")
    parser.add_argument("--utterances", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--fps", type=float, default=5.0, help="face frames per second")
    parser.add_argument("--params", default="{}", help="actions config as JSON")
    args = parser.parse_args()
    root = Path(args.work) / f"demo_{args.utterances}_{args.seed}"
    manifest = root / "manifest.csv"
    if not manifest.exists():
        build_demo_corpus(root, n_utterances=args.utterances, seed=args.seed)
    frame = pd.read_csv(manifest)
    face = build("face", {"fps": args.fps})
    rows, start = [], time.perf_counter()
    for r in frame.itertuples():
        utt = Utterance(r.utt_id, str(root / r.audio_path), str(root / r.video_path), 0.0, float(r.end_s),
                        r.transcript, speaker=r.speaker)
        try:
            rows.append(StoreRow(r.utt_id, "", face.extract(utt)))
        except ExtractionError as error:
            rows.append(StoreRow(r.utt_id, "", None, error.reason))
    face_s = time.perf_counter() - start
    write_partition(root / "face.parquet", rows, Provenance("face", face.version, {"fps": args.fps}, "demo",
                                                            0, FACE_FEATURE_NAMES, FACE_POOLED_NAMES))
    frame[["utt_id", "speaker"]].to_parquet(root / "manifest.parquet")
    start = time.perf_counter()
    summary = compute_actions([root / "face.parquet"], root / "manifest.parquet", root / "au.parquet",
                              ActionsConfig.from_params(json.loads(args.params)), "demo")
    actions_s = time.perf_counter() - start
    result = au_agreement(root / "au.parquet", root / "face")
    print(f"demo corpus: {args.utterances} utterances, seed {args.seed}, face at {args.fps:g} frames/s; "
          f"face {face_s:.1f} s, actions {actions_s:.2f} s; {summary['with_face']} with a face")
    print(f"{'AU':5} {'truth':10} {'frames':>6} {'r':>6} {'truth %':>8} {'ours %':>7} {'prec':>5} {'rec':>5} {'F1':>5} {'kappa':>6}")
    for au, a in result["aus"].items():
        print(f"{au:5} {a['truth']:10} {a['frames']:6d} {a['pearson_r']:6.2f} {100 * a['truth_present']:8.1f} "
              f"{100 * a['present']:7.1f} {a['precision']:5.2f} {a['recall']:5.2f} {a['f1']:5.2f} {a['kappa']:6.2f}")


if __name__ == "__main__":
    main()
