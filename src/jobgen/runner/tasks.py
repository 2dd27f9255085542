"""One runnable unit (a command job, a pipeline step, a sweep trial): its run folder, code
snapshot, bound inputs and outputs, environment, and the launch that runs it.

The working directory is the code snapshot, with `./outputs` and `./logs` in it as Azure
provides them; they are links to the unit's `artifacts/outputs` and `artifacts/logs`, which
outlive the snapshot and are the unit's default `artifacts` output. Each unit runs in a fresh
Python layer over the runner's interpreter (environments.py), so that what the job installs
never reaches the runner's own packages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..azml import refs
from ..errors import JobgenError
from . import rundir
from .binding import bind
from .catalog import REMOTE, Catalog
from .launch import Launch, Outcome, clean_environment
from .mlflowstore import artifact_root
from .mounts import Mount
from .progress import Reporter
from .rundir import RunFolderError
from .snapshot import snapshot

DATA_TYPES = ("uri_folder", "uri_file", "mlflow_model", "custom_model", "mltable", "triton_model", "path")
ARTIFACT_FOLDERS = ("outputs", "logs")


@dataclass
class Task:
    name: str  # AZUREML_RUN_ID
    label: str  # how progress names it
    run_dir: Path
    code: Path | None
    command: str
    inputs: dict[str, str]  # bound: local paths, str() of literals; absent optional inputs missing
    outputs: dict[str, Path]
    environment_variables: dict[str, str] = field(default_factory=dict)
    instance_count: int = 1
    distribution: dict | None = None
    timeout: float | None = None
    experiment: str | None = None
    mlflow_run_id: str | None = None
    mount: Mount | None = None  # how the run folder appears to the command (shell-safe paths)
    id: str = ""  # the unit's id in its plan ("train", "outer/inner", "trial_3")
    deps: set[str] = field(default_factory=set)  # units whose outputs it reads
    file_outputs: set[str] = field(default_factory=set)  # uri_file outputs: a file path, not a folder
    environment: Any = None  # the environment the job asked for
    environment_base: Path | None = None  # where its relative paths resolve
    requirements: list[str] | None = None  # --env venv: the environment's pip list
    services: dict | None = None
    bound: str = ""  # the command with real paths bound (the plan shows it)

    @property
    def processes(self) -> int:
        kind = (self.distribution or {}).get("type")
        if kind == "tensorflow":
            return tensorflow_tasks(self.distribution, self.instance_count)
        per_node = int((self.distribution or {}).get("process_count_per_instance") or 1) if kind else 1
        return self.instance_count * per_node if kind else 1

    def describe(self) -> str:
        kind = (self.distribution or {}).get("type") or "no distribution"
        if kind == "tensorflow":
            return f"{self.processes} tensorflow task(s) with TF_CONFIG"
        per_node = (self.distribution or {}).get("process_count_per_instance") or 1
        return f"{self.instance_count} node(s) x {per_node if kind != 'no distribution' else 1} process(es), {kind}"


def tensorflow_tasks(distribution: dict | None, nodes: int) -> int:
    d = distribution or {}
    return int(d.get("worker_count") or nodes) + int(d.get("parameter_server_count") or 0)


@dataclass
class TaskResult:
    task: Task
    outcome: Outcome
    outputs: dict[str, str]


def slug(text: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-.")
    return text[:80] or "job"


def resolve_data(path: str, base: Path, catalog: Catalog, where: str) -> Path:
    """A data input's path (local, azureml:<asset>, or a remote URI mapped by the catalog)."""
    if path.startswith("azureml:") or REMOTE.match(path):
        return catalog.resolve(path, where)
    target = (base / (refs.local_path(path) or path)).resolve()
    if not target.exists():
        raise JobgenError(f"data path {path!r} does not exist (resolved to {target})", where=where,
                          hint="paths are relative to the YAML file's folder")
    return target


def prepare(task: Task) -> None:
    """Run folder layout: code/ (snapshot, with ./outputs and ./logs), outputs/<name>/,
    artifacts/, user_logs/, run.json reserved. Outputs and artifacts already there are kept:
    running again in the same run folder resumes from what a job left (its checkpoints), as a
    requeued Azure job finds its rw_mount outputs. Only a folder inside a run folder (see
    rundir) is ever replaced here."""
    if not rundir.inside_run_folder(task.run_dir):
        raise RuntimeError(f"{task.run_dir} is not inside a run folder")  # the runner claims it first: a bug
    code_dir = task.run_dir / "code"
    try:
        task.run_dir.mkdir(parents=True, exist_ok=True)
        rundir.reserve(task.run_dir / "run.json", json.dumps({"name": task.name, "status": "Preparing"}))
        if task.code is None:
            shutil.rmtree(code_dir, ignore_errors=True)
            code_dir.mkdir()
    except OSError as exc:
        raise RunFolderError(f"cannot prepare the run folder: {exc.strerror}", where=str(task.run_dir),
                             hint="free disk space (df -h) or choose a --run-dir on another disk") from None
    if task.code is not None:
        snapshot(task.code, code_dir, skip=rundir.is_run_folder)
    try:
        for name, path in task.outputs.items():
            (path.parent if name in task.file_outputs else path).mkdir(parents=True, exist_ok=True)
        working_folders(task, code_dir)
    except OSError as exc:
        raise RunFolderError(f"cannot create the output folders: {exc.strerror}", where=str(task.run_dir),
                             hint="free disk space (df -h) or choose a --run-dir on another disk") from None


