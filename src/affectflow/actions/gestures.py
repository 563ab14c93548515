"""Head nods and shakes from the face store's pose series (pitch for nods, yaw for shakes).

A gesture is an oscillation: the angle swings one way and back by at least `min_swing_deg`
each time, and one such cycle (two swings) lasts between 1 / `max_hz` and 1 / `min_hz` seconds.
Swings are found with a zig-zag filter (a turning point is confirmed once the angle has come back
by `min_swing_deg`), so slow drift and jitter smaller than a swing never count. Back-to-back
cycles form one gesture; each gesture keeps its start and end times and its number of cycles.

The face extractor samples 5 frames/s by default, so only cycles slower than 2.5 Hz can be seen
at all (typical nods are 1.5-3 Hz): sample the face at 10 frames/s or more where nods matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from affectflow.features.params import param


@dataclass(frozen=True)
class GestureConfig:
    """What counts as a nod or a shake."""

    min_swing_deg: float = param(5.0, "Smallest swing of pitch (nod) or yaw (shake) that counts (degrees).",
                                 exclusiveMinimum=0)
    min_hz: float = param(0.5, "Slowest nod or shake cycle (Hz).", exclusiveMinimum=0)
    max_hz: float = param(4.0, "Fastest nod or shake cycle (Hz).", exclusiveMinimum=0)


@dataclass(frozen=True)
class Gesture:
    start_s: float
    end_s: float
    cycles: int


def turning_points(x: np.ndarray, min_swing: float) -> list[int]:
    """Indices of the zig-zag's turning points: alternate highs and lows, each at least
    `min_swing` from the one before (the last one is the extreme reached since the last turn)."""
    if len(x) < 2:
        return []
    low = high = 0
    direction, extreme, points = 0, 0, []
    for k in range(1, len(x)):
        if direction == 0:
            low = k if x[k] < x[low] else low
            high = k if x[k] > x[high] else high
            if x[k] - x[low] >= min_swing:
                points, direction, extreme = [low], 1, k
            elif x[high] - x[k] >= min_swing:
                points, direction, extreme = [high], -1, k
        elif direction == 1:
            if x[k] > x[extreme]:
                extreme = k
            elif x[extreme] - x[k] >= min_swing:
                points.append(extreme)
                direction, extreme = -1, k
        else:
            if x[k] < x[extreme]:
                extreme = k
            elif x[k] - x[extreme] >= min_swing:
                points.append(extreme)
                direction, extreme = 1, k
    if direction != 0:
        points.append(extreme)
    return points


def _runs(times: np.ndarray, valid: np.ndarray) -> list[np.ndarray]:
    """Index runs of valid frames without a gap longer than 1.5 frame steps."""
    idx = np.flatnonzero(valid)
    if len(idx) < 2:
        return [idx] if len(idx) else []
    step = float(np.median(np.diff(times))) if len(times) > 1 else 0.0
    breaks = np.flatnonzero((np.diff(idx) > 1) | (np.diff(times[idx]) > 1.5 * step)) + 1
    return np.split(idx, breaks)


def detect(times: np.ndarray, angle: np.ndarray, config: GestureConfig,
           valid: np.ndarray | None = None) -> list[Gesture]:
    """The oscillations of `angle` (degrees per frame at `times`, s) that are gestures.
    `valid`: frames with a face (default: every finite value)."""
    times = np.asarray(times, np.float64)
    angle = np.asarray(angle, np.float64)
    valid = np.isfinite(angle) if valid is None else np.asarray(valid, bool) & np.isfinite(angle)
    out: list[Gesture] = []
    for run in _runs(times, valid):
        t, pts = times[run], turning_points(angle[run], config.min_swing_deg)
        i = 0
        while i + 2 < len(pts):
            cycles, j = 0, i
            while j + 2 < len(pts) and 1.0 / config.max_hz <= t[pts[j + 2]] - t[pts[j]] <= 1.0 / config.min_hz:
                cycles, j = cycles + 1, j + 2
            if cycles:
                out.append(Gesture(float(t[pts[i]]), float(t[pts[j]]), cycles))
                i = j
            else:
                i += 1
    return out
