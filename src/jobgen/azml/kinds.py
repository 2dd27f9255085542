"""What an Azure ML YAML file is, decided once, exactly: from the file name of its `$schema` URL
(`.../latest/commandJob.schema.json` -> command_job) and its `type:`; without a `$schema`, from
`type:` and the keys only each kind has. No guessing by substring: a `$schema` we do not know
is a kind we do not know (azure-ai-ml still judges it when its `type:` names a loader).

Each kind names the azure-ai-ml function that loads it (the second opinion in lint, the entity
`submit` sends) and the `$schema` URL that files of that kind should start with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

SCHEMA_BASE = "https://azuremlschemas.azureedge.net/latest/"


@dataclass(frozen=True)
class Kind:
    name: str
    loader: str | None  # the azure.ai.ml load_* function, None when azure-ai-ml has none
    schema: str | None  # the $schema file name (without .schema.json) a file of this kind should give
    family: str  # job | component | asset | compute | endpoint | deployment | resource | schedule | other

    @property
    def schema_url(self) -> str | None:
        return f"{SCHEMA_BASE}{self.schema}.schema.json" if self.schema else None


KINDS: dict[str, Kind] = {k.name: k for k in [
    Kind("command_job", "load_job", "commandJob", "job"),
    Kind("pipeline_job", "load_job", "pipelineJob", "job"),
    Kind("sweep_job", "load_job", "sweepJob", "job"),
    Kind("spark_job", "load_job", "sparkJob", "job"),
    Kind("automl_job", "load_job", "autoMLJob", "job"),
    Kind("parallel_job", "load_job", None, "job"),
    Kind("command_component", "load_component", "commandComponent", "component"),
    Kind("pipeline_component", "load_component", "pipelineComponent", "component"),
    Kind("spark_component", "load_component", "sparkComponent", "component"),
    Kind("parallel_component", "load_component", "parallelComponent", "component"),
    Kind("data_transfer_component", "load_component", None, "component"),
    Kind("environment", "load_environment", "environment", "asset"),
    Kind("data", "load_data", "data", "asset"),
    Kind("data_import", "load_data", None, "asset"),
    Kind("model", "load_model", "model", "asset"),
    Kind("model_package", "load_model_package", None, "asset"),
    Kind("mltable", None, None, "asset"),
    Kind("compute", "load_compute", "amlCompute", "compute"),
    Kind("compute_instance", "load_compute", "computeInstance", "compute"),
    Kind("kubernetes_compute", "load_compute", "kubernetesCompute", "compute"),
    Kind("vm_compute", "load_compute", "vmCompute", "compute"),
    Kind("spark_compute", "load_compute", None, "compute"),
    Kind("online_endpoint", "load_online_endpoint", "managedOnlineEndpoint", "endpoint"),
    Kind("online_deployment", "load_online_deployment", "managedOnlineDeployment", "deployment"),
    Kind("batch_endpoint", "load_batch_endpoint", "batchEndpoint", "endpoint"),
    Kind("batch_deployment", "load_batch_deployment", "batchDeployment", "deployment"),
    Kind("model_batch_deployment", "load_model_batch_deployment", "modelBatchDeployment", "deployment"),
    Kind("pipeline_batch_deployment", "load_pipeline_component_batch_deployment",
         "pipelineComponentBatchDeployment", "deployment"),
    Kind("schedule", "load_schedule", "schedule", "schedule"),
    Kind("registry", "load_registry", None, "resource"),
    Kind("workspace", "load_workspace", "workspace", "resource"),
    Kind("datastore", "load_datastore", None, "resource"),
    Kind("connection", "load_connection", None, "resource"),
    Kind("feature_store", "load_feature_store", None, "resource"),
    Kind("feature_set", "load_feature_set", None, "asset"),
    Kind("feature_store_entity", "load_feature_store_entity", None, "asset"),
]}

# Batch deployments that score files with a model (what `run --input` and `submit --set-default` take).
BATCH_DEPLOYMENTS = ("model_batch_deployment", "batch_deployment")

# $schema file names (lower case, without .schema.json / .json) -> kind. The names Azure publishes
# under azuremlschemas.azureedge.net/latest/ and the SDK's own (http://azureml/sdk-2-0/X.json).
SCHEMAS = {
    "commandjob": "command_job", "pipelinejob": "pipeline_job", "sweepjob": "sweep_job", "sparkjob": "spark_job",
    "parallel": "parallel_job", "paralleljob": "parallel_job",
    "commandcomponent": "command_component", "pipelinecomponent": "pipeline_component",
    "sparkcomponent": "spark_component", "parallelcomponent": "parallel_component",
    "datatransfercomponent": "data_transfer_component",
    "environment": "environment", "data": "data", "asset": "data", "dataset": "data", "dataimport": "data_import",
    "model": "model", "modelversionpackage": "model_package", "modelpackage": "model_package", "mltable": "mltable",
    "amlcompute": "compute", "computeinstance": "compute_instance", "kubernetescompute": "kubernetes_compute",
    "vmcompute": "vm_compute", "synapsesparkcompute": "spark_compute",
    "managedonlineendpoint": "online_endpoint", "kubernetesonlineendpoint": "online_endpoint",
    "managedonlinedeployment": "online_deployment", "kubernetesonlinedeployment": "online_deployment",
    "batchendpoint": "batch_endpoint", "batchdeployment": "batch_deployment",
    "modelbatchdeployment": "model_batch_deployment",
    "pipelinecomponentbatchdeployment": "pipeline_batch_deployment",
    "schedule": "schedule", "jobschedule": "schedule", "monitorschedule": "schedule",
    "registry": "registry", "workspace": "workspace", "featurestore": "feature_store", "featureset": "feature_set",
    "featurestoreentity": "feature_store_entity",
    "azureblob": "datastore", "azurefile": "datastore", "azuredatalakegen1": "datastore",
    "azuredatalakegen2": "datastore", "onelakedatastore": "datastore", "onelake": "datastore",
    "connection": "connection", "workspaceconnection": "connection",
}
# AutoML publishes one schema per task (autoMLClassificationJob, autoMLImageObjectDetectionJob, ...).
AUTOML_SCHEMA = re.compile(r"^automl[a-z]*job$")

JOB_TYPES = {"command": "command_job", "pipeline": "pipeline_job", "sweep": "sweep_job", "spark": "spark_job",
             "automl": "automl_job", "parallel": "parallel_job"}
COMPONENT_TYPES = {"command": "command_component", "pipeline": "pipeline_component", "spark": "spark_component",
                   "parallel": "parallel_component", "data_transfer": "data_transfer_component"}
COMPUTE_TYPES = {"amlcompute": "compute", "computeinstance": "compute_instance", "kubernetes": "kubernetes_compute",
                 "virtualmachine": "vm_compute", "synapsespark": "spark_compute"}
DATASTORE_TYPES = {"azure_blob", "azure_file", "azure_data_lake_gen1", "azure_data_lake_gen2", "one_lake"}
CONNECTION_TYPES = {"git", "python_feed", "s3", "snowflake", "azure_sql_db", "azuresqldb", "container_registry",
                    "azure_container_registry", "api_key", "custom", "azure_open_ai", "azure_ai_search",
                    "azure_ai_services", "serverless", "azure_blob", "azure_one_lake"}
# The preview's type names (2021-22), still found in copied examples.
PREVIEW_TYPES = {"command_component": "command_component", "online": "online_endpoint"}
DATA_TYPES = ("uri_folder", "uri_file", "mltable")
MODEL_TYPES = ("custom_model", "mlflow_model", "triton_model")


def schema_name(data: Any) -> str | None:
    """The `$schema` file name, lower case, without its extension; None without a `$schema`."""
    if not isinstance(data, dict) or not data.get("$schema"):
        return None
    name = str(data["$schema"]).strip().rstrip("/").rsplit("/", 1)[-1].lower()
    return re.sub(r"(\.schema)?\.json$", "", name)


EDITOR_SCHEMA = re.compile(r"^#\s*yaml-language-server:\s*\$schema=(\S+)", re.M)


def detect(data: Any, text: str = "") -> str | None:
    """The kind of a parsed document; None when it is not Azure ML YAML we can name. Without a
    `$schema` key, an editor's `# yaml-language-server: $schema=URL` comment in ``text`` names it."""
    if not isinstance(data, dict):
        return None
    name = schema_name(data)
    if name is None and text:
        found = EDITOR_SCHEMA.search(text)
        if found:
            name = schema_name({"$schema": found.group(1)})
    if name is not None:
        return by_schema(name, data)
    return by_shape(data)


