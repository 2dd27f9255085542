"""`generator.py run JOB.yml`: command jobs, pipelines and sweeps, here, as Azure ML runs them.

Plan, then run: the whole run (every unit, its bound command, processes, inputs and outputs) is
planned before any process starts, and refused with every problem at once (plan.py); one
scheduler then runs the units (schedule.py). `--dry-run` prints the plan and starts nothing.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import paths
from ..azml.kinds import BATCH_DEPLOYMENTS
from ..errors import JobgenError
from ..values import apply_sets
from ..yamlio import load_located, read_text
from . import rundir
from .catalog import find_catalog, load_catalog
from .mounts import Mount
from .plan import Plan, Planner
from .progress import make_reporter
from .schedule import RunContext, Scheduler
from .tasks import TaskResult

RUNNABLE = ("command_job", "pipeline_job", "sweep_job")


@dataclass
class Options:
    run_dir: Path | None = None
    sets: list[str] = field(default_factory=list)
    data: list[str] = field(default_factory=list)
    components: list[str] = field(default_factory=list)
    timeout: float | None = None
    quiet: bool = False
    json: bool = False
    catalog: Path | None = None
    lint: bool = True
    dry_run: bool = False
    env: str = "layer"  # layer: the runner's packages, a layer for the job's installs; venv: + its pip list
    input: str | None = None  # a batch deployment: the folder, file or data asset it scores
    faults: Any = None  # faults.Faults: --preempt, --kill, --max-requeues, --hang-timeout


class Refused(JobgenError):
    """The plan has problems: nothing was started. One line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__(problems[0])

    def line(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0]
        return "\n".join(self.problems) + f"\n{len(self.problems)} problems; no process was started"


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
        self.reporter = make_reporter(options.quiet, options.json)

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

    def lint(self, text: str) -> None:
        from ..lint import Document, lint_documents

        diagnostics = lint_documents([Document(self.path, text)])
        errors = [d for d in diagnostics if d.severity == "error"]
        for d in diagnostics:
            sys.stderr.write(d.format() + "\n")
        if errors:
            suffix = " (after --set)" if self.options.sets else ""
            raise JobgenError(f"{len(errors)} lint error(s){suffix}; no process was started",
                              where=paths.display(self.path), hint="fix them, or pass --no-lint to run anyway")

    def plan(self) -> tuple[Plan, Planner]:
        from ..lint.checks import detect_kind

        data, text = self.load()
        kind = detect_kind(data, text)
        if kind not in RUNNABLE:
            raise JobgenError(f"cannot run a {kind or 'file that is not an Azure ML job'}",
                              where=paths.display(self.path),
                              hint="run a command, pipeline or sweep job YAML, or a batch deployment with --input")
        if self.options.input is not None:
            raise JobgenError("--input is the data a batch deployment scores; a job names its own inputs",
                              where="--input", hint="leave it out, or override one with --set inputs.NAME.path=PATH")
        if self.options.lint and not self.options.dry_run:
            self.lint(text)
        catalog = self.catalog()
        name = str(data.get("name") or data.get("display_name") or self.path.stem)
        run_dir = self.run_dir(name)
        experiment = str(data.get("experiment_name") or self.base.name)
        planner = Planner(self.path, data, text, catalog, run_dir, self.options.timeout, experiment)
        plan = planner.build()
        self.environment_layers(plan)
        if self.options.faults is not None:
            plan.problems.extend(self.options.faults.resolve(plan.tasks, plan.kind))
        return plan, planner

    def catalog(self):
        return load_catalog(self.options.catalog or find_catalog(self.base), self.options.data,
                            self.options.components)

    def run_batch(self) -> int:
        """A batch endpoint's model deployment, scored here (runner/batch.py)."""
        from . import batch

        data, text = self.load()
        if self.options.lint and not self.options.dry_run:
            self.lint(text)
        name = str(data.get("name") or self.path.stem)
        if data.get("endpoint_name"):  # runs/<endpoint>-<deployment>-<time>/
            name = f"{data['endpoint_name']}-{name}"
        try:
            batch_plan = batch.plan(self.path, data, self.catalog(), self.options.input, self.run_dir(name))
        except JobgenError as exc:
            return self.refuse(exc)
        return batch.run(self.path, batch_plan, self.options)

    def run_dir(self, name: str) -> Path:
        from .tasks import slug

        if self.options.run_dir is not None:
            return self.options.run_dir.absolute()
        return rundir.fresh(Path("runs") / f"{slug(name)}-{time.strftime('%Y%m%d-%H%M%S')}").absolute()

    def environment_layers(self, plan: Plan) -> None:
        """--env venv: each unit's environment's pip list (read here when it can be); the header
        names what each job asked for; interactive services run only on Azure."""
        from .environments import requirements_of

        asked = sorted({str(t.environment) for t in plan.tasks if isinstance(t.environment, str)})
        if asked:
            plan.notes.append(f"environment {', '.join(asked)}: run with this machine's Python and its packages; "
                              "each job's own installs go to a layer in its run folder"
                              + ("" if self.options.env == "venv" else " (--env venv also installs what the "
                                 "environment's conda file lists)"))
        for task in plan.tasks:
            if task.services:
                plan.notes.append(f"{task.label}: services ({', '.join(map(str, task.services))}) run only on "
                                  "Azure; not started here")
            if self.options.env == "venv" and task.environment is not None:
                try:
                    task.requirements = requirements_of(task.environment, task.environment_base or self.base)
                except JobgenError as exc:
                    plan.problems.append(exc.line())

    def run(self) -> int:
        from ..lint.checks import detect_kind

        try:
            if detect_kind(*self.load()) in BATCH_DEPLOYMENTS:
                return self.run_batch()
            plan, planner = self.plan()
        except JobgenError as exc:
            return self.refuse(exc)
        if self.options.dry_run:
            self.print_plan(plan, planner)
            return 1 if plan.problems else 0
        if plan.problems:
            return self.refuse(Refused(plan.problems))
        run_dir = planner.run_dir
        rundir.claim(run_dir, self.path)
        lock = rundir.Lock(run_dir).acquire()
        try:
            return self._run_in(run_dir, plan, planner)
        finally:
            lock.release()

    def refuse(self, exc: JobgenError) -> int:
        """Nothing started: with --json, one object saying so (and the problems); else raise to the CLI."""
        if not self.options.json:
            raise exc
        problems = exc.problems if isinstance(exc, Refused) else [exc.line()]
        print(json.dumps({"status": "Refused", "message": problems[0], "problems": problems}, indent=2))
        return 1

    def _run_in(self, run_dir: Path, plan: Plan, planner: Planner) -> int:
        summary_file = run_dir / "summary.json"
        try:  # room for the summary now, so that a job that fills the disk still gets one
            rundir.reserve(summary_file, json.dumps({"status": "Running", "kind": plan.kind}))
        except OSError as exc:
            raise JobgenError(f"cannot write in the run folder: {exc.strerror}", where=paths.display(run_dir),
                              hint="free disk space (df -h) or choose a --run-dir on another disk") from None
        ctx = RunContext(self.reporter, threading.Event(), mlflow_store(), faults=self.options.faults)
        mount = Mount(run_dir)  # shell-safe paths for ${{inputs.x}} / ${{outputs.y}}
        for task in plan.tasks:
            task.mount = mount
        for note in plan.notes:
            self.reporter.note(note)
        handlers = self._install_signals(ctx.stop)
        start = time.monotonic()
        try:
            summary = self.execute(ctx, plan, planner)
        finally:
            for launch in ctx.launches:
                launch.kill()
            self._restore_signals(handlers)
            self.reporter.close()
            mount.close()
        summary.update({"kind": plan.kind, "run_dir": str(run_dir), "duration_s": round(time.monotonic() - start, 3)})
        try:
            rundir.fill(summary_file, json.dumps(summary, indent=2) + "\n")
        except OSError as exc:
            sys.stderr.write(f"error: {paths.display(summary_file)}: cannot be written: {exc.strerror} "
                             "(hint: free disk space; the run's own logs are in user_logs/)\n")
            summary["status"] = "Failed" if summary["status"] == "Completed" else summary["status"]
        self.print_summary(summary)
        return {"Completed": 0, "Canceled": 130}.get(summary["status"], 1)

    def execute(self, ctx: RunContext, plan: Plan, planner: Planner) -> dict:
        if plan.kind == "sweep":
            from .sweep import run_sweep

            return run_sweep(ctx, plan, planner.experiment, planner.name)
        states, results = Scheduler(ctx, stop_on_failure=not plan.keep_going).run(plan.tasks)
        if plan.kind == "command":
            task = plan.tasks[0]
            return result_summary(results[task.id]) if task.id in results else {
                "status": "Canceled", "outputs": {}, "message": "stopped before it started"}
        return pipeline_summary(plan, states, results, ctx.stop.is_set())

    def _install_signals(self, stop: threading.Event):
        def handler(signum, frame):
            stop.set()

        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal went away
                previous[sig] = signal.signal(sig, handler)
        return previous

    def _restore_signals(self, previous) -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    # -------------------------------------------------------------- output
    def print_plan(self, plan: Plan, planner: Planner) -> None:
        """--dry-run: what would run, unit by unit, and what stops it."""
        if self.options.json:
            print(json.dumps(plan_json(plan, planner), indent=2))
            return
        out = sys.stdout
        out.write(f"plan: {plan.kind} {planner.name}, {len(plan.tasks)} unit(s), run folder "
                  f"{paths.display(planner.run_dir)} (nothing is started)\n")
        for note in plan.notes:
            out.write(f"  {note}\n")
        for task in plan.tasks:
            out.write(f"\n  {task.id}: {task.describe()}" + (f", after {', '.join(sorted(task.deps))}"
                                                          if task.deps else "") + "\n")
            out.write(f"    code: {paths.display(task.code) if task.code else '(none)'}\n")
            out.write(f"    command: {task.bound or task.command}\n")
            for name, value in task.inputs.items():
                out.write(f"    input {name}: {value}\n")
            for name, path in task.outputs.items():
                out.write(f"    output {name}: {paths.display(path)}{' (file)' if name in task.file_outputs else ''}\n")
            if task.environment_variables:
                out.write(f"    environment variables: {', '.join(sorted(task.environment_variables))}\n")
        if plan.problems:
            out.write("\nrefused, with " + f"{len(plan.problems)} problem(s):\n")
            out.write("".join(f"  {p}\n" for p in plan.problems))
        out.flush()

    def print_summary(self, summary: dict) -> None:
        if self.options.json:
            keys = ("status", "kind", "run_dir", "outputs", "failed_rank", "failed_step", "duration_s", "message",
                    "attempts", "resumable", "steps", "trials", "best_trial")
            print(json.dumps({k: summary[k] for k in keys if k in summary}, indent=2))
            return
        out = sys.stdout
        status = summary["status"]
        short = paths.display(Path(summary["run_dir"]))

        def brief(text: str) -> str:  # the run folder as the user reads it
            return text.replace(summary["run_dir"], short)

        out.write(f"\n{summary['kind']} {status} in {summary['duration_s']:.1f}s; run folder {summary['run_dir']}\n")
        for line in attempt_lines(summary.get("attempts") or []):
            out.write(f"  {line}\n")
        for step, info in (summary.get("steps") or {}).items():
            took = f"{info['duration_s']:.1f}s" if "duration_s" in info else ""
            out.write(f"  step {step:<14} {info['status']:<10} {took:>7}  {brief(info.get('last_line', ''))}\n")
            for line in attempt_lines(info.get("attempts") or []):
                out.write(f"    {line}\n")
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


