"""`affectflow predict --model <folder> --input clip.mp4 ...`: one command on new media files.

The files become a one-shard corpus in a work folder (utterance id = file name, split test);
rows without a transcript get offline ASR when the model reads an extractor that needs text;
then media prep and every extractor the model's features came from run with the parameters
recorded in the model (upstream stores first), the dataset is assembled with the model's
modality views, and the provenance check of `predict_dataset` applies. Media prep uses the
default `media` parameters (a model does not record them). Rejected files are reported with
their reason; the others get per-task predictions.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from affectflow.features.registry import MEDIA_PREP, get_extractor, upstream
from affectflow.features.runner import run_extractor_shard
from affectflow.ingest.manifest import IngestOptions
from affectflow.ingest.run import ingest_corpus
from affectflow.predict.corpus import load_models, mean_outputs
from affectflow.train.dataset import assemble_dataset, load_all_rows

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v"}


def _manifest(inputs: Sequence[str | os.PathLike[str]], path: Path) -> dict[str, str]:
    rows, ids = [], {}
    for media in map(Path, inputs):
        if not media.exists():
            raise FileNotFoundError(f"{media}: no such file")
        utt = media.stem
        n = 2
        while utt in ids:
            utt, n = f"{media.stem}_{n}", n + 1
        ids[utt] = str(media)
        column = "video_path" if media.suffix.lower() in VIDEO_SUFFIXES else "audio_path"
        rows.append({"utt_id": utt, "speaker": utt, column: str(media.resolve()), "split": "test"})
    pd.DataFrame(rows).to_csv(path, index=False)
    return ids


def predict_clips(model_paths: Sequence[str | os.PathLike[str]],
                  inputs: Sequence[str | os.PathLike[str]], work_dir: str | None = None,
                  device: str = "cpu") -> list[dict[str, Any]]:
    """Per input file: {utt_id, input, predictions: {task: {class: p} | value}} or a rejection."""
    models = load_models(model_paths)
    model = models[0]
    work = Path(work_dir or tempfile.mkdtemp(prefix="affectflow_predict_"))
    work.mkdir(parents=True, exist_ok=True)
    ids = _manifest(inputs, work / "input.csv")
    extractors = upstream(sorted({s["extractor"] for s in model.sources.values()}))
    source = work / "input.csv"
    reasons: dict[str, str] = {}
    if any("transcript" in get_extractor(e).inputs for e in extractors):
        from affectflow.transcribe.run import fill_transcripts

        counts = fill_transcripts(source, work / "transcribed.csv", work / "words", "auto")
        reasons.update({f["utt_id"]: f"transcribe: {f['reason']}" for f in counts["failures"]})
        source = work / "transcribed.csv"
    manifest = work / "manifest.parquet"
    ingest_corpus(source, manifest, work / "rejected_ingest.parquet",
                  IngestOptions("predict", 1, default_split="test"))
    stores = work / "features"
    params = {s["extractor"]: s.get("params", {}) for s in model.sources.values()}
    for name in extractors:
        extractor = get_extractor(name)
        upstreams = {u: str(stores / u / "shard=0.parquet") for u in extractor.stores()}
        recorded = params.get(name, {}) if name != MEDIA_PREP else {}
        stats = run_extractor_shard(manifest, 0, name, recorded, stores / name / "shard=0.parquet",
                                    None, upstreams, "predict")
        reasons.update({u: f"{name}: {r}" for u, r in stats.rejected.items()})
    modality_stores = {m: [str(stores / s["extractor"] / "shard=0.parquet")]
                       for m, s in model.sources.items()}
    assemble_dataset(manifest, modality_stores, {}, work / "dataset.npz", views=model.views)
    utt_ids, features, sources = load_all_rows(work / "dataset.npz", model.modalities)
    for m in models:
        m.check_sources(sources, "the input files")
    records = []
    outputs = mean_outputs(models, features, device)[1] if utt_ids else {}
    for i, utt in enumerate(utt_ids):
        predictions: dict[str, Any] = {}
        for task, spec in model.specs.items():
            y = outputs[spec.prediction_key][i]
            if spec.kind == "categorical":
                predictions[task] = {c: float(p) for c, p in zip(spec.class_names, y)}
            elif spec.kind == "binary":
                predictions[task] = {"1": float(y)}
            else:
                predictions[task] = float(y)
        records.append({"utt_id": utt, "input": ids[utt], "models": len(models),
                        "predictions": predictions})
    rejected = pd.read_parquet(work / "rejected_ingest.parquet")
    for row in rejected.itertuples():
        reasons.setdefault(str(row.utt_id), f"ingest: {row.reason}")
    for utt in sorted(set(ids) - set(utt_ids)):
        records.append({"utt_id": utt, "input": ids[utt],
                        "rejected": reasons.get(utt, "no features in every modality the model reads")})
    return records
