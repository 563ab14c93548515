"""Agreement of the landmark-based action units with the demo corpus's true face animation.

The demo generator knows what each rendered frame shows (`affectflow.demo.face.track_truth`,
written to ``<corpus source>/face/<utt_id>.json``): mouth-corner lift (smile), inner brows up,
brows lowered, eyelids narrowed and the jaw. Each maps to the AU that movement is:

| truth                 | AU   | present when (source pixels / share of the eye)   |
|-----------------------|------|---------------------------------------------------|
| smile > 0             | AU12 | ≥ 3.5 (half a happy face's full smile)            |
| smile < 0             | AU15 | ≤ −2.5 (half a sad face's frown)                  |
| inner_up              | AU01 | ≥ 3.25 (half of sad's)                            |
| lower                 | AU04 | ≥ 4 (half of angry's)                             |
| squint                | AU07 | ≥ 0.2 (half of angry's)                           |
| jaw                   | AU26 | ≥ 1 (half-way from lips pressed to the loudest)   |

Per AU: Pearson r between the truth and our intensity over all face frames (threshold-free),
and, for presence, precision, recall, F1 and Cohen's kappa (scikit-learn) against the thresholded
truth. The truth is read at each face frame's time (nearest rendered frame).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pyarrow.parquet as pq

from affectflow.actions.au import AU_COLUMNS


@dataclass(frozen=True)
class TruthMap:
    au: str
    track: str
    sign: float
    threshold: float


TRUTH: tuple[TruthMap, ...] = (
    TruthMap("AU12", "smile", 1.0, 3.5),
    TruthMap("AU15", "smile", -1.0, 2.5),
    TruthMap("AU01", "inner_up", 1.0, 3.25),
    TruthMap("AU04", "lower", 1.0, 4.0),
    TruthMap("AU07", "squint", 1.0, 0.2),
    TruthMap("AU26", "jaw", 1.0, 1.0),
)


def _frames(actions: str | os.PathLike[str]) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """utt_id → (times, values (T, 34), face_found) of the accepted rows of an actions store."""
    table = pq.read_table(actions, columns=["utt_id", "ok", "times", "values", "x_face_found"]).to_pydict()
    out = {}
    for i, utt_id in enumerate(table["utt_id"]):
        if table["ok"][i]:
            values = np.asarray(table["values"][i], np.float64).reshape(-1, len(AU_COLUMNS))
            out[utt_id] = (np.asarray(table["times"][i], np.float64), values,
                           np.asarray(table["x_face_found"][i], bool))
    return out


def au_agreement(actions: str | os.PathLike[str], truth_dir: str | os.PathLike[str],
                 utt_ids: Sequence[str] | None = None) -> dict[str, Any]:
    """Per-AU agreement of an actions store with the demo truth files in `truth_dir`."""
    from sklearn.metrics import cohen_kappa_score, precision_recall_fscore_support

    rows = _frames(actions)
    wanted = list(rows) if utt_ids is None else [u for u in utt_ids if u in rows]
    ours: dict[str, list[np.ndarray]] = {t.au: [] for t in TRUTH}
    true: dict[str, list[np.ndarray]] = {t.au: [] for t in TRUTH}
    for utt_id in wanted:
        path = os.path.join(truth_dir, f"{utt_id}.json")
        if not os.path.exists(path):
            raise FileNotFoundError(f"{path}: no true face track for {utt_id} (not a demo corpus?)")
        truth = json.loads(open(path).read())
        times, values, found = rows[utt_id]
        n = len(truth["jaw"])
        at = np.clip(np.round(times[found] * truth["fps"]).astype(int), 0, n - 1)
        for t in TRUTH:
            ours[t.au].append(values[found, AU_COLUMNS.index(f"{t.au}_r")])
            true[t.au].append(t.sign * np.asarray(truth[t.track], np.float64)[at])
    result: dict[str, Any] = {"utterances": len(wanted), "aus": {}}
    for t in TRUTH:
        x, y = np.concatenate(ours[t.au]), np.concatenate(true[t.au])
        c = AU_COLUMNS.index(f"{t.au}_c")
        present = np.concatenate([rows[u][1][rows[u][2], c] for u in wanted]) > 0.5
        truth_present = y >= t.threshold
        p, r, f, _ = precision_recall_fscore_support(truth_present, present, average="binary", zero_division=0)
        result["aus"][t.au] = {
            "truth": f"{'+' if t.sign > 0 else '-'}{t.track}", "frames": int(len(x)),
            "pearson_r": float(np.corrcoef(x, y)[0, 1]) if x.std() > 0 and y.std() > 0 else float("nan"),
            "truth_present": float(truth_present.mean()), "present": float(present.mean()),
            "precision": float(p), "recall": float(r), "f1": float(f),
            "kappa": float(cohen_kappa_score(truth_present, present)),
        }
    return result