def by_schema(name: str, data: dict) -> str | None:
    if AUTOML_SCHEMA.match(name):
        return "automl_job"
    kind = SCHEMAS.get(name)
    if kind == "batch_deployment":  # the generic batch deployment schema covers model and pipeline ones
        kind = {"model": "model_batch_deployment", "pipeline": "pipeline_batch_deployment"}.get(
            str(data.get("type") or "").lower(), kind)
    return kind


def by_shape(data: dict) -> str | None:
    """Without a `$schema`: from `type:` and the keys that only one kind has."""
    kind = str(data.get("type") or "").lower()
    if kind in PREVIEW_TYPES:  # azure-ai-ml's loader refuses them, in its own words
        return PREVIEW_TYPES[kind]
    if kind in JOB_TYPES:
        return _job_or_component(kind, data)
    if kind in COMPUTE_TYPES:
        return COMPUTE_TYPES[kind]
    if kind in DATASTORE_TYPES:
        return "datastore"
    if kind in DATA_TYPES and "path" in data:
        return "data"
    if kind in MODEL_TYPES and "path" in data:
        return "model"
    if kind in CONNECTION_TYPES and ("target" in data or "credentials" in data or "url" in data):
        return "connection"
    if "replication_locations" in data:
        return "registry"
    if "managed_network" in data or "hbi_workspace" in data:
        return "workspace"
    if ("image" in data or "build" in data) and "command" not in data:
        return "environment"
    if "trigger" in data and ("create_job" in data or "create_monitor" in data):
        return "schedule"
    if "endpoint_name" in data and ("model" in data or "code_configuration" in data) and kind != "batch":
        return "online_deployment" if "instance_type" in data or "instance_count" in data else None
    if kind == "" and "command" in data:
        return _job_or_component("command", data)
    return None


