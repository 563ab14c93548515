"""Features corpora (`features:` in a corpus config, `affectflow.ingest.features_corpus`).

An MMSA pickle runs through the whole workflow with every zoo model; a pickle without
``trust: true`` stops the run naming the file; ``training.modalities`` accepts the imported store
names and still names the known ones for a typo; the MFN release imports as its authors' code
reads it (the real files in ../shared/data/mfn), and broken HDF5 files are named with the row.
"""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from dag_helpers import REPO, run_snakemake, snakemake

from affectflow.config import ConfigError, validate_config
from affectflow.features.reader import read_sequences, store_provenance
from affectflow.formats.mfn import read_h5, read_mfn, source_files
from affectflow.ingest.features_corpus import build_features_corpus, prepare_features_corpora
from affectflow.ingest.manifest import IngestOptions, ManifestError, validate_manifest
from affectflow.ingest.run import label_specs

SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
ZOO = ["ef_lf_lstm", "mult", "mfn", "selfmm", "sugrm", "mtmd", "mmml"]
TINY = {"mult_dim": 8, "mult_heads": 2, "mult_layers": 1, "mfn_hidden": 8, "mfn_mem": 16,
        "mfn_steps": 6, "sugrm_dim": 8, "sugrm_heads": 2, "sugrm_layers": 1, "selfmm_hidden": 8,
        "selfmm_fusion_dim": 16, "mtmd_hidden": 8, "mtmd_layers": 1, "mtmd_heads": 2,
        "mtmd_dim": 8, "mtmd_fusion_dim": 8, "mtmd_queue": 32, "mmml_dim": 16, "mmml_heads": 2,
        "mmml_ffn": 32, "mmml_layers": 1, "max_epochs": 1, "batch_size": 8, "hidden": 8}
SPLIT_SIZES = {"train": 18, "valid": 6, "test": 6}
STEPS = {"text": 12, "audio": 30, "vision": 20}  # unaligned: every modality its own length
WIDTHS = {"text": 16, "audio": 5, "vision": 8}
MODALITIES = {"text": "mmsa_text", "audio": "mmsa_audio", "vision": "mmsa_vision"}
MOSI_METRICS = {"acc2_has0", "acc7", "mae", "corr"}


def write_mmsa_pickle(path: Path, seed: int = 0) -> Path:
    """A small pickle in MMSA's layout (RESEARCH-NOTES, "Data formats"): per split raw_text, id,
    text/audio/vision zero-padded at the end, audio_lengths / vision_lengths, regression_labels
    in [-3, 3] (the training split holds both extremes and a 0), annotations."""
    rng = np.random.default_rng(seed)
    data = {}
    for split, n in SPLIT_SIZES.items():
        labels = np.round(rng.uniform(-3, 3, n) * 5) / 5
        if split == "train":
            labels[:3] = [3.0, -3.0, 0.0]
        part = {"id": np.array([f"{split}vid{i // 3}$_${i % 3}" for i in range(n)], dtype=object),
                "raw_text": np.array([f"segment {i} of the {split} split" for i in range(n)], dtype=object),
                "regression_labels": labels.astype(np.float32),
                "annotations": np.array(["Positive" if y > 0 else "Negative" if y < 0 else "Neutral"
                                         for y in labels], dtype=object)}
        for modality, steps in STEPS.items():
            lengths = rng.integers(1, steps + 1, n)
            valid = np.arange(steps)[None, :, None] < lengths[:, None, None]
            part[modality] = (rng.normal(size=(n, steps, WIDTHS[modality])) * valid).astype(np.float32)
            if modality != "text":  # text lengths come from its trailing zero steps
                part[f"{modality}_lengths"] = lengths
        data[split] = part
    with open(path, "wb") as handle:
        pickle.dump(data, handle, protocol=4)
    return path


def zoo_config(pkl: Path, **features: object) -> dict:
    """A workflow config training every zoo model, one epoch at test width, on the pickle."""
    return {"results_dir": "results", "cache_dir": "cache",
            "corpora": {"toy": {"features": {"format": "mmsa", "path": str(pkl), **features}}},
            "training": {"modalities": dict(MODALITIES), "models": list(ZOO), "seeds": [0],
                         "tasks": {"sentiment": {"loss": "l1"}}, "hparams": dict(TINY),
                         "max_steps": 32, "device": "cpu"}}


def prepared(config: dict) -> dict:
    """The config as the workflow sees it after its start-up checks."""
    config = copy.deepcopy(config)
    validate_config(config, SCHEMA)
    prepare_features_corpora(config)
    return config


# ----------------------------------------------------------------------------- MMSA pickles


