"""Values -> a typed, validated spec. Every problem is collected before any is reported.

Field names are Azure's YAML keys (``instance_count``, ``process_count_per_instance``); the
templates only lay these out. Pure functions, no I/O except checking that paths exist.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import jobsettings, paths, rules, secretscan, vmsizes
from .azml import shell
from .errors import Problem, SpecError
from .rules import Rule

DISTRIBUTIONS = ("pytorch", "mpi", "none")
LAUNCHERS = ("per-process", "torchrun")
TIERS = ("dedicated", "low_priority")
IDENTITIES = ("user_identity", "managed", "aml_token")
DATA_TYPES = ("uri_folder", "uri_file", "mlflow_model", "custom_model", "mltable")
INPUT_MODES = ("ro_mount", "download", "direct", "eval_mount", "eval_download")
OUTPUT_MODES = ("rw_mount", "upload", "direct")
RESERVED_INPUT_NAMES = ("path", "ld_library_path", "user", "logname", "home", "pwd", "shell")
NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ASSET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$")
EXPERIMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")
JOB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,254}$")
COMPUTE_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,31}$")  # AmlCompute: 2-32 chars, letter first


@dataclass(frozen=True)
class Distribution:
    type: str
    process_count_per_instance: int


@dataclass(frozen=True)
class Resources:
    instance_count: int
    shm_size: str | None = None
    instance_type: str | None = None  # serverless: the VM size of each node
    docker_args: str | None = None


@dataclass(frozen=True)
class DataInput:
    type: str
    path: str
    mode: str | None = None


@dataclass(frozen=True)
class Output:
    type: str
    mode: str | None = None


@dataclass(frozen=True)
class Launcher:
    type: str
    script: str
    processes_per_node: int
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class CommandJob:
    display_name: str | None
    experiment_name: str
    description: str | None
    tags: dict[str, str]
    code: Path  # absolute
    command: str
    environment: str
    compute: str | None  # None: serverless (no compute key: Azure picks a VM of resources.instance_type)
    resources: Resources
    distribution: Distribution | None
    inputs: dict[str, Any]  # literal values or DataInput
    outputs: dict[str, Output]
    environment_variables: dict[str, str]
    timeout: int | None
    name: str | None = None
    queue_settings: dict[str, str] = field(default_factory=dict)  # job_tier, priority
    identity: dict[str, str] = field(default_factory=dict)  # type (+ client_id for a user-assigned identity)
    services: dict[str, dict[str, str]] = field(default_factory=dict)  # Azure's services: name -> its keys

    @property
    def serverless(self) -> bool:
        return self.compute is None


@dataclass(frozen=True)
class Cluster:
    name: str
    size: str
    min_instances: int
    max_instances: int
    tier: str
    idle_time_before_scale_down: int
    description: str | None = None
    location: str | None = None


@dataclass(frozen=True)
class Environment:
    name: str
    version: str
    image: str
    python: str
    pip: tuple[str, ...]
    channels: tuple[str, ...]
    conda_dependencies: tuple[str, ...]
    description: str | None = None
    build_path: Path | None = None  # a Docker build context (absolute) in place of image + conda file
    dockerfile: str = "Dockerfile"  # relative to build_path


@dataclass(frozen=True)
class Schedule:
    """schedule.yml: Azure submits the rendered job (the retraining pipeline, say) on a timer."""
    name: str
    time_zone: str
    cron: str | None = None  # five fields
    recurrence: dict[str, Any] | None = None  # frequency, interval, schedule: {hours, minutes, week_days, ...}
    start_time: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class DataAsset:
    name: str
    version: str
    type: str
    path: str
    description: str | None = None


@dataclass(frozen=True)
class Pipeline:
    """train -> export_onnx -> register; the train step takes the job's inputs, resources,
    distribution and environment variables."""

    model_name: str
    min_accuracy: float | None
    export_samples: int
    continue_on_step_failure: bool
    data: DataInput
    data_input: str  # the components' input for it: data_dir (uri_folder) or data_file (uri_file)
    train_inputs: dict[str, Any]


@dataclass(frozen=True)
class Sweep:
    """Trials of the command job, each input named in the search space bound to
    ${{search_space.<name>}}."""

    sampling_algorithm: str
    search_space: dict[str, dict[str, Any]]
    primary_metric: str
    goal: str
    max_total_trials: int
    max_concurrent_trials: int
    timeout: int | None
    trial_timeout: int | None
    early_termination: dict[str, Any] | None


SEARCH_SPACE_KEYS = {
    "choice": ("values",), "randint": ("upper",), "uniform": ("min_value", "max_value"),
    "quniform": ("min_value", "max_value", "q"), "loguniform": ("min_value", "max_value"),
    "qloguniform": ("min_value", "max_value", "q"), "normal": ("mu", "sigma"), "qnormal": ("mu", "sigma", "q"),
    "lognormal": ("mu", "sigma"), "qlognormal": ("mu", "sigma", "q"),
}
EARLY_TERMINATION_KEYS = {
    "bandit": ("evaluation_interval", "delay_evaluation", "slack_factor", "slack_amount"),
    "median_stopping": ("evaluation_interval", "delay_evaluation"),
    "truncation_selection": ("evaluation_interval", "delay_evaluation", "truncation_percentage"),
}


@dataclass(frozen=True)
class Endpoint:
    """A managed online endpoint and one deployment serving the registered ONNX model."""

    name: str
    description: str | None
    auth_mode: str
    deployment: str
    model: str
    instance_type: str
    instance_count: int
    scoring_script: str
    onnx_variant: str
    image: str
    python: str
    pip: tuple[str, ...]
    request_settings: dict[str, int]
    liveness_probe: dict[str, int]
    readiness_probe: dict[str, int]
    code: Path  # the scoring script's folder (src/trainer)
    environment_ref: str | None = None  # an environment in a registry (registry.environment), else image + conda


@dataclass(frozen=True)
class BatchEndpoint:
    """A batch endpoint and one model deployment scoring files with the registered ONNX model on a
    cluster (docs: batch endpoints; runner/batch.py runs it here)."""

    name: str
    description: str | None
    deployment: str
    model: str
    compute: str  # the cluster's name
    instance_count: int
    max_concurrency_per_instance: int
    mini_batch_size: int
    output_file_name: str
    error_threshold: int
    max_retries: int
    timeout: int
    logging_level: str
    scoring_script: str
    onnx_variant: str
    image: str
    python: str
    pip: tuple[str, ...]
    code: Path  # the scoring script's folder (src/trainer)
    environment_ref: str | None = None  # an environment in a registry (registry.environment), else image + conda


ENDPOINT_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")
MODEL_REF_RE = re.compile(r"^azureml:[A-Za-z0-9][A-Za-z0-9_.-]*(:[A-Za-z0-9_.-]+|@latest)$")
REGISTRY_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,32}$")  # Azure: 3-33 characters
REGISTRY_MODEL_RE = re.compile(r"^azureml://registries/(?P<registry>[^/\s]+)/models/(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*)"
                               r"/versions/(?P<version>[A-Za-z0-9_.-]+)$")
ASSET_VERSION_RE = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9_.-]*):(?P<version>[A-Za-z0-9_.-]+)$")
REQUEST_SETTINGS = ("request_timeout_ms", "max_concurrent_requests_per_instance", "max_queue_wait_ms")
PROBE_SETTINGS = ("initial_delay", "period", "timeout", "success_threshold", "failure_threshold")


@dataclass(frozen=True)
class Components:
    prefix: str
    version: str


# The train component's literal inputs and their types (templates/components/train.yml.j2;
# tests/test_pipeline.py checks the two agree).
TRAIN_COMPONENT_INPUTS = {
    "task": "string", "arch": "string", "epochs": "integer", "batch_size": "integer", "learning_rate": "number",
    "momentum": "number", "step_size": "integer", "gamma": "number", "pretrained": "boolean",
    "freeze_backbone": "boolean", "precision": "string", "seed": "integer", "image_size": "integer",
}


@dataclass(frozen=True)
class Spec:
    job: CommandJob | None  # None for an endpoint definition
    launcher: Launcher | None
    vm: vmsizes.VmSize | None
    cluster: Cluster | None
    environment: Environment | None
    data: DataAsset | None
    components: Components | None = None
    pipeline: Pipeline | None = None
    sweep: Sweep | None = None
    endpoint: Endpoint | None = None
    endpoint_vm: vmsizes.VmSize | None = None
    batch: BatchEndpoint | None = None
    schedule: Schedule | None = None
    warnings: tuple[Problem, ...] = field(default=())

    @property
    def kind(self) -> str:
        """command | pipeline | sweep | endpoint | batch: what the definition renders."""
        if self.batch:
            return "batch"
        return "endpoint" if self.endpoint else "pipeline" if self.pipeline else "sweep" if self.sweep else "command"


# ------------------------------------------------------------------ collecting problems

class _Collector:
    def __init__(self, origins: dict[str, str]):
        self.problems: list[Problem] = []
        self.warnings: list[Problem] = []
        self.origins = origins

    def where(self, dotted: str) -> str:
        return self.origins.get(dotted, dotted)

    def error(self, dotted: str, message: str, hint: str | None = None, rule: rules.Rule | None = None) -> None:
        self.problems.append(Problem(self.where(dotted), message, hint, rule.id if rule else ""))

    def warn(self, dotted: str, message: str, hint: str | None = None, rule: rules.Rule | None = None) -> None:
        self.warnings.append(Problem(self.where(dotted), message, hint, rule.id if rule else ""))

    # typed getters: return a value or None after recording a problem
    def integer(self, value: Any, dotted: str, minimum: int | None = None, required: bool = True) -> int | None:
        if value is None:
            if required:
                self.error(dotted, "is required", f"set it, e.g. --set {dotted.removeprefix('job.')}=1")
            return None
        if isinstance(value, bool) or isinstance(value, float) and not value.is_integer():
            self.error(dotted, f"must be a whole number, got {value!r}", "write digits only, e.g. 2")
            return None
        if isinstance(value, str):
            if not re.fullmatch(r"[+-]?\d+", value.strip()):
                self.error(dotted, f"must be a whole number, got '{value}'", "write digits only, e.g. 2")
                return None
            value = int(value)
        if not isinstance(value, (int, float)):
            self.error(dotted, f"must be a whole number, got {type(value).__name__}", "write digits only, e.g. 2")
            return None
        value = int(value)
        if minimum is not None and value < minimum:
            self.error(dotted, f"must be at least {minimum}, got {value}", f"use {minimum} or more")
            return None
        return value

    def string(self, value: Any, dotted: str, required: bool = True, pattern: re.Pattern | None = None,
               rule: str = "") -> str | None:
        if value is None or value == "":
            if required:
                self.error(dotted, "is required", f"set {dotted} in a values file or with --set")
            return None
        if isinstance(value, (dict, list)):
            self.error(dotted, f"must be a single value, got a {'mapping' if isinstance(value, dict) else 'list'}",
                       "write one value on the same line as the key")
            return None
        if isinstance(value, bool):
            self.error(dotted, f"must be text, got {value!r}", "quote it in YAML")
            return None
        value = str(value)
        if pattern is not None and not pattern.fullmatch(value):
            self.error(dotted, f"'{value}' is not a valid name", f"use {rule}" if rule else "see the Azure naming rules")
            return None
        return value

    def boolean(self, value: Any, dotted: str, default: bool) -> bool:
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "yes", "1"):
            return True
        if str(value).lower() in ("false", "no", "0"):
            return False
        self.error(dotted, f"must be true or false, got {value!r}", "write true or false")
        return default

    def choice(self, value: Any, dotted: str, choices: tuple[str, ...]) -> str | None:
        if value is None:
            self.error(dotted, "is required", f"one of: {', '.join(choices)}")
            return None
        if str(value) not in choices:
            self.error(dotted, f"unknown value '{value}'", f"use one of: {', '.join(choices)}")
            return None
        return str(value)

    def mapping(self, value: Any, dotted: str) -> dict:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(dotted, f"must be a mapping, got {type(value).__name__}",
                       "indent its keys under it, as in templates/defaults.yaml")
            return {}
        return value


# ------------------------------------------------------------------ building the spec

def build(values: dict[str, Any], origins: dict[str, str] | None = None) -> Spec:
    """Validate ``values`` (already merged) and return the spec, or raise ``SpecError`` with every
    problem. A definition is one of: a command job, a pipeline, a sweep, or an online endpoint."""
    c = _Collector(origins or {})
    _secret_values(c, values)
    endpoint_v = c.mapping(values.get("endpoint"), "endpoint")
    batch_v = c.mapping(values.get("batch"), "batch")
    online = c.boolean(endpoint_v.get("enabled"), "endpoint.enabled", False)
    batch = c.boolean(batch_v.get("enabled"), "batch.enabled", False)
    if online and batch:
        c.error("batch.enabled", "one definition renders an online endpoint or a batch endpoint, not both",
                "keep each endpoint in its own folder under jobs/ (disable endpoint or batch here)")
        spec = None
    elif online:
        spec = _endpoint_spec(c, values, endpoint_v)
    elif batch:
        spec = _batch_spec(c, values, batch_v)
    else:
        spec = _job_spec(c, values)
    if c.problems:
        raise SpecError(c.problems)
    return spec


def _endpoint_spec(c: _Collector, values: dict, endpoint_v: dict) -> Spec | None:
    """An online endpoint definition: the endpoint, its deployment and the scoring environment
    (no job, cluster or training environment of its own)."""
    code = _scoring_code(c, values, "endpoint")
    endpoint, vm = _endpoint(c, endpoint_v, code, _registry(c, values))
    if endpoint is None:
        return None
    return Spec(job=None, launcher=None, vm=None, cluster=None, environment=None, data=None, endpoint=endpoint,
                endpoint_vm=vm, warnings=tuple(c.warnings))


def _scoring_code(c: _Collector, values: dict, section: str) -> Path | None:
    """An endpoint definition's code folder (the trainer's, where the scoring scripts live); it
    renders no job, so pipeline and sweep must be off."""
    if c.boolean(c.mapping(values.get("pipeline"), "pipeline").get("enabled"), "pipeline.enabled", False) or \
            c.boolean(c.mapping(values.get("sweep"), "sweep").get("enabled"), "sweep.enabled", False):
        c.error(f"{section}.enabled", "an endpoint definition renders no job", "disable pipeline and sweep here")
    job_v = c.mapping(values.get("job"), "job")
    script = c.string(c.mapping(values.get("launcher"), "launcher").get("script"), "launcher.script")
    return _code(c, job_v.get("code"), script)


def _batch_spec(c: _Collector, values: dict, batch_v: dict) -> Spec | None:
    """A batch endpoint definition: the endpoint, its model deployment, the scoring environment and
    the cluster the deployment runs on (compute.yml, from the cluster: values)."""
    code = _scoring_code(c, values, "batch")
    cluster_v = c.mapping(values.get("cluster"), "cluster")
    cluster, vm = _cluster_and_size(c, cluster_v)
    batch = _batch(c, batch_v, code, cluster_v, _registry(c, values))
    if batch is None or c.problems:
        return None
    return Spec(job=None, launcher=None, vm=vm, cluster=cluster, environment=None, data=None, batch=batch,
                warnings=tuple(c.warnings))


def _registry(c: _Collector, values: dict) -> tuple[str | None, str | None]:
    """registry.name and registry.environment (<name>:<version> in it): the registry an endpoint
    definition takes its model and, optionally, its environment from."""
    v = c.mapping(values.get("registry"), "registry")
    for key in v:
        if key not in ("name", "environment"):
            c.error(f"registry.{key}", f"unknown setting '{key}'", "registry takes name and environment")
    name = c.string(v.get("name"), "registry.name", required=False, pattern=REGISTRY_NAME_RE,
                    rule="3-33 letters, digits, '-' and '_', the registry's name in Azure")
    environment = c.string(v.get("environment"), "registry.environment", required=False, pattern=ASSET_VERSION_RE,
                           rule="<name>:<version> of an environment in the registry")
    if environment and not v.get("name"):
        c.error("registry.environment", "an environment in a registry needs the registry's name",
                "set registry.name (or --registry NAME)")
    return name, environment


def _registry_model(c: _Collector, model: str | None, registry: str | None, where: str = "endpoint.model") -> str | None:
    """The model a deployment serves: azureml:<name>:<version> or @latest in the workspace, or a
    version in a registry (azureml://registries/<r>/models/<name>/versions/<v>; with registry.name
    set, azureml:<name>:<version> is that registry's). A deployment from a registry pins its version."""
    if model is None:
        return None
    if model.startswith("azureml://registries/"):
        if not REGISTRY_MODEL_RE.match(model):
            c.error(where, f"'{model}' does not name a model version in a registry",
                    "azureml://registries/<registry>/models/<name>/versions/<version>: a deployment from a registry "
                    "serves the version it names (promote one with python generator.py submit --promote "
                    "NAME:VERSION --registry REGISTRY)", rules.REFERENCE)
            return None
        return model
    if not MODEL_REF_RE.match(model):
        c.error(where, f"'{model}' is not a valid name", "use azureml:<name>:<version> or "
                "azureml:<name>@latest (a registered model), or azureml://registries/<registry>/models/<name>/versions/<v>")
        return None
    if registry is None:
        return model
    name, _, version = model.removeprefix("azureml:").partition(":")
    if not version:
        name = name.split("@")[0]
        c.error(where, f"'{model}' asks registry {registry} for the latest version, but a deployment "
                                  "from a registry pins the version it serves",
                f"promote one: python generator.py submit --promote {name}:VERSION --registry {registry}, then "
                f"{where}: azureml:{name}:VERSION", rules.REFERENCE)
        return None
    return f"azureml://registries/{registry}/models/{name}/versions/{version}"


def _job_spec(c: _Collector, values: dict) -> Spec | None:
    """A command job, pipeline or sweep definition."""
    registry_v = c.mapping(values.get("registry"), "registry")
    if registry_v.get("name") or registry_v.get("environment"):
        c.error("registry.name", "only an endpoint definition takes its model and environment from a registry",
                "a job names a registry's environment with --environment azureml://registries/<registry>/"
                "environments/<name>/versions/<version>")
    job_v = c.mapping(values.get("job"), "job")
    launch_v = c.mapping(values.get("launcher"), "launcher")
    cluster_v = c.mapping(values.get("cluster"), "cluster")
    if job_v.get("type", "command") != "command":
        c.error("job.type", f"the generator renders command jobs, got '{job_v.get('type')}'",
                "pipelines and sweeps have their own templates")
    serverless = jobsettings.is_serverless(job_v.get("compute"))
    if serverless and c.origins.get("cluster.tier") == "--tier":
        c.error("cluster.tier", f"--tier {cluster_v.get('tier')} is a cluster's tier; a serverless job has none",
                "use --tier spot (preemptible, low-priority quota), basic, standard or premium")
    instance_type = _instance_type(c, job_v, cluster_v) if serverless else None
    cluster, vm = _cluster_and_size(c, cluster_v, instance_type)
    shape = _shape(c, job_v, launch_v, vm, cluster)
    code = _code(c, job_v.get("code"), shape.script)
    inputs = _inputs(c, c.mapping(job_v.get("inputs"), "job.inputs"))
    outputs = _outputs(c, c.mapping(job_v.get("outputs"), "job.outputs"))
    for name in set(inputs) & set(outputs):
        c.error(f"job.outputs.{name}", f"'{name}' is both an input and an output", "rename one of them")
    environment_ref, env_spec = _environment_ref(c, job_v, c.mapping(values.get("env"), "env"))
    compute = _compute(c, job_v, cluster, cluster_v)
    data = _data(c, c.mapping(values.get("data"), "data"))
    components = _components(c, c.mapping(values.get("components"), "components"))
    pipeline, sweep = _pipeline_or_sweep(c, values, inputs, outputs, shape.launcher, job_v.get("command"))
    rest = _job_details(c, job_v)
    resources = _resources(c, job_v, shape.nodes, vm, inputs, instance_type[0] if instance_type else None)
    rest.update(_queue_and_identity(c, job_v, compute, serverless))
    rest["services"] = _services(c, c.mapping(values.get("services"), "services"))
    schedule = _schedule(c, c.mapping(values.get("schedule"), "schedule"), rest.get("experiment_name"))
    command = _command(c, job_v.get("command"), shape, inputs, outputs)
    if c.problems:
        return None
    assert shape.nodes and command and code and environment_ref and (compute or serverless) and rest["experiment_name"]
    assert resources is not None
    job = CommandJob(code=code, command=command, environment=environment_ref, compute=compute,
                     resources=resources, distribution=shape.distribution, inputs=inputs, outputs=outputs, **rest)
    launcher = Launcher(shape.launcher, shape.script, shape.processes or 1, shape.args)
    return Spec(job=job, launcher=launcher, vm=vm, cluster=cluster, environment=env_spec, data=data,
                components=components, pipeline=pipeline, sweep=sweep, schedule=schedule, warnings=tuple(c.warnings))


def _cluster_and_size(c: _Collector, cluster_v: dict,
                      instance_type: tuple[str, str] | None = None) -> tuple[Cluster | None, vmsizes.VmSize | None]:
    """The cluster to render (none for a serverless job) and the VM size the job's nodes have: the
    cluster's, or a serverless job's ``instance_type`` (size, where it was given), checked alike."""
    cluster = None if instance_type else _cluster(c, cluster_v)
    vm = None
    size_name, where = instance_type or (str(cluster_v.get("size") or ""), "cluster.size")
    if instance_type or cluster is not None or cluster_v.get("size"):
        vm = vmsizes.lookup(size_name)
        if vm is None and size_name:
            close = vmsizes.suggest(size_name)
            c.warn(where, f"VM size '{size_name}' is not in the VM size table; GPU counts are not checked",
                   f"did you mean {close}?" if close else "add it to src/jobgen/data/vm_sizes.yaml", rules.VM_UNKNOWN)
        elif vm is not None and vm.retired:
            message, hint = vmsizes.retired_message(vm)
            c.error(where, message, hint, rules.VM_RETIRED)
    return cluster, vm


def _instance_type(c: _Collector, job_v: dict, cluster_v: dict) -> tuple[str, str]:
    """A serverless job's VM size: resources.instance_type, else the size --vm-size / cluster.size gives."""
    resources_v = job_v.get("resources") if isinstance(job_v.get("resources"), dict) else {}
    if resources_v.get("instance_type"):
        return str(resources_v["instance_type"]), "job.resources.instance_type"
    if cluster_v.get("size"):
        return str(cluster_v["size"]), "cluster.size"
    c.error("job.resources.instance_type", "a serverless job needs a VM size", "use --vm-size SIZE, e.g. "
            "Standard_NC24ads_A100_v4 (or --set resources.instance_type=SIZE)")
    return "", "job.resources.instance_type"


@dataclass(frozen=True)
class Topology:
    """How many processes run where: what resolve_topology decides from the values."""

    distribution: str | None  # pytorch | mpi | none (None: refused)
    launcher: str | None  # per-process | torchrun
    nodes: int | None
    processes: int | None  # processes per node (torchrun's workers included)
    process_count_per_instance: int  # what Azure starts per node
    problems: tuple[tuple[str, str, str, Rule | None, str], ...] = ()  # (values path, message, hint, rule, severity)

    @property
    def azure_distribution(self) -> Distribution | None:
        if self.distribution in ("pytorch", "mpi") and self.processes:
            return Distribution(self.distribution, self.process_count_per_instance)
        return None


def resolve_topology(distribution: str | None, launcher: str | None, nodes: int | None,
                     processes_per_node: int | None, process_count: int | None,
                     vm: vmsizes.VmSize | None) -> Topology:
    """distribution x launcher x processes per node x VM size -> what Azure starts on each node.
    Pure: the problems come back with the values path they belong to.

    - per-process (pytorch, mpi): Azure starts P copies per node; P is process_count_per_instance,
      else processes per node (--gpus), else the VM's GPU count (1 on CPU sizes);
    - torchrun: Azure starts one per node (process_count_per_instance 1) and torchrun its P workers;
      it needs pytorch on several nodes (Azure sets NODE_RANK and MASTER_ADDR only then);
    - none: one process on one node.
    Then the processes are checked against the VM's GPUs (more: error, fewer: warning)."""
    problems: list[tuple] = []
    default_p = (vm.whole_gpus or 1) if vm is not None and vm.gpus > 0 else 1
    processes, count = processes_per_node, 1
    if launcher == "per-process" and distribution in ("pytorch", "mpi"):
        if process_count is not None and processes_per_node is not None and process_count != processes_per_node:
            problems.append(("job.distribution.process_count_per_instance", f"is {process_count} but processes "
                             f"per node (--gpus) is {processes_per_node}", "give only one of them", None))
        processes = process_count or processes_per_node or default_p
        count = processes
    elif launcher == "torchrun":
        processes = processes_per_node or default_p
        if process_count not in (None, 1):
            problems.append(("job.distribution.process_count_per_instance", f"must be 1 with the torchrun launcher "
                             f"(torchrun starts {processes} processes per node itself), got {process_count}",
                             "drop it, or use --launcher per-process", None))
        if distribution == "mpi":
            problems.append(("launcher.type", "the torchrun launcher needs distribution pytorch (Azure sets "
                             "NODE_RANK and MASTER_ADDR only for pytorch)", "use --distribution pytorch", None))
        if distribution == "none" and nodes and nodes > 1:
            problems.append(("launcher.type", f"torchrun on {nodes} nodes needs distribution pytorch",
                             "use --distribution pytorch", None))
    elif distribution == "none":
        processes = processes_per_node or 1
        if processes > 1:
            problems.append(("launcher.processes_per_node", f"{processes} processes per node need a distribution; "
                             "with none Azure starts one process", "use --distribution pytorch, or --launcher "
                             "torchrun", None))
        if nodes and nodes > 1:
            problems.append(("job.resources.instance_count", f"{nodes} nodes without a distribution: Azure starts "
                             "the command on one node only (not documented for more)", "use --distribution pytorch "
                             "or mpi", None))
        processes = 1
    if vm is not None and processes and not vm.retired:
        found = vmsizes.capacity_problem(vm, processes)
        if found:
            level, message, hint = found
            problems.append(("launcher.processes_per_node", message, hint, rules.VM_CAPACITY, level))
    return Topology(distribution, launcher, nodes, processes, count, tuple(
        p if len(p) == 5 else p + ("error",) for p in problems))


@dataclass(frozen=True)
class _Shape:
    topology: Topology
    script: str | None
    args: tuple[str, ...]

    @property
    def nodes(self) -> int | None:
        return self.topology.nodes

    @property
    def processes(self) -> int | None:
        return self.topology.processes

    @property
    def launcher(self) -> str | None:
        return self.topology.launcher

    @property
    def distribution(self) -> Distribution | None:
        return self.topology.azure_distribution


def _shape(c: _Collector, job_v: dict, launch_v: dict, vm: vmsizes.VmSize | None, cluster: Cluster | None) -> _Shape:
    """The values that decide the topology, checked one by one, then resolve_topology."""
    dist_type, dist_v = _distribution_type(c, job_v.get("distribution"))
    launcher_type = c.choice(launch_v.get("type", "per-process"), "launcher.type", LAUNCHERS)
    script = c.string(launch_v.get("script"), "launcher.script")
    args_v = launch_v.get("args") or []
    if not isinstance(args_v, list):
        c.error("launcher.args", "must be a list of arguments", "e.g. args: ['--num-workers', '4']")
        args_v = []
    resources_v = c.mapping(job_v.get("resources"), "job.resources")
    for key in resources_v:
        if key not in ("instance_count", "shm_size", "instance_type", "docker_args", "properties", "locations",
                       "max_instance_count"):
            c.error(f"job.resources.{key}", f"unknown resources key '{key}'",
                    "command jobs take instance_count, instance_type, shm_size, docker_args, properties, locations")
    nodes = c.integer(resources_v.get("instance_count", 1), "job.resources.instance_count", minimum=1)
    p_node = launch_v.get("processes_per_node")
    per_node = None if p_node is None else c.integer(p_node, "launcher.processes_per_node", minimum=1)
    explicit_p = dist_v.get("process_count_per_instance")
    if explicit_p is not None:
        explicit_p = c.integer(explicit_p, "job.distribution.process_count_per_instance", minimum=1)
    topology = resolve_topology(dist_type, launcher_type, nodes, per_node, explicit_p, vm)
    for where, message, hint, rule, severity in topology.problems:
        if rule is rules.VM_CAPACITY and where not in c.origins:  # said where the processes were given
            where = "job.distribution.process_count_per_instance"
        (c.error if severity == "error" else c.warn)(where, message, hint, rule)
    if cluster is not None and nodes and nodes > cluster.max_instances:
        c.error("cluster.max_instances", f"the job needs {nodes} nodes but the cluster scales to {cluster.max_instances}",
                f"use --set cluster.max_instances={nodes}, or fewer nodes")
    return _Shape(topology, script, tuple(str(a) for a in args_v))


def _distribution_type(c: _Collector, dist_v: Any) -> tuple[str | None, dict]:
    if dist_v is None:
        return "none", {}
    if not isinstance(dist_v, dict):
        dist_type, dist_v = str(dist_v), {}
    else:
        dist_type = dist_v.get("type") or "none"
    if dist_type in ("tensorflow", "ray"):
        c.error("job.distribution.type", f"'{dist_type}' distribution is not generated by this tool",
                "use pytorch or mpi, or write the YAML by hand and check it with 'generator.py lint'")
        return None, dist_v
    for key in dist_v:
        if key not in ("type", "process_count_per_instance"):
            c.error(f"job.distribution.{key}", f"unknown distribution key '{key}'",
                    "a pytorch or mpi distribution has only type and process_count_per_instance")
    return c.choice(dist_type, "job.distribution.type", DISTRIBUTIONS), dist_v


def _environment_ref(c: _Collector, job_v: dict, env_v: dict) -> tuple[str | None, Environment | None]:
    """The job's environment: a reference given, or the one rendered from env:."""
    ref = job_v.get("environment")
    if ref is None:
        env_spec = _environment(c, env_v)
        return (f"azureml:{env_spec.name}:{env_spec.version}" if env_spec else None), env_spec
    ref = c.string(ref, "job.environment")
    if ref and not ref.startswith(("azureml:", "azureml://")):
        c.error("job.environment", f"'{ref}' is not an environment reference",
                "use azureml:<name>@latest, azureml:<name>:<version> or azureml://registries/<registry>/environments/<name>/...")
    return ref, None


def _compute(c: _Collector, job_v: dict, cluster: Cluster | None, cluster_v: dict) -> str | None:
    compute = job_v.get("compute")
    if jobsettings.is_serverless(compute):
        return None
    if compute is not None:
        return c.string(compute, "job.compute")
    name = cluster.name if cluster else cluster_v.get("name")
    if not name:
        c.error("job.compute", "is required", "use --compute NAME")
        return None
    return f"azureml:{name}"


def _pipeline_or_sweep(c: _Collector, values: dict, inputs: dict, outputs: dict, launcher: str | None,
                       command: Any) -> tuple[Pipeline | None, Sweep | None]:
    pipeline_v = c.mapping(values.get("pipeline"), "pipeline")
    pipeline = sweep = None
    if c.boolean(pipeline_v.get("enabled"), "pipeline.enabled", False):
        pipeline = _pipeline(c, pipeline_v, inputs, outputs, launcher, command)
    sweep_v = c.mapping(values.get("sweep"), "sweep")
    if c.boolean(sweep_v.get("enabled"), "sweep.enabled", False):
        if c.boolean(pipeline_v.get("enabled"), "pipeline.enabled", False):
            c.error("sweep.enabled", "a definition is a sweep or a pipeline, not both",
                    "set pipeline.enabled or sweep.enabled, not both")
        sweep = _sweep(c, sweep_v, inputs)
    return pipeline, sweep


def _job_details(c: _Collector, job_v: dict) -> dict[str, Any]:
    """The rest of a command job: names, tags, environment variables, timeout."""
    env_vars = {}
    for key, value in c.mapping(job_v.get("environment_variables"), "job.environment_variables").items():
        dotted = f"job.environment_variables.{key}"
        if not NAME_RE.fullmatch(str(key)):
            c.error(dotted, f"'{key}' is not a valid environment variable name", "use letters, digits and _")
            continue
        if isinstance(value, (dict, list)) or value is None:
            c.error(dotted, "must be a single value", "environment variables are text, e.g. NCCL_DEBUG: INFO")
            continue
        leak = secretscan.finding(key, value)
        if leak:
            c.error(dotted, leak, secretscan.HINT, rules.SECRET_NAME if "(by its name)" in leak else
                    rules.SECRET_VALUE)
            continue
        env_vars[str(key)] = "true" if value is True else "false" if value is False else str(value)
    limits_v = c.mapping(job_v.get("limits"), "job.limits")
    return {
        "environment_variables": env_vars,
        "tags": {str(k): str(v) for k, v in c.mapping(job_v.get("tags"), "job.tags").items() if v is not None},
        "timeout": c.integer(limits_v.get("timeout"), "job.limits.timeout", minimum=1, required=False),
        "experiment_name": c.string(job_v.get("experiment_name"), "job.experiment_name", pattern=EXPERIMENT_RE,
                                    rule="letters, digits, '-' and '_', starting with a letter or digit"),
        "name": c.string(job_v.get("name"), "job.name", required=False, pattern=JOB_NAME_RE,
                         rule="3-255 letters, digits, '-' and '_'"),
        "display_name": c.string(job_v.get("display_name"), "job.display_name", required=False),
        "description": c.string(job_v.get("description"), "job.description", required=False),
    }


def _resources(c: _Collector, job_v: dict, nodes: int | None, vm: vmsizes.VmSize | None, inputs: dict,
               instance_type: str | None) -> Resources | None:
    """instance_count, a serverless job's instance_type, shared memory (an image job's default:
    jobsettings.default_shm) and Docker arguments."""
    resources_v = c.mapping(job_v.get("resources"), "job.resources")
    shm = c.string(resources_v.get("shm_size"), "job.resources.shm_size", required=False)
    if shm is not None and jobsettings.shm_problem(shm, vm):
        c.error("job.resources.shm_size", *jobsettings.shm_problem(shm, vm), rules.SHM_SIZE)
    docker = resources_v.get("docker_args")
    if isinstance(docker, list):
        docker = " ".join(str(a) for a in docker)
    docker = c.string(docker, "job.resources.docker_args", required=False)
    if jobsettings.docker_shm_problem(docker, shm):
        c.warn("job.resources.docker_args", *jobsettings.docker_shm_problem(docker, shm), rules.DOCKER_SHM)
    if shm is None and inputs.get("task") == "images" and not jobsettings.docker_shm_problem(docker, "default"):
        shm = jobsettings.default_shm(vm)  # unless docker_args sizes shared memory itself (--shm-size, --ipc)
    if resources_v.get("instance_type") and not instance_type:
        c.warn("job.resources.instance_type", "instance_type has no effect on a cluster job: its nodes are the "
               "cluster's size", "set cluster.size (--vm-size), or run serverless (--serverless)")
    if nodes is None:
        return None
    return Resources(nodes, shm, (vm.name if vm else instance_type) if instance_type else None, docker or None)


def _queue_and_identity(c: _Collector, job_v: dict, compute: str | None, serverless: bool) -> dict[str, Any]:
    """queue_settings (a serverless job's tier and priority) and identity (whose credentials reach data)."""
    queue_v = c.mapping(job_v.get("queue_settings"), "job.queue_settings")
    queue: dict[str, str] = {}
    for key in queue_v:
        if key not in ("job_tier", "priority"):
            c.error(f"job.queue_settings.{key}", f"unknown queue_settings key '{key}'", "use job_tier and priority")
    tier = c.choice(_lower(queue_v.get("job_tier")), "job.queue_settings.job_tier", jobsettings.JOB_TIERS) \
        if queue_v.get("job_tier") is not None else None
    priority = c.choice(_lower(queue_v.get("priority")), "job.queue_settings.priority", jobsettings.PRIORITIES) \
        if queue_v.get("priority") is not None else None
    if jobsettings.tier_problem(tier, compute):
        c.warn("job.queue_settings.job_tier", *jobsettings.tier_problem(tier, compute), rules.QUEUE_NO_EFFECT)
    queue.update({k: v for k, v in (("job_tier", tier), ("priority", priority)) if v})
    identity_v = job_v.get("identity")
    identity: dict[str, str] = {}
    if identity_v is not None:
        identity_v = {"type": identity_v} if isinstance(identity_v, str) else c.mapping(identity_v, "job.identity")
        kind = c.choice(_lower(identity_v.get("type")), "job.identity.type", IDENTITIES)
        for key in identity_v:
            if key not in ("type", "client_id", "object_id"):  # azure-ai-ml cannot load msi_resource_id
                c.error(f"job.identity.{key}", f"unknown identity key '{key}'", "use type and client_id (or "
                        "object_id) of the user-assigned identity")
        if kind:
            identity["type"] = kind
        for key in ("client_id", "object_id"):  # a user-assigned identity, by either of its ids
            if kind == "managed" and identity_v.get(key):
                identity[key] = str(identity_v[key])
        if jobsettings.identity_problem(identity, serverless):
            c.error("job.identity", *jobsettings.identity_problem(identity, serverless), rules.IDENTITY)
    return {"queue_settings": queue, "identity": identity}


FREQUENCIES = ("minute", "hour", "day", "week", "month")
START_TIME_RE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})?")
RECURRENCE_KEYS = ("hours", "minutes", "week_days", "month_days")
WEEK_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def _schedule(c: _Collector, v: dict, experiment: str | None) -> Schedule | None:
    """schedule.yml from the schedule: section: a cron expression or a recurrence, in a time zone."""
    if not c.boolean(v.get("enabled"), "schedule.enabled", False):
        return None
    name = c.string(v.get("name") or (f"{experiment}-schedule" if experiment else None), "schedule.name",
                    pattern=ASSET_NAME_RE, rule="letters, digits, '.', '-', '_'")
    zone = c.string(v.get("time_zone", "UTC"), "schedule.time_zone")
    start = v.get("start_time")
    if hasattr(start, "isoformat"):  # YAML reads an unquoted 2027-01-04T03:00:00 as a timestamp
        start = start.isoformat()
    start = c.string(start, "schedule.start_time", required=False, pattern=START_TIME_RE,
                     rule="a timestamp, e.g. 2027-01-04T03:00:00 (the time zone is time_zone's)")
    cron, recurrence = v.get("cron"), v.get("recurrence")
    if (cron is None) == (recurrence is None):
        c.error("schedule.cron", "a schedule needs a cron expression or a recurrence, one of them",
                "e.g. --set schedule.cron='0 3 * * 1' (03:00 every Monday)", rules.SCHEDULE)
        return None
    if cron is not None:
        cron = c.string(cron, "schedule.cron")
        problem = jobsettings.cron_problem(cron) if cron else None
        if problem:
            c.error("schedule.cron", f"cron expression '{cron}' {problem}", "e.g. '0 3 * * 1' (03:00 every Monday)",
                    rules.SCHEDULE)
            return None
    else:
        recurrence = _recurrence(c, c.mapping(recurrence, "schedule.recurrence"))
        if recurrence is None:
            return None
    if None in (name, zone):
        return None
    return Schedule(name, zone, cron, recurrence, start, v.get("description"))


