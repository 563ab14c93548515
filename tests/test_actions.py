"""Action units and head gestures: the AU arithmetic and the gesture detector on constructed
series, and the whole stage on a real demo corpus (MediaPipe on its rendered video), scored
against the face animation the generator knows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from affectflow.actions.au import AU_COLUMNS, AU_DEFS, AU_NAMES, AUConfig, intensities, measures, speaker_baseline
from affectflow.actions.gestures import GestureConfig, detect, turning_points
from affectflow.actions.stage import POOLED_NAMES, ActionsConfig, compute_actions
from affectflow.demo import build_demo_corpus
from affectflow.evaluate.au_agreement import au_agreement
from affectflow.features.base import Utterance
from affectflow.features.extractors.face import FACE_FEATURE_NAMES, FACE_POOLED_NAMES
from affectflow.features.registry import build
from affectflow.features.store import Provenance, StoreRow, read_provenance, write_partition


# ----------------------------------------------------------------------------- gestures
def test_turning_points_need_a_full_swing() -> None:
    x = np.array([0, 1, 4, 3, 0.5, 2, 5, 1])
    assert turning_points(x, 3.0) == [0, 2, 4, 6, 7]
    assert turning_points(np.array([0.0, 1.0, 0.5, 1.5]), 3.0) == []  # jitter below a swing


def test_nods_found_at_their_time_and_drift_ignored() -> None:
    fps, t = 15.0, np.arange(0, 6, 1 / 15.0)
    pitch = 0.8 * np.sin(2 * np.pi * 0.1 * t) * 10  # slow drift: 8 degrees over 5 s
    nodding = (t >= 2.0) & (t < 3.5)
    pitch = pitch + np.where(nodding, 4.0 * np.sin(2 * np.pi * 2.0 * (t - 2.0)), 0.0)  # 3 cycles at 2 Hz
    found = detect(t, pitch, GestureConfig())
    assert len(found) == 1, found
    nod = found[0]
    assert 1.9 <= nod.start_s <= 2.3 and 3.0 <= nod.end_s <= 3.6 and nod.cycles >= 2
    assert detect(t, 0.8 * np.sin(2 * np.pi * 0.1 * t) * 10, GestureConfig()) == []  # drift alone
    rng = np.random.default_rng(0)
    assert detect(t, rng.normal(0, 0.5, len(t)), GestureConfig()) == []  # tracking jitter alone


def test_gestures_out_of_band_or_across_gaps_are_not_counted() -> None:
    t = np.arange(0, 6, 1 / 15.0)
    slow = 6.0 * np.sin(2 * np.pi * 0.25 * t)  # a 4 s cycle: looking down and up again, not a nod
    assert detect(t, slow, GestureConfig()) == []
    fast = 6.0 * np.sin(2 * np.pi * 2.0 * t)
    assert len(detect(t, fast, GestureConfig())) == 1
    valid = np.ones(len(t), bool)
    valid[::4] = False  # the face is lost every fourth frame: no run is long enough for a cycle
    assert detect(t, fast, GestureConfig(), valid) == []


# ----------------------------------------------------------------------------- AU arithmetic
def _measures(n: int, **changes: np.ndarray) -> dict[str, np.ndarray]:
    base = {m: np.full(n, 0.5) for d in AU_DEFS for m in d.terms}
    base["eye_open"] = np.full(n, 0.3)
    base.update(changes)
    return base


def test_intensity_is_change_from_the_speakers_neutral_scaled_and_clipped() -> None:
    lift = np.concatenate([np.zeros(80), [0.05, 0.10, 0.5]])  # at rest, then half and full scale, then beyond
    m = _measures(83, lip_corner_lift=lift)
    baseline = speaker_baseline(m, AUConfig())
    r, c = intensities(m, baseline, AUConfig())
    au12, au15 = AU_NAMES.index("AU12"), AU_NAMES.index("AU15")
    np.testing.assert_allclose(r[-3:, au12], [2.5, 5.0, 5.0])
    assert (r[:80, au12] == 0).all() and (r[:, au15] == 0).all()
    np.testing.assert_array_equal(c[-3:, au12], [1, 1, 1])
    assert (r >= 0).all() and (r <= 5).all()


def test_blink_is_au45_not_a_tightened_lid() -> None:
    eyes = np.full(50, 0.3)
    eyes[10] = 0.05  # a blink
    eyes[20] = 0.26  # lids a little narrowed
    m = _measures(50, eye_open=eyes)
    r, c = intensities(m, speaker_baseline(m, AUConfig()), AUConfig())
    au45, au07 = AU_NAMES.index("AU45"), AU_NAMES.index("AU07")
    assert c[10, au45] == 1 and r[10, au07] == 0 and c[10, au07] == 0
    assert c[20, au45] == 0 and r[20, au07] == pytest.approx(0.04 / 0.06 * 5)
    assert c[:, au45].sum() == 1


def test_missing_measures_name_the_face_version() -> None:
    with pytest.raises(KeyError, match="nose_length.*face extractor version 2"):
        measures(np.zeros((3, 2)), ["eye_open_l", "eye_open_r"])


def test_actions_config_errors_name_the_key() -> None:
    with pytest.raises(ValueError, match="unknown keys"):
        ActionsConfig.from_params({"aus": {}})
    with pytest.raises(ValueError, match="actions.au.presence_threshold"):
        ActionsConfig.from_params({"au": {"presence_threshold": 9}})


# ----------------------------------------------------------------------------- the stage, on the demo
@pytest.fixture(scope="module")
def demo_actions(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 16-utterance demo corpus, its face store (one real rejection: a missing video) and the
    actions store made from them."""
    root = tmp_path_factory.mktemp("demo_actions")
    frame = pd.read_csv(build_demo_corpus(root, n_utterances=16, n_speakers=2, seed=3))
    face = build("face", {})
    rows = []
    for i, r in enumerate(frame.itertuples()):
        video = str(root / r.video_path) if i else str(root / "video" / "missing.mp4")
        utt = Utterance(r.utt_id, str(root / r.audio_path), video, 0.0, float(r.end_s), r.transcript,
                        speaker=r.speaker)
        try:
            rows.append(StoreRow(r.utt_id, "sig", face.extract(utt)))
        except Exception as error:  # the missing video: the face store records why
            rows.append(StoreRow(r.utt_id, "sig", None, getattr(error, "reason", str(error))))
    write_partition(root / "face.parquet", rows,
                    Provenance("face", "2", {}, "demo", 0, FACE_FEATURE_NAMES, FACE_POOLED_NAMES))
    frame[["utt_id", "speaker"]].to_parquet(root / "manifest.parquet")
    summary = compute_actions([root / "face.parquet"], root / "manifest.parquet", root / "au.parquet",
                              ActionsConfig.from_params({}), "demo")
    assert summary["rows"] == 16 and summary["rejected"] == 1 and len(summary["speakers"]) == 2
    return root, root / "au.parquet"


