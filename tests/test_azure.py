"""The Azure path with the real azure-ai-ml code (MLClient, its operations, serialization, the
code snapshot upload) against a fake of the ARM / Azure ML REST endpoints on 127.0.0.1.
Nothing reaches anything but loopback."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from helpers import fake_azure
from helpers.azurite import Azurite, azurite_command

ROOT = Path(__file__).resolve().parents[1]
SUB = "00000000-0000-0000-0000-000000000000"
WS = ["--subscription", SUB, "--resource-group", "rg", "--workspace", "ws"]


pytestmark = pytest.mark.usefixtures("azure_offline")


@pytest.fixture
def fake():
    with fake_azure.FakeAzure(subscription=SUB) as f:
        f.add_data_asset("penguins", "3", data_type="uri_file")
        yield f


@pytest.fixture
def submit(cli, fake, monkeypatch):
    from jobgen import cloud

    monkeypatch.setattr(cloud, "make_client", lambda ws, credential=None, **kw: fake_azure.ml_client(fake))

    def run(*args):
        return cli("submit", *map(str, args), *WS)

    return run


def trainer_files() -> list[str]:
    base = ROOT / "src" / "trainer"
    skip = ("__pycache__", ".pyc", "mlflow.db")
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*")
                  if p.is_file() and not any(s in p.as_posix() for s in skip))


# ------------------------------------------------------------------ jobs

def test_command_job_put_body_and_code_snapshot(submit, fake):
    rc, out, err = submit(ROOT / "jobs/penguins-mpi/job.yml", "--ensure-compute")
    assert rc == 0, err
    body = fake.job_body()["properties"]
    assert body["jobType"] == "Command"
    assert body["distribution"] == {"distributionType": "Mpi", "processCountPerInstance": 2}
    assert body["resources"]["instanceCount"] == 2
    assert body["command"].startswith("python train.py --data ${{inputs.data}} --task ${{inputs.task}}")
    assert body["inputs"]["epochs"] == {"jobInputType": "literal", "value": "60"}
    assert body["inputs"]["data"]["jobInputType"] == "uri_file" and "penguins" in body["inputs"]["data"]["uri"]
    assert body["environmentId"].endswith("/environments/jobgen-pytorch-gpu/versions/1")
    assert body["computeId"].endswith("/computes/cpu-cluster")
    assert body["experimentName"] == "penguins"
    # the snapshot holds src/trainer and nothing else
    assert fake.snapshot_files() == trainer_files()
    name = list(fake.jobs)[-1]
    assert out.splitlines()[0] == name and "studio:" in out


def test_ensure_compute_creates_the_cluster_from_the_compute_yaml(submit, fake):
    rc, out, err = submit(ROOT / "jobs/penguins-mpi/job.yml", "--ensure-compute")
    assert rc == 0, err
    puts = fake.find("PUT", "/computes/cpu-cluster")
    assert len(puts) == 1
    props = puts[0].body["properties"]["properties"]
    assert props["vmSize"] == "Standard_D4s_v3" and props["scaleSettings"]["maxNodeCount"] == 2
    assert "compute cpu-cluster: creating" in err and "created" in err
    rc, out, err = submit(ROOT / "jobs/penguins-mpi/job.yml", "--ensure-compute")  # exists now: not again
    assert rc == 0 and len(fake.find("PUT", "/computes/cpu-cluster")) == 1 and "exists" in err


def test_pipeline_submission(submit, fake):
    rc, out, err = submit(ROOT / "jobs/penguins-pipeline/pipeline.yml", "--ensure-compute")
    assert rc == 0, err
    body = fake.job_body()["properties"]
    assert body["jobType"] == "Pipeline"
    train = body["jobs"]["train"]
    # pipeline steps travel in snake_case inside the pipeline body
    assert train["distribution"] == {"process_count_per_instance": 2, "distribution_type": "PyTorch"}
    assert train["resources"] == {"instance_count": 2}
    assert train["inputs"]["data_file"]["value"] == "${{parent.inputs.data}}"
    assert len(fake.find("PUT", "/components/")) == 3


@pytest.mark.parametrize("final,expected_rc", [("Completed", 0), ("Failed", 1), ("Canceled", 1)])
def test_stream_exits_zero_only_when_the_job_completes(submit, fake, final, expected_rc):
    fake.job_final_status = final
    rc, out, err = submit(ROOT / "jobs/penguins-mpi/job.yml", "--ensure-compute", "--stream")
    assert rc == expected_rc, err
    assert f"ended: {final}" in err


def test_ctrl_c_while_streaming_leaves_the_job_running(submit, fake, monkeypatch):
    fake.status_sequence = ("Queued",) + ("Running",) * 50
    # a second between polls (conftest makes them back to back): the 50 Running polls outlast the Ctrl-C
    from azure.ai.ml.operations._run_history_constants import RunHistoryConstants

    monkeypatch.setattr(RunHistoryConstants, "_WAIT_COMPLETION_POLLING_INTERVAL_MIN", 1)
    streaming, done = threading.Event(), threading.Event()

    def ctrl_c_once_streaming():  # while the job is followed, not at a fixed time after the start
        while not done.is_set() and not fake.find("GET", "/details"):
            time.sleep(0.05)
        if not done.is_set():
            streaming.set()
            os.kill(os.getpid(), signal.SIGINT)

    # A shell starts background commands with SIGINT ignored (make test &): Python then never raises
    # KeyboardInterrupt, and the test followed 50 Running polls until its timeout. Ctrl-C as a terminal has it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    thread = threading.Thread(target=ctrl_c_once_streaming, daemon=True)
    thread.start()
    try:
        rc, out, err = submit(ROOT / "jobs/penguins-mpi/job.yml", "--ensure-compute", "--stream")
    finally:
        done.set()
        signal.signal(signal.SIGINT, previous)
    assert streaming.is_set(), "the job was never followed"
    name = list(fake.jobs)[-1]
    assert rc == 130
    assert f"az ml job cancel -n {name}" in err and "keeps running" in err
    assert not fake.find("POST", "/cancel")


def test_dry_run_sends_nothing(submit, fake, capsys):
    rc, out, err = submit(ROOT / "jobs/penguins-mpi/job.yml", "--dry-run")
    assert rc == 0, err
    body = json.loads(out)["properties"]
    assert body["distribution"]["processCountPerInstance"] == 2 and body["resources"]["instanceCount"] == 2
    assert body["computeId"] == (f"/subscriptions/{SUB}/resourceGroups/rg/providers/"
                                 "Microsoft.MachineLearningServices/workspaces/ws/computes/cpu-cluster")
    assert body["environmentId"].endswith("/environments/jobgen-pytorch-gpu/versions/1")
    assert "--data ${{inputs.data}}" in body["command"] and body["inputs"]["task"]["value"] == "penguins"
    assert fake.requests == [] and fake.blob_requests == []


def test_download_an_output(cli, submit, fake, tmp_path, monkeypatch):
    fake.status_sequence = ()  # the job is done at once
    rc, _, err = submit(ROOT / "jobs/penguins-mpi/job.yml", "--ensure-compute")
    assert rc == 0, err
    name = list(fake.jobs)[-1]
    fake.set_job_output(name, "model_dir", {"model.json": b'{"task": "penguins"}', "model.pt": b"weights"})
    rc, out, err = cli("download", name, "--output", "model_dir", "-o", tmp_path, *WS)
    assert rc == 0, err
    found = {p.name for p in (tmp_path / name).rglob("*") if p.is_file()}
    assert {"model.json", "model.pt"} <= found


@pytest.mark.parametrize("rel", ["jobs/penguins-pipeline/environment.yml", "jobs/penguins-pipeline/data.yml",
                                 "jobs/penguins-pipeline/compute.yml", "components/train.yml"])
def test_other_resources(submit, fake, rel):
    rc, out, err = submit(ROOT / rel)
    assert rc == 0, err
    assert out.startswith("created or updated")


# ------------------------------------------------------------------ errors a user meets

def _one_line(rc, err, *texts):
    assert rc == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    for text in texts:
        assert text in lines[0], lines[0]
    assert "Traceback" not in err and "sig=" not in err


@pytest.mark.parametrize("knob,texts", [
    ({"fail_auth": 401}, ["rejected the credentials (401)", "az login"]),
    ({"fail_auth": 403}, ["no permission (403)", "AzureML Data Scientist"]),
    ({"missing_workspace": True}, ["workspace 'ws' not found in resource group 'rg'"]),
])
def test_auth_and_workspace_errors(submit, fake, knob, texts):
    for key, value in knob.items():
        setattr(fake, key, value)
    rc, out, err = submit(ROOT / "jobs/penguins-mpi/job.yml")
    _one_line(rc, err, *texts)
    assert not fake.jobs


def test_compute_not_found_says_how_to_create_it(submit, fake):
    rc, out, err = submit(ROOT / "jobs/penguins-mpi/job.yml")
    _one_line(rc, err, "compute not found", "--ensure-compute")


def test_quota_exceeded(submit, fake):
    fake.quota_exceeded = True
    rc, out, err = submit(ROOT / "jobs/penguins-mpi/job.yml", "--ensure-compute")
    lines = [l for l in err.strip().splitlines() if l.startswith("error:")]
    assert rc == 1 and len(lines) == 1 and "quota exceeded" in lines[0] and "request more quota" in lines[0]


def test_missing_data_asset_says_how_to_create_it(submit, fake):
    fake.data_assets.clear()
    fake.add_compute("cpu-cluster", "Standard_D4s_v3")
    rc, out, err = submit(ROOT / "jobs/penguins-mpi/job.yml")
    _one_line(rc, err, "data asset", "generator.py submit", "data.yml")


def test_network_failure_after_retries(cli, monkeypatch):
    from jobgen import cloud

    closed = fake_azure.free_port() if hasattr(fake_azure, "free_port") else 9
    monkeypatch.setattr(cloud, "make_client", lambda ws, credential=None, **kw: fake_azure.MLClientFor(closed)
                        if hasattr(fake_azure, "MLClientFor") else _client_to_closed_port(closed))
    rc, out, err = cli("submit", str(ROOT / "jobs/penguins-mpi/job.yml"), *WS)
    _one_line(rc, err, "cannot reach Azure after retries")


def _client_to_closed_port(port):
    from azure.ai.ml import MLClient

    return MLClient(fake_azure.StaticCredential(), SUB, "rg", "ws",
                    transport=fake_azure.RewritingTransport(port), retry_total=1, retry_backoff_factor=0.01,
                    enable_telemetry=False)


def test_not_logged_in(cli, fake, monkeypatch, tmp_path):
    """The real DefaultAzureCredential chain, with nothing to find (managed identity excluded:
    its probe would call a link-local address)."""
    from azure.identity import DefaultAzureCredential

    from jobgen import cloud

    monkeypatch.setenv("HOME", str(tmp_path))  # no Azure CLI / developer CLI token cache here
    monkeypatch.setenv("PATH", "/nonexistent")
    credential = DefaultAzureCredential(exclude_managed_identity_credential=True)
    monkeypatch.setattr(cloud, "make_client", lambda ws, credential_=None, **kw: fake_azure.ml_client(
        fake, credential=credential) if False else _with_credential(fake, credential))
    rc, out, err = cli("submit", str(ROOT / "jobs/penguins-mpi/job.yml"), *WS)
    _one_line(rc, err, "not logged in to Azure", "az login")
    assert not fake.jobs


def _with_credential(fake, credential):
    from azure.ai.ml import MLClient

    return MLClient(credential, SUB, "rg", "ws", transport=fake_azure.RewritingTransport(fake.port,
                    blob_port=fake.blob_port), enable_telemetry=False, show_progress=False)


def test_workspace_from_config_json_found_upward(cli, fake, monkeypatch, tmp_path):
    from jobgen import cloud

    (tmp_path / "config.json").write_text(json.dumps({"subscription_id": SUB, "resource_group": "rg",
                                                      "workspace_name": "ws"}))
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    seen = {}

    def make(ws, credential=None, **kw):
        seen["ws"] = ws
        return fake_azure.ml_client(fake)

    monkeypatch.setattr(cloud, "make_client", make)
    rc, out, err = cli("submit", str(ROOT / "jobs/penguins-mpi/job.yml"), "--ensure-compute")
    assert rc == 0, err
    assert (seen["ws"].subscription_id, seen["ws"].resource_group, seen["ws"].name) == (SUB, "rg", "ws")


def test_no_workspace_anywhere(cli, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    rc, out, err = cli("submit", str(ROOT / "jobs/penguins-mpi/job.yml"))
    _one_line(rc, err, "no Azure ML workspace given", "config.json")


# ------------------------------------------------------------------ the real emulator

@pytest.mark.skipif(azurite_command() is None, reason="Azurite (npm package) is not installed: make installs it "
                    "into .venv/node when npm is available")
def test_code_snapshot_lands_in_azurite(monkeypatch, cli):
    from jobgen import cloud

    with Azurite() as azurite, fake_azure.FakeAzure(subscription=SUB, azurite=azurite) as fake:
        fake.add_data_asset("penguins", "3", data_type="uri_file")
        monkeypatch.setattr(cloud, "make_client", lambda ws, credential=None, **kw: fake_azure.ml_client(fake))
        rc, out, err = cli("submit", str(ROOT / "jobs/penguins-mpi/job.yml"), "--ensure-compute", *WS)
        assert rc == 0, err
        assert fake.snapshot_files() == trainer_files()
        container = fake.pending_uploads[-1]["container"]
        names = [b for b in azurite.list_blobs(container)]
        assert any(n.endswith("train.py") for n in names) and not any("__pycache__" in n for n in names)


# ------------------------------------------------------------------ a service principal with no network

SP_SECRET = "sp-secret-never-shown-0123456789"


@pytest.fixture
def service_principal(cli, fake, monkeypatch, tmp_path):
    """AZURE_CLIENT_ID/TENANT_ID/CLIENT_SECRET set, as CI sets them, and the real DefaultAzureCredential
    (managed identity excluded: its probe would call a link-local address; instance discovery off: it
    would ask login.microsoftonline.com; no retries, to keep the test short) behind the real MLClient.
    Returns a function that points the sign-in service at a host, submits, and gives (rc, out, err)."""
    from azure.identity import DefaultAzureCredential

    from jobgen import cloud

    monkeypatch.setenv("HOME", str(tmp_path))  # no Azure CLI / developer CLI token cache here
    monkeypatch.setenv("PATH", "/nonexistent")
    for key, value in (("AZURE_CLIENT_ID", "11111111-1111-1111-1111-111111111111"),
                       ("AZURE_TENANT_ID", "22222222-2222-2222-2222-222222222222"), ("AZURE_CLIENT_SECRET", SP_SECRET)):
        monkeypatch.setenv(key, value)

    def run(authority_host):
        monkeypatch.setenv("AZURE_AUTHORITY_HOST", authority_host)
        credential = DefaultAzureCredential(exclude_managed_identity_credential=True, disable_instance_discovery=True,
                                            retry_total=0)
        monkeypatch.setattr(cloud, "make_client", lambda ws, credential_=None, **kw: _with_credential(fake, credential))
        rc, out, err = cli("submit", str(ROOT / "jobs/penguins-mpi/job.yml"), *WS)
        assert not fake.jobs and SP_SECRET not in out + err
        return rc, out, err

    return run


def test_service_principal_without_network_says_the_sign_in_service_is_unreachable(service_principal):
    closed = _closed_port()
    rc, out, err = service_principal(f"https://127.0.0.1:{closed}")  # connection refused
    _one_line(rc, err, "cannot reach Azure's sign-in service", f"127.0.0.1:{closed}", "connection refused",
              "network", "proxy", "DNS")
    assert "not logged in" not in err and "az login" not in err


def test_service_principal_whose_sign_in_name_does_not_resolve(service_principal, monkeypatch):
    """The name lookup fails in this process (socket.getaddrinfo answers only for loopback): no DNS
    query leaves the machine."""
    import socket

    real = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host in ("127.0.0.1", "localhost", "::1"):
            return real(host, *args, **kwargs)
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,login.invalid")  # straight to the (failing) lookup
    rc, out, err = service_principal("https://login.invalid")
    _one_line(rc, err, "cannot reach Azure's sign-in service", "login.invalid", "could not be resolved", "DNS")
    assert "not logged in" not in err


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DAC = ("DefaultAzureCredential failed to retrieve a token from the included credentials.\nAttempted credentials:\n"
       "\tEnvironmentCredential: Authentication failed: {}\nTo mitigate this issue, please refer to the "
       "troubleshooting guidelines here at https://aka.ms/azsdk/python/identity/defaultazurecredential/troubleshoot.")


@pytest.mark.parametrize("message,expected", [
    (DAC.format("HTTPSConnection(host='login.microsoftonline.com', port=443): Failed to resolve "
                "'login.microsoftonline.com' ([Errno -3] Temporary failure in name resolution)"),
     ["cannot reach Azure's sign-in service", "login.microsoftonline.com", "could not be resolved"]),
    (DAC.format("HTTPSConnectionPool(host='login.microsoftonline.com', port=443): Max retries exceeded with url: "
                "/t/oauth2/v2.0/token (Caused by NewConnectionError(...: [Errno 11001] getaddrinfo failed))"),
     ["cannot reach Azure's sign-in service", "login.microsoftonline.com", "could not be resolved"]),
    (DAC.format("<urllib3.connection.HTTPSConnection object>: Failed to establish a new connection: "
                "[Errno -2] Name or service not known"),
     ["cannot reach Azure's sign-in service", "could not be resolved"]),
    (DAC.format("HTTPSConnection(host='10.0.0.1', port=443): Failed to establish a new connection: "
                "[Errno 111] Connection refused"),
     ["cannot reach Azure's sign-in service", "10.0.0.1:443", "connection refused"]),
    ("DefaultAzureCredential failed to retrieve a token from the included credentials.\nAttempted credentials:\n"
     "\tEnvironmentCredential: EnvironmentCredential authentication unavailable. Environment variables are not "
     "fully configured.\n\tManagedIdentityCredential: ManagedIdentityCredential authentication unavailable, no "
     "response from the IMDS endpoint.\n\tAzureCliCredential: Azure CLI not found on path",
     ["not logged in to Azure", "az login"]),
])
def test_sign_in_failures_are_told_apart(message, expected):
    """Which line a credential's failure gets: a network or name-lookup failure on the way to the
    sign-in service is not a missing login, and a missing login is not a network failure."""
    from azure.core.exceptions import ClientAuthenticationError

    from jobgen import cloud

    error = cloud.explain(ClientAuthenticationError(message=message), None)
    line = error.line()
    assert len(line.splitlines()) == 1
    for text in expected:
        assert text in line, line
    assert ("not logged in" in line) == ("not logged in" in expected[0])


def test_serverless_pipeline_from_the_examples_creates_no_cluster(submit, fake):
    """`default_compute: azureml:serverless` (cli/jobs/basics/hello-pipeline-serverless.yml) is Azure's
    serverless compute, not a cluster named serverless for --ensure-compute to create."""
    job = ROOT / "tests/corpus/azureml-examples/cli/jobs/basics/hello-pipeline-serverless.yml"
    rc, out, err = submit(job, "--ensure-compute")
    assert rc == 0, err
    assert not fake.find("PUT", "/computes/") and "compute serverless" not in err
    assert fake.job_body()["properties"]["jobType"] == "Pipeline"


def test_a_file_named_by_an_editor_schema_comment_is_submittable(tmp_path):
    """Files written in VS Code often carry `# yaml-language-server: $schema=...` instead of a $schema key;
    lint reads it, and so must submit (a data asset without type: has no other sign of its kind)."""
    from jobgen import cloud
    from jobgen.errors import JobgenError

    asset = tmp_path / "data.yml"
    asset.write_text("name: penguins\nversion: '1'\npath: ./penguins.csv\n")
    with pytest.raises(JobgenError, match="not Azure ML YAML"):
        cloud.detect(asset)
    asset.write_text("# yaml-language-server: $schema=https://azuremlschemas.azureedge.net/latest/data.schema.json\n"
                     + asset.read_text())
    assert cloud.detect(asset)[0] == "data"


# ------------------------------------------------------------------ every rank's logs

RANK_LOGS = {
    "std_log_process_0.txt": "2026-12-02 10:00:01 rank 0 starting\n2026-12-02 10:00:05 rank 0 waiting in all_reduce\n",
    "std_log_process_1.txt": "2026-12-02 10:00:02 rank 1 starting\n",
    "std_log_process_2.txt": "2026-12-02 10:00:02 rank 2 starting\n",
    "std_log_process_3.txt": ("2026-12-02 10:00:03 rank 3 starting\nTraceback (most recent call last):\n"
                              '  File "train.py", line 9, in <module>\nRuntimeError: CUDA out of memory\n'),
}


def test_logs_of_a_workspace_job_show_every_rank_failing_one_first(cli, submit, fake, monkeypatch):
    fake.status_sequence = ()
    fake.job_final_status = "Failed"
    rc, _, err = submit(ROOT / "jobs/penguins-mpi/job.yml", "--ensure-compute")
    assert rc == 0, err
    name = list(fake.jobs)[-1]
    fake.set_job_logs(name, RANK_LOGS)
    monkeypatch.setattr("jobgen.cloud.make_client", lambda ws, credential=None, **kw: fake_azure.ml_client(fake))
    rc, out, err = cli("logs", name, *WS)
    assert rc == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("first failure: rank 3 (node 1), the earliest traceback") and "Failed" in lines[0]
    assert "  | RuntimeError: CUDA out of memory" in lines
    merged = lines[lines.index("--- every rank's log, in the order written ---") + 1:]
    assert [line.split(" rank ")[1].split()[0] for line in merged if " starting" in line] == ["0", "1", "2", "3"]
    assert merged[-1].endswith("rank 0 waiting in all_reduce")  # by the time each line starts with
    rc, out, _ = cli("logs", name, "--rank", "3", "--grep", "Error", *WS)
    assert rc == 0 and out.splitlines()[-1].endswith("RuntimeError: CUDA out of memory")


def test_logs_of_a_running_workspace_job_say_to_follow(cli, submit, fake, monkeypatch):
    fake.status_sequence = ("Running",) * 50
    rc, _, err = submit(ROOT / "jobs/penguins-mpi/job.yml", "--ensure-compute")
    assert rc == 0, err
    monkeypatch.setattr("jobgen.cloud.make_client", lambda ws, credential=None, **kw: fake_azure.ml_client(fake))
    rc, out, err = cli("logs", list(fake.jobs)[-1], *WS)
    assert rc == 1 and "is Running: Azure gives its logs once it has ended" in err and "--follow" in err
    assert len(err.strip().splitlines()) == 1


def test_logs_follow_streams_process_0_live_then_merges_every_rank(cli, submit, fake, monkeypatch):
    fake.status_sequence = ("Running",) * 4  # submit's read, ours, then jobs.stream's polls
    fake.job_final_status = "Failed"
    rc, _, err = submit(ROOT / "jobs/penguins-mpi/job.yml", "--ensure-compute")
    assert rc == 0, err
    name = list(fake.jobs)[-1]
    fake.set_job_logs(name, {"std_log.txt": "2026-12-02 10:00:01 rank 0 starting\n", **RANK_LOGS})
    monkeypatch.setattr("jobgen.cloud.make_client", lambda ws, credential=None, **kw: fake_azure.ml_client(fake))
    rc, out, err = cli("logs", name, "--follow", *WS)
    assert rc == 0, err
    assert f"{name}: Running; process 0's log live until it ends, then every rank's, merged" in err
    live, merged = out.split("first failure: rank 3 (node 1)", 1)
    assert "rank 0 starting" in live  # what jobs.stream printed while the job ran
    assert "  | RuntimeError: CUDA out of memory" in merged and "rank 2 starting" in merged
    assert "Traceback" not in err


# ------------------------------------------------------------------ recovery: submit --stream --retry

PREEMPTED = {"status": "Failed", "error": "Job preempted: the low priority node was taken back (NodePreempted)",
             "logs": {"std_log_process_0.txt": "[train] epoch 3/10 ...\n"}}
NCCL = {"status": "Failed", "error": "Execution failed. User process 'python' exited with status code 1.",
        "logs": {"std_log_process_0.txt": "[train] epoch 1/10\n",
                 "std_log_process_2.txt": ("[rank2]:[E ProcessGroupNCCL.cpp:616] Watchdog caught collective operation "
                                           "timeout: WorkNCCL(SeqNum=812, OpType=ALLREDUCE) ran for 600031 ms\n")}}
OOM = {"status": "Failed", "error": "Execution failed. User process 'python' exited with status code 1.",
       "logs": {"std_log_process_1.txt": ("Traceback (most recent call last):\n  File \"train.py\", line 9\n"
                                          "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\n")}}
USER = {"status": "Failed", "error": "Execution failed. User process 'python' exited with status code 1.",
        "logs": {"std_log_process_0.txt": ("Traceback (most recent call last):\n  File \"train.py\", line 3\n"
                                           "KeyError: 'learning_rate'\n")}}
CAPACITY = {"status": "Failed", "error": "ZonalAllocationFailed: allocation of 2 Standard_NC24ads_A100_v4 failed"}
QUOTA = {"status": "Failed", "error": "Not enough quota available for Standard_NC24ads_A100_v4 (QuotaExceeded)"}
DONE = {"status": "Completed"}


@pytest.mark.parametrize("outcomes,kinds,submitted,rc", [
    ([PREEMPTED, DONE], ["preempted"], 2, 0),
    ([NCCL, CAPACITY, DONE], ["comm-timeout", "capacity"], 3, 0),
    ([OOM], ["out-of-memory"], 1, 1),
    ([USER], ["user-error"], 1, 1),
    ([QUOTA], ["quota"], 1, 1),
    ([PREEMPTED, PREEMPTED, PREEMPTED], ["preempted", "preempted", "preempted"], 3, 1),  # --retry 2 used up
], ids=["preempted", "nccl-then-capacity", "oom", "user-error", "quota", "retries-used-up"])
def test_retry_resubmits_only_recoverable_failures_with_the_same_outputs(cli, submit, fake, monkeypatch, outcomes,
                                                                        kinds, submitted, rc):
    monkeypatch.setenv("AZUREML_RUN_POLLING_INTERVAL_MIN", "0")
    fake.status_sequence = ()
    fake.job_outcomes = [dict(o) for o in outcomes]
    rc_, out, err = submit(ROOT / "jobs/penguins-mpi/job.yml", "--ensure-compute", "--stream", "--retry", "2",
                           "--json")
    assert rc_ == rc, err
    result = json.loads(out[out.index("{"):])
    assert [a["kind"] for a in result["attempts"] if a.get("kind")] == kinds
    names = list(fake.jobs)
    assert len(names) == submitted and len(result["attempts"]) == submitted
    first = names[0]
    for later in names[1:]:  # every folder output of a resubmission is the first attempt's
        outputs = fake.job_body(later)["properties"]["outputs"]
        assert later == f"{first}-retry{names.index(later)}"
        for output in ("model_dir", "checkpoint_dir"):
            assert outputs[output]["uri"] == f"azureml://datastores/workspaceblobstore/paths/azureml/{first}/{output}/"
    assert "outputs" not in fake.job_body(first)["properties"] or all(
        not (o or {}).get("uri") for k, o in fake.job_body(first)["properties"]["outputs"].items() if k != "default")


def test_retry_lines_say_why_and_what_was_done(submit, fake, monkeypatch):
    monkeypatch.setenv("AZUREML_RUN_POLLING_INTERVAL_MIN", "0")
    fake.status_sequence = ()
    fake.add_compute("cpu-dedicated")
    fake.job_outcomes = [dict(PREEMPTED), dict(USER)]
    rc, out, err = submit(ROOT / "jobs/penguins-mpi/job.yml", "--ensure-compute", "--stream", "--retry", "3",
                          "--fallback-compute", "cpu-dedicated")
    assert rc == 1
    first = list(fake.jobs)[0]
    assert fake.job_body(f"{first}-retry1")["properties"]["computeId"].endswith("/computes/cpu-dedicated")
    assert not fake.job_body(first)["properties"]["computeId"].endswith("/computes/cpu-dedicated")
    assert f"job {first} failed: preempted (Job preempted: the low priority node was taken back (NodePreempted)); " \
           f"resubmitted; it resumes from the checkpoint in its outputs; attempt 2 as {first}-retry1, on " \
           "cpu-dedicated" in err, err
    assert f"job {first}-retry1 failed: user-error (KeyError: 'learning_rate'); not resubmitted: fix" in err
    assert f"job {first}-retry1 ended: Failed after 2 attempts" in err


def test_retry_needs_stream(cli):
    rc, out, err = cli("submit", str(ROOT / "jobs/penguins-mpi/job.yml"), "--retry", "2", *WS)
    assert rc == 1 and "--retry and --fallback-compute need --stream" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------ pre-flight, before any upload

A100 = "Standard_NC24ads_A100_v4"


def gpu_job(tmp_path: Path, nodes: int, per_node: int) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "train.py").write_text("print('hi')\n")
    path = tmp_path / "job.yml"
    path.write_text(json.dumps({
        "$schema": "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json", "type": "command",
        "code": "./src", "command": "python train.py", "compute": "azureml:gpu-a100",
        "environment": "azureml://registries/azureml/environments/acpt-pytorch-2.2-cuda12.1/labels/latest",
        "resources": {"instance_count": nodes}, "distribution": {"type": "pytorch", "process_count_per_instance": per_node}}))
    return path


@pytest.fixture
def a100(fake):
    fake.add_compute("gpu-a100", size=A100, max_nodes=2)
    fake.vm_sizes[A100] = ("standardNCADSA100v4Family", 24, 1)
    fake.usage_rows["standardNCADSA100v4Family"] = (0, 96, "Standard NCADSA100v4 Family vCPUs")
    return fake


@pytest.mark.parametrize("nodes,per_node,usage,expected", [
    (2, 1, (72, 96), "quota: the job needs 48 vCPUs of Standard_NC24ads_A100_v4 (cluster gpu-a100), but Standard "
                     "NCADSA100v4 Family vCPUs in"),
    (3, 1, (0, 96), "the job asks for 3 nodes but cluster gpu-a100 scales to 2"),
    (1, 2, (0, 96), "2 processes per node but Standard_NC24ads_A100_v4 (cluster gpu-a100) has 1 GPU(s)"),
], ids=["quota", "max-nodes", "gpus"])
def test_preflight_refuses_before_any_upload(submit, a100, tmp_path, nodes, per_node, usage, expected):
    a100.usage_rows["standardNCADSA100v4Family"] = (*usage, "Standard NCADSA100v4 Family vCPUs")
    rc, out, err = submit(gpu_job(tmp_path, nodes, per_node), "--no-lint")
    assert rc == 1 and expected in err and "nothing was uploaded" in err, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not a100.jobs and not a100.find("PUT", "/codes/")
    rc, out, err = submit(gpu_job(tmp_path, nodes, per_node), "--no-lint", "--no-preflight")
    assert rc == 0 and len(a100.jobs) == 1, err  # the service takes it (and queues it, or fails it later)


def test_preflight_warns_of_a_multi_node_gpu_job_without_infiniband(submit, a100, tmp_path):
    rc, out, err = submit(gpu_job(tmp_path, 2, 1), "--no-lint")
    assert rc == 0, err
    assert "warning: pre-flight: 2 nodes of Standard_NC24ads_A100_v4 have no InfiniBand" in err and len(a100.jobs) == 1


def _write(path: Path, doc: dict) -> Path:
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("doc, expected", [
    ({"type": "command", "compute": "azureml:gpu", "resources": {"instance_count": 2},
      "distribution": {"type": "pytorch", "process_count_per_instance": 4}},
     [("the job", "gpu", 2, 4, None, 1)]),
    ({"type": "command", "compute": "serverless", "resources": {"instance_type": A100}},
     [("the job", None, 1, 1, A100, 1)]),
    ({"type": "sweep", "compute": "gpu", "trial": {"command": "x", "distribution": {"type": "pytorch",
      "process_count_per_instance": 2}}, "resources": {"instance_count": 2},
      "limits": {"max_total_trials": 8, "max_concurrent_trials": 3}},
     [("each trial", "gpu", 2, 2, None, 3)]),
    ({"type": "sweep", "compute": "gpu", "trial": {"command": "x"}, "limits": {"max_total_trials": 4}},
     [("each trial", "gpu", 1, 1, None, 4)]),  # Azure runs all trials at once unless told otherwise
    ({"type": "pipeline", "settings": {"default_compute": "azureml:cpu"}, "jobs": {
        "prep": {"type": "command", "command": "echo"},
        "train": {"type": "command", "command": "x", "compute": "gpu", "resources": {"instance_count": 2},
                  "distribution": {"type": "pytorch", "process_count_per_instance": 2}},
        "spark_step": {"type": "spark", "compute": "gpu"},
        "nested": {"type": "pipeline", "component": {"type": "pipeline", "jobs": {
            "inner": {"command": "y", "resources": {"instance_count": 3}}}}}}},
     [("step prep", "cpu", 1, 1, None, 1), ("step train", "gpu", 2, 2, None, 1),
      ("step nested/inner", "cpu", 3, 1, None, 1)]),
])
def test_preflight_demands_of_each_kind(doc, expected):
    from jobgen import preflight

    got = [(d.label, d.compute, d.nodes, d.per_node, d.instance_type, d.at_once) for d in preflight.demands(doc)]
    assert got == expected


def test_preflight_reads_a_pipeline_steps_component_file(tmp_path):
    from jobgen import preflight

    (tmp_path / "train.yml").write_text(json.dumps({"type": "command", "command": "x", "distribution": {
        "type": "pytorch", "process_count_per_instance": 4}}))
    doc = {"type": "pipeline", "jobs": {"train": {"component": "file:./train.yml", "compute": "gpu",
                                                  "resources": {"instance_count": 2}}}}
    [demand] = preflight.demands(doc, tmp_path)
    assert (demand.nodes, demand.per_node) == (2, 4)


def gpu_pipeline(tmp_path: Path, nodes: int, per_node: int) -> Path:
    (tmp_path / "src").mkdir(exist_ok=True)
    (tmp_path / "src" / "train.py").write_text("print('hi')\n")
    env = "azureml://registries/azureml/environments/acpt-pytorch-2.2-cuda12.1/labels/latest"
    return _write(tmp_path / "pipeline.yml", {
        "$schema": "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json", "type": "pipeline",
        "settings": {"default_compute": "azureml:gpu-a100"},
        "jobs": {"train": {"type": "command", "code": "./src", "command": "python train.py", "environment": env,
                           "resources": {"instance_count": nodes},
                           "distribution": {"type": "pytorch", "process_count_per_instance": per_node}}}})


def test_preflight_checks_a_pipelines_steps(submit, a100, tmp_path):
    rc, out, err = submit(gpu_pipeline(tmp_path, 1, 2), "--no-lint")
    assert rc == 1 and "error: pre-flight: step train: 2 processes per node but Standard_NC24ads_A100_v4 " \
                      "(cluster gpu-a100) has 1 GPU(s)" in err and "process_count_per_instance: 1" in err, err
    assert not a100.jobs and not a100.find("PUT", "/codes/")
    rc, out, err = submit(gpu_pipeline(tmp_path, 3, 1), "--no-lint")
    assert rc == 1 and "step train asks for 3 nodes but cluster gpu-a100 scales to 2" in err, err
    rc, out, err = submit(gpu_pipeline(tmp_path, 1, 1), "--no-lint")
    assert rc == 0 and len(a100.jobs) == 1, err


def test_preflight_warns_when_a_sweeps_concurrent_trials_do_not_fit(submit, a100, tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text("print('hi')\n")
    a100.usage_rows["standardNCADSA100v4Family"] = (0, 72, "Standard NCADSA100v4 Family vCPUs")
    sweep = _write(tmp_path / "sweep.yml", {
        "$schema": "https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json", "type": "sweep",
        "compute": "azureml:gpu-a100", "sampling_algorithm": "random",
        "trial": {"code": "./src", "command": "python train.py --lr ${{search_space.lr}}",
                  "environment": "azureml://registries/azureml/environments/acpt-pytorch-2.2-cuda12.1/labels/latest"},
        "search_space": {"lr": {"type": "uniform", "min_value": 0.001, "max_value": 0.1}},
        "objective": {"goal": "maximize", "primary_metric": "val_accuracy"},
        "limits": {"max_total_trials": 8, "max_concurrent_trials": 4}})
    rc, out, err = submit(sweep, "--no-lint")
    assert rc == 0 and len(a100.jobs) == 1, err
    assert "warning: pre-flight: 4 trials at once need 4 nodes but cluster gpu-a100 scales to 2: 2 run at a " \
           "time (hint: limits.max_concurrent_trials=2" in err, err


# ------------------------------------------------------------------ serverless, tiers, identity

def test_serverless_job_asks_for_no_cluster_and_carries_its_tier_and_identity(submit, fake):
    fake.add_data_asset("chickens-turkeys", "1")
    rc, out, err = submit(ROOT / "jobs/chickens-turkeys-serverless/job.yml", "--ensure-compute")
    assert rc == 0, err
    body = fake.job_body()["properties"]
    assert body.get("computeId") in (None, "serverless")
    assert body["resources"]["instanceCount"] == 2
    assert body["resources"]["instanceType"] == "Standard_NC24ads_A100_v4"
    assert body["resources"]["shmSize"] == "64g" and body["resources"]["dockerArgs"] == "--ulimit memlock=-1"
    assert body["queueSettings"]["jobTier"] == "Spot"
    assert body["identity"] == {"identityType": "UserIdentity"}
    assert not fake.find("PUT", "/computes/") and not fake.find("GET", "/computes/")  # no cluster to ensure


def test_a_spot_serverless_job_is_checked_against_low_priority_quota(submit, fake):
    """Spot jobs draw on the region's low-priority cores; the job needs 2 x 24 of them."""
    from jobgen import preflight

    import yaml

    [demand] = preflight.demands(yaml.safe_load((ROOT / "jobs/chickens-turkeys-serverless/job.yml").read_text()))
    assert demand.compute is None and demand.spot and demand.instance_type == "Standard_NC24ads_A100_v4"
    fake.add_data_asset("chickens-turkeys", "1")
    fake.vm_sizes[A100] = ("standardNCADSA100v4Family", 24, 1)
    fake.usage_rows["standardNCADSA100v4Family"] = (0, 96, "Standard NCADSA100v4 Family vCPUs")  # dedicated: room
    fake.usage_rows["lowPriorityCores"] = (0, 24, "Total Regional Low-priority vCPUs")
    rc, out, err = submit(ROOT / "jobs/chickens-turkeys-serverless/job.yml")
    assert rc == 1 and not fake.find("PUT", "/jobs/"), err
    assert "the job needs 48 vCPUs of Standard_NC24ads_A100_v4 (serverless), but Total Regional Low-priority " \
           "vCPUs in" in err and "has 24 of 24 free" in err and "nothing was uploaded" in err, err


