"""Which torch device `auto` means here: the GPU a Slurm job was given, else the CPU.

Why a module of its own: training, the speech and text encoders and Whisper all accept
`device: auto`, and on a cluster it must mean the same thing for each. A GPU job gets its
devices from Slurm as `CUDA_VISIBLE_DEVICES` (torch then numbers them from 0, so `cuda` is the
first one Slurm gave). A job without a GPU request on a node that has GPUs may still *see* them
when the site does not fence devices with cgroups; taking one would collide with the job that
owns it, so inside a Slurm job without allocated GPUs `auto` is the CPU. Outside Slurm, `auto`
is CUDA when torch finds it.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping

# What Slurm (or a site's prolog) puts in CUDA_VISIBLE_DEVICES when no GPU was allocated.
NO_DEVICES = {"", "NoDevFiles", "-1", "none"}
# Set by Slurm for a job or step with GPUs (the jobstep plugin keeps the step's own).
SLURM_GPU_VARIABLES = ("SLURM_STEP_GPUS", "SLURM_JOB_GPUS", "SLURM_GPUS_ON_NODE")


def slurm_gpus_allocated(env: Mapping[str, str] | None = None) -> bool | None:
    """None outside a Slurm job; inside one, whether Slurm gave it GPUs."""
    env = os.environ if env is None else env
    if not env.get("SLURM_JOB_ID"):
        return None
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return visible.strip() not in NO_DEVICES
    return any(env.get(name, "").strip() not in ("", "0") for name in SLURM_GPU_VARIABLES)


def _torch_cuda() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def auto_device(cuda_available: Callable[[], bool] | None = None,
                env: Mapping[str, str] | None = None) -> str:
    """`cuda` or `cpu` for `device: auto` (see the module's docstring). `cuda_available` asks
    the library that will run the model (default torch; Whisper asks CTranslate2)."""
    if slurm_gpus_allocated(env) is False:
        return "cpu"
    return "cuda" if (cuda_available or _torch_cuda)() else "cpu"


def resolve_device(device: str, cuda_available: Callable[[], bool] | None = None,
                   env: Mapping[str, str] | None = None) -> str:
    """`auto` → `auto_device()`; any other name (cpu, cuda, cuda:1, mps) is returned as is."""
    return auto_device(cuda_available, env) if device == "auto" else device
