"""Our own strict checks: what azure-ai-ml lets through but Azure (or the job) later rejects, from
RUNTIME_CONTRACT.md, plus habits that cost GPU hours. Every finding names its rule (rules.py).

A Checker walks one document of a kind it knows (command and sweep jobs, pipelines and pipeline
components, command components, environments, computes, data, online deployments) and reports
through ``report(rule, yaml_path, message, hint)``; the generic checks (duplicate keys, secrets,
placeholders) run on every document, whatever its kind.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from .. import jobsettings, secretscan, vmsizes
from ..values import SECTIONS
from ..azml import kinds, refs
from ..azml.commands import launcher_of, local_rank_from_rank, per_node_workers, script_of
from ..azml.refs import OLD_OPTIONAL, OPTIONAL_SEGMENT, REF
from ..runner.snapshot import LINK_HINT, code_files_cached
from ..spec import NAME_RE, RESERVED_INPUT_NAMES
from .. import rules as R
from ..azml import shell
from .model import Document

DATA_TYPES = ("uri_folder", "uri_file", "mlflow_model", "custom_model", "mltable", "triton_model")
LITERAL_TYPES = ("string", "integer", "number", "boolean")
LEGACY_TYPES = ("path",)  # the preview's data type; azure-ai-ml still loads it
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
# Pipeline steps that run a command (their resources and distribution are a command's).
COMMAND_STEPS = ("command", "")
JOB_TIERS = ("null", *jobsettings.JOB_TIERS)  # azure-ai-ml also takes "null"
SECRET_FILES = re.compile(r"(^|/)(\.env(\.[^/]*)?|id_(rsa|dsa|ecdsa|ed25519)|[^/]+\.(pem|key|pfx|p12))$")
# <SUBSCRIPTION_ID>, <your-workspace>, < your environment name >, {{ENDPOINT_NAME}} (not Azure's ${{...}})
PLACEHOLDER = re.compile(r"<\s*(?:[A-Z][A-Z0-9_-]{2,}|[Yy]our\b[^<>]*)\s*>|(?<!\$)\{\{\s*[A-Za-z_][A-Za-z0-9_.-]*\s*\}\}")
PROSE_KEYS = ("description", "display_name", "tags")
ASSET_REF = re.compile(r"^azureml:(?P<name>[^:@/\s]+)(?::(?P<version>[^:@\s]+)|@(?P<label>[^:@\s]+))?$")
REGISTRY_REF = re.compile(r"^azureml://registries/[^/\s]+/(models|environments|components|data)/[^/\s]+"
                          r"(/(versions/[^/\s]+|labels/[^/\s]+))?$")


# ------------------------------------------------------------------ kind detection

OWN_SECTIONS = set(SECTIONS)  # a values file's sections (values.py)


def own_kind(data: Any) -> str | None:
    """jobgen's own files, which are not Azure ML YAML: values files, conda files, the local data
    catalog."""
    if not isinstance(data, dict) or "$schema" in data:
        return None
    if isinstance(data.get("job"), dict) or (data.get("type") is None and data and set(map(str, data)) <= OWN_SECTIONS
                                             and all(isinstance(v, dict) or v is None for v in data.values())):
        return "values"
    if "dependencies" in data and "type" not in data and "command" not in data:
        return "conda"
    if isinstance(data.get("datasets"), dict) and "type" not in data:
        return "catalog"  # the local runner's data catalog (jobs/data.yml)
    return None


def detect_kind(data: Any, text: str = "") -> str | None:
    """What a YAML document is: one of jobgen's own files, else an Azure ML kind (azml.kinds)."""
    return own_kind(data) or kinds.detect(data, text)


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


def has_placeholder(value: Any) -> bool:
    return isinstance(value, str) and bool(PLACEHOLDER.search(value))