def test_a_preempted_spot_job_is_resubmitted_in_the_fallback_tier(submit, fake, monkeypatch):
    monkeypatch.setenv("AZUREML_RUN_POLLING_INTERVAL_MIN", "0")
    fake.status_sequence = ()
    fake.add_data_asset("chickens-turkeys", "1")
    fake.vm_sizes[A100] = ("standardNCADSA100v4Family", 24, 1)
    fake.job_outcomes = [dict(PREEMPTED), {"status": "Completed"}]
    job = ROOT / "jobs/chickens-turkeys-serverless/job.yml"
    rc, out, err = submit(job, "--stream", "--retry", "2", "--fallback-tier", "standard")
    assert rc == 0, err
    first = list(fake.jobs)[0]
    assert fake.job_body(first)["properties"]["queueSettings"]["jobTier"] == "Spot"
    again = fake.job_body(f"{first}-retry1")["properties"]
    assert again["queueSettings"]["jobTier"] == "Standard" and again["resources"]["instanceType"] == A100
    assert f"attempt 2 as {first}-retry1, in the standard tier, with the outputs of {first}" in err, err

    rc, out, err = submit(ROOT / "jobs/penguins-mpi/job.yml", "--stream", "--retry", "2", "--fallback-tier", "standard")
    assert rc == 1 and "runs on compute cpu-cluster, whose VMs are its own tier" in err.strip().splitlines()[-1]
    assert len(err.strip().splitlines()) == 1


