"""Managed online endpoints and deployments with the real azure-ai-ml code (MLClient, its
operations, serialization, the code snapshot upload, model resolution, long-running operations)
against the fake ARM / Azure ML REST endpoints on 127.0.0.1. Nothing reaches anything but
loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import fake_azure

ROOT = Path(__file__).resolve().parents[1]
ENDPOINT_YML = ROOT / "jobs/penguins-endpoint/endpoint.yml"
DEPLOYMENT_YML = ROOT / "jobs/penguins-endpoint/deployment.yml"
ENDPOINT = "penguins-species"


pytestmark = pytest.mark.usefixtures("azure_offline")


# fake and submit: conftest's (the fake Azure; submit against it)


def trainer_files() -> list[str]:
    """What the code snapshot of src/trainer holds (its .amlignore keeps caches out)."""
    base = ROOT / "src" / "trainer"
    skip = ("__pycache__", ".pyc", "mlflow.db")
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*")
                  if p.is_file() and not any(s in p.as_posix() for s in skip))


def _one_error_line(rc, err) -> str:
    assert rc == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err and "sig=" not in err
    return lines[0]


# ------------------------------------------------------------------ endpoint

def test_endpoint_is_created_with_key_auth(submit, fake):
    rc, out, err = submit(ENDPOINT_YML)
    assert rc == 0, err
    assert "created or updated online endpoint penguins-species" in out
    puts = fake.find("PUT", f"/onlineEndpoints/{ENDPOINT}")
    assert len(puts) == 1
    body = fake.endpoint_body(ENDPOINT)
    assert body is puts[0].body or body == puts[0].body
    assert body["properties"]["authMode"] == "Key"
    assert body["properties"]["description"].startswith("Penguin species")
    # the long-running operation was followed to its end
    resource = fake.endpoints[ENDPOINT]["resource"]
    assert resource["properties"]["provisioningState"] == "Succeeded"
    assert fake.find("GET", "/mfeOperationsStatus/")
    assert not fake.unhandled


# ------------------------------------------------------------------ deployment

def test_deployment_with_traffic(submit, fake):
    fake.add_model("penguins-mlp", "1")
    fake.add_model("penguins-mlp", "2")
    rc, _, err = submit(ENDPOINT_YML)
    assert rc == 0, err

    rc, out, err = submit(DEPLOYMENT_YML, "--traffic", "100")
    assert rc == 0, err
    # one line on stdout: the SDK's poll dots are kept off it (progress goes to stderr)
    assert out == "created or updated online deployment blue of endpoint penguins-species\n"
    assert "traffic: blue 100%" in err

    body = fake.deployment_body("blue", endpoint=ENDPOINT)
    props = body["properties"]
    assert props["endpointComputeType"] == "Managed"
    assert props["instanceType"] == "Standard_DS2_v2"
    assert body["sku"]["capacity"] == 1  # instance_count travels as the sku's capacity
    # the code: the scoring script and the uploaded snapshot of src/trainer
    assert props["codeConfiguration"]["scoringScript"] == "score.py"
    code_id = props["codeConfiguration"]["codeId"]
    code_name, code_version = code_id.split("/codes/")[1].split("/versions/")
    assert code_version in fake.codes[code_name]
    assert fake.pending_uploads[-1]["name"] == code_name
    assert fake.snapshot_files() == trainer_files()
    # @latest resolved to the highest version of the model
    assert props["model"] == fake.models["penguins-mlp"]["2"]["id"]
    assert props["model"].endswith("/models/penguins-mlp/versions/2")
    # the inline environment became an anonymous environment version
    env_name, env_version = props["environmentId"].split("/environments/")[1].split("/versions/")
    env = fake.environments[env_name][env_version]["properties"]
    assert env["image"] == "mcr.microsoft.com/azureml/minimal-ubuntu22.04-py39-cpu-inference:latest"
    assert "onnxruntime" in env["condaFile"] and env["isAnonymous"] is True
    # settings and probes
    assert props["requestSettings"]["requestTimeout"] == "PT5S"  # request_timeout_ms: 5000
    assert props["requestSettings"]["maxConcurrentRequestsPerInstance"] == 1
    assert props["livenessProbe"]["failureThreshold"] == 30
    assert props["readinessProbe"]["failureThreshold"] == 3
    assert props["environmentVariables"] == {"JOBGEN_ONNX_VARIANT": "auto"}
    assert fake.deployments[f"{ENDPOINT}/blue"]["resource"]["properties"]["provisioningState"] == "Succeeded"

    # --traffic 100: the endpoint was read and PUT again with all traffic on blue
    endpoint = fake.endpoints[ENDPOINT]
    assert len(endpoint["puts"]) == 2
    assert endpoint["body"]["properties"]["traffic"] == {"blue": 100}
    assert endpoint["resource"]["properties"]["traffic"] == {"blue": 100}
    assert endpoint["body"]["properties"]["authMode"] == "Key"
    assert not fake.unhandled


def test_deployment_with_the_model_missing(submit, fake):
    fake.add_online_endpoint(ENDPOINT)
    rc, out, err = submit(DEPLOYMENT_YML)
    line = _one_error_line(rc, err)
    assert "penguins-mlp" in line
    assert "model 'penguins-mlp' not found" in line and "register it first" in line
    assert not fake.find("PUT", "/deployments/") and not fake.deployments


def test_deployment_with_the_model_missing_says_model(submit, fake):
    fake.add_online_endpoint(ENDPOINT)
    rc, out, err = submit(DEPLOYMENT_YML)
    line = _one_error_line(rc, err)
    assert "model" in line and "penguins-mlp" in line
    assert "data asset" not in line and "data.yml" not in line


def test_deployment_before_its_endpoint(submit, fake):
    fake.add_model("penguins-mlp", "2")
    rc, out, err = submit(DEPLOYMENT_YML)
    line = _one_error_line(rc, err)
    assert "penguins-species" in line and "endpoint" in line
    assert "workspace 'ws' not found" not in line


# ------------------------------------------------------------------ the fake itself, through the SDK

def test_sdk_reads_endpoints_deployments_keys_and_logs(fake):
    fake.add_model("penguins-mlp", "2")
    fake.add_online_endpoint(ENDPOINT, traffic={})
    fake.add_online_deployment(ENDPOINT, "blue", instance_type="Standard_DS2_v2")
    client = fake_azure.ml_client(fake)
    endpoint = client.online_endpoints.get(ENDPOINT)
    assert endpoint.scoring_uri == f"https://{ENDPOINT}.eastus.inference.ml.azure.com/score"
    assert endpoint.provisioning_state == "Succeeded" and endpoint.traffic == {"blue": 0}
    keys = client.online_endpoints.get_keys(ENDPOINT)
    assert keys.primary_key and keys.secondary_key
    deployment = client.online_deployments.get("blue", ENDPOINT)
    assert deployment.instance_type == "Standard_DS2_v2" and deployment.provisioning_state == "Succeeded"
    assert [d.name for d in client.online_deployments.list(ENDPOINT)] == ["blue"]
    assert "Listening" in client.online_deployments.get_logs("blue", ENDPOINT, lines=5)
    with pytest.raises(Exception) as missing:
        client.online_endpoints.get("nope")
    assert getattr(missing.value, "status_code", None) == 404
    # traffic that does not add up is refused, as by the service
    endpoint.traffic = {"blue": 50}
    with pytest.raises(Exception) as refused:
        client.online_endpoints.begin_create_or_update(endpoint).result()
    assert getattr(refused.value, "status_code", None) == 400 and "0 or 100" in str(refused.value)
    client.online_endpoints.begin_delete(ENDPOINT).result()
    assert ENDPOINT not in fake.endpoints and not fake.deployments
    assert not fake.unhandled


def test_traffic_split_keeps_a_blue_green_rollout_at_100():
    from jobgen.cloud import split_traffic
    from jobgen.errors import JobgenError

    assert split_traffic({"blue": 100}, "green", 10) == {"green": 10, "blue": 90}
    assert split_traffic({"blue": 70, "green": 30}, "red", 20) == {"red": 20, "blue": 56, "green": 24}
    assert split_traffic({"blue": 100}, "blue", 100) == {"blue": 100}
    assert sum(split_traffic({"a": 33, "b": 33, "c": 34}, "d", 1).values()) == 100
    with pytest.raises(JobgenError, match="leaves 90% to no other deployment"):
        split_traffic({}, "blue", 10)


def test_green_deployment_at_10_percent_shifts_the_rest(submit, fake):
    fake.add_model("penguins-mlp", "2")
    assert submit(ENDPOINT_YML)[0] == 0
    assert submit(DEPLOYMENT_YML, "--traffic", "100")[0] == 0
    rc, out, err = submit(DEPLOYMENT_YML, "--traffic", "10", "--set", "name=green")
    assert rc == 0, err
    assert fake.endpoints[ENDPOINT]["resource"]["properties"]["traffic"] == {"green": 10, "blue": 90}


# ------------------------------------------------------------------ batch endpoints

BATCH = ROOT / "jobs/penguins-batch"


def test_batch_endpoint_deployment_and_default(submit, fake):
    fake.add_model("penguins-mlp", "1")
    fake.check_compute = True
    rc, out, err = submit(BATCH / "endpoint.yml")
    assert rc == 0, err
    assert out == "created or updated batch endpoint penguins-batch\n"
    assert fake.batch_endpoints["penguins-batch"]["body"]["properties"]["authMode"].lower() == "aadtoken"

    rc, out, err = submit(BATCH / "deployment.yml", "--ensure-compute", "--set-default")
    assert rc == 0, err
    assert out == "created or updated model batch deployment onnx of endpoint penguins-batch\n"
    assert "compute cpu-cluster: creating Standard_D4s_v3" in err  # from compute.yml beside it
    assert "default deployment of batch endpoint penguins-batch: onnx" in err
    props = fake.batch_deployments["penguins-batch/onnx"]["body"]["properties"]
    assert props["compute"].endswith("/computes/cpu-cluster")
    assert props["model"]["assetId"].endswith("/models/penguins-mlp/versions/1")  # @latest resolved
    assert props["codeConfiguration"]["scoringScript"] == "batch_score.py"
    assert fake.snapshot_files() == trainer_files()
    assert (props["miniBatchSize"], props["maxConcurrencyPerInstance"], props["errorThreshold"]) == (4, 2, -1)
    assert props["outputAction"].lower() == "appendrow" and props["outputFileName"] == "predictions.csv"
    assert props["retrySettings"] == {"maxRetries": 3, "timeout": "PT1M"}
    assert props["environmentVariables"] == {"JOBGEN_ONNX_VARIANT": "auto", "WORKER_COUNT": "2"}
    assert fake.batch_endpoints["penguins-batch"]["resource"]["properties"]["defaults"] == {"deploymentName": "onnx"}


def _batch_ready(submit, fake, default: bool = True):
    fake.add_model("penguins-mlp", "1")
    fake.add_compute("cpu-cluster", "Standard_D4s_v3")
    assert submit(BATCH / "endpoint.yml")[0] == 0
    assert submit(BATCH / "deployment.yml", *(["--set-default"] if default else []))[0] == 0


def test_invoke_uploads_a_local_folder_and_follows_the_job(submit, fake, tmp_path):
    _batch_ready(submit, fake)
    data = tmp_path / "new-penguins"
    data.mkdir()
    (data / "week1.csv").write_text("island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g\n"
                                    "Biscoe,48.7,14.1,210,4450\n")
    rc, out, err = submit(BATCH / "endpoint.yml", "--invoke", data, "--stream")
    assert rc == 0, err
    name = out.splitlines()[0]
    job = fake.batch_jobs[name]
    assert job["deployment"] == "onnx"  # the endpoint's default: no deployment header was sent
    uri = job["body"]["properties"]["inputData"]["UriFolder"]["uri"]
    assert uri.startswith("azureml://datastores/workspaceblobstore/paths/LocalUpload/") and uri.endswith("/new-penguins/")
    assert any(b.endswith("new-penguins/week1.csv") for b in fake.list_blobs(fake.blobstore_container))
    assert f"job {name} ended: Completed" in err and f"download {name} --output score" in err


def test_invoke_a_data_asset_with_a_named_deployment(submit, fake):
    _batch_ready(submit, fake, default=False)
    fake.add_data_asset("penguins-unlabeled", "3", path="azureml://datastores/workspaceblobstore/paths/p/")
    rc, out, err = submit(BATCH / "endpoint.yml", "--invoke", "azureml:penguins-unlabeled@latest",
                          "--deployment", "onnx")
    assert rc == 0, err
    job = fake.batch_jobs[out.splitlines()[0]]
    assert job["deployment"] == "onnx"
    assert job["body"]["properties"]["inputData"]["UriFolder"]["uri"].endswith("/data/penguins-unlabeled/versions/3")
    # azure-ai-ml keeps an invocation's headers in a dict of its own; none of them (the token) stays there
    from azure.ai.ml.constants._endpoint import EndpointInvokeFields

    assert EndpointInvokeFields.DEFAULT_HEADER == {"Content-Type": "application/json"}


@pytest.mark.parametrize("args, expected", [
    (["--invoke", "{tmp}/nothing"], "'{tmp}/nothing' does not exist"),
    (["--deployment", "onnx"], "--deployment names the deployment an invocation uses"),
    (["--invoke", "{tmp}"], "batch endpoint penguins-batch has no default deployment (hint: name one with "
                            "--deployment NAME, or submit the deployment with --set-default (its deployments: onnx))"),
    (["--invoke", "{tmp}", "--deployment", "blue"], "has no deployment blue (hint: its deployments: onnx)"),
])
def test_invoke_refusals_are_one_line(submit, fake, tmp_path, args, expected):
    _batch_ready(submit, fake, default=False)
    (tmp_path / "a.csv").write_text("x\n")
    rc, out, err = submit(BATCH / "endpoint.yml", *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert expected.replace("{tmp}", str(tmp_path)) in _one_error_line(rc, err)
    assert not fake.batch_jobs


def test_batch_flags_on_the_wrong_file_are_one_line(submit, fake, tmp_path):
    rc, out, err = submit(BATCH / "deployment.yml", "--invoke", tmp_path)
    assert "--invoke scores data with a batch endpoint; this is a model batch deployment" in _one_error_line(rc, err)
    rc, out, err = submit(ENDPOINT_YML, "--set-default")
    assert "--set-default makes a batch deployment its endpoint's default" in _one_error_line(rc, err)
    rc, out, err = submit(BATCH / "deployment.yml")  # before its endpoint
    line = _one_error_line(rc, err)
    assert "batch endpoint 'penguins-batch' not found" in line and "submit jobs/penguins-batch/endpoint.yml" in line
    assert not fake.batch_deployments
    (tmp_path / "a.csv").write_text("x\n")
    rc, out, err = submit(BATCH / "endpoint.yml", "--invoke", tmp_path)  # an endpoint that does not exist
    assert "batch endpoint 'penguins-batch' not found" in _one_error_line(rc, err) and not fake.batch_jobs
