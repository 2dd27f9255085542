"""Failures a distributed job meets on Azure, made to happen here (`generator.py run --preempt`,
`--kill`) and the runner's answers to them: a preempted job is requeued as Azure requeues it,
and a rank that hangs is found (`--hang-timeout`) and shown with every rank's stacks.

- `--preempt [STEP:]NODE@WHEN`: what a low-priority eviction does to one node: SIGTERM to every
  process of that node, SIGKILL to those left after the grace period; the other nodes then stop as
  at any failure, and the job starts again from the start with the same outputs (only a checkpoint
  in an output saves the work), up to `--max-requeues` times. Repeated, the n-th preemption hits
  the n-th attempt.
- `--kill [STEP:]RANK@WHEN`: SIGKILL to one rank's processes (a crash, an out-of-memory kill): the
  job fails, and is not requeued.
- WHEN is seconds after the attempt's processes started (`1@20`), or a regular expression between
  slashes that fires at the first line of any rank's log that matches it (`1@/epoch 2\\//`).
"""

from __future__ import annotations

import re
import signal
import time
from dataclasses import dataclass, field
from typing import Any

from ..errors import JobgenError

# Azure documents no number of restarts for a preempted job; this many requeues by default here.
MAX_REQUEUES = 3
PREEMPT_GRACE_SECONDS = 30.0  # SIGTERM, then SIGKILL (the notice Azure's low-priority VMs get)
SPEC = re.compile(r"^(?:(?P<step>[^:@]+):)?(?P<target>\d+)@(?P<when>.+)$")


@dataclass(frozen=True)
class Fault:
    kind: str  # "preempt" (a node) or "kill" (a rank)
    target: int
    seconds: float | None = None
    pattern: re.Pattern | None = None
    step: str | None = None
    text: str = ""

    @property
    def flag(self) -> str:
        return f"--{self.kind} {self.text}"

    @property
    def what(self) -> str:
        return f"{'node' if self.kind == 'preempt' else 'rank'} {self.target}"

    def due(self, elapsed: float, line: str | None) -> bool:
        if self.seconds is not None:
            return elapsed >= self.seconds
        return line is not None and self.pattern is not None and self.pattern.search(line) is not None


def parse_fault(kind: str, text: str) -> Fault:
    """`[STEP:]N@SECONDS` or `[STEP:]N@/REGEX/`; one clear line when it is neither."""
    noun = "NODE" if kind == "preempt" else "RANK"
    example = "1@20 or 1@/epoch 2\\// (a pipeline step first: train:1@20)"
    found = SPEC.match(text.strip())
    if not found:
        raise JobgenError(f"--{kind} {text!r} is not [STEP:]{noun}@SECONDS or [STEP:]{noun}@/REGEX/",
                          where=f"--{kind}", hint=f"e.g. --{kind} {example}")
    when = found.group("when")
    seconds = pattern = None
    if len(when) >= 2 and when.startswith("/") and when.endswith("/"):
        try:
            pattern = re.compile(when[1:-1])
        except re.error as exc:
            raise JobgenError(f"--{kind} {text!r}: {when} is not a regular expression ({exc})",
                              where=f"--{kind}", hint=f"e.g. --{kind} {example}") from None
    else:
        try:
            seconds = float(when)
        except ValueError:
            raise JobgenError(f"--{kind} {text!r}: {when!r} is neither seconds nor /REGEX/", where=f"--{kind}",
                              hint=f"e.g. --{kind} {example}") from None
        if not seconds >= 0 or seconds == float("inf"):
            raise JobgenError(f"--{kind} {text!r}: {when} is not a number of seconds", where=f"--{kind}",
                              hint=f"e.g. --{kind} {example}")
    return Fault(kind, int(found.group("target")), seconds, pattern, found.group("step"), text.strip())