def test_an_environment_built_from_a_docker_context_uploads_the_context(submit, fake):
    rc, out, err = submit(ROOT / "jobs/chickens-turkeys-docker/environment.yml")
    assert rc == 0, err
    put = fake.find("PUT", "/environments/jobgen-pytorch-gpu-docker/versions/1")
    assert len(put) == 1
    props = put[0].body["properties"]
    assert props["build"]["dockerfilePath"] == "Dockerfile" and props["build"]["contextUri"]
    assert "image" not in props or not props["image"]
    # the context folder went to the workspace's blob store (its datastore), where Azure builds from it
    uploaded = sorted(name.rsplit("/docker/", 1)[1] for _, name in fake.blobs if "/docker/" in name)
    assert uploaded == ["Dockerfile", "requirements.txt"]
    assert props["build"]["contextUri"].rstrip("/").endswith("/docker")


# ------------------------------------------------------------------ interactive services

def test_services_are_submitted_and_listed_for_every_node(submit, cli, fake, tmp_path, monkeypatch):
    from jobgen import cloud

    key = ROOT / "tests/fixtures/keys/jobgen_test.pub"
    out = tmp_path / "rendered"
    rc, _, err = cli("render", "-f", ROOT / "jobs/penguins-mpi/values.yaml", "--set", "services.jupyter_lab=true",
                     "--set", "services.vs_code=true", "--set", f"services.ssh_public_key_file={key}", "-o", out)
    assert rc == 0, err
    rc, stdout, err = submit(out / "job.yml", "--ensure-compute")
    assert rc == 0, err
    services = fake.job_body()["properties"]["services"]
    assert services["jupyter_lab"]["jobServiceType"] == "JupyterLab" and services["vs_code"]["jobServiceType"] == "VSCode"
    assert services["ssh"]["jobServiceType"] == "SSH"
    assert services["ssh"]["properties"]["sshPublicKeys"] == key.read_text().strip()  # the public key, as written
    assert "PRIVATE" not in json.dumps(services)

    monkeypatch.setattr(cloud, "make_client", lambda ws, credential=None, **kw: fake_azure.ml_client(fake))
    name = list(fake.jobs)[-1]
    rc, stdout, err = cli("services", name, *WS)
    assert rc == 0, err
    lines = stdout.splitlines()
    assert lines[0].startswith(f"job {name} (") and "2 node(s) with services" in lines[0]
    for node in (0, 1):  # nodes: all (the default): every node has each service, with its own endpoint
        mine = [line for line in lines[1:] if line.strip().startswith(f"node {node} ")]
        assert [line.split()[2] for line in mine] == ["jupyter_lab", "ssh", "vs_code"], stdout
        assert all(f"-{node}." in line for line in mine), stdout


