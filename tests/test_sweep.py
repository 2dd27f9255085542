"""The sweep template: the seed's tuning of the image classifier, any search space from values,
distributed trials; it renders, lints, and runs here through the runner."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_seed_sweep_definition(root):
    sweep = yaml.safe_load((root / "jobs" / "chickens-turkeys-sweep" / "sweep.yml").read_text())
    assert sweep["sampling_algorithm"] == "random"
    assert sweep["search_space"]["learning_rate"] == {"type": "uniform", "min_value": 0.0005, "max_value": 0.005}
    assert sweep["search_space"]["momentum"] == {"type": "uniform", "min_value": 0.9, "max_value": 0.99}
    assert sweep["objective"] == {"primary_metric": "best_val_accuracy", "goal": "maximize"}
    assert sweep["limits"] == {"max_total_trials": 8, "max_concurrent_trials": 4}
    assert sweep["early_termination"]["type"] == "bandit"
    assert sweep["inputs"]["learning_rate"] == "${{search_space.learning_rate}}"
    assert sweep["trial"]["distribution"] == {"type": "pytorch", "process_count_per_instance": 4}
    assert "--learning-rate ${{inputs.learning_rate}}" in sweep["trial"]["command"]


def test_sweep_loads_with_azure_ai_ml(root):
    from azure.ai.ml import load_job

    job = load_job(root / "jobs" / "chickens-turkeys-sweep" / "sweep.yml")
    assert job.limits.max_total_trials == 8 and job.early_termination.slack_factor == 0.1


def test_any_search_space_from_values(cli, checkout, tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text("""\
job:
  resources: {instance_count: 2}
sweep:
  enabled: true
  sampling_algorithm: grid
  search_space:
    learning_rate: {type: choice, values: [0.001, 0.01]}
    momentum: null
    batch_size: {type: choice, values: [16, 32]}
  early_termination: {type: median_stopping, evaluation_interval: 1, delay_evaluation: 3}
  max_total_trials: 4
  max_concurrent_trials: 2
""")
    rc, out, err = cli("render", "-f", values, "-o", checkout / "rendered")
    assert rc == 0, err
    sweep = yaml.safe_load((checkout / "rendered" / "sweep.yml").read_text())
    assert set(sweep["search_space"]) == {"learning_rate", "batch_size"}
    assert sweep["inputs"]["momentum"] == 0.9 and sweep["inputs"]["batch_size"] == "${{search_space.batch_size}}"
    # an image job's trials get shared memory for their DataLoader workers: half the T4 VM's, at most 64g
    assert sweep["trial"]["resources"] == {"instance_count": 2, "shm_size": "64g"}
    assert "sweep of 4 trials" in out


@pytest.mark.parametrize("sets,expected", [
    (["sweep.search_space.dropout=0.5"], "'dropout' is not an input of the job"),
    (["sweep.sampling_algorithm=grid"], "grid sampling needs choice parameters"),
    (["sweep.sampling_algorithm=bayesian"], "bayesian sampling does not support early termination"),
    (["sweep.max_total_trials=0"], "must be at least 1"),
    (["sweep.goal=biggest"], "unknown value 'biggest'"),
    (["sweep.early_termination.type=quickly"], "unknown policy 'quickly'"),
])
def test_bad_sweep_values(cli, checkout, tmp_path, sets, expected):
    args = ["render", "--set", "sweep.enabled=true"]
    for s in sets:
        args += ["--set", s]
    rc, out, err = cli(*args, "-o", tmp_path / "out")
    assert rc == 1 and expected in err, err
    assert not (tmp_path / "out").exists()


def test_sweep_of_an_input_the_job_does_not_have(cli, checkout, tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text("sweep:\n  enabled: true\n  search_space:\n    dropout: {type: uniform, min_value: 0, max_value: 1}\n")
    rc, _, err = cli("render", "-f", values, "-o", tmp_path / "out")
    assert rc == 1 and "'dropout' is not an input of the job" in err


@pytest.mark.full
def test_penguins_sweep_runs_here_through_the_runner(tmp_path):
    """Two distributed trials (1 node x 2 processes each) of the real trainer; the primary
    metric comes back from MLflow and the best trial is reported."""
    project = tmp_path
    shutil.copytree(ROOT / "jobs", project / "jobs")
    (project / "data").mkdir()
    import palmerpenguins

    shutil.copyfile(Path(palmerpenguins.__file__).parent / "data" / "penguins.csv", project / "data" / "penguins.csv")
    (project / "values.yaml").write_text("""\
job:
  distribution: {type: pytorch}
  inputs: {epochs: 8}
  environment_variables: {OMP_NUM_THREADS: "1"}
launcher:
  processes_per_node: 2
cluster:
  size: Standard_D4s_v3
sweep:
  enabled: true
  sampling_algorithm: grid
  search_space:
    learning_rate: {type: choice, values: [0.0001, 0.01]}
    momentum: null
  primary_metric: best_val_accuracy
  max_total_trials: 2
  max_concurrent_trials: 1
  early_termination: null
""")
    env = dict(os.environ, JOBGEN_MLFLOW_URI=f"sqlite:///{project / 'mlflow.db'}")
    gen = [sys.executable, str(ROOT / "generator.py")]
    render = subprocess.run([*gen, "-f", "jobs/penguins-single/values.yaml", "-f", "values.yaml", "-o", "rendered",
                             "--no-lint"],  # lint is not this test's subject: each new file's imports azure-ai-ml
                            cwd=project, capture_output=True, text=True, env=env)
    assert render.returncode == 0, render.stderr
    result = subprocess.run([*gen, "run", "rendered/sweep.yml", "--run-dir", "run", "--json", "--catalog",
                             "jobs/data.yml", "--no-lint"], cwd=project, capture_output=True, text=True, env=env,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert [t["status"] for t in summary["trials"]] == ["Completed", "Completed"]
    assert summary["best_trial"]["parameters"] == {"learning_rate": 0.01}  # 8 epochs at 1e-4 learn little
    assert summary["best_trial"]["metric"] == "best_val_accuracy" and summary["best_trial"]["value"] > 0.8
    logs = sorted((project / "run" / "trial_0" / "user_logs").glob("*.txt"))
    assert len(logs) == 2  # each trial ran distributed
