"""The Azure path: submit rendered YAML with azure-ai-ml's MLClient, create the job's cluster
when it is missing, follow the logs, download outputs.

Credentials only through azure-identity (DefaultAzureCredential: environment variables,
workload or managed identity, Azure CLI login, ...). The workspace comes from flags, a
`--workspace-config` file, AZURE_SUBSCRIPTION_ID / AZURE_RESOURCE_GROUP /
AZUREML_WORKSPACE_NAME, or a config.json found upward from the current folder (as
Workspace.from_config did). No token, key or SAS is ever printed.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from . import jobsettings, paths
from .azml.kinds import BATCH_DEPLOYMENTS
from .azml.model import compute_names
from .errors import JobgenError

ARM_PREFIX = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}"
CONFIG_NAMES = ("config.json", ".azureml/config.json", "aml_config/config.json")


@dataclass(frozen=True)
class Workspace:
    subscription_id: str
    resource_group: str
    name: str
    source: str  # where it came from, for messages

    def arm(self, kind: str, name: str, version: str | None = None) -> str:
        base = ARM_PREFIX.format(sub=self.subscription_id, rg=self.resource_group, ws=self.name)
        return f"{base}/{kind}/{name}" + (f"/versions/{version}" if version else "")


def find_config(start: Path | None = None) -> Path | None:
    folder = (start or Path.cwd()).resolve()
    for candidate_dir in [folder, *folder.parents]:
        for name in CONFIG_NAMES:
            candidate = candidate_dir / name
            if candidate.is_file():
                return candidate
    return None


def resolve_workspace(config: Path | None = None, subscription: str | None = None, resource_group: str | None = None,
                      workspace: str | None = None, environ: dict[str, str] | None = None,
                      required: bool = True) -> Workspace | None:
    """Flags win, then --workspace-config, then environment variables, then config.json upward."""
    env = os.environ if environ is None else environ
    values = {"subscription_id": subscription, "resource_group": resource_group, "workspace_name": workspace}
    sources = {k: "flags" for k, v in values.items() if v}
    config_path = config if config is not None else None
    if config_path is not None and not Path(config_path).is_file():
        raise JobgenError("workspace config file not found", where=str(config_path),
                          hint="download config.json from the workspace's overview page in Azure ML studio")
    file_values: dict[str, str] = {}
    if config_path is None and not all(values.values()):
        for key, var in (("subscription_id", "AZURE_SUBSCRIPTION_ID"), ("resource_group", "AZURE_RESOURCE_GROUP"),
                         ("workspace_name", "AZUREML_WORKSPACE_NAME")):
            if not values[key] and env.get(var):
                values[key], sources[key] = env[var], var
        if not all(values.values()):
            config_path = find_config()
    if config_path is not None and not all(values.values()):
        try:
            file_values = json.loads(Path(config_path).read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise JobgenError(f"cannot read workspace config: {exc}", where=str(config_path),
                              hint="it is the JSON file with subscription_id, resource_group, workspace_name") from None
        aliases = {"subscription_id": ("subscription_id", "subscriptionId"),
                   "resource_group": ("resource_group", "resourceGroup"),
                   "workspace_name": ("workspace_name", "workspaceName")}
        for key, names in aliases.items():
            if not values[key]:
                found = next((file_values[n] for n in names if file_values.get(n)), None)
                if found:
                    values[key], sources[key] = str(found), paths.display(Path(config_path))
    missing = [k for k, v in values.items() if not v]
    if missing:
        if not required:
            return None
        raise JobgenError(f"no Azure ML workspace given (missing {', '.join(missing)})", where="workspace",
                          hint="put config.json (from the workspace's page in studio) in this folder, or pass "
                               "--subscription/--resource-group/--workspace, or set AZURE_SUBSCRIPTION_ID, "
                               "AZURE_RESOURCE_GROUP and AZUREML_WORKSPACE_NAME")
    source = ", ".join(sorted(set(sources.values())))
    return Workspace(values["subscription_id"], values["resource_group"], values["workspace_name"], source)


def default_credential():
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def make_client(ws: Workspace, credential=None, **kwargs):
    """MLClient for ``ws``; ``credential`` defaults to DefaultAzureCredential. Extra keyword
    arguments go to azure-core (e.g. a transport, retry settings)."""
    quiet_sdk()
    from azure.ai.ml import MLClient

    return MLClient(credential or default_credential(), ws.subscription_id, ws.resource_group, ws.name, **kwargs)


def make_registry_client(name: str, credential=None, **kwargs):
    """MLClient for Azure ML registry ``name`` (azure-ai-ml finds its subscription, resource group
    and region through registry discovery); the same credential as make_client."""
    quiet_sdk()
    from azure.ai.ml import MLClient

    return MLClient(credential or default_credential(), registry_name=name, **kwargs)


def quiet_sdk() -> None:
    """azure-ai-ml logs its errors (in colour) before raising them; we say them once, in one line."""
    warnings.filterwarnings("ignore")
    for name in ("azure", "azure.ai.ml", "azure.identity", "azure.core.pipeline.policies.http_logging_policy"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


# ------------------------------------------------------------------ errors a user meets

def explain(exc: BaseException, ws: Workspace | None, context: dict[str, Any] | None = None) -> JobgenError | None:
    """One clear line for what users meet; None for anything else (a bug: traceback)."""
    from azure.core.exceptions import (ClientAuthenticationError, HttpResponseError, ResourceNotFoundError,
                                       ServiceRequestError, ServiceResponseError)

    context = context or {}
    where = f"workspace {ws.name}" if ws else "azure"
    text = _message(exc)
    try:
        from azure.identity import CredentialUnavailableError
    except ImportError:  # pragma: no cover
        CredentialUnavailableError = ()  # type: ignore[assignment]
    login_hint = ("run 'az login' (or set AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET for a service "
                  "principal; in CI use OpenID Connect with azure/login)")
    status = getattr(exc, "status_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    if isinstance(exc, CredentialUnavailableError) or (isinstance(exc, ClientAuthenticationError) and status is None):
        # no HTTP answer at all: the sign-in service could not be reached, or there was nothing to sign in with
        unreachable = _sign_in_unreachable(exc, where)
        if unreachable:
            return unreachable
        return JobgenError("not logged in to Azure: no credential could be found (DefaultAzureCredential tried "
                           "environment variables, workload and managed identity, Azure CLI, ...)", where=where,
                           hint=login_hint)
    for inner in _chain(exc):
        if isinstance(inner, (ServiceRequestError, ServiceResponseError)) or NO_CONNECTION.search(_message(inner)) \
                or NO_NAME.search(_message(inner)):
            return JobgenError(f"cannot reach Azure after retries: {_message(inner)}", where=where,
                               hint="check the network, proxy (HTTPS_PROXY) and firewall, then submit again")
    if status == 401 or isinstance(exc, ClientAuthenticationError):
        return JobgenError(f"Azure rejected the credentials (401): {text}", where=where, hint=login_hint)
    if status == 403:
        return JobgenError(f"no permission (403): {text}", where=where,
                           hint="ask for the 'AzureML Data Scientist' role on the workspace, or check the "
                                "subscription and resource group")
    if re.search(r"could not find compute|compute target .* (not found|does not exist)", text, re.I):
        return JobgenError(f"compute not found: {text}", where=where,
                           hint="pass --ensure-compute to create it from the compute YAML beside the job, or "
                                "az ml compute create -f compute.yml")
    if re.search(r"quota", text, re.I):
        return JobgenError(f"quota exceeded: {text}", where=where,
                           hint="request more quota for this VM family in the Azure portal, or choose a smaller or "
                                "low-priority size (--vm-size, --set cluster.tier=low_priority)")
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        kind = _not_found_kind(exc, text, context)
        if kind == "registry" or (context.get("registry") and kind == "other"):
            return JobgenError(f"registry '{context.get('registry', '?')}' not found, or you cannot read it: {text}",
                               where=f"registry {context.get('registry', '?')}",
                               hint="check the name (az ml registry list) and that you have a role on it, e.g. "
                                    "'AzureML Registry User'")
        if kind == "workspace" and ws is not None:
            return JobgenError(f"workspace '{ws.name}' not found in resource group '{ws.resource_group}' "
                               f"(from {ws.source})", where="workspace",
                               hint="check subscription, resource group and workspace name (config.json or flags)")
        if kind == "compute":
            name = context.get("compute", "?")
            return JobgenError(f"compute '{name}' not found", where=where,
                               hint="pass --ensure-compute to create it from the compute YAML beside the job, or "
                                    "az ml compute create -f compute.yml")
        if kind == "data":
            return JobgenError(f"data asset not found: {text}", where=where,
                               hint=f"create it from the data asset YAML: python generator.py submit "
                                    f"{context.get('data_yaml', 'data.yml')} (or az ml data create -f data.yml)")
        if kind == "endpoint":
            return JobgenError(f"{context.get('endpoint_kind', 'online')} endpoint '{context.get('endpoint', '?')}' "
                               "not found", where=where,
                               hint=f"create it first: python generator.py submit "
                                    f"{context.get('endpoint_yaml', 'endpoint.yml')}")
        if kind == "model":
            return _model_missing(context, where)
        if kind == "environment":
            return JobgenError(f"environment not found: {text}", where=where,
                               hint=f"create it first: python generator.py submit "
                                    f"{context.get('environment_yaml', 'environment.yml')}")
        return JobgenError(f"not found: {text}", where=where, hint="check the names in the YAML")
    if isinstance(exc, HttpResponseError) and str(context.get("model_ref", "")).startswith("azureml://registries/") \
            and re.search(r"\bmodel\b.*\b(not found|could not be found|does not exist)", text, re.I):
        return _model_missing(context, where)  # the service checks a registry's model when the deployment is PUT
    if isinstance(exc, HttpResponseError):
        return JobgenError(f"Azure answered {status}: {text}", where=where, hint="see the message; fix and submit again")
    name = type(exc).__name__
    if name in ("ValidationException", "UserErrorException", "JobException", "MlException"):
        low = text.lower()
        missing = "not found" in low or "could not find" in low or "does not exist" in low
        asset = re.search(r"asset (\S+) does not exist", low)
        if missing and context.get("model") and (asset and asset.group(1) == context["model"].lower()
                                                  or "model" in low):
            return _model_missing(context, where)
        if missing and (re.search(r"\basset\b", low) or "data" in low):
            return JobgenError(f"data asset not found: {text}", where=where,
                               hint=f"create it from the data asset YAML: python generator.py submit "
                                    f"{context.get('data_yaml', 'data.yml')}")
        return JobgenError(text, where=where, hint="fix the YAML and submit again")
    return None


ANSI = re.compile(r"\x1b\[[0-9;]*m")
NO_NAME = re.compile(r"Name or service not known|Temporary failure in name resolution|getaddrinfo failed|"
                     r"Failed to resolve|nodename nor servname provided|No address associated with hostname", re.I)
NO_CONNECTION = re.compile(r"Failed to establish a new connection|Connection refused|Connection aborted|"
                           r"Max retries exceeded|timed out|Network is unreachable|No route to host", re.I)
HOST = re.compile(r"Failed to resolve '([^']+)'|host='([^']+)', port=(\d+)")


def _sign_in_unreachable(exc: BaseException, where: str) -> JobgenError | None:
    """A credential that got no answer from Azure's sign-in service (Entra ID) because the network,
    proxy or name lookup failed: DefaultAzureCredential's EnvironmentCredential (a service
    principal) raises ClientAuthenticationError with no status and the connection error in its text.
    The line names the host and the kind of failure, never the credential's own message."""
    text = "\n".join(str(e) for e in _chain(exc))
    if NO_NAME.search(text):
        name, _ = _failed_host(text)
        detail = f": the name {name} could not be resolved" if name else ": a name could not be resolved"
    elif NO_CONNECTION.search(text):
        name, port = _failed_host(text)
        kind = ("connection refused" if re.search("Connection refused", text, re.I) else
                "the connection timed out" if re.search("timed out", text, re.I) else "no connection")
        detail = f" at {name}:{port}: {kind}" if name and port else f": {kind}"
    else:
        return None
    return JobgenError(f"cannot reach Azure's sign-in service{detail}", where=where,
                       hint="check the network, the proxy (HTTPS_PROXY, NO_PROXY) and DNS, then submit again")


