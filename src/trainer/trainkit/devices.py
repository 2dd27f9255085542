"""Devices, precision and the process group: where a rank computes, in which dtype, and how it
joins (and leaves) the other ranks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

from .exits import leave_now
from .launcher import DistEnv


def cpu_has_bf16() -> bool:
    """bf16 matrix units (AMX or AVX512-BF16), where autocast to bf16 pays off on a CPU."""
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
    except (AttributeError, RuntimeError):
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(choice: str, device: torch.device) -> torch.dtype | None:
    if choice == "fp32":
        return None
    if choice == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else None
    return torch.bfloat16 if cpu_has_bf16() else None



def setup_device(env: DistEnv) -> torch.device:
    if torch.cuda.is_available():
        device = torch.device("cuda", env.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
        return device
    if "OMP_NUM_THREADS" not in os.environ:
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover
            cpus = os.cpu_count() or 1
        torch.set_num_threads(max(1, cpus // max(env.local_world_size, 1)))
    return torch.device("cpu")


_DISTRIBUTED = False  # set once this process has joined a process group; see leave()


def init_distributed(env: DistEnv, device: torch.device) -> None:
    global _DISTRIBUTED
    if not env.distributed:
        return
    os.environ.update(env.torch_environ())  # MPI ranks: translate to torch.distributed's variables
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, init_method="env://", rank=env.rank, world_size=env.world_size)
    _DISTRIBUTED = True


def leave(code: int):
    """End the process with `code`, without the interpreter's teardown. For a rank of a distributed
    run that teardown is fatal: DDP keeps the gloo process group (and its worker threads) alive past
    destroy_process_group, and a worker thread that frees its last collective's tensors after the
    teardown has begun needs the GIL, cannot have it, and aborts the process (SIGABRT, "terminate
    called without an active exception"), failing a job whose work is done. For a single process
    it only costs time: freeing every module of torch takes about 1 s here, after the work is done
    and saved. A single process still runs its atexit callbacks (no gloo threads to race); a
    distributed rank runs none. Output is flushed first; MLflow's run has already been ended by then."""
    leave_now(code, atexit_callbacks=not _DISTRIBUTED)
