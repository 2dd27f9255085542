"""The trainer's MLflow process (trainkit/tracking.py): what it logs, that it batches what piles up,
and that a tracking failure costs a line, not the training."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest

from helpers import runs
from helpers.datasets import penguins_csv

sys.path.insert(0, str(runs.TRAINER))
from trainkit import tracking  # noqa: E402  (no torch: the fast tier runs this module)


def _messages(*items: dict) -> io.StringIO:
    return io.StringIO("".join(json.dumps(m) + "\n" for m in items))


def test_the_tracking_process_logs_a_run_with_every_epoch(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.delenv("MLFLOW_RUN_ID", raising=False)
    (tmp_path / "note.txt").write_text("hello")
    epochs = [{"op": "metrics", "values": {"val_accuracy": 0.5 + i / 100, "train_loss": 1.0 - i / 100}, "step": i + 1}
              for i in range(30)]
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": 0.9, "val_accuracy": 0.5},
               {"epoch": 2, "train_loss": 0.8, "val_loss": 0.7, "val_accuracy": 0.6}]
    stream = _messages({"op": "start", "experiment": "jobgen-test", "resume_run_id": None,
                        "params": {"epochs": 30, "task": "penguins"}, "tags": {"who": "test"}},
                       *epochs, {"op": "curve", "history": history, "path": str(tmp_path / "curve.png")},
                       {"op": "artifact", "path": str(tmp_path / "note.txt")}, {"op": "end"})
    assert tracking.serve(stream) == 0
    replies = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert replies[-1] == {"done": True} and not [r for r in replies if "error" in r]
    run_id = replies[0]["run_id"]
    import mlflow

    client = mlflow.MlflowClient()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params == {"epochs": "30", "task": "penguins"} and run.data.tags["who"] == "test"
    steps = [m.step for m in client.get_metric_history(run_id, "val_accuracy")]
    assert sorted(steps) == list(range(1, 31))  # every epoch, whether written one by one or together
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    assert {a.path for a in client.list_artifacts(run_id)} == {"note.txt"}
    assert mlflow.get_experiment(run.info.experiment_id).name == "jobgen-test"


def test_a_tracking_failure_is_one_line_and_training_goes_on(tmp_path, capsys, monkeypatch):
    """An MLflow store that cannot be opened: the reply says so once; curves are still drawn."""
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}")  # cannot exist
    history = [{"epoch": 1, "train_loss": 1.0, "val_loss": 0.9, "val_accuracy": 0.5}]
    stream = _messages({"op": "start", "experiment": "x", "resume_run_id": None, "params": {}, "tags": {}},
                       {"op": "metrics", "values": {"a": 1.0}, "step": 1},
                       {"op": "curve", "history": history, "path": str(tmp_path / "curve.png")}, {"op": "end"})
    assert tracking.serve(stream) == 0
    replies = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    errors = [r["error"] for r in replies if "error" in r]
    assert len(errors) == 1 and "\n" not in errors[0]
    assert replies[-1] == {"done": True}
    assert (tmp_path / "curve.png").is_file()


@pytest.mark.full
def test_training_with_a_broken_store_finishes_and_says_so(tmp_path):
    penguins_csv(tmp_path / "penguins.csv")
    args = ["--task", "penguins", "--epochs", "2", "--batch-size", "16", "--precision", "fp32",
            "--data", tmp_path / "penguins.csv", "--model-dir", tmp_path / "model", "--checkpoint-dir", tmp_path / "c"]
    (tmp_path / "a-file").write_text("")
    result = runs.run("train.py", args, tmp_path, MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [line for line in result.stdout.splitlines() if "MLflow tracking failed" in line]
    assert len(lines) == 1 and "training goes on without it" in lines[0]
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["mlflow_run_id"] is None and meta["metrics"]["epochs"] == 2
    assert (tmp_path / "model" / "loss_curve.png").is_file()


@pytest.mark.full
def test_a_training_run_is_in_mlflow_with_every_epoch_and_its_files(tmp_path):
    penguins_csv(tmp_path / "penguins.csv")
    args = ["--task", "penguins", "--epochs", "12", "--batch-size", "16", "--precision", "fp32",
            "--data", tmp_path / "penguins.csv", "--model-dir", tmp_path / "model", "--checkpoint-dir", tmp_path / "c"]
    result = runs.run("train.py", args, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run = client.get_run(meta["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.params["epochs"] == "12"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")] == list(range(1, 13))
    assert client.get_metric_history(run.info.run_id, "final_val_accuracy")[0].value == \
        pytest.approx(meta["metrics"]["val_accuracy"])
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"loss_curve.png", "model.json"}
    assert not _tracking_processes_in(tmp_path), "the tracking process outlived the trainer"


def _tracking_processes_in(folder: Path) -> list[int]:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline", "cwd"]):
        if "trainkit.tracking" in " ".join(proc.info.get("cmdline") or []) and proc.info.get("cwd") == str(folder):
            found.append(proc.pid)
    return found


def test_serving_in_process_leaves_the_callers_signals_alone(tmp_path, monkeypatch):
    """Only the tracking process ignores SIGTERM and Ctrl-C: a caller of serve() that did too would
    hand that on to every process it forks (a multiprocessing pool it could then never stop)."""
    import signal

    # Not the default store (./mlflow.db: this test made one in the checkout) nor a new one MLflow
    # would migrate: a store that cannot be opened, which serve() reports when a run starts (none here).
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'a-file' / 'mlflow.db'}")

    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    tracking.serve(_messages({"op": "end"}))
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before