def _job_or_component(kind: str, data: dict) -> str:
    """`type: command` (or pipeline, spark, parallel) names a job or a component; a component has a
    name and a version and no compute or experiment, or typed inputs with defaults."""
    if kind not in COMPONENT_TYPES:
        return JOB_TYPES[kind]
    job_only = ("compute", "experiment_name", "settings", "services", "limits", "identity", "queue_settings")
    if any(key in data for key in job_only):
        return JOB_TYPES[kind]
    if "version" in data:
        return COMPONENT_TYPES[kind]
    inputs = data.get("inputs") or {}
    if isinstance(inputs, dict) and any(isinstance(v, dict) and ("optional" in v or "default" in v)
                                        for v in inputs.values()):
        return COMPONENT_TYPES[kind]
    return JOB_TYPES[kind]


def loader(kind: str | None) -> str | None:
    found = KINDS.get(kind or "")
    return found.loader if found else None


def load_function(kind: str | None):
    """azure-ai-ml's load_* function for ``kind`` (some, such as load_schedule, are not exported
    at the package's top), or None."""
    name = loader(kind)
    if name is None:
        return None
    from azure.ai.ml.entities import _load_functions

    return getattr(_load_functions, name, None)


def is_job(kind: str | None) -> bool:
    return kind in KINDS and KINDS[kind].family == "job"