def _failed_host(text: str) -> tuple[str | None, str | None]:
    """(host, port) of the connection that failed, as urllib3 names it in its errors."""
    found = HOST.search(text)
    if not found:
        return None, None
    return found.group(1) or found.group(2), found.group(3)


def _model_missing(context: dict, where: str) -> JobgenError:
    name = context.get("model", "?")
    in_registry = re.match(r"^azureml://registries/([^/]+)/models/([^/]+)/versions/([^/]+)$",
                           str(context.get("model_ref", "")))
    if in_registry:
        registry, _, version = in_registry.groups()
        return JobgenError(f"model '{name}' version {version} is not in registry {registry} "
                           f"({context['model_ref']})", where=where,
                           hint=f"promote it from the workspace that registered it: python generator.py submit "
                                f"--promote {name}:{version} --registry {registry}, then submit the deployment again")
    return JobgenError(f"model '{name}' not found ({context.get('model_ref', 'the deployment')} is not registered)",
                       where=where, hint=f"register it first (the training pipeline's register step does: "
                                         f"python generator.py submit jobs/<task>-pipeline/pipeline.yml), then submit "
                                         f"the deployment again")


def _chain(exc: BaseException) -> list[BaseException]:
    out, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append(exc)
        exc = exc.__cause__ or exc.__context__
    return out


