"""Our own strict checks: what azure-ai-ml lets through but Azure (or the job) later
rejects, from RUNTIME_CONTRACT.md, plus habits that cost GPU hours."""

from __future__ import annotations

import difflib
import os
import re
import shlex
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from .. import secretscan, vmsizes
from ..runner.snapshot import LINK_HINT, code_files_cached
from ..spec import NAME_RE, RESERVED_INPUT_NAMES
from . import shell
from .model import SCHEMAS, Document

REF = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
OPTIONAL_SEGMENT = re.compile(r"\$\[\[(.*?)\]\]", re.S)
DATA_TYPES = ("uri_folder", "uri_file", "mlflow_model", "custom_model", "mltable", "triton_model")
LITERAL_TYPES = ("string", "integer", "number", "boolean")
DIST_KEYS = {
    "pytorch": {"type", "process_count_per_instance"},
    "mpi": {"type", "process_count_per_instance"},
    "tensorflow": {"type", "worker_count", "parameter_server_count"},
    "ray": {"type", "port", "address", "include_dashboard", "dashboard_port", "head_node_additional_args",
            "worker_node_additional_args"},
}
RESOURCE_KEYS = {"instance_count", "instance_type", "shm_size", "docker_args", "properties", "locations",
                 "max_instance_count"}
# CommandComponentSchema's loadable fields in azure-ai-ml 1.35.2 (anything else is dropped).
COMPONENT_KEYS = {"$schema", "type", "name", "version", "display_name", "description", "tags", "is_deterministic",
                  "inputs", "outputs", "code", "command", "environment", "distribution", "resources", "properties",
                  "additional_includes", "queue_settings", "id"}
CODE_SNAPSHOT_LIMIT_MB = 300


# ------------------------------------------------------------------ kind detection

def detect_kind(data: Any) -> str | None:
    """What Azure ML resource a YAML document is, or a marker for our own files."""
    if not isinstance(data, dict):
        return None
    schema = str(data.get("$schema", "")).lower()
    for kind, url in SCHEMAS.items():
        name = url.rsplit("/", 1)[-1].lower()
        if schema.endswith(name):
            return kind
    if schema:
        if "component" in schema:
            return "command_component"
        if "job" in schema:
            return "command_job"
    kind = data.get("type")
    sections = {"job", "launcher", "cluster", "env", "data", "pipeline", "sweep", "endpoint", "components"}
    if isinstance(data.get("job"), dict) or (kind is None and data and set(map(str, data)) <= sections
                                             and all(isinstance(v, dict) or v is None for v in data.values())):
        return "values"
    if "dependencies" in data and "type" not in data and "command" not in data:
        return "conda"
    if isinstance(data.get("datasets"), dict) and "type" not in data:
        return "catalog"  # the local runner's data catalog (jobs/data.yml)
    if kind == "pipeline":
        return "pipeline_job"
    if kind == "sweep":
        return "sweep_job"
    if kind == "command" or (kind is None and "command" in data):
        if "version" in data and "compute" not in data and "experiment_name" not in data:
            return "command_component"
        inputs = data.get("inputs") or {}
        if isinstance(inputs, dict) and any(isinstance(v, dict) and ("optional" in v or "default" in v)
                                            for v in inputs.values()) and "compute" not in data:
            return "command_component"
        return "command_job"
    if kind == "amlcompute":
        return "compute"
    if kind in ("uri_folder", "uri_file", "mltable") and "path" in data:
        return "data"
    if kind in ("custom_model", "mlflow_model", "triton_model") and "path" in data:
        return "model"
    if "image" in data or "build" in data:
        return "environment"
    return None


# ------------------------------------------------------------------ helpers

def _close(name: str, options: list[str]) -> str:
    match = difflib.get_close_matches(name, options, n=1)
    if match:
        return f"did you mean '{match[0]}'?"
    return f"declared: {', '.join(options)}" if options else "none are declared"


def _literal(value: Any) -> Any:
    """The literal an input holds (``x: 3``, ``x: {value: 3}``, a component's ``{default: 3}``), or
    None for data inputs and inputs without a value."""
    if isinstance(value, dict):
        if value.get("type") in DATA_TYPES or "path" in value:
            return None
        return value.get("value", value.get("default"))
    return value


def _is_local(ref: Any) -> bool:
    return isinstance(ref, str) and not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", ref)


def _mask(command: str) -> str:
    """The command with Azure's placeholders replaced by plain words, so shlex can split it."""
    command = OPTIONAL_SEGMENT.sub(lambda m: " " + m.group(1) + " ", command)
    return REF.sub("AZUREML_PLACEHOLDER", command)


@lru_cache(maxsize=1024)
def _split(command: str) -> tuple[str, ...] | None:
    try:
        return tuple(shlex.split(_mask(command), comments=False))
    except ValueError:
        return None


