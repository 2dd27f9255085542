"""Failures made to happen here (generator.py run --preempt, --kill, --hang-timeout): a preempted
node's job is requeued and our trainer resumes from its checkpoint; a killed rank fails the job;
a hung rank is reported with every rank's stacks and nothing is left running."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import yaml

from helpers import runs

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = [sys.executable, str(ROOT / "generator.py")]
SCHEMA = "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"
ENV = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOBGEN_MLFLOW_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return tmp_path


def run(*args, timeout=300) -> tuple[subprocess.CompletedProcess, dict]:
    result = subprocess.run([*GENERATOR, "run", *map(str, args), "--json", "--no-lint"], capture_output=True,
                            text=True, timeout=timeout)
    try:
        summary = json.loads(result.stdout)
    except ValueError:
        raise AssertionError(result.stdout + result.stderr) from None
    return result, summary


def script_job(work: Path, script: str, processes: int = 2, nodes: int = 1) -> Path:
    (work / "src").mkdir(exist_ok=True)
    (work / "src" / "job.py").write_text(script)
    job = {"$schema": SCHEMA, "type": "command", "environment": ENV, "compute": "azureml:cpu", "code": "./src",
           "command": "python job.py", "resources": {"instance_count": nodes},
           "distribution": {"type": "pytorch", "process_count_per_instance": processes}}
    path = work / "job.yml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def penguins_job(work: Path, epochs: int) -> Path:
    """Our trainer on 2 nodes x 1 process (a node per rank keeps the ranks' start-up cost down), its
    checkpoint in an output (as the rendered jobs have it)."""
    import palmerpenguins

    shutil.copyfile(Path(palmerpenguins.__file__).parent / "data" / "penguins.csv", work / "penguins.csv")
    job = {"$schema": SCHEMA, "type": "command", "environment": ENV, "compute": "azureml:cpu",
           "code": str(runs.TRAINER),
           "command": "python train.py --task penguins --data ${{inputs.data}} --epochs ${{inputs.epochs}} "
                      "--batch-size 16 --precision fp32 --model-dir ${{outputs.model_dir}} "
                      "--checkpoint-dir ${{outputs.checkpoint_dir}}",
           "inputs": {"data": {"type": "uri_file", "path": "./penguins.csv"}, "epochs": epochs},
           "outputs": {"model_dir": {"type": "uri_folder"}, "checkpoint_dir": {"type": "uri_folder"}},
           "resources": {"instance_count": 2}, "distribution": {"type": "pytorch", "process_count_per_instance": 1}}
    path = work / "penguins.yml"
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def left_running(marker: str) -> list[str]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(marker in part for part in proc.info["cmdline"] or []):
                found.append(" ".join(proc.info["cmdline"]))
        except psutil.Error:
            pass
    return found


def test_a_preempted_node_requeues_the_job_which_resumes_with_an_uninterrupted_runs_weights(work):
    # An epoch takes about 10 ms here: with 4 epochs a SIGTERM relayed late on a loaded machine arrived
    # after the last one (CI: resumed at epoch 5). 30 epochs leave the signal 0.3 s or more.
    epochs = 30
    job = penguins_job(work, epochs=epochs)
    result, summary = run(job, "--run-dir", work / "preempted", "--preempt", "1@/epoch 1\\//")
    assert result.returncode == 0, result.stdout + result.stderr
    first, second = summary["attempts"]
    assert first["status"] == "Preempted" and "node 1 preempted" in first["message"]
    assert second["status"] == "Completed" and second["resumed"] is True and summary["resumable"] is True
    assert 2 <= second["resumed_at_epoch"] <= epochs  # the epoch after the last checkpoint
    assert "--preempt 1@/epoch 1\\//: node 1 preempted" in result.stderr and "requeued" in result.stderr
    kept = work / "preempted" / "user_logs" / "attempt_1"
    assert sorted(p.name for p in kept.glob("std_log_*")) == [f"std_log_process_{r:02d}.txt" for r in range(2)]
    assert "stopped by SIGTERM" in (kept / "std_log_process_00.txt").read_text()
    assert f"resuming at epoch {second['resumed_at_epoch']}" in (
        work / "preempted" / "user_logs" / "std_log_process_00.txt").read_text()

    result, plain = run(job, "--run-dir", work / "plain")
    assert result.returncode == 0 and "attempts" not in plain
    assert runs.same_weights(work / "preempted" / "outputs" / "model_dir", work / "plain" / "outputs" / "model_dir")


def test_a_job_that_starts_over_after_a_requeue_is_not_resumable(work):
    job = script_job(work, "import os, time\nprint('[train] starting: no checkpoint read', flush=True)\n"
                           "time.sleep(1.5 if os.environ['RANK'] == '0' else 0.2)\n", processes=1, nodes=2)
    result, summary = run(job, "--preempt", "0@/starting/", "--max-requeues", "1")
    assert result.returncode == 0, result.stdout + result.stderr
    assert [a["status"] for a in summary["attempts"]] == ["Preempted", "Completed"]
    assert summary["attempts"][1]["resumed"] is False and summary["resumable"] is False

    result, summary = run(job, "--preempt", "0@/starting/", "--preempt", "1@/starting/", "--max-requeues", "1")
    assert result.returncode == 1 and summary["status"] == "Failed"
    assert "--max-requeues 1 reached" in summary["message"]


@pytest.mark.parametrize("when", ["/ready/", "0"])
def test_a_killed_rank_fails_the_job_and_is_not_requeued(work, when):
    """At 0 s (or at rank 0's line) rank 1 may not have started yet: the kill waits for it."""
    job = script_job(work, "import os, time\nprint('ready', flush=True)\ntime.sleep(60)\n")
    start = time.monotonic()
    result, summary = run(job, "--kill", f"1@{when}")
    assert time.monotonic() - start < 50
    assert result.returncode == 1 and summary["status"] == "Failed" and summary["failed_rank"] == 1
    assert f"killed by --kill 1@{when}" in summary["message"] and "attempts" not in summary
    assert not left_running(str(work / "src")) and not left_running("job.py")


def test_a_hung_rank_is_reported_with_every_ranks_stacks_and_the_job_stopped(work):
    """Rank 1 waits forever and says nothing; rank 0 computes without printing for longer than the
    timeout (busy, not hung), then waits too."""
    job = script_job(work, "import os, threading, time\n"
                           "def wait_forever():\n    threading.Event().wait()\n"
                           "def compute(seconds):\n    end = time.time() + seconds\n"
                           "    while time.time() < end:\n        sum(range(1000))\n"
                           "print('started', flush=True)\n"
                           "if os.environ['RANK'] == '0':\n    compute(6)\n    print('computed', flush=True)\n"
                           "wait_forever()\n")
    start = time.monotonic()
    result, summary = run(job, "--run-dir", work / "r", "--hang-timeout", "4")
    took = time.monotonic() - start
    assert result.returncode == 1 and summary["status"] == "Failed", result.stderr
    assert took < 40, took
    message = summary["message"]
    assert message.startswith("rank(s) 1 hung") and "from wait_forever (job.py:3)" in message, message
    stacks = (work / "r" / "user_logs" / "hang_stacks.txt").read_text()
    assert "===== rank 0 =====" in stacks and "===== rank 1 =====" in stacks
    assert "compute (job.py:6)" in stacks or "compute (job.py:7)" in stacks  # rank 0 was busy: not hung
    assert "hang: rank(s) 1 printed nothing" in result.stderr
    assert re.search(r"rank 1 in \S+ \(threading\.py:\d+\) from wait_forever \(job\.py:3\)", result.stderr)
    assert not left_running("job.py")


@pytest.mark.parametrize("flags,expected", [
    (["--preempt", "one@20"], "--preempt 'one@20' is not [STEP:]NODE@SECONDS or [STEP:]NODE@/REGEX/"),
    (["--kill", "1@soon"], "--kill '1@soon': 'soon' is neither seconds nor /REGEX/"),
    (["--kill", "1@/(/"], "is not a regular expression"),
    (["--preempt", "3@5"], "--preempt 3@5: job has 2 node(s), numbered from 0"),
    (["--preempt", "train:0@5"], "--preempt train:0@5: no step 'train' in this command"),
    (["--hang-timeout", "0"], "--hang-timeout must be positive"),
    (["--max-requeues", "-1"], "--max-requeues must be 0 or more"),
    (["--hang-report-only"], "--hang-report-only needs --hang-timeout"),
])
def test_bad_fault_flags_are_one_line_and_nothing_runs(work, flags, expected):
    job = script_job(work, "open('ran', 'w').write('x')\n", processes=1, nodes=2)
    result = subprocess.run([*GENERATOR, "run", str(job), "--no-lint", "--run-dir", str(work / "r"), *flags],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.stderr, result.stderr
    assert not (work / "r").exists()


def test_without_py_spy_only_a_process_with_a_faulthandler_gets_sigusr1(tmp_path, monkeypatch):
    """SIGUSR1 ends a process that has no handler for it: it is sent only where SigCgt says one is
    installed (our trainer installs faulthandler's), and the stacks land in that process's log."""
    from jobgen.runner import hangs

    monkeypatch.setattr(hangs, "py_spy", lambda: None)
    with_handler = tmp_path / "with.txt"
    code = "import faulthandler, signal, time\n{}\nprint('ready', flush=True)\ntime.sleep(60)\n"
    procs = []
    for log, setup in ((with_handler, "faulthandler.register(signal.SIGUSR1, all_threads=True)"),
                       (tmp_path / "without.txt", "")):
        with open(log, "w") as out:
            procs.append(subprocess.Popen([sys.executable, "-c", code.format(setup)], stdout=out, stderr=out))
    try:
        for log in (with_handler, tmp_path / "without.txt"):
            runs.wait_for(lambda: "ready" in log.read_text(), timeout=30)
        stacks = [hangs.read_stacks([psutil.Process(p.pid)]) for p in procs]
        assert "faulthandler" in stacks[0].text and "could not be read" in stacks[1].text
        runs.wait_for(lambda: "Current thread" in with_handler.read_text() or "Thread 0x" in with_handler.read_text(),
                      timeout=10)
        assert all(p.poll() is None for p in procs), "a process was ended by SIGUSR1"
    finally:
        for p in procs:
            p.kill()
            p.wait()
