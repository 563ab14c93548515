"""Ingest: the manifest validator names the row, the field and the reason, and keeps good rows."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from affectflow.ingest.manifest import IngestOptions, ManifestError, read_table, shard_of
from affectflow.ingest.run import ingest_corpus, label_specs

LABELS = {"emotion": {"type": "categorical", "classes": ["neutral", "happy", "sad", "angry"]},
          "sentiment": {"type": "regression", "min": -3, "max": 3},
          "sarcasm": {"type": "binary"}}


def _write_manifest(folder: Path, rows: list[dict], name: str = "manifest.csv") -> Path:
    path = folder / name
    frame = pd.DataFrame(rows)
    if name.endswith(".jsonl"):
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_csv(path, index=False, sep="\t" if name.endswith(".tsv") else ",")
    return path


@pytest.fixture()
def media(tmp_path: Path, shared_media: Path) -> Path:
    """A folder with real media under relative names."""
    folder = tmp_path / "corpus"
    (folder / "wav").mkdir(parents=True)
    (folder / "wav" / "jfk.flac").symlink_to(shared_media / "jfk.flac")
    return folder


def good_row(utt_id: str, **extra) -> dict:
    row = {"utt_id": utt_id, "speaker": "jfk", "audio_path": "wav/jfk.flac", "start_s": "0",
           "end_s": "3.5", "transcript": "ask not", "split": "train", "emotion": "neutral",
           "sentiment": "1.0", "sarcasm": "0"}
    row.update(extra)
    return row


def test_bad_rows_are_rejected_with_row_field_and_reason(media: Path, tmp_path: Path) -> None:
    rows = [good_row("a"), good_row("b", split="dev"), good_row("a"),
            good_row("c", audio_path="wav/missing.wav"), good_row("d", start_s="2", end_s="1"),
            good_row("e", emotion="joy"), good_row("f", sentiment="7"), good_row("g", sarcasm="maybe"),
            good_row("h", end_s="soon"), good_row("", transcript="x")]
    source = _write_manifest(media, rows)
    out = tmp_path / "out"
    accepted, _ = ingest_corpus(source, out / "manifest.parquet", out / "rejected.parquet",
                  IngestOptions("demo", 4, label_specs(LABELS)))
    manifest = pd.read_parquet(out / "manifest.parquet")
    rejected = pd.read_parquet(out / "rejected.parquet")
    assert accepted == 2 and manifest["utt_id"].tolist() == ["a", "b"]
    assert manifest.loc[1, "split"] == "valid"  # dev is an alias of valid
    by_row = {int(r.row): (r.field, r.reason) for r in rejected.itertuples()}
    assert by_row[3][0] == "utt_id" and "duplicate utt_id 'a' (first on row 1)" in by_row[3][1]
    assert by_row[4][0] == "audio_path" and "file not found" in by_row[4][1]
    assert by_row[5][0] == "end_s" and "not after start" in by_row[5][1]
    assert by_row[6][0] == "emotion" and "unknown label 'joy'" in by_row[6][1]
    assert by_row[7][0] == "sentiment" and "outside" in by_row[7][1]
    assert by_row[8][0] == "sarcasm"
    assert by_row[9][0] == "end_s" and "not a number" in by_row[9][1]
    assert by_row[10][0] == "utt_id"
    assert all(str(source) in reason for reason in rejected["reason"])
    # Paths are resolved, shards recorded, labels typed.
    assert Path(manifest.loc[0, "audio_path"]).is_absolute()
    assert manifest.loc[0, "shard"] == shard_of("a", 4)
    assert manifest["sentiment"].dtype.kind == "f"


def test_missing_labels_are_allowed_and_words_are_read(media: Path, tmp_path: Path) -> None:
    words = [{"word": "ask", "start_s": 0.1, "end_s": 0.4}, {"word": "not", "start_s": 0.5, "end_s": 0.8}]
    (media / "a.json").write_text(json.dumps(words))
    (media / "bad.json").write_text(json.dumps([{"word": "x"}]))
    rows = [good_row("a", words_path="a.json", emotion="", sentiment=""),
            good_row("b", words_path="bad.json")]
    source = _write_manifest(media, rows, "manifest.tsv")
    out = tmp_path / "out"
    ingest_corpus(source, out / "m.parquet", out / "r.parquet",
                  IngestOptions("demo", 2, label_specs(LABELS)))
    manifest = pd.read_parquet(out / "m.parquet")
    rejected = pd.read_parquet(out / "r.parquet")
    assert manifest["utt_id"].tolist() == ["a"]
    assert pd.isna(manifest.loc[0, "emotion"]) and pd.isna(manifest.loc[0, "sentiment"])
    assert [w["word"] for w in manifest.loc[0, "words"]] == ["ask", "not"]
    assert rejected.loc[0, "field"] == "words_path" and "start_s" in rejected.loc[0, "reason"]


def test_jsonl_manifest_and_whole_file_errors(media: Path, tmp_path: Path) -> None:
    source = _write_manifest(media, [good_row("a")], "manifest.jsonl")
    assert read_table(source)["utt_id"].tolist() == ["a"]
    (media / "no_id.csv").write_text("speaker,audio_path\nx,wav/jfk.flac\n")
    with pytest.raises(ManifestError, match="required column 'utt_id'"):
        ingest_corpus(media / "no_id.csv", tmp_path / "m.parquet", tmp_path / "r.parquet",
                  IngestOptions("d", 2, label_specs(LABELS)))
    with pytest.raises(ManifestError, match="not found"):
        read_table(media / "absent.csv")


def test_shards_are_stable_when_rows_are_added() -> None:
    ids = [f"utt{i}" for i in range(200)]
    before = {u: shard_of(u, 8) for u in ids}
    after = {u: shard_of(u, 8) for u in ids + [f"new{i}" for i in range(50)]}
    assert all(after[u] == before[u] for u in ids)
    assert len(set(before.values())) == 8


def test_fold_columns_travel_through_ingest(media: Path, tmp_path: Path) -> None:
    rows = [good_row("a", split_loso_00="test", split_loso_01="train"),
            good_row("b", split_loso_00="dev", split_loso_01=""),
            good_row("c", split_loso_00="holdout", split_loso_01="test")]
    source = _write_manifest(media, rows)
    ingest_corpus(source, tmp_path / "m.parquet", tmp_path / "r.parquet",
                  IngestOptions("demo", 2, label_specs(LABELS)))
    manifest = pd.read_parquet(tmp_path / "m.parquet")
    rejected = pd.read_parquet(tmp_path / "r.parquet")
    assert manifest["split_loso_00"].tolist() == ["test", "valid"]
    assert manifest["split_loso_01"].tolist()[0] == "train" and pd.isna(manifest["split_loso_01"][1])
    assert rejected["field"].tolist() == ["split_loso_00"] and "holdout" in rejected["reason"][0]


def _options(corpus: str = "demo", **kwargs) -> IngestOptions:
    return IngestOptions(corpus, 2, label_specs(LABELS), **kwargs)


def test_an_undecodable_byte_costs_its_row_not_the_corpus(media: Path, tmp_path: Path) -> None:
    source = _write_manifest(media, [good_row("a"), good_row("b", transcript="caf@@ au lait"), good_row("c")])
    source.write_bytes(source.read_bytes().replace(b"@@", b"\xe9"))
    accepted, _ = ingest_corpus(source, tmp_path / "m.parquet", tmp_path / "r.parquet", _options())
    rejected = pd.read_parquet(tmp_path / "r.parquet")
    assert accepted == 2 and rejected["row"].tolist() == [2] and rejected["field"].tolist() == ["transcript"]
    assert "not valid utf-8 text (byte 0xe9 at character 4)" in rejected["reason"][0]
    # The same file read as latin-1 is whole.
    accepted, _ = ingest_corpus(source, tmp_path / "m.parquet", tmp_path / "r.parquet",
                                _options(encoding="latin-1"))
    assert accepted == 3
    assert pd.read_parquet(tmp_path / "m.parquet").set_index("utt_id").loc["b", "transcript"] == "café au lait"


def test_bad_json_lines_are_rejected_by_number(media: Path, tmp_path: Path) -> None:
    good = json.dumps(good_row("a"))
    (media / "m.jsonl").write_bytes(f"{good}\n{{\"utt_id\": \"b\",\n[1, 2]\n".encode()
                                    + json.dumps(good_row("d")).encode().replace(b"ask", b"\xffsk") + b"\n")
    accepted, _ = ingest_corpus(media / "m.jsonl", tmp_path / "m.parquet", tmp_path / "r.parquet", _options())
    rejected = pd.read_parquet(tmp_path / "r.parquet")
    assert accepted == 1
    reasons = dict(zip(rejected["row"], rejected["reason"]))
    assert "line 2 is not valid JSON" in reasons[2] and "a JSON list, not an object" in reasons[3]
    assert "byte 0xff" in reasons[4]


def test_all_rows_rejected_writes_an_empty_manifest(media: Path, tmp_path: Path) -> None:
    source = _write_manifest(media, [good_row("a", audio_path="x.wav"), good_row("b", emotion="joy")])
    accepted, records = ingest_corpus(source, tmp_path / "m.parquet", tmp_path / "r.parquet", _options())
    assert (accepted, records) == (0, 2)
    manifest = pd.read_parquet(tmp_path / "m.parquet")
    assert len(manifest) == 0 and {"utt_id", "words", "shard", "emotion"} <= set(manifest.columns)


def test_configured_label_columns_missing_from_the_manifest_are_named(media: Path, tmp_path: Path) -> None:
    source = _write_manifest(media, [good_row("a")])
    options = IngestOptions("demo", 2, label_specs({**LABELS, "arousl": {"type": "regression"}}))
    with pytest.raises(ManifestError, match=r"'arousl' named under corpora\.demo\.labels are not in the "
                                            r"manifest \(the manifest has: audio_path, emotion"):
        ingest_corpus(source, tmp_path / "m.parquet", tmp_path / "r.parquet", options)


def test_fold_protocols_make_split_optional(media: Path, tmp_path: Path) -> None:
    rows = [good_row("a", split="", split_loso_00="train"), good_row("b", split="", split_loso_00="test")]
    source = _write_manifest(media, rows)
    with pytest.raises(ManifestError, match="protocol 'session' needs fold columns split_session_<k>"):
        ingest_corpus(source, tmp_path / "m.parquet", tmp_path / "r.parquet", _options(protocol="session"))
    accepted, _ = ingest_corpus(source, tmp_path / "m.parquet", tmp_path / "r.parquet", _options(protocol="loso"))
    assert accepted == 2 and pd.read_parquet(tmp_path / "m.parquet")["split"].isna().all()
    _, records = ingest_corpus(source, tmp_path / "m.parquet", tmp_path / "r.parquet", _options())
    reason = pd.read_parquet(tmp_path / "r.parquet")["reason"][0]
    assert records == 2 and "with a fold protocol, `split` may be empty" in reason


def test_honest_reasons_instead_of_raw_exceptions(media: Path, tmp_path: Path) -> None:
    (media / "folder.wav").mkdir()
    (media / "loop.wav").symlink_to(media / "loop.wav")
    (media / "dangling.wav").symlink_to(media / "gone.wav")
    (media / "empty.wav").write_bytes(b"")
    rows = [good_row("inf", end_s="inf"), good_row("nan", sentiment="NaN"), good_row("dir", audio_path="folder.wav"),
            good_row("loop", audio_path="loop.wav"), good_row("dangling", audio_path="dangling.wav"),
            good_row("empty", audio_path="empty.wav"), good_row("big", sentiment="1e400")]
    source = _write_manifest(media, rows)
    ingest_corpus(source, tmp_path / "m.parquet", tmp_path / "r.parquet", _options())
    manifest = pd.read_parquet(tmp_path / "m.parquet")
    reasons = pd.read_parquet(tmp_path / "r.parquet").set_index("utt_id")["reason"]
    assert manifest["utt_id"].tolist() == ["nan"] and pd.isna(manifest["sentiment"][0])  # NaN: missing
    assert "end_s: not a finite number: 'inf'" in reasons["inf"]
    assert "is a directory, not a file" in reasons["dir"]
    assert "symbolic link loop" in reasons["loop"]
    assert "broken symbolic link" in reasons["dangling"] and "gone.wav" in reasons["dangling"]
    assert "empty file (0 bytes)" in reasons["empty"]
    assert "not a finite number: '1e400'" in reasons["big"]
    assert not reasons.str.contains("Error").any()


def test_lone_surrogates_stray_quotes_and_integer_nulls(media: Path, tmp_path: Path) -> None:
    """A JSON escape of half an emoji costs its row; a quote in a TSV is text; a Parquet
    integer label column with nulls keeps its integers."""
    rows = [json.dumps(good_row("a")), json.dumps(good_row("b", transcript="cut \ud83d here"))]
    (media / "m.jsonl").write_text("\n".join(rows) + "\n")
    accepted, _ = ingest_corpus(media / "m.jsonl", tmp_path / "m.parquet", tmp_path / "r.parquet", _options())
    assert accepted == 1
    assert "lone surrogate U+D83D" in pd.read_parquet(tmp_path / "r.parquet")["reason"][0]
    tsv = _write_manifest(media, [good_row("a"), good_row("b"), good_row("c")], "m.tsv")
    tsv.write_text(tsv.read_text().replace("ask not", '"unterminated', 1).replace("ask not", '"Hi," she said', 1))
    accepted, _ = ingest_corpus(tsv, tmp_path / "m.parquet", tmp_path / "r.parquet", _options())
    transcripts = pd.read_parquet(tmp_path / "m.parquet")["transcript"].tolist()
    assert accepted == 3 and transcripts[:2] == ['"unterminated', '"Hi," she said']
    frame = pd.DataFrame([good_row("a"), good_row("b")]).assign(turn=pd.array([1, None], "Int64"))
    frame["flag"] = pd.array([1, None], "Int64")
    # as pyarrow, polars or DuckDB write it: no pandas metadata, so pandas alone reads floats
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(None),
                   media / "m.parquet")
    options = IngestOptions("demo", 2, label_specs({"flag": {"type": "binary"}}))
    accepted, _ = ingest_corpus(media / "m.parquet", tmp_path / "m.parquet", tmp_path / "r.parquet", options)
    assert accepted == 2 and pd.read_parquet(tmp_path / "m.parquet")["flag"].tolist()[0] == 1.0


def test_media_paths_keep_their_links(media: Path, tmp_path: Path) -> None:
    """A symlinked clip is recorded by its own path (not its target), so repointing the link
    is a change of that file."""
    source = _write_manifest(media, [good_row("a")])
    ingest_corpus(source, tmp_path / "m.parquet", tmp_path / "r.parquet", _options())
    assert pd.read_parquet(tmp_path / "m.parquet")["audio_path"][0] == str(media / "wav" / "jfk.flac")


def test_byte_identical_media_are_reported_and_optionally_rejected(media: Path, tmp_path: Path, caplog) -> None:
    data = (media / "wav" / "jfk.flac").read_bytes()
    (media / "copy.flac").write_bytes(data)
    (media / "other.flac").write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # same size, other bytes
    rows = [good_row("a"), good_row("b", start_s="4", end_s="6"),  # one file, two segments: fine
            good_row("c", audio_path="copy.flac"), good_row("d", audio_path="other.flac")]
    source = _write_manifest(media, rows)
    accepted, _ = ingest_corpus(source, tmp_path / "m.parquet", tmp_path / "r.parquet", _options())
    assert accepted == 4
    warnings = [r.getMessage() for r in caplog.records if "byte-identical" in r.getMessage()]
    assert len(warnings) == 1 and "row 3 (c)" in warnings[0] and "'a' (row 1" in warnings[0]
    accepted, _ = ingest_corpus(source, tmp_path / "m.parquet", tmp_path / "r.parquet",
                                _options(duplicate_media="reject"))
    rejected = pd.read_parquet(tmp_path / "r.parquet")
    assert accepted == 3 and rejected["utt_id"].tolist() == ["c"]
    assert "duplicate media" in rejected["reason"][0] and "'a' (row 1" in rejected["reason"][0]