def _whole(value: Any) -> int | None:
    """A whole number (YAML int, or text Azure reads as one); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"\s*\d+\s*", value):
        return int(value)
    return None


def coerces(value: Any, kind: str) -> bool:
    """Whether Azure reads ``value`` as a ``kind`` literal (it coerces: True is the string 'True',
    '1e-3' is the number 0.001)."""
    if kind == "string":
        return not isinstance(value, (dict, list))
    if kind == "boolean":
        return isinstance(value, bool) or str(value).strip().lower() in ("true", "false")
    try:
        number = float(value) if not isinstance(value, bool) else None
    except (TypeError, ValueError):
        return False
    if number is None:
        return False
    return kind == "number" or number.is_integer()


def _serverless(d: dict) -> bool:
    """A job on serverless compute: said so, or no compute but a VM size of its own (a sweep's may
    be its trial's)."""
    if jobsettings.is_serverless(d.get("compute")):
        return True
    trial = d.get("trial") if isinstance(d.get("trial"), dict) else {}
    res = next((r for r in (d.get("resources"), trial.get("resources")) if isinstance(r, dict)), {})
    return d.get("compute") is None and bool(res.get("instance_type"))


# ------------------------------------------------------------------ the checker

class Checker:
    """Checks one document. ``compute_size`` maps a compute reference to a VM size name."""

    def __init__(self, doc: Document, compute_size: Callable[[Document, str], tuple[str | None, bool]],
                 overlay: dict[Path, Path] | None = None):
        self.doc = doc
        self.compute_size = compute_size
        self.overlay = overlay or {}
        self.base = doc.path.parent
        self.referenced: list[Path] = []  # local component files this document uses

    def report(self, rule: R.Rule, ypath: tuple, message: str, hint: str | None = None,
               severity: str | None = None) -> None:
        self.doc.report(rule, ypath, message, hint, severity)

    # -------------------------------------------------------------- every document
    def generic(self) -> None:
        """What holds for any YAML that is committed: no duplicate keys, no secrets, no
        placeholders left in."""
        for dup_path, line in self.doc.located.duplicates:
            self.doc.report(R.DUPLICATE_KEY, (), f"key '{'.'.join(map(str, dup_path))}' appears twice",
                            "YAML keeps only the last one; remove the other", line=line)
        self.secrets()
        self.placeholders()

    def common(self) -> None:
        """The generic checks, plus the $schema line of a kind that has one."""
        self.generic()
        kind = kinds.KINDS.get(self.doc.kind or "")
        if kind is not None and kind.schema_url and "$schema" not in self.doc.data:
            self.report(R.NO_SCHEMA, (), "no $schema line",
                        f"add '$schema: {kind.schema_url}' as the first line (editors validate against it)")

    def secrets(self) -> None:
        """Every string in the document that looks like a secret by its format."""
        for ypath, kind in secretscan.scan(self.doc.data):
            key = ypath[-1] if ypath else "the document"
            self.report(R.SECRET_VALUE, ypath, f"'{key}' holds what looks like {kind}", secretscan.HINT)

    def placeholders(self) -> None:
        for ypath, value in _strings(self.doc.data):
            if ypath[:1] == ("$schema",) or any(k in PROSE_KEYS for k in ypath) or not has_placeholder(value):
                continue
            found = PLACEHOLDER.search(value).group()
            self.report(R.PLACEHOLDER, ypath, f"'{ypath[-1] if ypath else 'value'}' holds the placeholder {found}",
                        "fill it in (or pass it with --set) before submitting")

    def values_secret_names(self) -> None:
        job = self.doc.data.get("job") if isinstance(self.doc.data.get("job"), dict) else {}
        self.secret_names(("job", "environment_variables"), job.get("environment_variables"), "environment variable")
        self.secret_names(("job", "inputs"), job.get("inputs"), "input")

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
                    self.report(R.SECRET_NAME, ypath + (key,), leak, secretscan.HINT)

    # -------------------------------------------------------------- code
    def code(self, ypath: tuple, code: Any) -> Path | None:
        if refs.local_path(code) is None or has_placeholder(code):
            return None
        folder = (self.base / refs.local_path(code)).resolve()
        if not folder.exists():
            self.report(R.CODE_MISSING, ypath, f"code folder '{code}' does not exist (resolved to {folder})",
                        "paths are relative to the YAML file's folder")
            return None
        if folder.is_dir():
            listing = code_files_cached(str(folder), folder.stat().st_mtime)
            for problem in listing.problems:
                self.report(R.CODE_LINK, ypath, f"code folder '{code}': {problem}", LINK_HINT)
            if listing.truncated:
                self.report(R.CODE_TOO_LARGE, ypath, f"code folder '{code}' holds over 300 MB; Azure refuses "
                            "snapshots that large", "point code at the training sources only, or list data and "
                            "checkpoints in .amlignore")
            self.secret_files(ypath, listing, f"code folder '{code}'")
        return folder

    def secret_files(self, ypath: tuple, listing, what: str) -> None:
        """Key and credential files in a folder that is uploaded (a code snapshot, a build context)."""
        secret = [rel for _, rel in listing.files if SECRET_FILES.search(rel)]
        if secret:
            self.report(R.CODE_SECRET_FILE, ypath, f"{what} holds {secret[0]}"
                        + (f" (and {len(secret) - 1} more)" if len(secret) > 1 else "")
                        + ", which is uploaded to the workspace", f"move it out of the {what.rsplit(' ', 1)[0]}, "
                        "or list it in .amlignore; give the job its secrets through Key Vault")

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
            if not (code_dir / name).is_file():
                self.report(R.SCRIPT_MISSING, ypath, f"command runs '{name}' but it is not in the code folder "
                            f"{code_dir.name}/ ({code_dir})", "fix the script name or the code path")
        else:
            parts = name.split(".")
            top = code_dir / parts[0]
            if not (top.is_dir() or top.with_suffix(".py").is_file()):
                return  # an installed module (e.g. from the environment)
            module = code_dir.joinpath(*parts)
            if not (module.with_suffix(".py").is_file() or (module / "__main__.py").is_file()):
                self.report(R.SCRIPT_MISSING, ypath, f"command runs module '{name}' but {code_dir.name}/ has no "
                            f"{'/'.join(parts)}.py", "fix the module name or the code path")

    # -------------------------------------------------------------- inputs
    def io_names(self, ypath: tuple, mapping: dict, what: str = "input") -> None:
        for name in mapping:
            if not isinstance(name, str) or not NAME_RE.fullmatch(name):
                self.report(R.BAD_NAME, ypath + (name,), f"'{name}' is not a valid {what} name",
                            "use letters, digits and _, not starting with a digit")
            elif name.lower() in RESERVED_INPUT_NAMES:
                self.report(R.RESERVED_NAME, ypath + (name,), f"{what} name '{name}' is reserved: Azure exports "
                            f"inputs as environment variables and '{name.upper()}' is a system one",
                            f"rename it, e.g. {name}_{'value' if what == 'input' else 'dir'}")

    def job_inputs(self, ypath: tuple, inputs: Any) -> dict:
        if inputs is None:
            return {}
        if not isinstance(inputs, dict):
            self.report(R.INPUT_TYPE, ypath, "inputs must be a mapping", "inputs: {name: value}")
            return {}
        self.io_names(ypath, inputs)
        self.secret_names(ypath, inputs, "input")
        for name, value in inputs.items():
            if not isinstance(value, dict):
                continue
            kind = value.get("type")
            if "optional" in value or "default" in value or kind in LITERAL_TYPES:
                self.report(R.TYPED_JOB_INPUT, ypath + (name,), f"input '{name}' is written as a typed component "
                            "input (type/default/optional); a job takes the value itself and Azure rejects this",
                            f"write '{name}: <value>'")
            else:
                self.local_path(ypath + (name, "path"), name, value.get("path"), kind)
                self.reference(ypath + (name, "path"), value.get("path"))
        return inputs

    def local_path(self, ypath: tuple, name: str, path: Any, kind: Any) -> None:
        local = refs.local_path(path)
        if local is None or has_placeholder(path) or REF.search(path):
            return
        target = (self.base / local).resolve()
        if not target.exists():
            self.report(R.INPUT_PATH_MISSING, ypath, f"input '{name}' path '{path}' does not exist (resolved to "
                        f"{target})", "paths are relative to the YAML file's folder")
        elif kind == "mltable" and target.is_dir() and not (target / "MLTable").is_file():
            self.report(R.MLTABLE_FILE, ypath, f"input '{name}' is an mltable folder without an MLTable file "
                        f"({target})", "add the MLTable file, or use type: uri_folder")

    def url(self, ypath: tuple, path: Any) -> None:
        """A cloud URL whose host lost its name (https://.blob.core.windows.net/: a placeholder cut out)."""
        if not isinstance(path, str) or has_placeholder(path):
            return
        match = re.match(r"^(https?|wasbs?|abfss?)://([^/]*)", path)
        if match and (not match.group(2) or match.group(2).startswith(".") or "@." in match.group(2)
                      or match.group(2).startswith("@")):
            self.report(R.REFERENCE, ypath, f"'{path}' has an empty host or account name", "write the storage "
                        "account (and container) into the URL")

    def reference(self, ypath: tuple, ref: Any) -> None:
        """Asset references: azureml:name:version, azureml:name@label, azureml://registries/..."""
        if not isinstance(ref, str) or has_placeholder(ref) or ref.startswith("azureml:/subscriptions/"):
            return
        if ref.startswith("azureml://registries/"):
            if not REGISTRY_REF.match(ref):
                self.report(R.REFERENCE, ypath, f"'{ref}' is not a registry reference Azure reads",
                            "azureml://registries/<registry>/<models|environments|components|data>/<name>"
                            "[/versions/<version> | /labels/<label>]")
        elif ref.startswith("azureml:") and not ref.startswith("azureml://"):
            match = ASSET_REF.match(ref)
            if match is None:
                self.report(R.REFERENCE, ypath, f"'{ref}' is not an asset reference Azure reads",
                            "azureml:<name>:<version> or azureml:<name>@latest")
            elif match.group("label") and match.group("label") != "latest" \
                    and difflib.get_close_matches(match.group("label").lower(), ["latest"], cutoff=0.6):
                self.report(R.REFERENCE, ypath, f"'{ref}' asks for label '{match.group('label')}', which no asset "
                            "has", f"did you mean azureml:{match.group('name')}@latest?")

    # -------------------------------------------------------------- commands
    def command(self, ypath: tuple, command: Any, inputs: dict, outputs: dict, *, component: bool,
                namespaces: tuple[str, ...] = ("inputs", "outputs"), search_space: dict | None = None) -> None:
        if command is None:
            return
        if not isinstance(command, str):
            self.report(R.NO_COMMAND, ypath, "command must be text", "command: python train.py ...")
            return
        inputs = inputs if isinstance(inputs, dict) else {}
        outputs = outputs if isinstance(outputs, dict) else {}
        for match in REF.finditer(command):
            ref = match.group(1)
            head, _, rest = ref.partition(".")
            if head not in namespaces or not rest:
                self.report(R.REF_NAMESPACE, ypath, f"command uses ${{{{{ref}}}}}, which Azure does not substitute "
                            "here", f"use ${{{{{namespaces[0]}.<name>}}}}" + (" or " + ", ".join(
                                f"${{{{{n}.<name>}}}}" for n in namespaces[1:]) if len(namespaces) > 1 else ""))
                continue
            table = {"inputs": inputs, "outputs": outputs, "search_space": search_space or {}}[head]
            if rest not in table:
                what = {"inputs": "input", "outputs": "output", "search_space": "search_space parameter"}[head]
                self.report(R.REF_UNKNOWN, ypath, f"command uses ${{{{{ref}}}}} but there is no {what} '{rest}'",
                            _close(rest, [str(k) for k in table]))
        if OPTIONAL_SEGMENT.findall(command) and not component:
            self.report(R.OPTIONAL_IN_JOB, ypath, "$[[...]] optional segments work only in components",
                        "remove the brackets")
        old = OLD_OPTIONAL.search(command)
        if old:
            self.report(R.OLD_OPTIONAL, ypath, f"'{old.group()}' is the preview's optional segment; Azure ML v2 "
                        "passes the brackets to the script", f"write $[[{old.group()[1:-1].strip()}]]")
        if component:
            if re.search(r"\\\s*\n", command):
                self.report(R.BACKSLASH, ypath, "command continues lines with '\\'; Azure does not support that in "
                            "components", "write the command on one line, or use a folded block (command: >-)")
            if not old:
                self.optional_segments(ypath, command, inputs)
        if local_rank_from_rank(command):
            self.report(R.LOCAL_RANK, ypath, "--local_rank is given $RANK, the global rank: on a second node it "
                        "points past the node's GPUs", "use $LOCAL_RANK")

    def optional_segments(self, ypath: tuple, command: str, inputs: dict) -> None:
        def optional(name: str) -> bool:
            spec = inputs.get(name)
            return isinstance(spec, dict) and spec.get("optional") is True

        for segment in OPTIONAL_SEGMENT.findall(command):
            for ref in REF.findall(segment):
                head, _, name = ref.partition(".")
                if head == "inputs" and name in inputs and not optional(name):
                    self.report(R.OPTIONAL_REQUIRED, ypath, f"required input '{name}' is inside $[[...]]; the "
                                "segment would never be dropped", f"remove the brackets, or make '{name}' optional: "
                                "true")
        outside = OPTIONAL_SEGMENT.sub("", command)
        for ref in REF.findall(outside):
            head, _, name = ref.partition(".")
            if head == "inputs" and optional(name):
                self.report(R.OPTIONAL_OUTSIDE, ypath, f"optional input '{name}' is used outside $[[...]]; when it "
                            "is not given the command keeps a dangling flag", f"wrap it: $[[--{name.replace('_', '-')}"
                            f" ${{{{inputs.{name}}}}}]]")

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
                    rule = R.SHELL_VALUE if severity == R.ERROR else R.SHELL_SPLIT
                    self.report(rule, ypath, f"{label} {text}", hint)

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

    # -------------------------------------------------------------- distribution and resources
    def distribution(self, ypath: tuple, dist: Any) -> int | None:
        """Checks a distribution block; returns processes per node when known."""
        if dist is None:
            return None
        if not isinstance(dist, dict):
            self.report(R.DISTRIBUTION, ypath, "distribution must be a mapping with a type",
                        "distribution: {type: pytorch, process_count_per_instance: 4}")
            return None
        kind = dist.get("type")
        if kind not in DIST_KEYS:
            self.report(R.DISTRIBUTION, ypath + ("type",), f"unknown distribution type '{kind}'",
                        "use pytorch, mpi, tensorflow or ray")
            return None
        for key in dist:
            if key not in DIST_KEYS[kind]:
                self.report(R.DISTRIBUTION_KEY, ypath + (key,), f"unknown key '{key}' in a {kind} distribution "
                            "(Azure drops it silently)", _close(str(key), sorted(DIST_KEYS[kind])))
        if kind not in ("pytorch", "mpi"):
            return None
        p = dist.get("process_count_per_instance", 1)
        if isinstance(p, str) and p.startswith("${{"):
            return None
        count = _whole(p)
        if count is None:
            self.report(R.PROCESS_COUNT, ypath + ("process_count_per_instance",),
                        f"process_count_per_instance must be a whole number, got {p!r}", "one per GPU, e.g. 4")
            return None
        if count < 1:
            self.report(R.PROCESS_COUNT, ypath + ("process_count_per_instance",), f"process_count_per_instance is "
                        f"{count}; no process would run", "use 1 or more (one per GPU)")
            return None
        return count

    def resources(self, ypath: tuple, res: Any) -> int | None:
        if res is None:
            return 1
        if not isinstance(res, dict):
            self.report(R.RESOURCES_KEY, ypath, "resources must be a mapping", "resources: {instance_count: 2}")
            return None
        for key in res:
            if key not in RESOURCE_KEYS:
                self.report(R.RESOURCES_KEY, ypath + (key,), f"unknown key '{key}' in resources (Azure drops it "
                            "silently)", _close(str(key), sorted(RESOURCE_KEYS)))
        self.shared_memory(ypath, res)
        n = res.get("instance_count", 1)
        if isinstance(n, str) and n.startswith("${{"):
            return None
        count = _whole(n)
        if count is None:
            self.report(R.INSTANCE_COUNT, ypath + ("instance_count",), f"instance_count must be a whole number, "
                        f"got {n!r}", "nodes, e.g. 2")
            return None
        if count < 1:
            self.report(R.INSTANCE_COUNT, ypath + ("instance_count",), f"instance_count is {count}",
                        "use 1 or more nodes")
            return None
        return count

    def shared_memory(self, ypath: tuple, res: dict) -> None:
        shm = res.get("shm_size")
        if shm is not None and not (isinstance(shm, str) and shm.startswith("${{")):
            found = jobsettings.shm_problem(shm, vmsizes.lookup(res.get("instance_type")))
            if found:
                self.report(R.SHM_SIZE, ypath + ("shm_size",), *found)
        found = jobsettings.docker_shm_problem(res.get("docker_args"), shm)
        if found:
            self.report(R.DOCKER_SHM, ypath + ("docker_args",), *found)

    def nodes_without_distribution(self, ypath: tuple, nodes: int | None, dist: Any) -> None:
        if nodes and nodes > 1 and not dist:
            self.report(R.NODES_NO_DISTRIBUTION, ypath, f"instance_count {nodes} without a distribution: Azure "
                        "documents only one process on one node for this", "add distribution: {type: pytorch} "
                        "(or mpi)")

    def launcher_twice(self, ypath: tuple, command: Any, dist: Any, p: int | None) -> None:
        if not isinstance(command, str) or not isinstance(dist, dict) or dist.get("type") != "pytorch" or not p:
            return
        launcher = launcher_of(command)
        if launcher and launcher not in ("mpirun", "mpiexec") and p > 1:
            self.report(R.LAUNCHER_TWICE, ypath, f"the command starts {launcher} and the pytorch distribution "
                        f"starts it {p} times per node: every copy launches its workers again ({p} x {p})",
                        "with a launcher in the command set process_count_per_instance: 1 (one launcher per node)")

    def fits(self, ypath: tuple, size_name: str | None, processes: int | None, judge_retired: bool = True) -> None:
        """``processes`` per node against a VM size: retired, unknown (warning), too many or too few."""
        size = vmsizes.lookup(size_name)
        if size is None or not processes:
            return
        if size.retired:
            if judge_retired:
                message, hint = vmsizes.retired_message(size)
                self.report(R.VM_RETIRED, ypath, message, hint)
            return
        found = vmsizes.capacity_problem(size, processes)
        if found:
            level, message, hint = found
            self.report(R.VM_CAPACITY, ypath, message, hint, severity=level)

    def fits_compute(self, ypath: tuple, compute: Any, processes: int | None) -> None:
        if not compute or not isinstance(compute, str) or not processes:
            return
        size_name, size_in_lint_set = self.compute_size(self.doc, compute)
        size = vmsizes.lookup(size_name)
        if size is not None and size.retired and not size_in_lint_set:
            message, hint = vmsizes.retired_message(size)
            self.report(R.VM_RETIRED, ypath, f"compute '{compute}': {message}", hint)
            return
        self.fits(ypath, size_name, processes, judge_retired=False)  # the compute file itself says it is retired

    def serverless(self, ypath: tuple, d: dict, processes: int | None) -> None:
        """A job without a cluster (`resources.instance_type`): its size is checked like a cluster's."""
        res = d.get("resources") if isinstance(d.get("resources"), dict) else {}
        size_name = res.get("instance_type")
        if not isinstance(size_name, str) or has_placeholder(size_name) or size_name.startswith("${{"):
            return
        if d.get("compute") not in (None, "serverless", "azureml:serverless"):
            return
        if vmsizes.lookup(size_name) is None:
            close = vmsizes.suggest(size_name)
            self.report(R.VM_UNKNOWN, ypath + ("resources", "instance_type"), f"instance_type '{size_name}' is not "
                        "in the VM size table; GPUs are not checked", f"did you mean {close}?" if close else
                        "check the name with 'az vm list-sizes'")
            return
        self.fits(ypath + ("resources", "instance_type"), size_name, processes)

    def job_settings(self, ypath: tuple, d: dict) -> None:
        limits = d.get("limits")
        if isinstance(limits, dict) and "timeout" in limits:
            t = limits["timeout"]
            if isinstance(t, bool) or not isinstance(t, (int, float)) or t < 1:
                self.report(R.TIMEOUT, ypath + ("limits", "timeout"), f"limits.timeout must be a positive number "
                            f"of seconds, got {t!r}", "e.g. limits: {timeout: 7200}")
        queue = d.get("queue_settings")
        if isinstance(queue, dict):
            tier, priority = queue.get("job_tier"), queue.get("priority")
            if tier is not None and str(tier).lower() not in JOB_TIERS:
                self.report(R.QUEUE_SETTINGS, ypath + ("queue_settings", "job_tier"), f"unknown job_tier '{tier}'",
                            "use spot, basic, standard or premium")
            if priority is not None and str(priority).lower() not in jobsettings.PRIORITIES:
                self.report(R.QUEUE_SETTINGS, ypath + ("queue_settings", "priority"), f"unknown priority "
                            f"'{priority}'", "use low, medium or high")
            found = jobsettings.tier_problem(tier, d.get("compute"))
            if found:
                self.report(R.QUEUE_NO_EFFECT, ypath + ("queue_settings", "job_tier"), *found)
        found = jobsettings.identity_problem(d.get("identity"), _serverless(d))
        if found:
            self.report(R.IDENTITY, ypath + ("identity",), *found)
        services = d.get("services")
        if isinstance(services, dict):
            for name, service in services.items():
                if isinstance(service, dict) and str(service.get("type", "")).lower() == "ssh":
                    props = service.get("properties") if isinstance(service.get("properties"), dict) else {}
                    if not (service.get("ssh_public_keys") or props.get("ssh_public_keys")):  # the schema's, or
                        self.report(R.SERVICES, ypath + ("services", name), f"ssh service '{name}' has no "  # REST's
                                    "ssh_public_keys; nobody could log in", "add ssh_public_keys: <your public "
                                    "key> (the text of your .pub file)")

    def env_vars(self, ypath: tuple, env: Any) -> None:
        self.secret_names(ypath, env, "environment variable")

    # -------------------------------------------------------------- command jobs and components
    def command_job(self, d: dict | None = None, ypath: tuple = (), *, inline_node: bool = False) -> None:
        d = self.doc.data if d is None else d
        inputs = self.job_inputs(ypath + ("inputs",), d.get("inputs"))
        outputs = d.get("outputs") if isinstance(d.get("outputs"), dict) else {}
        self.io_names(ypath + ("outputs",), outputs, "output")
        code_dir = self.code(ypath + ("code",), d.get("code"))
        command = d.get("command")
        if isinstance(command, str):
            self.command(ypath + ("command",), command, inputs, outputs, component=False)
            self.script(ypath + ("command",), command, code_dir)
            if not inline_node:  # a pipeline's steps are judged with the values that reach them
                self.pasted(command, self.literal_bindings(inputs))
        elif not inline_node:
            self.report(R.NO_COMMAND, ypath, "a command job needs a command", "add command: python train.py ...")
        self.reference(ypath + ("environment",), d.get("environment"))
        if not inline_node:  # a step's shape is judged by the pipeline, with its default compute
            self.run_shape(ypath, d, d.get("compute"))
            self.job_settings(ypath, d)

    def run_shape(self, ypath: tuple, d: dict, compute: Any) -> None:
        """Distribution, resources and where the processes run (a cluster or serverless)."""
        p = self.distribution(ypath + ("distribution",), d.get("distribution"))
        nodes = self.resources(ypath + ("resources",), d.get("resources"))
        self.nodes_without_distribution(ypath + ("resources", "instance_count"), nodes, d.get("distribution"))
        command = d.get("command")
        workers = per_node_workers(command) if isinstance(command, str) else 1
        self.launcher_twice(ypath + ("distribution", "process_count_per_instance"), command, d.get("distribution"), p)
        if p is None and not d.get("distribution"):
            p = 1
        processes = p * workers if p and workers else None
        where = ypath + ("distribution", "process_count_per_instance") if d.get("distribution") else ypath + ("compute",)
        self.fits_compute(where, compute, processes)
        self.serverless(ypath, d, processes)
        self.env_vars(ypath + ("environment_variables",), d.get("environment_variables"))

    def command_component(self) -> None:
        d = self.doc.data
        for key in d:
            if key in ("environment_variables", "limits"):
                self.report(R.COMPONENT_DROPPED, (key,), f"'{key}' on a component is dropped by Azure",
                            "set it on the job or on the pipeline node that uses the component")
            elif key not in COMPONENT_KEYS:
                self.report(R.COMPONENT_KEY, (key,), f"unknown component key '{key}' (Azure drops it silently)",
                            _close(str(key), sorted(COMPONENT_KEYS - {"id"})))
        inputs = d.get("inputs") if isinstance(d.get("inputs"), dict) else {}
        outputs = d.get("outputs") if isinstance(d.get("outputs"), dict) else {}
        self.component_io(inputs, outputs)
        code_dir = self.code(("code",), d.get("code"))
        if isinstance(d.get("command"), str):
            self.command(("command",), d["command"], inputs, outputs, component=True)
            self.script(("command",), d["command"], code_dir)
            self.pasted(d["command"], self.literal_bindings(inputs))
        else:
            self.report(R.NO_COMMAND, (), "a command component needs a command", "add command: python train.py ...")
        self.reference(("environment",), d.get("environment"))
        p = self.distribution(("distribution",), d.get("distribution"))
        self.resources(("resources",), d.get("resources"))
        self.launcher_twice(("distribution", "process_count_per_instance"), d.get("command"), d.get("distribution"), p)

    def component_io(self, inputs: dict, outputs: dict) -> None:
        """A component's declared inputs (typed, with defaults of their type) and outputs."""
        self.io_names(("inputs",), inputs)
        self.io_names(("outputs",), outputs, "output")
        self.secret_names(("inputs",), inputs, "input")
        for name, spec in inputs.items():
            if not isinstance(spec, dict):
                self.report(R.INPUT_TYPE, ("inputs", name), f"component input '{name}' needs a type",
                            f"e.g. {name}: {{type: string}}")
                continue
            kind = spec.get("type")
            if kind in LEGACY_TYPES:
                self.report(R.LEGACY_TYPE, ("inputs", name, "type"), f"input '{name}' has the preview's type "
                            f"'{kind}'", "use uri_folder (or uri_file for one file)")
            elif kind not in LITERAL_TYPES + DATA_TYPES:
                self.report(R.INPUT_TYPE, ("inputs", name, "type"), f"unknown input type '{kind}'",
                            _close(str(kind), list(LITERAL_TYPES + DATA_TYPES)))
            default = spec.get("default")
            if default is not None and kind in LITERAL_TYPES and not coerces(default, kind):
                self.report(R.DEFAULT_TYPE, ("inputs", name, "default"), f"default {default!r} is not a {kind}",
                            f"give a {kind}, or change the type")

    # -------------------------------------------------------------- pipelines
    def pipeline_job(self) -> None:
        d = self.doc.data
        p_inputs = d.get("inputs") if isinstance(d.get("inputs"), dict) else {}
        p_outputs = d.get("outputs") if isinstance(d.get("outputs"), dict) else {}
        jobs = d.get("jobs")
        if not isinstance(jobs, dict) or not jobs:
            self.report(R.NO_JOBS, ("jobs",), "a pipeline needs jobs", "add jobs: {step_name: {component: ...}}")
            return
        self.secret_names(("inputs",), p_inputs, "input")
        for name, value in p_inputs.items():
            if isinstance(value, dict):
                self.local_path(("inputs", name, "path"), name, value.get("path"), value.get("type"))
                self.reference(("inputs", name, "path"), value.get("path"))
        settings = d.get("settings") if isinstance(d.get("settings"), dict) else {}
        default_compute = settings.get("default_compute") or d.get("compute")
        edges: dict[str, set[str]] = {name: set() for name in jobs}
        for step, node in jobs.items():
            if not isinstance(node, dict):
                self.report(R.NO_JOBS, ("jobs", step), f"step '{step}' must be a mapping",
                            "a step has component: or command: (and inputs, outputs)")
                continue
            self.step(step, node, jobs, p_inputs, p_outputs, default_compute, edges)
        cycle = _find_cycle(edges)
        if cycle:
            self.report(R.STEP_CYCLE, ("jobs", cycle[0]), f"steps depend on each other in a cycle: "
                        f"{' -> '.join(cycle)}", "a step can only use outputs of steps before it")

    def step(self, step: str, node: dict, jobs: dict, p_inputs: dict, p_outputs: dict, default_compute: Any,
             edges: dict[str, set[str]]) -> None:
        base = ("jobs", step)
        comp = self.component_of(base + ("component",), node.get("component"))
        step_type = str(node.get("type") or (comp or {}).get("type") or ("command" if "command" in node else ""))
        n_inputs = node.get("inputs") if isinstance(node.get("inputs"), dict) else {}
        n_outputs = node.get("outputs") if isinstance(node.get("outputs"), dict) else {}
        self.secret_names(base + ("inputs",), n_inputs, "input")
        self.step_bindings_refs(step, base, n_inputs, n_outputs, jobs, p_inputs, p_outputs, edges)
        if comp is not None:
            self.step_against_component(step, base, node, comp, n_inputs, n_outputs)
        elif "command" in node and step_type in COMMAND_STEPS:
            self.command_job(node, base, inline_node=True)
        if step_type not in COMMAND_STEPS:
            self.env_vars(base + ("environment_variables",), node.get("environment_variables"))
            return  # spark, parallel, automl, sweep, pipeline and data steps have their own resources and runtime
        step_command = comp.get("command") if comp is not None else node.get("command")
        self.pasted(step_command, self.step_bindings(step, base, n_inputs, p_inputs))
        shape = dict(node)
        if comp is not None and not node.get("distribution") and isinstance(comp.get("distribution"), dict):
            shape["distribution"] = comp["distribution"]
        shape.setdefault("command", step_command)
        self.run_shape(base, shape, node.get("compute") or default_compute)
        # the step's own limits, queue settings, identity and services, where it runs
        self.job_settings(base, dict(shape, compute=node.get("compute") or default_compute))

    def step_bindings_refs(self, step: str, base: tuple, n_inputs: dict, n_outputs: dict, jobs: dict,
                           p_inputs: dict, p_outputs: dict, edges: dict[str, set[str]]) -> None:
        for name, value in n_inputs.items():
            texts = [value] if isinstance(value, str) else [value.get("path")] if isinstance(value, dict) else []
            for text in texts:
                for ref in REF.findall(text) if isinstance(text, str) else []:
                    self.parent_ref(base + ("inputs", name), ref, p_inputs, p_outputs, jobs, step, edges)
            if isinstance(value, dict):
                self.local_path(base + ("inputs", name, "path"), name, value.get("path"), value.get("type"))
        for name, value in n_outputs.items():
            text = value if isinstance(value, str) else (value or {}).get("path") if isinstance(value, dict) else None
            for ref in REF.findall(text or ""):
                head = ref.split(".")
                if head[:2] == ["parent", "outputs"] and len(head) == 3 and head[2] not in p_outputs:
                    self.report(R.PARENT_OUTPUT, base + ("outputs", name), f"binds ${{{{{ref}}}}} but the pipeline "
                                f"declares no output '{head[2]}'", _close(head[2], [str(k) for k in p_outputs]))

    def step_against_component(self, step: str, base: tuple, node: dict, comp: dict, n_inputs: dict,
                               n_outputs: dict) -> None:
        c_inputs = comp.get("inputs") if isinstance(comp.get("inputs"), dict) else {}
        c_outputs = comp.get("outputs") if isinstance(comp.get("outputs"), dict) else {}
        for name in n_inputs:
            if name not in c_inputs:
                self.report(R.STEP_UNDECLARED, base + ("inputs", name), f"step '{step}' passes input '{name}' that "
                            "its component does not declare (Azure drops it silently)",
                            _close(str(name), [str(k) for k in c_inputs]))
        for name in n_outputs:
            if name not in c_outputs:
                self.report(R.STEP_UNDECLARED, base + ("outputs", name), f"step '{step}' binds output '{name}' that "
                            "its component does not declare", _close(str(name), [str(k) for k in c_outputs]))
        for name, spec in c_inputs.items():
            required = isinstance(spec, dict) and not spec.get("optional") and spec.get("default") is None
            if required and name not in n_inputs:
                self.report(R.STEP_REQUIRED, base + ("inputs",) if "inputs" in node else base,
                            f"step '{step}' does not give required input '{name}' of its component",
                            f"add inputs: {{{name}: ...}} to the step")

    def parent_ref(self, ypath: tuple, ref: str, p_inputs: dict, p_outputs: dict, jobs: dict, step: str,
                   edges: dict[str, set[str]]) -> None:
        parts = ref.split(".")
        if parts[0] != "parent":
            if parts[0] in ("inputs", "outputs"):
                self.report(R.UNPARENTED, ypath, f"binds ${{{{{ref}}}}}; inside a pipeline step use "
                            f"${{{{parent.{ref}}}}}", "pipeline-level values are reached through parent.")
            return
        if parts[1:2] == ["inputs"] and len(parts) >= 3:
            if parts[2] not in p_inputs:
                self.report(R.PARENT_INPUT, ypath, f"binds ${{{{{ref}}}}} but the pipeline declares no input "
                            f"'{parts[2]}'", _close(parts[2], [str(k) for k in p_inputs])
                            + " (add it under the pipeline's inputs:)")
        elif parts[1:2] == ["jobs"] and len(parts) >= 5:
            other, io, name = parts[2], parts[3], parts[4]
            if other not in jobs:
                self.report(R.STEP_REFERENCE, ypath, f"binds ${{{{{ref}}}}} but there is no step '{other}'",
                            _close(other, [str(k) for k in jobs]))
                return
            edges.setdefault(step, set()).add(other)
            other_node = jobs[other] if isinstance(jobs[other], dict) else {}
            comp = self.component_of(None, other_node.get("component"))
            declared = comp.get(io) if comp else other_node.get(io)
            if isinstance(declared, dict) and name not in declared and not (io == "outputs" and name == "artifacts"):
                self.report(R.STEP_REFERENCE, ypath, f"binds ${{{{{ref}}}}} but step '{other}' has no {io[:-1]} "
                            f"'{name}'", _close(name, [str(k) for k in declared]))

    def component_of(self, ypath: tuple | None, ref: Any) -> dict | None:
        """The component a node uses, parsed, when it is a local file or inline."""
        if isinstance(ref, dict):
            return ref
        if not isinstance(ref, str) or not ref or has_placeholder(ref):
            return None
        if ypath is not None:
            self.reference(ypath, ref)
        local = refs.local_path(ref)
        if local is None:
            return None
        ref = local
        target = (self.base / ref).resolve()
        target = self.overlay.get(target, target)  # rendered in the same batch, not written yet
        if not target.is_file():
            if ypath is not None:
                self.report(R.COMPONENT_FILE, ypath, f"component file '{ref}' does not exist (resolved to "
                            f"{target})", "paths are relative to the pipeline file's folder")
            return None
        if target not in self.referenced:
            self.referenced.append(target)
        return _load_plain(target)

    # -------------------------------------------------------------- sweeps
    def sweep_job(self) -> None:
        d = self.doc.data
        space = d.get("search_space") if isinstance(d.get("search_space"), dict) else {}
        if not space:
            self.report(R.SWEEP_SPACE, ("search_space",), "a sweep needs a search_space",
                        "search_space: {lr: {type: uniform, min_value: 0.001, max_value: 0.1}}")
        inputs = d.get("inputs") if isinstance(d.get("inputs"), dict) else {}
        outputs = d.get("outputs") if isinstance(d.get("outputs"), dict) else {}
        used: set[str] = set()
        for name, value in inputs.items():
            for ref in REF.findall(str(value)):
                head, _, param = ref.partition(".")
                if head == "search_space":
                    used.add(param)
                    if param not in space:
                        self.report(R.SWEEP_SPACE, ("inputs", name), f"binds ${{{{{ref}}}}} but the search space "
                                    f"has no '{param}'", _close(param, [str(k) for k in space]))
        self.io_names(("inputs",), inputs)
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
            self.reference(("trial", "environment"), trial.get("environment"))
            self.run_shape(("trial",), dict(trial, resources=trial.get("resources") or d.get("resources")),
                           d.get("compute"))
        elif isinstance(trial, str):
            self.component_of(("trial",), trial)
        self.sweep_space(space, used)
        self.sweep_settings(d, space)
        self.job_settings((), d)

    def sweep_space(self, space: dict, used: set[str]) -> None:
        for param, spec in space.items():
            if param not in used:
                self.report(R.SWEEP_UNUSED, ("search_space", param), f"search space parameter '{param}' is never "
                            "used", f"bind it: inputs: {{{param}: ${{{{search_space.{param}}}}}}} or use it in the "
                            "command")
            if isinstance(spec, dict) and "min_value" in spec and "max_value" in spec:
                try:
                    low, high = float(spec["min_value"]), float(spec["max_value"])
                except (TypeError, ValueError):
                    continue
                if low >= high:
                    self.report(R.SWEEP_RANGE, ("search_space", param, "min_value"), f"'{param}': min_value {low:g} "
                                f"is not below max_value {high:g}", "swap them, or use type: choice for one value")

    def sweep_settings(self, d: dict, space: dict) -> None:
        algorithm = d.get("sampling_algorithm")
        algo = algorithm.get("type") if isinstance(algorithm, dict) else algorithm
        if algo == "grid":
            for param, spec in space.items():
                if isinstance(spec, dict) and spec.get("type") != "choice":
                    self.report(R.SWEEP_SAMPLING, ("search_space", param), f"grid sampling needs choice "
                                f"parameters; '{param}' is {spec.get('type')}", "use type: choice with values, or "
                                "random sampling")
        if algo == "bayesian" and d.get("early_termination"):
            self.report(R.SWEEP_SAMPLING, ("early_termination",), "bayesian sampling does not support early "
                        "termination", "remove early_termination or use random sampling")
        limits = d.get("limits") if isinstance(d.get("limits"), dict) else {}
        total, concurrent = limits.get("max_total_trials"), limits.get("max_concurrent_trials")
        if isinstance(total, int) and isinstance(concurrent, int) and concurrent > total:
            self.report(R.SWEEP_LIMITS, ("limits", "max_concurrent_trials"), f"max_concurrent_trials {concurrent} "
                        f"is above max_total_trials {total}", "lower it to max_total_trials")

    # -------------------------------------------------------------- assets and the rest
    def environment(self) -> None:
        d = self.doc.data
        if not d.get("image") and not d.get("build"):
            self.report(R.ENV_IMAGE, (), "an environment needs an image (or a build context)",
                        "image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest")
        conda = d.get("conda_file")
        if refs.local_path(conda) is not None and not has_placeholder(conda):
            target = (self.base / refs.local_path(conda)).resolve()
            if not target.is_file():
                self.report(R.CONDA_MISSING, ("conda_file",), f"conda file '{conda}' does not exist (resolved to "
                            f"{target})", "paths are relative to the YAML file's folder")
            else:
                self.onnxruntime_builds(("conda_file",), _pip_list(_load_plain(target)), f"conda file '{conda}'")
        elif isinstance(conda, dict):
            self.onnxruntime_builds(("conda_file",), _pip_list(conda), "conda_file")
        build = d.get("build") if isinstance(d.get("build"), dict) else None
        context = build.get("path") if build else None
        if refs.local_path(context) is not None and not has_placeholder(context):
            folder = (self.base / refs.local_path(context)).resolve()
            dockerfile = str(build.get("dockerfile_path") or "Dockerfile")
            if not folder.is_dir():
                self.report(R.BUILD_CONTEXT, ("build", "path"), f"build context '{context}' does not exist "
                            f"(resolved to {folder})", "paths are relative to the YAML file's folder")
            elif not (folder / dockerfile).is_file():
                self.report(R.BUILD_CONTEXT, ("build", "path"), f"build context '{context}' has no {dockerfile}",
                            "add it, or set build.dockerfile_path")
            if folder.is_dir():  # uploaded whole for the image build, as a code folder is
                self.secret_files(("build", "path"), code_files_cached(str(folder), folder.stat().st_mtime),
                                  f"build context '{context}'")

    def onnxruntime_builds(self, ypath: tuple, pip: list[str], where: str) -> None:
        from ..spec import onnxruntime_builds

        builds = onnxruntime_builds(pip)
        if len(builds) > 1:
            self.report(R.ONNXRUNTIME_BUILDS, ypath, f"{where} lists {' and '.join(builds)}: both install the one "
                        "onnxruntime module and overwrite each other", "keep one (onnxruntime-openvino runs int8 "
                        "models fastest on Intel/AMD CPUs)")

    def compute(self) -> None:
        d = self.doc.data
        size_name = d.get("size")
        size = vmsizes.lookup(size_name)
        if size_name and size is None and not has_placeholder(size_name):
            close = vmsizes.suggest(str(size_name))
            self.report(R.VM_UNKNOWN, ("size",), f"VM size '{size_name}' is not in the VM size table; GPUs are not "
                        "checked", f"did you mean {close}?" if close else "check the name with 'az vm list-sizes'")
        elif size is not None and size.retired:
            message, hint = vmsizes.retired_message(size)
            self.report(R.VM_RETIRED, ("size",), message, hint)
        lo, hi = d.get("min_instances", 0), d.get("max_instances", 1)
        if isinstance(lo, int) and isinstance(hi, int) and lo > hi:
            self.report(R.COMPUTE_RANGE, ("min_instances",), f"min_instances {lo} is above max_instances {hi}",
                        f"use min_instances: 0 and max_instances: {max(lo, 1)}")
        if isinstance(lo, int) and lo > 0 and size is not None and size.gpus:
            self.report(R.IDLE_GPUS, ("min_instances",), f"min_instances {lo} keeps {lo} GPU node(s) billed while "
                        "idle", "use min_instances: 0 so the cluster scales to zero")
        tier = d.get("tier")
        if tier is not None and str(tier).lower() not in ("dedicated", "low_priority"):
            self.report(R.COMPUTE_RANGE, ("tier",), f"unknown tier '{tier}'", "use dedicated or low_priority")

    def online_deployment(self) -> None:
        d = self.doc.data
        kubernetes = str(d.get("type", "")).lower() == "kubernetes"  # its instance types are the cluster's own
        size_name = None if kubernetes else d.get("instance_type")
        size = vmsizes.lookup(size_name)
        if size_name and size is None and not has_placeholder(size_name):
            close = vmsizes.suggest(str(size_name))
            self.report(R.VM_UNKNOWN, ("instance_type",), f"instance type '{size_name}' is not in the VM size table",
                        f"did you mean {close}?" if close else "check the managed online endpoint SKU list")
        elif size is not None and size.retired:
            message, hint = vmsizes.retired_message(size)
            self.report(R.VM_RETIRED, ("instance_type",), message, hint)
        self.deployment_files()

    def batch_deployment(self) -> None:
        """A batch deployment: its files, and the settings Azure's batch executor cannot run with
        (azure-ai-ml checks output_action and its file name, not these numbers)."""
        self.deployment_files()
        d = self.doc.data
        if d.get("environment_variables") and self.doc.kind == "model_batch_deployment":
            self.report(R.BATCH_DROPPED, ("environment_variables",), "azure-ai-ml drops a model batch deployment's "
                        "top-level environment_variables: the scoring processes never see them",
                        "move them under settings: (settings.environment_variables)")
        for path, message, hint in jobsettings.batch_problems(d):
            value: Any = d
            for key in path:
                value = value.get(key) if isinstance(value, dict) else None
            if not has_placeholder(value):
                self.report(R.BATCH_SETTINGS, path, message, hint)

    def deployment_files(self) -> None:
        """An online or batch deployment's scoring script, local model path and references."""
        d = self.doc.data
        config = d.get("code_configuration") if isinstance(d.get("code_configuration"), dict) else {}
        code_dir = self.code(("code_configuration", "code"), config.get("code"))
        script = config.get("scoring_script")
        if code_dir is not None and isinstance(script, str) and not has_placeholder(script) \
                and not (code_dir / script).is_file():
            self.report(R.SCORING_SCRIPT, ("code_configuration", "scoring_script"), f"scoring script '{script}' is "
                        f"not in {code_dir}", "fix scoring_script or code")
        model = d.get("model")
        if refs.local_path(model) is not None and not has_placeholder(model) \
                and not (self.base / refs.local_path(model)).exists():
            self.report(R.SCORING_SCRIPT, ("model",), f"model path '{model}' does not exist", "or reference a "
                        "registered model: azureml:<name>:<version>")
        self.reference(("model",), model)
        self.reference(("environment",), d.get("environment"))

    def preview_keys(self) -> None:
        d = self.doc.data
        if "datastore" in d and isinstance(d.get("path"), str) and _is_local(d["path"]):
            self.report(R.PREVIEW, ("datastore",), "datastore: is preview syntax that Azure ML v2 ignores: path "
                        f"'{d['path']}' is then read as a local file", f"write path: azureml://datastores/"
                        f"{str(d['datastore']).removeprefix('azureml:')}/paths/{d['path']}")
        if str(d.get("type", "")).lower() in kinds.PREVIEW_TYPES:
            self.report(R.PREVIEW, ("type",), f"type: {d['type']} is the preview's name", "Azure ML v2 writes "
                        + {"command_component": "type: command (with a $schema of commandComponent)",
                           "online": "no type: on a managed online endpoint"}[str(d['type']).lower()])

    def data_asset(self) -> None:
        d = self.doc.data
        self.preview_keys()
        self.url(("path",), d.get("path"))
        path = d.get("path")
        if refs.local_path(path) is not None and not has_placeholder(path):
            target = (self.base / refs.local_path(path)).resolve()
            if not target.exists():
                self.report(R.DATA_PATH, ("path",), f"data path '{path}' does not exist (resolved to {target})",
                            "paths are relative to the YAML file's folder")
            elif d.get("type") == "mltable" and target.is_dir() and not (target / "MLTable").is_file():
                self.report(R.MLTABLE_FILE, ("path",), f"mltable data asset folder '{path}' has no MLTable file",
                            "add the MLTable file, or use type: uri_folder")

    def schedule(self) -> None:
        trigger = self.doc.data.get("trigger")
        if not isinstance(trigger, dict):
            return
        kind = str(trigger.get("type", "")).lower()
        if kind == "cron" and trigger.get("expression") is not None:
            problem = jobsettings.cron_problem(trigger["expression"])
            if problem:
                self.report(R.SCHEDULE, ("trigger", "expression"), f"cron expression '{trigger['expression']}' "
                            f"{problem}", "e.g. expression: \"0 2 * * 1\" (02:00 every Monday)")
        elif kind == "recurrence":
            interval = trigger.get("interval")
            if interval is not None and (_whole(interval) is None or _whole(interval) < 1):
                self.report(R.SCHEDULE, ("trigger", "interval"), f"recurrence interval {interval!r} is not a "
                            "whole number of at least 1", "e.g. frequency: day, interval: 1")


def _strings(data: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    if isinstance(data, dict):
        return [found for key, value in data.items() for found in _strings(value, path + (key,))]
    if isinstance(data, list):
        return [found for i, value in enumerate(data) for found in _strings(value, path + (i,))]
    return [(path, data)] if isinstance(data, str) else []


def _pip_list(conda: Any) -> list[str]:
    """The pip requirements (and conda packages) a conda specification lists."""
    out: list[str] = []
    for dep in (conda or {}).get("dependencies") or [] if isinstance(conda, dict) else []:
        if isinstance(dep, str):
            out.append(dep)
        elif isinstance(dep, dict) and isinstance(dep.get("pip"), list):
            out.extend(str(p) for p in dep["pip"])
    return out


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
