"""Sweep jobs: trials sampled as Azure samples them (random, grid; bayesian falls back to random
with a warning), `max_total_trials`, `max_concurrent_trials` capped by this machine's cores,
each trial a command job with its own MLflow run (MLFLOW_RUN_ID, as Azure sets it), the
primary metric read back from MLflow, bandit / median-stopping / truncation-selection early
termination applied while trials run, and the best trial reported."""

from __future__ import annotations

import itertools
import math
import random
import re
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..azml.model import Command, read_io
from ..errors import JobgenError
from .tasks import cores

SEARCH = re.compile(r"\$\{\{\s*search_space\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
POLL_SECONDS = 1.0


def _number(spec: dict, key: str, where: str) -> float:
    try:
        return float(spec[key])
    except (KeyError, TypeError, ValueError):
        raise JobgenError(f"search space parameter needs a numeric {key}", where=where) from None


def sample(spec: dict, rng: random.Random, where: str) -> Any:
    kind = spec.get("type")
    if kind == "choice":
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise JobgenError("choice needs a non-empty values list", where=where)
        return rng.choice(values)
    if kind == "randint":
        return rng.randrange(int(_number(spec, "upper", where)))
    lo_key, hi_key = "min_value", "max_value"
    if kind in ("uniform", "quniform", "loguniform", "qloguniform"):
        lo, hi = _number(spec, lo_key, where), _number(spec, hi_key, where)
        value = rng.uniform(lo, hi)
        if kind.endswith("loguniform"):
            value = math.exp(value)  # Azure: min/max of a log-uniform are exponents
    elif kind in ("normal", "qnormal", "lognormal", "qlognormal"):
        value = rng.gauss(_number(spec, "mu", where), _number(spec, "sigma", where))
        if kind.endswith("lognormal"):
            value = math.exp(value)
    else:
        raise JobgenError(f"unknown search space type {kind!r}", where=where,
                          hint="choice, randint, uniform, quniform, loguniform, qloguniform, normal, qnormal, "
                               "lognormal, qlognormal")
    if kind.startswith("q"):
        q = _number(spec, "q", where)
        value = round(value / q) * q
    return value


def sample_plan(space: dict, algorithm: Any, total: int, where: str, note) -> list[dict[str, Any]]:
    kind = algorithm.get("type") if isinstance(algorithm, dict) else algorithm
    kind = (kind or "random").lower()
    seed = algorithm.get("seed") if isinstance(algorithm, dict) else None
    if kind == "grid":
        names = list(space)
        for name in names:
            if space[name].get("type") != "choice":
                raise JobgenError(f"grid sampling needs choice parameters; '{name}' is {space[name].get('type')}",
                                  where=where)
        grid = [dict(zip(names, combo)) for combo in itertools.product(*(space[n]["values"] for n in names))]
        return grid[:total]
    if kind == "bayesian":
        note("warning: bayesian sampling runs as random sampling locally (no model of past trials)")
    elif kind != "random":
        raise JobgenError(f"unknown sampling algorithm {kind!r}", where=where, hint="random, grid or bayesian")
    if isinstance(algorithm, dict) and algorithm.get("rule") not in (None, "random"):
        note(f"warning: sampling rule {algorithm.get('rule')!r} runs as plain random sampling locally")
    rng = random.Random(seed)
    return [{name: sample(spec, rng, f"{where}: search_space.{name}") for name, spec in space.items()}
            for _ in range(total)]


class EarlyTermination:
    """Azure's policies, evaluated on the primary metric each trial logs (MLflow steps)."""

    def __init__(self, policy: dict | None, goal: str, note):
        self.policy = policy or {}
        self.kind = (self.policy.get("type") or "").lower() or None
        self.maximize = goal != "minimize"
        self.interval = int(self.policy.get("evaluation_interval") or 1)
        self.delay = int(self.policy.get("delay_evaluation") or 0)
        if self.kind not in (None, "bandit", "median_stopping", "truncation_selection"):
            note(f"warning: early termination {self.kind!r} is not applied locally")
            self.kind = None

    def _better(self, a: float, b: float) -> bool:
        return a > b if self.maximize else a < b

    def should_stop(self, trial: str, histories: dict[str, list[tuple[int, float]]]) -> str | None:
        """A reason to stop ``trial`` now, or None."""
        if self.kind is None:
            return None
        mine = histories.get(trial) or []
        if not mine:
            return None
        step, value = mine[-1]
        if step <= self.delay or step % self.interval:
            return None
        at_step = {t: [v for s, v in h if s <= step] for t, h in histories.items()}
        at_step = {t: v for t, v in at_step.items() if v}
        if self.kind == "bandit":
            best = max if self.maximize else min
            top = best(best(v) for v in at_step.values())
            if "slack_factor" in self.policy:
                f = float(self.policy["slack_factor"])
                limit = top / (1 + f) if self.maximize else top * (1 + f)
            else:
                a = float(self.policy.get("slack_amount", 0))
                limit = top - a if self.maximize else top + a
            if self._better(limit, value):
                return f"bandit: {value:.4g} at step {step} is outside the slack of the best {top:.4g}"
        elif self.kind == "median_stopping":
            others = [statistics.fmean(v) for t, v in at_step.items() if t != trial]
            if others:
                median = statistics.median(others)
                best_mine = (max if self.maximize else min)(v for _, v in mine)
                if self._better(median, best_mine):
                    return f"median stopping: best {best_mine:.4g} is behind the median {median:.4g} at step {step}"
        elif self.kind == "truncation_selection":
            pct = float(self.policy.get("truncation_percentage", 0)) / 100.0
            reached = {t: v[-1] for t, v in at_step.items()}
            if len(reached) >= 2 and pct > 0:
                ranked = sorted(reached, key=lambda t: reached[t], reverse=self.maximize)
                cut = max(1, int(len(ranked) * pct))
                if trial in ranked[-cut:]:
                    return f"truncation selection: in the lowest {pct:.0%} at step {step}"
        return None


@dataclass
class SweepPlan:
    """What a sweep's scheduling needs beside its trials."""

    metric: str
    goal: str
    parameters: dict[str, dict[str, Any]]  # trial id -> sampled values
    early_termination: dict | None
    concurrency: int
    timeout: float | None
    notes: list[str] = field(default_factory=list)


def plan_sweep(planner, sweep) -> "Plan":
    """The trials of a sweep, sampled now (random with the sweep's seed, or the grid), each a
    command unit with the sampled values bound."""
    from .plan import Plan

    where = planner.where
    plan = Plan("sweep")
    notes: list[str] = []
    metric = sweep.objective.get("primary_metric")
    goal = str(sweep.objective.get("goal") or "maximize").lower()
    if not metric:
        plan.problems.append(f"{where}: a sweep needs objective.primary_metric")
    if sweep.trial.command is None:
        plan.problems.append(f"{where}: the sweep's trial has no command")
        return plan
    total = int(sweep.limits.get("max_total_trials") or 1)
    try:
        trials = sample_plan(sweep.search_space, sweep.sampling, total, where, notes.append)
    except JobgenError as exc:
        plan.problems.append(exc.line())
        return plan
    resources = sweep.trial.resources or sweep.resources or {}
    trial = sweep.trial
    if not trial.resources and sweep.resources:
        trial = Command(**dict(trial.__dict__, resources=sweep.resources))
    per_trial = max(1, int(resources.get("instance_count") or 1)
                    * int((trial.distribution or {}).get("process_count_per_instance") or 1))
    concurrency = int(sweep.limits.get("max_concurrent_trials") or total)
    capped = max(1, min(concurrency, cores() // per_trial or 1))
    if capped < concurrency:
        notes.append(f"note: {capped} trial(s) at a time here (max_concurrent_trials {concurrency}, {cores()} cores, "
                     f"{per_trial} process(es) per trial)")
    parameters = {}
    for index, params in enumerate(trials):
        task = trial_task(planner, sweep, trial, index, params)
        if task is not None:
            plan.tasks.append(task)
            parameters[task.id] = params
    trial_timeout = sweep.limits.get("trial_timeout")
    for task in plan.tasks:
        if trial_timeout:
            task.timeout = min(float(trial_timeout), task.timeout or float(trial_timeout))
    plan.notes = notes
    plan.sweep = SweepPlan(metric or "", goal, parameters, sweep.early_termination, capped,
                           float(sweep.limits["timeout"]) if sweep.limits.get("timeout") else None, notes)
    return plan


def trial_task(planner, sweep, trial, index: int, params: dict[str, Any]):
    """Trial ``index``: its inputs with ${{search_space.x}} replaced by the sampled values."""
    where = f"{planner.where}: trial {index}"
    ios = {}
    for key, value in sweep.inputs.items():
        if isinstance(value, str) and SEARCH.fullmatch(value.strip()):
            value = params.get(SEARCH.fullmatch(value.strip()).group(1))
        ios[key] = read_io(key, value)
    inputs = planner.bind_inputs(ios, planner.base, f"{planner.where}: inputs")
    spec = Command(**dict(trial.__dict__, command=SEARCH.sub(lambda m: str(params.get(m.group(1))),
                                                             str(trial.command))))
    run_dir = planner.run_dir / f"trial_{index}"
    outputs, files = planner.output_slots(sweep.outputs, run_dir / "outputs", {})
    task = planner.task(spec, planner.base, run_dir, f"trial_{index}", f"trial {index}", f"{planner.name}_{index}",
                        inputs, outputs, files, where=where)
    return task


def run_sweep(ctx, plan, experiment: str, name: str) -> dict:
    """Run the trials through the scheduler: each its own MLflow run (MLFLOW_RUN_ID, as Azure
    sets it) under the sweep's parent run; the primary metric read back from MLflow while they
    run (early termination) and at the end (the best trial)."""
    from mlflow.tracking import MlflowClient

    from .schedule import Hooks, Scheduler

    sp = plan.sweep
    client = MlflowClient(ctx.mlflow_uri)
    experiment_id = ensure_experiment(client, experiment, ctx.mlflow_uri)
    parent = client.create_run(experiment_id, run_name=name, tags={"azureml.runType": "sweep",
                                                                   "azureml.runid": name})
    early = EarlyTermination(sp.early_termination, sp.goal, ctx.reporter.note)
    histories: dict[str, list[tuple[int, float]]] = {}
    reasons: dict[str, str] = {}
    rows: list[dict] = []

    def before(task) -> None:
        run = client.create_run(experiment_id, run_name=task.name,
                                tags={"mlflow.parentRunId": parent.info.run_id, "azureml.runid": task.name,
                                      **{f"param.{k}": str(v) for k, v in sp.parameters[task.id].items()}})
        for key, value in sp.parameters[task.id].items():
            client.log_param(run.info.run_id, key, value)
        task.mlflow_run_id = run.info.run_id

    def history(task) -> list[tuple[int, float]]:
        try:
            found = sorted((int(m.step), float(m.value)) for m in client.get_metric_history(task.mlflow_run_id,
                                                                                              sp.metric))
        except Exception:  # noqa: BLE001 - a run being written
            return histories.get(task.name, [])
        histories[task.name] = found
        return found

    def poll(running, stops) -> None:
        for task in running.values():
            history(task)
        for task in running.values():
            if task.name in reasons:
                continue
            reason = early.should_stop(task.name, histories)
            if reason:
                reasons[task.name] = reason
                ctx.reporter.note(f"[{task.label}] early termination: {reason}")
                stops[task.id].set()

    def after(task, result) -> None:
        found = history(task)
        status = result.outcome.status
        if status == "Canceled" and task.name in reasons:
            status = "EarlyTerminated"
        client.set_terminated(task.mlflow_run_id, "FINISHED" if status == "Completed" else "KILLED"
                              if status in ("Canceled", "EarlyTerminated") else "FAILED")
        rows.append({"name": task.name, "index": int(task.id.split("_")[-1]), "parameters": sp.parameters[task.id],
                     "status": status, "metric": found[-1][1] if found else None, "run_dir": str(task.run_dir),
                     "mlflow_run_id": task.mlflow_run_id, "reason": reasons.get(task.name)})

    hooks = Hooks(before=before, poll=poll, after=after,
                  deadline=time.monotonic() + sp.timeout if sp.timeout else None,
                  on_deadline=lambda: ctx.reporter.note(f"sweep time limit of {sp.timeout:g} s reached"))
    Scheduler(ctx, concurrency=sp.concurrency, stop_on_failure=False, hooks=hooks, poll_seconds=POLL_SECONDS).run(
        plan.tasks)
    return _sweep_summary(ctx, client, parent, sp, sorted(rows, key=lambda r: r["index"]))


def _sweep_summary(ctx, client, parent, sp: SweepPlan, rows: list[dict]) -> dict:
    scored = [r for r in rows if r["metric"] is not None and r["status"] in ("Completed", "EarlyTerminated")]
    best = None
    if scored:
        pick = max if sp.goal != "minimize" else min
        row = pick(scored, key=lambda r: r["metric"])
        best = {"name": row["name"], "metric": sp.metric, "value": row["metric"], "parameters": row["parameters"],
                "run_dir": row["run_dir"]}
        client.log_metric(parent.info.run_id, f"best_{sp.metric}", row["metric"])
        client.set_tag(parent.info.run_id, "best_child_run_id", row["mlflow_run_id"])
    failed = [r for r in rows if r["status"] in ("Failed", "TimedOut")]
    status = "Canceled" if ctx.stop.is_set() else "Failed" if best is None else "Completed"
    client.set_terminated(parent.info.run_id, "FINISHED" if status == "Completed" else "FAILED")
    summary = {"status": status, "trials": rows, "best_trial": best, "outputs": {},
               "message": (f"{len(failed)} of {len(rows)} trials failed" if failed else "")}
    if best is None and status == "Failed":
        summary["message"] = f"no trial logged the primary metric '{sp.metric}'" + (
            f"; {len(failed)} trial(s) failed" if failed else "")
    return summary


def ensure_experiment(client, name: str, uri: str) -> str:
    """The experiment's id, made if need be; two sweeps making it at once get the same one."""
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = None
    if uri.startswith("sqlite:///"):
        location = (Path(uri[len("sqlite:///"):].partition("?")[0]).parent / "mlartifacts" / name).as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id
