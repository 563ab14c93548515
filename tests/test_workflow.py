"""End-to-end DAG runs: the demo corpus to a report, and the incremental-build facts (counts).

These run the real Snakefile with `snakemake` in a scratch folder (minutes, not seconds).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml
from dag_helpers import base_config, planned_jobs, processed_since, snakemake, stats_since
from feature_digest import build_digest, differences

from affectflow.features.extractors.face import FACE_FEATURE_NAMES

pytestmark = pytest.mark.slow


def _as_face_v1(digest: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The digest with face version 2's four appended measures (nose_length ... lip_thickness)
    left out: the reference predates them, and the columns both versions have must agree."""
    n1, n2 = 15, len(FACE_FEATURE_NAMES)
    pooled = [0, *range(1, n1), *range(n2, n2 + n1 - 1)]  # ratio, the v1 means, the v1 stds
    out = {}
    for key, value in digest.items():
        field = key.rsplit("/", 1)[1]
        if key.startswith("face/") and field in ("mean", "std"):
            value = value[:n1]
        elif key.startswith("face/") and field == "pooled":
            value = value[pooled]
        out[key] = value
    return out


def test_demo_corpus_to_report(tmp_path: Path) -> None:
    config = base_config(seeds=[0, 1], hparams={"max_epochs": 4, "patience": 2, "batch_size": 8, "hidden": 16})
    config["corpora"]["demo"]["generator"].update(n_utterances=24, n_speakers=4)
    config["corpora"]["demo"]["shards"] = 2
    config["extractors"]["face"]["fps"] = 3
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "--cores", "2")
    metrics = json.loads((tmp_path / "results/demo/metrics.json").read_text())
    assert set(metrics) == {"ef_lf_avg", "ef_lf_lstm", "@labels", "@comparisons", "@weak_checks", "@search"}
    assert metrics["@weak_checks"] == metrics["@search"] == []
    for name, model in metrics.items():
        if name.startswith("@"):
            continue
        assert {"wacc_avg", "f1_avg", "uar"} <= set(model["emotion"])
        assert {"acc2_has0", "acc2_non0", "f1_weighted", "acc5", "acc7", "mae", "corr"} <= set(model["sentiment"])
        assert {"acc", "f1"} <= set(model["sarcasm"])
        assert all(set(v) == {"mean", "std"} for task in model.values() for v in task.values())
    manifest = pd.read_parquet(tmp_path / "results/demo/manifest.parquet")
    assert len(manifest) == 24 and manifest["speaker"].nunique() == 4
    # Every stored value is what the extractors gave before they moved onto the class contract
    # (tests/data: a build of this same corpus, with whisper and compare too, at commit 65df610).
    reference = dict(np.load(Path(__file__).parent / "data" / "demo_features_reference.npz"))
    current = _as_face_v1(build_digest(tmp_path / "results/demo/features"))
    assert {k.split("/")[0] for k in current} <= {k.split("/")[0] for k in reference}
    assert differences(reference, current) == []
    actions = pq.read_table(tmp_path / "results/demo/actions/au.parquet", columns=["utt_id", "ok"])
    assert actions.num_rows == 24 and all(actions["ok"].to_pylist())  # every demo clip has a face
    prosody = pd.read_parquet(tmp_path / "results/demo/prosody/prosody.parquet")
    assert prosody["rate_wpm"].notna().all() and prosody["pitch_z"].notna().all()
    narratives = pd.read_parquet(tmp_path / "results/demo/narrative/narratives.parquet")
    assert len(narratives) == 4 * 24 and (narratives["text"].str.len() > 0).all()
    by_family = narratives.groupby("family")["phrases"].apply(lambda p: sum(len(json.loads(x)) for x in p))
    assert by_family["v"] == 0 and by_family["vpa"] == by_family["va"] + by_family["vp"] > 0
    assert "<b>vpa</b>" in (tmp_path / "results/demo/report/narratives.html").read_text()
    figures = {p.name for p in (tmp_path / "results/demo/figures").iterdir()}
    assert {"ef_lf_avg_curves.png", "ef_lf_avg_emotion_confusion.png"} <= figures
    assert "Nothing to be done" in snakemake(tmp_path, "--cores", "2", "-n")
    # one command on new media: the model's extractors with its recorded parameters, ASR for text
    media = Path(__file__).resolve().parents[2] / "shared" / "data" / "media"
    if (media / "obama_talking_head.mp4").exists():
        from affectflow.predict.clip import predict_clips

        records = predict_clips([tmp_path / "results/demo/models/ef_lf_avg"],
                                [media / "obama_talking_head.mp4", media / "no_face.mp4"],
                                str(tmp_path / "clip_work"))
        by_id = {r["utt_id"]: r for r in records}
        clip = by_id["obama_talking_head"]
        emotion = clip["predictions"]["emotion"]  # one-vs-rest sigmoids (loss bce, as the paper)
        assert clip["models"] == 2 and set(emotion) == {"neutral", "happy", "sad", "angry"}
        assert all(0 <= p <= 1 for p in emotion.values())
        assert -3 <= clip["predictions"]["sentiment"] <= 3 and "rejected" in by_id["no_face"]
    snakemake(tmp_path, "--cores", "1", "--report", "results/report.html")
    report = (tmp_path / "results/report.html").read_text(errors="replace")
    assert len(report) > 10_000 and "metrics.html" in report


