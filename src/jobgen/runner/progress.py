"""What the runner shows while a job runs: a live table of nodes, processes or steps with
their state and latest metric on a terminal; plain prefixed lines otherwise; nothing but the
summary with --quiet."""

from __future__ import annotations

import re
import sys
import threading
import time
from typing import TextIO

METRIC = re.compile(r"\b([A-Za-z_][A-Za-z0-9_/]*)=([-+]?\d[\d.eE+-]*)")
# A rank's line that must stay on screen (the trainer's straggler warning, for one): the live
# table keeps only each rank's latest line, so these go to the notes under it.
WARNING = re.compile(r"^\[[\w.-]+\] warning: ")


def metrics_in(line: str) -> dict[str, str]:
    return dict(METRIC.findall(line))


class Reporter:
    """Quiet: the base class says nothing."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()

    def task_started(self, task: str, detail: str) -> None: ...
    def task_finished(self, task: str, status: str, detail: str = "") -> None: ...
    def proc_state(self, task: str, proc) -> None: ...
    def proc_line(self, task: str, proc, line: str) -> None: ...
    def note(self, text: str) -> None: ...
    def close(self) -> None: ...


class PlainReporter(Reporter):
    """One prefixed line per event, safe for CI logs and pipes."""

    def _say(self, text: str) -> None:
        with self.lock:
            self.stream.write(text + "\n")
            self.stream.flush()

    def task_started(self, task: str, detail: str) -> None:
        self._say(f"[{task}] started: {detail}")

    def task_finished(self, task: str, status: str, detail: str = "") -> None:
        self._say(f"[{task}] {status}" + (f": {detail}" if detail else ""))

    def proc_state(self, task: str, proc) -> None:
        if proc.state in ("failed",):
            self._say(f"[{task} node {proc.node} rank {proc.rank:02d}] exited with {proc.exit_code}")

    def proc_line(self, task: str, proc, line: str) -> None:
        self._say(f"[{task} node {proc.node} rank {proc.rank:02d}] {line}")

    def note(self, text: str) -> None:
        self._say(text)


class LiveReporter(Reporter):
    """A table redrawn in place (ANSI), one row per process, for a terminal."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(stream)
        self.rows: dict[tuple[str, int], dict] = {}
        self.tasks: dict[str, dict] = {}
        self.notes: list[str] = []
        self.drawn = 0
        self.started = time.monotonic()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def task_started(self, task: str, detail: str) -> None:
        with self.lock:
            self.tasks[task] = {"state": "running", "detail": detail, "start": time.monotonic()}

    def task_finished(self, task: str, status: str, detail: str = "") -> None:
        with self.lock:
            self.tasks.setdefault(task, {"start": time.monotonic()})
            self.tasks[task].update(state=status, detail=detail, end=time.monotonic())

    def proc_state(self, task: str, proc) -> None:
        with self.lock:
            row = self.rows.setdefault((task, proc.rank), {"node": proc.node, "metrics": {}, "line": ""})
            row["state"] = proc.state if proc.exit_code in (None, 0) else f"{proc.state} ({proc.exit_code})"

    def proc_line(self, task: str, proc, line: str) -> None:
        with self.lock:
            row = self.rows.setdefault((task, proc.rank), {"node": proc.node, "metrics": {}, "state": "running"})
            found = metrics_in(line)
            if found:
                row["metrics"].update(found)
            if line.strip():
                row["line"] = line.strip()
            if WARNING.match(line):
                self.notes.append(f"  {task} node {proc.node} rank {proc.rank:02d}: {line.strip()}")

    def note(self, text: str) -> None:
        with self.lock:
            self.notes.append(text)

    def _render(self) -> list[str]:
        width = 120
        out = [f"jobgen run  {time.monotonic() - self.started:6.1f}s"]
        for task, info in self.tasks.items():
            end = info.get("end", time.monotonic())
            out.append(f"  {task}: {info.get('state', '')}  {info.get('detail', '')}  ({end - info['start']:.1f}s)"[:width])
            for (t, rank), row in sorted(self.rows.items()):
                if t != task:
                    continue
                metrics = "  ".join(f"{k}={v}" for k, v in list(row["metrics"].items())[-4:])
                text = metrics or row.get("line", "")
                out.append(f"    node {row['node']} rank {rank:02d}  {row.get('state', ''):<14} {text}"[:width])
        out.extend(self.notes[-5:])
        return out

    def _draw(self) -> None:
        with self.lock:
            lines = self._render()
            buf = ""
            if self.drawn:
                buf += f"\x1b[{self.drawn}F"  # up to the first line drawn last time
            buf += "".join(f"\x1b[2K{line}\n" for line in lines)
            extra = self.drawn - len(lines)
            if extra > 0:
                buf += "\x1b[2K\n" * extra + f"\x1b[{extra}F"
            self.drawn = len(lines)
            self.stream.write(buf)
            self.stream.flush()

    def _loop(self) -> None:
        while not self.stop.wait(0.5):
            self._draw()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self._draw()


def make_reporter(quiet: bool, json_mode: bool, stream: TextIO | None = None) -> Reporter:
    stream = stream or (sys.stderr if json_mode else sys.stdout)
    if quiet:
        return Reporter(stream)
    if stream.isatty():
        return LiveReporter(stream)
    return PlainReporter(stream)
