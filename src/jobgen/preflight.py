"""Pre-flight for `generator.py submit`: what Azure would refuse or waste, asked of the workspace
through MLClient before anything is uploaded. A quota or capacity error otherwise arrives after
the code snapshot's upload, when the job has queued.

- the cluster's `max_instances` against the job's `instance_count`;
- the vCPU quota of the size's VM family in the workspace's region (and the regional total for
  dedicated or low-priority cores) against nodes x the size's vCPUs (`compute.list_usage`,
  `compute.list_sizes`);
- processes per node against the size's GPUs (the cluster's real size, which lint cannot know);
- InfiniBand for a multi-node GPU job (the sizes whose names have an `r`).

A command job is one demand; a pipeline has one per command step (its own compute or the
pipeline's default, component files read for their distribution); a sweep's trials are one
demand, with a warning when its concurrent trials cannot all fit the cluster or the quota.

One line each with the fix; problems stop the submission (`--no-preflight` skips the checks),
warnings are printed and the job goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from . import vmsizes
from .azml import model, refs


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if text not in self.problems:
            self.problems.append(text)

    def warning(self, text: str) -> None:
        if text not in self.warnings:
            self.warnings.append(text)


@dataclass(frozen=True)
class Demand:
    """What one unit of a job file asks of a compute: the job itself, a pipeline step, a sweep's
    trials (``at_once`` of them at the same time)."""

    label: str  # "the job", "step train", "each trial"
    compute: str | None  # a cluster's name; None for serverless
    nodes: int
    per_node: int
    instance_type: str | None = None
    at_once: int = 1
    spot: bool = False  # serverless in the spot tier: low-priority quota, as a low-priority cluster's


def _compute_name(compute: Any) -> str | None:
    if not isinstance(compute, str) or not compute.strip():
        return None
    name = compute.strip().removeprefix("azureml:")
    return None if name.lower() in ("serverless", "local") else name.rsplit("/", 1)[-1]


def _count(value: Any, default: int = 1) -> int:
    try:
        return max(1, int(value))
    except (TypeError, ValueError):
        return default  # a ${{...}} binding or a typo: lint's to report, not ours


def _demand(label: str, compute: Any, command: model.Command, resources: dict | None = None,
            at_once: int = 1, queue: Any = None) -> Demand:
    resources = resources or command.resources
    per_node = _count(command.distribution.get("process_count_per_instance")) if command.distribution else 1
    spot = isinstance(queue, dict) and str(queue.get("job_tier") or "").lower() == "spot"
    return Demand(label, _compute_name(compute), _count(resources.get("instance_count")), per_node,
                  resources.get("instance_type"), at_once, spot)


def _component(ref: Any, base: Path) -> model.Command | model.Pipeline | None:
    """A step's (or a sweep's trial's) component: inline or a local file, read with the typed
    model as the runner reads it; None for a registered one (its step's settings still count)."""
    if isinstance(ref, str):
        local = refs.local_path(ref)
        if local is None:
            return None
        path = base / local
        try:
            ref = yaml.safe_load(path.read_text())
        except (OSError, yaml.YAMLError):
            return None  # a missing or broken component file is load_job's error, with its line
        base = path.parent
    if not isinstance(ref, dict):
        return None
    return model.read_pipeline(ref, base) if ref.get("type") == "pipeline" else model.read_command(ref, base)


def demands(data: dict, base: Path | None = None) -> list[Demand]:
    """Every unit of a job file that takes nodes: a command job; a sweep's trial (with its
    concurrency); each command step of a pipeline (its own compute, else the pipeline's default),
    nested pipeline steps included."""
    base = base or Path(".")
    kind = data.get("type")
    if kind in (None, "command"):
        return [_demand("the job", data.get("compute"), model.read_command(data, base),
                        queue=data.get("queue_settings"))]
    if kind == "sweep":
        sweep = model.read_sweep(data, base)
        trial = _component(data.get("trial"), base)
        trial = trial if isinstance(trial, model.Command) else sweep.trial
        total = _count(sweep.limits.get("max_total_trials"))
        at_once = min(_count(sweep.limits.get("max_concurrent_trials"), total), total)  # Azure: all at once by default
        return [_demand("each trial", data.get("compute"), trial, sweep.resources or trial.resources, at_once,
                        data.get("queue_settings"))]
    if kind == "pipeline":
        return _step_demands(model.read_pipeline(data, base), "", None)
    return []


def _step_demands(pipeline: model.Pipeline, prefix: str, inherited: Any) -> list[Demand]:
    default = pipeline.compute or inherited
    found = []
    for step in pipeline.steps.values():
        if step.kind not in model.RUNNABLE_STEPS:
            continue  # spark, automl, parallel ...: their own services size them
        body = step.inline if step.inline is not None else _component(step.component, pipeline.base)
        compute = step.overrides.get("compute") or default
        if isinstance(body, model.Pipeline):
            found += _step_demands(body, f"{prefix}{step.name}/", compute)
            continue
        body = body or model.read_command({}, pipeline.base)  # a registered component: the step's own settings
        found.append(_demand(f"step {prefix}{step.name}", compute, body.overridden(step),
                             queue=step.overrides.get("queue_settings")))
    return found


def check(client, data: dict, location: str | None = None, base: Path | None = None) -> Report:
    """The checks above for every unit of a job file (``data`` is its YAML after --set; ``base``
    its folder, for the component files of pipeline steps)."""
    report = Report()
    asked = _Workspace(client, location)
    for demand in demands(data, base):
        _check_one(asked, demand, report)
    return report


class _Workspace:
    """The workspace's answers, asked once per submission."""

    def __init__(self, client, location: str | None):
        self.client, self.location = client, location
        self._clusters: dict[str, Any] = {}
        self._sizes: dict[str, Any] | None = None
        self._usages: list | None = None

    def cluster(self, name: str):
        if name not in self._clusters:
            try:
                self._clusters[name] = self.client.compute.get(name)
            except Exception:  # noqa: BLE001 - a missing compute is submit's own error, with its fix
                self._clusters[name] = None
        return self._clusters[name]

    def sizes(self) -> dict[str, Any]:
        if self._sizes is None:
            self._sizes = _sizes(self.client, self.location)
        return self._sizes

    def usages(self) -> list:
        if self._usages is None:
            try:
                self._usages = list(self.client.compute.list_usage(location=self.location))
            except Exception:  # noqa: BLE001 - quota cannot be read: Azure will say at queue time
                self._usages = []
        return self._usages


def _check_one(ws: _Workspace, demand: Demand, report: Report) -> None:
    nodes, per_node = demand.nodes, demand.per_node
    who = demand.label
    size_name, low_priority, where, most = demand.instance_type, demand.spot, "serverless", None
    if demand.compute is not None:
        cluster = ws.cluster(demand.compute)
        if cluster is None:
            return
        size_name = getattr(cluster, "size", None)
        low_priority = str(getattr(cluster, "tier", "") or "").lower().replace("_", "") == "lowpriority"
        where = f"cluster {demand.compute}"
        ws.location = ws.location or getattr(cluster, "location", None)
        most = getattr(cluster, "max_instances", None)
        if most is not None and nodes > int(most):
            report.problem(f"{who} asks for {nodes} nodes but {where} scales to {most} (hint: set "
                           f"resources.instance_count to {most} or less, or raise the cluster's max_instances: "
                           f"az ml compute update -n {demand.compute} --max-instances {nodes})")
            return
        if most is not None and demand.at_once > 1 and nodes * demand.at_once > int(most):
            fit = max(1, int(most) // nodes)
            report.warning(f"{demand.at_once} trials at once need {nodes * demand.at_once} nodes but {where} scales "
                           f"to {most}: {fit} run at a time (hint: limits.max_concurrent_trials={fit}, or raise "
                           f"max_instances)")
    if not size_name:
        return
    remote = ws.sizes().get(str(size_name).lower())
    local = {k.lower(): v for k, v in vmsizes.table().items()}.get(str(size_name).lower())
    size_name = local.name if local else str(getattr(remote, "name", None) or size_name)  # Azure spells it in capitals
    vcpus = int(getattr(remote, "v_cp_us", 0) or (local.vcpus if local else 0))
    gpus = int(getattr(remote, "gpus", 0) or (local.whole_gpus if local else 0))
    family = getattr(remote, "family", None)
    if gpus and per_node > gpus:
        setting = "distribution.process_count_per_instance"
        report.problem(f"{who}: {per_node} processes per node but {size_name} ({where}) has {gpus} GPU(s) (hint: "
                       + (f"--set {setting}={gpus})" if demand.label == "the job" else f"{setting}: {gpus})"))
    if nodes > 1 and gpus and local is not None and not local.infiniband:
        report.warning(f"{nodes} nodes of {size_name} have no InfiniBand: NCCL goes over TCP between nodes, "
                       "often several times slower (hint: an InfiniBand size, whose name has an 'r', e.g. "
                       "Standard_ND96asr_v4, or one node with more GPUs)")
    if vcpus:
        _quota(ws, report, size_name, family, nodes * vcpus, low_priority, where, who, demand.at_once)


def _sizes(client, location: str | None) -> dict[str, Any]:
    try:
        return {str(s.name).lower(): s for s in client.compute.list_sizes(location=location)}
    except Exception:  # noqa: BLE001 - the local table stands in
        return {}


def _quota(ws: _Workspace, report: Report, size: str, family: str | None, need: int, low_priority: bool,
           where: str, who: str, at_once: int = 1) -> None:
    by_name = {_usage_name(usage)[0].lower(): usage for usage in ws.usages()}
    wanted = ["lowprioritycores"] if low_priority else ([family.lower()] if family else []) + ["totalcores"]
    region = ws.location or "the workspace's region"
    for key in wanted:
        usage = by_name.get(key)
        if usage is None or usage.limit is None:
            continue
        free = int(usage.limit) - _used(usage)
        label = _usage_name(usage)[1] or key
        if need > free:
            report.problem(f"quota: {who} needs {need} vCPUs of {size} ({where}), but {label} in {region} "
                           f"has {max(free, 0)} of {usage.limit} free (hint: request more quota (Azure portal: "
                           f"Quotas, Machine Learning), use fewer nodes or another size)")
            return
        if at_once > 1 and need * at_once > free:
            fit = max(1, free // need)
            report.warning(f"quota: {at_once} trials at once need {need * at_once} vCPUs of {size} ({where}), but "
                           f"{label} in {region} has {free} free: {fit} run at a time (hint: "
                           f"limits.max_concurrent_trials={fit}, or request more quota)")
            return


def _usage_name(usage) -> tuple[str, str]:
    """(name, localized name) of a Usage: a UsageName, or (azure-ai-ml 1.3x, see _used) the REST dict."""
    name = getattr(usage, "name", None)
    if isinstance(name, dict):
        return str(name.get("value") or ""), str(name.get("localizedValue") or name.get("localized_value") or "")
    return str(getattr(name, "value", "") or ""), str(getattr(name, "localized_value", "") or "")


def _used(usage) -> int:
    """A Usage's current value. azure-ai-ml 1.3x fills its entity from the REST model's camelCase
    dict, so ``current_value`` stays None and ``currentValue`` holds the number."""
    value = getattr(usage, "current_value", None)
    if value is None:
        value = getattr(usage, "currentValue", None)
    return int(value or 0)
