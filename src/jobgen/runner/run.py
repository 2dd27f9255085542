"""`generator.py run JOB.yml`: command jobs, pipelines and sweeps, here, as Azure ML runs them."""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import paths
from ..errors import JobgenError
from ..values import apply_sets
from ..yamlio import load_file, load_located, read_text
from .catalog import find_catalog, load_catalog
from .launch import Launch
from .mounts import BoundPath, Mount
from . import rundir
from .progress import Reporter, make_reporter
from .tasks import Task, TaskResult, bind_inputs, cores, execute, resolve_data, slug


@dataclass
class Options:
    run_dir: Path | None = None
    sets: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    timeout: float | None = None
    quiet: bool = False
    json: bool = False
    catalog: Path | None = None
    lint: bool = True


def mlflow_store() -> str:
    """One SQLite store shared by all local runs (`mlflow ui --backend-store-uri <this>`), made
    ready for concurrent runs before any job process starts (mlflowstore)."""
    import os

    from .mlflowstore import prepare

    uri = os.environ.get("JOBGEN_MLFLOW_URI")
    if uri:
        return prepare(uri)
    folder = Path("runs").resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return prepare(f"sqlite:///{folder / 'mlflow.db'}")


class Runner:
    def __init__(self, path: Path, options: Options):
        self.path = path.resolve()
        self.base = self.path.parent
        self.options = options
        self.stop = threading.Event()
        self.launches: list[Launch] = []
        self.reporter: Reporter = make_reporter(options.quiet, options.json)
        self.mlflow_uri = mlflow_store()

    # -------------------------------------------------------------- entry
    def load(self) -> tuple[dict, str]:
        text = read_text(self.path, paths.display(self.path))
        data = load_located(text, paths.display(self.path)).data
        if not isinstance(data, dict):
            raise JobgenError("not an Azure ML job", where=paths.display(self.path))
        if self.options.sets:
            data = apply_sets(data, self.options.sets)
            text = yaml.safe_dump(data, sort_keys=False)
        return data, text

    def lint(self, text: str, kind: str) -> None:
        from ..lint import Document, lint_documents

        doc = Document(self.path, text)
        diagnostics = lint_documents([doc])
        errors = [d for d in diagnostics if d.severity == "error"]
        for d in diagnostics:
            sys.stderr.write(d.format() + "\n")
        if errors:
            suffix = " (after --set)" if self.options.sets else ""
            raise JobgenError(f"{len(errors)} lint error(s){suffix}; no process was started",
                              where=paths.display(self.path), hint="fix them, or pass --no-lint to run anyway")

    def run(self) -> int:
        from ..lint.checks import detect_kind

        data, text = self.load()
        kind = detect_kind(data)
        if kind not in ("command_job", "pipeline_job", "sweep_job"):
            raise JobgenError(f"cannot run a {kind or 'file that is not an Azure ML job'}", where=paths.display(self.path),
                              hint="run a command, pipeline or sweep job YAML")
        if self.options.lint:
            self.lint(text, kind)
        catalog_path = self.options.catalog or find_catalog(self.base)
        self.catalog = load_catalog(catalog_path, self.options.data)
        name = slug(data.get("name") or data.get("display_name") or self.path.stem)
        if self.options.run_dir is not None:
            run_dir = self.options.run_dir.absolute()
        else:
            run_dir = rundir.fresh(Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}").absolute()
        self.experiment = str(data.get("experiment_name") or self.base.name)
        rundir.claim(run_dir, self.path)
        lock = rundir.Lock(run_dir).acquire()
        try:
            return self._run_in(run_dir, kind, data, name)
        finally:
            lock.release()

    def _run_in(self, run_dir: Path, kind: str, data: dict, name: str) -> int:
        summary_file = run_dir / "summary.json"
        try:  # room for the summary now, so that a job that fills the disk still gets one
            rundir.reserve(summary_file, json.dumps({"status": "Running", "kind": kind.replace("_job", "")}))
        except OSError as exc:
            raise JobgenError(f"cannot write in the run folder: {exc.strerror}", where=paths.display(run_dir),
                              hint="free disk space (df -h) or choose a --run-dir on another disk") from None
        self.mount = Mount(run_dir)  # shell-safe paths for ${{inputs.x}} / ${{outputs.y}}
        handlers = self._install_signals()
        start = time.monotonic()
        try:
            if kind == "command_job":
                summary = self.run_command(data, run_dir, name)
            elif kind == "pipeline_job":
                summary = self.run_pipeline(data, run_dir, name)
            else:
                summary = self.run_sweep(data, run_dir, name)
        finally:
            for launch in self.launches:
                launch.kill()
            self._restore_signals(handlers)
            self.reporter.close()
            self.mount.close()
        summary.update({"kind": kind.replace("_job", ""), "run_dir": str(run_dir),
                        "duration_s": round(time.monotonic() - start, 3)})
        try:
            rundir.fill(summary_file, json.dumps(summary, indent=2) + "\n")
        except OSError as exc:
            sys.stderr.write(f"error: {paths.display(summary_file)}: cannot be written: {exc.strerror} "
                             "(hint: free disk space; the run's own logs are in user_logs/)\n")
            summary["status"] = "Failed" if summary["status"] == "Completed" else summary["status"]
        self.print_summary(summary)
        return {"Completed": 0, "Canceled": 130}.get(summary["status"], 1)

    def _install_signals(self):
        def handler(signum, frame):
            self.stop.set()

        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal went away
                previous[sig] = signal.signal(sig, handler)
        return previous

    def _restore_signals(self, previous) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    # -------------------------------------------------------------- command jobs
    def command_task(self, spec: dict, base: Path, run_dir: Path, name: str, label: str,
                     inputs: dict[str, str] | None = None, outputs: dict[str, Path] | None = None) -> Task:
        where = f"{paths.display(self.path)}: {label}"
        code = spec.get("code")
        code_path = None
        if code is not None:
            if not isinstance(code, str) or code.startswith(("azureml:", "http", "git+")):
                raise JobgenError(f"code {code!r} is not a local folder", where=where, hint="give a local path")
            code_path = (base / code).resolve()
        if inputs is None:
            inputs = bind_inputs(spec.get("inputs"), base, self.catalog, where)
        if outputs is None:
            outputs = {n: run_dir / "outputs" / n for n in (spec.get("outputs") or {})}
        limits = spec.get("limits") or {}
        timeouts = [t for t in (limits.get("timeout"), self.options.timeout) if t]
        resources = spec.get("resources") or {}
        return Task(name=name, label=label, run_dir=run_dir, code=code_path, command=str(spec.get("command") or ""),
                    inputs=inputs, outputs=outputs,
                    environment_variables={str(k): "" if v is None else str(v)
                                           for k, v in (spec.get("environment_variables") or {}).items()},
                    instance_count=int(resources.get("instance_count") or 1), distribution=spec.get("distribution"),
                    timeout=float(min(timeouts)) if timeouts else None, experiment=self.experiment,
                    mount=self.mount)

    def run_command(self, data: dict, run_dir: Path, name: str) -> dict:
        task = self.command_task(data, self.base, run_dir, name, name)
        result = execute(task, self.reporter, self.stop, self.mlflow_uri, self.launches)
        return self.result_summary(result)

    @staticmethod
    def result_summary(result: TaskResult) -> dict:
        o = result.outcome
        return {"status": o.status, "outputs": result.outputs, "failed_rank": o.failed_rank, "message": o.message,
                "last_line": last_line(result),
                "traceback": o.traceback, "logs": str(result.task.run_dir / "user_logs"),
                "task_duration_s": round(o.duration, 3)}

    # -------------------------------------------------------------- pipelines
    def load_component(self, ref: Any, where: str) -> tuple[dict, Path]:
        if isinstance(ref, dict):
            return ref, self.base
        if not isinstance(ref, str) or ref.startswith("azureml:"):
            raise JobgenError(f"component {ref!r} is registered in a workspace; the local runner needs its YAML",
                              where=where, hint="point component: at a local file (e.g. ../../components/train.yml)")
        path = (self.base / ref.removeprefix("file:")).resolve()
        if not path.exists():
            raise JobgenError(f"component file {path} does not exist", where=where)
        return load_file(path).data, path.parent

    def run_pipeline(self, data: dict, run_dir: Path, name: str) -> dict:
        where = paths.display(self.path)
        p_inputs_spec = data.get("inputs") or {}
        p_inputs: dict[str, str] = {}
        for key, value in p_inputs_spec.items():
            if isinstance(value, dict) and (value.get("type") in ("uri_folder", "uri_file", "mlflow_model",
                                                                  "custom_model", "mltable") or "path" in value):
                p_inputs[key] = BoundPath(resolve_data(str(value["path"]), self.base, self.catalog,
                                                       f"{where}: inputs.{key}"))
            elif isinstance(value, dict):
                if value.get("default") is not None:
                    p_inputs[key] = str(value["default"])
            elif value is not None:
                p_inputs[key] = str(value)
        p_outputs = {key: run_dir / "outputs" / key for key in (data.get("outputs") or {})}
        settings = data.get("settings") or {}
        keep_going = bool(settings.get("continue_on_step_failure", False))
        jobs: dict[str, dict] = data.get("jobs") or {}
        deps: dict[str, set[str]] = {}
        for step, node in jobs.items():
            refs = yaml.safe_dump(node.get("inputs") or {})
            deps[step] = {m for m in re.findall(r"parent\.jobs\.([A-Za-z0-9_]+)\.outputs", refs)}
        step_outputs: dict[str, dict[str, Path]] = {}
        results: dict[str, TaskResult] = {}
        states: dict[str, str] = {step: "NotStarted" for step in jobs}

        def make_task(step: str) -> Task:
            node = jobs[step]
            swhere = f"{where}: jobs.{step}"
            comp, comp_base = self.load_component(node.get("component"), swhere)
            spec = dict(comp)
            for key in ("resources", "distribution", "environment_variables", "limits"):
                if node.get(key) is not None:  # node-level settings override the component's
                    spec[key] = node[key]
            step_dir = run_dir / step
            outputs: dict[str, Path] = {}
            for out_name in (comp.get("outputs") or {}):
                bound = (node.get("outputs") or {}).get(out_name)
                target = step_dir / "outputs" / out_name
                if isinstance(bound, str):
                    ref = re.match(r"\$\{\{\s*parent\.outputs\.([A-Za-z0-9_]+)\s*\}\}", bound)
                    if ref and ref.group(1) in p_outputs:
                        target = p_outputs[ref.group(1)]
                outputs[out_name] = target
            step_outputs[step] = outputs
            inputs: dict[str, str] = {}
            for in_name, in_spec in (comp.get("inputs") or {}).items():
                given = (node.get("inputs") or {}).get(in_name)
                if isinstance(given, dict):
                    given = given.get("path", given.get("value"))
                if given is None:
                    if isinstance(in_spec, dict) and in_spec.get("default") is not None:
                        inputs[in_name] = str(in_spec["default"])
                    continue
                text = str(given)
                match = re.fullmatch(r"\$\{\{\s*parent\.(inputs\.([A-Za-z0-9_]+)|jobs\.([A-Za-z0-9_]+)"
                                                   r"\.outputs\.([A-Za-z0-9_]+))\s*\}\}", text)
                if match and match.group(2):
                    if match.group(2) in p_inputs:
                        inputs[in_name] = p_inputs[match.group(2)]
                elif match:
                    inputs[in_name] = BoundPath(step_outputs[match.group(3)][match.group(4)])
                elif isinstance(given, str) and (in_spec or {}).get("type") in ("uri_folder", "uri_file"):
                    inputs[in_name] = BoundPath(resolve_data(given, self.base, self.catalog,
                                                             f"{swhere}: inputs.{in_name}"))
                else:
                    inputs[in_name] = str(given)
            return self.command_task(spec, comp_base, step_dir, f"{name}-{step}", step, inputs=inputs, outputs=outputs)

        budget = cores()
        running: dict[Future, str] = {}
        order = list(jobs)
        with ThreadPoolExecutor(max_workers=max(1, len(jobs))) as pool:
            while True:
                failed = any(s in ("Failed", "TimedOut", "Canceled") for s in states.values())
                if self.stop.is_set() or (failed and not keep_going):
                    for step in order:
                        if states[step] == "NotStarted":
                            states[step] = "Skipped"
                for step in order:
                    if states[step] != "NotStarted":
                        continue
                    if any(states[d] in ("Failed", "TimedOut", "Canceled", "Skipped") for d in deps[step]):
                        states[step] = "Skipped"
                        self.reporter.task_finished(step, "Skipped", "an input step did not complete")
                        continue
                    if not all(states[d] == "Completed" for d in deps[step]):
                        continue
                    task = make_task(step)
                    in_use = sum(t.processes for t in (f_task for f_task in running_tasks(running, results)))
                    if running and in_use + task.processes > budget:
                        continue  # independent steps share the cores; this one waits
                    states[step] = "Running"
                    future = pool.submit(execute, task, self.reporter, self.stop, self.mlflow_uri, self.launches)
                    future.task = task  # type: ignore[attr-defined]
                    running[future] = step
                if not running:
                    break
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    step = running.pop(future)
                    result = future.result()
                    results[step] = result
                    states[step] = result.outcome.status
                    if result.outcome.status != "Completed" and not keep_going:
                        self.stop.set()  # stop the steps still running, as Azure does
        statuses = set(states.values())
        if statuses <= {"Completed"}:
            status = "Completed"
        elif "Canceled" in statuses and not any(s in ("Failed", "TimedOut") for s in statuses):
            status = "Canceled"
        else:
            status = "Failed"
        failed_step = next((s for s in order if states[s] in ("Failed", "TimedOut")), None)
        summary = {"status": status, "outputs": {k: str(v) for k, v in p_outputs.items()},
                   "steps": {s: {"status": states[s], **({"run_dir": str(results[s].task.run_dir),
                                                          "duration_s": round(results[s].outcome.duration, 3),
                                                          "failed_rank": results[s].outcome.failed_rank,
                                                          "outputs": results[s].outputs,
                                                          "last_line": last_line(results[s])} if s in results else {})}
                             for s in order},
                   "failed_step": failed_step, "failed_rank": results[failed_step].outcome.failed_rank
                   if failed_step else None}
        if failed_step:
            summary["message"] = f"step {failed_step}: {results[failed_step].outcome.message}"
            summary["traceback"] = results[failed_step].outcome.traceback
        return summary

    # -------------------------------------------------------------- sweeps
    def run_sweep(self, data: dict, run_dir: Path, name: str) -> dict:
        from .sweep import run_sweep

        return run_sweep(self, data, run_dir, name)

    # -------------------------------------------------------------- output
    def print_summary(self, summary: dict) -> None:
        if self.options.json:
            keys = ("status", "kind", "run_dir", "outputs", "failed_rank", "failed_step", "duration_s", "message",
                    "steps", "trials", "best_trial")
            print(json.dumps({k: summary[k] for k in keys if k in summary}, indent=2))
            return
        out = sys.stdout
        status = summary["status"]
        short = paths.display(Path(summary["run_dir"]))

        def brief(text: str) -> str:  # the run folder as the user reads it
            return text.replace(summary["run_dir"], short)

        out.write(f"\n{summary['kind']} {status} in {summary['duration_s']:.1f}s; run folder {summary['run_dir']}\n")
        for step, info in (summary.get("steps") or {}).items():
            took = f"{info['duration_s']:.1f}s" if "duration_s" in info else ""
            out.write(f"  step {step:<14} {info['status']:<10} {took:>7}  {brief(info.get('last_line', ''))}\n")
        if summary.get("last_line") and summary["kind"] == "command":
            out.write(f"  {brief(summary['last_line'])}\n")
        for out_name, out_path in (summary.get("outputs") or {}).items():
            out.write(f"  output {out_name}: {paths.display(Path(out_path))}\n")
        if summary.get("best_trial"):
            best = summary["best_trial"]
            out.write(f"  best trial {best['name']}: {best['metric']}={best['value']} with {best['parameters']}\n")
        if status != "Completed":
            if summary.get("message"):
                out.write(f"  {summary['message']}\n")
            if summary.get("traceback"):
                out.write("  --- end of the failing rank's log ---\n")
                out.write("".join(f"  | {line}\n" for line in summary["traceback"].splitlines()))
        out.flush()


def last_line(result: TaskResult) -> str:
    """Rank 0's last line: what a step said when it ended (the trainer's result, the registered version)."""
    procs = sorted(result.outcome.procs, key=lambda p: p.rank)
    for proc in procs:
        if proc.last_line.strip():
            return proc.last_line.strip()[:400]
    return ""


def running_tasks(running: dict[Future, str], results: dict) -> list[Task]:
    return [getattr(f, "task") for f in running]


def run(path: Path, options: Options) -> int:
    return Runner(path, options).run()
