"""One scheduler for the units of a plan: pipeline steps (in dependency order, independent ones
side by side within the cores) and sweep trials (up to max_concurrent_trials at a time, stopped
early by the sweep's policy). What a run shares is passed in as a RunContext.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Callable

from .launch import Launch
from .progress import Reporter
from .tasks import Task, TaskResult, cores, execute

ENDED_BADLY = ("Failed", "TimedOut", "Canceled")


@dataclass
class RunContext:
    """What every unit of one run shares."""

    reporter: Reporter
    stop: threading.Event  # Ctrl-C, SIGTERM, SIGHUP: stop everything
    mlflow_uri: str
    launches: list[Launch] = field(default_factory=list)
    faults: Any = None  # faults.Faults: --preempt, --kill, --hang-timeout


@dataclass
class Hooks:
    """A sweep's part in scheduling: before a trial starts, every poll while trials run (early
    termination), after it ends; and the deadline of the whole sweep."""

    before: Callable[[Task], None] = lambda task: None
    poll: Callable[[dict[str, Task], dict[str, threading.Event]], None] = lambda running, stops: None
    after: Callable[[Task, TaskResult], None] = lambda task, result: None
    deadline: float | None = None  # time.monotonic() value
    on_deadline: Callable[[], None] = lambda: None


class Scheduler:
    def __init__(self, ctx: RunContext, *, concurrency: int | None = None, stop_on_failure: bool = True,
                 hooks: Hooks | None = None, poll_seconds: float = 1.0):
        self.ctx = ctx
        self.concurrency = concurrency  # at most this many units at a time; None: as the cores allow
        self.stop_on_failure = stop_on_failure
        self.hooks = hooks or Hooks()
        self.poll_seconds = poll_seconds
        self.budget = cores()
        self.halt = threading.Event()  # a failure (pipelines) or the deadline (sweeps): start nothing more

    def stopping(self) -> bool:
        return self.ctx.stop.is_set() or self.halt.is_set()

    def run(self, tasks: list[Task]) -> tuple[dict[str, str], dict[str, TaskResult]]:
        """Run ``tasks``; returns each unit's state (Completed, Failed, TimedOut, Canceled, Skipped)
        and the results of those that ran."""
        states = {t.id: "NotStarted" for t in tasks}
        results: dict[str, TaskResult] = {}
        running: dict[Future, Task] = {}
        stops: dict[str, threading.Event] = {}
        with ThreadPoolExecutor(max_workers=max(1, min(len(tasks), self.concurrency or len(tasks)))) as pool:
            while True:
                self._skip(tasks, states)
                for task in tasks:
                    if self._may_start(task, states, running):
                        self.hooks.before(task)
                        stops[task.id] = threading.Event()
                        states[task.id] = "Running"
                        running[pool.submit(execute, task, self.ctx.reporter, stops[task.id], self.ctx.mlflow_uri,
                                            self.ctx.launches, self.ctx.faults)] = task
                if not running:
                    break
                done, _ = wait(list(running), timeout=self.poll_seconds, return_when=FIRST_COMPLETED)
                self._watch(running, stops)
                for future in done:
                    task = running.pop(future)
                    result = future.result()
                    results[task.id] = result
                    states[task.id] = result.outcome.status
                    self.hooks.after(task, result)
                    if result.outcome.status in ENDED_BADLY and self.stop_on_failure:
                        self.halt.set()  # a pipeline stops its other steps at a failure, as Azure does
                if self.stopping():
                    for event in stops.values():
                        event.set()
        return states, results

    def _watch(self, running: dict[Future, Task], stops: dict[str, threading.Event]) -> None:
        self.hooks.poll({t.id: t for t in running.values()}, stops)
        if self.hooks.deadline is not None and time.monotonic() > self.hooks.deadline:
            self.hooks.deadline = None
            self.hooks.on_deadline()
            self.halt.set()

    def _skip(self, tasks: list[Task], states: dict[str, str]) -> None:
        for task in tasks:
            if states[task.id] != "NotStarted":
                continue
            if self.stopping():
                states[task.id] = "Skipped"
            elif any(states.get(d) in ENDED_BADLY + ("Skipped",) for d in task.deps):
                states[task.id] = "Skipped"
                self.ctx.reporter.task_finished(task.label, "Skipped", "an input step did not complete")

    def _may_start(self, task: Task, states: dict[str, str], running: dict[Future, Task]) -> bool:
        if states[task.id] != "NotStarted" or self.stopping():
            return False
        if not all(states.get(d) == "Completed" for d in task.deps):
            return False
        if self.concurrency is not None:
            return len(running) < self.concurrency
        in_use = sum(t.processes for t in running.values())
        return not running or in_use + task.processes <= self.budget  # steps share the cores; this one waits
