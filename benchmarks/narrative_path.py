"""Time the narrative path per minute of video: ASR with word times, eGeMAPS, face, then the
actions, prosody and narrative stages, on the shared talking-head clip cut into turns.

Each step is timed on its own (models loaded once, before timing, as a warm job would have them);
the total is given per minute of video, with each step's share.

    python benchmarks/narrative_path.py [--turns 4] [--work /tmp/narrative_bench]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from affectflow.actions.stage import ActionsConfig, compute_actions
from affectflow.features.base import Utterance
from affectflow.features.extractors.face import FACE_FEATURE_NAMES, FACE_POOLED_NAMES
from affectflow.features.registry import build
from affectflow.features.store import Provenance, StoreRow, write_partition
from affectflow.media.audio import load_audio
from affectflow.narrative.rules import NarrativeConfig
from affectflow.narrative.stage import StageConfig, write_narratives
from affectflow.prosody.stage import ProsodyConfig, compute_prosody

CLIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "media" / "obama_talking_head.mp4"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=4, help="equal turns the 20 s clip is cut into")
    parser.add_argument("--work", default="/tmp/narrative_bench")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    length = 20.0
    step = length / args.turns
    utts = [Utterance(f"t{i}", str(CLIP), str(CLIP), i * step, (i + 1) * step, "", speaker="Obama")
            for i in range(args.turns)]
    times: dict[str, float] = {}

    from affectflow.transcribe.align import AlignmentError, refine_times
    from affectflow.transcribe.asr import load_model, transcribe, words_to_text

    load_model()  # the transcribe stage's offline Whisper tiny.en, loaded before timing
    audio = [load_audio(str(CLIP), 16000, u.start_s, u.end_s) for u in utts]
    start = time.perf_counter()
    words = []
    for a in audio:  # what the transcribe stage runs: Whisper, then alignment where it completes
        recognised = transcribe(a)
        try:
            words.append(refine_times(a, recognised))
        except AlignmentError:
            words.append(recognised)
    times["ASR + word times"] = time.perf_counter() - start

    egemaps, face = build("egemaps", {}), build("face", {})
    egemaps.extract(Utterance("warm", None, None, None, None, "", audio=audio[0]))
    for name, extractor, make in (
            ("eGeMAPS", egemaps, lambda u, a: Utterance(u.utt_id, None, None, None, None, "", audio=a)),
            ("face (MediaPipe, 5 frames/s)", face, lambda u, a: u)):
        start = time.perf_counter()
        results = [extractor.extract(make(u, a)) for u, a in zip(utts, audio)]
        times[name] = time.perf_counter() - start
        if extractor is face:
            write_partition(work / "face.parquet", [StoreRow(u.utt_id, "", r) for u, r in zip(utts, results)],
                            Provenance("face", face.version, {}, "bench", 0, FACE_FEATURE_NAMES, FACE_POOLED_NAMES))
        else:
            pooled_names = egemaps.names()[1]
            write_partition(work / "egemaps.parquet", [StoreRow(u.utt_id, "", r) for u, r in zip(utts, results)],
                            Provenance("egemaps", egemaps.version, {}, "bench", 0, egemaps.names()[0], pooled_names))
    manifest = pd.DataFrame([{"utt_id": u.utt_id, "speaker": "Obama", "dialogue_id": "clip", "turn": i,
                              "video_path": str(CLIP), "start_s": u.start_s, "end_s": u.end_s,
                              "transcript": words_to_text(w), "split": "test",
                              "words": [{"word": x.word, "start_s": x.start_s, "end_s": x.end_s} for x in w]}
                             for i, (u, w) in enumerate(zip(utts, words))])
    manifest.to_parquet(work / "manifest.parquet")
    start = time.perf_counter()
    compute_actions([work / "face.parquet"], work / "manifest.parquet", work / "au.parquet", ActionsConfig.from_params({}))
    times["actions (AUs, nods)"] = time.perf_counter() - start
    start = time.perf_counter()
    compute_prosody(work / "manifest.parquet", [work / "egemaps.parquet"], work / "prosody.parquet", ProsodyConfig())
    times["prosody"] = time.perf_counter() - start
    start = time.perf_counter()
    write_narratives(work / "manifest.parquet", work / "out", NarrativeConfig(), StageConfig(),
                     actions=str(work / "au.parquet"), prosody=str(work / "prosody.parquet"))
    times["narratives"] = time.perf_counter() - start
    total = sum(times.values())
    print(f"{CLIP.name}: {length:.0f} s of video in {args.turns} turns; seconds per minute of video:")
    for name, seconds in times.items():
        print(f"  {name:32} {60 * seconds / length:7.1f} s   {100 * seconds / total:5.1f} %")
    print(f"  {'total':32} {60 * total / length:7.1f} s   ({60 * total / length / 60:.2f}× real time)")
    print(pd.read_parquet(work / "out" / "narratives.parquet").query("family == 'vpa'")["text"].to_string(index=False))


if __name__ == "__main__":
    main()