class _NoColourNoise:
    """stderr during SDK calls: azure-ai-ml prints bare colour resets after uploads; drop writes
    that are nothing but ANSI codes and blank lines, keep the rest (progress bars)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        if ANSI.sub("", text).strip():
            return self.stream.write(text)
        return len(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _message(exc: BaseException) -> str:
    error = getattr(exc, "error", None)
    text = getattr(error, "message", None) or getattr(exc, "message", None) or str(exc)
    text = ANSI.sub("", str(text))
    found = re.search(r"\(x\) (.+)", text)  # azure-ai-ml's formatted errors: the "(x) ..." line says it
    if found:
        text = found.group(1)
    text = " ".join(text.split())
    text = re.sub(r"(sig|sv|se|sp|sr|skoid|sktid|skt|ske|sks|skv)=[^&\s\"']+", r"\1=***", text)  # never a SAS
    return text[:300]


NOT_FOUND_PARTS = (("compute", "/computes/"), ("data", "/data/"), ("environment", "/environments/"),
                   ("endpoint", "/onlineendpoints/"), ("endpoint", "/batchendpoints/"), ("model", "/models/"),
                   ("job", "/jobs/"))


def _not_found_kind(exc: BaseException, text: str, context: dict) -> str:
    """What is missing, from the ARM path of the failed request (or, failing that, the message):
    the last resource type under the workspace; the workspace itself when there is none."""
    code = str(getattr(getattr(exc, "error", None), "code", "") or "")
    if code == "ParentResourceNotFound" or re.search(r"parent resource '[^']*/workspaces/[^'/]+' could not be found",
                                                      text, re.I):
        return "workspace"
    response = getattr(exc, "response", None)
    url = str(getattr(response, "url", "") or getattr(getattr(response, "request", None), "url", "")).lower()
    path = url.split("?")[0]
    if re.search(r"/registries/[^/]+(/discovery)?/?$", path):  # registry discovery, or the registry itself
        return "registry"
    if "/workspaces/" in path:
        tail = path.split("/workspaces/", 1)[1]
        if "/" not in tail.strip("/"):
            return "workspace"
        for kind, part in reversed(NOT_FOUND_PARTS):
            if part in "/" + tail:
                return kind
    low = text.lower()
    if "parentresourcenotfound" in low.replace(" ", "") or re.search(r"workspace '[^']+' (was )?not found", low):
        return "workspace"
    for kind, part in NOT_FOUND_PARTS:
        if part.strip("/") in low.replace(" ", ""):
            return kind
    return "other"


# ------------------------------------------------------------------ submission

# What submit sends, and how (the loader of each kind is azml.kinds').
SUBMITTABLE = ("command_job", "pipeline_job", "sweep_job", "spark_job", "automl_job", "environment", "compute",
               "data", "command_component", "pipeline_component", "spark_component", "parallel_component", "model",
               "online_endpoint", "online_deployment", "schedule", "batch_endpoint", "model_batch_deployment",
               "batch_deployment")
JOB_KINDS = ("command_job", "pipeline_job", "sweep_job", "spark_job", "automl_job")


@dataclass
class SubmitOptions:
    sets: list[str] = field(default_factory=list)
    ensure_compute: bool = False
    stream: bool = False
    dry_run: bool = False
    json: bool = False
    lint: bool = True
    traffic: int | None = None  # online deployments: set this much traffic to it after creating
    retry: int = 0  # with stream: resubmit a job whose failure is recoverable (recovery.py) up to this often
    fallback_compute: str | None = None  # after a preemption, resubmit on this (dedicated) compute
    fallback_tier: str | None = None  # after a preemption of a serverless job, resubmit in this tier (standard)
    disable: bool = False  # a schedule: disable it instead of creating or updating it
    invoke: str | None = None  # a batch endpoint: score this folder, file or data asset instead of creating it
    deployment: str | None = None  # with invoke: this deployment instead of the endpoint's default
    set_default: bool = False  # a batch deployment: make it its endpoint's default after creating it
    preflight: bool = True  # quota, cluster size, GPUs and InfiniBand asked of the workspace first (preflight.py)
    registry: str | None = None  # create the asset in this Azure ML registry (the client is the registry's)


def _overrides(sets: list[str]) -> list[dict[str, Any]]:
    from .values import parse_set_value

    out = []
    for assignment in sets:
        if "=" not in assignment:
            raise JobgenError(f"--set expects PATH=VALUE, got '{assignment}'", where="--set",
                              hint="e.g. --set resources.instance_count=2")
        key, raw = assignment.split("=", 1)
        out.append({key.strip(): parse_set_value(raw)})
    return out


def detect(path: Path) -> tuple[str, dict]:
    from .lint.checks import detect_kind
    from .yamlio import load_located, read_text

    text = read_text(path)
    data = load_located(text, str(path)).data
    kind = detect_kind(data, text)  # $schema, or an editor's "# yaml-language-server: $schema=" line
    if kind not in SUBMITTABLE:
        raise JobgenError(f"cannot submit a {kind or 'file that is not Azure ML YAML'}", where=paths.display(path),
                          hint="submit a job, pipeline, sweep, schedule, environment, compute, data asset, component, "
                               "endpoint or deployment YAML")
    return kind, data


def load_entity(path: Path, kind: str, sets: list[str]):
    quiet_sdk()
    import azure.ai.ml as aml

    from .azml.kinds import load_function

    loader = load_function(kind)
    try:
        return loader(source=str(path), params_override=_overrides(sets))
    except JobgenError:
        raise
    except Exception as exc:  # noqa: BLE001 - the SDK's own validation
        raise JobgenError(f"azure-ai-ml cannot load it: {_message(exc)}", where=paths.display(path),
                          hint="run python generator.py lint on it") from None


def lint_first(path: Path, data: dict, sets: list[str]) -> None:
    """Lint what is sent: the file with every --set applied (a token or a $(...) given with --set
    is judged as if it were written in the file)."""
    from .lint import Document, lint_documents, lint_paths

    if sets:
        import yaml

        diagnostics = lint_documents([Document(path.resolve(), yaml.safe_dump(data, sort_keys=False))])
    else:
        diagnostics = lint_paths([path])
    errors = [d for d in diagnostics if d.severity == "error"]
    for d in errors:
        sys.stderr.write(d.format() + "\n")
    if errors:
        suffix = " (after --set)" if sets else ""
        raise JobgenError(f"{len(errors)} lint error(s){suffix}; nothing was submitted", where=paths.display(path),
                          hint="fix them (or --no-lint to let Azure judge)")


def dry_run_body(entity, ws: Workspace | None, path: Path) -> dict:
    """The REST body the SDK builds for a job, without a network call. References the SDK
    would resolve on the way (compute, environment, code upload, data versions) are resolved
    here where that needs no lookup; the code folder is shown as the local folder it uploads."""
    job = entity._to_job() if hasattr(entity, "_to_job") else entity
    rest = job._to_rest_object()
    body = rest.as_dict() if hasattr(rest, "as_dict") else rest.serialize()
    props = body.get("properties", body)

    def arm(kind: str, ref: str | None) -> str | None:
        if not ref or ws is None or ref.startswith("/subscriptions/"):
            return ref
        ref = ref.removeprefix("azureml:")
        name, _, version = ref.partition(":")
        if "@" in name:
            return f"azureml:{ref}"  # @latest is looked up at submission
        return ws.arm(kind, name, version or None)

    if isinstance(props, dict):
        if props.get("computeId"):
            props["computeId"] = arm("computes", props["computeId"])
        if props.get("environmentId"):
            props["environmentId"] = arm("environments", props["environmentId"])
        if props.get("codeId") and not str(props["codeId"]).startswith(("/subscriptions/", "azureml:")):
            folder = (path.parent / str(props["codeId"])).resolve()
            props["codeId"] = f"<uploaded at submission from {paths.display(folder)}>"
    return body


def _sibling_yaml(folder: Path, kind: str, name: str | None = None) -> Path | None:
    from .lint.checks import _load_plain, detect_kind

    for candidate in sorted(folder.glob("*.y*ml")):
        data = _load_plain(candidate)
        if data and detect_kind(data) == kind and (name is None or str(data.get("name")) == name):
            return candidate
    return None


def ensure_compute(client, name: str, job_path: Path, say: Callable[[str], None], poll: float = 5.0) -> bool:
    """Create cluster ``name`` from the compute YAML beside the job when it does not exist.
    Returns True when it was created."""
    from azure.core.exceptions import ResourceNotFoundError

    try:
        client.compute.get(name)
        say(f"compute {name}: exists")
        return False
    except ResourceNotFoundError:
        pass
    source = _sibling_yaml(job_path.parent, "compute", name)
    if source is None:
        raise JobgenError(f"compute '{name}' does not exist and no compute YAML beside the job names it",
                          where=paths.display(job_path),
                          hint="render one (python generator.py ... writes compute.yml) or az ml compute create")
    entity = load_entity(source, "compute", [])
    say(f"compute {name}: creating {getattr(entity, 'size', '')} from {paths.display(source)}")
    poller = client.compute.begin_create_or_update(entity)
    start = time.monotonic()
    while not poller.done():
        say(f"compute {name}: provisioning ({time.monotonic() - start:.0f}s)")
        poller.wait(poll)
    poller.result()
    say(f"compute {name}: created in {time.monotonic() - start:.0f}s")
    return True


def submit(path: Path, options: SubmitOptions, client=None, ws: Workspace | None = None,
           out=None, err=None) -> int:
    """Submit one YAML file. ``client`` is an MLClient (tests pass one bound to a fake)."""
    out = out or sys.stdout
    err = err or sys.stderr

    def say(text: str) -> None:
        if not options.json:
            err.write(text + "\n")
            err.flush()

    quiet_sdk()
    path = Path(path)
    kind, data = detect(path)
    if options.disable and kind != "schedule":
        raise JobgenError(f"--disable stops a schedule; this is a {kind.replace('_', ' ')}", where=paths.display(path),
                          hint="give the schedule.yml (a job is stopped with az ml job cancel -n NAME)")
    _check_batch_flags(kind, path, options)
    if options.registry:
        options = registry_options(path, kind, data, options)
    if options.sets:
        import copy

        from .values import apply_sets

        data = apply_sets(copy.deepcopy(data), options.sets)
    if options.lint:
        lint_first(path, data, options.sets)
    entity = load_entity(path, kind, options.sets)
    if options.dry_run and options.invoke:
        out.write(json.dumps({"invoke": entity.name, "deployment": options.deployment or "(the endpoint's default)",
                              "input": options.invoke}, indent=2) + "\n")
        return 0
    if options.dry_run:
        if kind not in JOB_KINDS:
            body = entity._to_dict() if hasattr(entity, "_to_dict") else {}
        else:
            body = dry_run_body(entity, ws, path)
        out.write(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
        return 0
    context = {"data_yaml": _display_sibling(path, "data"), "environment_yaml": _display_sibling(path, "environment")}
    if kind == "online_deployment" or kind in BATCH_DEPLOYMENTS:
        model = str(data.get("model") or "")
        context["model_ref"] = model
        in_registry = re.match(r"^azureml://registries/[^/]+/models/([^/]+)/", model)
        context["model"] = in_registry.group(1) if in_registry else \
            model.removeprefix("azureml:").split("@")[0].split(":")[0]
        context["endpoint"] = str(data.get("endpoint_name") or "?")
        context["endpoint_kind"] = "online" if kind == "online_deployment" else "batch"
        context["endpoint_yaml"] = _display_sibling(path, "online_endpoint" if kind == "online_deployment"
                                                    else "batch_endpoint")
    if kind == "batch_endpoint":
        context.update(endpoint=entity.name, endpoint_kind="batch", endpoint_yaml=paths.display(path))
    if options.registry:
        context["registry"] = options.registry
    real_stderr, real_stdout = sys.stderr, sys.stdout
    sys.stderr = _NoColourNoise(real_stderr)
    sys.stdout = _NoPollingDots(real_stdout)
    try:
        if options.invoke:
            return _invoke_batch(client, entity, path, options, say, out)
        if options.registry:
            _registry_environment_exists(client, data, options.registry, path)
        if kind in JOB_KINDS:
            return _submit_job(client, entity, kind, data, path, options, say, out, context)
        return _submit_asset(client, entity, kind, path, options, say, out)
    except JobgenError:
        raise
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - mapped to one line when it is a user's problem
        mapped = explain(exc, ws, context)
        if mapped is None:
            raise
        raise mapped from None
    finally:
        sys.stderr, sys.stdout = real_stderr, real_stdout


# ------------------------------------------------------------------ registries

REGISTRY_KINDS = ("environment", "command_component", "pipeline_component")
PROMOTE_RE = re.compile(r"^(?:azureml:)?(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]{0,254}):(?P<version>[A-Za-z0-9][A-Za-z0-9_.-]*)$")
WORKSPACE_ENV_RE = re.compile(r"^azureml:(?P<name>[^:@/\s]+)(?::(?P<version>[^:@\s]+)|@(?P<label>[^:@\s]+))?$")


def registry_options(path: Path, kind: str, data: dict, options: SubmitOptions) -> SubmitOptions:
    """What a registry can take, and a component's workspace environment named as the registry's.
    A registry holds assets that workspaces share (environments, components, models, data); jobs,
    endpoints and computes belong to a workspace. azure-ai-ml refuses a component in a registry whose
    environment is a workspace's (azureml:<name>:<version>): the same name and version in the
    registry is what is meant, so it is sent as azureml://registries/<r>/environments/<name>/versions/<v>."""
    import dataclasses

    shown = paths.display(path)
    if kind not in REGISTRY_KINDS:
        what = kind.replace("_", " ")
        hint = ("a model reaches a registry by promotion: python generator.py submit --promote NAME:VERSION "
                f"--registry {options.registry}") if kind == "model" else \
            "publish its environment and components to the registry; the workspace runs or serves them"
        raise JobgenError(f"submit --registry publishes environments and components, not a {what}",
                          where=f"{shown} --registry",
                          hint=hint)
    if not kind.endswith("_component") or any(s.split("=", 1)[0].strip() == "environment" for s in options.sets):
        return options
    env = data.get("environment")
    match = WORKSPACE_ENV_RE.match(env) if isinstance(env, str) else None
    if match is None or match.group("name").startswith("AzureML-"):  # curated: the azureml registry's already
        return options
    if not match.group("version"):
        raise JobgenError(f"the component's environment {env} names no version, and a registry's component pins "
                          "its environment's", where=f"{shown}: environment",
                          hint=f"name the version (azureml:{match.group('name')}:<version>) or --set environment="
                               f"azureml://registries/{options.registry}/environments/{match.group('name')}/versions/<v>")
    ref = f"azureml://registries/{options.registry}/environments/{match.group('name')}/versions/{match.group('version')}"
    return dataclasses.replace(options, sets=[*options.sets, f"environment={ref}"])