def script_of(command: str) -> tuple[str, str] | None:
    """('file', 'train.py') or ('module', 'pkg.mod') for the Python entry point a command runs."""
    tokens = _split(command)
    if tokens is None:
        return None
    if any(t in ("cd", "pushd") for t in tokens):
        return None  # the working folder changes: do not guess
    for i, token in enumerate(tokens):
        base = os.path.basename(token)
        if re.fullmatch(r"python(3(\.\d+)?)?", base):
            rest = list(tokens[i + 1:])
            j = 0
            while j < len(rest) and rest[j].startswith("-") and rest[j] != "-m":
                j += 1
            if j < len(rest) and rest[j] == "-m" and j + 1 < len(rest):
                module = rest[j + 1]
                if module in ("torch.distributed.run", "torch.distributed.launch"):
                    return _first_py(rest[j + 2:])
                return ("module", module)
            if j < len(rest) and rest[j].endswith(".py"):
                return ("file", rest[j])
            return None
        if base in ("torchrun", "deepspeed", "accelerate", "mpirun", "horovodrun"):
            return _first_py(list(tokens[i + 1:]))
    return None


def per_node_workers(command: str) -> int | None:
    """Workers each launched copy of ``command`` starts itself (torchrun's --nproc_per_node),
    1 for a plain command, None when it cannot be told (``auto``, a variable)."""
    tokens = _split(command)
    if tokens is None:
        return 1
    launcher = False
    for i, token in enumerate(tokens):
        base = os.path.basename(token)
        if base == "torchrun" or token in ("torch.distributed.run", "torch.distributed.launch"):
            launcher = True
        if launcher:
            value = None
            if token in ("--nproc_per_node", "--nproc-per-node") and i + 1 < len(tokens):
                value = tokens[i + 1]
            elif token.startswith(("--nproc_per_node=", "--nproc-per-node=")):
                value = token.split("=", 1)[1]
            if value is not None:
                return int(value) if value.isdigit() else None
    return 1


def _first_py(tokens: list[str]) -> tuple[str, str] | None:
    for token in tokens:
        if token.endswith(".py") and not token.startswith("-"):
            return ("file", token)
    return None


# ------------------------------------------------------------------ shared pieces

