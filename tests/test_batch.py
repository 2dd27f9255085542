"""Batch scoring: a batch endpoint's model deployment run here as Azure's batch executor runs it
(`generator.py run deployment.yml --input ...`): mini-batches of files through init()/run() in
instance_count x max_concurrency_per_instance processes, retries and timeouts, the error
threshold, and the output file as Azure writes it (named-outputs/score/predictions.csv)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from helpers.datasets import make_images, penguins_csv
from helpers.models import exported, model_folder

ROOT = Path(__file__).resolve().parents[1]
SPECIES = {"Adelie", "Chinstrap", "Gentoo"}
BATCH_EXAMPLES = ROOT / "tests/corpus/azureml-examples/cli/endpoints/batch/deploy-models"
MNIST = BATCH_EXAMPLES / "mnist-classifier/deployment-torch"
HEART = BATCH_EXAMPLES / "heart-classifier-mlflow/deployment-custom"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    penguins_csv(root / "penguins.csv")
    make_images(root / "images", per_class_train=2, per_class_val=3)
    return {"root": root,
            "penguins": exported(model_folder(root / "pm", "penguins"), root / "penguins.csv", root / "penguins-onnx"),
            "images": exported(model_folder(root / "im", "images"), root / "images", root / "images-onnx", int8=False)}


def _predictions(run_dir: Path) -> list[list[str]]:
    return [line.split(" ") for line in (run_dir / "outputs/score/predictions.csv").read_text().splitlines()]


def test_the_penguins_example_scores_every_csv_row_and_skips_what_it_cannot(cli, checkout, models, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(models["root"] / "penguins.csv", data / "a.csv")
    (data / "b.csv").write_text("species,island,bill_length_mm,bill_depth_mm,flipper_length_mm,body_mass_g\n"
                                "Gentoo,Biscoe,48.7,14.1,210,4450\nAdelie,Torgersen,NA,NA,NA,NA\n"
                                "Adelie,Torgersen,39.1,18.7,181,3750\n")
    (data / "notes.txt").write_text("not a penguin\n")
    run_dir = tmp_path / "run"
    rc, out, err = cli("run", checkout / "jobs/penguins-batch/deployment.yml", "--input", data,
                       "--data", f"penguins-mlp={models['penguins']}", "--run-dir", run_dir)
    assert rc == 0, err + out
    rows = _predictions(run_dir)
    with open(data / "a.csv", newline="") as f:
        scored_a = sum(1 for row in csv.DictReader(f) if row["bill_length_mm"] != "NA")
    assert [r[0] for r in rows] == ["a.csv"] * scored_a + ["b.csv"] * 2  # in input order, no header
    assert [r[1] for r in rows if r[0] == "b.csv"] == ["0", "2"]  # row 1 (NA) skipped
    assert all(r[2] in SPECIES and 0 < float(r[3]) <= 1 for r in rows)
    # notes.txt gave no row, but the mini-batch returned more rows than files: Azure counts no failure
    assert f"Completed: 3 file(s), {len(rows)} row(s) in" in out and "failed" not in out
    logs = "".join(p.read_text() for p in (run_dir / "logs/user").rglob("*.txt"))
    assert "b.csv row 1 skipped: bill_length_mm must be a number, got 'NA'" in logs
    assert "skipped notes.txt: its header has no island" in logs
    # the deployment's WORKER_COUNT (2 processes per node) shared the cores out
    assert f"{max(1, len(os.sched_getaffinity(0)) // 2)} threads)" in logs
    result = json.loads((run_dir / "logs/job_result.txt").read_text())
    assert result["status"] == "Completed" and result["mini_batches"] == 1 and result["failed_files"] == 0


def test_images_in_mini_batches_over_two_nodes(cli, models, tmp_path):
    deployment = tmp_path / "deployment.yml"
    deployment.write_text(f"""$schema: https://azuremlschemas.azureedge.net/latest/batchDeployment.schema.json
name: onnx
endpoint_name: chickens-turkeys-batch
type: model
model: azureml:chickens-turkeys-resnet18@latest
code_configuration:
  code: {ROOT / 'src/trainer'}
  scoring_script: batch_score.py
environment:
  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest
compute: azureml:cpu-cluster
resources:
  instance_count: 2
