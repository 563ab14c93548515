"""Forced alignment of a known English transcript to audio with PocketSphinx 5.

PocketSphinx ships its US-English acoustic model and the CMU pronouncing dictionary (~135k
words) inside the wheel, so alignment runs offline and fast (0.01-0.06x real time on one core
here). It aligns one utterance at a time (tested up to 27 s): on a 130 s concatenation of the
test recordings it did not complete at any beam width, so cut long recordings first. The transcript is normalised like the scorer does (`normalize_words`: lower case,
punctuation and annotation marks dropped, hyphens split, numbers spelled out); the decoder then
finds the best path through exactly those words, with optional silences between them.

Out-of-vocabulary words: first the spelling without apostrophes is tried, then a pronunciation
is guessed by simple English letter-to-sound rules and added to the (per-process) dictionary,
so the word still takes its share of time and its neighbours keep good boundaries; its own
times are rougher. Such words are logged. Tokens with no Latin letters (other scripts) cannot
be pronounced and are left out of the result (logged); a transcript with none left raises
`AlignmentError`.
"""

from __future__ import annotations

import functools
import logging
import re
import unicodedata

import numpy as np

from affectflow.transcribe.asr import SAMPLE_RATE, Word
from affectflow.transcribe.evaluate import normalize_words

log = logging.getLogger(__name__)

FRAME_RATE = 100  # PocketSphinx frames per second (10 ms)
_NON_WORDS = {"<s>", "</s>", "<sil>", "[NOISE]", "[SPEECH]"}

# Letter-to-sound rules for unknown words, longest match first (ARPAbet, CMU phone set).
_RULES: dict[str, str] = {
    "tch": "CH", "sch": "S K", "igh": "AY", "tion": "SH AH N", "sion": "ZH AH N", "ough": "AO",
    "ch": "CH", "sh": "SH", "th": "TH", "ph": "F", "wh": "W", "ck": "K", "ng": "NG", "qu": "K W",
    "gh": "", "kn": "N", "wr": "R", "ee": "IY", "ea": "IY", "ie": "IY", "oo": "UW", "ou": "AW",
    "ow": "OW", "oi": "OY", "oy": "OY", "ai": "EY", "ay": "EY", "au": "AO", "aw": "AO", "ey": "EY",
    "ei": "EY", "ue": "UW", "ew": "UW", "oa": "OW", "er": "ER", "ir": "ER", "ur": "ER",
    "ar": "AA R", "or": "AO R",
    "a": "AE", "b": "B", "c": "K", "d": "D", "e": "EH", "f": "F", "g": "G", "h": "HH", "i": "IH",
    "j": "JH", "k": "K", "l": "L", "m": "M", "n": "N", "o": "AA", "p": "P", "q": "K", "r": "R",
    "s": "S", "t": "T", "u": "AH", "v": "V", "w": "W", "x": "K S", "y": "IY", "z": "Z",
}
_LONGEST = max(len(k) for k in _RULES)


class AlignmentError(RuntimeError):
    """The transcript could not be aligned to the audio (reason in the message)."""


def guess_pronunciation(word: str) -> str | None:
    """A rough ARPAbet pronunciation from spelling alone, or None without Latin letters."""
    letters = "".join(c for c in unicodedata.normalize("NFKD", word.lower()) if "a" <= c <= "z")
    if not letters:
        return None
    if len(letters) > 3 and letters.endswith("e") and letters[-2] not in "aeiouy":
        letters = letters[:-1]  # silent final e
    letters = re.sub(r"([b-df-hj-np-tv-z])\1", r"\1", letters)  # doubled consonants
    phones: list[str] = []
    position = 0
    while position < len(letters):
        for size in range(min(_LONGEST, len(letters) - position), 0, -1):
            chunk = letters[position: position + size]
            if chunk in _RULES:
                if chunk == "y" and position == 0:
                    phones.append("Y")
                else:
                    phones.extend(_RULES[chunk].split())
                position += size
                break
    phones = [p for k, p in enumerate(phones) if k == 0 or p != phones[k - 1]]
    return " ".join(phones) or None


# Search settings tried in turn: PocketSphinx's defaults, then much wider beams with no HMM cap
# (needed on ~25 s of hoarse speech in the test data; about 4x slower, so only on failure).
SEARCH_SETTINGS: tuple[dict[str, float], ...] = (
    {}, {"beam": 1e-100, "wbeam": 1e-80, "pbeam": 1e-100, "maxhmmpf": -1})


@functools.lru_cache(maxsize=len(SEARCH_SETTINGS))
def _decoder(setting: int = 0):  # -> pocketsphinx.Decoder
    """A PocketSphinx decoder with its bundled en-US model, built once per process and setting."""
    from pocketsphinx import Decoder

    return Decoder(lm=None, loglevel="FATAL", **SEARCH_SETTINGS[setting])


