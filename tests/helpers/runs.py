"""Launch the trainer's entry points as Azure would run them: one process, torchrun, or
Open MPI's mpirun, with small data, one thread per process and the gloo backend."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TRAINER = ROOT / "src" / "trainer"
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mpirun() -> str | None:
    found = BIN / "mpirun"
    return str(found) if found.exists() else shutil.which("mpirun")


def env_for(tmp: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(("OMPI_", "PMIX_", "TORCHELASTIC_")) or key in ("RANK", "WORLD_SIZE", "LOCAL_RANK",
                                                                          "MASTER_ADDR", "MASTER_PORT", "NODE_RANK"):
            env.pop(key)
    env.update({"OMP_NUM_THREADS": "1", "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}",
                "PYTHONUNBUFFERED": "1", "MKL_NUM_THREADS": "1"})
    env.update(extra)
    return env


def command(script: str, args: list[str], procs: int = 1, launcher: str = "single") -> list[str]:
    entry = str(TRAINER / script)
    if launcher == "torchrun":
        return [str(BIN / "torchrun"), "--standalone", f"--nproc_per_node={procs}", entry, *args]
    if launcher == "mpi":
        return [mpirun(), "--allow-run-as-root", "--oversubscribe", "-np", str(procs), "-x", "OMP_NUM_THREADS",
                "-x", "MLFLOW_TRACKING_URI", "-x", "MASTER_PORT", "-x", "PYTHONUNBUFFERED",
                sys.executable, entry, *args]
    return [sys.executable, entry, *args]


def run(script: str, args: list[str], tmp: Path, procs: int = 1, launcher: str = "single",
        timeout: float = 300, **env: str) -> subprocess.CompletedProcess:
    environ = env_for(tmp, MASTER_PORT=str(free_port()), **env)
    return subprocess.run(command(script, [str(a) for a in args], procs, launcher), capture_output=True, text=True,
                          cwd=tmp, env=environ, timeout=timeout)


def start(script: str, args: list[str], tmp: Path, procs: int = 1, launcher: str = "single", **env: str):
    environ = env_for(tmp, MASTER_PORT=str(free_port()), **env)
    return subprocess.Popen(command(script, [str(a) for a in args], procs, launcher), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=tmp, env=environ, start_new_session=True)


def wait_for(predicate, timeout: float = 120, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended early ({proc.returncode}):\n{proc.stdout.read()}")
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> str:
    """Signal the launcher and every process under it. torchrun starts its workers in
    sessions of their own, so killing its process group alone would leave them running."""
    import psutil

    try:
        tree = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        tree = [proc.pid]
    if sig == signal.SIGKILL:
        targets = tree
    else:  # SIGTERM goes to every process but the launcher, as Azure's preemption reaches the workers
        targets = [pid for pid in tree if not _is_launcher(pid)] or tree
    for pid in targets:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    out, _ = proc.communicate(timeout=120)
    return out


def _is_launcher(pid: int) -> bool:
    """torchrun or mpirun, which pass a signal on to the workers themselves; not a worker, nor the
    trainer's own MLflow tracking process."""
    import psutil

    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except psutil.Error:
        return False
    return any(name in cmdline for name in ("torchrun", "torch.distributed.run", "mpirun", "prterun"))


def weights(model_dir: Path) -> dict:
    import torch

    return torch.load(model_dir / "model.pt", map_location="cpu", weights_only=True)


def same_weights(a: Path, b: Path) -> bool:
    import torch

    wa, wb = weights(a), weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