settings:
  environment_variables:
    WORKER_COUNT: "1"
    JOBGEN_ONNX_VARIANT: fp32
  max_concurrency_per_instance: 1
  mini_batch_size: 2
  output_file_name: scores.txt
""")
    images = models["root"] / "images" / "val"
    run_dir = tmp_path / "run"
    rc, out, err = cli("run", deployment, "--input", images, "--data", f"chickens-turkeys-resnet18={models['images']}",
                       "--run-dir", run_dir, "--json")
    assert rc == 0, err + out
    result = json.loads(out)
    assert result["files"] == 6 and result["mini_batches"] == 3 and result["failed_files"] == 0
    lines = (run_dir / "outputs/score/scores.txt").read_text().splitlines()
    expected = sorted(p.name for p in images.rglob("*.jpg"))
    assert [line.split(" ")[0] for line in lines] == sorted(expected, key=lambda n: (not n.startswith("chickens"), n))
    assert all(line.split(" ")[1] in ("chickens", "turkeys") for line in lines)
    # one scoring process per node, each with its own log, as Azure keeps them
    assert sorted(p.parent.name for p in (run_dir / "logs/user").rglob("process00.txt")) == ["node-0", "node-1"]


DRIVER = """import os
import time
from pathlib import Path


def init():
    assert Path(os.environ["AZUREML_MODEL_DIR"]).is_dir() and os.environ["AZUREML_BI_OUTPUT_PATH"]


def run(mini_batch):
    out = []
    for f in mini_batch:
        name = Path(f).name
        if name.startswith("bad"):
            raise ValueError("cannot read " + name)
        if name.startswith("slow"):
            time.sleep(60)
        if name.startswith("skip"):
            continue
        if name.startswith("crash"):
            os._exit(3)
        out.append([name, len(Path(f).read_bytes())])
    return out
