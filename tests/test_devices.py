"""`device: auto` on a cluster: the GPU Slurm gave the job, the CPU when it gave none."""

from __future__ import annotations

import pytest

from affectflow.devices import auto_device, resolve_device, slurm_gpus_allocated


def _cuda() -> bool:
    return True  # a node where the library sees GPUs (whether or not they are the job's)


@pytest.mark.parametrize("env, allocated, device", [
    ({}, None, "cuda"),  # outside Slurm: whatever torch sees
    ({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "2"}, True, "cuda"),  # Slurm's GPU, as cuda:0
    ({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "0,1"}, True, "cuda"),
    ({"SLURM_JOB_ID": "7", "SLURM_STEP_GPUS": "3"}, True, "cuda"),  # GPUs named, no CUDA variable
    ({"SLURM_JOB_ID": "7"}, False, "cpu"),  # a CPU job on a node with GPUs it was not given
    ({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": ""}, False, "cpu"),
    ({"SLURM_JOB_ID": "7", "CUDA_VISIBLE_DEVICES": "NoDevFiles"}, False, "cpu"),
    ({"SLURM_JOB_ID": "7", "SLURM_GPUS_ON_NODE": "0"}, False, "cpu"),
])
def test_auto_is_the_slurm_gpu_or_the_cpu(env: dict[str, str], allocated: bool | None, device: str) -> None:
    assert slurm_gpus_allocated(env) is allocated
    assert auto_device(_cuda, env) == device
    assert auto_device(lambda: False, env) == "cpu"  # a GPU job where the library finds none


def test_named_devices_are_kept() -> None:
    env = {"SLURM_JOB_ID": "7"}
    assert resolve_device("cuda:1", _cuda, env) == "cuda:1"
    assert resolve_device("cpu", _cuda, {}) == "cpu"
    assert resolve_device("auto", _cuda, env) == "cpu"
