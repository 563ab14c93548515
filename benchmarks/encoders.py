"""Speech-encoder throughput: a naive loop against our batched extractors, on the same clips.

On `--clips` clips of mixed length (half EmoDB, half RAVDESS, 2.0-5.3 s, decoded once to
16 kHz), measured in one run, it prints clips per second and audio seconds per wall second for:

* a wav2vec2-base-sized model (randomly initialised, 12 layers, 768 wide, group-norm front-end,
  saved with `save_pretrained`): a naive loop (`transformers`, one clip per forward pass,
  `torch.no_grad`, no bucketing) against the `ssl` extractor (length-sorted masked batches);
* the Whisper tiny.en encoder: a naive loop over a randomly initialised `transformers` Whisper
  model of the same architecture (the Hugging Face weights are not shipped offline; the compute
  is the same) against our `whisper` extractor (CTranslate2, int8, batches of 30 s windows), and
  that extractor called one clip at a time, so batching and runtime are told apart;
* eGeMAPS: direct `opensmile.Smile` calls (LLDs and functionals) against the `egemaps`
  extractor's shard job on the same decoded audio (ingest and media prep excluded, reading the
  audio store and writing the partition included): the overhead of our layer; and, end to end,
  `Smile.process_file` on the files against media prep + the egemaps job.

Ratios are against the naive loop / the direct calls of the same run. Goals (issue 8): batched
≥ 3× naive on 2 CPU cores; openSMILE overhead ≤ 10 %. With a CUDA device the encoders are also
timed on it.

    python benchmarks/encoders.py [--clips 200] [--batch-size 8] [--skip-whisper]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def _clips(n: int) -> tuple[list[Path], list[np.ndarray]]:
    """n // 2 EmoDB clips (2.0 s each in this copy) and the rest from RAVDESS (2.9-5.3 s), spread
    over speakers, interleaved so the naive loop sees mixed lengths."""
    from affectflow.media.audio import load_audio

    emodb = sorted((DATA / "emodb" / "wav").glob("*.wav"))
    ravdess = sorted((DATA / "ravdess").rglob("*.flac"))
    half = n // 2
    if len(emodb) < half or len(ravdess) < n - half:
        raise SystemExit(f"need EmoDB and RAVDESS under {DATA} (see SOURCES.md)")
    picked = emodb[:: len(emodb) // half][:half] + ravdess[:: len(ravdess) // (n - half)][: n - half]
    files = [f for pair in zip(picked[:half], picked[half:]) for f in pair] + picked[2 * half:]
    return files, [load_audio(str(f), 16000) for f in files]


def _report(name: str, seconds: float, clips: list[np.ndarray], baseline: float | None = None) -> None:
    audio = sum(len(c) for c in clips) / 16000
    ratio = f"  {baseline / seconds:5.2f}× the naive loop" if baseline else ""
    print(f"  {name:<44} {seconds:7.1f} s  {len(clips) / seconds:6.2f} clips/s  "
          f"{audio / seconds:6.1f} audio s/s{ratio}", flush=True)


def _timed(function) -> float:
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def _utterances(clips: list[np.ndarray]):
    from affectflow.features.base import Utterance

    return [Utterance(str(i), None, None, None, None, "", audio=c) for i, c in enumerate(clips)]


def wav2vec2(clips: list[np.ndarray], batch_size: int, device: str) -> None:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    from affectflow.features.registry import build

    folder = Path(tempfile.mkdtemp(prefix="w2v2_base_"))
    torch.manual_seed(0)
    Wav2Vec2Model(Wav2Vec2Config()).save_pretrained(folder)  # the wav2vec2-base architecture
    Wav2Vec2FeatureExtractor(do_normalize=True).save_pretrained(folder)
    print(f"wav2vec2-base size (random weights, {device}):", flush=True)
    model = Wav2Vec2Model.from_pretrained(folder).eval().to(device)
    processor = Wav2Vec2FeatureExtractor.from_pretrained(folder)

    def naive() -> None:
        with torch.no_grad():
            for clip in clips:
                inputs = processor(clip, sampling_rate=16000, return_tensors="pt")
                model(inputs.input_values.to(device)).last_hidden_state.cpu()

    extractor = build("ssl", {"model": str(folder), "batch_size": batch_size, "device": device,
                              "window_s": 30.0})
    extractor.extract_batch(_utterances(clips[:2]))  # load once, outside the timing
    naive_s = _timed(naive)
    _report("naive loop (transformers, one clip per pass)", naive_s, clips)
    utts = _utterances(clips)
    batched_s = _timed(lambda: [extractor.extract_batch(utts[i:i + 64]) for i in range(0, len(utts), 64)])
    _report(f"ssl extractor (sorted batches of {batch_size})", batched_s, clips, naive_s)


def whisper(clips: list[np.ndarray], batch_size: int, device: str) -> None:
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    from affectflow.features.registry import build

    print(f"Whisper tiny.en encoder ({device}):", flush=True)
    torch.manual_seed(0)
    config = WhisperConfig(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536,
                           decoder_layers=4, decoder_attention_heads=6, decoder_ffn_dim=1536,
                           vocab_size=51864, num_mel_bins=80)
    encoder = WhisperModel(config).get_encoder().eval().to(device)
    features = WhisperFeatureExtractor(feature_size=80)

    def naive() -> None:
        with torch.no_grad():
            for clip in clips:
                mel = features(clip, sampling_rate=16000, return_tensors="pt").input_features
                encoder(mel.to(device)).last_hidden_state.cpu()

    naive_s = _timed(naive)
    _report("naive loop (transformers fp32, random tiny.en)", naive_s, clips)
    ctranslate = "cuda" if device.startswith("cuda") else "cpu"
    one = build("whisper", {"batch_size": 1, "device": ctranslate})
    batched = build("whisper", {"batch_size": batch_size, "device": ctranslate})
    one.extract(_utterances(clips[:1])[0])  # load once, outside the timing
    utts = _utterances(clips)
    single_s = _timed(lambda: [one.extract(u) for u in utts])
    _report("whisper extractor, one clip per call", single_s, clips, naive_s)
    batched_s = _timed(lambda: [batched.extract_batch(utts[i:i + 64]) for i in range(0, len(utts), 64)])
    _report(f"whisper extractor (batches of {batch_size} windows)", batched_s, clips, naive_s)


def opensmile_overhead(files: list[Path], clips: list[np.ndarray]) -> None:
    import opensmile

    from affectflow.features.runner import run_extractor_shard
    from affectflow.ingest.manifest import IngestOptions
    from affectflow.ingest.run import ingest_corpus

    print("eGeMAPS (openSMILE), CPU:", flush=True)
    lld = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.LowLevelDescriptors)
    functionals = opensmile.Smile(opensmile.FeatureSet.eGeMAPSv02, opensmile.FeatureLevel.Functionals)
    folder = Path(tempfile.mkdtemp(prefix="smile_"))
    pd.DataFrame({"utt_id": [f.stem for f in files], "audio_path": [str(f) for f in files],
                  "split": "train"}).to_csv(folder / "m.csv", index=False)
    manifest = folder / "m.parquet"
    ingest_corpus(folder / "m.csv", manifest, folder / "r.parquet", IngestOptions("bench", 1))
    audio = folder / "audio.parquet"
    run_extractor_shard(manifest, 0, "audio", {}, audio)
    samples = dict(zip([f.stem for f in files], clips))
    lld.process_signal(clips[0], 16000)  # warm both paths
    run_extractor_shard(manifest, 0, "egemaps", {}, folder / "warm.parquet", None, {"audio": audio})

    def direct() -> None:
        for clip in samples.values():
            lld.process_signal(clip, 16000)
            functionals.process_signal(clip, 16000)

    def from_files() -> None:
        for path in files:
            lld.process_file(str(path))
            functionals.process_file(str(path))

    def pipeline() -> None:
        run_extractor_shard(manifest, 0, "audio", {}, folder / "a.parquet")
        run_extractor_shard(manifest, 0, "egemaps", {}, folder / "e.parquet", None, {"audio": folder / "a.parquet"})

    direct_s = min(_timed(direct) for _ in range(2))
    ours_s = min(_timed(lambda: run_extractor_shard(manifest, 0, "egemaps", {}, folder / "e.parquet", None,
                                                    {"audio": audio})) for _ in range(2))
    _report("direct opensmile.Smile calls on the samples", direct_s, clips)
    _report("egemaps extractor shard job (store in/out)", ours_s, clips)
    print(f"  overhead of the extractor: {100 * (ours_s / direct_s - 1):+.1f} % (goal ≤ 10 %)", flush=True)
    files_s = _timed(from_files)
    pipeline_s = _timed(pipeline)
    _report("direct opensmile.Smile.process_file calls", files_s, clips)
    _report("media prep + egemaps shard jobs", pipeline_s, clips)
    print(f"  from the files, end to end: {100 * (pipeline_s / files_s - 1):+.1f} % (media prep decodes "
          "each file once, resamples to 16 kHz and checks for speech)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--skip-whisper", action="store_true")
    parser.add_argument("--only-opensmile", action="store_true")
    args = parser.parse_args()
    import torch

    files, clips = _clips(args.clips)
    print(f"{len(clips)} EmoDB and RAVDESS clips, {sum(len(c) for c in clips) / 16000:.0f} s of audio "
          f"({min(len(c) for c in clips) / 16000:.1f}-{max(len(c) for c in clips) / 16000:.1f} s); "
          f"{os.cpu_count()} CPU cores, torch {torch.get_num_threads()} threads", flush=True)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    for device in [] if args.only_opensmile else devices:
        if device == "cuda":
            print(f"GPU: {torch.cuda.get_device_name(0)}", flush=True)
        wav2vec2(clips, args.batch_size, device)
        if not args.skip_whisper:
            whisper(clips, args.batch_size, device)
    opensmile_overhead(files, clips)


if __name__ == "__main__":
    sys.exit(main())
