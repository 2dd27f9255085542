"""Typed documents: the parts of Azure ML job and component YAML that the runner (and the Azure
path) act on, read once from the parsed YAML. azure-ai-ml stays the authority on syntax; this
holds what our code needs, with the file's folder that relative paths resolve against.

    Command     a command job, a command component, an inline pipeline step, a sweep's trial
    Pipeline    a pipeline job or a pipeline component: inputs, outputs, settings, steps
    Step        one node of a pipeline: its kind, what it uses (a file, a registered component,
                an inline command), its input bindings and output bindings, its overrides
    Sweep       a sweep job: the trial, search space, objective, sampling, limits, termination
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import kinds

DATA_TYPES = ("uri_folder", "uri_file", "mlflow_model", "custom_model", "mltable", "triton_model", "path")
LITERAL_TYPES = ("string", "integer", "number", "boolean")
OUTPUT_DEFAULT = "uri_folder"
# What a step may set over its component's (Azure's node-level overrides).
STEP_OVERRIDES = ("resources", "distribution", "environment_variables", "limits", "compute", "queue_settings",
                  "services", "identity")
# Step kinds and what it takes to run them here.
RUNNABLE_STEPS = ("command", "pipeline")
AZURE_ONLY_STEPS = {
    "parallel": "a parallel step runs its entry script over mini-batches on Azure's parallel runtime",
    "spark": "a spark step runs on Azure's Spark (serverless or an attached pool)",
    "automl": "an automl step is AutoML's own training service",
    "import": "a data import step copies from an external database or storage on Azure",
    "data_transfer": "a data transfer step copies data between Azure stores",
    "sweep": "a sweep step inside a pipeline is tuned by Azure's sweep service",
}


@dataclass
class IO:
    """One input or output: declared (a component's, a pipeline's) or given (a job's value)."""

    name: str
    type: str | None = None
    value: Any = None  # a literal, or a data path; a component's default
    mode: str | None = None
    optional: bool = False
    declared: bool = False  # a declaration (type/default/optional) rather than a value

    @property
    def is_data(self) -> bool:
        return self.type in DATA_TYPES or (self.type is None and isinstance(self.value, dict))

    @property
    def is_file(self) -> bool:
        return self.type == "uri_file"


def read_io(name: str, raw: Any, *, output: bool = False) -> IO:
    """``x: 3``, ``x: {type: uri_folder, path: ./data}``, ``x: {type: integer, default: 3}``, ``x:``."""
    if isinstance(raw, dict):
        kind = raw.get("type")
        value = raw.get("path", raw.get("default", raw.get("value")))
        declared = "default" in raw or "optional" in raw or (kind in LITERAL_TYPES and "value" not in raw)
        return IO(name, str(kind) if kind else (OUTPUT_DEFAULT if output else None), value, raw.get("mode"),
                  bool(raw.get("optional")), declared)
    if output:
        return IO(name, OUTPUT_DEFAULT, raw)  # `out:` or `out: ${{parent.outputs.x}}`
    return IO(name, None, raw)


def read_ios(raw: Any, *, output: bool = False) -> dict[str, IO]:
    if not isinstance(raw, dict):
        return {}
    return {str(k): read_io(str(k), v, output=output) for k, v in raw.items()}


@dataclass
class Command:
    command: str | None
    code: Any
    environment: Any
    inputs: dict[str, IO]
    outputs: dict[str, IO]
    distribution: dict | None
    resources: dict
    environment_variables: dict
    limits: dict
    services: dict | None
    base: Path  # the folder relative paths resolve against

    def overridden(self, step: "Step") -> "Command":
        """This command with a pipeline step's node-level settings over its own."""
        values = dict(self.__dict__)
        for key in ("resources", "distribution", "environment_variables", "limits", "services"):
            if step.overrides.get(key) is not None:
                values[key] = step.overrides[key]
        return Command(**values)


def read_command(data: dict, base: Path) -> Command:
    return Command(
        command=data.get("command") if isinstance(data.get("command"), str) else None,
        code=data.get("code"), environment=data.get("environment"),
        inputs=read_ios(data.get("inputs")), outputs=read_ios(data.get("outputs"), output=True),
        distribution=data.get("distribution") if isinstance(data.get("distribution"), dict) else None,
        resources=data.get("resources") if isinstance(data.get("resources"), dict) else {},
        environment_variables=data.get("environment_variables") if isinstance(data.get("environment_variables"),
                                                                               dict) else {},
        limits=data.get("limits") if isinstance(data.get("limits"), dict) else {},
        services=data.get("services") if isinstance(data.get("services"), dict) else None,
        base=base)


@dataclass
class Step:
    name: str
    kind: str  # command | pipeline | parallel | spark | automl | import | data_transfer | sweep | ...
    component: Any  # a local file, a registered reference, an inline mapping, or None (an inline command)
    inputs: dict[str, Any]  # bindings as written
    outputs: dict[str, Any]
    overrides: dict[str, Any]
    inline: Command | None  # the step's own command (inline steps)


def read_step(name: str, node: dict, base: Path) -> Step:
    component = node.get("component")
    inline = None
    kind = str(node.get("type") or "")
    if component is None and "command" in node:
        inline = read_command(node, base)
        kind = kind or "command"
    if isinstance(component, dict) and not kind:
        kind = str(component.get("type") or "command")
    return Step(name=name, kind=kind or "command", component=component,
                inputs=node.get("inputs") if isinstance(node.get("inputs"), dict) else {},
                outputs=node.get("outputs") if isinstance(node.get("outputs"), dict) else {},
                overrides={k: node[k] for k in STEP_OVERRIDES if k in node}, inline=inline)


@dataclass
class Pipeline:
    inputs: dict[str, IO]
    outputs: dict[str, IO]
    steps: dict[str, Step]
    settings: dict
    base: Path
    compute: Any = None


def read_pipeline(data: dict, base: Path) -> Pipeline:
    jobs = data.get("jobs") if isinstance(data.get("jobs"), dict) else {}
    settings = data.get("settings") if isinstance(data.get("settings"), dict) else {}
    return Pipeline(inputs=read_ios(data.get("inputs")), outputs=read_ios(data.get("outputs"), output=True),
                    steps={str(k): read_step(str(k), v, base) for k, v in jobs.items() if isinstance(v, dict)},
                    settings=settings, base=base, compute=settings.get("default_compute") or data.get("compute"))


@dataclass
class Sweep:
    trial: Command
    inputs: dict[str, Any]  # as written: literals, data, ${{search_space.x}}
    outputs: dict[str, IO]
    search_space: dict
    objective: dict
    sampling: Any
    limits: dict
    early_termination: dict | None
    resources: dict = field(default_factory=dict)


def read_sweep(data: dict, base: Path) -> Sweep:
    trial = data.get("trial") if isinstance(data.get("trial"), dict) else {}
    return Sweep(trial=read_command(trial, base),
                 inputs=data.get("inputs") if isinstance(data.get("inputs"), dict) else {},
                 outputs=read_ios(data.get("outputs"), output=True),
                 search_space=data.get("search_space") if isinstance(data.get("search_space"), dict) else {},
                 objective=data.get("objective") if isinstance(data.get("objective"), dict) else {},
                 sampling=data.get("sampling_algorithm"),
                 limits=data.get("limits") if isinstance(data.get("limits"), dict) else {},
                 early_termination=data.get("early_termination") if isinstance(data.get("early_termination"), dict)
                 else None,
                 resources=data.get("resources") if isinstance(data.get("resources"), dict) else {})


@dataclass
class Job:
    """A job file as the runner and submit read it."""

    kind: str  # command_job | pipeline_job | sweep_job | ... (azml.kinds)
    name: str
    experiment_name: str | None
    compute: Any
    body: Command | Pipeline | Sweep | None


def read_job(data: dict, base: Path, fallback_name: str, text: str = "") -> Job:
    kind = kinds.detect(data, text) or ""
    body: Command | Pipeline | Sweep | None = None
    if kind == "command_job":
        body = read_command(data, base)
    elif kind in ("pipeline_job", "pipeline_component"):
        body = read_pipeline(data, base)
    elif kind == "sweep_job":
        body = read_sweep(data, base)
    name = str(data.get("name") or data.get("display_name") or fallback_name)
    return Job(kind, name, data.get("experiment_name"), data.get("compute"), body)


def compute_names(data: dict) -> list[str]:
    """The clusters a job file runs on (its own compute, a pipeline's default and its steps'),
    without serverless and local."""
    settings = data.get("settings") if isinstance(data.get("settings"), dict) else {}
    refs = [settings.get("default_compute")]
    for node in (data.get("jobs") or {}).values() if isinstance(data.get("jobs"), dict) else []:
        if isinstance(node, dict):
            refs.append(node.get("compute"))
    refs.append(data.get("compute"))
    names: list[str] = []
    for ref in refs:
        if isinstance(ref, str) and ref and ref not in ("local", "serverless", "azureml:serverless"):
            name = ref.split("/")[-1].removeprefix("azureml:")
            if name not in names:
                names.append(name)
    return names
