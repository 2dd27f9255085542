"""`generator.py serve MODEL_DIR`: the scoring script under azureml-inference-server-http (the
server Azure's managed online endpoints run), bound to 127.0.0.1."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import paths
from .errors import JobgenError

SCORE_SCRIPT = "score.py"
GRACE_SECONDS = 10.0  # SIGTERM to the server's process group first, SIGKILL after this
# Requests one worker reads at once (gunicorn's gthread worker): a client that sends its body
# slowly holds one of them, not the worker. score.py still scores one request at a time per
# worker, so WORKER_COUNT keeps meaning how many requests are scored at once.
THREADS_PER_WORKER = 4
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def trainer_dir() -> Path:
    return paths.root() / "src" / "trainer"


def check_model_dir(model_dir: Path) -> Path:
    model_dir = Path(model_dir).resolve()
    if not model_dir.exists():
        raise JobgenError("model folder not found", where=str(model_dir),
                          hint="pass export_onnx.py's output (model.onnx beside model.json), e.g. a run's "
                               "outputs/onnx_dir")
    if not list(model_dir.rglob("model.onnx")) or not list(model_dir.rglob("model.json")):
        raise JobgenError("no model.onnx with model.json in this folder", where=str(model_dir),
                          hint="serve the ONNX export (python src/trainer/export_onnx.py ... --output-dir DIR)")
    return model_dir


def command(port: int, workers: int = 1) -> list[str]:
    gunicorn = Path(sys.executable).parent / "gunicorn"
    if not gunicorn.exists():
        raise JobgenError("azureml-inference-server-http is not installed", where="serve",
                          hint="pip install -e '.[serve]' (make does)")
    return [str(gunicorn), "-b", f"127.0.0.1:{port}", "-w", str(workers), "--timeout", "300",
            "-k", "gthread", "--threads", str(THREADS_PER_WORKER),
            "--access-logfile", "-", "--error-logfile", "-", "azureml_inference_server_http.server.entry:app"]


def azure_layout(model_dir: Path) -> Path:
    """The folder a managed online deployment mounts a registered model at:
    .../azureml-models/<model name>/<version> (the server reads the model id from it)."""
    import re
    import tempfile

    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", model_dir.name) or "model"
    base = Path(tempfile.mkdtemp(prefix="jobgen-serve-")) / "azureml-models" / name
    base.mkdir(parents=True)
    (base / "1").symlink_to(model_dir, target_is_directory=True)
    return base / "1"


def environment(model_dir: Path, variant: str | None, workers: int = 1, provider: str | None = None,
                entry_script: Path | None = None) -> dict[str, str]:
    """The server's environment; `entry_script` replaces score.py (the benchmarks' eager scorer)."""
    env = dict(os.environ)
    code = trainer_dir()
    env.update({"WORKER_COUNT": str(workers),  # as Azure's server reads it; the scorer shares the cores out by it
                "AZUREML_MODEL_DIR": str(azure_layout(model_dir)),
                "AZUREML_ENTRY_SCRIPT": str(entry_script or code / SCORE_SCRIPT),
                "PYTHONPATH": str(code) + os.pathsep + env.get("PYTHONPATH", "")})
    if variant:
        env["JOBGEN_ONNX_VARIANT"] = variant
    if provider:
        env["JOBGEN_ORT_PROVIDER"] = provider
    return env


def check_provider(provider: str | None) -> None:
    """Refuse --provider openvino, with one line, where onnxruntime has no OpenVINO provider."""
    if provider != "openvino":
        return
    import onnxruntime as ort

    if "OpenVINOExecutionProvider" not in ort.get_available_providers():
        raise JobgenError(f"onnxruntime {ort.__version__} here has no OpenVINO execution provider",
                          where="--provider openvino",
                          hint="install onnxruntime-openvino in place of onnxruntime, or use --provider cpu")


def start(model_dir: Path, port: int, variant: str | None = None, workers: int = 1,
          log=None, provider: str | None = None, entry_script: Path | None = None) -> subprocess.Popen:
    """Start the server and wait until /score answers (tests and benchmarks use this)."""
    model_dir = check_model_dir(model_dir)
    proc = subprocess.Popen(command(port, workers), env=environment(model_dir, variant, workers, provider, entry_script),
                            cwd=trainer_dir(), stdout=log or subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise JobgenError(f"the inference server stopped (exit {proc.returncode}) while loading the model",
                              where=str(model_dir), hint="run generator.py serve in a terminal to see its log")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                if s.recv(12).startswith(b"HTTP/1."):
                    return proc
        except OSError:
            time.sleep(0.2)
    stop(proc, grace=0)
    raise JobgenError("the inference server did not answer within 120 s", where=str(model_dir))


def run_until_stopped(cmd: list[str], env: dict[str, str], cwd: Path) -> int:
    """Run the server in its own session until it exits, or until this process is told to stop
    (SIGTERM, SIGHUP, Ctrl-C): then stop the server with all its workers. Returns the server's
    exit code, or 128 + the signal's number (143 for SIGTERM, 130 for Ctrl-C)."""
    received: list[int] = []
    previous = _catch(STOP_SIGNALS, received.append)
    try:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, start_new_session=True)
        while not received:
            try:
                return proc.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                pass
        stop(proc)
        return 128 + received[0]
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _catch(signals, record) -> dict:
    """Record these signals instead of dying of them (main thread only); returns the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signal.signal(sig, lambda signum, frame: record(signum)) for sig in signals}


def stop(proc: subprocess.Popen, grace: float = GRACE_SECONDS) -> None:
    """Stop a server started in its own session: SIGTERM to its process group (gunicorn's master
    and its workers), SIGKILL to whatever is left of the group after `grace` seconds."""
    group = proc.pid  # start_new_session: the server leads its own process group
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.poll()  # reap the master once it exits, or it stays in the group as a zombie
        if not _signal_group(group, 0):
            break
        time.sleep(0.05)
    else:
        _signal_group(group, signal.SIGKILL)
    proc.wait()


def _signal_group(group: int, sig: int) -> bool:
    """Send `sig` to the process group; False when no process is left in it."""
    try:
        os.killpg(group, sig)
    except ProcessLookupError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