def test_services_of_a_job_without_any_is_one_line(submit, cli, fake, monkeypatch):
    from jobgen import cloud

    rc, _, err = submit(ROOT / "jobs/penguins-mpi/job.yml", "--ensure-compute")
    assert rc == 0, err
    monkeypatch.setattr(cloud, "make_client", lambda ws, credential=None, **kw: fake_azure.ml_client(fake))
    rc, stdout, err = cli("services", list(fake.jobs)[-1], *WS)
    assert rc == 1 and "lists no interactive services" in err and len(err.strip().splitlines()) == 1, err


def test_services_of_a_pipeline_are_listed_step_by_step(submit, cli, fake, tmp_path, monkeypatch):
    """A pipeline's services live on its train step's job: `services PIPELINE_JOB` lists its steps'
    jobs (Azure's children of the pipeline) and each one's services on each of its nodes."""
    from jobgen import cloud

    out = tmp_path / "rendered"
    rc, _, err = cli("render", "-f", ROOT / "jobs/penguins-pipeline/values.yaml", "--nodes", "2", "--set",
                     "services.jupyter_lab=true", "-o", out)
    assert rc == 0, err
    rc, _, err = submit(out / "pipeline.yml", "--ensure-compute")
    assert rc == 0, err
    monkeypatch.setattr(cloud, "make_client", lambda ws, credential=None, **kw: fake_azure.ml_client(fake))
    name = list(fake.jobs)[-1]
    rc, stdout, err = cli("services", name, *WS)
    assert rc == 0, err
    lines = stdout.splitlines()
    assert lines[0].startswith(f"pipeline job {name} (") and "1 of 3 step(s) with services" in lines[0]
    assert lines[1].startswith(f"  step train (job {name}_train, ")
    assert [line.split()[:3] for line in lines[2:]] == [["node", "0", "jupyter_lab"], ["node", "1", "jupyter_lab"]]


