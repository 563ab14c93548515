"""The RAVDESS adapter on the real speech files: names, labels, protocols, the duplicate pair."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from affectflow.ingest.adapters import add_protocol_columns, ravdess, write_adapter_manifest
from affectflow.ingest.manifest import IngestOptions, ManifestError, read_table, validate_manifest
from affectflow.ingest.run import label_specs

pytestmark = pytest.mark.shared_data


@pytest.fixture(scope="module")
def manifest(shared_data: Path) -> pd.DataFrame:
    return add_protocol_columns("ravdess", ravdess.build_manifest(shared_data / "ravdess"))


def test_every_speech_file_with_its_labels(manifest: pd.DataFrame, shared_data: Path) -> None:
    files = sorted((shared_data / "ravdess").glob("Actor_*/*.flac"))
    assert len(manifest) == len(files) == 1440
    assert manifest["speaker"].nunique() == 24 and (manifest.groupby("speaker").size() == 60).all()
    counts = manifest["emotion"].value_counts().to_dict()
    assert counts == {e: (96 if e == "neutral" else 192) for e in ravdess.EMOTIONS}
    assert not ((manifest["emotion"] == "neutral") & (manifest["intensity"] == "strong")).any()
    row = manifest.set_index("utt_id").loc["03-01-05-02-01-01-07"]
    assert (row["emotion"], row["intensity"], row["statement"], row["speaker"], row["gender"]) == (
        "angry", "strong", "01", "07", "m")
    assert row["transcript"] == "Kids are talking by the door." and row["actor_group"] == "2"
    assert manifest.drop_duplicates("speaker")["gender"].value_counts().to_dict() == {"m": 12, "f": 12}


def test_protocols_are_speaker_independent(manifest: pd.DataFrame) -> None:
    loso = sorted(c for c in manifest.columns if c.startswith("split_loso_"))
    actors = sorted(c for c in manifest.columns if c.startswith("split_actors_"))
    assert len(loso) == 24 and len(actors) == 6
    for column in loso + actors:
        speakers = manifest.groupby(column)["speaker"].apply(set)
        assert not speakers["test"] & speakers["train"] and not speakers["valid"] & speakers["train"]
        assert not speakers["test"] & speakers["valid"]
    sizes = manifest["split_actors_00"].value_counts().to_dict()
    assert sizes == {"train": 960, "valid": 240, "test": 240}
    assert set(manifest.loc[manifest["split_actors_00"] == "test", "speaker"]) == {"01", "02", "03", "04"}
    assert set(manifest.loc[manifest["split_actors_05"] == "valid", "speaker"]) == {"01", "02", "03", "04"}


def test_ingest_finds_the_duplicate_pair(shared_data: Path, tmp_path: Path) -> None:
    path = write_adapter_manifest("ravdess", shared_data / "ravdess", tmp_path / "manifest.csv")
    options = IngestOptions("ravdess", 4, label_specs(ravdess.LABELS), protocol="actors",
                            duplicate_media="reject")
    accepted, rejected = validate_manifest(read_table(path), path, options)
    assert len(accepted) == 1439 and rejected["utt_id"].tolist() == ["03-01-03-01-02-02-07"]
    assert "'03-01-03-01-02-01-07'" in rejected["reason"][0]


def test_bad_names_are_refused_naming_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "Actor_01"
    folder.mkdir()
    (folder / "03-02-01-01-01-01-01.flac").write_bytes(b"x")
    with pytest.raises(ManifestError, match="not speech"):
        ravdess.build_manifest(tmp_path)
    (folder / "03-02-01-01-01-01-01.flac").rename(folder / "03-01-01-02-01-01-01.flac")
    with pytest.raises(ManifestError, match="neutral has no strong intensity"):
        ravdess.build_manifest(tmp_path)
    (folder / "03-01-01-02-01-01-01.flac").rename(folder / "03-01-09-01-01-01-01.flac")
    with pytest.raises(ManifestError, match="emotion code '09'"):
        ravdess.build_manifest(tmp_path)
