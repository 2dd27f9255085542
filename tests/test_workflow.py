"""The example GitOps workflow runs what the README promises: on pull requests the tests,
the drift check and lint; on main an OpenID Connect login (no secrets) and a streamed submit."""

from pathlib import Path

import yaml

WORKFLOW = Path(__file__).resolve().parents[1] / ".github" / "workflows" / "azureml-jobs.yml"


def _load():
    data = yaml.safe_load(WORKFLOW.read_text())
    triggers = data.get("on", data.get(True))  # YAML 1.1 reads a bare `on` as true
    return data, triggers


def _runs(job):
    return "\n".join(step.get("run", "") for step in job["steps"])


def test_pull_requests_test_check_drift_and_lint():
    data, triggers = _load()
    assert "pull_request" in triggers
    runs = _runs(data["jobs"]["check"])
    assert "make test" in runs
    assert "generator.py render --check" in runs
    assert "generator.py lint jobs" in runs


def test_main_submits_with_openid_connect_and_streams():
    data, triggers = _load()
    assert triggers["push"]["branches"] == ["main"]
    job = data["jobs"]["submit"]
    assert "refs/heads/main" in job["if"] and job["needs"] == "check"
    assert job["permissions"]["id-token"] == "write"
    login = next(step for step in job["steps"] if str(step.get("uses", "")).startswith("azure/login"))
    assert set(login["with"]) == {"client-id", "tenant-id", "subscription-id"}
    runs = _runs(job)
    assert "generator.py submit" in runs and "--stream" in runs and "--ensure-compute" in runs


def test_no_secrets_in_the_workflow():
    text = WORKFLOW.read_text()
    assert "secrets." not in text and "client-secret" not in text and "AZURE_CLIENT_SECRET" not in text