def _registry_environment_exists(client, data: dict, registry: str, path: Path) -> None:
    """A component's environment in the registry must be there before the component is (one line,
    with the command that publishes it, instead of the service's error after the code upload)."""
    from azure.core.exceptions import ResourceNotFoundError

    env = data.get("environment")
    if not isinstance(env, str):
        return
    match = re.match(rf"^azureml://registries/{re.escape(registry)}/environments/([^/]+)/versions/([^/]+)$", env)
    if match is None:
        return
    try:
        client.environments.get(match.group(1), version=match.group(2))
    except ResourceNotFoundError:
        source = _sibling_yaml(path.parent, "environment")
        raise JobgenError(f"environment {match.group(1)} version {match.group(2)} is not in registry {registry}",
                          where=f"{paths.display(path)}: environment",
                          hint=f"publish it first: python generator.py submit "
                               f"{paths.display(source) if source else 'environment.yml'} --registry {registry}") \
            from None


def parse_promote(text: str) -> tuple[str, str]:
    match = PROMOTE_RE.match(text or "")
    if match is None:
        raise JobgenError(f"'{text}' is not MODEL:VERSION", where="--promote",
                          hint="name a registered model's version, e.g. --promote penguins-mlp:3 (az ml model list "
                               "-n NAME lists them)")
    return match.group("name"), match.group("version")


