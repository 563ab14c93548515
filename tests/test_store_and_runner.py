"""Feature store and shard runner: provenance, plain-table reads, per-utterance reuse, rejections."""

from __future__ import annotations

import os

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from affectflow.features.base import FeatureResult
from affectflow.features.reader import read_pooled, read_rejections, read_sequences, store_provenance
from affectflow.features.runner import restore_unchanged, run_extractor_shard
from affectflow.features.store import Provenance, StoreRow, write_partition
from affectflow.ingest.manifest import IngestOptions
from affectflow.ingest.run import ingest_corpus, label_specs

LABELS = {"emotion": {"type": "categorical", "classes": ["neutral", "happy"]}}


def test_partition_round_trip_and_plain_table_reads(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = [StoreRow("u1", "s1", FeatureResult(rng.normal(size=(5, 3)), rng.normal(size=4),
                                               np.arange(5) * 0.02, {"flags": np.ones(5, bool)})),
            StoreRow("u2", "s2", reason="no face found"),
            StoreRow("u3", "s3", FeatureResult(rng.normal(size=(2, 3)), rng.normal(size=4), None))]
    store = tmp_path / "store"
    write_partition(store / "shard=0.parquet", rows, Provenance("toy", "7", {"a": 1}, "c", 0, ["x", "y", "z"]))
    seq = read_sequences(store)
    assert seq.utt_ids == ["u1", "u3"] and seq.values.shape == (2, 5, 3)
    assert seq.lengths.tolist() == [5, 2] and np.all(seq.values[1, 2:] == 0)
    np.testing.assert_allclose(seq.values[0], rows[0].result.values, rtol=1e-6)
    np.testing.assert_allclose(seq.times[0], np.arange(5) * 0.02, rtol=1e-6)
    cut = read_sequences(store, ["u3", "u1"], max_steps=3)
    assert cut.utt_ids == ["u3", "u1"] and cut.values.shape == (2, 3, 3) and cut.lengths.tolist() == [2, 3]
    np.testing.assert_allclose(read_pooled(store, ["u3"]).values[0], rows[2].result.pooled, rtol=1e-6)
    assert read_rejections(store).to_dict("records") == [{"utt_id": "u2", "reason": "no face found"}]
    provenance = store_provenance(store)
    assert provenance["extractor"] == "toy" and provenance["params"] == {"a": 1}
    assert provenance["libraries"]["numpy"] == np.__version__ and len(provenance["params_hash"]) == 16
    frame = pd.read_parquet(store / "shard=0.parquet")
    assert frame["ok"].tolist() == [True, False, True]
    counted = duckdb.sql(f"select utt_id, n_steps, len(pooled) from '{store}/*.parquet' where ok order by 1").fetchall()
    assert counted == [("u1", 5, 4), ("u3", 2, 4)]
    assert pq.read_table(store / "shard=0.parquet").num_rows == 3
    with pytest.raises(KeyError, match="no accepted features"):
        read_pooled(store, ["u2"])


@pytest.fixture()
def small_corpus(tmp_path: Path, shared_media: Path) -> tuple[Path, Path]:
    rows = [{"utt_id": f"obama{i}", "video_path": str(shared_media / "obama_talking_head.mp4"),
             "start_s": 2 * i, "end_s": 2 * i + 2, "split": "train", "emotion": "neutral"} for i in range(4)]
    rows.append({"utt_id": "pexels", "video_path": str(shared_media / "WolfgangLanger_Pexels.mp4"),
                 "start_s": 0, "end_s": 2, "split": "train", "emotion": "happy"})
    source = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(source, index=False)
    manifest = tmp_path / "out" / "manifest.parquet"
    ingest_corpus(source, manifest, tmp_path / "out" / "rejected.parquet",
                  IngestOptions("t", 1, label_specs(LABELS)))
    return source, manifest


def _run(tmp: Path, manifest: Path, extractor: str, params: dict):
    audio = tmp / "f" / "audio" / "shard=0.parquet"
    return run_extractor_shard(manifest, 0, extractor, params, tmp / "f" / extractor / "shard=0.parquet",
                               tmp / "cache" / extractor / "shard=0.parquet",
                               {"audio": audio} if extractor not in ("audio", "text") else None, "t")


def test_runner_reuses_unchanged_utterances(tmp_path: Path, small_corpus: tuple[Path, Path]) -> None:
    source, manifest = small_corpus
    first = _run(tmp_path, manifest, "audio", {})
    assert (first.processed, first.reused) == (5, 0)
    assert "no speech" in first.rejected["pexels"]
    egemaps = _run(tmp_path, manifest, "egemaps", {"step_s": 0.02})
    assert egemaps.processed == 5 and "audio rejected at media prep" in egemaps.rejected["pexels"]
    # Nothing changed: everything reused, output identical.
    before = pd.read_parquet(tmp_path / "f" / "egemaps" / "shard=0.parquet")
    (tmp_path / "f" / "egemaps" / "shard=0.parquet").unlink()  # Snakemake removes outputs first
    again = _run(tmp_path, manifest, "egemaps", {"step_s": 0.02})
    assert (again.processed, again.reused) == (0, 5)
    after = pd.read_parquet(tmp_path / "f" / "egemaps" / "shard=0.parquet")
    assert before["input_sig"].tolist() == after["input_sig"].tolist()
    assert np.array_equal(np.stack(before["pooled"].dropna()), np.stack(after["pooled"].dropna()))
    # The restored file keeps the cached mtime but not its inode: Snakemake touching it (as it
    # does when an input is newer) must not age the cache or another results folder's copy.
    restored, cached = tmp_path / "f" / "egemaps" / "shard=0.parquet", tmp_path / "cache" / "egemaps" / "shard=0.parquet"
    assert restored.stat().st_mtime_ns == cached.stat().st_mtime_ns and not restored.samefile(cached)
    other = run_extractor_shard(manifest, 0, "egemaps", {"step_s": 0.02}, tmp_path / "g" / "shard=0.parquet",
                                cached, {"audio": tmp_path / "f" / "audio" / "shard=0.parquet"}, "t")
    assert other.reused == 5
    mtime = cached.stat().st_mtime_ns
    os.utime(tmp_path / "g" / "shard=0.parquet", ns=(mtime + 10**9, mtime + 10**9))
    assert cached.stat().st_mtime_ns == restored.stat().st_mtime_ns == mtime
    # One utterance added: exactly one processed by each stage.
    frame = pd.read_csv(source)
    extra = frame.iloc[[0]].assign(utt_id="obama_new", start_s=10, end_s=12)
    pd.concat([frame, extra]).to_csv(source, index=False)
    ingest_corpus(source, manifest, tmp_path / "out" / "rejected.parquet",
                  IngestOptions("t", 1, label_specs(LABELS)))
    assert _run(tmp_path, manifest, "audio", {}).processed == 1
    added = _run(tmp_path, manifest, "egemaps", {"step_s": 0.02})
    assert (added.processed, added.reused, added.rows) == (1, 5, 6)
    # Changed parameters: everything recomputed, and the step shows in the frame times.
    changed = _run(tmp_path, manifest, "egemaps", {"step_s": 0.04})
    assert changed.processed == 6
    seq = read_sequences(tmp_path / "f" / "egemaps", ["obama0"])
    assert np.allclose(np.diff(seq.times[0][: seq.lengths[0]]), 0.04, atol=1e-4)


def test_runner_survives_a_corrupt_cache(tmp_path: Path, small_corpus: tuple[Path, Path]) -> None:
    _, manifest = small_corpus
    cache = tmp_path / "cache" / "audio" / "shard=0.parquet"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(b"not parquet")
    stats = _run(tmp_path, manifest, "audio", {})
    assert stats.processed == 5 and pq.read_table(cache).num_rows == 5


def test_restore_puts_back_only_an_unchanged_partition(tmp_path: Path, small_corpus: tuple[Path, Path],
                                                       shared_media: Path) -> None:
    """The workflow's planning-time restore: a deleted partition comes back from the cache only
    when its parameters, its rows and the media it reads are all unchanged."""
    _, manifest = small_corpus
    _run(tmp_path, manifest, "audio", {})
    _run(tmp_path, manifest, "egemaps", {"step_s": 0.02})
    rows = pd.read_parquet(manifest).to_dict("records")
    out, cache = tmp_path / "f" / "egemaps" / "shard=0.parquet", tmp_path / "cache" / "egemaps" / "shard=0.parquet"
    audio = tmp_path / "f" / "audio" / "shard=0.parquet"
    out.unlink()
    stores = {"audio": audio}
    assert not restore_unchanged(rows, "egemaps", {"step_s": 0.04}, out, cache, stores)  # params
    assert not restore_unchanged(rows[:-1], "egemaps", {"step_s": 0.02}, out, cache, stores)  # rows
    assert not restore_unchanged(rows, "egemaps", {"step_s": 0.02}, out, cache, None)  # no audio store
    assert not out.exists()
    assert restore_unchanged(rows, "egemaps", {"step_s": 0.02}, out, cache, stores)
    assert out.stat().st_mtime_ns == cache.stat().st_mtime_ns
    # A media file the audio stage reads is touched: its partition is not restored.
    audio_cache = tmp_path / "cache" / "audio" / "shard=0.parquet"
    audio.unlink()
    assert restore_unchanged(rows, "audio", {}, audio, audio_cache)
    audio.unlink()
    video = tmp_path / "pexels.mp4"
    video.write_bytes((shared_media / "WolfgangLanger_Pexels.mp4").read_bytes())
    moved = [dict(r, video_path=str(video)) if r["utt_id"] == "pexels" else r for r in rows]
    assert not restore_unchanged(moved, "audio", {}, audio, audio_cache)


def test_moving_an_extractor_to_another_device_re_extracts_nothing(tmp_path: Path, shared_media: Path) -> None:
    rows = [{"utt_id": f"u{i}", "transcript": f"sentence number {i} is here", "split": "train",
             "emotion": "neutral"} for i in range(3)]
    source = tmp_path / "manifest.csv"
    pd.DataFrame(rows).to_csv(source, index=False)
    manifest = tmp_path / "m.parquet"
    ingest_corpus(source, manifest, tmp_path / "r.parquet", IngestOptions("t", 1, label_specs(LABELS)))
    first = _run(tmp_path, manifest, "text", {"device": "cpu"})
    assert first.processed == 3
    (tmp_path / "f" / "text" / "shard=0.parquet").unlink()
    moved = _run(tmp_path, manifest, "text", {"device": "auto"})
    assert (moved.processed, moved.reused) == (0, 3)
    assert _run(tmp_path, manifest, "text", {"device": "cpu", "max_tokens": 16}).processed == 3


def test_declared_names_are_stored_once_and_checked(tmp_path: Path, small_corpus: tuple[Path, Path],
                                                    monkeypatch) -> None:
    from affectflow.features.extractors.acoustic import Egemaps

    _, manifest = small_corpus
    _run(tmp_path, manifest, "audio", {})
    _run(tmp_path, manifest, "egemaps", {"step_s": 0.02})
    provenance = store_provenance(tmp_path / "f" / "egemaps")
    assert len(provenance["value_names"]) == 25 and provenance["value_names"][0] == "Loudness_sma3"
    assert len(provenance["pooled_names"]) == 88
    assert "x_feature_names" not in pq.read_schema(tmp_path / "f" / "egemaps" / "shard=0.parquet").names
    # One sequence column too few declared:
    monkeypatch.setattr(Egemaps, "names", lambda self: ([f"x{i}" for i in range(24)], [f"p{i}" for i in range(88)]))
    stats = _run(tmp_path, manifest, "egemaps", {"step_s": 0.03})
    assert all("returned 25 sequence and 88 pooled columns, declared 24 and 88" in r
               for u, r in stats.rejected.items() if u != "pexels")
