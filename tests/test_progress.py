"""Shard jobs report progress: utterances done, rate, ETA, throttled in time."""

from __future__ import annotations

import logging

from affectflow.features.progress import Progress


def test_progress_lines_are_throttled_and_say_rate_and_eta(caplog) -> None:
    now = [0.0]
    progress = Progress("egemaps shard 3", 100, every_s=30.0, clock=lambda: now[0])
    with caplog.at_level(logging.INFO):
        for _ in range(100):
            now[0] += 1.0  # one utterance per second
            progress.step()
        progress.finish()
    assert progress.lines[0] == "egemaps shard 3: 30/100 utterances, 1.00/s, ETA 1m10s"
    assert len(progress.lines) == 4  # at 30, 60 and 90 s, and the end
    assert progress.lines[-1] == "egemaps shard 3: 100/100 utterances, 1.00/s, done in 1m40s"
    assert "30/100 utterances" in caplog.text


def test_nothing_to_do_logs_nothing() -> None:
    progress = Progress("text shard 0", 0)
    progress.finish()
    assert progress.lines == []


def test_the_last_line_is_not_repeated_when_a_step_just_logged_it() -> None:
    now = [0.0]
    progress = Progress("whisper shard 1", 10, every_s=5.0, clock=lambda: now[0])
    now[0] = 6.0
    progress.step(10)
    progress.finish()
    assert len(progress.lines) == 1 and progress.lines[0].endswith("done in 0m06s")