def promote(client, ws: Workspace, model: str, registry: str, out=None, err=None, json_out: bool = False) -> int:
    """Copy model version ``model`` (NAME:VERSION) of the workspace into ``registry`` with azure-ai-ml's
    share operation (models.share: the registry imports it, with the same name and version), and
    print the reference deployments use: azureml://registries/<registry>/models/<name>/versions/<v>."""
    from azure.core.exceptions import ResourceNotFoundError

    out = out or sys.stdout
    err = err or sys.stderr
    name, version = parse_promote(model)
    say = (lambda text: None) if json_out else (lambda text: (err.write(text + "\n"), err.flush()))
    quiet_sdk()
    context = {"registry": registry, "model": name, "model_ref": f"azureml:{name}:{version}"}
    reference = f"azureml://registries/{registry}/models/{name}/versions/{version}"
    real_stderr = sys.stderr
    sys.stderr = _NoColourNoise(real_stderr)
    try:
        try:
            client.models.get(name, version=version)
        except ResourceNotFoundError:
            raise JobgenError(f"model {name} version {version} is not registered in workspace {ws.name}",
                              where="--promote", hint=f"list its versions: az ml model list -n {name} (the training "
                                                      "pipeline's register step registers one)") from None
        client.models.share(name=name, version=version, registry_name=registry, share_with_name=name,
                            share_with_version=version)
    except JobgenError:
        raise
    except Exception as exc:  # noqa: BLE001
        if "already exists in registry" in _message(exc):
            raise JobgenError(f"model {name} version {version} is already in registry {registry}: {reference}",
                              where="--promote", hint="a registry's versions do not change: register a new version "
                                                      "in the workspace and promote that one") from None
        mapped = explain(exc, ws, context)
        if mapped is None:
            raise
        raise mapped from None
    finally:
        sys.stderr = real_stderr
    # the reference deployments use (the share operation's answer may carry the registry's ARM id instead)
    if json_out:
        out.write(json.dumps({"model": name, "version": version, "registry": registry, "reference": reference},
                             indent=2) + "\n")
    else:
        # one line per action, once all have succeeded (a failure is the one line that says why)
        say(f"model {name} version {version}: found in workspace {ws.name}")
        say(f"model {name} version {version}: promoted to registry {registry} (models.share: the registry imported it)")
        out.write(reference + "\n")
    return 0


def _display_sibling(path: Path, kind: str) -> str:
    found = _sibling_yaml(path.parent, kind)
    return paths.display(found) if found else f"{kind}.yml"


def _submit_job(client, entity, kind, data, path, options, say, out, context) -> int:
    if options.ensure_compute:
        for name in compute_names(data):
            context["compute"] = name
            ensure_compute(client, name, path, say)
    names = compute_names(data)
    context["compute"] = names[0] if names else "?"
    from . import recovery

    if options.fallback_tier and kind != "command_job":
        raise JobgenError(f"--fallback-tier resubmits a command job in another tier; this is a "
                          f"{kind.replace('_', ' ')}, whose steps or trials carry their own queue settings",
                          where=paths.display(path), hint="set the tier in the file (queue_settings.job_tier) "
                          "and submit it again")
    if options.fallback_tier and jobsettings.named_compute(data.get("compute")):
        compute = str(data["compute"]).removeprefix("azureml:")
        raise JobgenError(f"--fallback-tier changes a serverless job's tier, but this job runs on compute {compute}, "
                          "whose VMs are its own tier", where=paths.display(path),
                          hint="use --fallback-compute NAME (a dedicated cluster) instead")
    if options.preflight:
        _preflight(client, data, say, path.parent)
    attempts: list[recovery.Attempt] = []
    first = None
    while True:
        created = client.jobs.create_or_update(entity)
        name = created.name
        first = first or name
        url = getattr(created, "studio_url", None) or ""
        status = getattr(created, "status", None)
        if options.json and not options.stream:
            out.write(json.dumps({"name": name, "status": status, "studio_url": url}, indent=2) + "\n")
            return 0
        say(f"submitted {kind.replace('_job', '')} job {name}" + (f" (attempt {len(attempts) + 1})" if attempts else ""))
        if not options.json:
            out.write(f"{name}\n")
            if url:
                out.write(f"studio: {url}\n")
        if not options.stream:
            say(f"follow it: python generator.py submit ... --stream, or az ml job stream -n {name}")
            return 0
        interrupted, error = _stream(client, name)
        if interrupted:
            return 130
        status = status_of(client.jobs.get(name))
        attempt = recovery.Attempt(len(attempts) + 1, name, status, compute=str(getattr(entity, "compute", "")) or None)
        attempts.append(attempt)
        if status != "Failed" or options.retry <= 0:
            break
        verdict = recovery.classify(recovery.error_text_of(error), _rank_logs(client, name))
        attempt.kind, attempt.recoverable, attempt.why = verdict.kind, verdict.recoverable, verdict.why
        if not verdict.recoverable:
            attempt.action = "not resubmitted"
            say(f"job {name} failed: {verdict.line()}")
            break
        if len(attempts) > options.retry:
            attempt.action = f"not resubmitted: --retry {options.retry} used up"
            say(f"job {name} failed: {verdict.kind} ({verdict.why}); --retry {options.retry} used up")
            break
        pinned = recovery.pin_outputs(entity, first)
        moved = ""
        if verdict.kind == "preempted" and options.fallback_compute:
            entity.compute = options.fallback_compute
            moved = f", on {options.fallback_compute}"
        if verdict.kind == "preempted" and options.fallback_tier:
            moved += f", in the {_requeue_tier(entity, options.fallback_tier)} tier"
        entity.name = f"{first}-retry{len(attempts)}"
        attempt.action = f"resubmitted as {entity.name}"
        say(f"job {name} failed: {verdict.line()}; attempt {len(attempts) + 1} as {entity.name}{moved}, "
            f"with the outputs of {first} ({', '.join(pinned) or 'none'})")
    result = {"name": name, "status": status, "studio_url": url}
    if len(attempts) > 1 or any(a.kind for a in attempts):
        result["attempts"] = [a.as_dict() for a in attempts]
    if options.json:
        out.write(json.dumps(result, indent=2) + "\n")
    else:
        say(f"job {name} ended: {status}" + (f" after {len(attempts)} attempts" if len(attempts) > 1 else ""))
    return 0 if status == "Completed" else 1


