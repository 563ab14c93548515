"""Search selection: the best trial on the watched validation quantity, NaN trials skipped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from affectflow.train.search import select_best


def _trials(tmp_path: Path, losses: list[float], accs: list[float | None]) -> list[Path]:
    paths = []
    for i, (loss, acc) in enumerate(zip(losses, accs)):
        record = {"best_epoch": 2, "curves": {"valid_loss": [9.0, loss, 8.0]},
                  "valid_metrics": {"sarcasm": {"acc": acc, "mae": loss}}}
        paths.append(tmp_path / f"t{i}.json")
        paths[-1].write_text(json.dumps(record))
    return paths


def test_lowest_loss_highest_metric_and_nan_skipped(tmp_path: Path) -> None:
    grid = [{"lr": 0.1}, {"lr": 0.01}, {"lr": 0.001}]
    trials = _trials(tmp_path, [0.5, 0.3, float("nan")], [0.6, None, 0.9])
    by_loss = select_best(trials, grid, "valid_loss", tmp_path / "a.json", "m", "split")
    assert by_loss["hparams"] == {"lr": 0.01} and by_loss["best"] == 1 and by_loss["value"] == 0.3
    assert by_loss["model"] == "m" and json.loads((tmp_path / "a.json").read_text())["best"] == 1
    by_acc = select_best(trials, grid, "sarcasm/acc", tmp_path / "b.json")
    assert by_acc["hparams"] == {"lr": 0.001}  # the missing accuracy of trial 1 is skipped
    assert [row["sarcasm/acc"] for row in by_acc["table"]][0] == 0.6
    assert select_best(trials[:2], grid[:2], "sarcasm/mae", tmp_path / "c.json")["best"] == 1  # lower
    with pytest.raises(ValueError, match="3 trial results for 2 grid points"):
        select_best(trials, grid[:2], "valid_loss", tmp_path / "d.json")


def test_searched_task_weights_move_into_the_tasks() -> None:
    from affectflow.train.search import split_task_weights

    tasks, hparams = split_task_weights({"sarcasm": {}, "emotion_w": None},
                                        {"lr": 0.001, "weight.emotion_w": 0.4})
    assert tasks == {"sarcasm": {}, "emotion_w": {"weight": 0.4}} and hparams == {"lr": 0.001}
    with pytest.raises(ValueError, match="'weight.sentiment_w': the model trains no task 'sentiment_w'"):
        split_task_weights({"sarcasm": {}}, {"weight.sentiment_w": 1.0})
