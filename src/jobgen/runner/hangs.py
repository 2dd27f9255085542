"""`generator.py run --hang-timeout S`: a rank that prints nothing and uses no CPU for S seconds
while its job runs is hung (Azure does not notice: a rank blocked in a collective waits until
`limits.timeout`). Every live rank's Python stacks are then read with py-spy (or, for a process
that installed a faulthandler on SIGUSR1, as our trainer does, by that signal), written to
user_logs/hang_stacks.txt and summarised in a few lines:

    rank 1 in wait_forever (train.py:12)
    ranks 0, 2-3 in all_reduce (torch/distributed/distributed_c10d.py:2950) from _stop_agreed (trainkit/engine.py:186)

and the job is stopped like any failure (with --hang-report-only it goes on after the report).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

SAMPLE_SECONDS = 1.0  # how often each rank's CPU time is read
IDLE_SHARE = 0.05  # at most this share of one core over the window: no progress
STACKS_FILE = "hang_stacks.txt"
PY_SPY_SECONDS = 20.0


class HangWatch:
    def __init__(self, timeout: float, logs: Path, say, stop: bool = True):
        self.timeout = timeout
        self.logs = logs
        self.say = say
        self.stop = stop
        self.samples: dict[int, deque] = {}
        self.next_sample = 0.0
        self.reported = False

    def line(self, launch, proc, text: str) -> None:
        pass  # Proc.last_output is kept by the launch

    def poll(self, launch) -> str | None:
        now = time.monotonic()
        if self.reported or now < self.next_sample:
            return None
        self.next_sample = now + SAMPLE_SECONDS
        hung = []
        for proc in launch.procs:
            if proc.exit_code is not None:
                continue
            cpu = _cpu_seconds(launch.rank_processes(proc))
            history = self.samples.setdefault(proc.rank, deque())
            history.append((now, cpu))
            while len(history) > 1 and history[1][0] <= now - self.timeout:
                history.popleft()
            oldest_at, oldest_cpu = history[0]
            silent = now - proc.last_output
            if (silent >= self.timeout and now - oldest_at >= self.timeout * 0.9
                    and cpu - oldest_cpu <= IDLE_SHARE * (now - oldest_at)):
                hung.append(proc)
        if not hung:
            return None
        self.reported = True
        return self._report(launch, hung)

    def _report(self, launch, hung: list[Any]) -> str | None:
        live = [p for p in launch.procs if p.exit_code is None]
        stacks = {p.rank: read_stacks(launch.rank_processes(p)) for p in live}
        names = ", ".join(str(p.rank) for p in hung)
        where = self.logs / STACKS_FILE
        lines = summarize(stacks)
        header = (f"rank(s) {names}: no output and no CPU for {self.timeout:g} s (--hang-timeout); "
                  f"every live rank's Python stacks at {time.strftime('%Y-%m-%d %H:%M:%S')}")
        body = [header, "", *lines, ""]
        for rank in sorted(stacks):
            body.append(f"===== rank {rank} =====")
            body.append(stacks[rank].text or "(no Python stacks could be read)")
            body.append("")
        try:
            where.write_text("\n".join(body) + "\n")
        except OSError:
            pass
        self.say(f"hang: rank(s) {names} printed nothing and used no CPU for {self.timeout:g} s; stacks in "
                 f"{where}")
        for text in lines:
            self.say(f"  {text}")
        if not self.stop:
            return None
        first = hung[0].rank
        return (f"rank(s) {names} hung: no output and no CPU for {self.timeout:g} s (--hang-timeout); "
                f"rank {first} {describe(stacks[first]) if first in stacks else 'ended'}; every rank's stacks in "
                f"user_logs/{STACKS_FILE}")


class Stacks:
    """One rank's Python threads: each a list of frames, innermost first, as (function, file, line)."""

    def __init__(self, threads: list[tuple[str, list[tuple[str, str, int]]]] | None = None, text: str = ""):
        self.threads = threads or []
        self.text = text

    def main_frames(self) -> list[tuple[str, str, int]]:
        for name, frames in self.threads:
            if name == "MainThread" and frames:
                return frames
        return next((frames for _, frames in self.threads if frames), [])


def _cpu_seconds(processes: list[Any]) -> float:
    import psutil

    total = 0.0
    for proc in processes:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def py_spy() -> str | None:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else shutil.which("py-spy")