@pytest.mark.slow
def test_mmsa_pickle_through_the_workflow_with_every_zoo_model(tmp_path: Path) -> None:
    pkl = write_mmsa_pickle(tmp_path / "unaligned_50.pkl")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(zoo_config(pkl, trust=True)))
    output = snakemake(tmp_path, "--cores", "2")
    results = tmp_path / "results" / "toy"
    metrics = json.loads((results / "metrics.json").read_text())
    for model in ZOO:
        sentiment = metrics[model]["sentiment"]
        assert MOSI_METRICS <= set(sentiment), model
        assert all(np.isfinite(sentiment[k]["mean"]) for k in MOSI_METRICS), (model, sentiment)
    manifest = pd.read_parquet(results / "manifest.parquet")
    assert manifest.groupby("split").size().to_dict() == SPLIT_SIZES
    assert (manifest["shard"] == 0).all() and manifest["transcript"].str.startswith("segment").all()
    assert sorted(p.name for p in (results / "features").iterdir()) == sorted(MODALITIES.values())
    for modality, store in MODALITIES.items():
        assert store_provenance(results / "features" / store)["extractor"] == store
        seq = read_sequences(results / "features" / store)
        assert len(seq.utt_ids) == 30 and seq.values.shape[2] == WIDTHS[modality]
        assert seq.lengths.max() <= STEPS[modality]
    assert "import_mmsa" in output and "rule extract" not in output and "prep_audio" not in output
    assert "Nothing to be done" in snakemake(tmp_path, "--cores", "1", "-n")


def test_a_pickle_without_trust_stops_the_run_naming_the_file(tmp_path: Path) -> None:
    pkl = write_mmsa_pickle(tmp_path / "aligned_50.pkl")
    for features in ({}, {"trust": False}):
        (tmp_path / "config.yaml").write_text(yaml.safe_dump(zoo_config(pkl, **features)))
        result = run_snakemake(tmp_path, "-n", "--cores", "1")
        output = result.stdout + result.stderr
        assert result.returncode != 0
        assert f"corpora.toy.features: {pkl} is a pickle" in output and "trust: true" in output
    assert not (tmp_path / "results").exists()


def test_the_import_itself_refuses_an_untrusted_pickle(tmp_path: Path) -> None:
    pkl = write_mmsa_pickle(tmp_path / "x.pkl")
    with pytest.raises(PermissionError, match=str(pkl)):
        build_features_corpus({"format": "mmsa", "path": str(pkl)}, "toy",
                              tmp_path / "m.csv", tmp_path / "features")
    assert not (tmp_path / "features").exists()


def test_modalities_accept_imported_stores_and_name_the_known_ones_for_a_typo(tmp_path: Path) -> None:
    config = prepared(zoo_config(tmp_path / "x.pkl", trust=True))
    assert config["corpora"]["toy"]["labels"] == {"sentiment": {"type": "regression", "min": -3, "max": 3}}
    assert config["corpora"]["toy"]["shards"] == 8  # the schema's default; the workflow uses 1
    typo = zoo_config(tmp_path / "x.pkl", trust=True)
    typo["training"]["modalities"]["text"] = "mmsa_txt"
    with pytest.raises(ConfigError, match=r"training\.modalities\.text: unknown value 'mmsa_txt'; "
                                          r"allowed: .*\btext\b.*\bmmsa_text\b.*\bmfn_video\b"):
        prepared(typo)
    other = zoo_config(tmp_path / "x.pkl", trust=True)
    other["training"]["modalities"]["text"] = "mfn_audio"
    with pytest.raises(ConfigError, match=r"training\.modalities\.text: corpus toy \(an MMSA "
                                          r"pickle\) has the stores mmsa_text, mmsa_audio, "
                                          r"mmsa_vision, not 'mfn_audio'"):
        prepared(other)
    media = zoo_config(tmp_path / "x.pkl", trust=True)
    media["corpora"]["toy"] = {"manifest": "m.csv"}
    with pytest.raises(ConfigError, match="corpus toy is not a features corpus"):
        prepared(media)
    mfn = zoo_config(tmp_path / "x.pkl")
    mfn["corpora"]["toy"] = {"features": {"format": "mfn", "path": "mfn"}}
    with pytest.raises(ConfigError, match=r"corpora\.toy\.features: missing key 'dataset'"):
        prepared(mfn)
    mfn["corpora"]["toy"] = {"features": {"format": "mfn", "path": "mfn", "dataset": "mmmo", "trust": True},
                             "extractors": ["text"]}
    with pytest.raises(ConfigError) as error:
        prepared(mfn)
    assert str(error.value).splitlines()[:2] == [
        "config error at corpora.toy.features.trust: only pickles (format mmsa) need trust",
        "config error at corpora.toy.extractors: a features corpus runs no media stage; remove 'extractors'"]


def test_ingest_takes_rows_without_media_only_for_a_features_corpus() -> None:
    table = pd.DataFrame({"utt_id": ["a", "b"], "split": ["train", "test"], "sentiment": ["1", "5"]})
    labels = label_specs({"sentiment": {"type": "regression", "min": 1, "max": 5}})
    with pytest.raises(ManifestError, match="needs at least one of audio_path, video_path, transcript"):
        validate_manifest(table, "m.csv", IngestOptions("c", 1, labels))
    manifest, rejected = validate_manifest(table, "m.csv", IngestOptions("c", 1, labels, features_only=True))
    assert manifest["sentiment"].tolist() == [1.0, 5.0] and rejected.empty


