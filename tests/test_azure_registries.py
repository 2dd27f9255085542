"""Registries with the real azure-ai-ml code: environments and components published into an Azure ML
registry (MLClient(registry_name=...): registry discovery, the registry's data-plane host, the code
upload), a workspace model promoted into one (models.share), and a deployment that serves a registry's
model, against the fake Azure on 127.0.0.1. Nothing reaches anything but loopback."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import fake_azure

ROOT = Path(__file__).resolve().parents[1]
REG = "contoso-ml"
ENV_YML = ROOT / "jobs/penguins-pipeline/environment.yml"
TRAIN_YML = ROOT / "components/train.yml"
ENV_REF = f"azureml://registries/{REG}/environments/jobgen-pytorch-gpu/versions/1"
REGISTRY_PATH = f"/resourceGroups/rg-registries/providers/Microsoft.MachineLearningServices/registries/{REG}"


pytestmark = pytest.mark.usefixtures("azure_offline")


# fake and submit: conftest's (the fake Azure; submit against it)


def _one_line(rc, err, *texts):
    assert rc == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err and "sig=" not in err
    for text in texts:
        assert text in lines[0], lines[0]
    return lines[0]


def trainer_files() -> list[str]:
    base = ROOT / "src" / "trainer"
    skip = ("__pycache__", ".pyc", "mlflow.db")
    return sorted(p.relative_to(base).as_posix() for p in base.rglob("*")
                  if p.is_file() and not any(s in p.as_posix() for s in skip))


# ------------------------------------------------------------------ publishing

def test_an_environment_is_published_to_the_registry_not_the_workspace(submit, fake):
    fake.add_registry(REG)
    rc, out, err = submit(ENV_YML, "--registry", REG)
    assert rc == 0, err
    assert out == f"created or updated environment jobgen-pytorch-gpu version 1 in registry {REG}: {ENV_REF}\n"
    # registry discovery first, then the registry's own data-plane host, in its resource group
    assert fake.requests[0].path == f"/registrymanagement/v1.0/registries/{REG}/discovery"
    put = fake.find("PUT", f"{REGISTRY_PATH}/environments/jobgen-pytorch-gpu/versions/1")
    assert len(put) == 1 and put[0].host == "cert-eastus.experiments.azureml.net"
    assert put[0].path.startswith("/mferp/managementfrontend/subscriptions/")
    props = fake.registry_body(REG, "environments", "jobgen-pytorch-gpu", "1")["properties"]
    assert props["image"].startswith("mcr.microsoft.com/azureml/") and "torch" in props["condaFile"]
    assert "1" in fake.registries[REG]["assets"]["environments"]["jobgen-pytorch-gpu"]
    assert not fake.environments and not fake.find(contains="/workspaces/")
    assert not fake.unhandled


def test_a_component_is_published_with_its_code_and_the_registrys_environment(submit, fake):
    fake.add_registry(REG)
    assert submit(ENV_YML, "--registry", REG)[0] == 0
    rc, out, err = submit(TRAIN_YML, "--registry", REG)
    assert rc == 0, err
    assert out.endswith(f"in registry {REG}: azureml://registries/{REG}/components/jobgen_train/versions/1\n")
    body = fake.registry_body(REG, "components", "jobgen_train", "1")["properties"]["componentSpec"]
    # the workspace reference azureml:jobgen-pytorch-gpu:1 is sent as the registry's
    assert body["environment"] == ENV_REF
    # the code folder went where the registry said (tempdatarefs), as a code version of the registry
    assert fake.find("PUT", f"{REGISTRY_PATH}/tempdatarefs/")
    code_name, code_version = body["code"].split(f"azureml://registries/{REG}/codes/")[1].split("/versions/")
    assert code_version in fake.registries[REG]["assets"]["codes"][code_name]
    assert fake.pending_uploads[-1]["name"] == code_name and fake.snapshot_files() == trainer_files()
    assert not fake.components and not fake.codes and not fake.unhandled


def test_a_component_before_its_environment_is_one_line_and_uploads_nothing(submit, fake):
    fake.add_registry(REG)
    rc, out, err = submit(TRAIN_YML, "--registry", REG)
    _one_line(rc, err, f"environment jobgen-pytorch-gpu version 1 is not in registry {REG}",
              f"--registry {REG}", "publish it first")
    assert not fake.pending_uploads and not fake.find("PUT")


def test_an_unknown_registry_is_the_404_azure_answers_in_one_line(submit, fake):
    rc, out, err = submit(ENV_YML, "--registry", "nope-registry")
    _one_line(rc, err, "registry 'nope-registry' not found", "az ml registry list")
    assert [r.path for r in fake.requests] == ["/registrymanagement/v1.0/registries/nope-registry/discovery"]


@pytest.mark.parametrize("rel,kind", [("jobs/penguins-mpi/job.yml", "command job"),
                                      ("jobs/penguins-endpoint/endpoint.yml", "online endpoint"),
                                      ("jobs/penguins-endpoint/deployment.yml", "online deployment"),
                                      ("jobs/penguins-pipeline/compute.yml", "compute")])
def test_a_registry_takes_no_job_endpoint_or_compute(submit, fake, rel, kind):
    fake.add_registry(REG)
    rc, out, err = submit(ROOT / rel, "--registry", REG)
    _one_line(rc, err, f"submit --registry publishes environments and components, not a {kind}")
    assert fake.requests == []


def test_a_bad_registry_name_is_one_line(submit, fake):
    rc, out, err = submit(ENV_YML, "--registry", "my registry!")
    _one_line(rc, err, "'my registry!' is not a registry name", "--registry")
    assert fake.requests == []


# ------------------------------------------------------------------ promotion

def test_promote_copies_the_workspace_model_into_the_registry(submit, fake):
    fake.add_registry(REG)
    fake.add_model("penguins-mlp", "3")
    rc, out, err = submit("--promote", "penguins-mlp:3", "--registry", REG)
    assert rc == 0, err
    assert out == f"azureml://registries/{REG}/models/penguins-mlp/versions/3\n"
    assert "found in workspace ws" in err and f"promoted to registry {REG}" in err
    (body,) = fake.registries[REG]["imports"]
    assert body["properties"] == {
        "referenceType": "Id", "destinationName": "penguins-mlp", "destinationVersion": "3",
        "sourceAssetId": f"azureml://locations/eastus/workspaces/{fake.workspace_id}/models/penguins-mlp/versions/3"}
    copied = fake.registries[REG]["assets"]["models"]["penguins-mlp"]["3"]["properties"]
    assert copied["modelUri"] == fake.models["penguins-mlp"]["3"]["properties"]["modelUri"]
    assert fake.find("POST", f"{REGISTRY_PATH}/import") and not fake.unhandled


def test_promote_the_same_version_twice_says_it_is_there(submit, fake):
    fake.add_registry(REG)
    fake.add_model("penguins-mlp", "3")
    assert submit("--promote", "penguins-mlp:3", "--registry", REG)[0] == 0
    rc, out, err = submit("--promote", "penguins-mlp:3", "--registry", REG)
    _one_line(rc, err, f"already in registry {REG}", "register a new version")
    assert len(fake.registries[REG]["imports"]) == 1


def test_promote_a_model_the_workspace_lacks(submit, fake):
    fake.add_registry(REG)
    rc, out, err = submit("--promote", "penguins-mlp:9", "--registry", REG)
    _one_line(rc, err, "model penguins-mlp version 9 is not registered in workspace ws", "az ml model list")
    assert not fake.registries[REG]["imports"]


def test_promote_into_an_unknown_registry(submit, fake):
    fake.add_model("penguins-mlp", "3")
    rc, out, err = submit("--promote", "penguins-mlp:3", "--registry", "nope-registry")
    _one_line(rc, err, "registry 'nope-registry' not found")


@pytest.mark.parametrize("text", ["penguins-mlp", "penguins-mlp:", ":3", "penguins mlp:3", "penguins-mlp@latest"])
def test_promote_with_bad_model_version_text_sends_nothing(submit, fake, text):
    rc, out, err = submit("--promote", text, "--registry", REG)
    _one_line(rc, err, "is not MODEL:VERSION", "--promote")
    assert fake.requests == []


@pytest.mark.parametrize("args,text", [(["--promote", "penguins-mlp:3"], "add --registry NAME"),
                                       (["--promote", "penguins-mlp:3", "--registry", REG, str(ENV_YML)],
                                        "takes no file"),
                                       ([], "nothing to submit")])
def test_promote_and_file_go_one_way(submit, fake, args, text):
    rc, out, err = submit(*args)
    _one_line(rc, err, text)
    assert fake.requests == []


# ------------------------------------------------------------------ a deployment from a registry

DEPLOY_DIR = ROOT / "jobs/penguins-endpoint-registry"


def test_a_deployment_serves_the_promoted_model_by_its_registry_reference(submit, fake):
    fake.add_registry(REG)
    fake.add_model("penguins-mlp", "1")
    assert submit("--promote", "penguins-mlp:1", "--registry", REG)[0] == 0
    assert submit(DEPLOY_DIR / "endpoint.yml")[0] == 0
    rc, out, err = submit(DEPLOY_DIR / "deployment.yml", "--traffic", "100")
    assert rc == 0, err
    props = fake.deployment_body("blue", endpoint="penguins-species-prod")["properties"]
    assert props["model"] == f"azureml://registries/{REG}/models/penguins-mlp/versions/1"
    assert not fake.unhandled


def test_a_deployment_of_a_model_not_yet_promoted_says_to_promote_it(submit, fake):
    fake.add_registry(REG)
    assert submit(DEPLOY_DIR / "endpoint.yml")[0] == 0
    rc, out, err = submit(DEPLOY_DIR / "deployment.yml")
    _one_line(rc, err, f"is not in registry {REG}", f"--promote penguins-mlp:1 --registry {REG}")


def test_dry_runs_with_a_registry_send_nothing(submit, fake, capsys):
    rc, out, err = submit("--promote", "penguins-mlp:3", "--registry", REG, "--dry-run")
    assert rc == 0 and out.strip().endswith(f"azureml://registries/{REG}/models/penguins-mlp/versions/3"), err
    rc, out, err = submit(TRAIN_YML, "--registry", REG, "--dry-run")
    assert rc == 0 and f'"environment": "{ENV_REF}"' in out, err
    assert fake.requests == [] and fake.blob_requests == []


def test_the_sdk_reads_the_registry_resource_and_its_assets(fake):
    fake.add_registry(REG, location="westeurope", regions=["westeurope", "eastus"])
    registry = fake_azure.ml_client(fake, resource_group="rg-registries").registries.get(REG)
    assert registry.name == REG and registry.location == "westeurope"
    assert registry.discovery_url.endswith(f"/registries/{REG}/discovery")
    assert sorted(r.location for r in registry.replication_locations) == ["eastus", "westeurope"]
    client = fake_azure.registry_client(fake, REG)
    fake.add_model("penguins-mlp", "2")
    fake_azure.ml_client(fake).models.share(name="penguins-mlp", version="2", registry_name=REG,
                                             share_with_name="penguins-mlp", share_with_version="2")
    assert [m.version for m in client.models.list(name="penguins-mlp")] == ["2"]
    assert client.models.get("penguins-mlp", version="2").id == f"azureml://registries/{REG}/models/penguins-mlp/versions/2"
    # the registry's data-plane host is the discovered region's
    assert {r.host for r in fake.find(contains=f"/registries/{REG}/models")} == {"cert-westeurope.experiments.azureml.net"}


def test_json_lines_name_the_registry(submit, fake):
    import json

    fake.add_registry(REG)
    fake.add_model("penguins-mlp", "3")
    rc, out, err = submit(ENV_YML, "--registry", REG, "--json")
    assert rc == 0 and json.loads(out) == {"kind": "environment", "name": "jobgen-pytorch-gpu", "version": "1",
                                           "registry": REG}, err
    rc, out, err = submit("--promote", "penguins-mlp:3", "--registry", REG, "--json")
    assert rc == 0 and json.loads(out)["reference"] == f"azureml://registries/{REG}/models/penguins-mlp/versions/3"
    assert err == ""


def test_a_curated_environment_stays_the_azureml_registrys():
    """A component on a curated environment (azureml:AzureML-...) keeps it: curated environments live
    in the azureml registry, not in the team's."""
    from jobgen import cloud

    options = cloud.SubmitOptions(registry=REG)
    data = {"environment": "azureml:AzureML-sklearn-1.5:3"}
    assert cloud.registry_options(TRAIN_YML, "command_component", data, options).sets == []
    data = {"environment": "azureml:jobgen-pytorch-gpu:1"}
    assert cloud.registry_options(TRAIN_YML, "command_component", data, options).sets == [f"environment={ENV_REF}"]