class Checker:
    """Checks one document. ``compute_size`` maps a compute reference to a VM size name."""

    def __init__(self, doc: Document, compute_size: Callable[[Document, str], tuple[str | None, bool]],
                 overlay: dict[Path, Path] | None = None):
        self.doc = doc
        self.compute_size = compute_size
        self.overlay = overlay or {}
        self.base = doc.path.parent
        self.referenced: list[Path] = []  # local component files this document uses

    # -------------------------------------------------------------- common
    def common(self) -> None:
        doc = self.doc
        self.secrets()
        for dup_path, line in doc.located.duplicates:
            doc.diagnostics.append(_diag(doc, line, "error", f"key '{'.'.join(map(str, dup_path))}' appears twice",
                                         "YAML keeps only the last one; remove the other"))
        if doc.kind in SCHEMAS and "$schema" not in doc.data:
            doc.warning((), "no $schema line", f"add '$schema: {SCHEMAS[doc.kind]}' as the first line "
                        "(editors validate against it)")

    def secrets(self) -> None:
        """Every string in the document that looks like a secret by its format."""
        for ypath, kind in secretscan.scan(self.doc.data):
            key = ypath[-1] if ypath else "the document"
            self.doc.error(ypath, f"'{key}' holds what looks like {kind}", secretscan.HINT)

    def values_secret_names(self) -> None:
        job = self.doc.data.get("job") if isinstance(self.doc.data.get("job"), dict) else {}
        self.secret_names(("job", "environment_variables"), job.get("environment_variables"), "environment variable")
        self.secret_names(("job", "inputs"), job.get("inputs"), "input")

    def code(self, ypath: tuple, code: Any) -> Path | None:
        doc = self.doc
        if code is None or not _is_local(code):
            return None
        if not isinstance(code, str):
            doc.error(ypath, "code must be a path")
            return None
        folder = (self.base / code).resolve()
        if not folder.exists():
            doc.error(ypath, f"code folder '{code}' does not exist (resolved to {folder})",
                      "paths are relative to the YAML file's folder")
            return None
        if folder.is_dir():
            listing = code_files_cached(str(folder), folder.stat().st_mtime)
            for problem in listing.problems:
                doc.error(ypath, f"code folder '{code}': {problem}", LINK_HINT)
            if listing.truncated:
                doc.error(ypath, f"code folder '{code}' holds over {CODE_SNAPSHOT_LIMIT_MB} MB; Azure refuses "
                          "snapshots that large", "point code at the training sources only, or list data and "
                          "checkpoints in .amlignore")
        return folder

    def script(self, ypath: tuple, command: str, code_dir: Path | None) -> None:
        if code_dir is None or not code_dir.is_dir():
            return
        found = script_of(command)
        if found is None:
            return
        kind, name = found
        if kind == "file":
            if "AZUREML_PLACEHOLDER" in name or name.startswith("$"):
                return
            target = (code_dir / name)
            if not target.is_file():
                self.doc.error(ypath, f"command runs '{name}' but it is not in the code folder {code_dir.name}/ "
                               f"({code_dir})", "fix the script name or the code path")
        else:
            parts = name.split(".")
            top = code_dir / parts[0]
            if not (top.is_dir() or top.with_suffix(".py").is_file()):
                return  # an installed module (e.g. from the environment)
            module = code_dir.joinpath(*parts)
            if not (module.with_suffix(".py").is_file() or (module / "__main__.py").is_file()):
                self.doc.error(ypath, f"command runs module '{name}' but {code_dir.name}/ has no "
                               f"{'/'.join(parts)}.py", "fix the module name or the code path")

    def input_names(self, ypath: tuple, inputs: dict) -> None:
        for name in inputs:
            if not isinstance(name, str) or not NAME_RE.fullmatch(name):
                self.doc.error(ypath + (name,), f"'{name}' is not a valid input name",
                               "use letters, digits and _, not starting with a digit")
            elif name.lower() in RESERVED_INPUT_NAMES:
                self.doc.error(ypath + (name,), f"input name '{name}' is reserved: Azure exports inputs as "
                               f"environment variables and '{name.upper()}' is a system one", f"rename it, e.g. {name}_value")

    def job_inputs(self, ypath: tuple, inputs: Any) -> dict:
        doc = self.doc
        if inputs is None:
            return {}
        if not isinstance(inputs, dict):
            doc.error(ypath, "inputs must be a mapping")
            return {}
        self.input_names(ypath, inputs)
        self.secret_names(ypath, inputs, "input")
        for name, value in inputs.items():
            if isinstance(value, dict):
                kind = value.get("type")
                if "optional" in value or ("default" in value and kind in LITERAL_TYPES) or kind in LITERAL_TYPES:
                    doc.error(ypath + (name,), f"input '{name}' is written as a typed component input "
                              "(type/default/optional); a job takes the value itself and Azure rejects this",
                              f"write '{name}: <value>'")
                elif kind in DATA_TYPES and _is_local(value.get("path")) and value.get("path"):
                    target = (self.base / str(value["path"])).resolve()
                    if not target.exists():
                        doc.error(ypath + (name, "path"), f"input '{name}' path '{value['path']}' does not exist "
                                  f"(resolved to {target})", "paths are relative to the YAML file's folder")
        return inputs

    def command(self, ypath: tuple, command: Any, inputs: dict, outputs: dict, *, component: bool,
                namespaces: tuple[str, ...] = ("inputs", "outputs"), search_space: dict | None = None) -> None:
        doc = self.doc
        if command is None:
            return
        if not isinstance(command, str):
            doc.error(ypath, "command must be text")
            return
        inputs = inputs if isinstance(inputs, dict) else {}
        outputs = outputs if isinstance(outputs, dict) else {}
        for match in REF.finditer(command):
            ref = match.group(1)
            head, _, rest = ref.partition(".")
            if head not in namespaces or not rest:
                doc.error(ypath, f"command uses ${{{{{ref}}}}}, which Azure does not substitute here",
                          f"use ${{{{{namespaces[0]}.<name>}}}}" + (" or " + ", ".join(
                              f"${{{{{n}.<name>}}}}" for n in namespaces[1:]) if len(namespaces) > 1 else ""))
                continue
            table = {"inputs": inputs, "outputs": outputs, "search_space": search_space or {}}[head]
            if rest not in table:
                what = {"inputs": "input", "outputs": "output", "search_space": "search_space parameter"}[head]
                doc.error(ypath, f"command uses ${{{{{ref}}}}} but there is no {what} '{rest}'",
                          _close(rest, [str(k) for k in table]))
        segments = OPTIONAL_SEGMENT.findall(command)
        if segments and not component:
            doc.error(ypath, "$[[...]] optional segments work only in components", "remove the brackets")
        if component:
            if re.search(r"\\\s*\n", command):
                doc.error(ypath, "command continues lines with '\\'; Azure does not support that in components",
                          "write the command on one line, or use a folded block (command: >-)")
            self.optional_segments(ypath, command, inputs)

    def pasted(self, command: Any, bindings: Callable[[str], list[tuple[tuple, Any, str]]]) -> None:
        """Literals the shell would read as more than a plain word where Azure pastes them into
        ``command``. ``bindings(ref)`` gives (where the value is written, value, how to name it)
        for a reference such as ``inputs.x``: a job's literal, a sweep's choices, a pipeline
        input that reaches a step."""
        if not isinstance(command, str):
            return
        for use in shell.uses(command):
            for ypath, value, label in bindings(use.ref):
                found = shell.problem(value, use)
                if found:
                    severity, text, hint = found
                    report = self.doc.error if severity == "error" else self.doc.warning
                    report(ypath, f"{label} {text}", hint)

    def literal_bindings(self, inputs: Any, space: Any = None) -> Callable[[str], list[tuple[tuple, Any, str]]]:
        """References of a command job or a sweep's trial: its own literal inputs, and the choices
        of the search space parameters bound to them (or used in the command directly)."""
        inputs = inputs if isinstance(inputs, dict) else {}
        space = space if isinstance(space, dict) else {}

        def choices(param: str, label: str) -> list[tuple[tuple, Any, str]]:
            spec = space.get(param)
            values = spec.get("values") if isinstance(spec, dict) and spec.get("type") == "choice" else None
            if not isinstance(values, list):
                return []
            return [(("search_space", param, "values", i), v, f"{label}: choice {i + 1}") for i, v in enumerate(values)]

        def bind(ref: str) -> list[tuple[tuple, Any, str]]:
            head, _, name = ref.partition(".")
            if head == "search_space":
                return choices(name, f"search_space parameter '{name}'")
            if head != "inputs" or name not in inputs:
                return []
            written = inputs[name]
            value = _literal(written)
            bound = REF.fullmatch(value.strip()) if isinstance(value, str) else None
            if bound and bound.group(1).startswith("search_space."):
                return choices(bound.group(1).split(".", 1)[1], f"input '{name}' (from the search space)")
            if bound or value is None:
                return []
            if isinstance(written, dict):
                key = "value" if "value" in written else "default"
                return [(("inputs", name, key), value, f"the {key} of input '{name}'")]
            return [(("inputs", name), value, f"input '{name}'")]

        return bind

    def step_bindings(self, step: str, base: tuple, n_inputs: dict,
                      p_inputs: dict) -> Callable[[str], list[tuple[tuple, Any, str]]]:
        """References of a pipeline step's command (its component's, or its own inline one): the
        literal the step gives, or the pipeline input it binds with ${{parent.inputs.x}}. A
        component's own defaults are judged where the component is linted."""

        def written_at(prefix: tuple, name: str, written: Any) -> tuple:
            if isinstance(written, dict):
                return prefix + (name, "value" if "value" in written else "default")
            return prefix + (name,)

        def bind(ref: str) -> list[tuple[tuple, Any, str]]:
            head, _, name = ref.partition(".")
            if head != "inputs" or name not in n_inputs:
                return []
            value = _literal(n_inputs[name])
            bound = REF.fullmatch(value.strip()) if isinstance(value, str) else None
            if bound is None:
                return [] if value is None else [(written_at(base + ("inputs",), name, n_inputs[name]), value,
                                                  f"step '{step}' input '{name}'")]
            parts = bound.group(1).split(".")
            if parts[:2] != ["parent", "inputs"] or len(parts) != 3 or parts[2] not in p_inputs:
                return []
            outer = _literal(p_inputs[parts[2]])
            if outer is None or (isinstance(outer, str) and REF.fullmatch(outer.strip())):
                return []
            return [(written_at(("inputs",), parts[2], p_inputs[parts[2]]), outer,
                     f"pipeline input '{parts[2]}' (given to step '{step}' as '{name}')")]

        return bind

    def optional_segments(self, ypath: tuple, command: str, inputs: dict) -> None:
        doc = self.doc

        def optional(name: str) -> bool:
            spec = inputs.get(name)
            return isinstance(spec, dict) and spec.get("optional") is True

        for segment in OPTIONAL_SEGMENT.findall(command):
            for ref in REF.findall(segment):
                head, _, name = ref.partition(".")
                if head == "inputs" and name in inputs and not optional(name):
                    doc.error(ypath, f"required input '{name}' is inside $[[...]]; the segment would never be "
                              "dropped", f"remove the brackets, or make '{name}' optional: true")
        outside = OPTIONAL_SEGMENT.sub("", command)
        for ref in REF.findall(outside):
            head, _, name = ref.partition(".")
            if head == "inputs" and optional(name):
                doc.error(ypath, f"optional input '{name}' is used outside $[[...]]; when it is not given "
                          "the command keeps a dangling flag", f"wrap it: $[[--{name.replace('_', '-')} "
                          f"${{{{inputs.{name}}}}}]]")

    def distribution(self, ypath: tuple, dist: Any) -> int | None:
        """Checks a distribution block; returns processes per node when known."""
        doc = self.doc
        if dist is None:
            return None
        if not isinstance(dist, dict):
            doc.error(ypath, "distribution must be a mapping with a type")
            return None
        kind = dist.get("type")
        if kind not in DIST_KEYS:
            doc.error(ypath + ("type",), f"unknown distribution type '{kind}'", "use pytorch, mpi, tensorflow or ray")
            return None
        for key in dist:
            if key not in DIST_KEYS[kind]:
                doc.error(ypath + (key,), f"unknown key '{key}' in a {kind} distribution (Azure drops it silently)",
                          _close(str(key), sorted(DIST_KEYS[kind])))
        if kind in ("pytorch", "mpi"):
            p = dist.get("process_count_per_instance", 1)
            if isinstance(p, bool) or not isinstance(p, int):
                if not (isinstance(p, str) and p.startswith("${{")):
                    doc.error(ypath + ("process_count_per_instance",), f"process_count_per_instance must be a "
                              f"whole number, got {p!r}")
                return None
            if p < 1:
                doc.error(ypath + ("process_count_per_instance",), f"process_count_per_instance is {p}; no "
                          "process would run", "use 1 or more (one per GPU)")
                return None
            return p
        return None

    def resources(self, ypath: tuple, res: Any) -> int | None:
        doc = self.doc
        if res is None:
            return 1
        if not isinstance(res, dict):
            doc.error(ypath, "resources must be a mapping")
            return None
        for key in res:
            if key not in RESOURCE_KEYS:
                doc.error(ypath + (key,), f"unknown key '{key}' in resources (Azure drops it silently)",
                          _close(str(key), sorted(RESOURCE_KEYS)))
        n = res.get("instance_count", 1)
        if isinstance(n, bool) or not isinstance(n, int):
            if not (isinstance(n, str) and n.startswith("${{")):
                doc.error(ypath + ("instance_count",), f"instance_count must be a whole number, got {n!r}")
            return None
        if n < 1:
            doc.error(ypath + ("instance_count",), f"instance_count is {n}", "use 1 or more nodes")
            return None
        return n

    def nodes_without_distribution(self, ypath: tuple, nodes: int | None, dist: Any) -> None:
        if nodes and nodes > 1 and not dist:
            self.doc.warning(ypath, f"instance_count {nodes} without a distribution: Azure documents only one "
                             "process on one node for this", "add distribution: {type: pytorch} (or mpi)")

    def fits_compute(self, ypath: tuple, compute: Any, processes: int | None) -> None:
        if not compute or not isinstance(compute, str) or not processes:
            return
        size_name, size_in_lint_set = self.compute_size(self.doc, compute)
        size = vmsizes.lookup(size_name)
        if size is None:
            return
        if size.retired:
            if not size_in_lint_set:
                message, hint = vmsizes.retired_message(size)
                self.doc.error(ypath, f"compute '{compute}': {message}", hint)
            return
        found = vmsizes.capacity_problem(size, processes)
        if found:
            level, message, hint = found
            (self.doc.error if level == "error" else self.doc.warning)(ypath, message, hint)

    def env_vars(self, ypath: tuple, env: Any) -> None:
        self.secret_names(ypath, env, "environment variable")

    def secret_names(self, ypath: tuple, mapping: Any, what: str) -> None:
        """Keys whose name says they hold a secret and that have a value written here (values that
        look like secrets by their format are found in every document by ``secrets``)."""
        if not isinstance(mapping, dict):
            return
        for key, value in mapping.items():
            if isinstance(value, dict):  # a typed input: its default or value is what is written
                value = value.get("default", value.get("value")) if what == "input" else None
            if secretscan.secret_value(value) is None:
                leak = secretscan.name_finding(key, value, what)
                if leak:
                    self.doc.error(ypath + (key,), leak, secretscan.HINT)

    # -------------------------------------------------------------- per kind
    def command_job(self, d: dict | None = None, ypath: tuple = (), *, inline_node: bool = False) -> None:
        d = self.doc.data if d is None else d
        inputs = self.job_inputs(ypath + ("inputs",), d.get("inputs"))
        outputs = d.get("outputs") if isinstance(d.get("outputs"), dict) else {}
        code_dir = self.code(ypath + ("code",), d.get("code"))
        if isinstance(d.get("command"), str):
            self.command(ypath + ("command",), d["command"], inputs, outputs, component=False)
            self.script(ypath + ("command",), d["command"], code_dir)
            if not inline_node:  # a pipeline's steps are judged with the values that reach them
                self.pasted(d["command"], self.literal_bindings(inputs))
        elif not inline_node:
            self.doc.error(ypath, "a command job needs a command", "add command: python train.py ...")
        p = self.distribution(ypath + ("distribution",), d.get("distribution"))
        nodes = self.resources(ypath + ("resources",), d.get("resources"))
        self.nodes_without_distribution(ypath + ("resources", "instance_count"), nodes, d.get("distribution"))
        workers = per_node_workers(d["command"]) if isinstance(d.get("command"), str) else 1
        if p is None and not d.get("distribution"):
            p = 1
        where = ypath + ("distribution", "process_count_per_instance") if d.get("distribution") else ypath + ("compute",)
        self.fits_compute(where, d.get("compute"), p * workers if p and workers else None)
        self.env_vars(ypath + ("environment_variables",), d.get("environment_variables"))
        limits = d.get("limits")
        if isinstance(limits, dict) and "timeout" in limits:
            t = limits["timeout"]
            if isinstance(t, bool) or not isinstance(t, int) or t < 1:
                self.doc.error(ypath + ("limits", "timeout"), f"limits.timeout must be a positive number of "
                               f"seconds, got {t!r}")

    def command_component(self) -> None:
        doc = self.doc
        d = doc.data
        for key in d:
            if key in ("environment_variables", "limits"):
                doc.error((key,), f"'{key}' on a component is dropped by Azure", "set it on the job or on the "
                          "pipeline node that uses the component")
            elif key not in COMPONENT_KEYS:
                doc.error((key,), f"unknown component key '{key}' (Azure drops it silently)",
                          _close(str(key), sorted(COMPONENT_KEYS - {"id"})))
        inputs = d.get("inputs") if isinstance(d.get("inputs"), dict) else {}
        outputs = d.get("outputs") if isinstance(d.get("outputs"), dict) else {}
        self.input_names(("inputs",), inputs)
        self.secret_names(("inputs",), inputs, "input")
        for name, spec in inputs.items():
            if not isinstance(spec, dict):
                doc.error(("inputs", name), f"component input '{name}' needs a type",
                          f"e.g. {name}: {{type: string}}")
                continue
            kind = spec.get("type")
            if kind not in LITERAL_TYPES + DATA_TYPES:
                doc.error(("inputs", name, "type"), f"unknown input type '{kind}'",
                          _close(str(kind), list(LITERAL_TYPES + DATA_TYPES)))
            default = spec.get("default")
            if default is not None and kind in LITERAL_TYPES:
                ok = {"string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
                      "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
                      "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}[kind](default)
                if not ok:
                    doc.error(("inputs", name, "default"), f"default {default!r} is not a {kind}")
        for name in outputs:
            if isinstance(name, str) and name.lower() in RESERVED_INPUT_NAMES:
                doc.error(("outputs", name), f"output name '{name}' is reserved", f"rename it, e.g. {name}_dir")
        code_dir = self.code(("code",), d.get("code"))
        if isinstance(d.get("command"), str):
            self.command(("command",), d["command"], inputs, outputs, component=True)
            self.script(("command",), d["command"], code_dir)
            self.pasted(d["command"], self.literal_bindings(inputs))
        else:
            doc.error((), "a command component needs a command")
        self.distribution(("distribution",), d.get("distribution"))
        self.resources(("resources",), d.get("resources"))

    def pipeline_job(self) -> None:
        doc = self.doc
        d = doc.data
        p_inputs = d.get("inputs") if isinstance(d.get("inputs"), dict) else {}
        p_outputs = d.get("outputs") if isinstance(d.get("outputs"), dict) else {}
        jobs = d.get("jobs")
        if not isinstance(jobs, dict) or not jobs:
            doc.error(("jobs",), "a pipeline needs jobs", "add jobs: {step_name: {component: ...}}")
            return
        self.secret_names(("inputs",), p_inputs, "input")
        settings = d.get("settings") if isinstance(d.get("settings"), dict) else {}
        default_compute = settings.get("default_compute") or d.get("compute")
        components: dict[str, dict | None] = {}
        edges: dict[str, set[str]] = {name: set() for name in jobs}
        for step, node in jobs.items():
            base = ("jobs", step)
            if not isinstance(node, dict):
                doc.error(base, f"step '{step}' must be a mapping")
                continue
            comp = self.component_of(base + ("component",), node.get("component"))
            components[step] = comp
            n_inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
            n_outputs = node.get("outputs") if isinstance(node.get("outputs"), dict) else {}
            self.secret_names(base + ("inputs",), n_inputs, "input")
            for name, value in n_inputs.items():
                for ref in REF.findall(str(value)) if isinstance(value, (str, dict)) else []:
                    self.parent_ref(base + ("inputs", name), ref, p_inputs, p_outputs, jobs, step, edges)
                if isinstance(value, dict) and isinstance(value.get("path"), str):
                    for ref in REF.findall(value["path"]):
                        self.parent_ref(base + ("inputs", name), ref, p_inputs, p_outputs, jobs, step, edges)
            for name, value in n_outputs.items():
                text = value if isinstance(value, str) else (value or {}).get("path") if isinstance(value, dict) else None
                for ref in REF.findall(text or ""):
                    head = ref.split(".")
                    if head[:2] == ["parent", "outputs"] and len(head) == 3 and head[2] not in p_outputs:
                        doc.error(base + ("outputs", name), f"binds ${{{{{ref}}}}} but the pipeline declares no "
                                  f"output '{head[2]}'", _close(head[2], [str(k) for k in p_outputs]))
            if comp is not None:
                c_inputs = comp.get("inputs") if isinstance(comp.get("inputs"), dict) else {}
                c_outputs = comp.get("outputs") if isinstance(comp.get("outputs"), dict) else {}
                for name in n_inputs:
                    if name not in c_inputs:
                        doc.error(base + ("inputs", name), f"step '{step}' passes input '{name}' that its component "
                                  "does not declare (Azure drops it silently)", _close(str(name), [str(k) for k in c_inputs]))
                for name in n_outputs:
                    if name not in c_outputs:
                        doc.error(base + ("outputs", name), f"step '{step}' binds output '{name}' that its component "
                                  "does not declare", _close(str(name), [str(k) for k in c_outputs]))
                for name, spec in c_inputs.items():
                    required = isinstance(spec, dict) and not spec.get("optional") and spec.get("default") is None
                    if required and name not in n_inputs:
                        doc.error(base + ("inputs",) if "inputs" in node else base,
                                  f"step '{step}' does not give required input '{name}' of its component",
                                  f"add inputs: {{{name}: ...}} to the step")
            elif node.get("type") == "command" and "command" in node:
                self.command_job(node, base, inline_node=True)
            step_command = comp.get("command") if comp is not None else node.get("command")
            self.pasted(step_command, self.step_bindings(step, base, n_inputs, p_inputs))
            p = self.distribution(base + ("distribution",), node.get("distribution"))
            nodes = self.resources(base + ("resources",), node.get("resources"))
            dist = node.get("distribution") or (comp or {}).get("distribution")
            self.nodes_without_distribution(base + ("resources", "instance_count"), nodes, dist)
            if p is None and isinstance((comp or {}).get("distribution"), dict):
                p = (comp or {}).get("distribution", {}).get("process_count_per_instance")
                p = p if isinstance(p, int) and not isinstance(p, bool) else None
            self.fits_compute(base + ("distribution", "process_count_per_instance") if node.get("distribution")
                              else base, node.get("compute") or default_compute, p)
            self.env_vars(base + ("environment_variables",), node.get("environment_variables"))
        # a cycle of steps never starts
        cycle = _find_cycle(edges)
        if cycle:
            doc.error(("jobs", cycle[0]), f"steps depend on each other in a cycle: {' -> '.join(cycle)}",
                      "a step can only use outputs of steps before it")

    def parent_ref(self, ypath: tuple, ref: str, p_inputs: dict, p_outputs: dict, jobs: dict, step: str,
                   edges: dict[str, set[str]]) -> None:
        doc = self.doc
        parts = ref.split(".")
        if parts[0] != "parent":
            if parts[0] in ("inputs", "outputs"):
                doc.error(ypath, f"binds ${{{{{ref}}}}}; inside a pipeline step use ${{{{parent.{ref}}}}}",
                          "pipeline-level values are reached through parent.")
            return
        if parts[1:2] == ["inputs"] and len(parts) >= 3:
            if parts[2] not in p_inputs:
                doc.error(ypath, f"binds ${{{{{ref}}}}} but the pipeline declares no input '{parts[2]}'",
                          _close(parts[2], [str(k) for k in p_inputs]) + " (add it under the pipeline's inputs:)")
        elif parts[1:2] == ["jobs"] and len(parts) >= 5:
            other, io, name = parts[2], parts[3], parts[4]
            if other not in jobs:
                doc.error(ypath, f"binds ${{{{{ref}}}}} but there is no step '{other}'", _close(other, [str(k) for k in jobs]))
                return
            edges.setdefault(step, set()).add(other)
            other_node = jobs[other] if isinstance(jobs[other], dict) else {}
            comp = self.component_of(None, other_node.get("component"))
            declared = comp.get(io) if comp else other_node.get(io)
            if isinstance(declared, dict) and name not in declared:
                doc.error(ypath, f"binds ${{{{{ref}}}}} but step '{other}' has no {io[:-1]} '{name}'",
                          _close(name, [str(k) for k in declared]))

    def component_of(self, ypath: tuple | None, ref: Any) -> dict | None:
        """The component a node uses, parsed, when it is a local file or inline."""
        if isinstance(ref, dict):
            return ref
        if not isinstance(ref, str) or not ref:
            return None
        if ref.startswith("file:"):
            ref = ref[len("file:"):]
        if not _is_local(ref):
            return None
        target = (self.base / ref).resolve()
        target = self.overlay.get(target, target)  # rendered in the same batch, not written yet
        if not target.is_file():
            if ypath is not None:
                self.doc.error(ypath, f"component file '{ref}' does not exist (resolved to {target})",
                               "paths are relative to the pipeline file's folder")
            return None
        if target not in self.referenced:
            self.referenced.append(target)
        return _load_plain(target)

    def sweep_job(self) -> None:
        doc = self.doc
        d = doc.data
        space = d.get("search_space") if isinstance(d.get("search_space"), dict) else {}
        if not space:
            doc.error(("search_space",), "a sweep needs a search_space")
        inputs = d.get("inputs") if isinstance(d.get("inputs"), dict) else {}
        outputs = d.get("outputs") if isinstance(d.get("outputs"), dict) else {}
        used: set[str] = set()
        for name, value in inputs.items():
            for ref in REF.findall(str(value)):
                head, _, param = ref.partition(".")
                if head == "search_space":
                    used.add(param)
                    if param not in space:
                        doc.error(("inputs", name), f"binds ${{{{{ref}}}}} but the search space has no '{param}'",
                                  _close(param, [str(k) for k in space]))
        self.input_names(("inputs",), inputs)
        self.secret_names(("inputs",), inputs, "input")
        trial = d.get("trial")
        if isinstance(trial, dict):
            command = trial.get("command")
            if isinstance(command, str):
                used.update(n for h, _, n in (r.partition(".") for r in REF.findall(command)) if h == "search_space")
                self.command(("trial", "command"), command, inputs, outputs, component=False,
                             namespaces=("inputs", "outputs", "search_space"), search_space=space)
                self.pasted(command, self.literal_bindings(inputs, space))
                self.script(("trial", "command"), command, self.code(("trial", "code"), trial.get("code")))
            p = self.distribution(("trial", "distribution"), trial.get("distribution"))
            nodes = self.resources(("trial", "resources"), trial.get("resources"))
            self.nodes_without_distribution(("trial", "resources", "instance_count"), nodes, trial.get("distribution"))
            workers = per_node_workers(command) if isinstance(command, str) else 1
            if p is None and not trial.get("distribution"):
                p = 1
            self.fits_compute(("trial", "distribution", "process_count_per_instance"), d.get("compute"),
                              p * workers if p and workers else None)
            self.env_vars(("trial", "environment_variables"), trial.get("environment_variables"))
        elif isinstance(trial, str):
            self.component_of(("trial",), trial)
        for param in space:
            if param not in used:
                doc.warning(("search_space", param), f"search space parameter '{param}' is never used",
                            f"bind it: inputs: {{{param}: ${{{{search_space.{param}}}}}}} or use it in the command")
        algorithm = d.get("sampling_algorithm")
        algo = algorithm.get("type") if isinstance(algorithm, dict) else algorithm
        if algo == "grid":
            for param, spec in space.items():
                if isinstance(spec, dict) and spec.get("type") != "choice":
                    doc.error(("search_space", param), f"grid sampling needs choice parameters; '{param}' is "
                              f"{spec.get('type')}", "use type: choice with values, or random sampling")
        if algo == "bayesian" and d.get("early_termination"):
            doc.error(("early_termination",), "bayesian sampling does not support early termination",
                      "remove early_termination or use random sampling")
        limits = d.get("limits") if isinstance(d.get("limits"), dict) else {}
        total, concurrent = limits.get("max_total_trials"), limits.get("max_concurrent_trials")
        if isinstance(total, int) and isinstance(concurrent, int) and concurrent > total:
            doc.warning(("limits", "max_concurrent_trials"), f"max_concurrent_trials {concurrent} is above "
                        f"max_total_trials {total}", "lower it to max_total_trials")

    def environment(self) -> None:
        doc = self.doc
        d = doc.data
        if not d.get("image") and not d.get("build"):
            doc.error((), "an environment needs an image (or a build context)")
        conda = d.get("conda_file")
        if isinstance(conda, str) and _is_local(conda):
            target = (self.base / conda).resolve()
            if not target.is_file():
                doc.error(("conda_file",), f"conda file '{conda}' does not exist (resolved to {target})",
                          "paths are relative to the YAML file's folder")

    def compute(self) -> None:
        doc = self.doc
        d = doc.data
        size_name = d.get("size")
        size = vmsizes.lookup(size_name)
        if size_name and size is None:
            close = vmsizes.suggest(str(size_name))
            doc.warning(("size",), f"VM size '{size_name}' is not in the VM size table; GPUs are not checked",
                        f"did you mean {close}?" if close else "check the name with 'az vm list-sizes'")
        elif size is not None and size.retired:
            message, hint = vmsizes.retired_message(size)
            doc.error(("size",), message, hint)
        lo, hi = d.get("min_instances", 0), d.get("max_instances", 1)
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            doc.error(("min_instances",), f"min_instances {lo} is above max_instances {hi}")
        if isinstance(lo, int) and lo > 0 and size is not None and size.gpus:
            doc.warning(("min_instances",), f"min_instances {lo} keeps {lo} GPU node(s) billed while idle",
                        "use min_instances: 0 so the cluster scales to zero")
        tier = d.get("tier")
        if tier is not None and str(tier).lower() not in ("dedicated", "low_priority"):
            doc.error(("tier",), f"unknown tier '{tier}'", "use dedicated or low_priority")

    def online_deployment(self) -> None:
        doc = self.doc
        d = doc.data
        size_name = d.get("instance_type")
        size = vmsizes.lookup(size_name)
        if size_name and size is None:
            close = vmsizes.suggest(str(size_name))
            doc.warning(("instance_type",), f"instance type '{size_name}' is not in the VM size table",
                        f"did you mean {close}?" if close else "check the managed online endpoint SKU list")
        elif size is not None and size.retired:
            message, hint = vmsizes.retired_message(size)
            doc.error(("instance_type",), message, hint)
        config = d.get("code_configuration") if isinstance(d.get("code_configuration"), dict) else {}
        code_dir = self.code(("code_configuration", "code"), config.get("code"))
        script = config.get("scoring_script")
        if code_dir is not None and isinstance(script, str) and not (code_dir / script).is_file():
            doc.error(("code_configuration", "scoring_script"), f"scoring script '{script}' is not in {code_dir}",
                      "fix scoring_script or code")
        model = d.get("model")
        if isinstance(model, str) and _is_local(model) and not (self.base / model).exists():
            doc.error(("model",), f"model path '{model}' does not exist", "or reference a registered model: "
                      "azureml:<name>:<version>")

    def data_asset(self) -> None:
        d = self.doc.data
        path = d.get("path")
        if isinstance(path, str) and _is_local(path):
            target = (self.base / path).resolve()
            if not target.exists():
                self.doc.error(("path",), f"data path '{path}' does not exist (resolved to {target})",
                               "paths are relative to the YAML file's folder")


def _diag(doc: Document, line: int, severity: str, message: str, hint: str | None):
    from .model import Diagnostic

    return Diagnostic(doc.shown, line, severity, message, hint)


def _find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


@lru_cache(maxsize=256)
def _load_plain_cached(path: str, mtime: float) -> dict | None:
    from ..errors import JobgenError
    from ..yamlio import load_file

    try:
        data = load_file(Path(path)).data  # bounded: a component file is read like any other
    except JobgenError:
        return None
    return data if isinstance(data, dict) else None


def _load_plain(path: Path) -> dict | None:
    try:
        return _load_plain_cached(str(path), path.stat().st_mtime)
    except OSError:
        return None
