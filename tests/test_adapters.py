"""Dataset adapters: real EmoDB/MELD/MUStARD from ../shared/data, built fixtures for the MMSA raw
layout and IEMOCAP, and malformed inputs that must fail naming the file and the field."""

from __future__ import annotations

import json
import os
import pickle
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectflow.demo.encode import write_mp4, write_wav
from affectflow.ingest.adapters import (
    ADAPTERS, BASE_COLUMNS, emodb, fix_mojibake, iemocap, meld, mmsa_raw, mustard,
    write_adapter_manifest,
)
from affectflow.ingest.adapters.safe_pickle import UnsafePickleError, safe_unpickle
from affectflow.ingest.manifest import IngestOptions, ManifestError, read_table, validate_manifest
from affectflow.ingest.run import label_specs


def assert_valid(manifest: pd.DataFrame, labels: dict, corpus: str) -> None:
    """The adapter's output passes the generic validator with no rejected row."""
    assert list(manifest.columns[:len(BASE_COLUMNS)]) == list(BASE_COLUMNS)
    accepted, rejected = validate_manifest(manifest, f"{corpus}.csv", IngestOptions(corpus, 4, label_specs(labels)))
    assert rejected.empty, rejected["reason"].tolist()[:5]
    assert len(accepted) == len(manifest)


# ------------------------------------------------------------------ EmoDB (real)

@pytest.fixture(scope="module")
def emodb_manifest(shared_data: Path) -> pd.DataFrame:
    return emodb.build_manifest(shared_data / "emodb")


@pytest.mark.shared_data
def test_emodb_real_files(emodb_manifest: pd.DataFrame, shared_data: Path) -> None:
    m = emodb_manifest
    names = sorted(p.stem for p in (shared_data / "emodb" / "wav").glob("*.wav"))
    assert len(m) == 535 == len(names) and m["utt_id"].tolist() == names
    assert m["speaker"].nunique() == 10
    letters = Counter(n[5] for n in names)  # counted from the file names themselves
    assert dict(m["emotion"].value_counts()) == {emodb.EMOTION_LETTERS[k]: v for k, v in letters.items()}
    assert dict(m["emotion"].value_counts()) == {"anger": 127, "boredom": 81, "neutral": 79,
                                                 "happiness": 71, "fear": 69, "sadness": 62,
                                                 "disgust": 46}
    row = m.set_index("utt_id").loc["03a01Fa"]
    assert (row["emotion"], row["speaker"], row["sentence"], row["version"], row["gender"]) == (
        "happiness", "03", "a01", "a", "m")  # F is Freude (happiness), never disgust
    assert row["transcript"] == "Der Lappen liegt auf dem Eisschrank."
    assert row["recognition"] == 90.0 and row["naturalness"] == 75.0
    assert dict(m.drop_duplicates("speaker")["gender"].value_counts()) == {"m": 5, "f": 5}
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in m["audio_path"])
    assert m["recognition"].min() >= 80  # the corpus kept utterances recognised by >= 80 %
    assert_valid(m, emodb.LABELS, "emodb")


@pytest.mark.shared_data
def test_emodb_leave_one_speaker_out(emodb_manifest: pd.DataFrame) -> None:
    folds = emodb.loso_folds(emodb_manifest)
    speakers = sorted(emodb.SPEAKERS)
    assert len(folds) == 10 and [f["test"] for f in folds] == [[s] for s in speakers]
    for k, fold in enumerate(folds):
        assert fold["valid"] == [speakers[(k + 1) % 10]]
        assert sorted(fold["train"] + fold["valid"] + fold["test"]) == speakers
        split = emodb.apply_fold(emodb_manifest, fold)
        by_split = split.groupby("split")["speaker"].unique()
        assert list(by_split["test"]) == fold["test"] and list(by_split["valid"]) == fold["valid"]
        assert len(by_split["train"]) == 8
    assert set(emodb_manifest.loc[emodb_manifest["split"] == "test", "speaker"]) == {"03"}


