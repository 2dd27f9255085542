"""Runs at once on one local MLflow store: the runner creates and migrates the SQLite store once,
under a lock, before any job process starts; WAL and MLflow's busy timeout let writers wait."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = [sys.executable, str(ROOT / "generator.py")]
TRIAL = textwrap.dedent("""\
    import argparse

    import mlflow

    p = argparse.ArgumentParser()
    p.add_argument("--x", type=float, required=True)
    mlflow.log_metric("m", p.parse_args().x)
""")


def sweep_file(folder: Path, values: list[int]) -> Path:
    spec = {"$schema": "https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json", "type": "sweep",
            "experiment_name": "concurrent-sweeps", "compute": "azureml:cpu", "sampling_algorithm": "grid",
            "search_space": {"x": {"type": "choice", "values": values}},
            "objective": {"primary_metric": "m", "goal": "maximize"},
            "inputs": {"x": "${{search_space.x}}"},
            "trial": {"code": "../code", "environment": "azureml:env@latest",
                      "command": "python trial.py --x ${{inputs.x}}"},
            "limits": {"max_total_trials": len(values), "max_concurrent_trials": len(values)}}
    path = folder / "jobs" / "sweep.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture
def fresh_store(tmp_path, monkeypatch) -> str:
    uri = f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}"
    monkeypatch.setenv("JOBGEN_MLFLOW_URI", uri)
    return uri


def start_sweep(tmp_path: Path, name: str, values: list[int]) -> tuple[subprocess.Popen, Path]:
    folder = tmp_path / name
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "trial.py").write_text(TRIAL)
    run_dir = folder / "run"
    command = [*GENERATOR, "run", sweep_file(folder, values), "--run-dir", run_dir, "--json", "--no-lint"]
    proc = subprocess.Popen(command, cwd=folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, run_dir


def test_two_sweeps_at_once_on_a_fresh_store_both_complete(tmp_path, fresh_store):
    values = {"a": [1, 2], "b": [3, 4]}
    started = {name: start_sweep(tmp_path, name, v) for name, v in values.items()}  # the same moment
    outcomes = {}
    for name, (proc, run_dir) in started.items():
        out, err = proc.communicate(timeout=120)
        outcomes[name] = (proc.returncode, out, err, run_dir)
    for name, (code, out, err, run_dir) in outcomes.items():
        assert code == 0 and "Traceback" not in err, f"sweep {name}: exit {code}\n{err[-3000:]}"
        summary = json.loads(out)
        assert summary["status"] == "Completed"
        assert [t["status"] for t in summary["trials"]] == ["Completed"] * len(values[name])
        logs = sorted(run_dir.glob("trial_*/user_logs/std_log_process_*.txt"))
        assert len(logs) == len(values[name])
        assert not [log for log in logs if "Traceback" in log.read_text()]
        outcomes[name] = summary
    from mlflow.tracking import MlflowClient

    client = MlflowClient(fresh_store)
    for name, summary in outcomes.items():
        recorded = [client.get_run(t["mlflow_run_id"]).data.metrics.get("m") for t in summary["trials"]]
        assert recorded == values[name], f"sweep {name}: metrics in MLflow {recorded}"


def prepare_in(cwd: Path, uri: str, *, count: int) -> list[subprocess.CompletedProcess]:
    """``count`` processes asking for the store at the same moment; each says whether it loaded MLflow."""
    code = ("import sys; from jobgen.runner.mlflowstore import prepare; "
            f"print(prepare({uri!r})); print('mlflow' in sys.modules)")
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(count)]
    return [finish(p) for p in procs]


def finish(proc: subprocess.Popen) -> subprocess.CompletedProcess:
    out, err = proc.communicate(timeout=60)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_creating_the_store_twice_at_once_leaves_one_migrated_database(tmp_path):
    from mlflow.store.db.utils import _get_latest_schema_revision

    db = tmp_path / "mlflow.db"
    results = prepare_in(tmp_path, f"sqlite:///{db}", count=2)
    for result in results:
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0] == f"sqlite:///{db}"
        assert "Traceback" not in result.stderr and "INFO" not in result.stderr
    conn = sqlite3.connect(db)
    try:
        assert conn.execute("SELECT version_num FROM alembic_version").fetchall() == \
            [(_get_latest_schema_revision(),)]
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


def test_a_ready_store_is_not_migrated_again_and_mlflow_is_not_loaded(tmp_path):
    db = tmp_path / "mlflow.db"
    prepare_in(tmp_path, "sqlite:///mlflow.db", count=1)
    before = db.stat().st_mtime_ns
    started = time.monotonic()
    [result] = prepare_in(tmp_path, "sqlite:///mlflow.db", count=1)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"sqlite:///{db}", "False"]  # absolute: jobs run elsewhere
    assert time.monotonic() - started < 2.0  # importing MLflow alone takes seconds
    assert db.stat().st_mtime_ns == before


def test_a_new_store_is_a_copy_of_the_template_and_mlflow_uses_it(tmp_path, monkeypatch):
    """The first new store of MLflow's head revision is migrated by MLflow and kept as the template;
    later new stores are copies (MLflow not even imported), and a run logs into one as usual."""
    monkeypatch.setenv("JOBGEN_STORE_TEMPLATES", str(tmp_path / "templates"))
    [first] = prepare_in(tmp_path, f"sqlite:///{tmp_path / 'a.db'}", count=1)
    assert first.returncode == 0 and first.stdout.split()[1] == "True", first.stderr
    assert len(list((tmp_path / "templates").glob("*.db"))) == 1
    [second] = prepare_in(tmp_path, f"sqlite:///{tmp_path / 'b' / 'b.db'}", count=1)
    assert second.returncode == 0 and second.stdout.split()[1] == "False", second.stderr
    code = ("import mlflow; mlflow.set_tracking_uri(%r); mlflow.set_experiment('e')\n"
            "with mlflow.start_run(): mlflow.log_metric('m', 1.5)\n"
            "print(mlflow.search_runs(experiment_names=['e'])['metrics.m'].tolist())") % f"sqlite:///{tmp_path / 'b' / 'b.db'}"
    used = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert used.returncode == 0 and used.stdout.strip() == "[1.5]", used.stderr[-2000:]
    monkeypatch.setenv("JOBGEN_STORE_TEMPLATES", "off")  # none: made in place, as before
    [third] = prepare_in(tmp_path, f"sqlite:///{tmp_path / 'c.db'}", count=1)
    assert third.returncode == 0 and third.stdout.split()[1] == "True", third.stderr


@pytest.mark.parametrize("uri", ["http://127.0.0.1:5000", "sqlite:///:memory:", "databricks"])
def test_other_stores_are_handed_on_as_they_are(uri):
    from jobgen.runner.mlflowstore import prepare

    assert prepare(uri) == uri


def test_a_store_that_is_not_a_database_is_one_line(tmp_path, monkeypatch, cli):
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"not a database, but a file someone put here" * 100)
    monkeypatch.setenv("JOBGEN_MLFLOW_URI", f"sqlite:///{db}")
    job = tmp_path / "job.yml"
    job.write_text(yaml.safe_dump({"$schema": "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
                                   "type": "command", "command": "true", "environment": "azureml:env@latest",
                                   "compute": "azureml:cpu"}))
    code, out, err = cli("run", job, "--run-dir", tmp_path / "run")
    assert code == 1
    assert err.strip().splitlines() == [err.strip()]  # one line
    assert str(db) in err and "not a database" in err and "Traceback" not in err


def test_a_sweep_takes_the_experiment_another_sweep_made_a_moment_ago(tmp_path):
    from mlflow.tracking import MlflowClient

    from jobgen.runner.mlflowstore import prepare
    from jobgen.runner.sweep import ensure_experiment

    uri = prepare(f"sqlite:///{tmp_path / 'mlflow.db'}")
    client = MlflowClient(uri)
    first = ensure_experiment(client, "shared", uri)

    class LateLookup:  # the other sweep makes the experiment between this one's lookup and create
        def __init__(self):
            self.lookups = 0

        def get_experiment_by_name(self, name):
            self.lookups += 1
            return None if self.lookups == 1 else client.get_experiment_by_name(name)

        def create_experiment(self, *args, **kwargs):
            return client.create_experiment(*args, **kwargs)

    assert ensure_experiment(LateLookup(), "shared", uri) == first
