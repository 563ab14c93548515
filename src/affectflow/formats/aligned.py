"""The word-aligned view: every modality as one vector per word, on the words' own time axis.

Papers 000, 001 and 004 train on word-aligned sequences (P2FA word times, "the mean over the
segments within one aligned word", MMSA's ``aligned_50``). Given a row's frames (values and
centre times) and the utterance's word intervals from the transcript stage, each word gets the
mean of the frames that overlap it (`align_to_reference`, the vectorised interval collapse of
`formats/csd.py`), and a word that no frame overlaps (shorter than a frame, or in a gap) gets
the frame whose centre is nearest to the word's middle. Frames span their centre ± half the
row's median step; text tokens, whose time is their word's centre, are points (a token counts
for the word whose span holds its time, and for no neighbour).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from affectflow.formats.csd import EPSILON, align_to_reference, frame_intervals


def word_intervals(words: Any) -> np.ndarray:
    """(W, 2) start/end seconds from a manifest `words` cell (a list of {word, start_s, end_s})."""
    if words is None or isinstance(words, float) or len(words) == 0:
        return np.zeros((0, 2))
    return np.array([[float(w["start_s"]), float(w["end_s"])] for w in words], dtype=np.float64)


def align_to_words(values: np.ndarray, times: np.ndarray, words: np.ndarray,
                   points: bool = False, default_step: float = 0.02) -> np.ndarray:
    """(W, D) float32: the mean of the frames overlapping each word, else the nearest frame.

    `values` (T, D) and `times` (T,) are one row's frames; `words` (W, 2) its word intervals;
    `points`: the steps are instants (text tokens at their word's centre), not frames."""
    values = np.asarray(values, dtype=np.float32).reshape(len(values), -1)
    times = np.asarray(times, dtype=np.float64)
    if len(values) == 0 or len(words) == 0:
        return np.zeros((len(words), values.shape[1]), np.float32)
    if points:
        aligned = _points_in(values, times, words)
    else:
        intervals = frame_intervals({"times": times}, default_step=default_step)
        aligned = align_to_reference({"u": (values, intervals)}, {"u": words}, empty="nan")["u"].features
    empty = np.isnan(aligned).any(axis=1)
    if empty.any():
        middles = words[empty].mean(axis=1)
        nearest = np.abs(times[None, :] - middles[:, None]).argmin(axis=1)
        aligned[empty] = values[nearest]
    return aligned.astype(np.float32)


def _points_in(values: np.ndarray, times: np.ndarray, words: np.ndarray) -> np.ndarray:
    """(W, D): the mean of the steps whose time lies inside each word (NaN where none does)."""
    order = np.argsort(times, kind="stable")
    times, values = times[order], values[order].astype(np.float64)
    lo = np.searchsorted(times, words[:, 0] + EPSILON, side="right")
    hi = np.searchsorted(times, words[:, 1] - EPSILON, side="left")
    sums = np.concatenate([np.zeros((1, values.shape[1])), np.cumsum(values, axis=0)])
    count = np.maximum(hi - lo, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count[:, None] > 0, (sums[np.maximum(hi, lo)] - sums[lo]) / count[:, None], np.nan)


def aligned_batch(values: np.ndarray, lengths: np.ndarray, times: np.ndarray,
                  words: Sequence[np.ndarray], points: bool, max_words: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Padded (N, W_max, D) word-aligned values and word counts for a padded batch of rows."""
    n_words = np.array([len(w) if max_words is None else min(len(w), max_words) for w in words], np.int64)
    out = np.zeros((len(words), max(int(n_words.max(initial=0)), 1), values.shape[2]), np.float32)
    for i, (row_words, n) in enumerate(zip(words, n_words)):
        t = int(lengths[i])
        out[i, :n] = align_to_words(values[i, :t], times[i, :t], row_words[:n], points)
    return out, np.maximum(n_words, 1)
