"""One runnable unit (a command job, a pipeline step, a sweep trial): its run folder, code
snapshot, bound inputs and outputs, environment, and the launch that runs it."""

from __future__ import annotations

import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import JobgenError
from . import rundir
from .binding import bind, literal
from .catalog import Catalog
from .launch import Launch, Outcome, clean_environment
from .mounts import BoundPath, Mount
from .progress import Reporter
from .rundir import RunFolderError
from .snapshot import snapshot

DATA_TYPES = ("uri_folder", "uri_file", "mlflow_model", "custom_model", "mltable", "triton_model")


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

    @property
    def processes(self) -> int:
        kind = (self.distribution or {}).get("type")
        per_node = int((self.distribution or {}).get("process_count_per_instance") or 1) if kind else 1
        return self.instance_count * per_node if kind else 1

    def describe(self) -> str:
        kind = (self.distribution or {}).get("type") or "no distribution"
        per_node = (self.distribution or {}).get("process_count_per_instance") or 1
        return f"{self.instance_count} node(s) x {per_node if kind != 'no distribution' else 1} process(es), {kind}"


@dataclass
class TaskResult:
    task: Task
    outcome: Outcome
    outputs: dict[str, str]


def slug(text: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-.")
    return text[:80] or "job"


def bind_inputs(spec: dict[str, Any] | None, base: Path, catalog: Catalog, where: str) -> dict[str, str]:
    """A job's inputs as Azure binds them: literals through str(), data to local paths."""
    out: dict[str, str] = {}
    for name, value in (spec or {}).items():
        if isinstance(value, dict):
            kind = value.get("type")
            path = value.get("path")
            if kind in DATA_TYPES or path is not None:
                if path is None:
                    raise JobgenError(f"input '{name}' has no path", where=where)
                out[name] = BoundPath(resolve_data(str(path), base, catalog, f"{where}: inputs.{name}"))
            elif "default" in value:
                out[name] = literal(value["default"])
            elif value.get("value") is not None:
                out[name] = literal(value["value"])
        elif value is not None:
            out[name] = literal(value)
    return out


def resolve_data(path: str, base: Path, catalog: Catalog, where: str) -> Path:
    if path.startswith("azureml:"):
        return catalog.resolve(path, where)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", path):
        raise JobgenError(f"data path {path!r} is remote; the local runner reads local files only", where=where,
                          hint="download it and pass a local path, or register it in jobs/data.yml")
    target = (base / path).resolve()
    if not target.exists():
        raise JobgenError(f"data path {path!r} does not exist (resolved to {target})", where=where,
                          hint="paths are relative to the YAML file's folder")
    return target


def prepare(task: Task) -> None:
    """Run folder layout: code/ (snapshot), outputs/<name>/, user_logs/, run.json reserved.
    Outputs already there are kept: running again in the same run folder resumes from what a
    job left (its checkpoints), as a requeued Azure job finds its rw_mount outputs. Only a
    folder inside a run folder (see rundir) is ever replaced here."""
    if not rundir.inside_run_folder(task.run_dir):
        raise RuntimeError(f"{task.run_dir} is not inside a run folder")  # the runner claims it first: a bug
    code_dir = task.run_dir / "code"
    try:
        task.run_dir.mkdir(parents=True, exist_ok=True)
        rundir.reserve(task.run_dir / "run.json", json.dumps({"name": task.name, "status": "Preparing"}))
        if task.code is None:
            code_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"cannot prepare the run folder: {exc.strerror}", where=str(task.run_dir),
                             hint="free disk space (df -h) or choose a --run-dir on another disk") from None
    if task.code is not None:
        snapshot(task.code, code_dir, skip=rundir.is_run_folder)
    try:
        for folder in task.outputs.values():
            folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunFolderError(f"cannot create the output folders: {exc.strerror}", where=str(task.run_dir),
                             hint="free disk space (df -h) or choose a --run-dir on another disk") from None


def environment(task: Task, mlflow_uri: str) -> dict[str, str]:
    env = clean_environment()
    env.update({k: "" if v is None else str(v) for k, v in task.environment_variables.items()})
    env["AZUREML_RUN_ID"] = task.name
    env["MLFLOW_TRACKING_URI"] = mlflow_uri
    if task.experiment:
        env["MLFLOW_EXPERIMENT_NAME"] = task.experiment
    if task.mlflow_run_id:
        env["MLFLOW_RUN_ID"] = task.mlflow_run_id
    return env


def execute(task: Task, reporter: Reporter, stop: threading.Event, mlflow_uri: str,
            launches: list[Launch] | None = None) -> TaskResult:
    outputs = {name: str(path) for name, path in task.outputs.items()}
    try:
        command = bind(task.command, task.inputs, outputs)
    except KeyError as exc:
        raise JobgenError(f"command uses ${{{{{exc.args[0]}}}}}, which this job does not have", where=task.label,
                          hint="run 'python generator.py lint' on the file") from None
    try:
        prepare(task)
        mount = task.mount or Mount(task.run_dir)
        command = bind(task.command, {name: mount.bind_input(task.run_dir, name, value)
                                      for name, value in task.inputs.items()},
                       {name: mount.shown(path) for name, path in outputs.items()})
        (task.run_dir / "command.txt").write_text(command + "\n")
    except (RunFolderError, OSError) as exc:
        return _not_started(task, reporter, outputs, exc)
    launch = Launch(name=task.label, command=command, cwd=task.run_dir / "code", env=environment(task, mlflow_uri),
                    logs=task.run_dir / "user_logs", instance_count=task.instance_count,
                    distribution=task.distribution,
                    on_line=lambda proc, line: reporter.proc_line(task.label, proc, line),
                    on_state=lambda proc: reporter.proc_state(task.label, proc))
    if launches is not None:
        launches.append(launch)
    reporter.task_started(task.label, task.describe())
    try:
        launch.start()
        outcome = launch.wait(task.timeout, stop)
    except OSError as exc:
        launch.kill()
        return _not_started(task, reporter, outputs, exc)
    except BaseException:
        launch.kill()
        raise
    record = {"name": task.name, "status": outcome.status, "duration_s": round(outcome.duration, 3),
              "failed_rank": outcome.failed_rank, "exit_code": outcome.exit_code, "message": outcome.message,
              "command": command, "outputs": outputs, "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S")}
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
