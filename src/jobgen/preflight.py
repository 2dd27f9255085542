"""Pre-flight for `generator.py submit`: what Azure would refuse or waste, asked of the workspace
through MLClient before anything is uploaded. A quota or capacity error otherwise arrives after
the code snapshot's upload, when the job has queued.

- the cluster's `max_instances` against the job's `instance_count`;
- the vCPU quota of the size's VM family in the workspace's region (and the regional total for
  dedicated or low-priority cores) against nodes x the size's vCPUs (`compute.list_usage`,
  `compute.list_sizes`);
- processes per node against the size's GPUs (the cluster's real size, which lint cannot know);
- InfiniBand for a multi-node GPU job (the sizes whose names have an `r`).

One line each with the fix; problems stop the submission (`--no-preflight` skips the checks),
warnings are printed and the job goes on.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import vmsizes


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _compute_name(data: dict) -> str | None:
    compute = data.get("compute")
    if not isinstance(compute, str) or not compute.strip():
        return None
    name = compute.strip().removeprefix("azureml:")
    return None if name.lower() == "serverless" else name.rsplit("/", 1)[-1]


def _job_shape(data: dict) -> tuple[int, int, str | None]:
    """(nodes, processes per node, the serverless instance type) of a command job's YAML."""
    resources = data.get("resources") or {}
    nodes = int(resources.get("instance_count") or 1)
    distribution = data.get("distribution") or {}
    per_node = int(distribution.get("process_count_per_instance") or 1) if distribution else 1
    return nodes, per_node, resources.get("instance_type")


def check(client, data: dict, location: str | None = None) -> Report:
    """The checks above for a command job (``data`` is its YAML after --set)."""
    report = Report()
    if data.get("type") not in (None, "command"):
        return report
    nodes, per_node, instance_type = _job_shape(data)
    name = _compute_name(data)
    size_name, low_priority, where = instance_type, False, "serverless"
    if name is not None:
        try:
            cluster = client.compute.get(name)
        except Exception:  # noqa: BLE001 - a missing compute is submit's own error, with its fix
            return report
        size_name = getattr(cluster, "size", None)
        low_priority = str(getattr(cluster, "tier", "") or "").lower().replace("_", "") == "lowpriority"
        where = f"cluster {name}"
        location = location or getattr(cluster, "location", None)
        most = getattr(cluster, "max_instances", None)
        if most is not None and nodes > int(most):
            report.problems.append(f"the job asks for {nodes} nodes but {where} scales to {most} (hint: set "
                                   f"resources.instance_count to {most} or less, or raise the cluster's max_instances: "
                                   f"az ml compute update -n {name} --max-instances {nodes})")
    if not size_name:
        return report
    sizes = _sizes(client, location)
    remote = sizes.get(str(size_name).lower())
    local = {k.lower(): v for k, v in vmsizes.table().items()}.get(str(size_name).lower())
    size_name = local.name if local else str(getattr(remote, "name", None) or size_name)  # Azure spells it in capitals
    vcpus = int(getattr(remote, "v_cp_us", 0) or (local.vcpus if local else 0))
    gpus = int(getattr(remote, "gpus", 0) or (local.whole_gpus if local else 0))
    family = getattr(remote, "family", None)
    if gpus and per_node > gpus:
        report.problems.append(f"{per_node} processes per node but {size_name} ({where}) has {gpus} GPU(s) (hint: "
                               f"--set distribution.process_count_per_instance={gpus})")
    if nodes > 1 and gpus and local is not None and not local.infiniband:
        report.warnings.append(f"{nodes} nodes of {size_name} have no InfiniBand: NCCL goes over TCP between nodes, "
                               "often several times slower (hint: an InfiniBand size, whose name has an 'r', e.g. "
                               "Standard_ND96asr_v4, or one node with more GPUs)")
    if vcpus:
        _quota(client, location, report, size_name, family, nodes * vcpus, low_priority, where)
    return report


def _sizes(client, location: str | None) -> dict[str, Any]:
    try:
        return {str(s.name).lower(): s for s in client.compute.list_sizes(location=location)}
    except Exception:  # noqa: BLE001 - the local table stands in
        return {}


def _quota(client, location, report: Report, size: str, family: str | None, need: int, low_priority: bool,
           where: str) -> None:
    try:
        usages = list(client.compute.list_usage(location=location))
    except Exception:  # noqa: BLE001 - quota cannot be read: Azure will say at queue time
        return
    by_name = {}
    for usage in usages:
        by_name[_usage_name(usage)[0].lower()] = usage
    wanted = ["lowprioritycores"] if low_priority else ([family.lower()] if family else []) + ["totalcores"]
    region = location or "the workspace's region"
    for key in wanted:
        usage = by_name.get(key)
        if usage is None or usage.limit is None:
            continue
        free = int(usage.limit) - _used(usage)
        if need > free:
            label = _usage_name(usage)[1] or key
            report.problems.append(f"quota: the job needs {need} vCPUs of {size} ({where}), but {label} in {region} "
                                   f"has {max(free, 0)} of {usage.limit} free (hint: request more quota (Azure portal: "
                                   f"Quotas, Machine Learning), use fewer nodes or another size)")
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
