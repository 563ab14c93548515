"""The demo corpus generator: determinism, schema, real speech and video, and label signal per modality.

Three corpora are built once per module (12 utterances twice, 32 once; about 10 s in all). Face
measures come from MediaPipe Face Mesh run on the decoded mp4 frames, normalised by the distance
between the outer eye corners.
"""

from __future__ import annotations

import csv
import json
import re
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from affectflow.demo import MANIFEST_COLUMNS, build_demo_corpus, plan_corpus
from affectflow.demo.face import FaceRenderer, FaceTrack, speaker_style
from affectflow.demo.text import POSITIVE, choose_text
from affectflow.demo.tts import NATIVE_SAMPLE_RATE, Prosody, synthesize_batch

FPS = 25
SIZE = 256
EMOTIONS = {"neutral", "happy", "sad", "angry"}


# ----------------------------------------------------------------------------- fixtures / helpers
@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_corpus(tmp_path_factory.mktemp("demo_a"), n_utterances=12, seed=0)


@pytest.fixture(scope="module")
def small_again(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_corpus(tmp_path_factory.mktemp("demo_b"), n_utterances=12, seed=0)


@pytest.fixture(scope="module")
def medium(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_demo_corpus(tmp_path_factory.mktemp("demo_m"), n_utterances=32, seed=0)


def rows(manifest: Path) -> list[dict[str, str]]:
    with manifest.open(newline="") as fh:
        return list(csv.DictReader(fh))


def read_wav(path: Path) -> tuple[np.ndarray, int, int, int]:
    with wave.open(str(path)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return data, w.getframerate(), w.getnchannels(), w.getsampwidth()


def frame_rms(x: np.ndarray, sr: int, n_frames: int) -> np.ndarray:
    """Audio RMS over each video frame's span."""
    hop = sr / FPS
    xf = x.astype(np.float64)
    return np.array([np.sqrt(np.mean(xf[int(i * hop): int((i + 1) * hop)] ** 2)) for i in range(n_frames)])


def speech_loudness_db(x: np.ndarray, sr: int) -> float:
    """Mean RMS (dBFS) over the 20 ms frames louder than a tenth of the loudest."""
    n = sr // 50
    fr = x[: len(x) // n * n].astype(np.float64).reshape(-1, n) / 32768.0
    e = np.sqrt(np.mean(fr**2, axis=1))
    return float(20 * np.log10(np.mean(e[e > 0.1 * e.max()])))


def median_f0(x: np.ndarray, sr: int) -> float:
    """Median autocorrelation pitch (80-400 Hz) over loud 40 ms frames."""
    n = int(0.04 * sr)
    xf = x.astype(np.float64)
    frames = [xf[i: i + n] for i in range(0, len(xf) - n, n // 2)]
    peak = max(np.sqrt(np.mean(f**2)) for f in frames)
    f0 = []
    for f in frames:
        if np.sqrt(np.mean(f**2)) < 0.2 * peak:
            continue
        f = f - f.mean()
        ac = np.correlate(f, f, mode="full")[n - 1:]
        lo, hi = sr // 400, sr // 80
        lag = lo + int(np.argmax(ac[lo:hi]))
        if ac[lag] > 0.3 * ac[0]:
            f0.append(sr / lag)
    return float(np.median(f0))


_MESH_CACHE: dict[tuple[str, int], np.ndarray] = {}


def face_measures(frames: list[np.ndarray] | Path, step: int = 1) -> np.ndarray:
    """Per frame: [lip gap, mouth-corner lift, inner-brow height, eye aperture]; NaN row = no face.

    Every measure is in units of the outer-eye-corner distance. Corner lift is how far the mouth
    corners sit above the upper inner lip (positive = smiling).
    """
    import mediapipe as mp

    key = (str(frames), step) if isinstance(frames, Path) else None
    if key is not None and key in _MESH_CACHE:
        return _MESH_CACHE[key]
    if isinstance(frames, Path):
        with av.open(str(frames)) as c:
            images = [f.to_ndarray(format="rgb24") for i, f in enumerate(c.decode(video=0)) if i % step == 0]
    else:
        images = frames
    out = np.full((len(images), 4), np.nan)
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=isinstance(frames, list), max_num_faces=1,
                                         refine_landmarks=True) as mesh:
        for i, img in enumerate(images):
            res = mesh.process(img)
            if not res.multi_face_landmarks:
                continue
            h, w = img.shape[:2]
            p = np.array([[q.x * w, q.y * h] for q in res.multi_face_landmarks[0].landmark])
            iod = np.linalg.norm(p[33] - p[263])
            out[i] = [
                (p[14, 1] - p[13, 1]) / iod,
                (p[13, 1] - (p[61, 1] + p[291, 1]) / 2) / iod,
                ((p[159, 1] - p[107, 1]) + (p[386, 1] - p[336, 1])) / 2 / iod,
                ((p[145, 1] - p[159, 1]) + (p[374, 1] - p[386, 1])) / 2 / iod,
            ]
    if key is not None:
        _MESH_CACHE[key] = out
    return out


# ----------------------------------------------------------------------------- determinism
def test_same_arguments_give_identical_files(small: Path, small_again: Path) -> None:
    a, b = small.parent, small_again.parent
    assert small.read_bytes() == small_again.read_bytes()
    for row in rows(small):
        for col in ("audio_path", "words_path", "video_path"):
            assert (a / row[col]).read_bytes() == (b / row[col]).read_bytes(), (row["utt_id"], col)


def test_seed_changes_the_corpus() -> None:
    p0, p1 = plan_corpus(80, 4, 0), plan_corpus(80, 4, 1)
    assert [p.emotion for p in p0] != [p.emotion for p in p1]
    assert [p.split for p in p0] != [p.split for p in p1]


def test_tts_batches_are_reproducible() -> None:
    requests = [("Oh great, another meeting this afternoon.", "en-us+f2", Prosody()),
                ("I lost my keys and my wallet today.", "en+f4", Prosody(rate_wpm=130, volume=70))]
    first, second = synthesize_batch(requests), synthesize_batch(requests)
    for s1, s2 in zip(first, second):
        assert s1.sample_rate == NATIVE_SAMPLE_RATE
        assert np.array_equal(s1.samples, s2.samples)
        assert s1.words == s2.words


# ----------------------------------------------------------------------------- manifest
def test_manifest_schema_and_label_ranges(small: Path, medium: Path) -> None:
    for manifest, n in ((small, 12), (medium, 32)):
        with manifest.open(newline="") as fh:
            assert tuple(next(csv.reader(fh))) == MANIFEST_COLUMNS
        rs = rows(manifest)
        assert len(rs) == n
        assert len({r["utt_id"] for r in rs}) == n
        assert {r["speaker"] for r in rs} == {"s01", "s02", "s03", "s04"}
        for r in rs:
            assert re.fullmatch(r"demo_s\d\d_u\d{3}", r["utt_id"]) and r["speaker"] in r["utt_id"]
            assert r["dataset"] == "demo"
            for col, ext in (("audio_path", ".wav"), ("video_path", ".mp4"), ("words_path", ".json")):
                assert not Path(r[col]).is_absolute() and r[col].endswith(r["utt_id"] + ext)
                assert (manifest.parent / r[col]).is_file()
            assert float(r["start_s"]) == 0.0 and 1.0 < float(r["end_s"]) < 6.0
            assert r["transcript"].strip()
            assert r["emotion"] in EMOTIONS
            assert -3.0 <= float(r["sentiment"]) <= 3.0
            assert r["sarcasm"] in {"0", "1"}
            if r["sarcasm"] == "1":  # sarcasm = positive words, negative emotion
                assert r["emotion"] in {"sad", "angry"}
                assert r["transcript"] in {s for s, _ in POSITIVE}
        dialogues: dict[str, list[dict[str, str]]] = {}
        for r in rs:
            dialogues.setdefault(r["dialogue_id"], []).append(r)
        for turns in dialogues.values():
            assert [int(t["turn"]) for t in turns] == list(range(len(turns)))
            assert len({t["speaker"] for t in turns}) <= 2


def test_every_speaker_in_every_split(small: Path, medium: Path) -> None:
    for manifest in (small, medium):
        rs = rows(manifest)
        for speaker in {r["speaker"] for r in rs}:
            assert {r["split"] for r in rs if r["speaker"] == speaker} == {"train", "valid", "test"}


def test_default_plan_is_balanced_and_stratified() -> None:
    plans = plan_corpus(80, 4, 0)
    assert len(plans) >= 60 and len({p.speaker.speaker_id for p in plans}) >= 4
    counts = {s: sum(p.split == s for p in plans) for s in ("train", "valid", "test")}
    assert counts == {"train": 48, "valid": 16, "test": 16}
    for split in counts:
        assert {p.emotion for p in plans if p.split == split} == EMOTIONS
        assert any(p.sarcasm for p in plans if p.split == split)
    assert 10 <= sum(p.sarcasm for p in plans) <= 24


# ----------------------------------------------------------------------------- media
def test_wav_is_speech_with_matching_duration_and_words(small: Path) -> None:
    for r in rows(small):
        x, sr, channels, width = read_wav(small.parent / r["audio_path"])
        assert (sr, channels, width) == (NATIVE_SAMPLE_RATE, 1, 2)
        assert len(x) / sr == pytest.approx(float(r["end_s"]), abs=1e-5)
        words = json.loads((small.parent / r["words_path"]).read_text())
        assert [w["word"] for w in words] == re.findall(r"[\w']+", r["transcript"])
        starts = [w["start_s"] for w in words]
        assert starts == sorted(starts) and all(w["start_s"] < w["end_s"] for w in words)
        assert 0.15 <= words[0]["start_s"] and words[-1]["end_s"] <= float(r["end_s"])
        xf = x.astype(np.float64)
        lead = xf[: int(0.15 * sr)]
        speech = xf[int(words[0]["start_s"] * sr): int(words[-1]["end_s"] * sr)]
        assert np.sqrt(np.mean(speech**2)) > 1000  # clearly audible (> -30 dBFS)
        assert np.sqrt(np.mean(lead**2)) < 20  # the leading pause is near-silent


def test_mp4_has_h264_video_and_aac_audio(small: Path) -> None:
    for r in rows(small)[:4]:
        with av.open(str(small.parent / r["video_path"])) as c:
            video, audio = c.streams.video[0], c.streams.audio[0]
            assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
            assert video.average_rate == FPS and (video.width, video.height) == (SIZE, SIZE)
            assert audio.rate == NATIVE_SAMPLE_RATE and audio.channels == 1
            n_video = sum(1 for _ in c.decode(video=0))
        with av.open(str(small.parent / r["video_path"])) as c:
            pcm = np.concatenate([f.to_ndarray().ravel() for f in c.decode(audio=0)])
        assert n_video == round(float(r["end_s"]) * FPS)
        assert len(pcm) / NATIVE_SAMPLE_RATE == pytest.approx(float(r["end_s"]), abs=0.1)
        assert np.sqrt(np.mean(pcm**2)) > 0.02  # the muxed audio is the speech, not silence


def test_mediapipe_finds_the_face_and_the_mouth_follows_the_audio(small: Path) -> None:
    for r in rows(small)[:3]:
        m = face_measures(small.parent / r["video_path"])
        found = ~np.isnan(m[:, 0])
        assert found.mean() >= 0.95, r["utt_id"]
        x, sr, _, _ = read_wav(small.parent / r["audio_path"])
        env = frame_rms(x, sr, len(m))
        r_gap = np.corrcoef(m[found, 0], env[found])[0, 1]
        assert r_gap > 0.5, (r["utt_id"], r_gap)


# ----------------------------------------------------------------------------- label signal
def test_voice_carries_emotion(medium: Path) -> None:
    rs = rows(medium)
    loud = {e: [] for e in EMOTIONS}
    f0 = {e: [] for e in EMOTIONS}
    for r in rs:
        x, sr, _, _ = read_wav(medium.parent / r["audio_path"])
        loud[r["emotion"]].append(speech_loudness_db(x, sr))
        f0[r["emotion"]].append(median_f0(x, sr))
    assert np.mean(loud["angry"]) - np.mean(loud["sad"]) > 2.0  # dB
    assert np.mean(f0["happy"]) - np.mean(f0["sad"]) > 10.0  # Hz
    # ...but not perfectly: some angry and sad voices are flat (low voice expressivity).
    assert max(loud["sad"]) > min(loud["angry"]) - 3.0


def test_prosody_at_full_expressivity_separates_sad_and_angry() -> None:
    from affectflow.demo.corpus import EMOTION_PROSODY, make_speakers

    speaker = make_speakers(1)[0]
    text = "The report is on your desk now."

    def prosody(emotion: str) -> Prosody:
        dp, dr, drate, dvol = EMOTION_PROSODY[emotion]
        return Prosody(int(speaker.rate_wpm + drate), int(100 + dvol), int(speaker.pitch + dp), int(50 + dr))

    sad, angry = synthesize_batch([(text, speaker.voice, prosody("sad")), (text, speaker.voice, prosody("angry"))])
    sr = sad.sample_rate
    assert speech_loudness_db(angry.samples, sr) - speech_loudness_db(sad.samples, sr) > 4.0
    assert median_f0(angry.samples, sr) > median_f0(sad.samples, sr) + 10
    assert len(angry.samples) < 0.8 * len(sad.samples)  # angry speaks faster


def test_face_carries_emotion(medium: Path) -> None:
    rs = rows(medium)
    corner = {e: [] for e in EMOTIONS}
    eye = {e: [] for e in EMOTIONS}
    for r in rs:
        m = face_measures(medium.parent / r["video_path"], step=3)
        assert np.mean(~np.isnan(m[:, 0])) >= 0.9, r["utt_id"]
        corner[r["emotion"]].append(np.nanmedian(m[:, 1]))
        eye[r["emotion"]].append(np.nanmedian(m[:, 3]))
    assert np.mean(corner["happy"]) - np.mean(corner["sad"]) > 0.02
    assert np.mean(eye["neutral"]) - np.mean(eye["angry"]) > 0.01
    assert min(corner["happy"]) < max(corner["neutral"])  # some happy faces show little


def test_face_expressions_at_full_strength_are_measurable() -> None:
    renderer = FaceRenderer(speaker_style(0), SIZE)

    def frame(**actions: float) -> np.ndarray:
        values = dict(jaw=-4.0, smile=-4.0, smirk=0.0, inner_up=0.0, lower=0.0, squint=0.0,
                      rotation_deg=0.0, shift_x=0.0, shift_y=0.0) | actions
        return renderer.render(FaceTrack(**{k: np.array([v]) for k, v in values.items()}), 0)

    neutral, happy, sad, angry, talking = face_measures([
        frame(), frame(smile=3.0, squint=0.12), frame(smile=-9.0, inner_up=6.5),
        frame(smile=-6.0, lower=8.0, squint=0.4), frame(jaw=7.5)])
    assert happy[1] > neutral[1] + 0.04  # mouth corners lifted: smile
    assert sad[1] < neutral[1] - 0.02  # mouth corners lowered: frown
    assert sad[2] > neutral[2] + 0.02  # inner brows raised
    assert angry[3] < neutral[3] - 0.015  # narrowed eyes
    assert talking[0] > neutral[0] + 0.05  # open mouth


def test_text_carries_sentiment_but_not_sarcasm(medium: Path) -> None:
    rs = rows(medium)
    by_emotion = {e: [float(r["sentiment"]) for r in rs if r["emotion"] == e] for e in EMOTIONS}
    assert np.mean(by_emotion["happy"]) > np.mean(by_emotion["neutral"]) + 0.8
    assert np.mean(by_emotion["neutral"]) > max(np.mean(by_emotion["sad"]), np.mean(by_emotion["angry"])) + 0.8
    sarcastic = [float(r["sentiment"]) for r in rs if r["sarcasm"] == "1"]
    assert sarcastic and np.mean(sarcastic) < -0.5  # positive words, negative meaning
    # Every sentence a sarcastic speaker says is also said sincerely by happy speakers.
    rng = np.random.default_rng(0)
    sincere = {choose_text("happy", False, rng).transcript for _ in range(400)}
    ironic = {choose_text("angry", True, rng).transcript for _ in range(400)}
    assert ironic <= sincere