def plan_json(plan: Plan, planner: Planner) -> dict:
    return {"status": "Refused" if plan.problems else "Planned", "kind": plan.kind, "run_dir": str(planner.run_dir),
            "problems": plan.problems, "notes": plan.notes,
            "units": [{"id": t.id, "after": sorted(t.deps), "nodes": t.instance_count, "distribution": t.distribution,
                       "processes": t.processes, "code": str(t.code) if t.code else None,
                       "command": t.bound or t.command, "inputs": {k: str(v) for k, v in t.inputs.items()},
                       "outputs": {k: str(v) for k, v in t.outputs.items()}, "file_outputs": sorted(t.file_outputs),
                       "environment_variables": sorted(t.environment_variables)} for t in plan.tasks]}


def attempt_lines(attempts: list[dict]) -> list[str]:
    """A requeued job's attempts, one line each, and whether the later ones resumed."""
    if len(attempts) < 2:
        return []
    lines = [f"{len(attempts)} attempts:"]
    for a in attempts:
        where = ""
        if a.get("resumed") is True:
            where = f", resumed at epoch {a['resumed_at_epoch']}"
        elif a.get("resumed") is False:
            where = ", started over (not resumable)"
        cause = f": {a['message']}" if a["status"] != "Completed" and a.get("message") else ""
        lines.append(f"  attempt {a['attempt']} {a['status']} after {a['duration_s']:.1f}s{where}{cause}")
    verdict = resumable(attempts)
    if verdict is False:
        lines.append("  not resumable: a requeued attempt redid all the work; checkpoint to an output folder "
                     "and resume from it (as src/trainer does with --checkpoint-dir)")
    return lines