def working_folders(task: Task, code_dir: Path) -> None:
    """./outputs and ./logs in the working directory, as Azure provides them: links to the
    unit's artifacts folder (what the code snapshot held there is moved in first)."""
    artifacts = task.outputs.get("artifacts", task.run_dir / "artifacts")
    for name in ARTIFACT_FOLDERS:
        kept = artifacts / name
        kept.mkdir(parents=True, exist_ok=True)
        here = code_dir / name
        if here.is_dir() and not here.is_symlink():
            for item in here.iterdir():
                shutil.move(str(item), str(kept / item.name))
            here.rmdir()
        if not here.is_symlink():
            here.symlink_to(os.path.relpath(kept, code_dir), target_is_directory=True)


def environment(task: Task, mlflow_uri: str, bin_dir: Path | None = None) -> dict[str, str]:
    env = clean_environment(bin_dir=bin_dir)
    env.update({k: "" if v is None else str(v) for k, v in task.environment_variables.items()})
    env["AZUREML_RUN_ID"] = task.name
    env["MLFLOW_TRACKING_URI"] = mlflow_uri
    root = artifact_root(mlflow_uri)
    if root:
        env["_MLFLOW_SERVER_ARTIFACT_ROOT"] = root
    if task.experiment:
        env["MLFLOW_EXPERIMENT_NAME"] = task.experiment
    if task.mlflow_run_id:
        env["MLFLOW_RUN_ID"] = task.mlflow_run_id
    return env


def job_layer(task: Task):
    """The unit's Python: a fresh layer over the runner's interpreter in its run folder."""
    from .environments import layer

    asked = task.environment if isinstance(task.environment, str) else "an inline environment" \
        if task.environment else None
    return layer(task.run_dir, asked, task.requirements)


def execute(task: Task, reporter: Reporter, stop: threading.Event, mlflow_uri: str,
            launches: list[Launch] | None = None, faults=None) -> TaskResult:
    """Run the unit; with ``faults`` (faults.Faults), inject them, watch for hangs, and requeue a
    preempted attempt as Azure does."""
    outputs = {name: str(path) for name, path in task.outputs.items()}
    try:
        prepare(task)
        mount = task.mount or Mount(task.run_dir)
        command = bind(task.command, {name: mount.bind_input(task.run_dir, name, value)
                                      for name, value in task.inputs.items()},
                       {name: mount.shown(path) for name, path in outputs.items()})
        (task.run_dir / "command.txt").write_text(command + "\n")
        job_env = job_layer(task)
    except (RunFolderError, OSError) as exc:
        return _not_started(task, reporter, outputs, exc)
    except KeyError as exc:  # the plan binds every command first; a bug if it comes here
        raise RuntimeError(f"{task.label}: unbound ${{{{{exc.args[0]}}}}}") from None
    env = environment(task, mlflow_uri, job_env.bin_dir)
    reporter.task_started(task.label, task.describe())
    attempts: list[dict[str, Any]] = []
    attempt = 1
    while True:
        launch = Launch(name=task.label, command=command, cwd=task.run_dir / "code", env=env,
                        logs=task.run_dir / "user_logs", instance_count=task.instance_count,
                        distribution=task.distribution,
                        on_line=lambda proc, line: reporter.proc_line(task.label, proc, line),
                        on_state=lambda proc: reporter.proc_state(task.label, proc))
        injector = _watch(launch, task, reporter, faults, attempt)
        if launches is not None:
            launches.append(launch)
        try:
            launch.start()
            outcome = launch.wait(task.timeout, stop)
        except OSError as exc:
            launch.kill()
            return _not_started(task, reporter, outputs, exc)
        except BaseException:
            launch.kill()
            raise
        attempts.append(_attempt_record(task, attempt, outcome, injector))
        if outcome.status != "Preempted" or faults is None:
            break
        if attempt > faults.max_requeues or stop.is_set():
            outcome.status = "Failed"
            outcome.message += (f"; not requeued: --max-requeues {faults.max_requeues} reached" if not stop.is_set()
                                else "; stopped before its requeue")
            break
        _keep_attempt_logs(task, attempt)
        attempt += 1
        reporter.note(f"{task.label}: requeued, as Azure requeues a preempted job: attempt {attempt} of at most "
                      f"{faults.max_requeues + 1}, the same command from the start with the same outputs")
    outcome.attempts = attempts
    return _finish(task, reporter, outcome, command, outputs)