@dataclass
class Faults:
    """What `generator.py run` was asked to break, and how it answers."""

    preempts: list[Fault] = field(default_factory=list)
    kills: list[Fault] = field(default_factory=list)
    max_requeues: int = MAX_REQUEUES
    grace: float = PREEMPT_GRACE_SECONDS
    hang_timeout: float | None = None
    hang_stop: bool = True  # stop the job once a hang is reported (else only report it)

    def __bool__(self) -> bool:
        return bool(self.preempts or self.kills or self.hang_timeout)

    def resolve(self, tasks: list[Any], kind: str) -> list[str]:
        """Pin every fault to a unit of the plan; returns the problems (no step, node or rank out
        of range). A fault without a step belongs to the command job, or to a pipeline's only
        step that has the node or rank."""
        problems = []
        resolved = []
        for fault in [*self.preempts, *self.kills]:
            size = (lambda t: t.instance_count) if fault.kind == "preempt" else (lambda t: t.processes)
            if fault.step is not None:
                chosen = [t for t in tasks if t.id == fault.step]
                if not chosen:
                    problems.append(f"{fault.flag}: no step {fault.step!r} in this {kind} (steps: "
                                    f"{', '.join(t.id for t in tasks)})")
                    resolved.append(fault)
                    continue
            elif kind == "sweep":
                problems.append(f"{fault.flag}: a sweep's trials are not preempted here; run one trial's command job")
                resolved.append(fault)
                continue
            else:
                chosen = [t for t in tasks if fault.target < size(t)]
                if kind == "pipeline" and len(chosen) > 1:
                    problems.append(f"{fault.flag}: several steps have {fault.what} ({', '.join(t.id for t in chosen)})"
                                    f"; name one: --{fault.kind} {chosen[0].id}:{fault.text}")
                    resolved.append(fault)
                    continue
                chosen = chosen or tasks[:1]
            task = chosen[0]
            if fault.target >= size(task):
                unit = "node(s)" if fault.kind == "preempt" else "process(es)"
                problems.append(f"{fault.flag}: {task.label} has {size(task)} {unit}, numbered from 0")
            resolved.append(Fault(fault.kind, fault.target, fault.seconds, fault.pattern, task.id, fault.text))
        self.preempts = [f for f in resolved if f.kind == "preempt"]
        self.kills = [f for f in resolved if f.kind == "kill"]
        return problems

    def for_attempt(self, task_id: str, attempt: int) -> list[Fault]:
        """The faults of one attempt of one unit: its n-th preemption, and the kills (first attempt)."""
        preempts = [f for f in self.preempts if f.step == task_id]
        chosen = preempts[attempt - 1:attempt]
        if attempt == 1:
            chosen += [f for f in self.kills if f.step == task_id]
        return chosen


class Injector:
    """Fires one attempt's faults while Launch.wait polls (``poll``) and as lines arrive (``line``)."""

    def __init__(self, faults: list[Fault], grace: float, say):
        self.pending = list(faults)
        self.waiting: list[Fault] = []  # due, its processes not started yet
        self.grace = grace
        self.say = say
        self.started = time.monotonic()
        self.preempted: Fault | None = None
        self.preempted_at: float | None = None
        self.killed: Fault | None = None
        self._kill_at: float | None = None
        self._victims: list[Any] = []

    def line(self, launch, proc, text: str) -> None:
        self._fire(launch, text)

    def poll(self, launch) -> None:
        """Never ends the job itself: the preempted or killed ranks fail, and the launch stops the rest."""
        self._fire(launch, None)
        if self._kill_at is not None and time.monotonic() >= self._kill_at:
            self._kill_at = None
            _signal(self._victims, signal.SIGKILL)

    def _fire(self, launch, text: str | None) -> None:
        if not (self.pending or self.waiting) or launch.stopping:
            return
        elapsed = time.monotonic() - self.started
        for fault in [f for f in self.pending if f.due(elapsed, text)]:
            self.pending.remove(fault)
            self.waiting.append(fault)
        for fault in list(self.waiting):  # due; fired once its processes exist (a rank may still be starting)
            fired = self._preempt(launch, fault, elapsed) if fault.kind == "preempt" else \
                self._kill(launch, fault, elapsed)
            if fired:
                self.waiting.remove(fault)

    def _preempt(self, launch, fault: Fault, elapsed: float) -> bool:
        procs = [p for p in launch.procs if p.node == fault.target]
        self._victims = [q for p in procs for q in launch.rank_processes(p)]
        if not self._victims and any(p.exit_code is None for p in procs):
            return False
        self.preempted, self.preempted_at = fault, elapsed
        self.say(f"{fault.flag}: node {fault.target} preempted at {elapsed:.1f} s: SIGTERM to its "
                 f"{len(procs)} process(es), SIGKILL after {self.grace:g} s")
        # Not to the shells between the guard and the program: a shell dies of SIGTERM at once, and
        # the guard would then stop what it leaves after 2 s, not the grace period.
        _signal([q for q in self._victims if _name(q) not in SHELLS], signal.SIGTERM)
        self._kill_at = time.monotonic() + self.grace
        return True

    def _kill(self, launch, fault: Fault, elapsed: float) -> bool:
        proc = next((p for p in launch.procs if p.rank == fault.target), None)
        victims = launch.rank_processes(proc) if proc is not None else []
        if not victims and proc is not None and proc.exit_code is None:
            return False
        self.killed = fault
        self.say(f"{fault.flag}: rank {fault.target} killed with SIGKILL at {elapsed:.1f} s")
        _signal(victims, signal.SIGKILL)
        return True


SHELLS = ("bash", "sh", "dash", "zsh")


def _name(proc) -> str:
    try:
        return proc.name()
    except Exception:  # noqa: BLE001 - gone
        return ""


def _signal(processes: list[Any], sig: int) -> None:
    import psutil

    for proc in processes:
        try:
            proc.send_signal(sig)
        except psutil.Error:
            pass


RESUMED = re.compile(r"\[train\] resuming at epoch (\d+)")
FRESH = re.compile(r"\[train\] starting:")


def resumed_epoch(log_text: str) -> int | None | bool:
    """What an attempt's rank 0 log says of where it started: the epoch our trainer resumed at,
    False when it started from the beginning, None when the code does not say."""
    found = RESUMED.search(log_text)
    if found:
        return int(found.group(1))
    return False if FRESH.search(log_text) else None