def test_emodb_unknown_emotion_letter(tmp_path: Path) -> None:
    (tmp_path / "wav").mkdir()
    write_wav(tmp_path / "wav" / "03a01Fa.wav", np.zeros(800, np.int16), 16000)
    (tmp_path / "wav" / "03a01Xa.wav").write_bytes((tmp_path / "wav" / "03a01Fa.wav").read_bytes())
    with pytest.raises(ManifestError, match=r"03a01Xa\.wav: emotion letter 'X'"):
        emodb.build_manifest(tmp_path)


# ------------------------------------------------------------------ MELD (real)

@pytest.fixture(scope="module")
def meld_manifest(shared_data: Path) -> pd.DataFrame:
    return meld.build_manifest(shared_data / "meld")


@pytest.mark.shared_data
def test_meld_real_splits(meld_manifest: pd.DataFrame) -> None:
    m = meld_manifest
    assert dict(m["split"].value_counts()) == {"train": 9989, "valid": 1109, "test": 2610}
    assert m["utt_id"].is_unique and m.loc[0, "utt_id"] == "train_dia0_utt0"
    assert m.loc[0, "dialogue_id"] == "train_dia0" and m.loc[0, "speaker"] == "Chandler"
    assert set(m["emotion"]) == set(meld.EMOTIONS) and set(m["sentiment_class"]) == set(meld.SENTIMENTS)
    assert dict(m.loc[m["split"] == "train", "emotion"].value_counts())["neutral"] == 4710
    assert m.loc[0, "clip_start_s"] == pytest.approx(16 * 60 + 16.059)
    assert m["start_s"].isna().all() and m["video_path"].isna().all()
    assert not m["transcript"].str.contains("[\u0080-\u009f]|â€|Ã", regex=True).any()
    assert m.groupby("dialogue_id").ngroups == 1038 + 114 + 280
    assert_valid(m, meld.LABELS, "meld")


@pytest.mark.shared_data
def test_meld_context(meld_manifest: pd.DataFrame) -> None:
    m = meld.with_context(meld_manifest.head(40), 2)
    assert m.loc[0, "context"] == ""
    assert m.loc[1, "context"] == "Chandler: " + m.loc[0, "transcript"]
    assert m.loc[3, "context"].split(" [SEP] ") == [
        f"{m.loc[i, 'speaker']}: {m.loc[i, 'transcript']}" for i in (1, 2)]
    assert meld.with_context(meld_manifest.head(5), None).loc[4, "context"].count(" [SEP] ") == 3


MELD_HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"


def _meld_root(tmp_path: Path, lines: list[str], header: str = MELD_HEADER) -> Path:
    root = tmp_path / "meld"
    root.mkdir()
    (root / "train_sent_emo.csv").write_bytes(("\n".join([header] + lines) + "\n").encode("cp1252"))
    return root


def test_meld_cp1252_mojibake_and_videos(tmp_path: Path) -> None:
    root = _meld_root(tmp_path, [
        '1,"You\u2019re \u201csure\u201d\u2026",Ross,joy,positive,0,0,1,1,"0:00:01,000","0:00:02,500"',
        '2,It\u2019s fine,Rachel,neutral,neutral,0,1,1,1,"00:00:03,000","00:00:04,000"'])
    # The file is cp1252 (’ is byte 0x92, not UTF-8): decoded as cp1252, not as mojibake.
    videos = tmp_path / "MELD.Raw"
    (videos / "train_splits").mkdir(parents=True)
    (videos / "train_splits" / "dia0_utt0.mp4").write_bytes(b"\x00")
    m = meld.build_manifest(root, video_root=videos, splits=("train",), context_turns=1)
    assert m["transcript"].tolist() == ["You’re “sure”…", "It’s fine"]
    assert m.loc[0, "video_path"] == str((videos / "train_splits" / "dia0_utt0.mp4").resolve())
    assert m.loc[1, "video_path"] is None and m.loc[1, "context"] == "Ross: You’re “sure”…"
    assert m.loc[0, "clip_end_s"] == 2.5
    ascii_m = meld.build_manifest(root, splits=("train",), ascii_punct=True)
    assert ascii_m.loc[0, "transcript"] == "You're \"sure\"..."


