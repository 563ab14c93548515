"""Time one training epoch of each sentiment-zoo model at its papers' default size, on CPU and,
where one is present, on CUDA (bfloat16 autocast), on MOSI-shaped data.

Data: synthetic rows shaped like MMSA's unaligned MOSI (text 50 × 768, audio 375 × 5, vision
500 × 20; lengths uniform in [half, full]), sentiment in [-3, 3]. One epoch = `Trainer.run_epoch`
over `--rows` training rows at batch size 32 with the model's hooks, after one warm-up batch; the
time is scaled linearly to MOSI's 1,284 training rows (printed beside the measured one).

    python benchmarks/zoo_epoch_time.py [--rows 128] [--models mult mfn ...] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from affectflow.train.data import SplitData, TrainingData, prepare
from affectflow.train.models import build_model, get_model, split_hparams
from affectflow.train.trainer import Trainer

SHAPES = {"text": (50, 768), "audio": (375, 5), "vision": (500, 20)}
ZOO = ["ef_lf_lstm", "mult", "mfn", "selfmm", "sugrm", "mtmd", "mmml"]
MOSI_TRAIN = 1284


def split(n: int, rng: np.random.Generator) -> SplitData:
    feats = {}
    for m, (t, d) in SHAPES.items():
        lengths = rng.integers(t // 2, t + 1, n)
        x = rng.normal(size=(n, t, d)).astype(np.float32)
        x[np.arange(t)[None, :] >= lengths[:, None]] = 0.0
        feats[m] = (x, lengths)
    return SplitData(feats, [f"u{i}" for i in range(n)],
                     labels={"sentiment": rng.uniform(-3, 3, n).astype(np.float32)})


def epoch_seconds(name: str, data: TrainingData, device: torch.device) -> float:
    prep = prepare(data, {"sentiment": 1.0})
    trainer_cfg, cfg = split_hparams(name, {"batch_size": 32, "mtmd_teacher": "text"})
    torch.manual_seed(0)
    model = build_model(name, data.modality_dims(), prep.specs, cfg).to(device)
    entry = get_model(name)
    hooks = entry.hooks(cfg) if entry.hooks else []
    trainer = Trainer(model, prep, trainer_cfg, device, hooks=hooks)
    for hook in hooks:
        hook.on_train_start(trainer)
    trainer.epoch = 1
    feats, targets = prep.feats["train"], prep.targets["train"]
    warm = {m: (x[:32], n[:32]) for m, (x, n) in feats.items()}
    trainer.run_epoch(warm, {t: v[:32] for t, v in targets.items()}, 32, torch.Generator().manual_seed(0))
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    trainer.run_epoch(feats, targets, 32, torch.Generator().manual_seed(1))
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--models", nargs="*", default=ZOO)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    data = TrainingData({"train": split(args.rows, rng), "valid": split(8, rng), "test": split(8, rng)})
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    names = {d.type: (torch.cuda.get_device_name(0) if d.type == "cuda" else f"CPU, {args.threads} threads")
             for d in devices}
    print(f"one epoch, {args.rows} MOSI-shaped rows, batch 32; scaled to {MOSI_TRAIN} rows in brackets")
    print(f"{'model':<12} " + " ".join(f"{names[d.type]:>28}" for d in devices))
    for name in args.models:
        cells = []
        for device in devices:
            seconds = epoch_seconds(name, data, device)
            cells.append(f"{seconds:8.2f} s ({seconds * MOSI_TRAIN / args.rows:8.1f} s)")
        print(f"{name:<12} " + " ".join(f"{c:>28}" for c in cells), flush=True)


if __name__ == "__main__":
    main()