def test_actions_store_layout(demo_actions: tuple[Path, Path]) -> None:
    root, store = demo_actions
    provenance = read_provenance(store)
    assert provenance["extractor"] == "actions" and provenance["value_names"] == list(AU_COLUMNS)
    assert provenance["pooled_names"] == list(POOLED_NAMES)
    assert AU_COLUMNS[0] == "AU01_r" and AU_COLUMNS[len(AU_NAMES)] == "AU01_c"  # OpenFace's order
    table = pq.read_table(store).to_pandas()
    rejected = table[~table["ok"]]
    assert len(rejected) == 1 and rejected["reason"].iloc[0].startswith("face: ")
    ok = table[table["ok"]].iloc[0]
    values = np.stack(ok["values"])
    assert values.shape == (len(ok["times"]), len(AU_COLUMNS))
    assert ((values[:, :len(AU_NAMES)] >= 0) & (values[:, :len(AU_NAMES)] <= 5)).all()
    assert set(np.unique(values[:, len(AU_NAMES):])) <= {0.0, 1.0}


def test_action_units_follow_the_demo_face(demo_actions: tuple[Path, Path]) -> None:
    """Intensities track the animation the video really shows (Pearson r over all face frames);
    presence is held to a bar where the demo shows it is reliable (README)."""
    root, store = demo_actions
    result = au_agreement(store, root / "face")
    aus = result["aus"]
    assert result["utterances"] == 15
    assert aus["AU26"]["pearson_r"] > 0.8 and aus["AU07"]["pearson_r"] > 0.7, aus
    assert aus["AU12"]["pearson_r"] > 0.5 and aus["AU15"]["pearson_r"] > 0.5, aus
    assert aus["AU01"]["pearson_r"] > 0.4, aus
    assert aus["AU26"]["precision"] > 0.8 and aus["AU07"]["f1"] > 0.6, aus
