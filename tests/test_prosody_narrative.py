"""The prosody stage (rate, pauses, pitch and loudness with per-speaker z) and the narrative stage
(evidence from the stores → the four families, and the manifests that train on them), on
constructed manifests and stores; the demo's end-to-end run is in test_workflow.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectflow.actions.au import AU_COLUMNS, AU_NAMES
from affectflow.features.base import FeatureResult
from affectflow.features.store import Provenance, StoreRow, write_partition
from affectflow.narrative.rules import NarrativeConfig
from affectflow.narrative.stage import StageConfig, configs_from, role_of, write_narratives
from affectflow.prosody.stage import LOUDNESS, PITCH, ProsodyConfig, compute_prosody, pauses, speaker_z, speech_rate


def words(*spans: tuple[float, float]) -> list[dict]:
    return [{"word": f"w{i}", "start_s": a, "end_s": b} for i, (a, b) in enumerate(spans)]


def test_speech_rate_from_word_times_else_from_duration() -> None:
    rate, source = speech_rate({"words": words((0.5, 0.9), (1.0, 1.4), (1.5, 2.5)), "transcript": "a b c"})
    assert source == "words" and rate == pytest.approx(60 * 3 / 2.0)
    rate, source = speech_rate({"words": None, "transcript": "one two three four", "start_s": 1.0, "end_s": 3.0})
    assert source == "duration" and rate == pytest.approx(120.0)
    assert speech_rate({"words": None, "transcript": "no times"}) == (None, None)


def test_pause_is_the_gap_to_the_previous_turn_in_the_same_recording() -> None:
    manifest = pd.DataFrame([
        # one recording, turns out of order in the table: the gap is speech end → speech start
        {"utt_id": "a2", "dialogue_id": "A", "turn": 2, "audio_path": "/r.wav", "start_s": 5.0, "end_s": 8.0,
         "words": words((0.3, 0.6), (0.7, 2.0))},
        {"utt_id": "a1", "dialogue_id": "A", "turn": 1, "audio_path": "/r.wav", "start_s": 1.0, "end_s": 5.0,
         "words": words((0.1, 0.5), (0.6, 3.5))},
        {"utt_id": "a3", "dialogue_id": "A", "turn": 3, "audio_path": "/r.wav", "start_s": 6.8, "end_s": 9.0,
         "words": None},  # overlaps the turn before: a negative gap
        # separate clips per turn: the gap between them is unknown
        {"utt_id": "b1", "dialogue_id": "B", "turn": 1, "audio_path": "/b1.wav", "start_s": 0.0, "end_s": 2.0, "words": None},
        {"utt_id": "b2", "dialogue_id": "B", "turn": 2, "audio_path": "/b2.wav", "start_s": 0.0, "end_s": 2.0, "words": None},
    ])
    gaps = pauses(manifest)
    assert gaps["a2"] == pytest.approx(800.0)  # 1.0 + 3.5 = 4.5 → 5.0 + 0.3 = 5.3
    assert gaps["a3"] == pytest.approx(-200.0)  # 5.0 + 2.0 = 7.0 → 6.8
    assert np.isnan(gaps["a1"]) and np.isnan(gaps["b1"]) and np.isnan(gaps["b2"])


def test_speaker_z_needs_rows_and_spread() -> None:
    values = pd.Series([1.0, 2.0, 3.0, 5.0, 5.0, 5.0, 7.0, np.nan])
    speakers = pd.Series(["a", "a", "a", "b", "b", "b", "c", "a"])
    z = speaker_z(values, speakers, min_rows=3)
    np.testing.assert_allclose(z[:3], [-1.2247449, 0.0, 1.2247449], rtol=1e-6)
    assert z[3:].isna().all()  # b: no spread; c: one row; the NaN row stays NaN


def _egemaps_store(path: Path, rows: dict[str, tuple[float, float]]) -> None:
    names = ["x", PITCH, LOUDNESS]
    write_partition(path, [StoreRow(u, "", FeatureResult(np.zeros((2, 1)), np.array([0.0, p, l]), np.array([0.0, 0.02])))
                           for u, (p, l) in rows.items()] + [StoreRow("gone", "", None, "no speech")],
                    Provenance("egemaps", "1", {}, "t", 0, ["lld"], names))


def test_prosody_table(tmp_path: Path) -> None:
    manifest = pd.DataFrame([{"utt_id": f"u{i}", "speaker": "s", "transcript": "a b c d", "start_s": 0.0,
                              "end_s": 1.0 + i, "words": None, "dialogue_id": f"d{i}", "turn": 0}
                             for i in range(4)] + [{"utt_id": "gone", "speaker": "", "transcript": "",
                                                    "words": None, "dialogue_id": "g", "turn": 0}])
    manifest.to_parquet(tmp_path / "manifest.parquet")
    _egemaps_store(tmp_path / "egemaps.parquet", {f"u{i}": (30.0 + i, 0.5) for i in range(4)})
    summary = compute_prosody(tmp_path / "manifest.parquet", [tmp_path / "egemaps.parquet"],
                              tmp_path / "prosody.parquet", ProsodyConfig())
    table = pd.read_parquet(tmp_path / "prosody.parquet").set_index("utt_id")
    assert summary["rows"] == 5 and summary["measured"]["pitch_st"] == 4
    assert table.loc["u0", "rate_wpm"] == pytest.approx(240.0) and table.loc["u0", "rate_from"] == "duration"
    assert table.loc["u3", "pitch_st"] == pytest.approx(33.0)
    assert table.loc["u0", "rate_z"] > 1 and table.loc["u3", "rate_z"] < 0  # fastest, slowest of s
    assert table.loc["u3", "pitch_z"] > 1 and pd.isna(table.loc["u0", "loudness_z"])  # no spread
    assert pd.isna(table.loc["gone", "pitch_st"]) and pd.isna(table.loc["gone", "rate_wpm"])


def test_role_words() -> None:
    config = StageConfig(roles={"s01": "The woman"})
    assert role_of("s01", config) == "The woman" and role_of("SHELDON", config) == "Sheldon"
    assert role_of("Chandler", config) == "Chandler" and role_of("s02", config) == "The speaker"
    assert role_of("", config) == "The speaker"


def test_narrative_config_splits_rules_and_roles() -> None:
    rules, stage = configs_from({"tone_z": 1.5, "roles": {"a": "The man"}})
    assert rules == NarrativeConfig(tone_z=1.5) and stage.roles == {"a": "The man"}
    with pytest.raises(ValueError, match="narrative"):
        configs_from({"tone": 2})


def _actions_store(path: Path) -> None:
    """u1 smiles (AU06 + AU12) through 1 s of 5 fps frames, with one nod; u2 has no face."""
    values = np.zeros((6, len(AU_COLUMNS)))
    for au in ("AU06", "AU12"):
        values[:, len(AU_NAMES) + AU_NAMES.index(au)] = 1.0
    result = FeatureResult(values, np.zeros(36), np.arange(6) * 0.2,
                           extra={"face_found": np.ones(6, bool), "nods": np.array([[0.2, 0.8]])})
    write_partition(path, [StoreRow("u1", "", result), StoreRow("u2", "", None, "face: no video_path")],
                    Provenance("actions", "1", {}, "t", 0, AU_COLUMNS, []))


def test_narratives_from_the_stores(tmp_path: Path) -> None:
    manifest = pd.DataFrame([
        {"utt_id": "u1", "speaker": "s01", "transcript": "Great, just great.", "split": "train",
         "words": None, "shard": 0, "sarcasm": 1},
        {"utt_id": "u2", "speaker": "Monica", "transcript": "no", "split": "test", "words": None, "shard": 0,
         "sarcasm": 0},
    ])
    manifest.to_parquet(tmp_path / "manifest.parquet")
    _actions_store(tmp_path / "au.parquet")
    pd.DataFrame([{"utt_id": "u1", "pause_ms": np.nan, "pause_z": np.nan, "rate_z": -2.5},
                  {"utt_id": "u2", "pause_ms": 450.0, "pause_z": 1.2, "rate_z": 0.1}]).to_parquet(tmp_path / "p.parquet")
    summary = write_narratives(tmp_path / "manifest.parquet", tmp_path / "out", NarrativeConfig(),
                               StageConfig(roles={"s01": "The woman"}), actions=str(tmp_path / "au.parquet"),
                               prosody=str(tmp_path / "p.parquet"))
    assert summary["with_actions"] == 1 and summary["with_prosody"] == 2
    table = pd.read_parquet(tmp_path / "out" / "narratives.parquet")
    text = table.set_index(["utt_id", "family"])["text"]
    assert text["u1", "v"] == "The woman said Great, just great."
    assert text["u1", "vpa"] == ("The woman smiled, displayed a positive expression and nodded. "
                                 "The woman very slowly said Great, just great.")
    assert text["u2", "va"] == text["u2", "v"] == "Monica said no."  # no face: nothing to add
    assert text["u2", "vp"] == "After five hundred milliseconds, a long delay, Monica said no."
    phrases = json.loads(table[(table.utt_id == "u1") & (table.family == "vpa")]["phrases"].iloc[0])
    assert phrases[0] == {"text": "smiled", "part": "a", "evidence": "AU06 and AU12 present together for 1.20 s (≥ 0.5 s)"}
    vpa = pd.read_csv(tmp_path / "out" / "manifest_vpa.csv")
    assert list(vpa["transcript"]) == [text["u1", "vpa"], text["u2", "vpa"]]
    assert "words" not in vpa and "shard" not in vpa and list(vpa["sarcasm"]) == [1, 0]


def test_percentile_ranks_against_the_train_rows() -> None:
    from affectflow.narrative.aux import percentile_ranks

    values = pd.Series([1.0, 2.0, 2.0, 4.0, 3.0, np.nan, 10.0])
    train = pd.Series([True, True, True, True, False, True, False])
    ranks = percentile_ranks(values, train)
    np.testing.assert_allclose(ranks[:5], [0.125, 0.5, 0.5, 0.875, 0.75])  # mid-ranks among 1, 2, 2, 4
    assert np.isnan(ranks[5]) and ranks[6] == 1.0


def test_neighbour_labels_substitute_the_nearest_and_stay_in_their_split() -> None:
    from affectflow.narrative.aux import neighbour_labels

    manifest = pd.DataFrame({"utt_id": list("abcdef"), "dialogue_id": ["d"] * 5 + ["e"],
                             "turn": [3, 0, 1, 2, 4, 0], "emotion": ["joy", "sad", None, "anger", "joy", "fear"],
                             "split": ["train"] * 4 + ["test", "train"]})
    out = neighbour_labels(manifest, "emotion").set_index(manifest["utt_id"])
    # dialogue d in turn order: b(sad) c(None) d(anger) a(joy) | e(joy, test)
    assert out.loc["a", "emotion_back1"] == "anger" and out.loc["a", "emotion_back2"] == "anger"  # c missing → d
    assert out.loc["a", "emotion_back3"] == "sad" and out.loc["a", "emotion_back4"] == "sad"  # beyond the start
    assert out.loc["a", "emotion_ahead1"] == "joy"  # e is a test turn: never a train row's target
    assert out.loc["b", "emotion_back1"] == "sad" and out.loc["b", "emotion_ahead2"] == "anger"
    assert out.loc["f", "emotion_ahead4"] == "fear"  # alone in its dialogue: its own label


def test_aux_targets_in_the_narrative_manifests(tmp_path: Path) -> None:
    manifest = pd.DataFrame([{"utt_id": f"u{i}", "speaker": "s", "transcript": "x", "dialogue_id": "d", "turn": i,
                              "split": "train" if i < 3 else "test", "sentiment": float(i - 2), "words": None}
                             for i in range(5)])
    manifest.to_parquet(tmp_path / "manifest.parquet")
    pd.DataFrame([{"utt_id": f"u{i}", "happiness": 0.1 * i, "sadness": 0.5, "anger": 0.2, "fear": 0.1}
                  for i in range(5)]).to_parquet(tmp_path / "tone.parquet")
    write_narratives(tmp_path / "manifest.parquet", tmp_path / "out", NarrativeConfig(),
                     StageConfig(aux_primary="sentiment"), tone=str(tmp_path / "tone.parquet"),
                     labels={"sentiment": {"type": "regression", "min": -3, "max": 3}})
    v = pd.read_csv(tmp_path / "out" / "manifest_v.csv").set_index("utt_id")
    # happiness 0.0, 0.1, 0.2 in train: mid-ranks 1/6, 1/2, 5/6 → on sentiment's scale −3..3
    np.testing.assert_allclose(v.loc[["u0", "u1", "u2"], "aux_happiness"], [-2.0, 0.0, 2.0])
    assert v.loc["u4", "aux_happiness"] == 3.0 and v["aux_AU05"].isna().all()  # no actions store
    assert v.loc["u2", "sentiment_back1"] == -1.0 and v.loc["u2", "sentiment_ahead1"] == 0.0  # u3 is test
    assert v.loc["u4", "sentiment_back1"] == 1.0 and v.loc["u4", "sentiment_ahead4"] == 2.0


def test_loss_weights_follow_mutual_information() -> None:
    from affectflow.narrative.aux import loss_weights

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 400)
    manifest = pd.DataFrame({"emotion": [str(v) for v in y], "split": "train",
                             "informative": y + rng.normal(0, 0.3, 400), "noise": rng.normal(size=400),
                             "emotion_back1": [str(v) for v in y]})
    spec = {"type": "categorical", "classes": ["0", "1", "2"]}
    aux = ["informative", "noise", "emotion_back1"]
    linear = loss_weights(manifest, "emotion", spec, aux, 0.6, "mi_linear")
    assert linear["emotion"] == 0.6 and sum(linear.values()) == pytest.approx(1.0)
    assert linear["informative"] > 5 * linear["noise"] and linear["emotion_back1"] > linear["noise"]
    soft = loss_weights(manifest, "emotion", spec, aux, 0.6, "mi_softmax")
    assert soft["noise"] < soft["informative"] and soft["noise"] > linear["noise"]  # softmax is flatter
    random = loss_weights(manifest, "emotion", spec, aux, 0.9, "random", seed=1)
    assert sum(random.values()) == pytest.approx(1.0) and random == loss_weights(manifest, "emotion", spec, aux, 0.9, "random", seed=1)
    with pytest.raises(ValueError, match=r"\[0.50, 0.99\]"):
        loss_weights(manifest, "emotion", spec, aux, 0.3)


def test_report_page_shows_utterances_with_phrases(tmp_path: Path) -> None:
    from affectflow.report.narratives import narratives_html

    manifest = pd.DataFrame([{"utt_id": f"u{i}", "speaker": "Ann", "transcript": f"line {i}", "emotion": "joy",
                              "words": None} for i in range(3)])
    manifest.to_parquet(tmp_path / "manifest.parquet")
    pd.DataFrame([{"utt_id": "u1", "pause_ms": np.nan, "pause_z": np.nan, "rate_z": 2.5, "rate_wpm": 250.0}]
                 ).to_parquet(tmp_path / "p.parquet")
    write_narratives(tmp_path / "manifest.parquet", tmp_path / "out", NarrativeConfig(), StageConfig(),
                     prosody=str(tmp_path / "p.parquet"))
    page = narratives_html("c", tmp_path / "out" / "narratives.parquet", tmp_path / "manifest.parquet",
                           tmp_path / "p.parquet", ["emotion"])
    assert "Ann very quickly said line 1." in page and "speech rate z +2.50" in page and "emotion=joy" in page
    assert "u0" not in page and "u2" not in page  # only the utterance with a phrase