@pytest.mark.parametrize("header, line, message", [
    (MELD_HEADER.replace("Emotion,", "Feeling,"), "1,Hi,Ross,joy,positive,0,0,1,1,\"0:00:01,0\",\"0:00:02,0\"",
     r"train_sent_emo\.csv: missing column\(s\) 'Emotion'"),
    (MELD_HEADER, "1,Hi,Ross,joy,positive,0,0,1,1,soon,\"0:00:02,0\"",
     r"train_sent_emo\.csv, row 2: StartTime: not a time"),
    (MELD_HEADER, "1,Hi,Ross,happy,positive,0,0,1,1,\"0:00:01,0\",\"0:00:02,0\"",
     r"train_sent_emo\.csv, row 2: Emotion: unknown label 'happy'"),
])
def test_meld_malformed(tmp_path: Path, header: str, line: str, message: str) -> None:
    root = _meld_root(tmp_path, [line], header)
    with pytest.raises(ManifestError, match=message):
        meld.build_manifest(root, splits=("train",))


# ------------------------------------------------------------------ MUStARD (real)

@pytest.fixture(scope="module")
def mustard_manifest(shared_data: Path) -> pd.DataFrame:
    return mustard.build_manifest(shared_data / "mustard", fold=None)


@pytest.mark.shared_data
def test_mustard_real_and_official_folds(mustard_manifest: pd.DataFrame, shared_data: Path) -> None:
    m = mustard_manifest
    assert len(m) == 690 and dict(m["sarcasm"].value_counts()) == {0: 345, 1: 345}
    data = json.loads((shared_data / "mustard" / "sarcasm_data.json").read_text())
    assert m["utt_id"].tolist() == list(data)  # rows in file order, ids are the JSON keys
    folds = mustard.load_split_indices(shared_data / "mustard" / "split_indices.p", 690)
    assert len(folds) == 5 and all(len(tr) == 552 and len(te) == 138 for tr, te in folds)
    assert sorted(i for _, te in folds for i in te) == list(range(690))  # each index tested once
    # Stratified 5-fold: 69 sarcastic per test fold, which holds for the Python 2 dict order...
    assert m.groupby("cv_fold")["sarcasm"].sum().tolist() == [69] * 5
    # ...and not for the key order of the file (the indices were made under Python 2.7).
    in_file_order = m["sarcasm"].to_numpy()
    assert [int(in_file_order[te].sum()) for _, te in folds] == [74, 71, 63, 76, 61]
    row = m.set_index("utt_id").loc["1_60"]
    assert row["speaker"] == "SHELDON" and row["show"] == "BBT" and row["sarcasm"] == 1
    assert row["context"] == ("LEONARD: I never would have identified the fingerprints of string "
                              "theory in the aftermath of the Big Bang. [SEP] SHELDON: My "
                              "apologies. What's your plan?")
    assert m.set_index("utt_id").loc["2_272", "transcript"] == "We’re not peeking?"  # was mojibake
    fold2 = mustard.apply_fold(m, 2)
    assert (fold2["split"] == "test").sum() == 138 and (fold2["split"] == "valid").sum() == 54
    assert fold2.groupby("split")["sarcasm"].mean().to_dict() == {"test": 0.5, "train": 0.5, "valid": 0.5}
    assert_valid(fold2, mustard.LABELS, "mustard")


