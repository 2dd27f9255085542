"""A fake of the Azure Resource Manager / Azure ML REST endpoints on 127.0.0.1, for tests that run
the real ``azure.ai.ml.MLClient`` (its operations, serialization, snapshot upload, long-running
operations, log streaming and downloads) down to HTTP with nothing leaving the machine.

Usage::

    from helpers.fake_azure import FakeAzure, ml_client

    with FakeAzure(computes={"gpu-cluster": "Standard_NC6s_v3"}, data_assets={"penguins": [1]}) as fake:
        client = ml_client(fake)
        job = client.jobs.create_or_update(load_job("job.yml"))
        put = fake.find("PUT", "/jobs/")[-1]      # RecordedRequest: .method .path .query .headers .body
        assert put.body["properties"]["resources"]["instanceCount"] == 2
        assert fake.snapshot_files() == [".amlignore", "main.py", "util.py"]   # the code: folder as uploaded
        client.jobs.stream(job.name)               # Queued -> Running -> Completed, prints the fake log
        client.jobs.download(job.name, output_name="model_dir", download_path=tmp)

How the traffic gets here
-------------------------
* Control plane: ``ml_client(fake)`` builds ``MLClient(StaticCredential(), sub, rg, ws,
  transport=RewritingTransport(fake.port, ...))``. MLClient passes ``transport`` to every generated
  service client it builds (ARM ``management.azure.com``, and the lazily built run-history /
  dataset / model data-plane clients on the regional ``<region>.api.azureml.ms`` host, whose
  address comes from the workspace's discovery URL) and to its own plain ``HttpPipeline`` (used
  for the discovery document and for log files). ``RewritingTransport.send`` sends every
  non-loopback URL to ``http://127.0.0.1:<port>`` (same path and query) with the original host in
  the ``x-original-host`` header; the bearer-token policy has checked for https before the
  transport sees the request, and the request gets its https URL back after the send (pollers
  build their next URLs from it).
* Blob storage: azure-ai-ml talks to storage through azure-storage-blob clients it builds itself,
  without the transport. The code snapshot goes to the container SAS URL that
  ``startPendingUpload`` returns: an IP-style URL on 127.0.0.1 (Azurite's, or this server's own
  blob store under ``/_blob/<account>/<container>/...``). For the other storage calls (job
  outputs, logs in the artifact store) azure-ai-ml builds ``https://<account>.blob.core.windows.net``
  from the datastore; while a FakeAzure runs (``redirect_storage=True``, the default) the name
  ``RequestsTransport`` inside azure-storage-*'s ``_shared.base_client`` modules is swapped for a
  RewritingTransport subclass, so those requests reach the same blob store (Azurite gets the
  original ``Host`` and reads the account from it, so shared-key signatures still match).
  Nothing of MLClient is patched.
* Blob store: with ``azurite=Azurite(...)`` blobs really land in Azurite (account
  devstoreaccount1); without it the server's own minimal Blob REST implementation (PUT/GET/HEAD/
  DELETE blob, blocks and block lists, metadata, container create/properties/list with prefix and
  delimiter) keeps them in memory (``fake.blobs``; requests in ``fake.blob_requests``).

Assets
------
Codes, data, environments, components and models are versioned assets: PUT/GET a version, list
versions (newest first, ``$top``), GET the container (``latestVersion`` for ``@latest``). A code
version list with ``?hash=`` is answered workspace-wide, so an unchanged ``code:`` folder is not
uploaded twice, as in Azure.

Online endpoints and deployments
--------------------------------
``PUT .../onlineEndpoints/<name>`` and ``PUT .../onlineEndpoints/<ep>/deployments/<name>`` are
long-running operations, as in Azure: 201 (200 when it existed) with the resource in state
Creating/Updating, ``Azure-AsyncOperation`` (``mfeOperationsStatus``) and ``Location``
(``mfeOperationResults``) headers and ``retry-after-ms``; the resource turns Succeeded when the
operation is polled to its end (``lro_polls``). Both resources echo what was PUT (the endpoint
adds ``scoringUri``, ``swaggerUri``, ``provisioningState``; a body without a ``traffic`` key keeps
the old traffic, ``{}`` clears it; a deployment gets the service's defaults for scale settings,
request settings and probes it leaves out). ``GET`` one (404 when missing), list them, ``DELETE``
(an LRO), and ``POST .../listKeys`` (primary/secondary key), ``.../token``, ``.../regenerateKeys``
and ``.../deployments/<d>/getLogs`` are answered. Checks, as the service makes them (messages
are the fake's own wording): a deployment PUT needs its endpoint (404 otherwise) and a workspace
model it names must exist (400 UserError); an endpoint's traffic may only name deployments of
that endpoint and must add up to 0 or 100 (400 BadRequest).
``fake.endpoints[name]`` and ``fake.deployments["<endpoint>/<deployment>"]`` hold
``{"body": last PUT body, "puts": [every PUT body], "resource": ...}``; ``endpoint_body(name)``
and ``deployment_body(name)`` are the last PUT bodies. ``add_model(name, version)`` and
``add_online_endpoint`` / ``add_online_deployment`` seed them.

Batch endpoints and deployments
-------------------------------
``PUT .../batchEndpoints/<name>`` and ``.../batchEndpoints/<ep>/deployments/<name>`` are LROs as for online
ones (the endpoint adds ``scoringUri`` ``https://<name>.<region>.inference.ml.azure.com/jobs`` and keeps its
``defaults.deploymentName`` when an update leaves them out); a deployment needs its endpoint, its
workspace model and (``check_compute``) its compute. ``POST`` to the scoring URI is an invocation: the
deployment is the ``azureml-model-deployment`` header's or the endpoint's default (400 without one);
it starts a pipeline job (``batchjob-<uuid>``, readable and streamable as any job, with a ``score``
output) and ``fake.batch_jobs[name]`` keeps the invoke body. ``fake.batch_endpoints`` /
``fake.batch_deployments`` hold ``{"body", "puts", "resource"}``.

Registries
----------
``add_registry(name)`` makes an Azure ML registry (its own resource group, ``rg-registries``, and
region). ``MLClient(registry_name=name, transport=...)`` first asks registry discovery
(``GET <region>.api.azureml.ms/registrymanagement/v1.0/registries/<name>/discovery``: 404 for a
registry the fake does not hold), then sends its asset requests to the registry's data-plane host
(``cert-<region>.experiments.azureml.net/mferp/managementfrontend/subscriptions/.../registries/<name>/
{codes,environments,components,models,data}/...``): PUT/GET versions and containers, ``tempdatarefs``
(where a code snapshot or local files are uploaded: the same blob store as the workspace's uploads),
``datarefs``, and ``import`` (``models.share``: copies a workspace model version into the registry, a
long-running operation). ARM's ``GET .../registries/<name>`` answers the registry resource.
``fake.registries[name]["assets"][kind][asset][version]`` holds what was created, ``registry_body(name,
kind, asset, version)`` the PUT body as sent, ``["imports"]`` the import bodies. ``models.share``
builds its registry client without the MLClient's transport; while a fake runs, azure-core's default
transport sends Azure ML hosts (``*.api.azureml.ms``, ``*.experiments.azureml.net``,
``management.azure.com``) here too, and every other host as it would without the fake. A deployment
naming ``azureml://registries/<r>/models/<m>/versions/<v>`` needs that version in the registry (400).

Jobs
----
A PUT job is stored (``fake.job_body(name)`` is the request body as sent) and answered with the
job resource (``properties.status`` "NotStarted", ``services.Studio.endpoint``,
``services.Tracking.endpoint``, ``outputs.default`` in the artifact store). Every read of the
job's status (ARM GET, run-history ``details``/``rundata``/run GET) advances it through
``status_sequence`` (default Queued, Running) and then reports ``job_final_status``; a cancelled
job reports Canceled. Run history's ``serviceinstances/<node>`` lists the interactive services the
job asked for (node 0, or every node with ``nodes: all``), each with an endpoint of its own.
Schedules: PUT (create, update, disable) and GET ``schedules/<name>``; ``fake.schedules[name]``
holds ``{"body", "puts", "resource"}``. At submission the fake writes ``user_logs/std_log.txt`` into the artifact
store (``ExperimentRun/dcid.<job>/``) and, for each named output, ``fake-output.txt`` at
``azureml/<job>/<output>/`` in the workspace blob store (``set_job_output`` replaces those
files), so ``jobs.stream`` prints the log and ``jobs.download(output_name=...)`` downloads the
files. ``jobs.stream`` sleeps ``AZUREML_RUN_POLLING_INTERVAL_MIN`` seconds (default 2, read by
azure-ai-ml when it is imported; tests/conftest.py sets 0) between polls; with the default sequence it
polls once.

Not emulated
------------
* Pipeline child runs beyond run history's view (a PUT pipeline gets a run per step,
  ``<pipeline>_<step>``, listed by ``jobs.list(parent_job_name=...)`` with the step's services;
  ARM knows only the pipeline), serverless endpoints, invoking an online scoring URI (no inference server runs), online
  deployment failures (a deployment always provisions), schedules firing (they are stored, as
  created, updated or disabled; their jobs never run), workspace create/delete,
  connections, MLflow. Unknown routes answer 404 ``{"error": {"code": "NoSuchRoute"}}`` and are
  kept in ``fake.unhandled``.
  (Data and model uploads from local paths work: they go to ``LocalUpload/<hash>/`` in the
  workspace blob store through the datastore's account key.)
* Beware: when a blob upload fails (e.g. a missing container in Azurite) azure-ai-ml's uploader
  swallows the error and waits forever for its file count; the fake creates the datastores'
  containers in Azurite at start, and its own store creates containers on first write.
* Quota is checked only on compute create (a job never fails for quota at submission: in Azure it
  waits in the queue).
* No authentication check beyond the ``fail_auth`` knob (``x-azureml-token``, the user AML token
  sent with pipeline jobs, is recorded, not verified); no ETags / If-Match; environment and
  component references in a job are not checked for existence (computes are: ``check_compute``).
* Data Lake Gen2 / Azure Files datastores (only the blob REST is implemented).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import re
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, quote, unquote, urlsplit, urlunsplit
from xml.sax.saxutils import escape

from azure.core.pipeline.transport import RequestsTransport

try:  # azure-core >= 1.31
    from azure.core.credentials import AccessToken, AccessTokenInfo
except ImportError:  # pragma: no cover
    from azure.core.credentials import AccessToken

    AccessTokenInfo = None  # type: ignore[assignment]

DEFAULT_SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
TENANT_ID = "72f988bf-0000-0000-0000-000000000000"
OBJECT_ID = "11111111-1111-1111-1111-111111111111"
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
STORAGE_ACCOUNT = "devstoreaccount1"
STORAGE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
ARTIFACT_CONTAINER = "azureml"
TERMINAL = {"Completed", "Failed", "Canceled", "NotResponding", "Paused"}


# ------------------------------------------------------------------------------------------------
# credential and transport
# ------------------------------------------------------------------------------------------------
def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class StaticCredential:
    """A TokenCredential that never calls out: a fixed, unsigned JWT whose ``aud`` is the scope's
    resource (so azure-ai-ml's own ``jwt.decode`` checks of ``tid``/``aud`` pass)."""

    def __init__(self, tenant_id: str = TENANT_ID, expires_in: int = 3600 * 24) -> None:
        self.tenant_id = tenant_id
        self.expires_in = expires_in
        self.calls: list[tuple[str, ...]] = []

    def _token(self, scopes: tuple[str, ...]) -> tuple[str, int]:
        self.calls.append(tuple(scopes))
        scope = scopes[0] if scopes else "https://management.azure.com/.default"
        aud = (scope[: -len(".default")] if scope.endswith(".default") else scope).rstrip("/")
        exp = int(time.time()) + self.expires_in
        payload = {"aud": aud, "iss": f"https://sts.windows.net/{self.tenant_id}/", "tid": self.tenant_id,
                   "oid": OBJECT_ID, "upn": "tester@example.invalid", "iat": exp - self.expires_in, "exp": exp}
        header = {"alg": "none", "typ": "JWT"}
        token = ".".join([_b64url(json.dumps(header).encode()), _b64url(json.dumps(payload).encode()),
                          _b64url(b"fake-signature")])
        return token, exp

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        token, exp = self._token(scopes)
        return AccessToken(token, exp)

    def get_token_info(self, *scopes: str, options: Any = None) -> Any:
        token, exp = self._token(scopes)
        if AccessTokenInfo is None:  # pragma: no cover
            return AccessToken(token, exp)
        return AccessTokenInfo(token, exp, token_type="Bearer")

    def close(self) -> None:
        pass

    def __enter__(self) -> "StaticCredential":
        return self

    def __exit__(self, *exc: Any) -> None:
        pass


def rewrite_url(url: str, port: int, blob_port: int | None = None) -> tuple[str, str | None]:
    """Map an Azure URL to loopback: ``(new_url, original_host)``; loopback URLs are unchanged
    (original_host None). Path and query are kept. Storage hosts (``<account>.blob.<suffix>``) go
    to ``blob_port`` when given (Azurite), everything else to the fake on ``port``."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if host in LOOPBACK:
        return url, None
    target = blob_port if (blob_port and ".blob." in host) else port
    return urlunsplit(("http", f"127.0.0.1:{target}", parts.path or "/", parts.query, "")), parts.netloc


class RewritingTransport(RequestsTransport):
    """An azure-core RequestsTransport that sends every non-loopback request to the fake on
    127.0.0.1:<port> (storage hosts ``*.blob.*`` to ``blob_port`` if given, e.g. Azurite's),
    keeping path and query, with the original host in ``x-original-host`` (and, for storage, in
    ``Host`` too: Azurite then takes the account from the host name, "production-style", so
    shared-key signatures made for ``https://<account>.blob.core.windows.net`` still match).
    Proxy environment variables are ignored (``use_env_settings=False``) so loopback traffic
    never goes through a proxy."""

    def __init__(self, port: int, *, blob_port: int | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("use_env_settings", False)
        super().__init__(**kwargs)
        self.port = port
        self.blob_port = blob_port

    def send(self, request: Any, **kwargs: Any) -> Any:
        url = request.url
        new_url, original = rewrite_url(url, self.port, self.blob_port)
        if original is None:
            return super().send(request, **kwargs)
        # Send the loopback URL, then give the request its Azure URL back: the response keeps a
        # reference to it, and pollers and pagers build their next URLs from it (they must stay
        # https for the bearer-token policy).
        request.url = new_url
        request.headers["x-original-host"] = original
        storage = ".blob." in original.lower()
        if storage:
            request.headers["Host"] = original
        try:
            return super().send(request, **kwargs)
        finally:
            request.url = url
            if storage:
                request.headers.pop("Host", None)


# swapping azure-storage-*'s default transport while a FakeAzure runs ---------------------------
_redirects: list["FakeAzure"] = []
_saved_transports: dict[str, Any] = {}
_redirect_lock = threading.Lock()


class _StorageTransport(RewritingTransport):
    def __init__(self, **kwargs: Any) -> None:
        fake = _redirects[-1] if _redirects else None
        if fake is None:  # pragma: no cover - only built while a fake is running
            raise RuntimeError("storage redirect used with no FakeAzure running")
        kwargs.pop("use_env_settings", None)
        super().__init__(fake.port, blob_port=fake.blob_port, **kwargs)


# Azure ML hosts: a client that azure-ai-ml builds without the MLClient's transport (models.share()
# builds its registry client from the credential alone) still reaches the fake; other hosts (the
# sign-in service, anything else) are sent as they would be without a fake.
_AZUREML_HOST = re.compile(r"(^|\.)api\.azureml\.ms$|\.experiments\.azureml\.net$|^management\.azure\.com$", re.I)


class _DefaultTransport(RewritingTransport):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("use_env_settings", True)  # as azure-core's default transport
        super().__init__(0, **kwargs)

    def send(self, request: Any, **kwargs: Any) -> Any:
        fake = _redirects[-1] if _redirects else None
        if fake is None or not _AZUREML_HOST.search((urlsplit(request.url).hostname or "").lower()):
            return RequestsTransport.send(self, request, **kwargs)
        self.port, self.blob_port = fake.port, fake.blob_port
        return super().send(request, **kwargs)


_DEFAULT_TRANSPORT_MODULE = "azure.core.pipeline.transport._requests_basic"


def _storage_modules() -> list[Any]:
    import importlib

    mods = []
    for name in ("azure.storage.blob._shared.base_client", "azure.storage.filedatalake._shared.base_client",
                 "azure.storage.fileshare._shared.base_client"):
        try:
            mods.append(importlib.import_module(name))
        except ImportError:
            continue
    return mods


def _push_storage_redirect(fake: "FakeAzure") -> None:
    with _redirect_lock:
        if not _redirects:
            for mod in _storage_modules():
                if hasattr(mod, "RequestsTransport"):
                    _saved_transports[mod.__name__] = mod.RequestsTransport
                    mod.RequestsTransport = _StorageTransport
            import importlib

            default = importlib.import_module(_DEFAULT_TRANSPORT_MODULE)
            _saved_transports[_DEFAULT_TRANSPORT_MODULE] = default.RequestsTransport
            default.RequestsTransport = _DefaultTransport
        _redirects.append(fake)


def _pop_storage_redirect(fake: "FakeAzure") -> None:
    with _redirect_lock:
        if fake in _redirects:
            _redirects.remove(fake)
        if not _redirects:
            for name, original in _saved_transports.items():
                sys.modules[name].RequestsTransport = original
            _saved_transports.clear()


# ------------------------------------------------------------------------------------------------
# recorded requests
# ------------------------------------------------------------------------------------------------
@dataclass
class RecordedRequest:
    method: str
    path: str  # without the query string, percent-decoded
    query: dict[str, str]
    headers: dict[str, str]  # minus Authorization
    body: Any  # parsed JSON, or None
    host: str  # the original host (x-original-host), or the loopback host it was sent to
    data: bytes = b""  # the raw body (blob uploads keep only the first 4 KiB)

    def __repr__(self) -> str:
        q = ("?" + "&".join(f"{k}={v}" for k, v in self.query.items())) if self.query else ""
        return f"<{self.method} {self.host}{self.path}{q}>"


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.0000000+00:00", time.gmtime())


def _http_date(ts: float | None = None) -> str:
    return email.utils.formatdate(ts if ts is not None else time.time(), usegmt=True)


@dataclass
class _Blob:
    data: bytes
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/octet-stream"
    modified: float = field(default_factory=time.time)
    etag: str = field(default_factory=lambda: f'"0x{uuid.uuid4().hex[:15].upper()}"')


class _Reply(Exception):
    """Raised by a route to answer at once."""

    def __init__(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


def _arm_error(status: int, code: str, message: str, **extra: Any) -> _Reply:
    error = {"code": code, "message": message, **extra}
    return _Reply(status, {"error": error}, {"x-ms-failure-cause": "gateway" if status in (401, 403) else "service"})


# ------------------------------------------------------------------------------------------------
# the fake
# ------------------------------------------------------------------------------------------------
_WS_RE = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/resource[gG]roups/(?P<rg>[^/]+)/providers/"
                    r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)(?P<rest>/.*)?$", re.I)
_DATAPLANE_RE = re.compile(r"^/(?P<svc>history|data|modelregistry|artifact|mlflow|execution)/v[\d.]+/(?:private/)?"
                           r"subscriptions/(?P<sub>[^/]+)/resource[gG]roups/(?P<rg>[^/]+)/providers/"
                           r"Microsoft\.MachineLearningServices/workspaces/(?P<ws>[^/]+)(?P<rest>/.*)?$", re.I)
_REGISTRY_RE = re.compile(r"^(?:/mferp/managementfrontend)?/subscriptions/(?P<sub>[^/]+)/resource[gG]roups/"
                          r"(?P<rg>[^/]+)/providers/Microsoft\.MachineLearningServices/registries/(?P<reg>[^/]+)"
                          r"(?P<rest>/.*)?$", re.I)
_REGISTRY_DISCOVERY_RE = re.compile(r"^/registrymanagement/v1\.0/registries/(?P<reg>[^/]+)/discovery/?$", re.I)
_LOCATION_RE = re.compile(r"^/subscriptions/(?P<sub>[^/]+)/providers/Microsoft\.MachineLearningServices/"
                          r"locations/(?P<loc>[^/]+)(?P<rest>/.*)?$", re.I)


class FakeAzure:
    """In-memory ARM + Azure ML REST fake on 127.0.0.1:<random port> (a threaded http.server).

    Knobs (constructor keywords, also plain attributes that tests may change between calls):
      fail_auth          None | 401 | 403: every request gets that status and an Azure error body
      missing_workspace  workspace GET 404 ResourceNotFound, workspace-scoped calls 404
                         ParentResourceNotFound
      quota_exceeded     False | True | "async": compute create fails with the AmlCompute vCPU
                         quota error (True: 400 BadRequest on the PUT; "async": the long-running
                         operation ends Failed with that error)
      job_final_status   "Completed" | "Failed" | "Canceled" ...: status after status_sequence
      status_sequence    statuses reported by the first reads of a job (default Queued, Running)
      computes           {name: vm_size} pre-existing AmlCompute clusters
      data_assets        {name: [version, ...]} pre-existing uri_folder data assets
      environments       {name: [version, ...]} pre-existing environments
      models             {name: [version, ...]} pre-existing (custom) models
      lro_polls          how many "InProgress" answers a long-running operation gives first
      poll_delay_ms      the retry-after-ms the fake gives pollers (default 20 ms)
      check_compute      a job PUT whose computeId names a compute this fake does not hold
                         answers 400 UserError (default True)
      redirect_storage   swap azure-storage-*'s default transport while running (default True)
    """

    def __init__(self, *, subscription: str = DEFAULT_SUBSCRIPTION, resource_group: str = "rg",
                 workspace: str = "ws", location: str = "eastus", azurite: Any = None,
                 fail_auth: int | None = None, missing_workspace: bool = False,
                 quota_exceeded: bool | str = False, job_final_status: str = "Completed",
                 status_sequence: tuple[str, ...] = ("Queued", "Running"),
                 computes: dict[str, str] | None = None, data_assets: dict[str, list] | None = None,
                 environments: dict[str, list] | None = None, models: dict[str, list] | None = None,
                 lro_polls: int = 1, poll_delay_ms: int = 20,
                 check_compute: bool = True, redirect_storage: bool = True) -> None:
        self.subscription = subscription
        self.resource_group = resource_group
        self.workspace = workspace
        self.location = location
        self.workspace_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{subscription}/{resource_group}/{workspace}"))
        self.azurite = azurite
        self.fail_auth = fail_auth
        self.missing_workspace = missing_workspace
        self.quota_exceeded = quota_exceeded
        self.job_final_status = job_final_status
        # one per job submitted, in order (then job_final_status): {"status": "Failed", "error":
        # "<the run's error message>", "logs": {"std_log_process_0.txt": "..."}}
        self.job_outcomes: list[dict[str, Any]] = []
        # compute.list_sizes and compute.list_usage: name -> (family, vCPUs, GPUs); family -> (used, limit, label)
        self.vm_sizes: dict[str, tuple[str, int, int]] = {"Standard_DS3_v2": ("standardDSv2Family", 4, 0),
                                                          "Standard_NC6s_v3": ("standardNCSv3Family", 6, 1)}
        self.usage_rows: dict[str, tuple[int, int, str]] = {}
        self.usages: dict[str, tuple[int, int]] = {}  # "TotalCores": (used, limit) in place of the computed one
        self.status_sequence = tuple(status_sequence)
        self.lro_polls = lro_polls
        self.poll_delay_ms = poll_delay_ms
        self.check_compute = check_compute
        self.redirect_storage = redirect_storage

        self.requests: list[RecordedRequest] = []  # control plane + data plane (not blob)
        self.blob_requests: list[RecordedRequest] = []  # requests to the built-in blob store
        self.unhandled: list[RecordedRequest] = []
        self.lock = threading.RLock()

        self.computes: dict[str, dict] = {}
        self.jobs: dict[str, dict] = {}  # name -> {"body", "resource", "reads", "status", "canceled"}
        self.codes: dict[str, dict[str, dict]] = {}  # name -> version -> resource
        self.data_assets: dict[str, dict[str, dict]] = {}
        self.environments: dict[str, dict[str, dict]] = {}
        self.schedules: dict[str, dict] = {}  # name -> {"body": last PUT, "puts": [...], "resource": ...}
        self.components: dict[str, dict[str, dict]] = {}
        self.models: dict[str, dict[str, dict]] = {}
        self.datastores: dict[str, dict] = {}
        self.endpoints: dict[str, dict] = {}  # name -> {"body", "puts", "resource"}
        self.deployments: dict[str, dict] = {}  # "<endpoint>/<deployment>" -> {"body", "puts", "resource"}
        self.batch_endpoints: dict[str, dict] = {}  # name -> {"body", "puts", "resource"}
        self.batch_deployments: dict[str, dict] = {}  # "<endpoint>/<deployment>" -> {"body", "puts", "resource"}
        self.batch_jobs: dict[str, dict] = {}  # job name -> {"endpoint", "deployment", "body": the invoke body}
        self.child_jobs: dict[str, dict] = {}  # a pipeline step's run ("<pipeline>_<step>") -> as self.jobs' entries
        self.operations: dict[str, dict] = {}  # async operation id -> {"polls", "status", "error"}
        self.registries: dict[str, dict] = {}  # name -> add_registry's entry (its assets, imports)
        self.pending_uploads: list[dict] = []  # {"name", "version", "container", "blob_uri", "sas_uri"}
        self.blobs: dict[tuple[str, str], _Blob] = {}  # (container, name) -> blob (built-in store)
        self.containers: set[str] = set()
        self._blocks: dict[tuple[str, str], dict[str, bytes]] = {}

        self.blobstore_container = f"azureml-blobstore-{self.workspace_id}"
        self._add_datastore("workspaceblobstore", self.blobstore_container, default=True)
        self._add_datastore("workspaceartifactstore", ARTIFACT_CONTAINER)
        for name, size in (computes or {}).items():
            self.add_compute(name, size)
        for name, versions in (data_assets or {}).items():
            for v in versions:
                self.add_data_asset(name, str(v))
        for name, versions in (environments or {}).items():
            for v in versions:
                self.add_environment(name, str(v))
        for name, versions in (models or {}).items():
            for v in versions:
                self.add_model(name, str(v))

        self.port = 0
        self._connections: set = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def blob_port(self) -> int | None:
        """Where storage hosts are sent: Azurite's port, or None (this server's blob store)."""
        return self.azurite.port if self.azurite is not None else None

    def start(self) -> "FakeAzure":
        handler = type("_Handler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"FakeAzure:{self.port}",
                                        daemon=True)
        self._thread.start()
        if self.azurite is not None:  # the workspace's storage account has its datastores' containers
            for ds in self.datastores.values():
                self.azurite.create_container(ds["properties"]["containerName"])
        if self.redirect_storage:
            _push_storage_redirect(self)
        return self

    def stop(self) -> None:
        if self.redirect_storage:
            _pop_storage_redirect(self)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self.lock:  # keep-alive connections the clients' pools still hold
            live, self._connections = list(self._connections), set()
        for conn in live:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "FakeAzure":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- ids and urls --------------------------------------------------------------------------
    @property
    def workspace_arm_id(self) -> str:
        return (f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/providers/"
                f"Microsoft.MachineLearningServices/workspaces/{self.workspace}")

    @property
    def api_host(self) -> str:
        return f"{self.location}.api.azureml.ms"

    def studio_url(self, job_name: str) -> str:
        return (f"https://ml.azure.com/runs/{job_name}?wsid=/subscriptions/{self.subscription}/resourcegroups/"
                f"{self.resource_group}/workspaces/{self.workspace}")

    def _rid(self, kind: str, name: str, *more: str) -> str:
        return "/".join([self.workspace_arm_id, kind, name, *more])

    # -- queries for tests ---------------------------------------------------------------------
    def find(self, method: str | None = None, contains: str | None = None) -> list[RecordedRequest]:
        """Recorded control-plane requests with this method whose path contains ``contains``."""
        with self.lock:
            return [r for r in self.requests
                    if (method is None or r.method == method.upper()) and (contains is None or contains in r.path)]

    def request_lines(self) -> list[str]:
        """``"METHOD host/path"`` for every recorded control-plane request (query omitted)."""
        with self.lock:
            return [f"{r.method} {r.host}{r.path}" for r in self.requests]

    def job_body(self, name: str | None = None) -> dict:
        """The body of the (last) job PUT, as sent by the client."""
        with self.lock:
            if name is None:
                name = list(self.jobs)[-1]
            return self.jobs[name]["body"]

    def endpoint_body(self, name: str | None = None) -> dict:
        """The body of the last PUT of online endpoint ``name`` (default: the last endpoint PUT)."""
        with self.lock:
            return self.endpoints[name if name is not None else list(self.endpoints)[-1]]["body"]

    def deployment_body(self, name: str | None = None, endpoint: str | None = None) -> dict:
        """The body of the last PUT of deployment ``name`` (of ``endpoint``, or of the one endpoint
        that has a deployment of that name; default: the last deployment PUT)."""
        with self.lock:
            if name is None:
                return self.deployments[list(self.deployments)[-1]]["body"]
            keys = [k for k in self.deployments if k.split("/", 1)[1] == name
                    and (endpoint is None or k.split("/", 1)[0] == endpoint)]
            if len(keys) != 1:
                raise KeyError(f"deployment {name!r} (endpoint {endpoint!r}): {len(keys)} matches")
            return self.deployments[keys[0]]["body"]

    def list_blobs(self, container: str, prefix: str = "") -> list[str]:
        if self.azurite is not None:
            return self.azurite.list_blobs(container, prefix or None)
        with self.lock:
            return sorted(n for (c, n) in self.blobs if c == container and n.startswith(prefix))

    def read_blob(self, container: str, name: str) -> bytes:
        if self.azurite is not None:
            return self.azurite.download_blob(container, name)
        with self.lock:
            return self.blobs[(container, name)].data

    def put_blob(self, container: str, name: str, data: bytes | str) -> None:
        data = data.encode() if isinstance(data, str) else data
        if self.azurite is not None:
            self.azurite.upload_blob(container, name, data)
            return
        with self.lock:
            self.containers.add(container)
            self.blobs[(container, name)] = _Blob(data)

    def snapshot_files(self, index: int = -1) -> list[str]:
        """Blob names of a code snapshot (default: the last one uploaded), relative to the
        snapshot folder, i.e. the files of the job's ``code:`` folder."""
        with self.lock:
            if not self.pending_uploads:
                return []
            container = self.pending_uploads[index]["container"]
        names = self.list_blobs(container)
        tops = {n.split("/", 1)[0] for n in names}
        if len(tops) == 1 and all("/" in n for n in names):  # everything under the folder's own name
            names = [n.split("/", 1)[1] for n in names]
        return sorted(names)

    def set_job_output(self, job_name: str, output_name: str, files: dict[str, bytes | str]) -> None:
        """Replace the files of a job's named output (``azureml/<job>/<output>/`` in the
        workspace blob store), as the job would have written them."""
        prefix = f"azureml/{job_name}/{output_name}/"
        if self.azurite is None:
            with self.lock:
                for key in [k for k in self.blobs if k[0] == self.blobstore_container and k[1].startswith(prefix)]:
                    del self.blobs[key]
        else:
            container = self.azurite.service_client().get_container_client(self.blobstore_container)
            for name in self.azurite.list_blobs(self.blobstore_container, prefix):
                container.delete_blob(name)
        for rel, data in files.items():
            self.put_blob(self.blobstore_container, prefix + rel, data)
        with self.lock:
            if job_name in self.jobs:
                self.jobs[job_name]["outputs"].add(output_name)

    def set_job_logs(self, job_name: str, files: dict[str, bytes | str]) -> None:
        """Replace a job's logs (``user_logs/<name>`` in its artifact store folder,
        ``ExperimentRun/dcid.<job>/``), as every process of the job would have written them:
        ``{"std_log_process_0.txt": ..., "std_log_process_1.txt": ...}``."""
        prefix = f"ExperimentRun/dcid.{job_name}/user_logs/"
        if self.azurite is None:
            with self.lock:
                for key in [k for k in self.blobs if k[0] == ARTIFACT_CONTAINER and k[1].startswith(prefix)]:
                    del self.blobs[key]
        else:
            container = self.azurite.service_client().get_container_client(ARTIFACT_CONTAINER)
            for name in self.azurite.list_blobs(ARTIFACT_CONTAINER, prefix):
                container.delete_blob(name)
        for rel, data in files.items():
            self.put_blob(ARTIFACT_CONTAINER, prefix + rel, data)

    # -- seeding -------------------------------------------------------------------------------
    def _add_datastore(self, name: str, container: str, default: bool = False) -> None:
        self.datastores[name] = {
            "id": self._rid("datastores", name), "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/datastores",
            "properties": {"datastoreType": "AzureBlob", "accountName": STORAGE_ACCOUNT, "containerName": container,
                           "endpoint": "core.windows.net", "protocol": "https",
                           "serviceDataAccessAuthIdentity": "WorkspaceSystemAssignedIdentity",
                           "credentials": {"credentialsType": "AccountKey"}, "isDefault": default,
                           "description": None, "properties": {}, "tags": {}},
            "systemData": self._system_data(),
        }
        self.containers.add(container)

    def _system_data(self) -> dict:
        now = _now_iso()
        return {"createdAt": now, "createdBy": "tester@example.invalid", "createdByType": "User",
                "lastModifiedAt": now, "lastModifiedBy": "tester@example.invalid", "lastModifiedByType": "User"}

    def add_compute(self, name: str, size: str = "Standard_DS3_v2", max_nodes: int = 4, min_nodes: int = 0,
                    state: str = "Succeeded") -> dict:
        resource = {
            "id": self._rid("computes", name), "name": name,
            "type": "Microsoft.MachineLearningServices/workspaces/computes", "location": self.location,
            "tags": {}, "identity": None, "systemData": self._system_data(),
            "properties": {
                "computeType": "AmlCompute", "computeLocation": self.location, "provisioningState": state,
                "description": None, "createdOn": _now_iso(), "modifiedOn": _now_iso(), "resourceId": None,
                "provisioningErrors": None, "isAttachedCompute": False, "disableLocalAuth": True,
                "properties": {
                    "vmSize": size.upper(), "vmPriority": "Dedicated", "osType": "Linux",
                    "scaleSettings": {"maxNodeCount": max_nodes, "minNodeCount": min_nodes,
                                      "nodeIdleTimeBeforeScaleDown": "PT2M"},
                    "remoteLoginPortPublicAccess": "Disabled", "enableNodePublicIp": True,
                    "allocationState": "Steady", "allocationStateTransitionTime": _now_iso(),
                    "currentNodeCount": 0, "targetNodeCount": 0,
                    "nodeStateCounts": {"idleNodeCount": 0, "runningNodeCount": 0, "preparingNodeCount": 0,
                                        "unusableNodeCount": 0, "leavingNodeCount": 0, "preemptedNodeCount": 0},
                    "errors": None, "isolatedNetwork": False, "propertyBag": None,
                },
            },
        }
        with self.lock:
            self.computes[name] = resource
        return resource

    def add_data_asset(self, name: str, version: str = "1", path: str | None = None,
                       data_type: str = "uri_folder") -> dict:
        path = path or (f"azureml://subscriptions/{self.subscription}/resourcegroups/{self.resource_group}/"
                        f"workspaces/{self.workspace}/datastores/workspaceblobstore/paths/data/{name}/")
        resource = {
            "id": self._rid("data", name, "versions", version), "name": version,
            "type": "Microsoft.MachineLearningServices/workspaces/data/versions",
            "systemData": self._system_data(),
            "properties": {"dataType": data_type, "dataUri": path, "description": None, "tags": {},
                           "properties": {}, "isAnonymous": False, "isArchived": False},
        }
        with self.lock:
            self.data_assets.setdefault(name, {})[version] = resource
        return resource

    def add_environment(self, name: str, version: str = "1",
                        image: str = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest") -> dict:
        resource = {
            "id": self._rid("environments", name, "versions", version), "name": version,
            "type": "Microsoft.MachineLearningServices/workspaces/environments/versions",
            "systemData": self._system_data(),
            "properties": {"image": image, "osType": "Linux", "environmentType": "UserCreated",
                           "description": None, "tags": {}, "properties": {}, "isAnonymous": False,
                           "isArchived": False, "autoRebuild": "Disabled"},
        }
        with self.lock:
            self.environments.setdefault(name, {})[version] = resource
        return resource

    def add_model(self, name: str, version: str = "1", path: str | None = None,
                  model_type: str = "custom_model") -> dict:
        """A registered model version (``azureml:<name>@latest`` resolves to the highest version)."""
        path = path or (f"azureml://subscriptions/{self.subscription}/resourceGroups/{self.resource_group}/"
                        f"workspaces/{self.workspace}/datastores/workspaceblobstore/paths/models/{name}/{version}/")
        resource = {
            "id": self._rid("models", name, "versions", version), "name": version,
            "type": "Microsoft.MachineLearningServices/workspaces/models/versions",
            "systemData": self._system_data(),
            "properties": {"modelUri": path, "modelType": model_type, "flavors": {}, "description": None,
                           "tags": {}, "properties": {}, "isAnonymous": False, "isArchived": False,
                           "provisioningState": "Succeeded"},
        }
        with self.lock:
            self.models.setdefault(name, {})[version] = resource
        return resource

    def add_online_endpoint(self, name: str, auth_mode: str = "Key", traffic: dict[str, int] | None = None,
                            state: str = "Succeeded") -> dict:
        """An existing managed online endpoint (as if created earlier)."""
        body = {"location": self.location, "tags": {}, "identity": {"type": "SystemAssigned"},
                "properties": {"authMode": auth_mode, "traffic": dict(traffic or {}), "mirrorTraffic": {},
                               "properties": {}, "description": None}}
        with self.lock:
            resource = self._endpoint_resource(name, body, None, state)
            self.endpoints[name] = {"body": body, "puts": [], "resource": resource}
        return resource

    def add_online_deployment(self, endpoint: str, name: str, instance_type: str = "Standard_DS3_v2",
                              instance_count: int = 1, state: str = "Succeeded") -> dict:
        """An existing managed deployment of endpoint ``endpoint`` (which must exist)."""
        body = {"location": self.location, "tags": {}, "sku": {"name": "Default", "capacity": instance_count},
                "properties": {"endpointComputeType": "Managed", "instanceType": instance_type,
                               "scaleSettings": {"scaleType": "Default"}, "properties": {},
                               "appInsightsEnabled": False, "egressPublicNetworkAccess": "Enabled"}}
        with self.lock:
            resource = self._deployment_resource(endpoint, name, body, state)
            self.deployments[f"{endpoint}/{name}"] = {"body": body, "puts": [], "resource": resource}
        return resource

    def add_registry(self, name: str, location: str | None = None, regions: list[str] | None = None,
                     resource_group: str = "rg-registries", subscription: str | None = None) -> dict:
        """An Azure ML registry (in its own resource group, as registries usually are): registry
        discovery answers for it, and its assets (codes, environments, components, models, data) live
        in ``fake.registries[name]["assets"][kind][asset][version]``; ``registry_body`` gives the last
        PUT body of one. Without a registry of that name, discovery answers 404 as Azure does."""
        location = location or self.location
        entry = {"name": name, "location": location, "regions": list(regions or [location]),
                 "subscription": subscription or self.subscription, "resource_group": resource_group,
                 "assets": {k: {} for k in ("codes", "environments", "components", "models", "data")},
                 "bodies": {}, "imports": [], "uploads": []}
        with self.lock:
            self.registries[name] = entry
        return entry

    def registry_body(self, registry: str, kind: str, name: str, version: str) -> dict:
        """The last PUT body of asset ``kind/name/version`` in ``registry`` (kind: environments, ...)."""
        with self.lock:
            return self.registries[registry]["bodies"][(kind, name, str(version))]

    # -- request handling ----------------------------------------------------------------------
    def handle(self, method: str, raw_path: str, headers: dict[str, str], data: bytes) -> tuple[int, Any, dict]:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        host = headers.get("x-original-host") or headers.get("host", "")
        is_blob = path.startswith("/_blob/") or ".blob." in host.lower()
        if is_blob and not path.startswith("/_blob/"):  # production-style: the account is in the host name
            path = f"/_blob/{host.split('.', 1)[0]}{path}"
        body: Any = None
        if data and not is_blob:
            try:
                body = json.loads(data)
            except ValueError:
                body = None
        rec = RecordedRequest(method, path, query,
                              {k: v for k, v in headers.items() if k.lower() != "authorization"},
                              body, host, data if not is_blob else data[:4096])
        with self.lock:
            (self.blob_requests if is_blob else self.requests).append(rec)
        try:
            if self.fail_auth:
                self._auth_failure()
            if is_blob:
                return self._blob(method, path[len("/_blob/"):], query, headers, data)
            with self.lock:
                return self._route(method, path, query, body, headers)
        except _Reply as reply:
            if reply.status == 404 and isinstance(reply.body, dict) and \
                    reply.body.get("error", {}).get("code") == "NoSuchRoute":
                with self.lock:
                    self.unhandled.append(rec)
            return reply.status, reply.body, reply.headers

    def _auth_failure(self) -> None:
        if self.fail_auth == 401:
            reply = _arm_error(401, "AuthenticationFailed",
                               "Authentication failed. The 'Authorization' header is missing or the access token "
                               "is invalid.")
            reply.headers["WWW-Authenticate"] = (
                f'Bearer authorization_uri="https://login.microsoftonline.com/{TENANT_ID}", error="invalid_token", '
                'error_description="The access token is invalid."')
            raise reply
        raise _arm_error(int(self.fail_auth or 403), "AuthorizationFailed",
                         f"The client 'tester@example.invalid' with object id '{OBJECT_ID}' does not have "
                         "authorization to perform action 'Microsoft.MachineLearningServices/workspaces/read' over "
                         f"scope '{self.workspace_arm_id}' or the scope is invalid. If access was recently granted, "
                         "please refresh your credentials.")

    def _route(self, method: str, path: str, query: dict, body: Any, headers: dict) -> tuple[int, Any, dict]:
        host = (headers.get("x-original-host") or "").lower()
        if host.endswith(".inference.ml.azure.com") and path.rstrip("/") == "/jobs" and method == "POST":
            return self._invoke_batch(host.split(".", 1)[0], body or {}, headers)
        if path.rstrip("/") == "/discovery":
            return 200, self._discovery(), {}
        m = _REGISTRY_DISCOVERY_RE.match(path)
        if m:
            return 200, self._registry_discovery(m.group("reg")), {}
        m = _REGISTRY_RE.match(path)
        if m:
            return self._registry_scoped(method, m.group("sub"), m.group("rg"), m.group("reg"),
                                         m.group("rest") or "", query, body)
        m = _LOCATION_RE.match(path)
        if m:
            return self._location(method, m.group("loc"), m.group("rest") or "", query)
        m = _DATAPLANE_RE.match(path)
        if m:
            self._check_workspace(m.group("sub"), m.group("rg"), m.group("ws"), child=True)
            return self._dataplane(method, m.group("svc").lower(), m.group("rest") or "", query, body)
        m = _WS_RE.match(path)
        if m:
            rest = m.group("rest") or ""
            self._check_workspace(m.group("sub"), m.group("rg"), m.group("ws"), child=bool(rest.strip("/")))
            return self._workspace_scoped(method, rest, query, body, headers)
        raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} {path}")

    def _check_workspace(self, sub: str, rg: str, ws: str, child: bool) -> None:
        known = (sub.lower() == self.subscription.lower() and rg.lower() == self.resource_group.lower()
                 and ws.lower() == self.workspace.lower())
        if known and not self.missing_workspace:
            return
        ws_id = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.MachineLearningServices/workspaces/{ws}"
        if child:
            raise _arm_error(404, "ParentResourceNotFound",
                             f"Failed to perform 'read' on resource(s) of type 'workspaces/*', because the parent "
                             f"resource '{ws_id}' could not be found.")
        raise _arm_error(404, "ResourceNotFound",
                         f"The Resource 'Microsoft.MachineLearningServices/workspaces/{ws}' under resource group "
                         f"'{rg}' was not found. For more details please go to "
                         "https://aka.ms/ARMResourceNotFoundFix")

    # -- workspace and discovery ---------------------------------------------------------------
    def _discovery(self) -> dict:
        api = f"https://{self.api_host}"
        return {"api": api, "catalog": api, "experimentation": api, "gallery": f"{api}/gallery/v1.0",
                "history": api, "hyperdrive": api, "labeling": api, "modelmanagement": api, "pipelines": api,
                "studiometadata": api, "studio": "https://ml.azure.com"}

    def workspace_resource(self) -> dict:
        sub, rg = self.subscription, self.resource_group
        return {
            "id": self.workspace_arm_id, "name": self.workspace,
            "type": "Microsoft.MachineLearningServices/workspaces", "location": self.location, "kind": "Default",
            "tags": {}, "sku": {"name": "Basic", "tier": "Basic"}, "systemData": self._system_data(),
            "identity": {"type": "SystemAssigned", "principalId": OBJECT_ID, "tenantId": TENANT_ID},
            "properties": {
                "friendlyName": self.workspace, "description": "", "workspaceId": self.workspace_id,
                "provisioningState": "Succeeded", "hbiWorkspace": False, "publicNetworkAccess": "Enabled",
                "v1LegacyMode": False, "enableDataIsolation": False, "storageHnsEnabled": False,
                "storageAccount": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/"
                                  f"storageAccounts/{STORAGE_ACCOUNT}",
                "keyVault": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/kv-fake",
                "applicationInsights": f"/subscriptions/{sub}/resourceGroups/{rg}/providers/"
                                       "Microsoft.insights/components/appi-fake",
                "containerRegistry": None,
                "discoveryUrl": f"https://{self.api_host}/discovery",
                "mlFlowTrackingUri": f"azureml://{self.api_host}/mlflow/v1.0{self.workspace_arm_id}",
                "notebookInfo": None, "privateLinkCount": 0, "tenantId": TENANT_ID,
                "workspaceHubConfig": None, "managedNetwork": {"isolationMode": "Disabled"},
            },
        }

    def _location(self, method: str, loc: str, rest: str, query: dict) -> tuple[int, Any, dict]:
        seg = [s for s in rest.split("/") if s]
        if len(seg) == 2 and seg[0].lower() in ("computeoperationsstatus", "mfeoperationsstatus", "operationsstatus"):
            return self._operation_status(seg[1])
        if len(seg) == 2 and seg[0].lower() in ("computeoperationsresult", "mfeoperationresults"):
            status, body, headers = self._operation_status(seg[1])
            if self.operations[seg[1]].get("empty_result") and body.get("status") == "Succeeded":
                return 200, None, headers  # the operation's result has no body (a registry import's)
            return status, body, headers
        if seg == ["usages"]:
            used = sum(c["properties"]["properties"]["scaleSettings"]["maxNodeCount"] for c in self.computes.values())
            total = self.usages.get("TotalCores")
            rows = [("TotalCores", "Total Cluster Dedicated Regional vCPUs",
                     *(total or (used * 4, 0 if self.quota_exceeded else 100)))]
            rows += [(name, label, current, limit) for name, (current, limit, label) in
                     ((k, v) for k, v in self.usage_rows.items())]
            return 200, {"value": [{
                "id": f"/subscriptions/{self.subscription}/providers/Microsoft.MachineLearningServices/locations/"
                      f"{loc}/usages/{name}", "aMLWorkspaceLocation": loc, "type":
                      "Microsoft.MachineLearningServices/vmFamily/usages", "unit": "Count",
                "currentValue": current, "limit": limit,
                "name": {"value": name, "localizedValue": label}} for name, label, current, limit in rows]}, {}
        if seg == ["vmSizes"] or seg == ["vmsizes"]:
            return 200, {"value": [
                {"name": name, "family": family, "vCPUs": vcpus, "gpus": gpus, "osVhdSizeMB": 1047552,
                 "maxResourceVolumeMB": 28672, "memoryGB": 14.0 * max(1, vcpus // 4), "lowPriorityCapable": True,
                 "premiumIO": True, "supportedComputeTypes": ["ComputeInstance", "AmlCompute"]}
                for name, (family, vcpus, gpus) in self.vm_sizes.items()]}, {}
        raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} location {rest}")

    # -- long-running operations ---------------------------------------------------------------
    def _start_operation(self, kind: str, on_success=None, error: dict | None = None,
                         family: str = "compute") -> dict[str, str]:
        """A long-running operation; ``family`` "compute" (computeOperationsStatus/Result) or "mfe"
        (mfeOperationsStatus / mfeOperationResults, as endpoints and deployments use)."""
        op_id = uuid.uuid4().hex
        self.operations[op_id] = {"polls": 0, "on_success": on_success, "error": error, "kind": kind}
        base = (f"https://management.azure.com/subscriptions/{self.subscription}/providers/"
                f"Microsoft.MachineLearningServices/locations/{self.location}")
        status, result = (("mfeOperationsStatus", "mfeOperationResults") if family == "mfe"
                          else ("computeOperationsStatus", "computeOperationsResult"))
        return {"Azure-AsyncOperation": f"{base}/{status}/{op_id}?api-version=2023-08-01-preview",
                "Location": f"{base}/{result}/{op_id}?api-version=2023-08-01-preview",
                **self._delay_headers()}

    def _delay_headers(self) -> dict[str, str]:
        # azure-core's pollers wait Retry-After seconds, but treat 0 as "not given" and then wait
        # their default (30 s for ARM); retry-after-ms lets them poll after a few milliseconds.
        return {"retry-after-ms": str(self.poll_delay_ms)}

    def _operation_status(self, op_id: str) -> tuple[int, Any, dict]:
        op = self.operations.get(op_id)
        if op is None:
            raise _arm_error(404, "ResourceNotFound", f"Operation {op_id} was not found.")
        op["polls"] += 1
        body: dict[str, Any] = {"id": op_id, "name": op_id, "startTime": _now_iso()}
        if op["polls"] <= self.lro_polls:
            body["status"] = "InProgress"
        elif op["error"] is not None:
            body.update(status="Failed", endTime=_now_iso(), error=op["error"])
        else:
            if op.get("on_success"):
                op["on_success"]()
                op["on_success"] = None
            body.update(status="Succeeded", endTime=_now_iso())
        return 200, body, self._delay_headers()

    # -- registries ----------------------------------------------------------------------------
    def _registry_not_found(self, name: str) -> _Reply:
        return _arm_error(404, "NotFound", f"Registry '{name}' was not found or you do not have access to it.")

    def _registry_discovery(self, name: str) -> dict:
        """GET registrymanagement/v1.0/registries/<name>/discovery (on the regional api host): where
        the registry lives and its data-plane (MFE) host, which azure-ai-ml then uses for its assets."""
        reg = self.registries.get(name)
        if reg is None:
            raise self._registry_not_found(name)
        return {"registryName": name, "tenantId": TENANT_ID, "primaryRegion": reg["location"],
                "regions": reg["regions"], "subscriptionId": reg["subscription"],
                "resourceGroup": reg["resource_group"], "workspaceName": None,
                "primaryRegionResourceProviderUri": f"https://cert-{reg['location']}.experiments.azureml.net/",
                "registryFqdns": {r: {"api": f"https://{r}.api.azureml.ms"} for r in reg["regions"]}}

    def _registry_resource(self, reg: dict) -> dict:
        name, loc = reg["name"], reg["location"]
        return {"id": f"/subscriptions/{reg['subscription']}/resourceGroups/{reg['resource_group']}/providers/"
                      f"Microsoft.MachineLearningServices/registries/{name}",
                "name": name, "type": "Microsoft.MachineLearningServices/registries", "location": loc,
                "kind": "Default", "tags": {}, "sku": {"name": "P1", "tier": "Basic"},
                "identity": {"type": "SystemAssigned", "principalId": OBJECT_ID, "tenantId": TENANT_ID},
                "systemData": self._system_data(),
                "properties": {"discoveryUrl": f"https://{loc}.api.azureml.ms/registrymanagement/v1.0/registries/"
                                               f"{name}/discovery",
                               "mlFlowRegistryUri": f"azureml://{loc}.api.azureml.ms/mlflow/v1.0/subscriptions/"
                                                    f"{reg['subscription']}/resourceGroups/{reg['resource_group']}/"
                                                    f"providers/Microsoft.MachineLearningServices/registries/{name}",
                               "publicNetworkAccess": "Enabled", "intellectualPropertyPublisher": None,
                               "regionDetails": [{"location": r, "acrDetails": [], "storageAccountDetails": []}
                                                 for r in reg["regions"]]}}

    def _registry_scoped(self, method: str, sub: str, rg: str, name: str, rest: str, query: dict,
                         body: Any) -> tuple[int, Any, dict]:
        reg = self.registries.get(name)
        if reg is None or sub.lower() != reg["subscription"].lower() or rg.lower() != reg["resource_group"].lower():
            raise self._registry_not_found(name)
        seg = [s for s in rest.split("/") if s]
        if not seg and method == "GET":
            return 200, self._registry_resource(reg), {}
        kind = seg[0].lower() if seg else ""
        if kind == "tempdatarefs" and len(seg) == 4 and method == "PUT":  # where a local asset's files go
            upload = self._start_pending_upload(f"registry:{name}", seg[1], seg[3], {})
            reg["uploads"].append(upload)
            return 200, upload, {}
        if kind == "datarefs" and len(seg) == 4 and method == "POST":  # read access to an asset's files
            uri = (body or {}).get("blobUri") or ""
            return 200, {"blobReferenceForConsumption": {"blobUri": uri, "credential": {
                "credentialType": "SAS", "sasUri": f"{uri}?sv=2021-10-04&sr=c&sp=rl&sig=fake"}}}, {}
        if kind == "import" and len(seg) == 1 and method == "POST":
            return self._registry_import(reg, body or {})
        if kind in reg["assets"]:
            return self._registry_assets(reg, method, kind, seg, query, body)
        raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} registries/{name}{rest}")

    def _registry_asset_id(self, reg: dict, kind: str, name: str, version: str | None = None) -> str:
        return f"azureml://registries/{reg['name']}/{kind}/{name}" + (f"/versions/{version}" if version else "")

    def _registry_container(self, reg: dict, kind: str, name: str) -> dict:
        versions = reg["assets"][kind].get(name, {})
        return {"id": self._registry_asset_id(reg, kind, name), "name": name,
                "type": f"Microsoft.MachineLearningServices/registries/{kind}", "systemData": self._system_data(),
                "properties": {"description": None, "tags": {}, "properties": {}, "isArchived": False,
                               "latestVersion": _latest_version(versions), "nextVersion": _next_version(versions)}}

    def _registry_assets(self, reg: dict, method: str, kind: str, seg: list[str], query: dict,
                         body: Any) -> tuple[int, Any, dict]:
        store = reg["assets"][kind]
        if len(seg) == 1 and method == "GET":
            return 200, {"value": [self._registry_container(reg, kind, n) for n in sorted(store)]}, {}
        name = seg[1]
        if len(seg) == 2 and method == "GET":
            if name not in store:
                raise _not_found(kind, name)
            return 200, self._registry_container(reg, kind, name), {}
        if len(seg) == 2 and method == "PUT":
            store.setdefault(name, {})
            return 200, self._registry_container(reg, kind, name), {}
        if len(seg) == 3 and seg[2].lower() == "versions" and method == "GET":
            versions = sorted(store.get(name, {}).values(), key=lambda v: _version_key(v["name"]), reverse=True)
            if kind == "codes" and "hash" in query:
                versions = [v for v in versions if str((v["properties"].get("properties") or {})
                                                       .get("hash_sha256", "")).lower() == query["hash"].lower()]
            top = query.get("$top") or query.get("top")
            return 200, {"value": versions[: int(top)] if top else versions}, {}
        if len(seg) == 4 and seg[2].lower() == "versions":
            version = seg[3]
            if method == "GET":
                if version not in store.get(name, {}):
                    raise _not_found(kind, f"{name}:{version}")
                return 200, store[name][version], {}
            if method == "PUT":
                existed = version in store.get(name, {})
                resource = self._registry_version(reg, kind, name, version, (body or {}).get("properties") or {})
                reg["bodies"][(kind, name, version)] = body
                return (200 if existed else 201), resource, {}
        raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} registries/{reg['name']}/"
                                             f"{'/'.join(seg)}")

    def _registry_version(self, reg: dict, kind: str, name: str, version: str, props: dict) -> dict:
        props = json.loads(json.dumps(props))
        props.setdefault("isArchived", False)
        props.setdefault("isAnonymous", False)
        props["provisioningState"] = "Succeeded"
        if kind == "environments":
            props.setdefault("environmentType", "UserCreated")
            props.setdefault("osType", "Linux")
        if kind == "models":
            props.setdefault("flavors", {})
            props.setdefault("modelType", "custom_model")
        resource = {"id": self._registry_asset_id(reg, kind, name, version), "name": version,
                    "type": f"Microsoft.MachineLearningServices/registries/{kind}/versions",
                    "systemData": self._system_data(), "properties": props}
        reg["assets"][kind].setdefault(name, {})[version] = resource
        return resource

    def _registry_import(self, reg: dict, body: dict) -> tuple[int, Any, dict]:
        """POST registries/<r>/import: copy a workspace asset (``sourceAssetId`` azureml://locations/<loc>/
        workspaces/<guid>/models/<name>/versions/<v>) into the registry as destinationName/Version; a
        long-running operation whose result has no body, as azure-ai-ml's share() expects."""
        props = body.get("properties") or {}
        m = re.match(r"^azureml://locations/(?P<loc>[^/]+)/workspaces/(?P<ws>[^/]+)/(?P<kind>models|environments)/"
                     r"(?P<name>[^/]+)/versions/(?P<version>[^/]+)$", str(props.get("sourceAssetId") or ""))
        if not m or m.group("ws") != self.workspace_id:
            raise _arm_error(400, "UserError", f"The source asset '{props.get('sourceAssetId')}' is not an asset of a "
                                               "workspace this registry can read.")
        kind, name, version = m.group("kind"), m.group("name"), m.group("version")
        source = (self.models if kind == "models" else self.environments).get(name, {}).get(version)
        if source is None:
            raise _not_found(kind, f"{name}:{version}")
        dest_name = props.get("destinationName") or name
        dest_version = str(props.get("destinationVersion") or version)
        if dest_version in reg["assets"][kind].get(dest_name, {}):
            raise _arm_error(409, "Conflict", f"{kind[:-1].capitalize()} {dest_name}:{dest_version} already exists in "
                                              f"registry '{reg['name']}'.")
        reg["imports"].append(body)

        def copy() -> None:
            copied = dict(source["properties"])
            copied["properties"] = {**(copied.get("properties") or {}), "azureml.sourceAssetId": props["sourceAssetId"]}
            self._registry_version(reg, kind, dest_name, dest_version, copied)

        headers = self._start_operation("import", on_success=copy, family="mfe")
        self.operations[headers["Location"].split("/")[-1].split("?")[0]]["empty_result"] = True
        return 202, None, headers

    # -- workspace-scoped resources ------------------------------------------------------------
    def _workspace_scoped(self, method: str, rest: str, query: dict, body: Any, headers: dict) -> tuple[int, Any, dict]:
        seg = [s for s in rest.split("/") if s]
        if not seg:
            if method == "GET":
                return 200, self.workspace_resource(), {}
            raise _arm_error(405, "MethodNotAllowed", f"The fake does not {method} workspaces")
        kind = seg[0].lower()
        handler = {"computes": self._computes, "jobs": self._jobs, "codes": self._assets, "data": self._assets,
                   "environments": self._assets, "components": self._assets, "models": self._assets,
                   "datastores": self._datastores, "onlineendpoints": self._online_endpoints,
                   "batchendpoints": self._batch_endpoints, "schedules": self._schedules}.get(kind)
        if handler is None:
            raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} workspaces/<ws>{rest}")
        return handler(method, seg, query, body)

    # computes
    def _computes(self, method: str, seg: list[str], query: dict, body: Any) -> tuple[int, Any, dict]:
        if len(seg) == 1 and method == "GET":
            return 200, {"value": list(self.computes.values())}, {}
        name = seg[1]
        if len(seg) == 2 and method == "GET":
            if name not in self.computes:
                raise _arm_error(404, "ResourceNotFound",
                                 f"The Resource 'Microsoft.MachineLearningServices/workspaces/{self.workspace}/"
                                 f"computes/{name}' under resource group '{self.resource_group}' was not found.")
            return 200, self.computes[name], {}
        if len(seg) == 2 and method == "PUT":
            return self._create_compute(name, body or {})
        if len(seg) == 2 and method == "DELETE":
            if name not in self.computes:
                return 204, None, {}
            headers = self._start_operation("delete", on_success=lambda: self.computes.pop(name, None))
            return 202, None, headers
        if len(seg) == 3 and method == "POST":
            action = seg[2]
            if name not in self.computes:
                raise _arm_error(404, "ResourceNotFound", f"Compute {name} was not found.")
            if action == "listKeys":
                return 200, {"computeType": "AmlCompute"}, {}
            if action == "listNodes":
                return 200, {"nodes": [], "nextLink": None}, {}
            return 202, None, self._start_operation(action)
        raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} computes/{'/'.join(seg[1:])}")

    def _quota_error(self, size: str, nodes: int) -> dict:
        return {"code": "BadRequest",
                "message": (f"The specified subscription has a total vCPU quota of 0 and cannot accomodate for at "
                            f"least {max(nodes, 1)} requested managed compute node which maps to 4 vCPUs. Talk to "
                            "your Subscription Admin or refer to https://docs.microsoft.com/azure/machine-learning/"
                            "how-to-manage-quotas#request-quota-increases to increase the total vCPU quota"),
                "details": [], "additionalInfo": []}

    def _create_compute(self, name: str, body: dict) -> tuple[int, Any, dict]:
        props = (body.get("properties") or {})
        inner = props.get("properties") or {}
        size = inner.get("vmSize") or "STANDARD_DS3_V2"
        scale = inner.get("scaleSettings") or {}
        max_nodes = int(scale.get("maxNodeCount") or 4)
        min_nodes = int(scale.get("minNodeCount") or 0)
        if self.quota_exceeded and self.quota_exceeded != "async":
            error = self._quota_error(size, min_nodes)
            raise _Reply(400, {"error": error})
        existed = name in self.computes
        resource = self.add_compute(name, size, max_nodes, min_nodes, state="Creating")
        # keep what the client sent (type, description, tags, identity, any extra properties)
        resource["properties"]["computeType"] = props.get("computeType", "AmlCompute")
        resource["properties"]["description"] = props.get("description")
        for key, value in inner.items():
            if key not in ("scaleSettings",):
                resource["properties"]["properties"][key] = value
        resource["properties"]["properties"]["vmSize"] = size
        if body.get("tags"):
            resource["tags"] = body["tags"]
        if body.get("identity"):
            resource["identity"] = body["identity"]
        resource["location"] = body.get("location") or self.location

        def succeed() -> None:
            self.computes[name]["properties"]["provisioningState"] = "Succeeded"

        def fail() -> None:
            self.computes[name]["properties"]["provisioningState"] = "Failed"
            self.computes[name]["properties"]["provisioningErrors"] = [{"error": self._quota_error(size, min_nodes)}]

        if self.quota_exceeded == "async":
            headers = self._start_operation("create", error=self._quota_error(size, min_nodes))
            fail()
        else:
            headers = self._start_operation("create", on_success=succeed)
        return (200 if existed else 201), resource, headers

    # assets: codes, data, environments
    def _asset_store(self, kind: str) -> dict[str, dict[str, dict]]:
        return {"codes": self.codes, "data": self.data_assets, "environments": self.environments,
                "components": self.components, "models": self.models}[kind]

    def _asset_type(self, kind: str) -> str:
        return f"Microsoft.MachineLearningServices/workspaces/{kind}"

    def _container_resource(self, kind: str, name: str) -> dict:
        versions = self._asset_store(kind).get(name, {})
        latest = _latest_version(versions)
        props: dict[str, Any] = {"description": None, "tags": {}, "properties": {}, "isArchived": False,
                                 "latestVersion": latest, "nextVersion": _next_version(versions)}
        if kind == "data" and latest:
            props["dataType"] = versions[latest]["properties"].get("dataType", "uri_folder")
        return {"id": self._rid(kind, name), "name": name, "type": self._asset_type(kind),
                "systemData": self._system_data(), "properties": props}

    def _assets(self, method: str, seg: list[str], query: dict, body: Any) -> tuple[int, Any, dict]:
        kind = seg[0].lower()
        store = self._asset_store(kind)
        if len(seg) == 1 and method == "GET":
            return 200, {"value": [self._container_resource(kind, n) for n in sorted(store)]}, {}
        name = seg[1]
        if len(seg) == 2:
            if method == "GET":
                if name not in store:
                    raise _not_found(kind, name)
                return 200, self._container_resource(kind, name), {}
            if method == "PUT":
                store.setdefault(name, {})
                return 200, self._container_resource(kind, name), {}
        if len(seg) == 3 and seg[2].lower() == "versions" and method == "GET":
            versions = list(store.get(name, {}).values())
            if kind == "codes" and "hash" in query:  # the service looks the hash up workspace-wide
                versions = [v for vs in store.values() for v in vs.values()]
                versions = [v for v in versions
                            if str((v["properties"].get("properties") or {}).get("hash_sha256", "")).lower()
                            == query["hash"].lower()]
            order = (query.get("$orderBy") or query.get("$orderby") or query.get("orderBy") or "").lower()
            if "createdtime" in order and "desc" in order or not order:
                versions = sorted(versions, key=lambda v: _version_key(v["name"]), reverse=True)
            top = query.get("$top") or query.get("top")
            if top:
                versions = versions[: int(top)]
            return 200, {"value": versions}, {}
        if len(seg) >= 4 and seg[2].lower() == "versions":
            version = seg[3]
            if len(seg) == 5 and seg[4] == "startPendingUpload" and method == "POST":
                return 200, self._start_pending_upload(kind, name, version, body or {}), {}
            if len(seg) == 4 and method == "GET":
                if version not in store.get(name, {}):
                    raise _not_found(kind, f"{name}:{version}")
                return 200, store[name][version], {}
            if len(seg) == 4 and method == "PUT":
                existed = version in store.get(name, {})
                resource = {"id": self._rid(kind, name, "versions", version), "name": version,
                            "type": self._asset_type(kind) + "/versions", "systemData": self._system_data(),
                            "properties": dict((body or {}).get("properties") or {})}
                resource["properties"].setdefault("isArchived", False)
                resource["properties"].setdefault("isAnonymous", False)
                if kind == "environments":
                    resource["properties"].setdefault("environmentType", "UserCreated")
                    resource["properties"].setdefault("osType", "Linux")
                if kind == "codes":
                    resource["properties"].setdefault("provisioningState", "Succeeded")
                if kind == "models":
                    resource["properties"].setdefault("flavors", {})
                    resource["properties"].setdefault("modelType", "custom_model")
                store.setdefault(name, {})[version] = resource
                return (200 if existed else 201), resource, {}
            if len(seg) == 4 and method == "DELETE":
                store.get(name, {}).pop(version, None)
                return 200, None, {}
        raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} {'/'.join(seg)}")

    def _start_pending_upload(self, kind: str, name: str, version: str, body: dict) -> dict:
        container = f"{self.workspace_id[:8]}-{uuid.uuid4().hex}"
        if self.azurite is not None:
            sas_uri = self.azurite.container_sas_url(container)
            blob_uri = sas_uri.split("?", 1)[0]
        else:
            self.containers.add(container)
            blob_uri = f"{self.base_url}/_blob/{STORAGE_ACCOUNT}/{container}"
            sas_uri = (f"{blob_uri}?sv=2021-10-04&se=2099-01-01T00%3A00%3A00Z&sr=c&sp=rcwl"
                       f"&sig={quote(base64.b64encode(hashlib.sha256(container.encode()).digest()).decode())}")
        self.pending_uploads.append({"kind": kind, "name": name, "version": version, "container": container,
                                     "blob_uri": blob_uri, "sas_uri": sas_uri})
        return {"blobReferenceForConsumption": {
                    "blobUri": blob_uri,
                    "storageAccountArmId": f"/subscriptions/{self.subscription}/resourceGroups/{self.resource_group}"
                                           f"/providers/Microsoft.Storage/storageAccounts/{STORAGE_ACCOUNT}",
                    "credential": {"credentialType": "SAS", "sasUri": sas_uri}},
                "pendingUploadId": body.get("pendingUploadId") or str(uuid.uuid4()),
                "pendingUploadType": "TemporaryBlobReference"}

    # datastores
    def _datastores(self, method: str, seg: list[str], query: dict, body: Any) -> tuple[int, Any, dict]:
        if len(seg) == 1 and method == "GET":
            values = list(self.datastores.values())
            if str(query.get("isDefault", "")).lower() == "true":
                values = [d for d in values if d["properties"]["isDefault"]]
            return 200, {"value": values}, {}
        name = seg[1]
        if name not in self.datastores:
            raise _not_found("datastores", name)
        if len(seg) == 2 and method == "GET":
            return 200, self.datastores[name], {}
        if len(seg) == 3 and seg[2] == "listSecrets" and method == "POST":
            return 200, {"secretsType": "AccountKey", "key": STORAGE_KEY}, {}
        raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} datastores/{'/'.join(seg[1:])}")

    # online endpoints and deployments
    def _endpoint_not_found(self, name: str) -> _Reply:
        return _arm_error(404, "ResourceNotFound",
                          f"The Resource 'Microsoft.MachineLearningServices/workspaces/{self.workspace}/"
                          f"onlineEndpoints/{name}' under resource group '{self.resource_group}' was not found. "
                          "For more details please go to https://aka.ms/ARMResourceNotFoundFix")

    def _deployment_not_found(self, endpoint: str, name: str) -> _Reply:
        return _arm_error(404, "ResourceNotFound",
                          f"The Resource 'Microsoft.MachineLearningServices/workspaces/{self.workspace}/"
                          f"onlineEndpoints/{endpoint}/deployments/{name}' under resource group "
                          f"'{self.resource_group}' was not found. For more details please go to "
                          "https://aka.ms/ARMResourceNotFoundFix")

    def _endpoint_resource(self, name: str, body: dict, old: dict | None, state: str) -> dict:
        props = json.loads(json.dumps(body.get("properties") or {}))
        old_props = (old or {}).get("properties") or {}
        for key in ("traffic", "mirrorTraffic"):  # an update without traffic keeps the old one
            if props.get(key) is None:
                props[key] = dict(old_props.get(key) or {})
        props.setdefault("authMode", old_props.get("authMode", "Key"))
        props.setdefault("properties", {})
        props.setdefault("description", None)
        props.setdefault("publicNetworkAccess", "Enabled")
        props["scoringUri"] = f"https://{name}.{self.location}.inference.ml.azure.com/score"
        props["swaggerUri"] = f"https://{name}.{self.location}.inference.ml.azure.com/swagger.json"
        props["provisioningState"] = state
        identity = dict(body.get("identity") or {"type": "SystemAssigned"})
        if "systemassigned" in str(identity.get("type", "")).lower():
            identity.setdefault("principalId", str(uuid.uuid5(uuid.NAMESPACE_URL, f"endpoint/{name}")))
            identity.setdefault("tenantId", TENANT_ID)
        return {"id": self._rid("onlineEndpoints", name), "name": name,
                "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints",
                "location": body.get("location") or self.location, "kind": body.get("kind") or "Managed",
                "tags": body.get("tags") or {}, "identity": identity,
                "systemData": (old or {}).get("systemData") or self._system_data(), "properties": props}

    def _deployment_resource(self, endpoint: str, name: str, body: dict, state: str) -> dict:
        props = json.loads(json.dumps(body.get("properties") or {}))
        # what the service fills in when the body leaves it out
        props.setdefault("endpointComputeType", "Managed")
        props.setdefault("properties", {})
        props.setdefault("scaleSettings", {"scaleType": "Default"})
        props.setdefault("appInsightsEnabled", False)
        props.setdefault("egressPublicNetworkAccess", "Enabled")
        props.setdefault("requestSettings", {"requestTimeout": "PT5S", "maxConcurrentRequestsPerInstance": 1,
                                             "maxQueueWait": "PT0.5S"})
        for probe in ("livenessProbe", "readinessProbe"):
            props.setdefault(probe, {"initialDelay": "PT10S", "period": "PT10S", "timeout": "PT2S",
                                     "successThreshold": 1, "failureThreshold": 30})
        props["provisioningState"] = state
        resource = {"id": self._rid("onlineEndpoints", endpoint, "deployments", name), "name": name,
                    "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
                    "location": body.get("location") or self.location, "kind": body.get("kind") or "Managed",
                    "tags": body.get("tags") or {}, "systemData": self._system_data(), "properties": props}
        if body.get("sku") is not None:
            resource["sku"] = body["sku"]
        return resource

    def _check_traffic(self, endpoint: str, props: dict) -> None:
        for key in ("traffic", "mirrorTraffic"):
            traffic = props.get(key) or {}
            for deployment in traffic:
                if f"{endpoint}/{deployment}" not in self.deployments:
                    raise _arm_error(400, "BadRequest", f"Deployment '{deployment}' named in the {key} of endpoint "
                                                        f"'{endpoint}' does not exist.")
        traffic = props.get("traffic") or {}
        total = sum(int(v) for v in traffic.values())
        if traffic and total not in (0, 100):
            raise _arm_error(400, "BadRequest", f"The traffic of endpoint '{endpoint}' adds up to {total}: the "
                                                "deployments' traffic values must add up to 0 or 100.")

    def _model_arm_id_missing(self, model_id: str | None) -> str | None:
        """The 'name:version' of a workspace model id (or 'registry/name:version' of a registry's) this fake
        does not hold, else None."""
        r = re.match(r"^azureml://registries/(?P<reg>[^/]+)/models/(?P<name>[^/]+)/versions/(?P<version>[^/?]+)$",
                     model_id or "")
        if r:
            reg = self.registries.get(r.group("reg"))
            if reg is not None and r.group("version") in reg["assets"]["models"].get(r.group("name"), {}):
                return None
            return f"{r.group('reg')}/{r.group('name')}:{r.group('version')}"
        m = re.search(r"/workspaces/[^/]+/models/(?P<name>[^/]+)/versions/(?P<version>[^/?]+)$", model_id or "",
                      re.I)
        if not m:
            return None
        if m.group("version") in self.models.get(m.group("name"), {}):
            return None
        return f"{m.group('name')}:{m.group('version')}"

    # batch endpoints and deployments: ARM resources (LROs as for online ones); invoking one is a POST of
    # the batch job to the endpoint's scoring URI, which starts a pipeline job
    def _batch_not_found(self, what: str) -> _Reply:
        return _arm_error(404, "ResourceNotFound",
                          f"The Resource 'Microsoft.MachineLearningServices/workspaces/{self.workspace}/batchEndpoints/"
                          f"{what}' under resource group '{self.resource_group}' was not found. For more details please "
                          "go to https://aka.ms/ARMResourceNotFoundFix")

    def _batch_endpoints(self, method: str, seg: list[str], query: dict, body: Any) -> tuple[int, Any, dict]:
        if len(seg) == 1 and method == "GET":
            return 200, {"value": [e["resource"] for e in self.batch_endpoints.values()]}, {}
        name = seg[1]
        if len(seg) >= 3 and seg[2] == "deployments":
            return self._batch_deployments_route(method, name, seg[3:], body)
        if len(seg) == 2 and method == "PUT":
            return self._put_batch(self.batch_endpoints, name, body or {}, self._batch_endpoint_resource)
        if name not in self.batch_endpoints:
            raise self._batch_not_found(name)
        if len(seg) == 2 and method == "GET":
            return 200, self.batch_endpoints[name]["resource"], {}
        if len(seg) == 2 and method == "DELETE":
            def gone() -> None:
                self.batch_endpoints.pop(name, None)
                for key in [k for k in self.batch_deployments if k.startswith(name + "/")]:
                    del self.batch_deployments[key]
            return 202, None, self._start_operation("delete", on_success=gone, family="mfe")
        raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} batchEndpoints/{'/'.join(seg[1:])}")

    def _batch_endpoint_resource(self, name: str, body: dict, old: dict | None, state: str) -> dict:
        props = json.loads(json.dumps(body.get("properties") or {}))
        props.setdefault("authMode", "AADToken")
        if props.get("defaults") is None:  # an update that leaves the defaults out keeps them
            props["defaults"] = ((old or {}).get("properties") or {}).get("defaults") or {"deploymentName": None}
        props["scoringUri"] = f"https://{name}.{self.location}.inference.ml.azure.com/jobs"
        props["swaggerUri"] = None
        props["provisioningState"] = state
        return {"id": self._rid("batchEndpoints", name), "name": name, "location": body.get("location") or self.location,
                "type": "Microsoft.MachineLearningServices/workspaces/batchEndpoints", "tags": body.get("tags") or {},
                "identity": {"type": "SystemAssigned", "principalId": str(uuid.uuid5(uuid.NAMESPACE_URL, name)),
                             "tenantId": TENANT_ID},
                "systemData": (old or {}).get("systemData") or self._system_data(), "properties": props}

    def _put_batch(self, store: dict, key: str, body: dict, make) -> tuple[int, Any, dict]:
        old = store.get(key)
        resource = make(*key.split("/"), body, old["resource"] if old else None, "Updating" if old else "Creating")
        entry = old or {"puts": []}
        entry.update(body=body, resource=resource)
        entry["puts"].append(body)
        store[key] = entry

        def succeed() -> None:
            if store.get(key) is entry:
                entry["resource"]["properties"]["provisioningState"] = "Succeeded"

        return (200 if old else 201), resource, self._start_operation("create", on_success=succeed, family="mfe")

    def _batch_deployments_route(self, method: str, endpoint: str, seg: list[str], body: Any) -> tuple[int, Any, dict]:
        if endpoint not in self.batch_endpoints:
            raise self._batch_not_found(endpoint)
        if not seg and method == "GET":
            return 200, {"value": [d["resource"] for k, d in self.batch_deployments.items()
                                   if k.split("/", 1)[0] == endpoint]}, {}
        key = f"{endpoint}/{seg[0]}"
        if len(seg) == 1 and method == "PUT":
            props = (body or {}).get("properties") or {}
            missing = self._model_arm_id_missing((props.get("model") or {}).get("assetId"))
            if missing:
                raise _arm_error(400, "UserError", f"Model '{missing}' was not found in workspace '{self.workspace}'.",
                                 innerError={"code": "NotFoundError"})
            compute = str(props.get("compute") or "").rstrip("/").split("/")[-1]
            if self.check_compute and compute and compute not in self.computes:
                raise _arm_error(400, "UserError", f"Compute '{compute}' was not found in workspace "
                                                   f"'{self.workspace}'.", innerError={"code": "NotFoundError"})
            return self._put_batch(self.batch_deployments, key, body or {}, self._batch_deployment_resource)
        if key not in self.batch_deployments:
            raise self._batch_not_found(f"{endpoint}/deployments/{seg[0]}")
        if len(seg) == 1 and method == "GET":
            return 200, self.batch_deployments[key]["resource"], {}
        raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} batchEndpoints/{endpoint}/"
                                             f"deployments/{'/'.join(seg)}")

    def _batch_deployment_resource(self, endpoint: str, name: str, body: dict, old: dict | None, state: str) -> dict:
        props = json.loads(json.dumps(body.get("properties") or {}))
        props.setdefault("properties", {})
        props["provisioningState"] = state
        return {"id": self._rid("batchEndpoints", endpoint, "deployments", name), "name": name,
                "type": "Microsoft.MachineLearningServices/workspaces/batchEndpoints/deployments",
                "location": body.get("location") or self.location, "tags": body.get("tags") or {},
                "systemData": self._system_data(), "properties": props}

    def _invoke_batch(self, endpoint: str, body: dict, headers: dict) -> tuple[int, Any, dict]:
        if endpoint not in self.batch_endpoints:
            raise _arm_error(404, "EndpointNotFound", f"Batch endpoint '{endpoint}' was not found.")
        lowered = {k.lower(): v for k, v in headers.items()}
        resource = self.batch_endpoints[endpoint]["resource"]
        deployment = lowered.get("azureml-model-deployment") or \
            ((resource["properties"].get("defaults") or {}).get("deploymentName"))
        if not deployment:
            raise _arm_error(400, "BadRequest", f"Batch endpoint '{endpoint}' has no default deployment: name one, "
                                                "or set its defaults.deployment_name.")
        if f"{endpoint}/{deployment}" not in self.batch_deployments:
            raise _arm_error(400, "BadRequest", f"Deployment '{deployment}' of batch endpoint '{endpoint}' does not "
                                                "exist.")
        name = f"batchjob-{uuid.uuid4()}"
        self.batch_jobs[name] = {"endpoint": endpoint, "deployment": deployment, "body": body}
        self._create_job(name, {"properties": {"jobType": "Pipeline", "displayName": name,
                                               "experimentName": endpoint, "jobs": {},
                                               "outputs": {"score": {"jobOutputType": "uri_folder"}},
                                               "computeId": (self.batch_deployments[f"{endpoint}/{deployment}"]
                                                             ["body"].get("properties") or {}).get("compute")}})
        props = dict(body.get("properties") or {})
        props.update(status="NotStarted", provisioningState="Succeeded")
        return 200, {"id": self._rid("jobs", name), "name": name, "type": "Microsoft.MachineLearningServices/"
                     "workspaces/jobs", "properties": props}, {}

    # schedules: PUT (create, update, enable or disable: isEnabled in the body), GET, list
    def _schedules(self, method: str, seg: list[str], query: dict, body: Any) -> tuple[int, Any, dict]:
        if len(seg) == 1 and method == "GET":
            return 200, {"value": [e["resource"] for e in self.schedules.values()]}, {}
        name = seg[1]
        if len(seg) == 2 and method == "PUT":
            old = self.schedules.get(name)
            props = dict((body or {}).get("properties") or {})
            props.setdefault("isEnabled", True)
            props["provisioningState"] = "Succeeded"
            resource = {"id": self._rid("schedules", name), "name": name, "type":
                        "Microsoft.MachineLearningServices/workspaces/schedules", "properties": props,
                        "systemData": {"createdAt": _now_iso(), "lastModifiedAt": _now_iso()}}
            entry = old or {"puts": []}
            entry.update(body=body, resource=resource)
            entry["puts"].append(body)
            self.schedules[name] = entry
            return (200 if old else 201), resource, self._start_operation("create", family="mfe")
        if name not in self.schedules:
            raise _arm_error(404, "ResourceNotFound", f"Schedule {name} was not found.")
        if len(seg) == 2 and method == "GET":
            return 200, self.schedules[name]["resource"], {}
        raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} schedules/{'/'.join(seg[1:])}")

    def _online_endpoints(self, method: str, seg: list[str], query: dict, body: Any) -> tuple[int, Any, dict]:
        if len(seg) == 1 and method == "GET":
            return 200, {"value": [e["resource"] for e in self.endpoints.values()]}, {}
        name = seg[1]
        if len(seg) == 2 and method == "PUT":
            return self._put_endpoint(name, body or {})
        if len(seg) >= 3 and seg[2] == "deployments":
            return self._online_deployments(method, name, seg[3:], query, body)
        if name not in self.endpoints:
            raise self._endpoint_not_found(name)
        entry = self.endpoints[name]
        if len(seg) == 2 and method == "GET":
            return 200, entry["resource"], {}
        if len(seg) == 2 and method == "DELETE":
            def gone() -> None:
                self.endpoints.pop(name, None)
                for key in [k for k in self.deployments if k.startswith(name + "/")]:
                    del self.deployments[key]
            return 202, None, self._start_operation("delete", on_success=gone, family="mfe")
        if len(seg) == 3 and method == "POST":
            action = seg[2]
            auth = str(entry["resource"]["properties"].get("authMode", "Key"))
            if action == "listKeys":
                if auth.lower() != "key":
                    raise _arm_error(400, "BadRequest", f"Endpoint '{name}' uses {auth} authentication: it has no "
                                                        "keys.")
                return 200, {"primaryKey": f"fake-primary-key-{name}", "secondaryKey": f"fake-secondary-key-{name}"}, {}
            if action == "token":
                if auth.lower() == "key":
                    raise _arm_error(400, "BadRequest", f"Endpoint '{name}' uses key authentication: it has no "
                                                        "token.")
                now = int(time.time())
                return 200, {"accessToken": f"fake-endpoint-token-{name}", "tokenType": "Bearer",
                             "expiryTimeUtc": now + 3600, "refreshAfterTimeUtc": now + 1800}, {}
            if action == "regenerateKeys":
                return 202, None, self._start_operation("regenerateKeys", family="mfe")
        raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} onlineEndpoints/{'/'.join(seg[1:])}")

    def _put_endpoint(self, name: str, body: dict) -> tuple[int, Any, dict]:
        old = self.endpoints.get(name)
        props = body.get("properties") or {}
        if not props.get("authMode") and old is None:
            raise _arm_error(400, "BadRequest", "The authMode field is required.")
        resource = self._endpoint_resource(name, body, old["resource"] if old else None,
                                           "Updating" if old else "Creating")
        self._check_traffic(name, resource["properties"])
        entry = old or {"puts": []}
        entry.update(body=body, resource=resource)
        entry["puts"].append(body)
        self.endpoints[name] = entry

        def succeed() -> None:
            if self.endpoints.get(name) is entry:
                entry["resource"]["properties"]["provisioningState"] = "Succeeded"

        headers = self._start_operation("create", on_success=succeed, family="mfe")
        return (200 if old else 201), resource, headers

    def _online_deployments(self, method: str, endpoint: str, seg: list[str], query: dict,
                            body: Any) -> tuple[int, Any, dict]:
        if endpoint not in self.endpoints:
            raise self._endpoint_not_found(endpoint)
        if not seg and method == "GET":
            return 200, {"value": [d["resource"] for k, d in self.deployments.items()
                                   if k.split("/", 1)[0] == endpoint]}, {}
        name = seg[0]
        key = f"{endpoint}/{name}"
        if len(seg) == 1 and method == "PUT":
            return self._put_deployment(endpoint, name, body or {})
        if key not in self.deployments:
            raise self._deployment_not_found(endpoint, name)
        entry = self.deployments[key]
        if len(seg) == 1 and method == "GET":
            return 200, entry["resource"], {}
        if len(seg) == 1 and method == "DELETE":
            traffic = self.endpoints[endpoint]["resource"]["properties"].get("traffic") or {}
            if traffic.get(name):
                raise _arm_error(400, "BadRequest", f"Deployment '{name}' has {traffic[name]}% of the traffic of "
                                                    f"endpoint '{endpoint}': set it to 0 before deleting it.")
            return 202, None, self._start_operation("delete", on_success=lambda: self.deployments.pop(key, None),
                                                    family="mfe")
        if len(seg) == 2 and seg[1] == "getLogs" and method == "POST":
            tail = int((body or {}).get("tail") or 0)
            lines = [f"[fake-azure] deployment {name} of endpoint {endpoint}: "
                     f"{(body or {}).get('containerType') or 'InferenceServer'} log",
                     "[fake-azure] Initializing inference server", "[fake-azure] Listening on 0.0.0.0:5001"]
            return 200, {"content": "\n".join(lines[-tail:] if tail else lines) + "\n"}, {}
        if len(seg) == 2 and seg[1] == "skus" and method == "GET":
            return 200, {"value": []}, {}
        raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} onlineEndpoints/{endpoint}/"
                                             f"deployments/{'/'.join(seg)}")

    def _put_deployment(self, endpoint: str, name: str, body: dict) -> tuple[int, Any, dict]:
        key = f"{endpoint}/{name}"
        props = body.get("properties") or {}
        missing = self._model_arm_id_missing(props.get("model"))
        if missing:
            place = (f"registry '{missing.split('/')[0]}'" if "/" in missing else f"workspace '{self.workspace}'")
            raise _arm_error(400, "UserError", f"Model '{missing.split('/')[-1]}' was not found in {place}.",
                             innerError={"code": "NotFoundError"})
        old = self.deployments.get(key)
        resource = self._deployment_resource(endpoint, name, body, "Updating" if old else "Creating")
        entry = old or {"puts": []}
        entry.update(body=body, resource=resource)
        entry["puts"].append(body)
        self.deployments[key] = entry

        def succeed() -> None:
            if self.deployments.get(key) is entry:
                entry["resource"]["properties"]["provisioningState"] = "Succeeded"

        headers = self._start_operation("create", on_success=succeed, family="mfe")
        return (200 if old else 201), resource, headers

    # jobs
    def _add_child_runs(self, parent: str, steps: dict) -> None:
        """A run per pipeline step, as run history lists a pipeline's children: its display name is the
        step's, and it keeps the step's services and node count for ``serviceinstances``."""
        for step, spec in steps.items():
            if not isinstance(spec, dict):
                continue
            services = {svc: {"jobServiceType": conf.get("job_service_type") or conf.get("jobServiceType"),
                              "nodes": {"nodesValueType": (conf.get("nodes") or {}).get("nodes_value_type")}
                              if isinstance(conf.get("nodes"), dict) else conf.get("nodes")}
                        for svc, conf in (spec.get("services") or {}).items() if isinstance(conf, dict)}
            count = (spec.get("resources") or {}).get("instance_count") or 1
            body = {"properties": {"jobType": "Command", "displayName": step, "services": services,
                                   "resources": {"instanceCount": count}}}
            self.child_jobs[f"{parent}_{step}"] = {
                "body": body, "resource": {"properties": {"displayName": step, "properties": {}, "tags": {}}},
                "reads": 0, "status": "NotStarted", "canceled": False, "outputs": set(), "created": time.time(),
                "parent": parent}

    def _entry(self, name: str) -> dict:
        """A job's or a pipeline step's run (run history reads both alike)."""
        return self.jobs[name] if name in self.jobs else self.child_jobs[name]

    def _job_status(self, job: dict, advance: bool = True) -> str:
        if job["canceled"]:
            return "Canceled"
        if advance:
            job["reads"] += 1
        reads = job["reads"]
        if reads == 0:
            return "NotStarted"
        if reads <= len(self.status_sequence):
            return self.status_sequence[reads - 1]
        return (job.get("outcome") or {}).get("status") or self.job_final_status

    def _job_resource(self, name: str, advance: bool = True) -> dict:
        job = self.jobs[name]
        status = self._job_status(job, advance)
        job["status"] = status
        resource = json.loads(json.dumps(job["resource"]))
        resource["properties"]["status"] = status
        return resource

    def _jobs(self, method: str, seg: list[str], query: dict, body: Any) -> tuple[int, Any, dict]:
        if len(seg) == 1 and method == "GET":
            return 200, {"value": [self._job_resource(n, advance=False) for n in self.jobs]}, {}
        name = seg[1]
        if len(seg) == 2 and method == "PUT":
            return self._create_job(name, body or {})
        if name not in self.jobs:
            raise _not_found("jobs", name)
        if len(seg) == 2 and method == "GET":
            return 200, self._job_resource(name), {}
        if len(seg) == 3 and seg[2] == "cancel" and method == "POST":
            self.jobs[name]["canceled"] = True
            return 202, None, self._start_operation("cancel")
        if len(seg) == 2 and method == "DELETE":
            return 202, None, self._start_operation("delete", on_success=lambda: self.jobs.pop(name, None))
        raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} jobs/{'/'.join(seg[1:])}")

    def _create_job(self, name: str, body: dict) -> tuple[int, Any, dict]:
        existed = name in self.jobs
        props = json.loads(json.dumps(body.get("properties") or {}))
        compute = props.get("computeId")
        compute_name = (compute or "").rstrip("/").split("/")[-1]
        if self.check_compute and compute and "/computes/" in compute.lower() and compute_name not in self.computes:
            raise _arm_error(400, "UserError", f"Could not find compute target '{compute_name}' in workspace "
                                               f"'{self.workspace}'.", innerError={"code": "NotFoundError"})
        props.setdefault("experimentName", "Default")
        props.setdefault("displayName", name)
        props.setdefault("isArchived", False)
        props.setdefault("properties", {})
        props.setdefault("tags", {})
        props["services"] = {
            "Tracking": {"jobServiceType": "Tracking", "port": None, "status": None, "errorMessage": None,
                         "properties": None, "endpoint": f"azureml://{self.api_host}/mlflow/v1.0"
                                                          f"{self.workspace_arm_id}?"},
            "Studio": {"jobServiceType": "Studio", "port": None, "status": None, "errorMessage": None,
                       "properties": None, "endpoint": self.studio_url(name)},
        }
        outputs = props.get("outputs") or {}
        named = [k for k, v in outputs.items() if isinstance(v, dict)]
        outputs["default"] = {"jobOutputType": "uri_folder", "mode": "ReadWriteMount", "description": None,
                              "uri": f"azureml://datastores/workspaceartifactstore/ExperimentRun/dcid.{name}"}
        props["outputs"] = outputs
        resource = {"id": self._rid("jobs", name), "name": name,
                    "type": "Microsoft.MachineLearningServices/workspaces/jobs",
                    "systemData": self._system_data(), "properties": props}
        self.jobs[name] = {"body": body, "resource": resource, "reads": 0, "status": "NotStarted",
                           "canceled": False, "outputs": set(named), "created": time.time()}
        # what the job "writes": its log in the artifact store and a file per named output
        prefix = f"ExperimentRun/dcid.{name}"
        command = props.get("command") or f"({props.get('jobType')} job: {len(props.get('jobs') or {})} steps)"
        log = (f"[fake-azure] job {name} ({props.get('jobType')}) on {compute or 'serverless'}\n"
               f"[fake-azure] command: {command}\n[fake-azure] done\n")
        self.put_blob(ARTIFACT_CONTAINER, f"{prefix}/user_logs/std_log.txt", log.encode())
        if self.job_outcomes and not existed:
            self.jobs[name]["outcome"] = outcome = self.job_outcomes.pop(0)
            if outcome.get("logs"):
                self.set_job_logs(name, outcome["logs"])
        for out in named:
            self.put_blob(self.blobstore_container, f"azureml/{name}/{out}/fake-output.txt",
                                f"output {out} of job {name}\n".encode())
        if str(props.get("jobType")).lower() == "pipeline":
            self._add_child_runs(name, props.get("jobs") or {})
        resource = self._job_resource(name, advance=False)
        return (200 if existed else 201), resource, {}

    # -- data plane: run history, dataset resolution -------------------------------------------
    def _run(self, name: str, advance: bool = True) -> dict:
        job = self._entry(name)
        status = self._job_status(job, advance)
        job["status"] = status
        props = job["resource"]["properties"]
        created = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(job["created"]))
        run: dict[str, Any] = {
            "runId": name, "runUuid": str(uuid.uuid5(uuid.NAMESPACE_URL, name)), "status": status,
            "displayName": props.get("displayName"), "experimentId": str(uuid.uuid5(uuid.NAMESPACE_URL, "exp")),
            "runType": "azureml.scriptrun", "target": (props.get("computeId") or "").split("/")[-1] or None,
            "createdUtc": created, "startTimeUtc": created if status not in ("NotStarted", "Queued") else None,
            "endTimeUtc": _now_iso() if status in TERMINAL else None, "tags": props.get("tags") or {},
            "properties": props.get("properties") or {}, "warnings": [],
        }
        if status == "Failed":
            message = (job.get("outcome") or {}).get("error") or "Execution failed (fake): exit code 1"
            run["error"] = {"error": {"code": "UserError", "message": message,
                                      "messageFormat": "", "details": []}, "time": _now_iso()}
        return run

    def _service_instances(self, name: str, node: int) -> dict[str, dict]:
        """A running job's interactive services on one node, as run history lists them: those the job
        asked for (on node 0, or on every node with nodes: all), with an endpoint each."""
        asked = self._entry(name)["body"].get("properties") or {}  # the job (or pipeline step) as submitted
        services = asked.get("services") or {}
        count = (asked.get("resources") or {}).get("instanceCount") or 1
        found = {}
        for service, spec in services.items():
            nodes = (spec.get("nodes") or {}).get("nodesValueType") if isinstance(spec.get("nodes"), dict) \
                else spec.get("nodes")
            kind = spec.get("jobServiceType") or ""
            if node >= count or (node > 0 and str(nodes).lower() != "all") or kind in ("Tracking", "Studio"):
                continue
            host = f"{name}-{service}".lower().replace("_", "-") + f"-<nodeIndex>.{self.location}.nbsvc.azureml.net"
            found[service] = {"type": kind, "port": 50000 if kind == "SSH" else 8888, "status": "Running",
                              "endpoint": f"ssh://azureuser@{host}:50000" if kind == "SSH" else f"https://{host}",
                              "properties": {}}
        return found

    def _dataplane(self, method: str, svc: str, rest: str, query: dict, body: Any) -> tuple[int, Any, dict]:
        seg = [s for s in rest.split("/") if s]
        if svc == "history":
            # .../runs/<id>[/details|/children], .../experiments/<exp>/runs/<id>, .../rundata
            if seg == ["rundata"] and method == "POST":
                run_id = (body or {}).get("runId")
                if run_id not in self.jobs:
                    raise _not_found("runs", str(run_id))
                run = self._run(run_id)
                run["outputs"] = {
                    out: {"assetId": f"azureml://locations/{self.location}/workspaces/{self.workspace_id}/data/"
                                     f"azureml_{run_id}_output_data_{out}/versions/1", "type": "uri_folder"}
                    for out in sorted(self.jobs[run_id]["outputs"])}
                return 200, {"runMetadata": run, "metrics": {}}, {}
            if "runs" in seg:
                i = seg.index("runs")
                run_id = seg[i + 1] if len(seg) > i + 1 else None
                tail = seg[i + 2:] if run_id else []
                if run_id is None:
                    raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} history {rest}")
                if run_id not in self.jobs and run_id not in self.child_jobs:
                    raise _not_found("runs", run_id)
                if tail == ["details"] and method == "GET":
                    run = self._run(run_id)
                    details = {k: run.get(k) for k in ("runId", "runUuid", "status", "target", "startTimeUtc",
                                                         "endTimeUtc", "tags", "properties", "warnings", "error")}
                    details["logFiles"] = self._log_files(run_id)
                    return 200, details, {}
                if tail == ["children"] and method == "GET":
                    children = [c for c, entry in self.child_jobs.items() if entry["parent"] == run_id]
                    return 200, {"value": [self._run(c) for c in children], "continuationToken": None}, {}
                if len(tail) == 2 and tail[0] == "serviceinstances" and method == "GET":
                    return 200, {"instances": self._service_instances(run_id, int(tail[1]))}, {}
                if not tail and method in ("GET", "PATCH", "POST", "PUT"):
                    run = self._run(run_id, advance=(method == "GET"))
                    if method != "GET" and isinstance(body, dict):
                        job_props = self.jobs[run_id]["resource"]["properties"]
                        for key, target in (("tags", "tags"), ("properties", "properties")):
                            if body.get(key):
                                job_props.setdefault(target, {}).update(body[key])
                        for key in ("displayName", "description"):
                            if body.get(key) is not None:
                                job_props[key] = body[key]
                        run = self._run(run_id, advance=False)
                    return 200, run, {}
            raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} history {rest}")
        if svc == "data" and seg == ["dataversion", "batchGetResolvedUris"] and method == "POST":
            values = {}
            for asset_id in (body or {}).get("values") or []:
                m = re.search(r"/data/azureml_(?P<job>.+)_output_data_(?P<out>[^/]+)/versions/", asset_id)
                if not m:
                    continue
                values[asset_id] = {
                    "uri": f"azureml://subscriptions/{self.subscription}/resourcegroups/{self.resource_group}/"
                           f"workspaces/{self.workspace}/datastores/workspaceblobstore/paths/"
                           f"azureml/{m.group('job')}/{m.group('out')}/",
                    "type": "uri_folder"}
            return 200, {"values": values}, {}
        raise _arm_error(404, "NoSuchRoute", f"The fake has no route for {method} {svc} {rest}")

    def _log_files(self, run_id: str) -> dict[str, str]:
        prefix = f"ExperimentRun/dcid.{run_id}/"
        names = []
        if self.azurite is None:
            names = [n for (c, n) in self.blobs if c == ARTIFACT_CONTAINER and n.startswith(prefix)]
        else:
            names = self.azurite.list_blobs(ARTIFACT_CONTAINER, prefix)
        return {n[len(prefix):]: f"https://{STORAGE_ACCOUNT}.blob.core.windows.net/{ARTIFACT_CONTAINER}/{n}"
                                 f"?sv=2021-10-04&sr=b&sp=r&sig=fake" for n in sorted(names)}

    # -- built-in blob store -------------------------------------------------------------------
    def _blob(self, method: str, rest: str, query: dict, headers: dict, data: bytes) -> tuple[int, Any, dict]:
        # rest = <account>/<container>[/<blob name>]
        parts = rest.split("/", 2)
        if len(parts) < 2 or not parts[1]:
            if query.get("comp") == "properties" or query.get("restype") == "service":
                return 200, b"", {}
            raise _blob_error(400, "InvalidUri", "The requested URI does not represent any resource on the server.")
        container = parts[1]
        name = parts[2] if len(parts) > 2 else ""
        with self.lock:
            if not name:
                return self._blob_container(method, container, query)
            return self._blob_object(method, container, name, query, headers, data)

    def _blob_container(self, method: str, container: str, query: dict) -> tuple[int, Any, dict]:
        restype = query.get("restype")
        if restype == "container" and method == "PUT":
            if container in self.containers:
                raise _blob_error(409, "ContainerAlreadyExists", "The specified container already exists.")
            self.containers.add(container)
            return 201, b"", {"ETag": '"0x1"', "Last-Modified": _http_date()}
        if restype == "container" and query.get("comp") == "list" and method == "GET":
            return 200, self._list_xml(container, query), {"Content-Type": "application/xml"}
        if restype == "container" and method in ("GET", "HEAD") and "comp" not in query:
            if container not in self.containers:
                raise _blob_error(404, "ContainerNotFound", "The specified container does not exist.")
            return 200, b"", {"ETag": '"0x1"', "Last-Modified": _http_date(), "x-ms-lease-status": "unlocked",
                              "x-ms-lease-state": "available", "x-ms-has-immutability-policy": "false",
                              "x-ms-has-legal-hold": "false"}
        if restype == "container" and method == "DELETE":
            self.containers.discard(container)
            for key in [k for k in self.blobs if k[0] == container]:
                del self.blobs[key]
            return 202, b"", {}
        raise _blob_error(400, "UnsupportedQueryParameter", f"The fake blob store does not support {method} {query}")

    def _list_xml(self, container: str, query: dict) -> bytes:
        prefix = query.get("prefix", "")
        delimiter = query.get("delimiter")
        names = sorted(n for (c, n) in self.blobs if c == container and n.startswith(prefix))
        include = query.get("include", "")
        items, prefixes = [], []
        for n in names:
            if delimiter:
                tail = n[len(prefix):]
                if delimiter in tail:
                    p = prefix + tail.split(delimiter, 1)[0] + delimiter
                    if p not in prefixes:
                        prefixes.append(p)
                    continue
            b = self.blobs[(container, n)]
            meta = ""
            if "metadata" in include:
                meta = "<Metadata>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in b.metadata.items()) + "</Metadata>"
            items.append(
                f"<Blob><Name>{escape(n)}</Name><Properties><Creation-Time>{_http_date(b.modified)}</Creation-Time>"
                f"<Last-Modified>{_http_date(b.modified)}</Last-Modified><Etag>{escape(b.etag)}</Etag>"
                f"<Content-Length>{len(b.data)}</Content-Length><Content-Type>{escape(b.content_type)}</Content-Type>"
                f"<BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier><AccessTierInferred>true"
                f"</AccessTierInferred><LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>"
                f"<ServerEncrypted>true</ServerEncrypted></Properties>{meta}</Blob>")
        items += [f"<BlobPrefix><Name>{escape(p)}</Name></BlobPrefix>" for p in prefixes]
        xml = (f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="{self.base_url}/_blob/'
               f'{STORAGE_ACCOUNT}/" ContainerName="{escape(container)}"><Prefix>{escape(prefix)}</Prefix>'
               + (f"<Delimiter>{escape(delimiter)}</Delimiter>" if delimiter else "")
               + f"<Blobs>{''.join(items)}</Blobs><NextMarker /></EnumerationResults>")
        return xml.encode()

    def _blob_object(self, method: str, container: str, name: str, query: dict, headers: dict,
                     data: bytes) -> tuple[int, Any, dict]:
        key = (container, name)
        comp = query.get("comp")
        meta = {k[len("x-ms-meta-"):]: v for k, v in headers.items() if k.lower().startswith("x-ms-meta-")}
        if method == "PUT" and comp == "block":
            self._blocks.setdefault(key, {})[query["blockid"]] = data
            return 201, b"", {"x-ms-request-server-encrypted": "true"}
        if method == "PUT" and comp == "blocklist":
            ids = re.findall(r"<(?:Latest|Uncommitted|Committed)>([^<]*)</", data.decode())
            blocks = self._blocks.pop(key, {})
            content = b"".join(blocks.get(i, b"") for i in ids)
            self.containers.add(container)
            self.blobs[key] = _Blob(content, meta, headers.get("x-ms-blob-content-type", "application/octet-stream"))
            return 201, b"", self._blob_headers(self.blobs[key], with_length=False)
        if method == "PUT" and comp == "metadata":
            if key not in self.blobs:
                raise _blob_error(404, "BlobNotFound", "The specified blob does not exist.")
            self.blobs[key].metadata = meta
            return 200, b"", self._blob_headers(self.blobs[key], with_length=False)
        if method == "PUT" and comp is None:
            if headers.get("x-ms-blob-type", "BlockBlob") != "BlockBlob":
                raise _blob_error(400, "InvalidHeaderValue", "Only BlockBlob is supported by the fake.")
            self.containers.add(container)
            self.blobs[key] = _Blob(data, meta, headers.get("x-ms-blob-content-type") or
                                    headers.get("content-type") or "application/octet-stream")
            return 201, b"", {**self._blob_headers(self.blobs[key], with_length=False),
                              "x-ms-request-server-encrypted": "true"}
        if key not in self.blobs:
            raise _blob_error(404, "BlobNotFound", "The specified blob does not exist.")
        blob = self.blobs[key]
        if method == "HEAD" or (method == "GET" and comp == "properties"):
            return 200, b"", self._blob_headers(blob)
        if method == "GET" and comp is None:
            rng = headers.get("x-ms-range") or headers.get("range")
            if rng:
                m = re.match(r"bytes=(\d+)-(\d*)", rng)
                start = int(m.group(1))
                end = int(m.group(2)) if m.group(2) else len(blob.data) - 1
                if start >= len(blob.data):
                    raise _blob_error(416, "InvalidRange", "The range specified is invalid for the current size "
                                                           "of the resource.")
                end = min(end, len(blob.data) - 1)
                chunk = blob.data[start:end + 1]
                hdrs = self._blob_headers(blob, with_length=False)
                hdrs["Content-Range"] = f"bytes {start}-{end}/{len(blob.data)}"
                return 206, chunk, hdrs
            return 200, blob.data, self._blob_headers(blob, with_length=False)
        if method == "DELETE":
            del self.blobs[key]
            return 202, b"", {"x-ms-delete-type-permanent": "true"}
        raise _blob_error(400, "UnsupportedHttpVerb", f"The fake blob store does not support {method} {query}")

    @staticmethod
    def _blob_headers(blob: _Blob, with_length: bool = True) -> dict[str, str]:
        h = {"ETag": blob.etag, "Last-Modified": _http_date(blob.modified), "x-ms-blob-type": "BlockBlob",
             "Content-Type": blob.content_type, "x-ms-creation-time": _http_date(blob.modified),
             "x-ms-lease-status": "unlocked", "x-ms-lease-state": "available", "x-ms-server-encrypted": "true",
             "Accept-Ranges": "bytes", "x-ms-access-tier": "Hot", "x-ms-access-tier-inferred": "true"}
        for k, v in blob.metadata.items():
            h[f"x-ms-meta-{k}"] = v
        if with_length:
            h["x-ms-content-length-for-head"] = str(len(blob.data))
        return h


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------
def _version_key(v: str) -> tuple:
    return (0, int(v), "") if v.isdigit() else (1, 0, v)


