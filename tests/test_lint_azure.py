"""azure-ai-ml as second opinion: its findings come out in our format with a line, and our
speed-up (one validation schema per class, its folder context swapped in) finds exactly
what a fresh schema finds."""

from pathlib import Path

import pytest

from jobgen.lint import Document, lint_paths
from jobgen.lint import azure as az
from jobgen.lint.checks import detect_kind
from jobgen.yamlio import load_located

FIX = Path(__file__).parent / "fixtures" / "lint"
GOLDEN = Path(__file__).parent / "golden"


def _job_documents():
    docs = []
    for path in sorted(list(FIX.rglob("*.yml")) + list(GOLDEN.rglob("job.yml"))):
        text = path.read_text()
        located = load_located(text, str(path))
        kind = detect_kind(located.data)
        if kind == "command_job":
            docs.append(Document(path.resolve(), text, located=located, kind=kind))
    return docs


def _same_with_reused_schemas(docs, monkeypatch) -> list:
    """azure-ai-ml's findings with a fresh schema per document, and the same with reused ones: twice,
    in opposite orders, so every document meets a schema last used for another folder."""
    monkeypatch.setattr(az, "REUSE_SCHEMAS", False)
    fresh = [[d.format() for d in az.second_opinion(doc)] for doc in docs]
    monkeypatch.setattr(az, "REUSE_SCHEMAS", True)
    az._SCHEMAS.clear()
    forward = [[d.format() for d in az.second_opinion(doc)] for doc in docs]
    backward = [[d.format() for d in az.second_opinion(doc)] for doc in reversed(docs)][::-1]
    assert forward == fresh and backward == fresh
    return fresh


def test_reused_validation_schema_finds_what_a_fresh_one_finds(monkeypatch):
    docs = _job_documents()
    assert len(docs) >= 10
    _same_with_reused_schemas(docs, monkeypatch)


def test_azure_findings_have_our_format_and_the_right_line(tmp_path):
    (tmp_path / "train.py").write_text("")
    job = tmp_path / "job.yml"
    job.write_text("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
                   "type: command\ncode: .\ncommand: python train.py\n"
                   "environment: azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest\n"
                   "compute: azureml:cpu\nidentity:\n  type: magic\n")
    found = [d for d in lint_paths([job]) if d.source == "azure-ai-ml"]
    assert found, "azure-ai-ml should reject an unknown identity type"
    assert found[0].line == 8 and found[0].format().startswith(f"{found[0].path}:8: error: azure-ai-ml: ")


def test_azure_rejects_what_we_do_not_model(tmp_path):
    env = tmp_path / "environment.yml"
    env.write_text("$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json\n"
                   "name: e\nversion: '1'\nimage: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04\n"
                   "os_type: plan9\n")
    found = lint_paths([env])
    assert any(d.source == "azure-ai-ml" and d.line == 5 for d in found), [d.format() for d in found]


@pytest.mark.parametrize("kind_file", ["compute.yml", "data.yml", "environment.yml"])
def test_rendered_resources_pass_azure(kind_file, cli, checkout):
    out = checkout / "rendered"
    rc, _, err = cli("render", "-o", out)
    assert rc == 0, err
    assert [d for d in lint_paths([out / kind_file]) if d.severity == "error"] == []


def test_reused_schemas_for_pipeline_steps_find_what_fresh_ones_find(monkeypatch):
    """Pipeline steps are commands too: their schema is reused across steps and files."""
    corpus = Path(__file__).parent / "corpus" / "azureml-examples" / "cli" / "jobs"
    docs = []
    for path in sorted(corpus.rglob("*.yml")):
        text = path.read_text()
        try:
            located = load_located(text, str(path))
        except Exception:  # noqa: BLE001 - a defective example; not this test's business
            continue
        if detect_kind(located.data) == "pipeline_job" and "command" in text:
            docs.append(Document(path.resolve(), text, located=located, kind="pipeline_job"))
    docs = docs[:16]
    assert len(docs) >= 10
    fresh = _same_with_reused_schemas(docs, monkeypatch)
    assert any(fresh), "no finding at all: the comparison would prove little"