# ------------------------------------------------------------------ schedules

def test_a_schedule_is_created_updated_and_disabled(submit, fake):
    schedule = ROOT / "jobs/penguins-retrain/schedule.yml"
    rc, out, err = submit(schedule)
    assert rc == 0, err
    body = fake.schedules["penguins-weekly-retrain"]["body"]["properties"]
    assert body["trigger"]["triggerType"] == "Cron" and body["trigger"]["expression"] == "0 3 * * 1"
    assert body["trigger"]["timeZone"] == "W. Europe Standard Time"
    assert body["action"]["actionType"] == "CreateJob"
    job = body["action"]["jobDefinition"]
    assert job["jobType"] == "Pipeline" and sorted(job["jobs"]) == ["export_onnx", "register", "train"]
    assert body.get("isEnabled", True) is True
    assert "schedule penguins-weekly-retrain: enabled, cron '0 3 * * 1' (W. Europe Standard Time)" in err

    rc, out, err = submit(schedule, "--set", "trigger.expression=0 4 * * 1")  # updated in place
    assert rc == 0, err
    assert len(fake.schedules["penguins-weekly-retrain"]["puts"]) == 2
    assert fake.schedules["penguins-weekly-retrain"]["body"]["properties"]["trigger"]["expression"] == "0 4 * * 1"

    rc, out, err = submit(schedule, "--disable")
    assert rc == 0, err
    assert fake.schedules["penguins-weekly-retrain"]["body"]["properties"]["isEnabled"] is False
    assert "schedule penguins-weekly-retrain: disabled" in err
    assert not fake.jobs  # a schedule submits its job on its timer, never now

    rc, out, err = submit(ROOT / "jobs/penguins-mpi/job.yml", "--disable")
    assert rc == 1 and "--disable stops a schedule; this is a command job" in err and len(err.strip().splitlines()) == 1


def test_fallback_tier_is_for_command_jobs_and_a_spot_pipeline_step_uses_low_priority_quota(submit, cli, fake,
                                                                                            tmp_path):
    from jobgen import preflight

    out = tmp_path / "rendered"
    rc, _, err = cli("render", "-f", ROOT / "jobs/penguins-pipeline/values.yaml", "--serverless", "--vm-size",
                     "Standard_D4s_v3", "--tier", "spot", "-o", out)
    assert rc == 0, err
    import yaml

    train = [d for d in preflight.demands(yaml.safe_load((out / "pipeline.yml").read_text()), out)
             if d.label == "step train"]
    assert train and train[0].spot and train[0].compute is None
    rc, _, err = submit(out / "pipeline.yml", "--stream", "--retry", "1", "--fallback-tier", "standard")
    assert rc == 1 and "--fallback-tier resubmits a command job in another tier; this is a pipeline job" in err
    assert not fake.jobs
