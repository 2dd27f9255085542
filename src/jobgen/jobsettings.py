"""Facts about where and how a job runs, decided once: the spec asks them of values (``--set x``) and
lint of YAML (``file:line``). Each returns None when all is well, else ``(message, hint)``.

- shared memory (``resources.shm_size``) against the VM's memory, and ``docker_args`` that set it too;
- ``queue_settings.job_tier`` where it has no effect (a named compute: a cluster's VMs are its tier);
- an ``identity`` that cannot work on serverless compute (it has no system-assigned identity);
- a schedule's cron expression that cannot fire.
"""

from __future__ import annotations

import re
from typing import Any

from . import vmsizes

SERVERLESS = ("serverless", "azureml:serverless")
JOB_TIERS = ("spot", "basic", "standard", "premium")
PRIORITIES = ("low", "medium", "high")
SHM_MOST_GIB = 64  # an image job's default shared memory: half the VM's memory, at most this
CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_SHM_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kKmMgGtT][bB]?|[bB])?$")


def is_serverless(compute: Any) -> bool:
    return isinstance(compute, str) and compute.strip().lower() in SERVERLESS


def named_compute(compute: Any) -> bool:
    """A compute given by name (a cluster, an instance, Kubernetes): not serverless, not a binding."""
    return isinstance(compute, str) and bool(compute.strip()) and not is_serverless(compute) \
        and not compute.startswith("${{")


def shm_bytes(text: Any) -> float | None:
    """Docker's shm size ('16g', '2048m', '1024') in bytes; None when it is not one."""
    match = _SHM_SIZE.match(str(text).strip()) if text is not None else None
    if not match:
        return None
    unit = (match.group(2) or "b").lower()[0]
    return float(match.group(1)) * {"b": 1, "k": 2 ** 10, "m": 2 ** 20, "g": 2 ** 30, "t": 2 ** 40}[unit]


def default_shm(vm: vmsizes.VmSize | None) -> str | None:
    """An image job's shared memory when none is given: DataLoader workers hand batches to the
    training process through /dev/shm, which Docker makes 64 MB and Azure 2 GB. Half the VM's memory
    (the rest stays the processes'), at most SHM_MOST_GIB: a tmpfs takes memory only as it fills, and
    64 GiB holds the prefetched batches of 8 GPUs' workers many times over."""
    return f"{min(SHM_MOST_GIB, max(2, int(vm.memory_gib // 2)))}g" if vm is not None else None


def shm_problem(shm: Any, vm: vmsizes.VmSize | None):
    size = shm_bytes(shm)
    if size is None:
        return f"shm_size {shm!r} is not a size Docker reads", "e.g. shm_size: 16g (b, k, m or g)"
    if vm is not None and size > vm.memory_gib * 2 ** 30:
        return f"shm_size {shm} is more than the {vm.memory_gib:g} GiB of memory of {vm.name}", \
            "use at most half the VM's memory"
    return None


def docker_shm_problem(docker_args: Any, shm: Any):
    """--shm-size or --ipc in docker_args beside shm_size (alone, Docker's own setting works)."""
    if isinstance(docker_args, list):
        docker_args = " ".join(map(str, docker_args))
    if shm is not None and isinstance(docker_args, str) and re.search(r"--(shm-size|ipc)\b", docker_args):
        return "docker_args sets --shm-size or --ipc beside shm_size; one of them wins and the other is silently " \
               "ignored", "keep one of them (shm_size: 16g, say)"
    return None


def tier_problem(tier: Any, compute: Any):
    if tier is None or str(tier).lower() not in JOB_TIERS or not named_compute(compute):
        return None
    return f"job_tier {tier} has no effect on compute {compute}: a cluster's VMs are dedicated or low priority " \
           "whatever the job asks", "set the cluster's tier (cluster.tier, az ml compute create --tier " \
           "low_priority), or run the job serverless in that tier"


def identity_problem(identity: Any, serverless: bool):
    kind = identity.get("type") if isinstance(identity, dict) else identity
    named = isinstance(identity, dict) and any(identity.get(k) for k in ("client_id", "object_id", "msi_resource_id"))
    if serverless and str(kind or "").lower() in ("managed", "managed_identity") and not named:
        return "a serverless job has no compute of its own, so no system-assigned identity to use", \
            "give client_id of a user-assigned identity attached to the workspace, or use identity: " \
            "{type: user_identity}"
    return None