@pytest.mark.shared_data
def test_mustard_speaker_independent_and_context(mustard_manifest: pd.DataFrame) -> None:
    si = mustard.apply_fold(mustard_manifest, "speaker_independent", valid_fraction=0)
    assert set(si.loc[si["split"] == "test", "show"]) == {"FRIENDS"}
    assert dict(si["split"].value_counts()) == {"test": 356, "train": 334}
    assert set(si.loc[si["split"] == "train", "show"]) == {"BBT", "GOLDENGIRLS", "SARCASMOHOLICS"}
    last = mustard.with_context(mustard_manifest, 1).set_index("utt_id").loc["1_60", "context"]
    assert last == "SHELDON: My apologies. What's your plan?"
    assert (mustard.with_context(mustard_manifest, 0)["context"] == "").all()


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_malicious_pickles_are_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    evil = pickle.dumps([(_Evil(marker), [1])], protocol=2)
    with pytest.raises(UnsafePickleError, match=r"global (posix|os|nt)\.system refused"):
        safe_unpickle(evil)
    root = tmp_path / "mustard"
    root.mkdir()
    (root / "sarcasm_data.json").write_text(json.dumps({"1_1": {
        "utterance": "Sure.", "speaker": "A", "context": [], "context_speakers": [],
        "show": "BBT", "sarcasm": True}}))
    (root / "split_indices.p").write_bytes(evil)
    with pytest.raises(ManifestError, match=r"split_indices\.p: global .*system refused"):
        mustard.build_manifest(root)
    for payload in (pickle.dumps(eval), pickle.dumps(np.array([object()], dtype=object)),
                    pickle.dumps({"a": 1}), b"not a pickle"):
        with pytest.raises(ManifestError):
            (root / "split_indices.p").write_bytes(payload)
            mustard.build_manifest(root)
    assert not marker.exists()


def test_safe_unpickle_reads_plain_and_numpy_indices() -> None:
    value = [(np.array([1, 2, 300]), np.array([-4, 5], dtype=">i4")), ([0, 1], (2,))]
    for protocol in (3, 4, 5):
        assert safe_unpickle(pickle.dumps(value, protocol=protocol)) == [
            [[1, 2, 300], [-4, 5]], [[0, 1], [2]]]
    with pytest.raises(UnsafePickleError, match="dtype 'f8' refused"):
        safe_unpickle(pickle.dumps(np.array([1.5]), protocol=4))


def test_mixed_mojibake() -> None:
    assert fix_mojibake("donÕt") == fix_mojibake("donâ€™t") == fix_mojibake("don\x92t") == "don’t"
    assert fix_mojibake("Weā€™re café naïve") == "We’re café naïve"


# ------------------------------------------------------------------ MMSA raw (fixture)

@pytest.fixture(scope="module")
def tiny_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    samples = (np.sin(np.arange(4000) / 10) * 3000).astype(np.int16)
    write_mp4(path, lambda i: np.full((32, 32, 3), 40 * i, np.uint8), 5, 10, 32, samples, 8000)
    return path


def _mmsa_root(tmp_path: Path, mp4: Path, rows: list[str], header: str, clips: list[tuple[str, str]]) -> Path:
    root = tmp_path / "SIMS"
    for video_id, clip_id in clips:
        (root / "Raw" / video_id).mkdir(parents=True, exist_ok=True)
        os.link(mp4, root / "Raw" / video_id / f"{clip_id}.mp4")
    (root / "label.csv").write_text("\n".join([header] + rows) + "\n")
    return root


SIMS_HEADER = "video_id,clip_id,text,label,label_T,label_A,label_V,annotation,mode"