def _real_manifest(folder: Path, media: Path, n: int, offset: int = 0) -> pd.DataFrame:
    rows = [{"utt_id": f"ob{i:03d}", "speaker": "obama", "video_path": str(media / "obama_talking_head.mp4"),
             "start_s": 1.5 * (i % 12), "end_s": 1.5 * (i % 12) + 1.5,
             "transcript": f"utterance {i} about the economy", "split": ("train", "valid", "test")[i % 3],
             "emotion": ("neutral", "happy", "sad", "angry")[i % 4], "sentiment": (i % 7) - 3.0,
             "sarcasm": i % 2} for i in range(offset, offset + n)]
    return pd.DataFrame(rows)


def test_incremental_builds_process_only_what_changed(tmp_path: Path, shared_media: Path) -> None:
    frame = _real_manifest(tmp_path, shared_media, 12)
    bad = [{"utt_id": "silent", "video_path": str(shared_media / "WolfgangLanger_Pexels.mp4"), "start_s": 0,
            "end_s": 2, "transcript": "no sound here", "split": "train", "emotion": "sad", "sentiment": -1,
            "sarcasm": 0},
           {"utt_id": "noface", "video_path": str(shared_media / "no_face.mp4"), "transcript": "hello",
            "split": "train", "emotion": "happy", "sentiment": 1, "sarcasm": 0},
           {"utt_id": "gone", "video_path": str(tmp_path / "missing.mp4"), "transcript": "x", "split": "train"}]
    pd.concat([frame, pd.DataFrame(bad)]).to_csv(tmp_path / "manifest.csv", index=False)
    config = base_config(seeds=[0], hparams={"max_epochs": 2, "batch_size": 4, "hidden": 8})
    config["corpora"] = {"real": {"manifest": "manifest.csv", "shards": 3,
                                  "labels": config["corpora"]["demo"]["labels"]}}
    config["extractors"]["face"]["fps"] = 2
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    target = "results/real/rejected.parquet"
    snakemake(tmp_path, "--cores", "2", target)
    rejected = pd.read_parquet(tmp_path / target)
    reasons = rejected.groupby("utt_id")["reason"].apply(" | ".join).to_dict()
    assert "no speech" in reasons["silent"] and "no face found" in reasons["noface"]
    assert "file not found" in reasons["gone"]
    assert not set(rejected["utt_id"]) & set(frame["utt_id"])
    logs = tmp_path / "results/logs/real"
    assert "Nothing to be done" in snakemake(tmp_path, "--cores", "2", "-n", target)

    # One utterance added: only its shard re-runs (the shard list is known only after the ingest
    # checkpoint, so this is read from the jobs' logs, not a dry run), and each extractor
    # processes exactly one utterance.
    manifest = pd.read_csv(tmp_path / "manifest.csv")
    pd.concat([manifest, _real_manifest(tmp_path, shared_media, 1, offset=12)]).to_csv(
        tmp_path / "manifest.csv", index=False)
    time.sleep(1)
    since = time.time()
    snakemake(tmp_path, "--cores", "2", target)
    ran = stats_since(logs, since)
    assert len(ran) == 6 and len({s["shard"] for s in ran}) == 1  # audio + 5 extractors, one shard
    assert processed_since(logs, since) == Counter({"audio": 1, "egemaps": 1, "whisper": 1, "logmel": 1,
                                                    "text": 1, "face": 1})

    # One extractor's parameters changed: only that extractor re-runs (all of its shards).
    config["extractors"]["logmel"]["n_mels"] = 64
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    jobs = planned_jobs(snakemake(tmp_path, "--cores", "2", "-n", target))
    assert jobs["extract"] == 3 and "prep_audio" not in jobs
    since = time.time()
    snakemake(tmp_path, "--cores", "2", target)
    assert set(processed_since(logs, since)) == {"logmel"}

    # A deleted feature file: rebuilding it as its target recomputes nothing and leaves its
    # consumers up to date (the cached partition comes back with its old mtime).
    victim = next((tmp_path / "results/real/features/face").glob("shard=*.parquet"))
    victim.unlink()
    jobs = planned_jobs(snakemake(tmp_path, "--cores", "2", "-n"))
    assert jobs["extract"] == 1 and "prep_audio" not in jobs  # a dry run changes nothing
    since = time.time()
    snakemake(tmp_path, "--cores", "2", str(victim.relative_to(tmp_path)))
    assert victim.exists() and sum(processed_since(logs, since).values()) == 0
    assert "Nothing to be done" in snakemake(tmp_path, "--cores", "2", "-n", target)

    # A plain run of the whole DAG after deleting partitions (one audio one, so the extractors
    # reading it depend on a restored file too) puts them back from the cache while planning:
    # no job runs, no training, evaluation or report.
    snakemake(tmp_path, "--cores", "2")
    victims = [next((tmp_path / "results/real/features" / name).glob("shard=*.parquet"))
               for name in ("audio", "egemaps", "text")]
    mtimes = [v.stat().st_mtime_ns for v in victims]
    for victim in victims:
        victim.unlink()
    output = snakemake(tmp_path, "--cores", "2")
    assert "Nothing to be done" in output and output.count("from the cache") == 3
    assert [v.stat().st_mtime_ns for v in victims] == mtimes