def _latest_version(versions: dict) -> str | None:
    if not versions:
        return None
    return sorted(versions, key=_version_key)[-1]


def _next_version(versions: dict) -> str:
    numeric = [int(v) for v in versions if v.isdigit()]
    return str(max(numeric) + 1 if numeric else 1)


def _not_found(kind: str, name: str) -> _Reply:
    return _arm_error(404, "UserError", f"Could not find {kind} '{name}' in workspace.",
                      innerError={"code": "NotFoundError"})


def _blob_error(status: int, code: str, message: str) -> _Reply:
    body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{code}</Code><Message>{escape(message)}\n'
            f"RequestId:{uuid.uuid4()}\nTime:{_now_iso()}</Message></Error>").encode()
    return _Reply(status, body, {"x-ms-error-code": code, "Content-Type": "application/xml"})


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAzure  # set on the subclass made by FakeAzure.start
    protocol_version = "HTTP/1.1"
    server_version = "FakeAzure/1.0"
    # A reply goes out as headers, then body: two small writes on a keep-alive connection. With Nagle's
    # algorithm on, the body waits for the client's delayed ACK of the headers (up to 40 ms on Linux), for
    # every request azure-ai-ml makes (a retry test made 590 of them and spent 9.5 s in recv).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.fake.lock:
            self.fake._connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.fake.lock:
                self.fake._connections.discard(self.connection)

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        data = self.rfile.read(length) if length else b""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = self._read_chunked()
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, body, extra = self.fake.handle(self.command, self.path, headers, data)
        except Exception as exc:  # a bug in the fake: say so loudly, as a 400 (no client retries)
            import traceback

            traceback.print_exc()
            status, body, extra = 400, {"error": {"code": "FakeAzureBug", "message": repr(exc)}}, {}
        if body is None:
            payload = b""
        elif isinstance(body, (bytes, bytearray)):
            payload = bytes(body)
        else:
            payload = json.dumps(body).encode()
            extra = {"Content-Type": "application/json; charset=utf-8", **extra}
        self.send_response(status)
        request_id = str(uuid.uuid4())
        base = {"x-ms-request-id": request_id, "x-ms-client-request-id": headers.get("x-ms-client-request-id",
                                                                                      request_id),
                "x-ms-correlation-request-id": request_id, "x-ms-version": headers.get("x-ms-version", "2021-10-04"),
                "Date": _http_date()}
        for k, v in {**base, **extra}.items():
            if k.lower() in ("content-length", "x-ms-content-length-for-head"):
                continue
            self.send_header(k, v)
        head_length = extra.get("x-ms-content-length-for-head")
        if self.command == "HEAD":
            self.send_header("Content-Length", head_length or str(len(payload)))
            self.end_headers()
            return
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _read_chunked(self) -> bytes:
        out = b""
        while True:
            size = int(self.rfile.readline().strip() or b"0", 16)
            if size == 0:
                self.rfile.readline()
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    do_GET = do_PUT = do_POST = do_DELETE = do_PATCH = do_HEAD = _serve


