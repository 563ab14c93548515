"""ASR word error rate, word-boundary errors and real-time factors on the real alignment data.

For each English audio file in ../shared/data/alignment with a `.lab` (or a TextGrid): WER of
Whisper ASR against it; where a TextGrid has a words tier, the word-boundary error of forced
alignment (PocketSphinx), of Whisper's own word times and of Whisper's words re-timed by forced
alignment (`refine_times`, what the pipeline stage uses). Plus jfk.flac against the transcript
in SOURCES.md. Real-time factor (RTF) = processing seconds / audio seconds, model loading not
included (printed separately). Non-English and reference-less files are listed as skipped.

    python benchmarks/transcripts.py [--data ../shared/data] [--model tiny.en]
"""

from __future__ import annotations

import argparse
import logging
import math
import re
import time
from pathlib import Path

from affectflow.media.audio import load_audio
from affectflow.transcribe.align import AlignmentError, align, english_coverage, refine_times
from affectflow.transcribe.asr import load_model, transcribe, words_to_text
from affectflow.transcribe.evaluate import (
    FILLERS, boundary_error, normalize_words, read_lab, read_textgrid, word_error_rate)

REPO = Path(__file__).resolve().parents[1]
JFK_FALLBACK = ("And so my fellow Americans, ask not what your country can do for you, "
                "ask what you can do for your country.")
# Name patterns of the non-English references in the MFA test data, and what they are.
NOT_ENGLISH = {"_ja_": "Japanese", "japanese": "Japanese", "devanagari": "Hindi (Devanagari)",
               "french": "French", "xsampa": "X-SAMPA phone strings", "se10x016": "Swedish",
               "13697_11991": "Spanish"}
# Audio files that are re-encodings of another file's recording (same references).
SAME_RECORDING = {"cold_corpus_24bit": "cold_corpus", "cold_corpus_32bit_float": "cold_corpus"}
AUDIO_SUFFIXES = {".wav", ".flac", ".mp3"}


def _ms(stats: dict[str, float] | None) -> str:
    if not stats or math.isnan(stats["median_ms"]):
        return "-"
    return f"{stats['median_ms']:.0f}/{stats['mean_ms']:.0f} ({stats['n_matched']:.0f})"


def _language_skip(name: str, text: str | None) -> str | None:
    for pattern, language in NOT_ENGLISH.items():
        if pattern in name.lower():
            return language
    if text is not None and english_coverage(text) < 0.8:
        return f"English dictionary covers {english_coverage(text):.0%} of the words"
    return None