"""


@pytest.fixture
def mnist(tmp_path):
    """The official mnist-classifier batch deployment as written, with a scoring script of ours in
    its code folder (a list of [file, size] per mini-batch, failing where the file name says)."""
    folder = tmp_path / "mnist"
    shutil.copytree(MNIST, folder)
    (folder / "code" / "batch_driver.py").write_text(DRIVER)
    return folder / "deployment.yml"


def _inputs(folder: Path, names: list[str]) -> Path:
    folder.mkdir()
    for name in names:
        (folder / name).write_bytes(b"x" * (len(name)))
    return folder


def test_retries_timeouts_and_the_official_examples_list_output(cli, mnist, tmp_path):
    data = _inputs(tmp_path / "in", ["a.png", "b.png", "bad.png", "crash.png", "skip.png", "slow.png"])
    run_dir = tmp_path / "run"
    rc, out, err = cli("run", mnist, "--input", data, "--run-dir", run_dir, "--set", "settings.mini_batch_size=1",
                       "--set", "settings.retry_settings.timeout=2", "--set", "settings.retry_settings.max_retries=1")
    assert rc == 0, err + out  # error_threshold -1: failures do not fail the job
    # a list's elements one per line, as str() prints them (the docs read them back with literal_eval)
    assert (run_dir / "outputs/score/predictions.csv").read_text() == "['a.png', 5]\n['b.png', 5]\n"
    assert "mini-batch 3: ValueError: cannot read bad.png; retry 1 of 1" in out
    assert "run() took longer than retry_settings.timeout (2 s); retry 1 of 1" in out
    # a process that dies is started again (init() again) for the retry, as Azure restarts it
    assert "mini-batch 4: the scoring process ended (exit 3); retry 1 of 1" in out
    assert "Completed: 6 file(s), 2 row(s)" in out and "4 file(s) failed" in out
    result = json.loads((run_dir / "logs/job_result.txt").read_text())
    assert result["retries"] == 3 and [f["mini_batch"] for f in result["failed_mini_batches"]] == [3, 4, 6]
    # AZUREML_MODEL_DIR holds the registered folder under its name, as the docs' scripts join it
    mounted = run_dir / "azureml-models/mnist-classifier-torch/1/model"
    assert mounted.resolve() == (mnist.parent / "model").resolve()


def test_the_older_flat_batch_deployment_form_is_read_as_azure_reads_it(cli, tmp_path, models):
    """The official heart-classifier custom deployment: batchDeployment without type:, its executor
    settings beside model: (mini_batch_size 2, 2 nodes x 2 processes) and top-level
    environment_variables, which that form sends."""
    folder = tmp_path / "heart"
    shutil.copytree(HEART, folder)
    (folder / "code" / "batch_driver.py").write_text(DRIVER.replace(
        "def run(", "def run_env():\n    return os.environ['GREETING']\n\n\ndef run(").replace(
        "out.append([name, len(Path(f).read_bytes())])", "out.append([name, run_env()])"))
    deployment = folder / "deployment.yml"
    deployment.write_text(deployment.read_text() + "environment_variables:\n  GREETING: hello\n")
    data = _inputs(tmp_path / "in", ["a.csv", "b.csv", "c.csv"])
    run_dir = tmp_path / "run"
    rc, out, err = cli("run", deployment, "--input", data, "--data", f"heart-classifier={models['penguins']}",
                       "--run-dir", run_dir, "--json")
    assert rc == 0, err + out
    result = json.loads(out)
    assert result["mini_batches"] == 2 and result["files"] == 3
    assert (run_dir / "outputs/score/predictions.csv").read_text().splitlines() == [
        "['a.csv', 'hello']", "['b.csv', 'hello']", "['c.csv', 'hello']"]
    assert len(list((run_dir / "logs/user").rglob("process*.txt"))) == 4


def test_more_failed_files_than_the_error_threshold_fail_the_job(cli, mnist, tmp_path):
    data = _inputs(tmp_path / "in", ["a.png", "bad1.png", "bad2.png", "c.png"])
    rc, out, err = cli("run", mnist, "--input", data, "--run-dir", tmp_path / "run", "--set",
                       "settings.error_threshold=1", "--set", "settings.retry_settings.max_retries=0",
                       "--set", "settings.mini_batch_size=1", "--set", "settings.max_concurrency_per_instance=1")
    assert rc == 1
    assert "Failed:" in out and "above error_threshold 1" in out


def test_init_failure_stops_the_job_with_its_log(cli, mnist, tmp_path):
    (mnist.parent / "code" / "batch_driver.py").write_text("def init():\n    raise RuntimeError('no model')\n\n"
                                                          "def run(mini_batch):\n    return []\n")
    rc, out, err = cli("run", mnist, "--input", _inputs(tmp_path / "in", ["a.png"]), "--run-dir", tmp_path / "run")
    assert rc == 1 and "init() of the scoring script failed: RuntimeError: no model" in err
    assert "Traceback" not in err
    assert "RuntimeError: no model" in (tmp_path / "run/logs/user/node-0/process00.txt").read_text()


@pytest.mark.parametrize("args, expected", [
    ([], "a batch deployment scores an input: none was given (hint: pass --input FOLDER_OR_FILE"),
    (["--input", "{tmp}/nothing"], "input '{tmp}/nothing' does not exist"),
    (["--input", "{tmp}/empty"], "the folder holds no files to score"),
    (["--input", "{tmp}/empty", "--set", "settings.mini_batch_size=0"], "mini_batch_size 0 cannot run"),
])
def test_refusals_start_nothing(cli, mnist, tmp_path, args, expected):
    (tmp_path / "empty").mkdir()
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    rc, out, err = cli("run", mnist, "--run-dir", tmp_path / "run", *args)
    assert rc == 1 and expected.replace("{tmp}", str(tmp_path)) in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_an_unregistered_model_says_where_it_was_looked_for(cli, checkout, tmp_path, monkeypatch):
    monkeypatch.setenv("JOBGEN_MLFLOW_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    data = _inputs(tmp_path / "in", ["a.csv"])
    rc, out, err = cli("run", checkout / "jobs/penguins-batch/deployment.yml", "--input", data,
                       "--run-dir", tmp_path / "run")
    assert rc == 1 and "model 'penguins-mlp' is neither in the local data catalog nor registered" in err
    assert "--data penguins-mlp=MODEL_DIR" in err and not (tmp_path / "run").exists()


def test_input_is_refused_for_a_job(cli, checkout, tmp_path):
    rc, out, err = cli("run", checkout / "jobs/penguins-single/job.yml", "--input", tmp_path)
    assert rc == 1 and "--input is the data a batch deployment scores" in err