def read_stacks(processes: list[Any]) -> Stacks:
    """The Python stacks of a rank's Python processes (its shells and launchers have none)."""
    threads: list[tuple[str, list[tuple[str, str, int]]]] = []
    texts: list[str] = []
    for proc in processes:
        try:
            name = proc.name()
            pid = proc.pid
        except Exception:  # noqa: BLE001 - gone
            continue
        if "python" not in name:
            continue
        got = _py_spy_dump(pid) or _faulthandler_dump(proc)
        if got is None:
            texts.append(f"pid {pid}: the stacks could not be read (install py-spy; reading another process needs "
                         "ptrace permission: root, or kernel.yama.ptrace_scope=0)")
            continue
        threads.extend(got.threads)
        texts.append(f"pid {pid} ({' '.join(_cmdline(proc))[:200]}):\n{got.text}")
    return Stacks(threads, "\n".join(texts))


def _cmdline(proc) -> list[str]:
    try:
        return proc.cmdline()
    except Exception:  # noqa: BLE001
        return []


def _py_spy_dump(pid: int) -> Stacks | None:
    tool = py_spy()
    if tool is None:
        return None
    try:
        result = subprocess.run([tool, "dump", "--pid", str(pid), "--json"], capture_output=True, text=True,
                                timeout=PY_SPY_SECONDS)
        dumped = json.loads(result.stdout) if result.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None
    if not isinstance(dumped, list):
        return None
    threads, text = [], []
    for thread in dumped:
        frames = [(f.get("name") or "?", f.get("short_filename") or f.get("filename") or "?", int(f.get("line") or 0))
                  for f in thread.get("frames") or []]
        name = thread.get("thread_name") or str(thread.get("thread_id"))
        threads.append((name, frames))
        text.append(f"  thread {name}:")
        text.extend(f"    {fn} ({path}:{line})" for fn, path, line in frames)
    return Stacks(threads, "\n".join(text))


def _catches(pid: int, sig: int) -> bool:
    """Whether process ``pid`` has a handler for ``sig`` (SigCgt in /proc/PID/status): only then
    may SIGUSR1 be sent, whose default action ends the process."""
    try:
        for row in Path(f"/proc/{pid}/status").read_text().splitlines():
            if row.startswith("SigCgt:"):
                return bool(int(row.split()[1], 16) >> (sig - 1) & 1)
    except (OSError, ValueError, IndexError):
        pass
    return False


def _faulthandler_dump(proc) -> Stacks | None:
    """faulthandler's dump, written to the rank's own log (its stderr) on SIGUSR1."""
    if not hasattr(signal, "SIGUSR1") or not _catches(proc.pid, signal.SIGUSR1):
        return None
    try:
        os.kill(proc.pid, signal.SIGUSR1)
    except OSError:
        return None
    return Stacks([], "  (faulthandler: the stacks are in this rank's log, user_logs/std_log_process_NN.txt)")


def _where(frame: tuple[str, str, int]) -> str:
    name, path, line = frame
    return f"{name} ({path}:{line})"


def _is_library(path: str) -> bool:
    return ("site-packages" in path or path.startswith(("torch/", "threading.py", "<frozen")) or "/lib/python" in path
            or path in ("selectors.py", "socket.py", "subprocess.py", "queue.py"))


def describe(stacks: Stacks) -> str:
    frames = stacks.main_frames()
    if not frames:
        return "no Python stack read"
    text = f"in {_where(frames[0])}"
    if _is_library(frames[0][1]):
        own = next((f for f in frames[1:] if not _is_library(f[1])), None)
        if own is not None:
            text += f" from {_where(own)}"
    return text


def summarize(stacks: dict[int, Stacks]) -> list[str]:
    """One line per place where ranks are: 'rank 3 in all_reduce (...)', 'ranks 0-2 in ...'."""
    groups: dict[str, list[int]] = {}
    for rank in sorted(stacks):
        groups.setdefault(describe(stacks[rank]), []).append(rank)
    ordered = sorted(groups.items(), key=lambda item: (len(item[1]), item[1]))
    return [f"{'rank' if len(ranks) == 1 else 'ranks'} {spans(ranks)} {where}" for where, ranks in ordered]


def spans(numbers: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    out, start, prev = [], None, None
    for n in sorted(numbers):
        if start is None:
            start = prev = n
        elif n == prev + 1:
            prev = n
        else:
            out.append(f"{start}-{prev}" if prev > start else str(start))
            start = prev = n
    if start is not None:
        out.append(f"{start}-{prev}" if prev > start else str(start))
    return ", ".join(out)