def ml_client(fake: FakeAzure, subscription: str | None = None, resource_group: str | None = None,
              workspace: str | None = None, **kwargs: Any):
    """``MLClient(StaticCredential(), sub, rg, ws, transport=RewritingTransport(fake.port))``:
    every request MLClient makes goes to ``fake`` (defaults: the fake's own sub/rg/ws)."""
    from azure.ai.ml import MLClient

    kwargs.setdefault("transport", RewritingTransport(fake.port, blob_port=fake.blob_port))
    kwargs.setdefault("enable_telemetry", False)
    kwargs.setdefault("show_progress", False)
    return MLClient(StaticCredential(), subscription or fake.subscription, resource_group or fake.resource_group,
                    workspace or fake.workspace, **kwargs)


def registry_client(fake: FakeAzure, registry: str, **kwargs: Any):
    """``MLClient(StaticCredential(), registry_name=registry, transport=...)`` bound to ``fake``: registry
    discovery and the registry's asset requests go to it (see add_registry)."""
    from azure.ai.ml import MLClient

    kwargs.setdefault("transport", RewritingTransport(fake.port, blob_port=fake.blob_port))
    kwargs.setdefault("enable_telemetry", False)
    kwargs.setdefault("show_progress", False)
    return MLClient(StaticCredential(), registry_name=registry, **kwargs)
