"""The named rules: every finding lint (and the spec, for the facts it shares with lint) reports
carries one of these IDs. `generator.py lint --list-rules` prints them; `--disable ID` and a
`# jobgen: disable=ID` comment in the YAML silence one (the comment on its own line: the whole
file; at the end of a line: the findings on that line).

The bar for a rule: a person reading the finding agrees the file is wrong, or that it will fail or
waste GPUs on Azure. Severity is the default; a check may report a case of a rule at the other
severity (more processes than GPUs is an error, fewer is a warning).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    summary: str


RULES: dict[str, Rule] = {}


def _rule(rule_id: str, severity: str, summary: str) -> Rule:
    assert rule_id not in RULES, rule_id
    RULES[rule_id] = Rule(rule_id, severity, summary)
    return RULES[rule_id]


# ---------------------------------------------------------------- the file itself
NOT_YAML = _rule("JG001", ERROR, "not readable YAML: syntax, encoding, size, nesting, alias expansion, not a file")
DUPLICATE_KEY = _rule("JG002", ERROR, "a key appears twice in one mapping (YAML keeps only the last)")
NO_SCHEMA = _rule("JG003", WARNING, "an Azure ML file without its $schema line")
UNKNOWN_SCHEMA = _rule("JG004", WARNING, "a $schema that jobgen does not know (only generic rules run)")
UNRECOGNISED = _rule("JG005", WARNING, "a YAML file that is not Azure ML YAML (skipped)")
PLACEHOLDER = _rule("JG006", WARNING, "a template placeholder left in a value (<YOUR_...>, {{NAME}})")
AZURE = _rule("JG007", ERROR, "azure-ai-ml's own verdict: its load_* and _validate() (prefixed azure-ai-ml:)")
PREVIEW = _rule("JG008", ERROR, "the 2021-22 preview's syntax that Azure ML v2 ignores or refuses (datastore:, ...)")
SECRET_VALUE = _rule("JG010", ERROR, "a value that looks like a secret (SAS, account key, JWT, PEM, tokens)")
SECRET_NAME = _rule("JG011", ERROR, "an environment variable or input named like a secret, with a value written")

# ---------------------------------------------------------------- code
CODE_MISSING = _rule("JG020", ERROR, "the code folder does not exist")
CODE_LINK = _rule("JG021", ERROR, "a link in the code folder that points outside it, nowhere, or at itself")
CODE_TOO_LARGE = _rule("JG022", ERROR, "a code snapshot over 300 MB (Azure refuses it)")
SCRIPT_MISSING = _rule("JG023", ERROR, "the command's script or module is not in the code folder")
CODE_SECRET_FILE = _rule("JG024", ERROR, "a private key or .env file inside the code snapshot or a build context (both are uploaded)")

# ---------------------------------------------------------------- commands and references
REF_UNKNOWN = _rule("JG030", ERROR, "${{...}} that names no input, output or search space parameter")
REF_NAMESPACE = _rule("JG031", ERROR, "${{...}} that Azure does not substitute here")
OPTIONAL_IN_JOB = _rule("JG032", ERROR, "$[[...]] in a job (optional segments work only in components)")
OPTIONAL_REQUIRED = _rule("JG033", ERROR, "a required input inside $[[...]] (the segment is never dropped)")
OPTIONAL_OUTSIDE = _rule("JG034", ERROR, "an optional input used outside $[[...]] (a dangling flag when absent)")
OLD_OPTIONAL = _rule("JG035", ERROR, "the preview's [--flag ${{inputs.x}}] segment (v2 writes $[[...]])")
BACKSLASH = _rule("JG036", ERROR, "a \\ line continuation in a component command (Azure does not support it)")
SHELL_VALUE = _rule("JG037", ERROR, "a literal the shell interprets where Azure pastes it into the command")
SHELL_SPLIT = _rule("JG038", WARNING, "a literal with spaces pasted unquoted after an option (split into words)")
NO_COMMAND = _rule("JG039", ERROR, "a command job or component without a command")

# ---------------------------------------------------------------- inputs and outputs
BAD_NAME = _rule("JG040", ERROR, "an input or output name that is not a valid identifier")
RESERVED_NAME = _rule("JG041", ERROR, "an input or output name Azure reserves (it is an environment variable)")
TYPED_JOB_INPUT = _rule("JG042", ERROR, "typed component input syntax (type/default/optional) on a job")
INPUT_PATH_MISSING = _rule("JG043", ERROR, "a local data path that does not exist")
INPUT_TYPE = _rule("JG044", ERROR, "an input without a type, or of a type Azure does not know")
LEGACY_TYPE = _rule("JG045", WARNING, "the legacy input type 'path' (today: uri_folder or uri_file)")
DEFAULT_TYPE = _rule("JG046", ERROR, "a default that cannot be read as its input's type")

# ---------------------------------------------------------------- distribution, resources, sizes
DISTRIBUTION = _rule("JG050", ERROR, "an unknown distribution type, or a distribution that is not a mapping")
DISTRIBUTION_KEY = _rule("JG051", ERROR, "an unknown key under distribution (Azure drops it)")
PROCESS_COUNT = _rule("JG052", ERROR, "process_count_per_instance that is not a whole number of at least 1")
RESOURCES_KEY = _rule("JG053", ERROR, "an unknown key under resources (Azure drops it)")
INSTANCE_COUNT = _rule("JG054", ERROR, "instance_count that is not a whole number of at least 1")
NODES_NO_DISTRIBUTION = _rule("JG055", WARNING, "instance_count above 1 without a distribution")
VM_CAPACITY = _rule("JG056", ERROR, "processes per node against the VM's GPUs (more: error, fewer: warning)")
VM_RETIRED = _rule("JG057", ERROR, "a retired VM size (the finding names the replacement)")
VM_UNKNOWN = _rule("JG058", WARNING, "a VM size not in the size table (its GPUs are not checked)")
LAUNCHER_TWICE = _rule("JG059", ERROR, "a launcher (torchrun, deepspeed, accelerate) under pytorch with P > 1: P x P workers")
LOCAL_RANK = _rule("JG060", WARNING, "--local_rank given $RANK (the global rank) instead of $LOCAL_RANK")
SHM_SIZE = _rule("JG061", ERROR, "shm_size that is not a size (e.g. 16g) or exceeds the VM's memory")
DOCKER_SHM = _rule("JG062", WARNING, "docker_args setting --shm-size or --ipc beside shm_size")
TIMEOUT = _rule("JG063", ERROR, "limits.timeout that is not a positive number of seconds")
QUEUE_SETTINGS = _rule("JG064", ERROR, "queue_settings with an unknown job_tier or priority")
SERVICES = _rule("JG065", ERROR, "an interactive service that cannot work as written (ssh without a key)")
REFERENCE = _rule("JG066", ERROR, "a malformed asset reference (azureml:name@label, azureml://registries/...)")
QUEUE_NO_EFFECT = _rule("JG067", WARNING, "queue_settings.job_tier on a compute cluster (only serverless jobs have tiers)")
IDENTITY = _rule("JG068", ERROR, "an identity that cannot work where the job runs (serverless: no system-assigned identity)")

# ---------------------------------------------------------------- pipelines
NO_JOBS = _rule("JG070", ERROR, "a pipeline without steps, or a step that is not a mapping")
PARENT_INPUT = _rule("JG071", ERROR, "a step binds ${{parent.inputs.x}} that the pipeline does not declare")
PARENT_OUTPUT = _rule("JG072", ERROR, "a step binds ${{parent.outputs.x}} that the pipeline does not declare")
STEP_REFERENCE = _rule("JG073", ERROR, "a step binds another step or output that does not exist")
STEP_UNDECLARED = _rule("JG074", ERROR, "a step passes an input or binds an output its component does not declare")
STEP_REQUIRED = _rule("JG075", ERROR, "a step leaves out a required input of its component")
STEP_CYCLE = _rule("JG076", ERROR, "steps that depend on each other in a cycle")
COMPONENT_FILE = _rule("JG077", ERROR, "a step's component file does not exist")
UNPARENTED = _rule("JG078", ERROR, "a step binds ${{inputs.x}} where it means ${{parent.inputs.x}}")

# ---------------------------------------------------------------- components
COMPONENT_DROPPED = _rule("JG080", ERROR, "environment_variables or limits on a component (Azure drops them)")
COMPONENT_KEY = _rule("JG081", ERROR, "an unknown top-level key on a command component (Azure drops it)")

# ---------------------------------------------------------------- sweeps
SWEEP_SPACE = _rule("JG090", ERROR, "a sweep without a search space, or binding a parameter it does not have")
SWEEP_UNUSED = _rule("JG091", WARNING, "a search space parameter that is never used")
SWEEP_SAMPLING = _rule("JG092", ERROR, "grid sampling over non-choice parameters; bayesian with early termination")
SWEEP_LIMITS = _rule("JG093", WARNING, "max_concurrent_trials above max_total_trials")
SWEEP_RANGE = _rule("JG094", ERROR, "a search space range whose min_value is not below its max_value")

# ---------------------------------------------------------------- assets, computes, deployments
ENV_IMAGE = _rule("JG100", ERROR, "an environment without an image or a build context")
CONDA_MISSING = _rule("JG101", ERROR, "an environment's conda file does not exist")
ONNXRUNTIME_BUILDS = _rule("JG102", ERROR, "two onnxruntime builds in one environment (they overwrite each other)")
BUILD_CONTEXT = _rule("JG103", ERROR, "a Docker build context without its Dockerfile")
COMPUTE_RANGE = _rule("JG104", ERROR, "min_instances above max_instances, or an unknown tier")
IDLE_GPUS = _rule("JG105", WARNING, "min_instances above 0 on a GPU cluster (billed while idle)")
DUPLICATE_COMPUTE = _rule("JG106", WARNING, "two compute files define the same cluster name")
SCORING_SCRIPT = _rule("JG107", ERROR, "a deployment's scoring script or model path does not exist")
DATA_PATH = _rule("JG108", ERROR, "a data asset's local path does not exist")
MLTABLE_FILE = _rule("JG109", ERROR, "an mltable folder without its MLTable file")
SCHEDULE = _rule("JG110", ERROR, "a schedule whose cron expression or recurrence cannot fire")
BATCH_SETTINGS = _rule("JG111", ERROR, "batch deployment settings the batch executor cannot run (mini_batch_size 0, "
                       "error_threshold below -1, ...)")
BATCH_DROPPED = _rule("JG112", ERROR, "environment_variables at the top of a model batch deployment (azure-ai-ml "
                      "sends only settings.environment_variables)")

DISABLE_COMMENT = re.compile(r"#\s*jobgen:\s*disable=([A-Za-z0-9_, ]+)")


def parse_ids(text: str) -> set[str]:
    return {part.strip().upper() for part in text.split(",") if part.strip()}


def unknown(ids: set[str]) -> list[str]:
    return sorted(i for i in ids if i not in RULES)


def disabled_in(text: str) -> tuple[set[str], dict[int, set[str]]]:
    """(IDs disabled for the whole file, {line: IDs disabled on that line}) from its comments."""
    whole: set[str] = set()
    lines: dict[int, set[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        found = DISABLE_COMMENT.search(line)
        if not found:
            continue
        ids = parse_ids(found.group(1))
        if line[:found.start()].strip():
            lines.setdefault(number, set()).update(ids)
        else:
            whole |= ids
    return whole, lines


def listing() -> str:
    return "\n".join(f"{r.id}  {r.severity:<7}  {r.summary}" for r in RULES.values())
