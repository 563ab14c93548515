"""Bad input through the whole DAG: 30+ kinds of broken rows and media, mixed with real clips.

The corpus is built at test time in a scratch folder (nothing is committed): good utterances
are real EmoDB recordings and real talking-head clips from ../shared/data; each bad case is
one row or one media file broken in one way. One Snakemake run must finish, reject every bad
case at the right stage with an honest reason, keep every good utterance (features in every
store that applies, a place in the dataset) and print the end-of-run summary. A second corpus
in the same config has only bad rows: it must end with an empty manifest and its rejected table.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from dag_helpers import base_config, processed_since, snakemake

pytestmark = pytest.mark.slow

CLASSES = ["anger", "boredom", "disgust", "fear", "happiness", "sadness", "neutral"]
LETTERS = dict(zip("WLEAFTN", CLASSES))
SR = 16000


def _speech(emodb: Path, name: str) -> tuple[np.ndarray, int]:
    samples, rate = sf.read(emodb / name, dtype="float32")
    return samples, rate


def _write(path: Path, samples: np.ndarray, rate: int, **kwargs) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, rate, **kwargs)
    return str(path)


class Corpus:
    """Rows of the bad-input manifest and what each must come to."""

    def __init__(self, folder: Path, shared: Path) -> None:
        self.folder, self.shared = folder, shared
        self.emodb = shared / "emodb" / "wav"
        self.media = shared / "media"
        self.rows: list[dict] = []
        # row number → (stage, field or None, reason substring); None: accepted everywhere
        self.expect: dict[int, tuple[str, str | None, str] | None] = {}
        self.good: set[str] = set()  # accepted with audio and text: must reach the dataset
        self._wavs = sorted(p.name for p in self.emodb.glob("*.wav"))

    def add(self, utt_id: str, expect: tuple[str, str | None, str] | None = None,
            good: bool = False, **cells) -> None:
        split = ("train", "train", "valid", "test")[len(self.rows) % 4]
        row = {"utt_id": utt_id, "speaker": f"s{len(self.rows) % 3}", "split": split,
               "transcript": f"case {utt_id} said aloud", "emotion": CLASSES[len(self.rows) % 7],
               "sentiment": "0.5"}
        row.update(cells)
        self.rows.append(row)
        self.expect[len(self.rows)] = expect
        if good:
            self.good.add(utt_id)

    def wav(self, index: int) -> str:
        return str(self.emodb / self._wavs[index])

    def file(self, name: str) -> Path:
        path = self.folder / "media" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def build_corpus(folder: Path, shared: Path) -> Corpus:
    c = Corpus(folder, shared)
    # Good utterances: real EmoDB speech (labels from the file names) and real video clips.
    for i in range(0, 120, 8):
        name = c._wavs[i]
        c.add(f"good_{name[:-4]}", None, good=True, audio_path=c.wav(i), emotion=LETTERS[name[5]],
              speaker=name[:2], split=("train", "train", "valid", "test")[(i // 8) % 4])
    c.add("good_obama", None, good=True, video_path=str(c.media / "obama_talking_head.mp4"),
          start_s="2", end_s="5", split="train")
    # A real face whose sound track holds no speech: its audio is rejected, its face is kept.
    c.add("silent_single_face", ("audio", None, "no speech"), video_path=str(c.media / "single_face.mp4"))
    speech, rate = _speech(c.emodb, c._wavs[3])
    # Accepted although unusual.
    c.add("ok_speech_then_silence", None, good=True, split="valid", audio_path=_write(
        c.file("long_silence.wav"), np.concatenate([speech, np.zeros(60 * rate, np.float32)]), rate))
    c.add("ok_low_rate", None, good=True, audio_path=_write(c.file("low_rate.wav"), speech[::2], rate // 2))
    stereo = np.repeat(np.interp(np.arange(0, len(speech), rate / 44100), np.arange(len(speech)), speech)[:, None],
                       2, axis=1).astype(np.float32)
    c.add("ok_stereo_flac", None, good=True, audio_path=_write(c.file("stereo.flac"), stereo, 44100))
    c.add("ok_unicode", None, good=True, audio_path=c.wav(5), transcript="Ça va? 你好 — naïve café 🙂")
    c.add("ok_nan_sentiment", None, good=True, audio_path=c.wav(6), sentiment="nan")
    c.add("ok_no_transcript", None, audio_path=c.wav(7), transcript="")          # text: not applicable
    c.add("ok_text_only", None, transcript="only words, no media at all")        # audio/face: n/a
    # Ingest: each row names the field and the reason.
    c.add("good_" + c._wavs[0][:-4], ("ingest", "utt_id", "duplicate utt_id"), audio_path=c.wav(0))
    c.add("", ("ingest", "utt_id", "empty utt_id"), audio_path=c.wav(9))
    c.add("bad_missing_file", ("ingest", "audio_path", "file not found"), audio_path=str(c.file("nope.wav")))
    (c.folder / "media" / "a_folder.wav").mkdir(parents=True)
    c.add("bad_directory", ("ingest", "audio_path", "is a directory"), audio_path=str(c.file("a_folder.wav")))
    loop = c.file("loop.wav")
    os.symlink(loop, loop)
    c.add("bad_symlink_loop", ("ingest", "audio_path", "symbolic link loop"), audio_path=str(loop))
    os.symlink(c.file("gone.wav"), c.file("dangling.wav"))
    c.add("bad_broken_link", ("ingest", "audio_path", "broken symbolic link"), audio_path=str(c.file("dangling.wav")))
    c.file("empty.wav").write_bytes(b"")
    c.add("bad_empty_file", ("ingest", "audio_path", "empty file"), audio_path=str(c.file("empty.wav")))
    c.add("bad_negative_start", ("ingest", "start_s", "negative start"), audio_path=c.wav(10), start_s="-1")
    c.add("bad_end_before_start", ("ingest", "end_s", "not after start"), audio_path=c.wav(11),
          start_s="1.5", end_s="0.5")
    c.add("bad_end_inf", ("ingest", "end_s", "not a finite number"), audio_path=c.wav(12), end_s="inf")
    c.add("bad_end_text", ("ingest", "end_s", "not a number"), audio_path=c.wav(13), end_s="soon")
    c.add("bad_label", ("ingest", "emotion", "unknown label 'joy'"), audio_path=c.wav(14), emotion="joy")
    c.add("bad_sentiment_range", ("ingest", "sentiment", "outside"), audio_path=c.wav(15), sentiment="7")
    c.add("bad_sentiment_inf", ("ingest", "sentiment", "not a finite number"), audio_path=c.wav(17),
          sentiment="-inf")
    c.add("bad_split", ("ingest", "split", "unknown split 'holdout'"), audio_path=c.wav(18), split="holdout")
    c.add("bad_encoding", ("ingest", "transcript", "not valid utf-8 text (byte 0xe9"), audio_path=c.wav(19),
          transcript="caf@@LATIN1@@ au lait")
    c.file("words_bad.json").write_text("[{\"word\": \"x\", ")
    c.add("bad_words_json", ("ingest", "words_path", "not valid JSON"), audio_path=c.wav(20),
          words_path=str(c.file("words_bad.json")))
    c.file("words_fields.json").write_text(json.dumps([{"word": "x"}]))
    c.add("bad_words_fields", ("ingest", "words_path", "a word without word, start_s and end_s"), audio_path=c.wav(21),
          words_path=str(c.file("words_fields.json")))
    c.file("words_order.json").write_text(json.dumps([{"word": "x", "start_s": 1.0, "end_s": 0.5}]))
    c.add("bad_words_order", ("ingest", "words_path", "a word that ends before it starts"), audio_path=c.wav(22),
          words_path=str(c.file("words_order.json")))
    c.add("bad_nothing", ("ingest", "audio_path", "nothing to extract"), transcript="")
    c.add("bad_turn", ("ingest", "turn", "not an integer"), audio_path=c.wav(23), turn="second")
    # Media prep and extractors: the utterance is rejected by the stage that reads it.
    c.file("noise_bytes.wav").write_bytes(np.random.default_rng(0).bytes(40_000))
    c.add("bad_corrupt_wav", ("audio", None, "cannot"), audio_path=str(c.file("noise_bytes.wav")))
    c.file("letter.mp3").write_text("Dear user, this is not audio.\n" * 50)
    c.add("bad_text_as_mp3", ("audio", None, "cannot"), audio_path=str(c.file("letter.mp3")))
    whole = c.file("whole.wav")
    _write(whole, np.tile(speech, 3), rate)
    c.file("truncated.wav").write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    c.add("bad_truncated_wav", ("audio", None, "truncated: decoded"), audio_path=str(c.file("truncated.wav")))
    mp4 = (c.media / "WolfgangLanger_Pexels.mp4").read_bytes()  # faststart: moov at the front
    c.file("truncated.mp4").write_bytes(mp4[: len(mp4) // 2])
    c.add("bad_truncated_mp4", ("audio", None, "truncated: decoded"), video_path=str(c.file("truncated.mp4")))
    c.add("bad_silence", ("audio", None, "no speech"),
          audio_path=_write(c.file("silence.wav"), np.zeros(3 * SR, np.float32), SR))
    noise = (np.random.default_rng(1).standard_normal(3 * SR) * 0.1).astype(np.float32)
    c.add("bad_white_noise", ("audio", None, "no speech"), audio_path=_write(c.file("noise.wav"), noise, SR))
    tone = (0.3 * np.sin(2 * math.pi * 440 * np.arange(3 * SR) / SR)).astype(np.float32)
    c.add("bad_tone", ("audio", None, "no speech"), audio_path=_write(c.file("tone.wav"), tone, SR))
    click = np.zeros(3 * SR, np.float32)
    click[SR:SR + 16] = 0.9
    c.add("bad_click", ("audio", None, "no speech"), audio_path=_write(c.file("click.wav"), click, SR))
    c.add("bad_too_short", ("audio", None, "shorter than"),
          audio_path=_write(c.file("short.wav"), speech[: rate // 10], rate))
    c.add("bad_segment_past_end", ("audio", None, "segment"), audio_path=c.wav(24), start_s="100", end_s="101")
    c.add("bad_no_face", ("face", None, "no face found"), video_path=str(c.media / "no_face.mp4"),
          transcript="")
    return c


def write_manifest(corpus: Corpus, path: Path) -> None:
    text = pd.DataFrame(corpus.rows).to_csv(index=False)
    path.write_bytes(text.encode("utf-8").replace(b"@@LATIN1@@", b"\xe9"))


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, shared_data: Path) -> dict:
    work = tmp_path_factory.mktemp("bad_input")
    corpus = build_corpus(work / "corpus", shared_data)
    write_manifest(corpus, work / "corpus" / "manifest.csv")
    (work / "all_bad.csv").write_text("utt_id,audio_path,split,emotion,sentiment\n"
                                      "x1,missing1.wav,train,anger,1\nx2,missing2.wav,test,anger,0\n"
                                      "x3,,train,joy,0\n")
    config = base_config(models=["linear"], seeds=[0], tasks={"emotion": {"weight": 1.0, "loss": "ce"}},
                         modalities={"audio": {"extractor": "egemaps", "view": "pooled"},
                                     "text": {"extractor": "text", "view": "pooled"}},
                         hparams={"max_epochs": 5, "patience": 2, "batch_size": 8, "hidden": 8})
    labels = {"emotion": {"type": "categorical", "classes": CLASSES},
              "sentiment": {"type": "regression", "min": -3, "max": 3}}
    config["corpora"] = {"bad": {"manifest": "corpus/manifest.csv", "shards": 2, "labels": labels},
                         "allbad": {"manifest": "all_bad.csv", "shards": 2, "labels": labels}}
    config["extractors"] = {"egemaps": config["extractors"]["egemaps"], "text": config["extractors"]["text"],
                            "face": {**config["extractors"]["face"], "fps": 2}}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    output = snakemake(work, "--cores", "2")
    return {"work": work, "corpus": corpus, "output": output, "config": config}


def _store(work: Path, extractor: str) -> pd.DataFrame:
    files = sorted((work / "results/bad/features" / extractor).glob("shard=*.parquet"))
    return pd.concat([pd.read_parquet(f, columns=["utt_id", "ok", "reason"]) for f in files])


def test_every_case_is_accepted_or_rejected_as_expected(built: dict) -> None:
    work, corpus = built["work"], built["corpus"]
    assert sum(e is not None for e in corpus.expect.values()) >= 30
    rejected = pd.read_parquet(work / "results/bad/rejected.parquet")
    ingest = rejected[rejected["stage"] == "ingest"]
    later = rejected[rejected["stage"] != "ingest"]
    problems = []
    for number, expected in corpus.expect.items():
        utt_id = corpus.rows[number - 1]["utt_id"]
        at_ingest = ingest[ingest["row"] == number]
        after = later[later["utt_id"] == utt_id] if utt_id and not at_ingest.size else later.iloc[0:0]
        if expected is None:
            if len(at_ingest) or len(after):
                problems.append(f"row {number} {utt_id}: expected accepted, got "
                                f"{(at_ingest['reason'].tolist() + after['reason'].tolist())}")
            continue
        stage, field, reason = expected
        found = at_ingest if stage == "ingest" else after[after["stage"] == stage]
        if field is not None:
            found = found[found["field"] == field]
        if not found["reason"].str.contains(reason, regex=False).any():
            problems.append(f"row {number} {utt_id}: expected {stage}/{field} '{reason}', got "
                            f"{at_ingest[['field', 'reason']].values.tolist() + after[['stage', 'reason']].values.tolist()}")
    assert not problems, "\n".join(problems)
    # Ingest reasons name the file and the row; no raw exception text reaches a reason.
    assert ingest["reason"].str.contains(r"manifest\.csv, row \d+: ").all()
    assert not rejected["reason"].str.contains("Error:|Traceback|OverflowError").any()


def test_good_utterances_have_features_and_reach_the_dataset(built: dict) -> None:
    work, corpus = built["work"], built["corpus"]
    for extractor in ("audio", "egemaps", "text"):
        store = _store(work, extractor).set_index("utt_id")
        bad = [u for u in corpus.good if not store.loc[u, "ok"]]
        assert not bad, (extractor, store.loc[bad, "reason"].tolist())
    face = _store(work, "face").set_index("utt_id")
    assert face.loc["good_obama", "ok"] and face.loc["silent_single_face", "ok"]
    from affectflow.train.dataset import load_dataset

    data = load_dataset(work / "results/bad/dataset.npz")  # the rows with every modality
    in_dataset = {u for split in data.splits.values() for u in split.utt_ids}
    assert corpus.good <= in_dataset, sorted(corpus.good - in_dataset)
    assert not {u for u in in_dataset if u.startswith("bad_")}
    metrics = json.loads((work / "results/bad/metrics.json").read_text())
    assert metrics["linear"]["emotion"]["acc"]["mean"] is not None


def test_not_applicable_is_no_rejection_and_the_run_says_what_it_skipped(built: dict) -> None:
    work, output = built["work"], built["output"]
    rejected = pd.read_parquet(work / "results/bad/rejected.parquet")
    assert not rejected["reason"].str.contains("not applicable").any()
    face = _store(work, "face").set_index("utt_id")
    assert face.loc["good_03a01Fa", "reason"].startswith("not applicable")  # audio-only row
    text = _store(work, "text").set_index("utt_id")
    assert text.loc["ok_no_transcript", "reason"].startswith("not applicable")
    summary = json.loads((work / "results/bad/rejected_summary.json").read_text())
    assert summary["not_applicable"]["face"] >= 20 and summary["not_applicable"]["text"] >= 1
    assert summary["accepted"] == len(built["corpus"].good) + 2  # + the no-transcript and text-only rows
    line = next(x for x in output.splitlines() if x.startswith("affectflow: corpus bad:"))
    assert "rejected" in line and "ingest audio_path: file not found 1" in line
    assert int(re.search(r"audio: no speech (\d+)", line).group(1)) >= 4
    assert "see results/bad/rejected.parquet" in line


def test_a_corpus_with_no_good_row_ends_with_an_empty_manifest(built: dict) -> None:
    work = built["work"]
    manifest = pd.read_parquet(work / "results/allbad/manifest.parquet")
    assert len(manifest) == 0 and "words" in manifest.columns
    rejected = pd.read_parquet(work / "results/allbad/rejected.parquet")
    assert sorted(rejected["row"].unique().tolist()) == [1, 2, 3]
    line = next(x for x in built["output"].splitlines() if x.startswith("affectflow: corpus allbad:"))
    assert "0 of 3 utterances accepted" in line


def test_a_changed_media_file_re_extracts_exactly_its_utterance(built: dict) -> None:
    """Item 3: overwrite one file with new content of the same size, then touch another: each
    re-runs exactly that utterance in the extractors that read it, and nothing else."""
    work = built["work"]
    logs = work / "results/logs/bad"
    target = "results/bad/rejected.parquet"
    assert "Nothing to be done" in snakemake(work, "--cores", "2", "-n", target)
    victim = work / "corpus/media/low_rate.wav"
    samples, rate = sf.read(victim, dtype="float32")
    size = victim.stat().st_size
    _write(victim, samples[::-1].copy(), rate)  # same length and format: same size, new content
    assert victim.stat().st_size == size
    time.sleep(0.05)
    since = time.time()
    snakemake(work, "--cores", "2", target)
    assert processed_since(logs, since) == Counter({"audio": 1, "egemaps": 1})
    os.utime(work / "corpus/media/stereo.flac")  # touched only
    since = time.time()
    snakemake(work, "--cores", "2", target)
    assert processed_since(logs, since) == Counter({"audio": 1, "egemaps": 1})
    assert "Nothing to be done" in snakemake(work, "--cores", "2", "-n", target)