def test_transcribe_stage_fills_transcripts_and_word_times(tmp_path: Path, shared_media: Path) -> None:
    pytest.importorskip("faster_whisper")
    rows = [{"utt_id": "jfk_asr", "audio_path": str(shared_media / "jfk.flac"), "split": "train"},
            {"utt_id": "jfk_align", "audio_path": str(shared_media / "jfk.flac"), "split": "test",
             "transcript": "And so my fellow Americans, ask not what your country can do for you, "
                           "ask what you can do for your country."},
            {"utt_id": "broken", "audio_path": str(tmp_path / "missing.wav"), "split": "train"}]
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    config = base_config()
    config["corpora"] = {"t": {"manifest": "manifest.csv", "shards": 1, "transcribe": {"mode": "auto"},
                               "labels": {}}}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "--cores", "1", "results/t/manifest.parquet")
    manifest = pd.read_parquet(tmp_path / "results/t/manifest.parquet").set_index("utt_id")
    assert "ask not what your country" in manifest.loc["jfk_asr", "transcript"].lower()
    for utt in ("jfk_asr", "jfk_align"):
        words = manifest.loc[utt, "words"]
        starts = [w["start_s"] for w in words]
        assert len(words) >= 20 and starts == sorted(starts) and 0 <= starts[0] and words[-1]["end_s"] < 11.1
    rejected = pd.read_parquet(tmp_path / "results/t/rejected/ingest.parquet")
    assert set(rejected["utt_id"]) == {"broken"} and rejected["reason"].str.contains("file not found").any()