def _watch(launch: Launch, task: Task, reporter: Reporter, faults, attempt: int):
    """The faults this attempt gets (--preempt, --kill) and the hang watch; returns the injector."""
    if faults is None:
        return None
    from .faults import Injector
    from .hangs import HangWatch

    say = lambda text: reporter.note(f"{task.label}: {text}")  # noqa: E731
    injector = None
    chosen = faults.for_attempt(task.id, attempt)
    if chosen:
        injector = Injector(chosen, faults.grace, say)
        launch.watchers.append(injector)
    if faults.hang_timeout:
        launch.watchers.append(HangWatch(faults.hang_timeout, task.run_dir / "user_logs", say, faults.hang_stop))
    return injector


def _attempt_record(task: Task, attempt: int, outcome: Outcome, injector) -> dict[str, Any]:
    """What one attempt was: its status and cause, and for a requeued one where it started."""
    if injector is not None and injector.preempted is not None and outcome.status not in ("Canceled", "TimedOut"):
        outcome.status = "Preempted"
        outcome.message = (f"node {injector.preempted.target} preempted at {injector.preempted_at:.1f} s "
                           f"({injector.preempted.flag})")
    elif injector is not None and injector.killed is not None and outcome.status == "Failed":
        outcome.message += f" (killed by {injector.killed.flag})"
    record: dict[str, Any] = {"attempt": attempt, "status": outcome.status, "duration_s": round(outcome.duration, 3),
                              "message": outcome.message}
    if attempt > 1:
        from .faults import resumed_epoch

        try:
            text = (task.run_dir / "user_logs" / "std_log_process_00.txt").read_text(errors="replace")
        except OSError:
            text = ""
        where = resumed_epoch(text)
        if where is False:
            record["resumed"] = False  # it started over: the work of the attempts before was lost
        elif where is not None:
            record["resumed"] = True
            record["resumed_at_epoch"] = where
    return record


def _keep_attempt_logs(task: Task, attempt: int) -> None:
    """user_logs/attempt_N/: one attempt's logs, kept before the next attempt starts."""
    logs = task.run_dir / "user_logs"
    kept = logs / f"attempt_{attempt}"
    kept.mkdir(parents=True, exist_ok=True)
    for log in [*logs.glob("std_log_process_*.txt"), logs / ".timeline"]:
        if log.exists():
            shutil.move(str(log), str(kept / log.name))
    stacks = logs / "hang_stacks.txt"
    if stacks.exists():
        shutil.move(str(stacks), str(kept / stacks.name))


def _finish(task: Task, reporter: Reporter, outcome: Outcome, command: str, outputs: dict[str, str]) -> TaskResult:
    record = {"name": task.name, "status": outcome.status, "duration_s": round(outcome.duration, 3),
              "failed_rank": outcome.failed_rank, "exit_code": outcome.exit_code, "message": outcome.message,
              "command": command, "outputs": outputs, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
              "nodes": task.instance_count, "processes_per_node": task.processes // max(1, task.instance_count)}
    if len(outcome.attempts) > 1:
        record["attempts"] = outcome.attempts
    if outcome.status != "Completed" and rundir.disk_full(task.run_dir):
        outcome.message += "; the run folder's disk is full (df -h), which may be why"
    try:
        rundir.fill(task.run_dir / "run.json", json.dumps(dict(record, message=outcome.message), indent=2) + "\n")
    except OSError as exc:
        outcome.status, outcome.message = "Failed", f"the job ended but run.json could not be written: {exc.strerror}"
    detail = outcome.message or f"{outcome.duration:.1f}s"
    reporter.task_finished(task.label, outcome.status, detail)
    return TaskResult(task, outcome, outputs)


def _not_started(task: Task, reporter: Reporter, outputs: dict[str, str], exc: BaseException) -> TaskResult:
    """A task whose run folder could not be made ready (a full disk): Failed, with the reason."""
    if isinstance(exc, JobgenError):
        message = exc.message
    else:
        message = f"cannot prepare the run folder: {exc.strerror or exc}" + (
            f" ({exc.filename})" if getattr(exc, "filename", None) else "")
    reporter.task_finished(task.label, "Failed", message)
    return TaskResult(task, Outcome(status="Failed", duration=0.0, exit_code=1, message=message), outputs)


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1
