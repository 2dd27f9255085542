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
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import JobgenError
from .tasks import Task, bind_inputs, cores, execute

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


def plan(space: dict, algorithm: Any, total: int, where: str, note) -> list[dict[str, Any]]:
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


def run_sweep(runner, data: dict, run_dir: Path, name: str) -> dict:
    import mlflow
    from mlflow.tracking import MlflowClient

    where = paths.display(runner.path)
    space = data.get("search_space") or {}
    objective = data.get("objective") or {}
    metric = objective.get("primary_metric")
    goal = str(objective.get("goal") or "maximize").lower()
    if not metric:
        raise JobgenError("a sweep needs objective.primary_metric", where=where)
    limits = data.get("limits") or {}
    total = int(limits.get("max_total_trials") or 1)
    trial_spec = dict(data.get("trial") or {})
    if not trial_spec.get("command"):
        raise JobgenError("the sweep's trial has no command", where=where)
    trials = plan(space, data.get("sampling_algorithm"), total, where, runner.reporter.note)
    early = EarlyTermination(data.get("early_termination"), goal, runner.reporter.note)

    client = MlflowClient(runner.mlflow_uri)
    experiment = ensure_experiment(client, runner.experiment, runner.mlflow_uri)
    parent = client.create_run(experiment, run_name=name, tags={"azureml.runType": "sweep",
                                                                "azureml.runid": name})
    # trial resources: distribution and resources come from the trial (or the sweep)
    per_trial = max(1, int((trial_spec.get("resources") or data.get("resources") or {}).get("instance_count") or 1)
                    * int((trial_spec.get("distribution") or {}).get("process_count_per_instance") or 1))
    concurrency = int(limits.get("max_concurrent_trials") or total)
    capped = max(1, min(concurrency, cores() // per_trial or 1))
    if capped < concurrency:
        runner.reporter.note(f"note: {capped} trial(s) at a time here (max_concurrent_trials {concurrency}, "
                             f"{cores()} cores, {per_trial} process(es) per trial)")
    timeout = float(limits.get("timeout")) if limits.get("timeout") else None
    trial_timeout = float(limits.get("trial_timeout")) if limits.get("trial_timeout") else None

    def make_task(index: int, params: dict[str, Any]) -> Task:
        trial_name = f"{name}_{index}"
        inputs_spec = {}
        for key, value in (data.get("inputs") or {}).items():
            if isinstance(value, str) and SEARCH.fullmatch(value.strip()):
                value = params[SEARCH.fullmatch(value.strip()).group(1)]
            inputs_spec[key] = value
        inputs = bind_inputs(inputs_spec, runner.base, runner.catalog, f"{where}: inputs")
        spec = dict(trial_spec)
        spec["command"] = SEARCH.sub(lambda m: str(params[m.group(1)]), str(spec["command"]))
        spec.setdefault("resources", data.get("resources"))
        limits_trial = {"timeout": trial_timeout} if trial_timeout else None
        if limits_trial:
            spec["limits"] = limits_trial
        task = runner.command_task(spec, runner.base, run_dir / f"trial_{index}", trial_name, f"trial {index}",
                                   inputs=inputs,
                                   outputs={n: run_dir / f"trial_{index}" / "outputs" / n
                                            for n in (data.get("outputs") or {})})
        run = client.create_run(experiment, run_name=trial_name,
                                tags={"mlflow.parentRunId": parent.info.run_id, "azureml.runid": trial_name,
                                      **{f"param.{k}": str(v) for k, v in params.items()}})
        for key, value in params.items():
            client.log_param(run.info.run_id, key, value)
        task.mlflow_run_id = run.info.run_id
        return task

    results: list[dict] = []
    stops: dict[str, threading.Event] = {}
    running: dict[Any, tuple[int, Task, dict]] = {}
    reasons: dict[str, str] = {}
    started = time.monotonic()
    queue = list(enumerate(trials))
    histories: dict[str, list[tuple[int, float]]] = {}

    def poll_metrics() -> None:
        for _, task, _ in list(running.values()):
            try:
                history = client.get_metric_history(task.mlflow_run_id, metric)
            except Exception:  # noqa: BLE001 - a run being written
                continue
            histories[task.name] = sorted((int(m.step), float(m.value)) for m in history)
        for _, task, _ in list(running.values()):
            if task.name in reasons:
                continue
            reason = early.should_stop(task.name, histories)
            if reason:
                reasons[task.name] = reason
                runner.reporter.note(f"[{task.label}] early termination: {reason}")
                stops[task.name].set()

    with ThreadPoolExecutor(max_workers=capped) as pool:
        while queue or running:
            while queue and len(running) < capped and not runner.stop.is_set():
                index, params = queue.pop(0)
                task = make_task(index, params)
                stops[task.name] = threading.Event()
                future = pool.submit(execute, task, runner.reporter, stops[task.name], runner.mlflow_uri,
                                     runner.launches)
                running[future] = (index, task, params)
            if runner.stop.is_set():
                queue.clear()
                for event in stops.values():
                    event.set()
            if timeout is not None and time.monotonic() - started > timeout:
                runner.reporter.note(f"sweep time limit of {timeout:g} s reached")
                queue.clear()
                for event in stops.values():
                    event.set()
            done, _ = wait(list(running), timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            poll_metrics()
            for future in done:
                index, task, params = running.pop(future)
                result = future.result()
                history = histories.get(task.name) or []
                try:
                    history = sorted((int(m.step), float(m.value))
                                     for m in client.get_metric_history(task.mlflow_run_id, metric))
                    histories[task.name] = history
                except Exception:  # noqa: BLE001
                    pass
                status = result.outcome.status
                if status == "Canceled" and task.name in reasons:
                    status = "EarlyTerminated"
                client.set_terminated(task.mlflow_run_id, "FINISHED" if status == "Completed" else "KILLED"
                                      if status in ("Canceled", "EarlyTerminated") else "FAILED")
                results.append({"name": task.name, "index": index, "parameters": params, "status": status,
                                "metric": history[-1][1] if history else None, "run_dir": str(task.run_dir),
                                "mlflow_run_id": task.mlflow_run_id, "reason": reasons.get(task.name)})
    results.sort(key=lambda r: r["index"])
    scored = [r for r in results if r["metric"] is not None and r["status"] in ("Completed", "EarlyTerminated")]
    best = None
    if scored:
        pick = max if goal != "minimize" else min
        best_row = pick(scored, key=lambda r: r["metric"])
        best = {"name": best_row["name"], "metric": metric, "value": best_row["metric"],
                "parameters": best_row["parameters"], "run_dir": best_row["run_dir"]}
        client.log_metric(parent.info.run_id, f"best_{metric}", best_row["metric"])
        client.set_tag(parent.info.run_id, "best_child_run_id", best_row["mlflow_run_id"])
    failed = [r for r in results if r["status"] in ("Failed", "TimedOut")]
    if runner.stop.is_set():
        status = "Canceled"
    elif best is None:
        status = "Failed"
    else:
        status = "Completed"
    client.set_terminated(parent.info.run_id, "FINISHED" if status == "Completed" else "FAILED")
    summary = {"status": status, "trials": results, "best_trial": best, "outputs": {},
               "message": (f"{len(failed)} of {len(results)} trials failed" if failed else "")}
    if best is None and status == "Failed":
        summary["message"] = f"no trial logged the primary metric '{metric}'" + (
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