def test_weak_labels_controlled_check_and_predict(tmp_path: Path) -> None:
    """Paper 000's weak labels where the truth is known: a second demo corpus (another seed)
    trains the emotion labeler, its weak labels on the first are scored against the first's real
    labels (which the labels themselves never read), a model trains on them as a weak task, and
    a prediction table of the labeler on the first corpus is written. The baseline is searched:
    its seeds train with the chosen grid point and the report shows the trials."""
    config = base_config(seeds=[0, 1], hparams={"max_epochs": 6, "patience": 3, "batch_size": 8, "hidden": 16})
    demo = config["corpora"]["demo"]
    demo["generator"].update(n_utterances=24, n_speakers=4)
    demo.update(shards=2, extractors=["egemaps", "text"])
    second = {**demo, "generator": {**demo["generator"], "seed": 1}, "models": ["labeler"]}
    config["corpora"] = {"demo": {**demo, "models": ["plain", "with_weak"]}, "demo2": second}
    config["training"]["modalities"] = {"audio": {"extractor": "egemaps", "view": "pooled"},
                                        "text": {"extractor": "text", "view": "pooled"}}
    config["training"]["models"] = [
        {"id": "labeler", "model": "linear", "tasks": {"emotion": {"loss": "ce"}}},
        {"id": "plain", "model": "ef_lf_avg", "tasks": {"sarcasm": {}},
         "search": {"lr": [0.01, 0.0001], "metric": "sarcasm/acc"}},
        {"id": "with_weak", "model": "ef_lf_avg", "tasks": {"sarcasm": {}, "emotion_w": {}},
         "search": {"weight.emotion_w": [0.2, 1.0]}}]
    config["weak_labels"] = [{"task": "emotion", "from": {"corpus": "demo2", "model": "labeler"}, "to": ["demo"]}]
    config["predictions"] = [{"from": {"corpus": "demo2", "model": "labeler"}, "to": ["demo"]}]
    config["evaluation"] = {"resamples": 200, "compare": [{"challenger": "with_weak", "baseline": "plain",
                                                           "task": "sarcasm"}]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    snakemake(tmp_path, "--cores", "2")

    metrics = json.loads((tmp_path / "results/demo/metrics.json").read_text())
    assert metrics["@labels"]["with_weak"] == {"sarcasm": "S", "emotion_w": "W"}
    (check,) = metrics["@weak_checks"]
    assert check["name"] == "emotion_w" and check["from_corpus"] == "demo2" and check["model"] == "labeler"
    # the score is what the weak table and the first corpus's labels say, row by row
    from affectflow.train.weak import read_weak_table

    meta, table = read_weak_table(tmp_path / "results/demo/weak/emotion_w.parquet")
    manifest = pd.read_parquet(tmp_path / "results/demo/manifest.parquet").set_index("utt_id")
    guessed = {u: meta["classes"][int(np.argmax(p))] for u, p in table.items()}
    truth = manifest.loc[list(guessed), "emotion"]
    assert check["splits"]["all"]["n"] == len(guessed) == 24
    assert check["splits"]["all"]["acc"] == pytest.approx(np.mean([guessed[u] == t for u, t in truth.items()]))
    assert check["splits"]["all"]["majority"] == pytest.approx(truth.value_counts().max() / len(truth))
    (comparison,) = metrics["@comparisons"]
    assert comparison["n"] == int((manifest["split"] == "test").sum())
    html = (tmp_path / "results/demo/report/metrics.html").read_text()
    assert "controlled check" in html and "demo2/labeler" in html
    search, weighted = sorted(metrics["@search"], key=lambda r: r["model"])
    lam = weighted["hparams"]["weight.emotion_w"]  # the searched λ of the weak task (Table 9)
    result = json.loads((tmp_path / "results/demo/models/with_weak/split/seed=1/result.json").read_text())
    assert result["tasks"]["emotion_w"] == {"weight": lam} and result["task_specs"]["emotion_w"]["weight"] == lam
    assert search["model"] == "plain" and [row["lr"] for row in search["table"]] == [0.01, 0.0001]
    values = [row["sarcasm/acc"] for row in search["table"]]
    assert search["value"] == max(values) == values[search["best"]]
    for seed in (0, 1):
        result = json.loads((tmp_path / f"results/demo/models/plain/split/seed={seed}/result.json").read_text())
        assert result["hparams"]["lr"] == search["hparams"]["lr"]
    assert "Hyper-parameter search" in html
    predictions = pd.read_parquet(tmp_path / "results/demo/predictions/demo2/labeler.parquet")
    assert set(predictions["utt_id"]) == set(manifest.index) and "mean" in set(predictions["seed"].astype(str))