def test_mmsa_raw_layout(tmp_path: Path, tiny_mp4: Path) -> None:
    clips = [("video_0001", "0001"), ("video_0001", "0002"), ("video_0002", "0001")]
    root = _mmsa_root(tmp_path, tiny_mp4, [
        "video_0001,0001,我很开心。,0.8,1.0,0.6,0.8,Positive,train",
        "video_0001,0002,还行吧,0.0,0.2,-0.2,0.0,Neutral,valid",
        'video_0002,0001,"No, never.",-0.6,-0.8,-0.4,-0.2,Negative,test'], SIMS_HEADER, clips)
    m = ADAPTERS["mmsa_raw"](root)
    assert m["utt_id"].tolist() == ["video_0001_0001", "video_0001_0002", "video_0002_0001"]
    assert m["split"].tolist() == ["train", "valid", "test"] and m["dataset"].iloc[0] == "sims"
    assert m["sentiment"].tolist() == [0.8, 0.0, -0.6] and m["sentiment_A"].tolist() == [0.6, -0.2, -0.4]
    assert m["sentiment_class"].tolist() == ["positive", "neutral", "negative"]
    assert m["turn"].tolist() == [1, 2, 1] and m["clip_id"].iloc[0] == "0001"
    assert m["video_path"].iloc[2] == str((root / "Raw" / "video_0002" / "0001.mp4").resolve())
    assert_valid(m, mmsa_raw.LABELS, "sims")
    out = write_adapter_manifest("mmsa_raw", root, tmp_path / "out" / "manifest.csv")
    back = read_table(out)
    assert back["utt_id"].tolist() == m["utt_id"].tolist() and back.loc[1, "clip_id"] == "0002"
    assert back.loc[0, "transcript"] == "我很开心。"


@pytest.mark.parametrize("row, message", [
    ("v1,1,Hi,0.5,,,,Positive,training", r"label\.csv, row 2: mode: unknown split 'training'"),
    ("v1,1,Hi,lots,,,,Positive,train", r"label\.csv, row 2: label: not a number: 'lots'"),
    ("v1,2,Hi,0.5,,,,Positive,train", r"label\.csv, row 2: video file not found: .*v1/2\.mp4"),
])
def test_mmsa_raw_malformed(tmp_path: Path, tiny_mp4: Path, row: str, message: str) -> None:
    root = _mmsa_root(tmp_path, tiny_mp4, [row], SIMS_HEADER, [("v1", "1")])
    with pytest.raises(ManifestError, match=message):
        mmsa_raw.build_manifest(root)


def test_mmsa_raw_missing_column_and_missing_media_options(tmp_path: Path, tiny_mp4: Path) -> None:
    root = _mmsa_root(tmp_path, tiny_mp4, ["v1,1,Hi,0.5,train", "v1,2,Yo,-1,test"],
                      "video_id,clip_id,text,label,mode", [("v1", "1")])
    assert mmsa_raw.build_manifest(root, on_missing="drop")["utt_id"].tolist() == ["v1_1"]
    kept = mmsa_raw.build_manifest(root, on_missing="keep")
    assert kept.loc[1, "video_path"] is None and "sentiment_T" not in kept.columns
    assert_valid(kept, {"sentiment": mmsa_raw.LABELS["sentiment"]}, "mosi")
    (root / "label.csv").write_text("video_id,clip_id,text,mode\nv1,1,Hi,train\n")
    with pytest.raises(ManifestError, match=r"label\.csv: missing column\(s\) 'label'"):
        mmsa_raw.build_manifest(root)


# ------------------------------------------------------------------ IEMOCAP (fixture)

IEMOCAP = {  # session -> dialog -> [(utt id, start, end, label, [V, A, D], text)]
    1: {"Ses01F_impro01": [
        ("Ses01F_impro01_F000", 6.2901, 8.2357, "neu", (2.5, 2.5, 2.5), "Excuse me."),
        ("Ses01F_impro01_M000", 7.5712, 10.4750, "fru", (2.0, 3.5, 3.5), "Do you have your forms?"),
        ("Ses01F_impro01_F001", 10.0100, 11.3925, "exc", (4.0, 4.0, 3.0), "Yeah."),
        ("Ses01F_impro01_M001", 14.8872, 18.0175, "xxx", (2.5, 3.0, 3.0), "Let me see them."),
    ]},
    2: {"Ses02M_script01_1": [
        ("Ses02M_script01_1_M000", 1.0, 2.5, "ang", (1.5, 4.5, 4.0), "Get out."),
        ("Ses02M_script01_1_F000", 3.0, 4.0, "sad", (1.5, 1.5, 2.0), "I miss him."),
        ("Ses02M_script01_1_F001", 4.5, 6.0, "hap", (4.5, 3.5, 3.0), "Oh, wonderful!"),
    ]},
}


