"""The runner on jobs shaped like the ones users write: the official hello pipelines (inline
steps, default artifacts, a uri_file output), a nested pipeline component, a registered
component mapped to a file, an mltable input and a datastore URI through the catalog, TF_CONFIG,
a job that pip-installs, the plan (--dry-run) and refusals with every problem at once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers.wheels import tinypkg

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = [sys.executable, str(ROOT / "generator.py")]
BASICS = Path(__file__).parent / "corpus" / "azureml-examples" / "cli" / "jobs" / "basics"
SCHEMA = "https://azuremlschemas.azureedge.net/latest/"
ENV = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"

pytestmark = pytest.mark.full


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOBGEN_MLFLOW_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def run(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([*GENERATOR, "run", *map(str, args)], capture_output=True, text=True, timeout=timeout)


def ok(result: subprocess.CompletedProcess) -> dict:
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def write(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def log(summary: dict, step: str) -> str:
    return (Path(summary["steps"][step]["run_dir"]) / "user_logs" / "std_log_process_00.txt").read_text()


# ------------------------------------------------------------------ the official hello pipelines

def test_the_official_hello_pipelines_run_here(work):
    """Inline steps without type: command, outputs declared with nothing, the default artifacts
    output between steps, a uri_file pipeline output."""
    for name in ("hello-pipeline", "hello-pipeline-io", "hello-pipeline-default-artifacts",
                 "hello-pipeline-customize-output-file"):
        shutil.copy(BASICS / f"{name}.yml", work / f"{name}.yml")
    summary = ok(run(work / "hello-pipeline.yml", "--json", "--no-lint"))
    assert "hello" in log(summary, "hello_job") and "world" in log(summary, "world_job")
    summary = ok(run(work / "hello-pipeline-io.yml", "--json", "--no-lint"))
    assert log(summary, "world_job").strip() == "world"
    summary = ok(run(work / "hello-pipeline-default-artifacts.yml", "--json", "--no-lint"))
    assert log(summary, "world_job").strip() == "world"  # cat ${{inputs.world_input}}/outputs/world.txt
    artifacts = Path(summary["steps"]["hello_job"]["outputs"]["artifacts"])
    assert (artifacts / "outputs" / "world.txt").read_text() == "world\n"
    summary = ok(run(work / "hello-pipeline-customize-output-file.yml", "--json", "--no-lint"))
    output = Path(summary["outputs"]["output"])
    assert output.is_file() and output.read_text() == "world\n"  # a uri_file output is a file


# ------------------------------------------------------------------ nested pipelines, registered components

def test_a_nested_pipeline_component_and_a_registered_component(work):
    write(work / "greet.yml", {
        "$schema": f"{SCHEMA}commandComponent.schema.json", "name": "greet", "version": "1", "type": "command",
        "inputs": {"who": {"type": "string"}}, "outputs": {"out": {"type": "uri_folder"}},
        "command": "echo hello ${{inputs.who}} > ${{outputs.out}}/greeting.txt", "environment": ENV})
    write(work / "inner.yml", {
        "$schema": f"{SCHEMA}pipelineComponent.schema.json", "name": "inner", "version": "1", "type": "pipeline",
        "inputs": {"who": {"type": "string", "default": "nobody"}}, "outputs": {"result": {"type": "uri_folder"}},
        "jobs": {"make": {"component": "azureml:greet:1", "inputs": {"who": "${{parent.inputs.who}}"}},
                 "shout": {"component": "./shout.yml",
                           "inputs": {"text": "${{parent.jobs.make.outputs.out}}"},
                           "outputs": {"loud": "${{parent.outputs.result}}"}}}})
    write(work / "shout.yml", {
        "$schema": f"{SCHEMA}commandComponent.schema.json", "name": "shout", "version": "1", "type": "command",
        "inputs": {"text": {"type": "uri_folder"}}, "outputs": {"loud": {"type": "uri_folder"}},
        "command": "tr a-z A-Z < ${{inputs.text}}/greeting.txt > ${{outputs.loud}}/loud.txt", "environment": ENV})
    pipeline = write(work / "pipeline.yml", {
        "$schema": f"{SCHEMA}pipelineJob.schema.json", "type": "pipeline", "inputs": {"name": "azure"},
        "outputs": {"final": {"type": "uri_folder"}},
        "jobs": {"outer": {"type": "pipeline", "component": "./inner.yml", "inputs": {"who": "${{parent.inputs.name}}"},
                           "outputs": {"result": "${{parent.outputs.final}}"}},
                 "after": {"command": "cat ${{inputs.x}}/loud.txt", "environment": ENV,
                           "inputs": {"x": "${{parent.jobs.outer.outputs.result}}"}}}})
    refused = run(pipeline, "--no-lint")
    assert refused.returncode == 1 and "component azureml:greet:1 is registered" in refused.stderr
    assert "--component greet=PATH" in refused.stderr
    summary = ok(run(pipeline, "--json", "--no-lint", "--component", f"greet={work / 'greet.yml'}"))
    assert list(summary["steps"]) == ["outer/make", "outer/shout", "after"]
    assert (Path(summary["outputs"]["final"]) / "loud.txt").read_text() == "HELLO AZURE\n"
    assert log(summary, "after").strip() == "HELLO AZURE"


# ------------------------------------------------------------------ inputs of every kind

def test_an_mltable_input_and_a_datastore_uri_through_the_catalog(work):
    (work / "table").mkdir()
    (work / "table" / "MLTable").write_text("paths:\n  - file: ./rows.csv\n")
    (work / "table" / "rows.csv").write_text("a\n1\n")
    (work / "lake" / "raw").mkdir(parents=True)
    (work / "lake" / "raw" / "part-0.csv").write_text("x\n")
    write(work / "jobs" / "data.yml", {"uris": {"azureml://datastores/blobs/paths/": "../lake"}})
    job = write(work / "jobs" / "job.yml", {
        "$schema": f"{SCHEMA}commandJob.schema.json", "type": "command", "environment": ENV, "compute": "azureml:cpu",
        "command": "ls ${{inputs.table}} && ls ${{inputs.raw}}",
        "inputs": {"table": {"type": "mltable", "path": "../table"},
                   "raw": {"type": "uri_folder", "path": "azureml://datastores/blobs/paths/raw/"}}})
    summary = ok(run(job, "--json", "--no-lint"))
    shown = (Path(summary["run_dir"]) / "user_logs" / "std_log_process_00.txt").read_text().split()
    assert {"MLTable", "rows.csv", "part-0.csv"} <= set(shown)
    other = write(work / "jobs" / "other.yml", {**yaml.safe_load(job.read_text()), "inputs": {
        "raw": {"type": "uri_folder", "path": "azureml://datastores/other/paths/raw/"}}, "command": "ls ${{inputs.raw}}"})
    refused = run(other, "--no-lint")
    assert refused.returncode == 1 and "azureml://datastores/other/paths/raw/: <local path>' under uris:" in \
        refused.stderr


# ------------------------------------------------------------------ tensorflow

def test_tensorflow_tasks_get_tf_config_as_azure_sets_it(work):
    job = write(work / "tf.yml", {
        "$schema": f"{SCHEMA}commandJob.schema.json", "type": "command", "environment": ENV, "compute": "azureml:cpu",
        "command": "python -c \"import os; print(os.environ['TF_CONFIG'])\"",
        "resources": {"instance_count": 2},
        "distribution": {"type": "tensorflow", "worker_count": 2, "parameter_server_count": 1}})
    summary = ok(run(job, "--json", "--no-lint"))
    logs = sorted((Path(summary["run_dir"]) / "user_logs").glob("std_log_process_*.txt"))
    configs = [json.loads(p.read_text().strip()) for p in logs]
    assert len(configs) == 3
    assert all(len(c["cluster"]["worker"]) == 2 and len(c["cluster"]["ps"]) == 1 for c in configs)
    assert sorted((c["task"]["type"], c["task"]["index"]) for c in configs) == [("ps", 0), ("worker", 0), ("worker", 1)]


# ------------------------------------------------------------------ environments

def test_a_jobs_pip_install_goes_to_its_layer_not_to_the_runner(work):
    wheel = tinypkg(work / "dist")
    job = write(work / "pip.yml", {
        "$schema": f"{SCHEMA}commandJob.schema.json", "type": "command", "environment": ENV, "compute": "azureml:cpu",
        "command": f"pip install --quiet --no-index {wheel} && python -c 'import tinypkg; print(tinypkg.VERSION)' "
                   "&& tinycli && echo done > ./outputs/done.txt && echo note > ./logs/note.txt"})
    summary = ok(run(job, "--json", "--no-lint"))
    run_dir = Path(summary["run_dir"])
    assert "1.0" in (run_dir / "user_logs" / "std_log_process_00.txt").read_text()
    assert (run_dir / "artifacts" / "outputs" / "done.txt").is_file()  # ./outputs and ./logs are kept
    assert (run_dir / "artifacts" / "logs" / "note.txt").is_file()
    probe = subprocess.run([sys.executable, "-c", "import tinypkg"], capture_output=True)
    assert probe.returncode != 0, "the job's pip install reached the runner's own environment"
    assert not list(Path(sys.prefix).rglob("tinypkg*"))


def test_a_program_the_image_would_provide_is_named_when_missing(work):
    """cli/jobs/single-step/julia/iris/job.yml runs `julia`, which its image has and this machine has not."""
    job = write(work / "julia.yml", {"$schema": f"{SCHEMA}commandJob.schema.json", "type": "command",
                                     "environment": ENV, "compute": "azureml:cpu",
                                     "command": "jobgen-no-such-program -e 'include(\"run.jl\")'"})
    result = run(job, "--json", "--no-lint")
    body = json.loads(result.stdout)
    assert result.returncode == 1 and body["status"] == "Failed"
    assert "jobgen-no-such-program is not installed on this machine" in body["message"]
    assert "environment image provides it" in body["message"]


# ------------------------------------------------------------------ the plan

def test_file_prefixed_local_paths_resolve(work):
    """pipelines-with-components/basics/4e_mltable_input/pipeline.yml gives its mltable as `file://data`."""
    example = Path(__file__).parent / "corpus/azureml-examples/cli/jobs/pipelines-with-components/basics/4e_mltable_input"
    plan = json.loads(run(example / "pipeline.yml", "--dry-run", "--json").stdout)
    assert plan["status"] == "Planned", plan.get("problems")
    assert str(example / "data") in plan["units"][0]["command"]
    (work / "d").mkdir()
    for given in ("file:./d", "file:d", f"file://{work / 'd'}"):
        job = write(work / "job.yml", {"$schema": f"{SCHEMA}commandJob.schema.json", "type": "command", "environment": ENV,
                                       "compute": "azureml:cpu", "command": "ls ${{inputs.d}}",
                                       "inputs": {"d": {"type": "uri_folder", "path": given}}})
        plan = json.loads(run(job, "--dry-run", "--json").stdout)
        assert plan["status"] == "Planned" and plan["units"][0]["command"] == f"ls {work / 'd'}", given


def test_ray_is_refused_with_what_to_do(work):
    job = write(work / "ray.yml", {"$schema": f"{SCHEMA}commandJob.schema.json", "type": "command", "environment": ENV,
                                   "compute": "azureml:cpu", "command": "python -c 'import ray'",
                                   "distribution": {"type": "ray", "include_dashboard": True},
                                   "resources": {"instance_count": 2}})
    body = json.loads(run(job, "--dry-run", "--json").stdout)
    assert body["status"] == "Refused" and len(body["problems"]) == 1
    assert "distribution ray needs the Ray cluster Azure starts" in body["problems"][0]
    assert "hint: submit it to Azure" in body["problems"][0]


def test_dry_run_plans_everything_and_refusals_name_every_problem(work):
    pipeline = write(work / "pipeline.yml", {
        "$schema": f"{SCHEMA}pipelineJob.schema.json", "type": "pipeline",
        "jobs": {"prep": {"command": "echo ok > ${{outputs.out}}/x", "environment": ENV, "outputs": {"out": None}},
                 "score": {"type": "parallel", "component": "./batch.yml"},
                 "spark": {"type": "spark", "component": "./spark.yml"},
                 "train": {"component": "azureml:trainer@latest"},
                 "after": {"command": "cat ${{inputs.x}}/y", "environment": ENV,  # binds a refused step: nothing more
                           "inputs": {"x": "${{parent.jobs.spark.outputs.out}}"}},
                 "read": {"command": "cat ${{inputs.d}}", "environment": ENV,
                          "inputs": {"d": {"type": "uri_file", "path": "https://example.invalid/x.csv"}}}}})
    dry = run(pipeline, "--dry-run", "--run-dir", work / "r")
    assert dry.returncode == 1
    assert "prep: 1 node(s) x 1 process(es)" in dry.stdout and "refused, with 4 problem(s)" in dry.stdout
    for text in ("step 'score' is a parallel step", "step 'spark' is a spark step", "component azureml:trainer@latest",
                 "https://example.invalid/x.csv cannot be reached"):
        assert text in dry.stdout
    refused = run(pipeline, "--json", "--no-lint", "--run-dir", work / "r")
    body = json.loads(refused.stdout)
    assert refused.returncode == 1 and body["status"] == "Refused" and len(body["problems"]) == 4
    assert not (work / "r").exists()  # nothing was started, not even the run folder
    good = write(work / "good.yml", {**yaml.safe_load(pipeline.read_text()), "jobs": {
        "prep": {"command": "echo ok > ${{outputs.out}}/x", "environment": ENV, "outputs": {"out": None}},
        "use": {"command": "cat ${{inputs.x}}/x", "environment": ENV,
                "inputs": {"x": "${{parent.jobs.prep.outputs.out}}"}}}})
    plan = json.loads(run(good, "--dry-run", "--json", "--run-dir", work / "r2").stdout)
    assert plan["status"] == "Planned" and [u["id"] for u in plan["units"]] == ["prep", "use"]
    assert plan["units"][1]["after"] == ["prep"] and plan["units"][1]["command"].startswith(f"cat {work / 'r2'}")
    assert not (work / "r2").exists()


def test_env_venv_installs_what_the_environment_lists(work):
    wheel = tinypkg(work / "dist")
    (work / "conda.yml").write_text(yaml.safe_dump({"name": "e", "dependencies": ["python=3.11", {"pip": [str(wheel)]}]}))
    job = write(work / "job.yml", {
        "$schema": f"{SCHEMA}commandJob.schema.json", "type": "command", "compute": "azureml:cpu",
        "environment": {"image": "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04", "conda_file": "./conda.yml"},
        "command": "python -c 'import tinypkg; print(tinypkg.VERSION)'"})
    assert run(job, "--no-lint", "-q").returncode == 1  # the machine's packages do not have it
    env = dict(os.environ, XDG_CACHE_HOME=str(work / "cache"), PIP_NO_INDEX="1")
    result = subprocess.run([*GENERATOR, "run", str(job), "--no-lint", "--json", "--env", "venv"], capture_output=True,
                            text=True, timeout=180, env=env)
    summary = ok(result)
    assert "1.0" in (Path(summary["run_dir"]) / "user_logs" / "std_log_process_00.txt").read_text()


def test_mlflow_artifacts_of_a_job_land_beside_the_store_not_in_its_code(work, monkeypatch):
    # mlflow.set_experiment in the caller's process leaves MLFLOW_EXPERIMENT_ID behind: it names an
    # experiment of another store, and the job's MLflow refused it beside MLFLOW_EXPERIMENT_NAME
    monkeypatch.setenv("MLFLOW_EXPERIMENT_ID", "2")
    (work / "src").mkdir()
    (work / "src" / "log.py").write_text("import mlflow\nmlflow.log_text('x', 'a.txt')\n"
                                         "print('artifacts at', mlflow.get_artifact_uri())\n")
    job = write(work / "job.yml", {
        "$schema": f"{SCHEMA}commandJob.schema.json", "type": "command", "environment": ENV, "compute": "azureml:cpu",
        "code": "./src", "command": "python log.py", "experiment_name": "artifact-place"})
    summary = ok(run(job, "--json", "--no-lint", "--run-dir", work / "r"))
    line = (work / "r" / "user_logs" / "std_log_process_00.txt").read_text()
    assert "artifacts at file://" in line and str(work / "mlartifacts") in line, line
    assert not list((work / "r").rglob("a.txt"))
    ok(run(job, "--json", "--no-lint", "--run-dir", work / "r"))  # the run folder reused: the first run's artifact stays
    assert len(list((work / "mlartifacts").rglob("a.txt"))) == 2
    del summary