def cron_problem(expression: Any) -> str | None:
    """Why a five-field cron expression cannot fire as written, or None."""
    fields = str(expression).split()
    if len(fields) != 5:
        return f"has {len(fields)} fields; Azure ML schedules take five (minute hour day month weekday)"
    for text, (low, high), name in zip(fields, CRON_RANGES, ("minute", "hour", "day", "month", "weekday")):
        for part in text.split(","):
            base = part.split("/")[0]
            if base in ("*", "?"):
                continue
            for number in base.split("-"):
                if not number.isdigit():
                    if name in ("month", "weekday") and re.fullmatch(r"[A-Za-z]{3}", number):
                        continue
                    return f"{name} field '{text}' is not a number, range or list"
                if not low <= int(number) <= high:
                    return f"{name} {number} is outside {low}-{high}"
    return None


# ------------------------------------------------------------------ batch deployments

# Azure's defaults for a batch deployment's settings, and the smallest value each can take.
BATCH_DEFAULTS = {"mini_batch_size": 10, "max_concurrency_per_instance": 1, "error_threshold": -1,
                  "output_action": "append_row", "output_file_name": "predictions.csv"}
RETRY_DEFAULTS = {"max_retries": 3, "timeout": 30}
_BATCH_LEAST = (("mini_batch_size", 1, "files per run() call"),
                ("max_concurrency_per_instance", 1, "scoring processes per node"),
                ("error_threshold", -1, "failed files tolerated, -1 for any number"))
_RETRY_LEAST = (("max_retries", 0, "retries of a mini-batch"), ("timeout", 1, "seconds per run() call"))


def batch_block(data: dict) -> tuple[dict, tuple[str, ...]]:
    """Where a batch deployment keeps its executor settings, and that place's path: under
    `settings:` (modelBatchDeployment, and batchDeployment with type: model), or at the top in the
    older batchDeployment form (mini_batch_size, retry_settings, ... beside model:), which
    azure-ai-ml still loads and sends."""
    if isinstance(data.get("settings"), dict):
        return data["settings"], ("settings",)
    return data, ()


def _whole(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer():
        return None
    return int(value)


def batch_problems(data: dict) -> list[tuple[tuple[str, ...], str, str]]:
    """(path, message, hint) for each setting the batch executor cannot run with: azure-ai-ml
    checks output_action and its file name, not these numbers. Placeholders are the caller's to skip."""
    block, at = batch_block(data)
    retry = block.get("retry_settings") if isinstance(block.get("retry_settings"), dict) else {}
    resources = data.get("resources") if isinstance(data.get("resources"), dict) else {}
    found = []
    for source, prefix, checks in ((block, at, _BATCH_LEAST), (retry, (*at, "retry_settings"), _RETRY_LEAST),
                                   (resources, ("resources",), (("instance_count", 1, "nodes"),))):
        for key, least, meaning in checks:
            value = source.get(key)
            if value is None:
                continue
            number = _whole(value)
            if number is None or number < least:
                found.append(((*prefix, key), f"{key} {value!r} cannot run: it counts {meaning}",
                              f"use a whole number of at least {least}"))
    return found


def batch_settings(data: dict) -> dict[str, Any]:
    """The executor's settings with Azure's defaults (after batch_problems found nothing)."""
    block, _ = batch_block(data)
    retry = block.get("retry_settings") if isinstance(block.get("retry_settings"), dict) else {}
    resources = data.get("resources") if isinstance(data.get("resources"), dict) else {}
    out: dict[str, Any] = {key: block.get(key, default) for key, default in BATCH_DEFAULTS.items()}
    out.update({key: retry.get(key, default) for key, default in RETRY_DEFAULTS.items()})
    for key in ("mini_batch_size", "max_concurrency_per_instance", "error_threshold", "max_retries"):
        out[key] = _whole(out[key])
    out["timeout"] = float(out["timeout"])
    out["instance_count"] = _whole(resources.get("instance_count", 1))
    out["output_action"] = str(out["output_action"] or "append_row").lower()
    out["output_file_name"] = str(out["output_file_name"] or "predictions.csv")
    env = block.get("environment_variables")
    out["environment_variables"] = {str(k): str(v) for k, v in env.items()} if isinstance(env, dict) else {}
    return out