def _iemocap_root(tmp_path: Path, broken_line: str | None = None) -> Path:
    root = tmp_path / "IEMOCAP_full_release"
    noise = (np.random.default_rng(0).normal(0, 500, 1600)).astype(np.int16)
    for session, dialogs in IEMOCAP.items():
        base = root / f"Session{session}"
        for folder in ("dialog/EmoEvaluation/Categorical", "dialog/transcriptions"):
            (base / folder).mkdir(parents=True, exist_ok=True)
        for dialog, utts in dialogs.items():
            lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            trans = ["M: [BREATHING]"]
            (base / "sentences" / "wav" / dialog).mkdir(parents=True)
            for utt, start, end, code, vad, text in utts:
                lines += [f"[{start:.4f} - {end:.4f}]\t{utt}\t{code}\t[{vad[0]:.4f}, {vad[1]:.4f}, {vad[2]:.4f}]",
                          "C-E2:\tNeutral;\t()", "A-E3:\tval 3; act 2; dom  2;\t()", ""]
                trans.append(f"{utt} [{start:08.4f}-{end:08.4f}]: {text}")
                write_wav(base / "sentences" / "wav" / dialog / f"{utt}.wav", noise, 16000)
            if broken_line and session == 1:
                lines.insert(2, broken_line)
            (base / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(lines) + "\n")
            (base / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("\n".join(trans) + "\n")
    seg = root / "Session1" / "sentences" / "ForcedAlignment" / "Ses01F_impro01"
    seg.mkdir(parents=True)
    (seg / "Ses01F_impro01_F000.wdseg").write_text(
        " SFrm  EFrm    SegAScr Word\n    0    32    -477350 <s>\n   33    62    -363669 EXCUSE(2)\n"
        "   63    81    -205436 ME\n   82   100    -100000 ++BREATH++\n  101   183   -1097013 </s>\n"
        " Total score:     -2143468\n")
    return root


def test_iemocap_layout(tmp_path: Path) -> None:
    root = _iemocap_root(tmp_path)
    m = iemocap.build_manifest(root)
    assert len(m) == 7 and m["utt_id"].is_unique
    row = m.set_index("utt_id").loc["Ses01F_impro01_M000"]
    assert (row["speaker"], row["dialogue_id"], row["turn"], row["transcript"]) == (
        "Ses01M", "Ses01F_impro01", 1, "Do you have your forms?")
    assert (row["emotion_raw"], row["emotion6"]) == ("fru", "frustrated")
    assert pd.isna(row["emotion4"]) and pd.isna(row["emotion"])  # unmapped: a missing label
    assert (row["valence"], row["activation"], row["dominance"]) == (2.0, 3.5, 3.5)
    assert row["dialog_start_s"] == 7.5712 and pd.isna(row["start_s"]) and row["improvised"]
    exc = m.set_index("utt_id").loc["Ses01F_impro01_F001"]
    assert (exc["emotion4"], exc["emotion6"]) == ("happy", "excited")
    assert set(m["speaker"]) == {"Ses01F", "Ses01M", "Ses02F", "Ses02M"}
    assert dict(m["split"].value_counts()) == {"test": 3, "valid": 4}  # default: test = last session
    words = m.set_index("utt_id").loc["Ses01F_impro01_F000", "words"]
    assert words == [{"word": "excuse", "start_s": 0.33, "end_s": 0.63},
                     {"word": "me", "start_s": 0.63, "end_s": 0.82}]
    assert_valid(m.drop(columns=["words"]), iemocap.LABELS, "iemocap")
    six = iemocap.build_manifest(root, scheme="6class", drop_unmapped=True, fold=None)
    assert six["emotion"].tolist() == ["neutral", "frustrated", "excited", "angry", "sad", "happy"]
    assert iemocap.build_manifest(root, drop_unmapped=True)["emotion"].notna().all()
    out = write_adapter_manifest("iemocap", root, tmp_path / "out" / "manifest.csv")
    back = read_table(out)
    words_path = back.set_index("utt_id").loc["Ses01F_impro01_F000", "words_path"]
    assert json.loads(Path(words_path).read_text())[0]["word"] == "excuse"
    accepted, rejected = validate_manifest(back, out, IngestOptions("iemocap", 2, label_specs(iemocap.LABELS)))
    assert rejected.empty and accepted.set_index("utt_id").loc["Ses01F_impro01_F000", "words"][1]["word"] == "me"


def test_iemocap_session_folds() -> None:
    folds = iemocap.session_folds()
    assert [f["test"] for f in folds] == [[1], [2], [3], [4], [5]]
    assert [f["valid"] for f in folds] == [[2], [3], [4], [5], [1]]
    assert all(sorted(f["train"] + f["valid"] + f["test"]) == [1, 2, 3, 4, 5] for f in folds)


@pytest.mark.parametrize("line, message", [
    ("[6.2901 - ]\tSes01F_impro01_F009\tneu\t[2.5, 2.5, 2.5]", r"line 3: time range: not 'start - end'"),
    ("[9.0 - 8.0]\tSes01F_impro01_F009\tneu\t[2.5, 2.5, 2.5]", r"line 3: time range: end 8\.0 is not after"),
    ("[1.0 - 2.0]\tSes01F_impro01_F009\tjoy\t[2.5, 2.5, 2.5]", r"line 3: label: unknown 'joy'"),
    ("[1.0 - 2.0]\tSes01F_impro01_F009\tneu\t[2.5, 2.5]", r"line 3: \[V, A, D\]: expected 3 numbers"),
])
def test_iemocap_malformed_evaluation(tmp_path: Path, line: str, message: str) -> None:
    root = _iemocap_root(tmp_path, broken_line=line)
    with pytest.raises(ManifestError, match=r"EmoEvaluation/Ses01F_impro01\.txt, " + message):
        iemocap.build_manifest(root)


def test_iemocap_missing_wav(tmp_path: Path) -> None:
    root = _iemocap_root(tmp_path)
    (root / "Session2" / "sentences" / "wav" / "Ses02M_script01_1" / "Ses02M_script01_1_F000.wav").unlink()
    with pytest.raises(ManifestError, match=r"Ses02M_script01_1_F000: audio not found"):
        iemocap.build_manifest(root)
    assert len(iemocap.build_manifest(root, on_missing="drop")) == 6


def test_write_adapter_manifest_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="unknown dataset adapter 'casia'; known: emodb, meld"):
        write_adapter_manifest("casia", tmp_path, tmp_path / "m.csv")


@pytest.mark.shared_data
def test_written_csv_round_trips_through_ingest(tmp_path: Path, shared_data: Path) -> None:
    out = write_adapter_manifest("mustard", shared_data / "mustard", tmp_path / "mustard.csv", fold=0)
    back = read_table(out)
    assert json.loads(back.loc[0, "context_speakers"]) == ["LEONARD", "SHELDON"]
    accepted, rejected = validate_manifest(back, out, IngestOptions("mustard", 4, label_specs(mustard.LABELS)))
    assert rejected.empty and len(accepted) == 690
    out = write_adapter_manifest("emodb", shared_data / "emodb", tmp_path / "emodb.csv", fold=3)
    accepted, rejected = validate_manifest(read_table(out), out, IngestOptions("emodb", 4, label_specs(emodb.LABELS)))
    assert rejected.empty and set(accepted.loc[accepted["split"] == "test", "speaker"]) == {"10"}
