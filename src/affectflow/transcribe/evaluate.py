"""Scoring transcripts and word times: WER, word-boundary error, and readers for references.

Both scores work on *normalised* words (`normalize_words`): lower case, punctuation dropped,
hyphenated words split, digits spelled out, annotation marks such as ``[noise]``, ``<VOCNOISE>``
or ``{CG}`` removed. The same normalisation feeds the forced aligner, so what is scored is what
is aligned. References come as `.lab` files (one plain transcript) or Praat TextGrids (the
"words" tier; long and short text formats, UTF-8 or UTF-16).
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from pathlib import Path
from typing import Sequence

from affectflow.transcribe.asr import Word

_MARKUP = re.compile(r"^[\[<{(].*[\]>})]$")  # [noise], <VOCNOISE>, {CG}, (laughs), <s>
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_SYMBOLS = {"%": " percent ", "&": " and ", "+": " plus ", "@": " at "}
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
         "fifteen sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def number_words(n: int, years: bool = True) -> list[str]:
    """English words for 0 <= n < 10**9; with `years`, 1100-1999 and 2010-2099 read as pairs."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    if years and (1100 <= n <= 1999 or 2010 <= n <= 2099):  # "nineteen eighty four"
        high, low = divmod(n, 100)
        tail = ["hundred"] if low == 0 else (["oh", _ONES[low]] if low < 10 else number_words(low))
        return number_words(high) + tail
    for size, name in ((10**6, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            high, low = divmod(n, size)
            return number_words(high, False) + [name] + (number_words(low, False) if low else [])
    raise ValueError(n)


_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
             "nine": "ninth", "twelve": "twelfth"}


def ordinal_words(n: int) -> list[str]:
    """English words for the ordinal of n (21 -> twenty first)."""
    words = number_words(n, years=False)
    last = words[-1]
    if last in _ORDINALS:
        words[-1] = _ORDINALS[last]
    else:
        words[-1] = last[:-1] + "ieth" if last.endswith("y") else last + "th"
    return words


def normalize_words(text: str) -> list[str]:
    """Lower-case word tokens of `text`: the unit of WER, boundary matching and alignment.

    Keeps word-internal apostrophes (``i'm``), splits on hyphens, spells out integers and drops
    tokens that are annotation marks in brackets. Accents are kept (non-English text stays
    distinguishable); callers that need ASCII strip them.
    """
    text = unicodedata.normalize("NFKC", text).translate(_APOSTROPHES).lower()
    words: list[str] = []
    for raw in text.split():
        if _MARKUP.match(raw):
            continue
        for symbol, spoken in _SYMBOLS.items():
            raw = raw.replace(symbol, spoken)
        grouped = re.search(r"\d,\d{3}", raw) is not None  # 1,500 is a quantity, not a year
        raw = re.sub(r"(?<=\d),(?=\d{3})", "", raw)
        for piece in re.split(r"[^\w']+|_", raw):
            piece = piece.strip("'")
            if not piece:
                continue
            ordinal = re.fullmatch(r"(\d{1,9})(st|nd|rd|th)", piece)
            if ordinal:
                words.extend(ordinal_words(int(ordinal.group(1))))
                continue
            for part in re.findall(r"\d+|[^\W\d]+(?:'[^\W\d]+)*", piece):
                if part.isdigit():  # digits spelled out; over 9 digits, one by one
                    words.extend(number_words(int(part), years=not grouped) if len(part) <= 9
                                 else [_ONES[int(d)] for d in part])
                else:
                    words.append(part)
    return words


def align_sequences(reference: Sequence[str], hypothesis: Sequence[str]
                    ) -> tuple[int, list[tuple[int | None, int | None]]]:
    """Levenshtein alignment of two token lists: (edit distance, aligned index pairs).

    Pairs are (i, j) for a hit or substitution, (i, None) for a deletion, (None, j) for an
    insertion. Among alignments with the fewest edits, one with the most hits is chosen, so
    equal words line up (what boundary matching needs).
    """
    n, m = len(reference), len(hypothesis)
    # cost[i][j] = (edits, -hits) of the best alignment of reference[:i] with hypothesis[:j]
    cost = [[(0, 0)] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        cost[i][0] = (i, 0)
    for j in range(m + 1):
        cost[0][j] = (j, 0)
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            edits, hits = cost[i - 1][j - 1]
            same = reference[i - 1] == hypothesis[j - 1]
            diagonal = (edits + (not same), hits - same)
            up, left = cost[i - 1][j], cost[i][j - 1]
            cost[i][j] = min(diagonal, (up[0] + 1, up[1]), (left[0] + 1, left[1]))
    pairs: list[tuple[int | None, int | None]] = []
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0:
            edits, hits = cost[i - 1][j - 1]
            same = reference[i - 1] == hypothesis[j - 1]
            if cost[i][j] == (edits + (not same), hits - same):
                pairs.append((i - 1, j - 1))
                i, j = i - 1, j - 1
                continue
        if i > 0 and cost[i][j] == (cost[i - 1][j][0] + 1, cost[i - 1][j][1]):
            pairs.append((i - 1, None))
            i -= 1
        else:
            pairs.append((None, j - 1))
            j -= 1
    pairs.reverse()
    return cost[n][m][0], pairs


FILLERS = frozenset({"uh", "um", "uhm", "umm", "hmm", "mm", "mmm", "mhm"})


def word_error_rate(reference: str, hypothesis: str, drop_fillers: bool = False) -> float:
    """(substitutions + deletions + insertions) / reference words, on normalised words.

    `drop_fillers` removes hesitations (uh, um, hmm...) from both sides first, as Whisper's own
    evaluations do: Whisper rarely writes them, careful transcripts do. An empty reference gives
    0.0 for an empty hypothesis and 1.0 otherwise.
    """
    ref, hyp = normalize_words(reference), normalize_words(hypothesis)
    if drop_fillers:
        ref = [w for w in ref if w not in FILLERS]
        hyp = [w for w in hyp if w not in FILLERS]
    if not ref:
        return 0.0 if not hyp else 1.0
    distance, _ = align_sequences(ref, hyp)
    return distance / len(ref)


def _key(word: str) -> str:
    return " ".join(normalize_words(word))


def boundary_error(reference: Sequence[Word], hypothesis: Sequence[Word]) -> dict[str, float]:
    """Absolute start/end time errors (ms) over words matched by a word-level alignment.

    Only hits (same normalised word on an aligned pair) count; substitutions, insertions and
    deletions are left out, so `n_matched` says how much the figures rest on. `within_50ms` /
    `within_100ms` are the shares of boundaries (starts and ends together) within tolerance.
    """
    ref = [w for w in reference if _key(w.word)]
    hyp = [w for w in hypothesis if _key(w.word)]
    _, pairs = align_sequences([_key(w.word) for w in ref], [_key(w.word) for w in hyp])
    starts: list[float] = []
    ends: list[float] = []
    for i, j in pairs:
        if i is not None and j is not None and _key(ref[i].word) == _key(hyp[j].word):
            starts.append(1000.0 * abs(ref[i].start_s - hyp[j].start_s))
            ends.append(1000.0 * abs(ref[i].end_s - hyp[j].end_s))
    nan = float("nan")
    both = starts + ends
    return {
        "n_matched": float(len(starts)), "n_reference": float(len(ref)),
        "n_hypothesis": float(len(hyp)),
        "start_mean_ms": statistics.fmean(starts) if starts else nan,
        "start_median_ms": statistics.median(starts) if starts else nan,
        "end_mean_ms": statistics.fmean(ends) if ends else nan,
        "end_median_ms": statistics.median(ends) if ends else nan,
        "mean_ms": statistics.fmean(both) if both else nan,
        "median_ms": statistics.median(both) if both else nan,
        "within_50ms": sum(e <= 50 for e in both) / len(both) if both else nan,
        "within_100ms": sum(e <= 100 for e in both) / len(both) if both else nan,
    }


def _read_text(path: Path) -> str:
    data = path.read_bytes()
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16")
    return data.decode("utf-8-sig")


def read_lab(path: str | Path) -> str:
    """A `.lab` / `.txt` transcript: the whole file as one line of text."""
    return " ".join(_read_text(Path(path)).split())


_TG_TOKEN = re.compile(r'"((?:[^"]|"")*)"|<(exists|absent)>|(-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)'
                       r"|\[[^\]\n]*\]|[A-Za-z_?]+|\S")


def _textgrid_tokens(text: str) -> list[str | float]:
    """The values of a Praat text file in order; labels of the long format are skipped."""
    values: list[str | float] = []
    for match in _TG_TOKEN.finditer(text):
        string, flag, number = match.groups()
        if string is not None:
            values.append(string.replace('""', '"'))
        elif flag is not None:
            values.append(f"<{flag}>")
        elif number is not None:
            values.append(float(number))
    return values


def read_textgrid_tiers(path: str | Path) -> dict[str, list[Word]]:
    """All interval tiers of a Praat TextGrid (long or short text format) by name.

    Every interval is kept, empty ones too; point tiers are skipped.
    """
    path = Path(path)
    values = _textgrid_tokens(_read_text(path))
    if len(values) < 6 or not str(values[0]).startswith("ooTextFile") or values[1] != "TextGrid":
        raise ValueError(f"{path}: not a Praat text TextGrid (binary TextGrids are not supported)")
    tiers: dict[str, list[Word]] = {}
    try:
        if values[4] != "<exists>":
            return tiers
        n_tiers, position = int(values[5]), 6  # after type, class, xmin, xmax, <exists>, size
        for _ in range(n_tiers):
            kind, name, count = str(values[position]), str(values[position + 1]), int(values[position + 4])
            position += 5
            if kind == "IntervalTier":
                items = values[position: position + 3 * count]
                if len(items) < 3 * count:
                    raise IndexError("file ends inside a tier")
                tiers[name] = [Word(str(items[k + 2]), float(items[k]), float(items[k + 1]))
                               for k in range(0, 3 * count, 3)]
                position += 3 * count
            else:  # TextTier: (time, mark) pairs
                position += 2 * count
    except (IndexError, ValueError) as error:
        raise ValueError(f"{path}: malformed TextGrid ({error})") from error
    return tiers


def read_textgrid(path: str | Path, tier: str = "words") -> list[Word]:
    """The non-empty intervals of the words tier of a TextGrid, in time order.

    The tier is the one named `tier` (any case), else the only one whose name ends with it
    (MFA's "speaker - words"); a missing tier raises ValueError naming the tiers there are.
    """
    tiers = read_textgrid_tiers(path)
    wanted = tier.lower()
    names = [n for n in tiers if n.lower() == wanted] or [
        n for n in tiers if n.lower().endswith(wanted)]
    if len(names) != 1:
        raise ValueError(f"{path}: no single tier named {tier!r} (tiers: {', '.join(tiers) or 'none'})")
    return [Word(w.word.strip(), w.start_s, w.end_s) for w in tiers[names[0]] if w.word.strip()]
