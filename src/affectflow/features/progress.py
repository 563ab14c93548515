"""Progress lines for long shard jobs: utterances done, rate and ETA, at most every few seconds.

Why: a shard of a large corpus can run for an hour; a user tailing its log (or a cluster job's
output) must see it move, without one line per utterance.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

log = logging.getLogger(__name__)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class Progress:
    """Counts finished items and logs `label: done/total utterances, rate/s, ETA` when at least
    `every_s` seconds passed since the last line, and once at the end."""

    def __init__(self, label: str, total: int, every_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label, self.total, self.every_s, self.clock = label, total, every_s, clock
        self.done = 0
        self.started = self.last = clock()
        self.lines: list[str] = []  # what was logged (for tests and the stats line)

    def step(self, n: int = 1) -> None:
        self.done += n
        if self.clock() - self.last >= self.every_s:
            self._emit()

    def finish(self) -> None:
        if self.total and not (self.lines and self.lines[-1].startswith(f"{self.label}: {self.done}/")):
            self._emit()

    def _emit(self) -> None:
        now = self.clock()
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        eta = (self.total - self.done) / rate if rate > 0 else float("inf")
        line = (f"{self.label}: {self.done}/{self.total} utterances, {rate:.2f}/s, "
                + (f"ETA {_duration(eta)}" if self.done < self.total else f"done in {_duration(elapsed)}"))
        self.lines.append(line)
        log.info("%s", line)