def _recurrence(c: _Collector, v: dict) -> dict[str, Any] | None:
    frequency = c.choice(_lower(v.get("frequency")), "schedule.recurrence.frequency", FREQUENCIES)
    interval = c.integer(v.get("interval", 1), "schedule.recurrence.interval", minimum=1)
    at = c.mapping(v.get("schedule"), "schedule.recurrence.schedule")
    when: dict[str, list] = {}
    for key, value in at.items():
        where = f"schedule.recurrence.schedule.{key}"
        if key not in RECURRENCE_KEYS:
            c.error(where, f"unknown key '{key}'", f"use {', '.join(RECURRENCE_KEYS)}", rules.SCHEDULE)
            continue
        items = value if isinstance(value, list) else [value]
        if key == "week_days":
            bad = [d for d in items if str(d).lower() not in WEEK_DAYS]
            if bad:
                c.error(where, f"unknown week day '{bad[0]}'", "monday ... sunday", rules.SCHEDULE)
                continue
            when[key] = [str(d).lower() for d in items]
            continue
        top = {"hours": 23, "minutes": 59, "month_days": 31}[key]
        numbers = [c.integer(x, where, minimum=0 if key != "month_days" else 1) for x in items]
        if None in numbers:
            continue
        if any(n > top for n in numbers):
            c.error(where, f"{max(numbers)} is above {top}", f"{key} run 0-{top}" if key != "month_days"
                    else "month days run 1-31", rules.SCHEDULE)
            continue
        when[key] = numbers
    if when and not {"hours", "minutes"} <= set(when):
        c.error("schedule.recurrence.schedule", "a recurrence's schedule needs both hours and minutes",
                "e.g. schedule: {hours: [3], minutes: [0]} (03:00)", rules.SCHEDULE)
        return None
    if frequency is None or interval is None or len(when) != len(at):
        return None
    return {"frequency": frequency, "interval": interval, **({"schedule": when} if when else {})}


