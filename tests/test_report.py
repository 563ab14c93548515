"""The report's HTML tables: metrics with their protocol and fold sizes, rejected utterances."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from affectflow.ingest.run import write_rejected
from affectflow.report.tables import write_report_tables


def _corpus(tmp_path: Path) -> dict[str, str]:
    """Six utterances of three speakers with a 3-fold leave-one-speaker-out scheme; s3b rejected."""
    ids = ["s1a", "s1b", "s2a", "s2b", "s3a", "s3b"]
    speakers = [i[:2] for i in ids]
    folds = {}
    for k, test in enumerate(("s1", "s2", "s3")):
        valid = ("s1", "s2", "s3")[(k + 1) % 3]
        folds[f"split_loso_{k:02d}"] = ["test" if s == test else "valid" if s == valid else "train"
                                        for s in speakers]
    manifest = pd.DataFrame({"utt_id": ids, "speaker": speakers, "split": "train", **folds})
    manifest.to_parquet(tmp_path / "manifest.parquet")
    write_rejected(pd.DataFrame({"utt_id": ["s3b"], "stage": ["egemaps"], "row": [None], "field": [""],
                                 "reason": ["no speech"]}), tmp_path / "rejected.parquet")
    metrics = {"svm": {"emotion": {"uar": {"mean": 0.8125, "std": 0.0}, "acc": {"mean": None, "std": None}}}}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "svm_curves.png").write_bytes(b"png")
    out = tmp_path / "report"
    return {"metrics_path": str(tmp_path / "metrics.json"), "rejected_path": str(tmp_path / "rejected.parquet"),
            "manifest_path": str(tmp_path / "manifest.parquet"), "figures_in": str(tmp_path / "figures"),
            "metrics_out": str(out / "metrics.html"), "rejected_out": str(out / "rejected.html"),
            "figures_out": str(out / "figures")}


def test_cross_validated_report_states_protocol_and_fold_sizes(tmp_path: Path) -> None:
    paths = _corpus(tmp_path)
    write_report_tables("toy", protocol="loso", **paths)
    page = Path(paths["metrics_out"]).read_text()
    assert "Protocol: <b>loso</b>, 3 folds" in page and "0.812 ± 0.000" in page and "n/a" in page
    rows = {m[0]: [int(v) for v in m[1:]] for m in re.findall(
        r"<th>(split_loso_\d+)</th>\s*<td>(\d+)</td>\s*<td>(\d+)</td>\s*<td>(\d+)</td>", page)}
    # train / valid / test per fold; the rejected utterance (s3b) counts in no fold
    assert rows == {"split_loso_00": [1, 2, 2], "split_loso_01": [2, 1, 2], "split_loso_02": [2, 2, 1]}
    assert "no speech" in Path(paths["rejected_out"]).read_text()
    assert (Path(paths["figures_out"]) / "svm_curves.png").exists()
    with pytest.raises(ValueError, match="split_cv_"):
        write_report_tables("toy", protocol="cv", **paths)


def test_single_split_report_counts_the_split_column(tmp_path: Path) -> None:
    paths = _corpus(tmp_path)
    write_report_tables("toy", **paths)
    page = Path(paths["metrics_out"]).read_text()
    assert "manifest's own train/valid/test split" in page and "train: 5, valid: 0, test: 0" in page