def _stream(client, name: str) -> tuple[bool, BaseException | None]:
    """Follow a job's log to its end: (interrupted by Ctrl-C, the error stream raised when it failed)."""
    try:
        client.jobs.stream(name)
    except KeyboardInterrupt:
        pass
    except Exception as exc:  # noqa: BLE001 - stream raises when the job fails; the status says why
        if type(exc).__name__ != "JobException":
            raise
        if "interrupted" not in _message(exc):  # azure-ai-ml turns Ctrl-C into a JobException
            return False, exc
    else:
        return False, None
    sys.stderr.write(f"stopped following job {name}; it keeps running in Azure. Cancel it with: "
                     f"az ml job cancel -n {name} (or in studio)\n")
    return True, None


def _check_batch_flags(kind: str, path: Path, options: SubmitOptions) -> None:
    where = paths.display(path)
    if options.invoke is not None and kind != "batch_endpoint":
        raise JobgenError(f"--invoke scores data with a batch endpoint; this is a {kind.replace('_', ' ')}",
                          where=where, hint="give the batch endpoint's endpoint.yml")
    if options.deployment and options.invoke is None:
        raise JobgenError("--deployment names the deployment an invocation uses", where="--deployment",
                          hint="add --invoke DATA, or leave --deployment out")
    if options.set_default and kind not in BATCH_DEPLOYMENTS:
        raise JobgenError(f"--set-default makes a batch deployment its endpoint's default; this is a "
                          f"{kind.replace('_', ' ')}", where=where, hint="give a batch deployment's deployment.yml")


def batch_input(client, given: str):
    """--invoke's data as an Input: a local folder or file (azure-ai-ml uploads it), a data asset
    (azureml:name@latest, azureml:name:1; its type asked of the workspace) or a datastore/web URI
    (a folder when it ends with '/')."""
    from azure.ai.ml import Input

    if given.startswith("azureml:") and not given.startswith("azureml://"):
        ref = given.removeprefix("azureml:")
        name, _, label = ref.partition("@")
        name, _, version = name.partition(":")
        asset = client.data.get(name, version=version or None, label=None if version else (label or "latest"))
        kind = str(getattr(asset, "type", "uri_folder") or "uri_folder")
        if kind not in ("uri_folder", "uri_file"):
            raise JobgenError(f"data asset {name} is a {kind}; a batch endpoint scores a uri_folder or uri_file",
                              where="--invoke", hint="register the files as a uri_folder data asset")
        return Input(type=kind, path=given)
    if "://" in given:
        return Input(type="uri_folder" if given.endswith("/") else "uri_file", path=given)
    local = Path(given).expanduser().resolve()
    if not local.exists():
        raise JobgenError(f"'{given}' does not exist", where="--invoke",
                          hint="give a local folder or file, a data asset (azureml:<name>@latest) or a datastore URI")
    if local.is_dir() and not any(p.is_file() for p in local.rglob("*")):
        raise JobgenError(f"folder '{given}' holds no files to score", where="--invoke", hint="give a folder with files")
    return Input(type="uri_folder" if local.is_dir() else "uri_file", path=str(local))


def _forget_invoke_headers() -> None:
    """azure-ai-ml 1.x builds the invoke request's headers in a dict shared by the process
    (EndpointInvokeFields.DEFAULT_HEADER): the bearer token and the deployment stay in it, and the
    next invocation without --deployment would go to the last one's deployment. Only the
    Content-Type it started with is kept."""
    from azure.ai.ml.constants._endpoint import EndpointInvokeFields as fields

    for key in (fields.AUTHORIZATION, fields.MODEL_DEPLOYMENT, fields.REPEATABILITY_REQUEST_ID):
        fields.DEFAULT_HEADER.pop(key, None)


def _invoke_batch(client, entity, path: Path, options: SubmitOptions, say, out) -> int:
    """Score --invoke's data with the batch endpoint (its default deployment, or --deployment):
    the invocation starts a job; --stream follows it to its end."""
    data = batch_input(client, options.invoke)
    endpoint = client.batch_endpoints.get(entity.name)  # before anything is uploaded
    deployments = [d.name for d in client.batch_deployments.list(endpoint_name=entity.name)]
    default = getattr(getattr(endpoint, "defaults", None), "deployment_name", None)
    if options.deployment and options.deployment not in deployments:
        raise JobgenError(f"batch endpoint {entity.name} has no deployment {options.deployment}", where="--deployment",
                          hint=f"its deployments: {', '.join(deployments) or 'none yet'}")
    if not options.deployment and not default:
        raise JobgenError(f"batch endpoint {entity.name} has no default deployment", where=paths.display(path),
                          hint="name one with --deployment NAME, or submit the deployment with --set-default"
                           + (f" (its deployments: {', '.join(deployments)})" if deployments else ""))
    what = f"batch endpoint {entity.name}" + (f" (deployment {options.deployment})" if options.deployment else "")
    say(f"{what}: scoring {options.invoke}" + (" (uploading it first)" if Path(data.path).is_absolute() else ""))
    try:
        job = client.batch_endpoints.invoke(endpoint_name=entity.name, deployment_name=options.deployment, input=data)
    finally:
        _forget_invoke_headers()
    name = job.name
    url = getattr(client.jobs.get(name), "studio_url", None) or ""
    if not options.json:
        out.write(f"{name}\n" + (f"studio: {url}\n" if url else ""))
    if not options.stream:
        if options.json:
            out.write(json.dumps({"name": name, "status": job.status, "studio_url": url}, indent=2) + "\n")
        else:
            say(f"follow it: az ml job stream -n {name}; its rows: python generator.py download {name} --output score")
        return 0
    interrupted, _ = _stream(client, name)
    if interrupted:
        return 130
    status = status_of(client.jobs.get(name))
    if options.json:
        out.write(json.dumps({"name": name, "status": status, "studio_url": url}, indent=2) + "\n")
    else:
        say(f"job {name} ended: {status}" + (f"; its rows: python generator.py download {name} --output score"
                                              if status == "Completed" else ""))
    return 0 if status == "Completed" else 1