def resumable(attempts: list[dict]) -> bool | None:
    """False when a requeued attempt started over, True when every one resumed, None when unknown."""
    later = [a.get("resumed") for a in attempts[1:]]
    if not later:
        return None
    if any(r is False for r in later):
        return False
    return True if all(r is True for r in later) else None


def with_attempts(info: dict, outcome) -> dict:
    if len(outcome.attempts) > 1:
        info["attempts"] = outcome.attempts
        info["resumable"] = resumable(outcome.attempts)
    return info


def result_summary(result: TaskResult) -> dict:
    o = result.outcome
    return with_attempts({"status": o.status, "outputs": result.outputs, "failed_rank": o.failed_rank,
                          "message": o.message, "last_line": last_line(result), "traceback": o.traceback,
                          "logs": str(result.task.run_dir / "user_logs"), "task_duration_s": round(o.duration, 3)}, o)


def pipeline_summary(plan: Plan, states: dict[str, str], results: dict[str, TaskResult], stopped: bool) -> dict:
    statuses = set(states.values())
    if statuses <= {"Completed"}:
        status = "Completed"
    elif stopped and not any(s in ("Failed", "TimedOut") for s in statuses):
        status = "Canceled"
    elif "Canceled" in statuses and not any(s in ("Failed", "TimedOut") for s in statuses):
        status = "Canceled"
    else:
        status = "Failed"
    order = [t.id for t in plan.tasks]
    failed = next((s for s in order if states[s] in ("Failed", "TimedOut")), None)
    steps = {}
    for step in order:
        info = {"status": states[step]}
        if step in results:
            r = results[step]
            info.update(run_dir=str(r.task.run_dir), duration_s=round(r.outcome.duration, 3),
                        failed_rank=r.outcome.failed_rank, outputs=r.outputs, last_line=last_line(r))
            with_attempts(info, r.outcome)
        steps[step] = info
    summary = {"status": status, "outputs": {k: str(v) for k, v in plan.outputs.items()}, "steps": steps,
               "failed_step": failed, "failed_rank": results[failed].outcome.failed_rank if failed else None}
    if failed:
        summary["message"] = f"step {failed}: {results[failed].outcome.message}"
        summary["traceback"] = results[failed].outcome.traceback
    return summary


def last_line(result: TaskResult) -> str:
    """Rank 0's last line: what a step said when it ended (the trainer's result, the registered version)."""
    for proc in sorted(result.outcome.procs, key=lambda p: p.rank):
        if proc.last_line.strip():
            return proc.last_line.strip()[:400]
    return ""


def run(path: Path, options: Options) -> int:
    return Runner(path, options).run()
