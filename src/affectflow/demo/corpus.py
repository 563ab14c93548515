"""The deterministic demo corpus: synthetic talking-face dialogues with emotion, sentiment, sarcasm.

Each modality carries part of the label signal, so fusing them helps. Text shows emotion only
through wording: 35 % of emotional lines use matter-of-fact wording, and sarcastic lines are the
same positive sentences that happy (and some neutral) speakers say sincerely, so words can flag
possible sarcasm but never confirm it. The voice (eSpeak NG pitch, pitch range, rate, loudness)
follows the emotion scaled by a seeded per-utterance voice expressivity (15 % flat) on top of
per-speaker base pitch and jitter, so sad is easy to hear while happy and angry overlap. The face
(smile, brows, eyelids, and a smirk on half the sarcastic lines) follows the emotion scaled by a
separate face expressivity (25 % poker faces) plus emotion-free per-utterance variation, while the
mouth opening follows the speech envelope. Sarcasm is positive wording with a sad or angry voice
and face, so it needs text together with audio or video; sentiment is the intended
(sarcasm-flipped) meaning plus the emotion's valence scaled by a latent intensity (20 % weak)
plus noise, so it correlates with emotion without being determined by it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from affectflow.demo.encode import write_mp4, write_wav
from affectflow.demo.face import FaceRenderer, make_track, speaker_style, speech_envelope, track_truth
from affectflow.demo.text import EMOTIONS, choose_text, sentiment_score
from affectflow.demo.tts import Prosody, synthesize_batch

MANIFEST_COLUMNS: tuple[str, ...] = (
    "utt_id", "dataset", "speaker", "dialogue_id", "turn", "audio_path", "video_path",
    "words_path", "start_s", "end_s", "transcript", "split", "emotion", "sentiment", "sarcasm",
)
SPLITS: tuple[str, ...] = ("train", "valid", "test")
# Utterances sorted by (emotion, sarcasm, speaker) take splits in this repeating order: 60/20/20
# within every emotion x sarcasm stratum.
_SPLIT_CYCLE: tuple[str, ...] = ("train", "valid", "test", "train", "train")

# Female eSpeak variants (the face is a woman's), with distinct accents and base pitches.
_VOICES: tuple[tuple[str, int], ...] = (
    ("en-us+f2", 50), ("en+f4", 44), ("en-gb-x-rp+f3", 56), ("en-us+f5", 40),
    ("en-029+f1", 52), ("en-gb-scotland+f2", 46),
)
# Prosody change at full expressivity: (pitch, pitch range, rate in wpm, volume).
EMOTION_PROSODY: dict[str, tuple[float, float, float, float]] = {
    "neutral": (0.0, 0.0, 0.0, 0.0),
    "happy": (14.0, 22.0, 8.0, 12.0),
    "sad": (-12.0, -25.0, -32.0, -32.0),
    "angry": (6.0, 25.0, 25.0, 40.0),
}
SARCASM_RATE = 0.4  # share of sad/angry utterances that are sarcastic
SMIRK_PX = 4.5  # one-sided mouth-corner lift on half of the sarcastic faces


@dataclass(frozen=True)
class Speaker:
    """A demo speaker: id, eSpeak voice and base prosody, face style index."""

    speaker_id: str
    index: int
    voice: str
    pitch: int
    rate_wpm: int


@dataclass(frozen=True)
class UtterancePlan:
    """Everything decided about one utterance before any media is made."""

    utt_id: str
    speaker: Speaker
    dialogue_id: str
    turn: int
    emotion: str
    sarcasm: bool
    intensity: float  # how strongly the emotion is felt (drives sentiment)
    voice_expressivity: float  # how much of it reaches the voice
    face_expressivity: float  # how much of it reaches the face
    smirk: float
    split: str = ""


def make_speakers(n_speakers: int) -> list[Speaker]:
    """Speakers s01..sNN; after the voice table runs out, voices repeat with shifted pitch."""
    out = []
    for i in range(n_speakers):
        voice, pitch = _VOICES[i % len(_VOICES)]
        pitch = int(np.clip(pitch + 7 * (i // len(_VOICES)) * (-1) ** i, 20, 80))
        out.append(Speaker(f"s{i + 1:02d}", i, voice, pitch, 160 + 5 * (i % 3)))
    return out


def _dialogue_schedule(quota: list[int], rng: np.random.Generator) -> list[list[int]]:
    """Speaker index per turn, per dialogue: round-robin pairs, 2-5 alternating turns each.

    Each speaker speaks exactly `quota[i]` times; the pair order follows the circle method, so
    consecutive dialogues spread over all speakers.
    """
    n = len(quota)
    left = list(quota)
    ring = list(range(n)) + ([-1] if n % 2 else [])
    dialogues: list[list[int]] = []
    while sum(left) > 0:
        progressed = False
        m = len(ring)
        for k in range(m // 2):
            a, b = ring[k], ring[m - 1 - k]
            if a < 0 or b < 0 or (left[a] == 0 and left[b] == 0):
                continue
            want = int(rng.integers(2, 6))
            turns: list[int] = []
            speaker = a if left[a] >= left[b] else b
            other = b if speaker == a else a
            while len(turns) < want and left[speaker] > 0:
                turns.append(speaker)
                left[speaker] -= 1
                speaker, other = other, speaker
            dialogues.append(turns)
            progressed = True
        ring = [ring[0]] + [ring[-1]] + ring[1:-1]  # rotate all but the first
        if not progressed:  # lone speaker with turns left and no partner: a monologue
            for i in range(n):
                if left[i]:
                    dialogues.append([i] * left[i])
                    left[i] = 0
    return dialogues


def plan_corpus(n_utterances: int, n_speakers: int, seed: int) -> list[UtterancePlan]:
    """Decide speakers, dialogues, labels, latent expressivities and splits (no media yet)."""
    if n_speakers < 2:
        raise ValueError("the demo corpus needs at least 2 speakers (dialogues are speaker pairs)")
    if n_utterances < 3 * n_speakers:
        raise ValueError("need n_utterances >= 3 * n_speakers so every speaker is in every split")
    rng = np.random.default_rng([seed, 1])
    speakers = make_speakers(n_speakers)
    quota = [n_utterances // n_speakers + (1 if i < n_utterances % n_speakers else 0) for i in range(n_speakers)]
    # Balanced emotions per speaker, in a seeded order; sarcasm on a fixed share of sad/angry.
    emotions: dict[int, list[str]] = {}
    for i, q in enumerate(quota):
        cycle = [EMOTIONS[(k + i) % len(EMOTIONS)] for k in range(q)]
        emotions[i] = [cycle[j] for j in rng.permutation(q)]
    negative = [(i, k) for i in range(n_speakers) for k in range(quota[i]) if emotions[i][k] in ("sad", "angry")]
    n_sarcastic = int(round(SARCASM_RATE * len(negative)))
    sarcastic = {negative[j] for j in rng.permutation(len(negative))[:n_sarcastic]}

    plans: list[UtterancePlan] = []
    used = [0] * n_speakers
    for d, turns in enumerate(_dialogue_schedule(quota, rng)):
        for t, i in enumerate(turns):
            k = used[i]
            used[i] += 1
            emotion, sarcasm = emotions[i][k], (i, k) in sarcastic
            weak = rng.random() < 0.2
            intensity = float(rng.uniform(0.05, 0.3) if weak else rng.uniform(0.45, 1.0))
            voice_e = float(rng.uniform(0.0, 0.15)) if rng.random() < 0.15 else \
                float(np.clip(intensity + rng.normal(0, 0.2), 0, 1))
            face_e = float(rng.uniform(0.0, 0.15)) if rng.random() < 0.25 else \
                float(np.clip(intensity + rng.normal(0, 0.2), 0, 1))
            smirk = SMIRK_PX if sarcasm and rng.random() < 0.5 else 0.0
            plans.append(UtterancePlan(
                utt_id=f"demo_{speakers[i].speaker_id}_u{len(plans) + 1:03d}", speaker=speakers[i],
                dialogue_id=f"demo_d{d + 1:03d}", turn=t, emotion=emotion, sarcasm=sarcasm,
                intensity=intensity, voice_expressivity=voice_e, face_expressivity=face_e, smirk=smirk,
            ))
    return _assign_splits(plans, rng)


def _assign_splits(plans: list[UtterancePlan], rng: np.random.Generator) -> list[UtterancePlan]:
    """Stratified split: order by (emotion, sarcasm, speaker, seeded tie-break), then cycle
    train/valid/test/train/train; finally swap until every speaker is in every split."""
    ties = rng.permutation(len(plans))
    order = sorted(range(len(plans)), key=lambda j: (
        EMOTIONS.index(plans[j].emotion), plans[j].sarcasm, plans[j].speaker.speaker_id, ties[j]))
    split = [""] * len(plans)
    for rank, j in enumerate(order):
        split[j] = _SPLIT_CYCLE[rank % len(_SPLIT_CYCLE)]
    speakers = sorted({p.speaker.speaker_id for p in plans})
    for _ in range(len(plans)):  # repair: each swap fixes one (speaker, split) gap
        count = {(s, x): 0 for s in speakers for x in SPLITS}
        for p, x in zip(plans, split):
            count[(p.speaker.speaker_id, x)] += 1
        missing = [(s, x) for (s, x), c in count.items() if c == 0]
        if not missing:
            break
        spk, need = missing[0]
        # Give `spk` one utterance in `need`: swap with an utterance of another speaker that has
        # more than one there, preferring the same emotion and sarcasm (keeps strata balanced);
        # if no one can spare one (tiny corpora), move it.
        mine = [j for j, p in enumerate(plans) if p.speaker.speaker_id == spk and count[(spk, split[j])] > 1]
        if not mine:
            raise RuntimeError(f"speaker {spk} has too few utterances for every split")
        theirs = [j for j, p in enumerate(plans) if split[j] == need and p.speaker.speaker_id != spk
                  and count[(p.speaker.speaker_id, need)] > 1]
        if theirs:
            a, b = min(((a, b) for a in mine for b in theirs), key=lambda ab: (
                plans[ab[0]].emotion != plans[ab[1]].emotion, plans[ab[0]].sarcasm != plans[ab[1]].sarcasm, ab))
            split[a], split[b] = split[b], split[a]
        else:
            a = max(mine, key=lambda j: (count[(spk, split[j])], split[j] == "train", -j))
            split[a] = need
    return [UtterancePlan(**{**p.__dict__, "split": x}) for p, x in zip(plans, split)]


def prosody_for(plan: UtterancePlan, rng: np.random.Generator) -> Prosody:
    """Speaker base + emotion shift scaled by voice expressivity + seeded jitter."""
    dp, dr, drate, dvol = (v * plan.voice_expressivity for v in EMOTION_PROSODY[plan.emotion])
    return Prosody(
        rate_wpm=int(round(plan.speaker.rate_wpm + drate + rng.normal(0, 7))),
        volume=int(round(100 + dvol + rng.normal(0, 7))),
        pitch=int(round(plan.speaker.pitch + dp + rng.normal(0, 4))),
        pitch_range=int(round(50 + dr + rng.normal(0, 6))),
    ).clipped()


def build_demo_corpus(
    out_dir: Path, n_utterances: int = 80, n_speakers: int = 4, seed: int = 0,
    video_fps: int = 25, image_size: int = 256,
) -> Path:
    """Writes out_dir/manifest.csv, out_dir/audio/<utt_id>.wav, out_dir/video/<utt_id>.mp4,
    out_dir/words/<utt_id>.json, out_dir/face/<utt_id>.json (the face's true action tracks, the
    reference the action-unit estimates are scored against); returns the manifest path. Deterministic given the arguments.

    The manifest is written last, so a build that stops half-way leaves no manifest. Stale
    ``demo_*`` media from an earlier build with other arguments are removed.
    """
    out_dir = Path(out_dir)
    plans = plan_corpus(n_utterances, n_speakers, seed)
    folders = {name: out_dir / name for name in ("audio", "video", "words", "face")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    rngs = [np.random.default_rng([seed, 2, u]) for u in range(len(plans))]
    texts = [choose_text(plan.emotion, plan.sarcasm, rng) for plan, rng in zip(plans, rngs)]
    speeches = synthesize_batch([(text.transcript, plan.speaker.voice, prosody_for(plan, rng))
                                 for plan, text, rng in zip(plans, texts, rngs)])
    renderers: dict[str, FaceRenderer] = {}
    rows: list[dict[str, object]] = []
    for plan, text, speech, rng in zip(plans, texts, speeches, rngs):
        sr = speech.sample_rate
        lead = int(round(rng.uniform(0.2, 0.4) * sr))
        tail = int(round(rng.uniform(0.1, 0.25) * sr))
        n_frames = int(np.ceil((lead + len(speech.samples) + tail) * video_fps / sr))
        n_samples = int(round(n_frames * sr / video_fps))  # audio and video end together
        audio = np.zeros(n_samples, dtype=np.float64)
        audio[lead: lead + len(speech.samples)] = speech.samples
        audio += rng.normal(0.0, 4.0, n_samples)  # faint room noise, as in a real recording
        samples = np.clip(np.round(audio), -32768, 32767).astype(np.int16)
        duration = n_samples / sr
        words = [{"word": w.word, "start_s": round(w.start_s + lead / sr, 3), "end_s": round(w.end_s + lead / sr, 3)}
                 for w in speech.words]

        style = speaker_style(plan.speaker.index)
        if plan.speaker.speaker_id not in renderers:
            renderers[plan.speaker.speaker_id] = FaceRenderer(style, image_size)
        renderer = renderers[plan.speaker.speaker_id]
        envelope = speech_envelope(samples, sr, video_fps, n_frames)
        track = make_track(plan.emotion, plan.face_expressivity, envelope, video_fps, style, rng, plan.smirk)

        rel = {"audio": f"audio/{plan.utt_id}.wav", "video": f"video/{plan.utt_id}.mp4",
               "words": f"words/{plan.utt_id}.json"}
        write_wav(out_dir / rel["audio"], samples, sr)
        write_mp4(out_dir / rel["video"], lambda i: renderer.render(track, i), n_frames, video_fps,
                  image_size, samples, sr)
        (out_dir / rel["words"]).write_text(json.dumps(words, indent=1) + "\n")
        (folders["face"] / f"{plan.utt_id}.json").write_text(
            json.dumps(track_truth(track, style, video_fps)) + "\n")
        rows.append({
            "utt_id": plan.utt_id, "dataset": "demo", "speaker": plan.speaker.speaker_id,
            "dialogue_id": plan.dialogue_id, "turn": plan.turn, "audio_path": rel["audio"],
            "video_path": rel["video"], "words_path": rel["words"], "start_s": "0.0",
            "end_s": f"{duration:.6f}", "transcript": text.transcript, "split": plan.split,
            "emotion": plan.emotion,
            "sentiment": f"{sentiment_score(plan.emotion, plan.sarcasm, text.polarity, plan.intensity, rng):.2f}",
            "sarcasm": int(plan.sarcasm),
        })
    keep = {Path(str(r[k])).name for r in rows for k in ("audio_path", "video_path", "words_path")}
    keep |= {f"{r['utt_id']}.json" for r in rows}
    for folder in folders.values():
        for stale in folder.glob("demo_*"):
            if stale.name not in keep:
                stale.unlink()
    manifest = out_dir / "manifest.csv"
    tmp = manifest.with_suffix(".csv.tmp")
    with tmp.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(MANIFEST_COLUMNS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(manifest)
    return manifest