def _dictionary_word(decoder, token: str, guessed: list[str]) -> str | None:
    """The dictionary entry to align `token` with, adding a guessed one when it is unknown."""
    for candidate in (token, token.replace("'", "")):
        if candidate and decoder.lookup_word(candidate) is not None:
            return candidate
    ascii_token = re.sub(r"[^a-z']", "", unicodedata.normalize("NFKD", token))
    if ascii_token and decoder.lookup_word(ascii_token) is not None:
        return ascii_token
    phones = guess_pronunciation(token)
    if phones is None:
        return None
    entry = ascii_token.replace("'", "") or "oov"
    try:
        decoder.add_word(entry, phones, True)
    except RuntimeError as error:
        log.warning("cannot add pronunciation %r for %r: %s", phones, token, error)
        return None
    guessed.append(f"{token} [{phones}]")
    return entry


def _decode(decoder, pcm: bytes, text: str) -> list[tuple[str, int, int]]:
    decoder.set_align_text(text)
    decoder.start_utt()
    decoder.process_raw(pcm, no_search=False, full_utt=True)
    decoder.end_utt()
    if decoder.hyp() is None:
        return []
    return [(re.sub(r"\(\d+\)$", "", s.word), s.start_frame, s.end_frame) for s in decoder.seg()
            if s.word not in _NON_WORDS and not s.word.startswith("+")]


def align(audio: np.ndarray, transcript: str) -> list[Word]:
    """Word times of `transcript` in 16 kHz mono float32 `audio`, in transcript order.

    Words are the normalised tokens (lower case, no punctuation); times are seconds from the
    start of `audio`. Raises AlignmentError when nothing can be aligned.
    """
    samples = np.asarray(audio, dtype=np.float32).reshape(-1)
    duration = len(samples) / SAMPLE_RATE
    tokens = normalize_words(transcript)
    if not tokens:
        return []
    if duration < 0.1:
        raise AlignmentError(f"audio too short to align ({duration:.3f} s)")
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    reason = ""
    for setting in range(len(SEARCH_SETTINGS)):
        decoder = _decoder(setting)
        guessed: list[str] = []
        units: list[tuple[str, str]] = []  # (token as output, dictionary entry)
        dropped: list[str] = []
        for token in tokens:
            entry = _dictionary_word(decoder, token, guessed)
            if entry is None:
                dropped.append(token)
            else:
                units.append((token, entry))
        if setting == 0 and guessed:
            log.info("guessed pronunciations for out-of-vocabulary words: %s", ", ".join(guessed))
        if setting == 0 and dropped:
            log.warning("left out %d word(s) with no English pronunciation: %s", len(dropped),
                        " ".join(dropped[:10]))
        if not units:
            raise AlignmentError("no word of the transcript can be pronounced in English")
        try:
            segments = _decode(decoder, pcm, " ".join(entry for _, entry in units))
        except RuntimeError as error:
            raise AlignmentError(f"PocketSphinx rejected the transcript: {error}") from error
        if len(segments) == len(units):
            return _to_words(units, segments, duration)
        reason = (f"alignment did not complete ({len(segments)} of {len(units)} words reached, "
                  f"audio {duration:.2f} s): the transcript may not match the audio")
        if setting + 1 < len(SEARCH_SETTINGS):
            log.info("%s; retrying with wider beams", reason)
    raise AlignmentError(reason)


def _to_words(units: list[tuple[str, str]], segments: list[tuple[str, int, int]],
              duration: float) -> list[Word]:
    """Frame spans (inclusive end frame) to Words in seconds, clipped to the audio."""
    words: list[Word] = []
    for (token, entry), (name, first, last) in zip(units, segments):
        if name != entry:
            raise AlignmentError(f"decoder returned {name!r} where {entry!r} was expected")
        start = min(first / FRAME_RATE, duration)
        end = min((last + 1) / FRAME_RATE, duration)
        words.append(Word(token, round(start, 3), round(end, 3)))
    return words


def refine_times(audio: np.ndarray, words: list[Word]) -> list[Word]:
    """ASR words (text and probability kept) with times from force-aligning their own text.

    Whisper tiny's word times are ~100 ms off on the test data, PocketSphinx's ~10-20 ms, so
    aligning the recognised text gives better times. Raises AlignmentError (callers keep the
    ASR times) when the text cannot be aligned or a word would be left out.
    """
    pieces = [normalize_words(w.word) for w in words]
    aligned = align(audio, " ".join(w.word for w in words))
    if len(aligned) != sum(len(p) for p in pieces):
        raise AlignmentError("some recognised words have no English pronunciation")
    refined: list[Word] = []
    position, last_end = 0, 0.0
    for word, piece in zip(words, pieces):
        if piece:
            span = aligned[position: position + len(piece)]
            start, end = span[0].start_s, span[-1].end_s
            position += len(piece)
        else:  # a word that is only punctuation: a zero-length mark where it stands
            start = end = last_end
        refined.append(Word(word.word, start, end, word.probability))
        last_end = end
    return refined


def english_coverage(text: str) -> float:
    """Share of the normalised words of `text` in PocketSphinx's English dictionary (0..1).

    A cheap language check for rows without a language column: English transcripts score
    about 0.9 or more; the Swedish/Spanish/French lines in the test data score lower.
    """
    tokens = normalize_words(text)
    if not tokens:
        return 0.0
    decoder = _decoder(0)
    return sum(decoder.lookup_word(t) is not None for t in tokens) / len(tokens)