def jfk_transcript(data: Path) -> str:
    """The jfk.flac transcript as SOURCES.md gives it (the known text if that line moved)."""
    sources = data / "SOURCES.md"
    match = re.search(r'jfk\.flac`[^"]*transcript: "([^"]+)"', sources.read_text()) if sources.exists() else None
    return match.group(1) if match else JFK_FALLBACK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--model", default="tiny.en")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    root = args.data / "alignment"
    labs = {p.stem: p for p in sorted((root / "lab").iterdir()) if p.suffix in {".lab", ".txt"}}
    all_grids = sorted((root / "textgrid").glob("*.TextGrid"))
    grids = {p.stem: p for p in all_grids if _has_words_tier(p)}
    audio = {p.stem: p for p in sorted((root / "wav").iterdir()) if p.suffix.lower() in AUDIO_SUFFIXES}
    started = time.perf_counter()
    load_model(args.model)
    print(f"Whisper {args.model} loaded in {time.perf_counter() - started:.2f} s (CPU int8)")

    skipped: list[str] = []
    for stem in sorted(set(labs) - set(audio)):
        language = _language_skip(stem, None)
        skipped.append(f"{labs[stem].name}: no audio" + (f"; not English ({language})" if language else ""))
    jobs: list[tuple[str, Path, str | None, Path | None]] = []  # (name, audio, lab text, TextGrid)
    for stem, path in audio.items():
        source = SAME_RECORDING.get(stem, stem)
        text = read_lab(labs[source]) if source in labs else None
        if text is None and source not in grids:
            skipped.append(f"{path.name}: no .lab or TextGrid")
            continue
        language = _language_skip(stem, text)
        if language:
            skipped.append(f"{path.name}: not English ({language})")
            continue
        jobs.append((path.name if source == stem else f"{stem} (={source})", path, text,
                     grids.get(source)))
    jobs.append(("jfk.flac (media/)", args.data / "media" / "jfk.flac",
                 jfk_transcript(args.data), None))

    header = (f"{'file':<40} {'dur s':>6} {'words':>5} {'WER':>6} {'WER-f':>6} {'ASR RTF':>7} "
              f"{'FA RTF':>7} {'FA bnd':>12} {'ASR bnd':>12} {'ASR+FA bnd':>12} {'ASR~FA':>12}")
    print("\nWER-f: WER without fillers (uh, um). bnd: median/mean |error| in ms of word starts and "
          "ends against the TextGrid's words tier (matched words in brackets): FA = forced "
          "alignment of the reference text, ASR = Whisper's own word times, ASR+FA = Whisper's "
          "words re-timed by forced alignment. ASR~FA: the same, ASR times against FA times "
          "(agreement, no reference needed). RTF = seconds of processing per second of audio.\n")
    print(header)
    print("-" * len(header))
    totals = {"errors": 0.0, "errors_f": 0.0, "words_f": 0, "words": 0, "asr_s": 0.0, "fa_s": 0.0, "audio_s": 0.0}
    for name, path, text, grid in jobs:
        samples = load_audio(str(path))
        duration = len(samples) / 16000
        reference = read_textgrid(grid) if grid else None
        if text is None and reference is not None:
            text = " ".join(w.word for w in reference)
        t0 = time.perf_counter()
        hypothesis = transcribe(samples, args.model)
        asr_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            aligned = align(samples, text)
        except AlignmentError as error:
            aligned = []
            print(f"  ({name}: forced alignment failed: {error})")
        fa_s = time.perf_counter() - t0
        try:
            refined = refine_times(samples, hypothesis) if hypothesis else []
        except AlignmentError:
            refined = []
        wer = word_error_rate(text, words_to_text(hypothesis))
        wer_f = word_error_rate(text, words_to_text(hypothesis), drop_fillers=True)
        fa_bnd = boundary_error(reference, aligned) if reference and aligned else None
        asr_bnd = boundary_error(reference, hypothesis) if reference and hypothesis else None
        ref_bnd = boundary_error(reference, refined) if reference and refined else None
        agree = boundary_error(aligned, hypothesis) if aligned and hypothesis else None
        n_words = len(normalize_words(text))
        totals["errors"] += wer * n_words
        totals["words"] += n_words
        n_words_f = len(normalize_words(text)) - sum(w in FILLERS for w in normalize_words(text))
        totals["errors_f"] += wer_f * n_words_f
        totals["words_f"] += n_words_f
        totals["asr_s"] += asr_s
        totals["fa_s"] += fa_s
        totals["audio_s"] += duration
        print(f"{name:<40} {duration:>6.2f} {n_words:>5} {wer:>6.3f} {wer_f:>6.3f} "
              f"{asr_s / duration:>7.3f} {fa_s / duration:>7.3f} {_ms(fa_bnd):>12} "
              f"{_ms(asr_bnd):>12} {_ms(ref_bnd):>12} {_ms(agree):>12}")
    print("-" * len(header))
    print(f"{'all (pooled WER, total RTF)':<40} {totals['audio_s']:>6.1f} {totals['words']:>5} "
          f"{totals['errors'] / max(totals['words'], 1):>6.3f} "
          f"{totals['errors_f'] / max(totals['words_f'], 1):>6.3f} "
          f"{totals['asr_s'] / totals['audio_s']:>7.3f} {totals['fa_s'] / totals['audio_s']:>7.3f}")
    no_tier = [g.name for g in all_grids if g.stem not in grids]
    if no_tier:
        print(f"\nTextGrids without a words tier (not used for boundaries): {', '.join(no_tier)}")
    print("\nSkipped:")
    for line in skipped:
        print(f"  {line}")


def _has_words_tier(path: Path) -> bool:
    try:
        read_textgrid(path)
    except ValueError:
        return False
    return True


if __name__ == "__main__":
    main()