def job_services(client, name: str) -> tuple[Any, list[tuple[int, str, Any]]]:
    """A workspace job and its interactive services, node by node: (node, service name, the
    ServiceInstance with its type, status and endpoint). Azure lists a node's services once the
    job runs there."""
    try:
        job = client.jobs.get(name)
        return job, _service_rows(client, name, _nodes(job))
    except Exception as exc:  # noqa: BLE001
        mapped = explain(exc, None, {"job": name})
        if mapped is None:
            raise
        raise mapped from None


def step_services(client, pipeline) -> list[tuple[Any, list[tuple[int, str, Any]]]]:
    """A pipeline's steps (its child jobs, which Azure lists by the pipeline's name) and each one's
    services node by node; a step's node count is read from the pipeline's own definition of it."""
    steps = getattr(pipeline, "jobs", None) or {}
    try:
        children = list(client.jobs.list(parent_job_name=pipeline.name))
        return [(child, _service_rows(client, child.name, _nodes(steps.get(child.display_name))))
                for child in children]
    except Exception as exc:  # noqa: BLE001
        mapped = explain(exc, None, {"job": pipeline.name})
        if mapped is None:
            raise
        raise mapped from None


def _nodes(job) -> int:
    resources = getattr(job, "resources", None)
    count = resources.get("instance_count") if isinstance(resources, dict) else getattr(resources, "instance_count", None)
    return max(1, int(count or 1))


def _service_rows(client, name: str, nodes: int) -> list[tuple[int, str, Any]]:
    rows = []
    for node in range(nodes):
        found = client.jobs.show_services(name, node_index=node) or {}
        rows += [(node, service, found[service]) for service in sorted(found)
                 if str(getattr(found[service], "type", "")) not in ("Tracking", "Studio")]
    return rows


def _trigger_text(trigger) -> str:
    zone = getattr(trigger, "time_zone", None) or "UTC"
    if getattr(trigger, "expression", None):
        return f"cron '{trigger.expression}' ({zone})"
    return f"every {getattr(trigger, 'interval', 1)} {getattr(trigger, 'frequency', '?')}(s) ({zone})"


def _requeue_tier(entity, tier: str) -> str:
    """A serverless job's queue tier from here on (its priority kept); returns the tier."""
    from azure.ai.ml.entities import QueueSettings

    before = getattr(entity, "queue_settings", None)
    entity.queue_settings = QueueSettings(job_tier=tier, priority=getattr(before, "priority", None))
    return tier


def _preflight(client, data: dict, say: Callable[[str], None], base: Path) -> None:
    """Warnings are said; problems stop the submission before anything is uploaded."""
    from . import preflight

    report = preflight.check(client, data, base=base)
    if not report.problems:
        for warning in report.warnings:
            say(f"warning: pre-flight: {warning}")
        return
    for problem in report.problems[:-1]:
        sys.stderr.write(f"error: pre-flight: {problem}\n")
    message, _, hint = report.problems[-1].partition(" (hint: ")
    raise JobgenError(message + ("; nothing was uploaded" if len(report.problems) == 1 else
                                 f"; {len(report.problems)} pre-flight problems, nothing was uploaded"),
                      where="pre-flight", hint=(hint.rstrip(")") + "; --no-preflight skips the checks") if hint
                      else "--no-preflight skips the checks")


def _rank_logs(client, job_name: str) -> dict[str, str]:
    """Every rank's log of an ended job (jobs.download(all=True)); empty when it cannot be had."""
    import tempfile

    try:
        with tempfile.TemporaryDirectory(prefix="jobgen-retry-") as tmp:
            client.jobs.download(job_name, download_path=tmp, all=True)
            return {p.name: p.read_text(errors="replace")[-256 * 1024:]
                    for p in Path(tmp).rglob("user_logs/*.txt")}
    except Exception:  # noqa: BLE001 - the classification falls back on the run's error alone
        return {}


def _submit_asset(client, entity, kind, path, options, say, out) -> int:
    if kind == "compute":
        poller = client.compute.begin_create_or_update(entity)
        start = time.monotonic()
        while not poller.done():
            say(f"compute {entity.name}: provisioning ({time.monotonic() - start:.0f}s)")
            poller.wait(5)
        result = poller.result()
    elif kind == "schedule":
        if options.disable:
            result = _wait(client.schedules.begin_disable(entity.name), f"schedule {entity.name}", say)
        else:
            result = _wait(client.schedules.begin_create_or_update(entity), f"schedule {entity.name}", say)
        trigger = getattr(result, "trigger", None)
        say(f"schedule {entity.name}: {'enabled' if getattr(result, 'is_enabled', True) else 'disabled'}"
            + (f", {_trigger_text(trigger)}" if trigger is not None else ""))
    elif kind == "environment":
        result = client.environments.create_or_update(entity)
    elif kind == "data":
        result = client.data.create_or_update(entity)
    elif kind.endswith("_component"):
        result = client.components.create_or_update(entity)
    elif kind == "model":
        result = client.models.create_or_update(entity)
    elif kind == "online_endpoint":
        result = _wait(client.online_endpoints.begin_create_or_update(entity), f"endpoint {entity.name}", say)
    elif kind == "batch_endpoint":
        result = _wait(client.batch_endpoints.begin_create_or_update(entity), f"batch endpoint {entity.name}", say)
    elif kind in BATCH_DEPLOYMENTS:
        result = _submit_batch_deployment(client, entity, path, options, say)
    elif kind == "online_deployment":
        traffic = None
        if options.traffic is not None:
            endpoint = client.online_endpoints.get(entity.endpoint_name)  # before creating: a bad split fails early
            traffic = split_traffic(dict(endpoint.traffic or {}), entity.name, options.traffic)
        result = _wait(client.online_deployments.begin_create_or_update(entity),
                       f"deployment {entity.name} of endpoint {entity.endpoint_name}", say)
        if traffic is not None:
            endpoint = client.online_endpoints.get(entity.endpoint_name)
            endpoint.traffic = traffic
            _wait(client.online_endpoints.begin_create_or_update(endpoint), f"endpoint {entity.endpoint_name} traffic",
                  say)
            say("traffic: " + ", ".join(f"{k} {v}%" for k, v in traffic.items()))
    else:  # pragma: no cover - detect() guards
        raise JobgenError(f"cannot submit {kind}", where=paths.display(path))
    name = getattr(result, "name", getattr(entity, "name", "?"))
    version = getattr(result, "version", None)
    label = f"{kind.replace('_', ' ')} {name}" + (f" version {version}" if version else "")
    if kind == "online_deployment" or kind in BATCH_DEPLOYMENTS:
        label += f" of endpoint {entity.endpoint_name}"
    if options.registry:
        reference = f"azureml://registries/{options.registry}/{_PLURAL.get(kind, 'components')}/{name}/versions/{version}"
        label += f" in registry {options.registry}: {reference}"
    if options.json:
        out.write(json.dumps({"kind": kind, "name": name, "version": version,
                              **({"registry": options.registry} if options.registry else {})}, indent=2) + "\n")
    else:
        out.write(f"created or updated {label}\n")
    return 0