# ----------------------------------------------------------------------------- MFN release


@pytest.mark.shared_data
@pytest.mark.parametrize("dataset, sizes", [("youtube", {"train": 173, "valid": 36, "test": 60}),
                                            ("mmmo", {"train": 220, "valid": 40, "test": 80})])
def test_mfn_release_imports_as_its_authors_read_it(shared_mfn: Path, dataset: str,
                                                    sizes: dict[str, int]) -> None:
    data = read_mfn(shared_mfn, dataset)
    manifest = data.manifest
    assert manifest.groupby("split").size().to_dict() == sizes
    assert sum(sizes.values()) == {"youtube": 269, "mmmo": 340}[dataset]  # SOURCES.md
    assert manifest["utt_id"].str.fullmatch(rf"{dataset}_(train|valid|test)_\d+").all()
    for modality, width in (("audio", 74), ("video", 36)):
        rows, provenance = data.stores[modality]
        assert provenance.extractor == f"mfn_{modality}" and len(provenance.value_names) == width
        assert [r.utt_id for r in rows] == manifest["utt_id"].tolist()
        for row in rows:
            values = row.result.values
            assert values.shape[1] == width and 1 <= len(values) <= 20
            # the last kept step is data, unless the segment has no features at all (one zero step)
            assert np.any(values[-1] != 0) or (len(values) == 1 and not values.any())
    raw = {s: read_h5(shared_mfn / dataset / f"y_{s}.h5") for s in sizes}
    by_split = {s: part for s, part in manifest.groupby("split")}
    for split, y in raw.items():
        part = by_split[split].sort_values("utt_id", key=lambda u: u.str.rsplit("_", n=1).str[1].astype(int))
        if dataset == "youtube":  # one-hot column k is label k - 1 (mfm_you.py: to_categorical(y + 1))
            assert part["sentiment"].tolist() == (y.argmax(axis=1) - 1).tolist()
            assert part["sentiment_class"].tolist() == [["negative", "neutral", "positive"][k]
                                                         for k in y.argmax(axis=1)]
        else:  # the rating as given, positive above 3.5 (mfm_mmmo.py / train_mmmo.py score())
            assert np.allclose(part["sentiment"], y)
            assert part["sentiment_binary"].tolist() == (y > 3.5).astype(int).tolist()
    if dataset == "youtube":
        train = by_split["train"]["sentiment_class"].value_counts().to_dict()
        assert train == {"negative": 72, "neutral": 43, "positive": 58}


def _write_release(folder: Path, y: np.ndarray, steps: int = 4) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        for prefix, width in (("audio", 74), ("video", 36)):
            with h5py.File(folder / f"{prefix}_{split}.h5", "w") as handle:
                handle["d1"] = np.ones((len(y), steps, width))
        with h5py.File(folder / f"y_{split}.h5", "w") as handle:
            handle["d1"] = y


def test_mfn_padding_and_bad_files_are_named(tmp_path: Path) -> None:
    _write_release(tmp_path / "youtube", np.eye(3))
    with h5py.File(tmp_path / "youtube" / "audio_test.h5", "w") as handle:
        handle["d1"] = np.array([[[1.0] * 74, [0.0] * 74, [2.0] * 74, [0.0] * 74],
                                 [[0.0] * 74] * 4, [[3.0] * 74] * 4])
    data = read_mfn(tmp_path, "youtube", "yt")
    lengths = {r.utt_id: len(r.result.values) for r in data.stores["audio"][0]}
    assert [lengths[f"youtube_test_{i}"] for i in range(3)] == [3, 1, 4]  # inner zero row kept
    assert data.manifest["sentiment"].tolist()[:3] == [-1.0, 0.0, 1.0]
    files = source_files(tmp_path, "youtube")  # the release root or the dataset's folder
    assert len(files) == 9 and files == source_files(tmp_path / "youtube", "youtube")
    _write_release(tmp_path / "bad", np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match=r"bad/y_train\.h5: row 1: label \[0\.0, 1\.0, 1\.0\] "
                                         r"is not one-hot"):
        read_mfn(tmp_path / "bad", "youtube")
    _write_release(tmp_path / "mmmo", np.array([2.0, 5.5]))
    with pytest.raises(ValueError, match=r"mmmo/y_train\.h5: row 1: rating 5\.5 is outside 1-5"):
        read_mfn(tmp_path, "mmmo")
    _write_release(tmp_path / "short", np.array([2.0, 4.0]))
    with h5py.File(tmp_path / "short" / "video_valid.h5", "w") as handle:
        handle["d1"] = np.ones((3, 4, 36))
    with pytest.raises(ValueError, match=r"short/video_valid\.h5: 3 rows, but .*short/y_valid\.h5 has 2"):
        read_mfn(tmp_path / "short", "mmmo")
    (tmp_path / "short" / "audio_test.h5").unlink()
    with pytest.raises(ValueError, match=r"short/audio_test\.h5: file not found"):
        read_mfn(tmp_path / "short", "mmmo")