SSH_KEY_TYPES = ("ssh-ed25519", "ssh-rsa", "ecdsa-sha2-", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-")


def _services(c: _Collector, v: dict) -> dict[str, dict[str, str]]:
    """The interactive services of the services: section, as Azure's job ``services:`` (a service per
    kind, named after it, on every node unless nodes: head)."""
    nodes = v.get("nodes", "all")
    if nodes not in ("all", "head", None):
        c.error("services.nodes", f"unknown value '{nodes}'", "all (every node) or head (node 0 only)")
    extra = {"nodes": "all"} if nodes == "all" else {}
    found: dict[str, dict[str, str]] = {}
    for kind in ("jupyter_lab", "vs_code"):
        if c.boolean(v.get(kind), f"services.{kind}", False):
            found[kind] = {"type": kind, **extra}
    log_dir = c.string(v.get("tensor_board"), "services.tensor_board", required=False)
    if log_dir:
        found["tensor_board"] = {"type": "tensor_board", "log_dir": log_dir, **extra}
    key_file = c.string(v.get("ssh_public_key_file"), "services.ssh_public_key_file", required=False)
    if key_file:
        key = _public_key(c, key_file)
        if key:
            found["ssh"] = {"type": "ssh", "ssh_public_keys": key, **extra}
    return found


def _public_key(c: _Collector, text: str) -> str | None:
    """The one line of an OpenSSH public key file; a private key is refused without echoing it."""
    path = Path(text).expanduser()
    path = path if path.is_absolute() else paths.root() / path
    try:
        content = path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError as exc:
        c.error("services.ssh_public_key_file", f"cannot read '{text}': {exc.strerror}",
                "give your public key file, e.g. ~/.ssh/id_ed25519.pub (ssh-keygen -t ed25519 makes one)")
        return None
    leak = secretscan.secret_value(content)  # the patterns lint's JG010 uses, a PEM private key among them
    if leak:
        what = "is a private key" if "private key" in leak else f"holds {leak}"
        c.error("services.ssh_public_key_file", f"'{text}' {what}; it must never leave your machine",
                f"give the public key beside it ({path.name}.pub)", rules.SECRET_VALUE)
        return None
    lines = [line for line in content.splitlines() if line.strip() and not line.startswith("#")]
    if len(lines) != 1 or not lines[0].startswith(SSH_KEY_TYPES):
        c.error("services.ssh_public_key_file", f"'{text}' is not one OpenSSH public key line",
                "give a .pub file: one line starting with ssh-ed25519, ssh-rsa or ecdsa-sha2-...")
        return None
    return lines[0].strip()


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def _command(c: _Collector, command_v: Any, shape: _Shape, inputs: dict, outputs: dict) -> str | None:
    if command_v is not None:
        return c.string(command_v, "job.command")
    if shape.launcher and shape.script and shape.processes:
        return build_command(shape.launcher, shape.topology.distribution, shape.script, shape.processes,
                             list(inputs), list(outputs), shape.args)
    return None


def build_command(launcher: str, distribution: str | None, script: str, processes: int,
                  inputs: list[str], outputs: list[str], args: tuple[str, ...]) -> str:
    """The job's command. Azure substitutes ``${{inputs.x}}`` itself; our own values are
    shell-quoted here and never executed. Nothing here depends on the node count, so that
    ``az ml job create --set resources.instance_count=N`` on the rendered file stays right."""
    if launcher == "torchrun":
        if distribution == "pytorch":
            # Azure runs one copy per node (process_count_per_instance 1) and sets NODE_RANK,
            # MASTER_ADDR, MASTER_PORT and WORLD_SIZE (= number of nodes, one process each).
            head = ["torchrun", "--nnodes", "$WORLD_SIZE", "--node_rank", "$NODE_RANK",
                    "--nproc_per_node", str(processes), "--master_addr", "$MASTER_ADDR",
                    "--master_port", "$MASTER_PORT", shlex.quote(script)]
        else:
            head = ["torchrun", "--standalone", "--nnodes", "1", "--nproc_per_node", str(processes),
                    shlex.quote(script)]
    else:
        head = ["python", shlex.quote(script)]
    parts = head
    for name in inputs:
        parts += [f"--{name.replace('_', '-')}", "${{inputs.%s}}" % name]
    for name in outputs:
        parts += [f"--{name.replace('_', '-')}", "${{outputs.%s}}" % name]
    parts += [shlex.quote(a) for a in args]
    return " ".join(parts)


def _cluster(c: _Collector, v: dict) -> Cluster | None:
    if not c.boolean(v.get("create"), "cluster.create", True):
        return None
    name = c.string(v.get("name"), "cluster.name", pattern=COMPUTE_NAME_RE,
                    rule="2-32 letters, digits and '-', starting with a letter")
    size = c.string(v.get("size"), "cluster.size")
    lo = c.integer(v.get("min_instances", 0), "cluster.min_instances", minimum=0)
    hi = c.integer(v.get("max_instances"), "cluster.max_instances", minimum=1)
    tier = c.choice(v.get("tier", "dedicated"), "cluster.tier", TIERS)
    idle = c.integer(v.get("idle_time_before_scale_down", 1800), "cluster.idle_time_before_scale_down", minimum=0)
    if lo is not None and hi is not None and lo > hi:
        c.error("cluster.min_instances", f"min_instances {lo} is above max_instances {hi}", "lower min_instances")
        return None
    if None in (name, size, lo, hi, tier, idle):
        return None
    return Cluster(name, size, lo, hi, tier, idle, v.get("description"), v.get("location"))


def _code(c: _Collector, value: Any, script: str | None) -> Path | None:
    text = c.string(value, "job.code")
    if text is None:
        return None
    if re.match(r"^(azureml:|https?:|git\+)", text):
        c.error("job.code", f"'{text}' is not a local folder", "the generator uploads a local folder; give its path")
        return None
    folder = _project_folder(c, text, "job.code", "the training code", "src/trainer",
                             "create it or fix the path (relative to the project root)")
    if folder is None:
        return None
    if script:
        target = (folder / script).resolve()
        if folder not in target.parents:
            c.error("launcher.script", f"'{script}' points outside the code folder", "give a path inside job.code")
        elif not target.is_file():
            c.error("launcher.script", f"'{script}' is not in the code folder {paths.display(folder)}",
                    "fix launcher.script or job.code")
    return folder


def _project_folder(c: _Collector, text: str, dotted: str, what: str, example: str, missing_hint: str,
                    rule: Rule | None = None) -> Path | None:
    """A folder that values name, relative to the project root: inside the project, and there."""
    root = paths.root().resolve()
    folder = (root / text).resolve()
    if folder != root and root not in folder.parents:
        c.error(dotted, f"'{text}' points outside the project ({folder})",
                f"keep {what} inside the repository, e.g. {example}")
        return None
    if not folder.is_dir():
        c.error(dotted, f"folder '{text}' does not exist", missing_hint, rule)
        return None
    return folder


def _secret_values(c: _Collector, values: dict) -> None:
    """Any value that looks like a secret by its format, wherever it is (names are judged where
    they mean something: environment variables and inputs)."""
    named = (("job", "environment_variables"), ("job", "inputs"))
    for path, kind in secretscan.scan(values):
        if tuple(path[:2]) in named and len(path) == 3:
            continue  # reported with its name, once
        c.error(".".join(map(str, path)), f"holds what looks like {kind}", secretscan.HINT, rules.SECRET_VALUE)


def _inputs(c: _Collector, raw: dict) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in raw.items():
        dotted = f"job.inputs.{name}"
        if value is None:
            continue  # null removes an input inherited from the defaults
        if not NAME_RE.fullmatch(str(name)):
            c.error(dotted, f"'{name}' is not a valid input name", "use letters, digits and _ (not starting with a digit)",
                    rules.BAD_NAME)
            continue
        if str(name).lower() in RESERVED_INPUT_NAMES:
            c.error(dotted, f"'{name}' is a reserved input name (it clashes with an environment variable Azure sets)",
                    f"rename it, e.g. {name}_value", rules.RESERVED_NAME)
            continue
        if isinstance(value, dict):
            if "default" in value or "optional" in value or value.get("type") in ("integer", "number", "boolean", "string"):
                c.error(dotted, "typed inputs with default/optional are component syntax; a job rejects them",
                        f"give the value itself, e.g. {name}: 3", rules.TYPED_JOB_INPUT)
                continue
            kind = c.choice(value.get("type"), f"{dotted}.type", DATA_TYPES)
            path = c.string(value.get("path"), f"{dotted}.path")
            mode = value.get("mode")
            if mode is not None:
                mode = c.choice(mode, f"{dotted}.mode", INPUT_MODES)
            for key in value:
                if key not in ("type", "path", "mode", "description", "datastore"):
                    c.error(f"{dotted}.{key}", f"unknown input key '{key}'", "a data input has type, path and mode")
            if kind and path:
                out[str(name)] = DataInput(kind, path, mode)
            continue
        if isinstance(value, list):
            c.error(dotted, "a literal input must be a single value, got a list", "join the values, e.g. 'a,b'")
            continue
        leak = secretscan.finding(name, value, "input")
        if leak:
            c.error(dotted, leak + "; Azure pastes inputs into the command line, which is logged", secretscan.HINT,
                    rules.SECRET_NAME if "(by its name)" in leak else rules.SECRET_VALUE)
            continue
        text = str(value)
        pasted = shell.problem(text, shell.Use(f"inputs.{name}", "unquoted", True))  # as build_command pastes it
        if pasted or not text:
            c.error(dotted, f"value {text!r} has characters the shell would interpret when Azure pastes it into "
                    "the command", "use letters, digits and . , : / = + @ % - _ only, or pass a uri_file input",
                    rules.SHELL_VALUE)
            continue
        out[str(name)] = value
    return out


def _outputs(c: _Collector, raw: dict) -> dict[str, Output]:
    out: dict[str, Output] = {}
    for name, value in raw.items():
        dotted = f"job.outputs.{name}"
        if value is None:
            continue
        if not NAME_RE.fullmatch(str(name)):
            c.error(dotted, f"'{name}' is not a valid output name", "use letters, digits and _")
            continue
        if str(name).lower() in RESERVED_INPUT_NAMES:
            c.error(dotted, f"'{name}' is a reserved name", f"rename it, e.g. {name}_dir", rules.RESERVED_NAME)
            continue
        if not isinstance(value, dict):
            c.error(dotted, "an output is a mapping with a type", "e.g. {type: uri_folder}")
            continue
        kind = c.choice(value.get("type", "uri_folder"), f"{dotted}.type", DATA_TYPES)
        mode = value.get("mode")
        if mode is not None:
            mode = c.choice(mode, f"{dotted}.mode", OUTPUT_MODES)
        for key in value:
            if key not in ("type", "mode", "description"):
                c.error(f"{dotted}.{key}", f"unknown output key '{key}'", "an output has type and mode")
        if kind:
            out[str(name)] = Output(kind, mode)
    return out


ONNXRUNTIME_BUILDS = ("onnxruntime", "onnxruntime-openvino", "onnxruntime-gpu")


def onnxruntime_builds(pip: list) -> list[str]:
    """The onnxruntime builds a pip (or conda) list names. They all install the one `onnxruntime`
    module: with two in one environment, whichever pip installs last overwrites the other's
    files, and the model runs on that one (lint's JG102 and the values' env.pip share this)."""
    names = {re.split(r"[\s<>=!~;\[]", str(req).strip(), maxsplit=1)[0].lower().replace("_", "-") for req in pip}
    return [b for b in ONNXRUNTIME_BUILDS if b in names]


def _one_onnxruntime(c: _Collector, pip: list, where: str) -> None:
    builds = onnxruntime_builds(pip)
    if len(builds) > 1:
        c.error(where, f"lists {' and '.join(builds)}: both install the one onnxruntime module and overwrite "
                       "each other", "keep one (onnxruntime-openvino runs int8 models fastest on Intel/AMD CPUs)",
                rules.ONNXRUNTIME_BUILDS)


def _environment(c: _Collector, v: dict) -> Environment | None:
    name = c.string(v.get("name"), "env.name", pattern=ASSET_NAME_RE, rule="letters, digits, '.', '-', '_'")
    version = c.string(v.get("version"), "env.version", pattern=re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*"),
                       rule="e.g. 1 or 2024.06.1")
    build = _build_context(c, c.mapping(v.get("build"), "env.build"))
    if build is not None:
        if None in (name, version) or build is False:
            return None
        return Environment(name, version, "", "", (), (), (), v.get("description"), *build)
    image = c.string(v.get("image"), "env.image")
    python = c.string(v.get("python"), "env.python", pattern=re.compile(r"3\.\d+(\.\d+)?"), rule="e.g. 3.11")
    lists = {}
    for key in ("pip", "channels", "conda_dependencies"):
        value = v.get(key) or []
        if not isinstance(value, list) or any(isinstance(x, (dict, list)) for x in value):
            c.error(f"env.{key}", "must be a list of strings", f"e.g. {key}: [a, b]")
            value = []
        lists[key] = tuple(str(x) for x in value)
    _one_onnxruntime(c, list(lists["pip"]), "env.pip")
    if None in (name, version, image, python):
        return None
    return Environment(name, version, image, python, lists["pip"], lists["channels"],
                       lists["conda_dependencies"], v.get("description"))


def _build_context(c: _Collector, v: dict) -> tuple[Path, str] | None | bool:
    """env.build: a Docker build context folder in the project with its Dockerfile (Azure uploads the
    folder and builds the image from it); None when not given, False when it is wrong."""
    if v.get("path") is None:
        return None
    text = c.string(v.get("path"), "env.build.path")
    dockerfile = c.string(v.get("dockerfile_path", "Dockerfile"), "env.build.dockerfile_path")
    if text is None or dockerfile is None:
        return False
    folder = _project_folder(c, text, "env.build.path", "the build context", "docker/",
                             "create it with a Dockerfile, or fix the path (relative to the project root)",
                             rules.BUILD_CONTEXT)
    if folder is None:
        return False
    if not (folder / dockerfile).is_file():
        c.error("env.build.dockerfile_path", f"'{dockerfile}' is not in the build context {paths.display(folder)}",
                "add the Dockerfile, or set env.build.dockerfile_path", rules.BUILD_CONTEXT)
        return False
    return folder, dockerfile


def _data(c: _Collector, v: dict) -> DataAsset | None:
    if not v or not c.boolean(v.get("create"), "data.create", True):
        return None
    name = c.string(v.get("name"), "data.name", pattern=ASSET_NAME_RE, rule="letters, digits, '.', '-', '_'")
    version = c.string(v.get("version"), "data.version")
    kind = c.choice(v.get("type", "uri_folder"), "data.type", ("uri_folder", "uri_file"))
    path = c.string(v.get("path"), "data.path")
    if None in (name, version, kind, path):
        return None
    return DataAsset(name, version, kind, path, v.get("description"))


def _components(c: _Collector, v: dict) -> Components | None:
    prefix = c.string(v.get("prefix", "jobgen"), "components.prefix", pattern=re.compile(r"[a-z][a-z0-9_]{0,40}"),
                      rule="lowercase letters, digits and _ (component names)")
    version = c.string(v.get("version", "1"), "components.version", pattern=re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*"),
                       rule="e.g. 1 or 2024.06.1")
    if prefix is None or version is None:
        return None
    return Components(prefix, version)


def _coerce(value: Any, kind: str) -> Any:
    """A literal input as the component's type (a --set value arrives as text)."""
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise ValueError("true or false")
    if kind == "integer":
        if isinstance(value, bool) or not re.fullmatch(r"[+-]?\d+", str(value)):
            raise ValueError("a whole number")
        return int(value)
    if kind == "number":
        if isinstance(value, bool):
            raise ValueError("a number")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError("a number") from None
        return value if isinstance(value, (int, float)) else number
    return str(value)


def _pipeline(c: _Collector, v: dict, inputs: dict[str, Any], outputs: dict, launcher: str | None,
              command: Any) -> Pipeline | None:
    if launcher == "torchrun":
        c.error("launcher.type", "the pipeline's train component starts one process per GPU itself "
                "(distribution on the node); it has no torchrun launch", "use --launcher per-process")
    if command is not None:
        c.error("job.command", "a pipeline runs the components' own commands", "drop job.command")
    data = inputs.get("data")
    if not isinstance(data, DataInput) or data.type not in ("uri_folder", "uri_file"):
        c.error("job.inputs.data", "the pipeline needs a data input of type uri_folder (images) or uri_file (CSV)",
                "e.g. inputs: {data: {type: uri_file, path: azureml:penguins@latest}}")
        return None
    train_inputs = {}
    for name, value in inputs.items():
        if name == "data":
            continue
        kind = TRAIN_COMPONENT_INPUTS.get(name)
        if kind is None:
            c.error(f"job.inputs.{name}", f"the train component has no input '{name}'",
                    f"its inputs: data, {', '.join(TRAIN_COMPONENT_INPUTS)}")
            continue
        try:
            train_inputs[name] = _coerce(value, kind)
        except ValueError as exc:
            c.error(f"job.inputs.{name}", f"must be {exc} (the component input is {kind}), got {value!r}")
    for name in outputs:
        if name not in ("model_dir", "checkpoint_dir"):
            c.error(f"job.outputs.{name}", f"the train component has no output '{name}'", "its outputs: model_dir, "
                    "checkpoint_dir")
    model_name = c.string(v.get("model_name"), "pipeline.model_name", pattern=ASSET_NAME_RE,
                          rule="letters, digits, '.', '-', '_'")
    min_accuracy = v.get("min_accuracy")
    if min_accuracy is not None:
        try:
            min_accuracy = float(min_accuracy)
            if not 0 <= min_accuracy <= 1:
                raise ValueError
        except (TypeError, ValueError):
            c.error("pipeline.min_accuracy", f"must be a number from 0 to 1, got {v.get('min_accuracy')!r}")
            min_accuracy = None
    samples = c.integer(v.get("export_samples", 64), "pipeline.export_samples", minimum=1)
    keep_going = c.boolean(v.get("continue_on_step_failure"), "pipeline.continue_on_step_failure", False)
    if model_name is None or samples is None:
        return None
    data_input = "data_dir" if data.type == "uri_folder" else "data_file"
    return Pipeline(model_name, min_accuracy, samples, keep_going, data, data_input, train_inputs)


def _sweep(c: _Collector, v: dict, inputs: dict[str, Any]) -> Sweep | None:
    algorithm = c.choice(v.get("sampling_algorithm", "random"), "sweep.sampling_algorithm",
                         ("random", "grid", "bayesian"))
    space_v = c.mapping(v.get("search_space"), "sweep.search_space")
    space: dict[str, dict[str, Any]] = {}
    if not space_v:
        c.error("sweep.search_space", "is empty", "e.g. learning_rate: {type: uniform, min_value: 0.0005, "
                "max_value: 0.005}")
    for name, spec in space_v.items():
        dotted = f"sweep.search_space.{name}"
        if spec is None:
            continue  # null removes an inherited parameter
        if name not in inputs:
            c.error(dotted, f"'{name}' is not an input of the job, so a trial could not receive it",
                    f"job inputs: {', '.join(inputs)}")
            continue
        if isinstance(inputs[name], DataInput):
            c.error(dotted, f"'{name}' is a data input; only literal inputs can be swept")
            continue
        if not isinstance(spec, dict) or spec.get("type") not in SEARCH_SPACE_KEYS:
            c.error(dotted, "needs a type", f"one of {', '.join(SEARCH_SPACE_KEYS)}")
            continue
        kind = spec["type"]
        needed = SEARCH_SPACE_KEYS[kind]
        missing = [k for k in needed if k not in spec]
        extra = [k for k in spec if k != "type" and k not in needed]
        if missing or extra:
            c.error(dotted, f"{kind} takes {', '.join(needed)}" + (f"; missing {', '.join(missing)}" if missing else "")
                    + (f"; unknown {', '.join(extra)}" if extra else ""))
            continue
        if kind == "choice":
            if not isinstance(spec["values"], list) or not spec["values"]:
                c.error(f"{dotted}.values", "must be a non-empty list")
                continue
        else:
            try:
                numbers = {k: float(spec[k]) for k in needed}
            except (TypeError, ValueError):
                c.error(dotted, f"{kind} bounds must be numbers")
                continue
            if "min_value" in numbers and numbers["min_value"] >= numbers["max_value"]:
                c.error(dotted, f"min_value {spec['min_value']} is not below max_value {spec['max_value']}")
                continue
        if algorithm == "grid" and kind != "choice":
            c.error(dotted, f"grid sampling needs choice parameters; '{name}' is {kind}",
                    "use type: choice, or sampling_algorithm: random")
            continue
        space[str(name)] = dict(spec)
    metric = c.string(v.get("primary_metric"), "sweep.primary_metric")
    goal = c.choice(str(v.get("goal", "maximize")).lower(), "sweep.goal", ("maximize", "minimize"))
    total = c.integer(v.get("max_total_trials"), "sweep.max_total_trials", minimum=1)
    concurrent = c.integer(v.get("max_concurrent_trials", total), "sweep.max_concurrent_trials", minimum=1)
    if total and concurrent and concurrent > total:
        c.warn("sweep.max_concurrent_trials", f"{concurrent} concurrent trials but only {total} in all",
               "lower max_concurrent_trials", rules.SWEEP_LIMITS)
    timeout = c.integer(v.get("timeout"), "sweep.timeout", minimum=1, required=False)
    trial_timeout = c.integer(v.get("trial_timeout"), "sweep.trial_timeout", minimum=1, required=False)
    early = v.get("early_termination")
    if early is not None:
        if not isinstance(early, dict) or early.get("type") not in EARLY_TERMINATION_KEYS:
            c.error("sweep.early_termination.type", f"unknown policy {early.get('type') if isinstance(early, dict) else early!r}",
                    f"one of {', '.join(EARLY_TERMINATION_KEYS)}, or null for none")
            early = None
        else:
            allowed = EARLY_TERMINATION_KEYS[early["type"]]
            for key in early:
                if key != "type" and key not in allowed:
                    c.error(f"sweep.early_termination.{key}", f"{early['type']} has no '{key}'",
                            f"it takes {', '.join(allowed)}")
            if early["type"] == "bandit" and ("slack_factor" in early) == ("slack_amount" in early):
                c.error("sweep.early_termination", "bandit needs exactly one of slack_factor and slack_amount")
            if algorithm == "bayesian":
                c.error("sweep.early_termination", "bayesian sampling does not support early termination",
                        "set early_termination: null, or use random sampling")
            early = {k: val for k, val in early.items() if val is not None}
    if None in (algorithm, metric, goal, total, concurrent) or not space:
        return None
    return Sweep(algorithm, space, metric, goal, total, concurrent, timeout, trial_timeout, early)


def _scoring_parts(c: _Collector, v: dict, section: str, code: Path | None, script: str,
                   registry: tuple[str | None, str | None]) -> dict | None:
    """What an online and a batch deployment share: the deployment's name, the registered model (in
    the workspace or the registry), the scoring script in the code folder, the ONNX variant and the
    scoring environment (image + pip, or registry.environment)."""
    deployment = c.string(v.get("deployment"), f"{section}.deployment", pattern=ENDPOINT_NAME_RE,
                          rule="3-32 letters, digits and '-', starting with a letter")
    model = _registry_model(c, c.string(v.get("model"), f"{section}.model"), registry[0], f"{section}.model")
    environment_ref = (f"azureml://registries/{registry[0]}/environments/{registry[1].replace(':', '/versions/')}"
                       if registry[0] and registry[1] else None)
    scoring = c.string(v.get("scoring_script", script), f"{section}.scoring_script")
    if scoring and code is not None and not (code / scoring).is_file():
        c.error(f"{section}.scoring_script", f"'{scoring}' is not in the code folder {paths.display(code)}",
                f"the scoring scripts live in src/trainer ({script})")
    variant = c.choice(v.get("onnx_variant", "auto"), f"{section}.onnx_variant", ("auto", "fp32", "int8"))
    image = c.string(v.get("image"), f"{section}.image")
    python = c.string(v.get("python", "3.11"), f"{section}.python", pattern=re.compile(r"3\.\d+(\.\d+)?"),
                      rule="e.g. 3.11")
    pip = v.get("pip") or []
    if not isinstance(pip, list):
        c.error(f"{section}.pip", "must be a list of requirements", "e.g. pip: [onnxruntime-openvino, pillow]")
        pip = []
    _one_onnxruntime(c, pip, f"{section}.pip")
    parts = dict(deployment=deployment, model=model, scoring_script=scoring, onnx_variant=variant, image=image,
                 python=python, pip=tuple(str(p) for p in pip), code=code)
    return None if None in parts.values() else dict(parts, environment_ref=environment_ref)


BATCH_SETTINGS = ("enabled", "name", "description", "deployment", "model", "instance_count",
                  "max_concurrency_per_instance", "mini_batch_size", "output_file_name", "error_threshold",
                  "retry_settings", "logging_level", "scoring_script", "onnx_variant", "image", "python", "pip")
LOGGING_LEVELS = ("debug", "info", "warning")  # what the batch deployment reference allows


def _batch(c: _Collector, v: dict, code: Path | None, cluster_v: dict,
           registry: tuple[str | None, str | None] = (None, None)) -> BatchEndpoint | None:
    for key in v:
        if key not in BATCH_SETTINGS:
            c.error(f"batch.{key}", f"unknown setting '{key}'", f"batch takes {', '.join(BATCH_SETTINGS[1:])}")
    name = c.string(v.get("name"), "batch.name", pattern=ENDPOINT_NAME_RE,
                    rule="3-32 letters, digits and '-', starting with a letter")
    parts = _scoring_parts(c, v, "batch", code, "batch_score.py", registry)
    compute = c.string(cluster_v.get("name"), "cluster.name", pattern=COMPUTE_NAME_RE,
                       rule="2-32 letters, digits and '-', starting with a letter")
    count = c.integer(v.get("instance_count", 1), "batch.instance_count", minimum=1)
    most = cluster_v.get("max_instances")
    if count and isinstance(most, int) and not isinstance(most, bool) and count > most:
        c.error("batch.instance_count", f"{count} nodes on a cluster of at most {most} (cluster.max_instances): the "
                "scoring job would wait for nodes that never come", f"lower it or raise cluster.max_instances to {count}")
    concurrency = c.integer(v.get("max_concurrency_per_instance", 1), "batch.max_concurrency_per_instance", minimum=1)
    mini = c.integer(v.get("mini_batch_size", 10), "batch.mini_batch_size", minimum=1)
    output = c.string(v.get("output_file_name", "predictions.csv"), "batch.output_file_name",
                      pattern=re.compile(r"[A-Za-z0-9_.-]+"), rule="a file name, e.g. predictions.csv")
    threshold = c.integer(v.get("error_threshold", -1), "batch.error_threshold", minimum=-1)
    retry = c.mapping(v.get("retry_settings"), "batch.retry_settings")
    for key in retry:
        if key not in ("max_retries", "timeout"):
            c.error(f"batch.retry_settings.{key}", f"unknown setting '{key}'", "retry_settings takes max_retries, "
                    "timeout")
    retries = c.integer(retry.get("max_retries", 3), "batch.retry_settings.max_retries", minimum=0)
    timeout = c.integer(retry.get("timeout", 30), "batch.retry_settings.timeout", minimum=1)
    level = c.choice(str(v.get("logging_level", "info")).lower(), "batch.logging_level", LOGGING_LEVELS)
    if None in (name, parts, compute, count, concurrency, mini, output, threshold, retries, timeout, level):
        return None
    return BatchEndpoint(name=name, description=v.get("description"), compute=compute, instance_count=count,
                         max_concurrency_per_instance=concurrency, mini_batch_size=mini, output_file_name=output,
                         error_threshold=threshold, max_retries=retries, timeout=timeout, logging_level=level, **parts)


def _endpoint(c: _Collector, v: dict, code: Path | None, registry: tuple[str | None, str | None] = (None, None)):
    name = c.string(v.get("name"), "endpoint.name", pattern=ENDPOINT_NAME_RE,
                    rule="3-32 letters, digits and '-', starting with a letter")
    auth = c.choice(v.get("auth_mode", "key"), "endpoint.auth_mode", ("key", "aml_token"))
    parts = _scoring_parts(c, v, "endpoint", code, "score.py", registry)
    size_name = c.string(v.get("instance_type"), "endpoint.instance_type")
    vm = vmsizes.lookup(size_name)
    if size_name and vm is None:
        close = vmsizes.suggest(size_name)
        c.warn("endpoint.instance_type", f"instance type '{size_name}' is not in the VM size table",
               f"did you mean {close}?" if close else "check the managed online endpoint SKU list", rules.VM_UNKNOWN)
    elif vm is not None and vm.retired:
        message, hint = vmsizes.retired_message(vm)
        c.error("endpoint.instance_type", message, hint, rules.VM_RETIRED)
    count = c.integer(v.get("instance_count", 1), "endpoint.instance_count", minimum=1)
    settings = {}
    for section, keys in (("request_settings", REQUEST_SETTINGS), ("liveness_probe", PROBE_SETTINGS),
                          ("readiness_probe", PROBE_SETTINGS)):
        given = c.mapping(v.get(section), f"endpoint.{section}")
        values_ = {}
        for key, value in given.items():
            if key not in keys:
                c.error(f"endpoint.{section}.{key}", f"unknown setting '{key}'", f"{section} takes {', '.join(keys)}")
                continue
            number = c.integer(value, f"endpoint.{section}.{key}", minimum=1 if key != "initial_delay" else 0)
            if number is not None:
                values_[key] = number
        settings[section] = values_
    if None in (name, auth, parts, size_name, count):
        return None, vm
    return Endpoint(name=name, description=v.get("description"), auth_mode=auth, instance_type=size_name,
                    instance_count=count, request_settings=settings["request_settings"],
                    liveness_probe=settings["liveness_probe"], readiness_probe=settings["readiness_probe"],
                    **parts), vm