def _submit_batch_deployment(client, entity, path: Path, options: SubmitOptions, say):
    """A batch deployment: its cluster first (--ensure-compute), then the deployment, then (--set-default)
    the endpoint's defaults.deployment_name, which invocations without --deployment use."""
    compute = str(getattr(entity, "compute", "") or "").removeprefix("azureml:").rstrip("/").split("/")[-1]
    if options.ensure_compute and compute:
        ensure_compute(client, compute, path, say)
    client.batch_endpoints.get(entity.endpoint_name)  # before anything is uploaded: a missing endpoint fails early
    what = f"deployment {entity.name} of batch endpoint {entity.endpoint_name}"
    result = _wait(client.batch_deployments.begin_create_or_update(entity), what, say)
    if options.set_default:
        endpoint = client.batch_endpoints.get(entity.endpoint_name)
        endpoint.defaults.deployment_name = entity.name
        _wait(client.batch_endpoints.begin_create_or_update(endpoint), f"batch endpoint {entity.endpoint_name}", say)
        say(f"default deployment of batch endpoint {entity.endpoint_name}: {entity.name}")
    return result


_PLURAL = {"environment": "environments", "model": "models", "data": "data"}


def split_traffic(current: dict[str, int], deployment: str, pct: int) -> dict[str, int]:
    """``pct`` percent to ``deployment``, the rest shared by the other deployments in proportion
    to what they had (blue/green rollouts); the total stays 100."""
    others = {k: int(v) for k, v in current.items() if k != deployment}
    rest = 100 - pct
    if rest and not any(others.values()):
        raise JobgenError(f"--traffic {pct} leaves {rest}% to no other deployment of the endpoint",
                          where="--traffic", hint="the first deployment takes --traffic 100")
    total = sum(others.values()) or 1
    shares = {k: rest * v // total for k, v in others.items()}
    leftover = rest - sum(shares.values())
    for k in sorted(others, key=lambda k: -others[k])[:leftover]:
        shares[k] += 1
    return {deployment: pct, **shares}


class _NoPollingDots:
    """stdout during SDK long-running operations: azure-ai-ml prints a '.' per poll; we show
    our own progress on stderr instead (and keep --json output parseable)."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        if text.strip(".\n ") == "" and "." in text:
            return len(text)
        return self.stream.write(text)

    def __getattr__(self, name):
        return getattr(self.stream, name)


def _wait(poller, what: str, say: Callable[[str], None], poll: float = 10.0):
    start = time.monotonic()
    while not poller.done():
        say(f"{what}: provisioning ({time.monotonic() - start:.0f}s)")
        poller.wait(poll)
    result = poller.result()
    say(f"{what}: done in {time.monotonic() - start:.0f}s")
    return result


def download(client, job_name: str, output: str | None, dest: Path, ws: Workspace | None = None) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if output:
            client.jobs.download(job_name, download_path=str(dest), output_name=output)
        else:
            client.jobs.download(job_name, download_path=str(dest), all=True)
    except Exception as exc:  # noqa: BLE001
        mapped = explain(exc, ws, {})
        if mapped is None:
            raise
        raise mapped from None
    return dest


TERMINAL = ("Completed", "Failed", "Canceled", "NotResponding", "Paused")


def job_logs(client, job_name: str, dest: Path, ws: Workspace | None = None, follow: bool = False,
             say: Callable[[str], None] = print, poll: float = 10.0) -> tuple[Any, Path]:
    """Every rank's user_logs of a workspace job, downloaded with MLClient into ``dest``
    (jobs.download(all=True): artifacts/user_logs/std_log_process_N.txt), not just process 0's
    that jobs.stream prints. Azure lets a job's logs be downloaded once it has ended: with
    ``follow`` a running job's process 0 is streamed live meanwhile (jobs.stream, what
    ``az ml job stream`` prints) and every rank is downloaded when it ends; without, a running
    job is one clear line. Returns (the job, the folder holding user_logs/)."""
    try:
        job = client.jobs.get(job_name)
        if follow and status_of(job) not in TERMINAL:
            say(f"{job_name}: {status_of(job)}; process 0's log live until it ends, then every rank's, merged "
                "(Ctrl-C stops following; the job goes on)")
            _stream_until_end(client, job_name)
            job = client.jobs.get(job_name)
        seen = None
        while follow and status_of(job) not in TERMINAL:  # stream returned early (a lost connection)
            if status_of(job) != seen:
                seen = status_of(job)
                say(f"{job_name}: {seen}; every rank's logs are shown when it ends (Ctrl-C stops waiting)")
            time.sleep(poll)
            job = client.jobs.get(job_name)
        if status_of(job) not in TERMINAL:
            raise JobgenError(f"job {job_name} is {status_of(job)}: Azure gives its logs once it has ended",
                              where=job_name, hint=f"wait for it: generator.py logs {job_name} --follow "
                                                   f"(or az ml job stream -n {job_name} for process 0 meanwhile)")
        download(client, job_name, None, dest, ws)
    except JobgenError:
        raise
    except Exception as exc:  # noqa: BLE001
        mapped = explain(exc, ws, {"job": job_name})
        if mapped is None:
            raise
        raise mapped from None
    return job, dest / "artifacts"


def _stream_until_end(client, job_name: str) -> None:
    """jobs.stream prints process 0's log until the job ends; a failed job raises JobException,
    which is the status's to tell, not an error of ``logs``."""
    try:
        client.jobs.stream(job_name)
    except KeyboardInterrupt:
        raise JobgenError(f"stopped following job {job_name}; it keeps running in Azure",
                          where=job_name, hint=f"follow it again: generator.py logs {job_name} --follow") from None
    except Exception as exc:  # noqa: BLE001
        if type(exc).__name__ != "JobException":
            raise
        if "interrupted" in _message(exc):  # azure-ai-ml turns Ctrl-C into a JobException
            raise JobgenError(f"stopped following job {job_name}; it keeps running in Azure", where=job_name,
                              hint=f"follow it again: generator.py logs {job_name} --follow") from None


def status_of(job) -> str:
    """A job's status as Azure spells it ("Running"; azure-ai-ml may hand a JobStatus member)."""
    status = getattr(job, "status", None)
    return str(getattr(status, "value", status) or "Unknown")
