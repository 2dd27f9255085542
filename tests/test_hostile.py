"""Hostile input and hard faults: YAML that explodes, files that never end, paths that the shell
would interpret, a runner killed hard, a job that leaves processes behind. Each probe is
bounded (memory, time) and stays on this machine."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = [sys.executable, str(ROOT / "generator.py")]
MEMORY_CAP = 3 * 1024 ** 3  # address space for one probe: a bomb must be refused long before this


def billion_laughs() -> str:
    text = "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    for i in range(1, 9):
        previous = "a" if i == 1 else f"l{i - 1}"
        text += f"l{i}: &l{i} [" + ", ".join([f"*{previous}"] * 9) + "]\n"
    return text


def capped(*args, cwd=None, timeout=120) -> subprocess.CompletedProcess:
    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))

    return subprocess.run([*GENERATOR, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit, cwd=cwd)


def refused(result: subprocess.CompletedProcess, text: str) -> None:
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "Traceback" not in out and "MemoryError" not in out and "RecursionError" not in out, out
    assert text in out, out


@pytest.mark.parametrize("name,content,expected", [
    ("lol.yml", billion_laughs(), "YAML expands to more than 200000 values"),
    ("deep.yml", "$schema: x\njobs: " + "[" * 900 + "]" * 900 + "\n", "nested more than 64 levels deep"),
    ("deep_block.yml", "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v\n",
     "nested more than 64 levels deep"),
])
def test_yaml_that_explodes_is_one_line_for_lint_render_and_run(tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_text(content)
    refused(capped("lint", path, "--no-azure"), expected)
    refused(capped("-f", path, "-o", tmp_path / "out"), expected)
    refused(capped("run", path, "--run-dir", tmp_path / "r"), expected)
    assert not (tmp_path / "out").exists() and not (tmp_path / "r").exists()


def test_devices_and_fifos_are_refused_without_reading(tmp_path):
    fifo = tmp_path / "job.yml"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    for args in (["lint", fifo], ["lint", "/dev/zero"], ["-f", fifo, "-o", tmp_path / "out"],
                 ["-f", "/dev/zero", "-o", tmp_path / "out"], ["run", fifo], ["submit", "/dev/zero", "--dry-run"]):
        refused(capped(*args, timeout=60), "is not a regular file (a device, FIFO or socket)")
    link = tmp_path / "values.yaml"
    link.symlink_to("/dev/zero")
    refused(capped("-f", link, "-o", tmp_path / "out", timeout=60), "is not a regular file")
    assert not (tmp_path / "out").exists()


def test_a_lint_folder_with_a_fifo_named_yml_does_not_hang(tmp_path):
    (tmp_path / "job.yml").write_text("$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
                                      "type: command\ncommand: echo hi\nenvironment: azureml:env@latest\n"
                                      "compute: azureml:cpu\n")
    os.mkfifo(tmp_path / "stuck.yml")
    result = capped("lint", tmp_path, "--no-azure", timeout=60)
    refused(result, "stuck.yml:1: error: is not a regular file")


# ------------------------------------------------------------------ paths pasted into commands

COPY = '''import argparse, os, pathlib
p = argparse.ArgumentParser()
p.add_argument("--file")
p.add_argument("--folder")
p.add_argument("--out", required=True)
a = p.parse_args()
parts = []
if a.file:
    parts.append(pathlib.Path(a.file).read_text().strip())
if a.folder:
    parts.append(",".join(sorted(os.listdir(a.folder))))
pathlib.Path(a.out, "result.txt").write_text("|".join(parts))
print("copied", parts, flush=True)
'''
# `;`, `$( )`, backticks, spaces and a newline at once, in every path the runner binds
EVIL = "x;touch PWNED; $(touch PWNED) `touch PWNED`\ntouch PWNED"


def _component(folder: Path, name: str, command: str, inputs: dict) -> None:
    import yaml

    (folder / f"{name}.yml").write_text(yaml.safe_dump({
        "$schema": "https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json", "name": name,
        "version": "1", "type": "command", "code": "./code", "environment": "azureml:env@latest",
        "inputs": inputs, "outputs": {"out": {"type": "uri_folder"}}, "command": command}))


@pytest.mark.full
def test_paths_with_shell_characters_are_bound_safely(tmp_path):
    """The run folder, a data file, a data folder and a step's output, each with `;`, `$( )`,
    backticks, a space or a newline in its path: the command runs, nothing else does."""
    import json

    import yaml

    evil = EVIL
    jobs = tmp_path / "jobs"
    (jobs / "code").mkdir(parents=True)
    (jobs / "code" / "copy.py").write_text(COPY)
    data = tmp_path / f"data {evil}"
    data.mkdir()
    (data / f"table {evil}.csv").write_text("a,b\n")
    (data / "folder").mkdir()
    (data / "folder" / "part-0.csv").write_text("x")
    _component(jobs, "first", "python copy.py --file ${{inputs.table}} --folder ${{inputs.parts}} "
               "--out ${{outputs.out}}", {"table": {"type": "uri_file"}, "parts": {"type": "uri_folder"}})
    _component(jobs, "second", "python copy.py --folder ${{inputs.previous}} --out ${{outputs.out}}",
               {"previous": {"type": "uri_folder"}})
    pipeline = jobs / "pipeline.yml"
    pipeline.write_text(yaml.safe_dump({
        "$schema": "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json", "type": "pipeline",
        "inputs": {"table": {"type": "uri_file", "path": "azureml:table@latest"},
                   "parts": {"type": "uri_folder", "path": str(data / "folder")}},
        "outputs": {"final": {"type": "uri_folder"}},
        "jobs": {"one": {"component": "./first.yml", "inputs": {"table": "${{parent.inputs.table}}",
                                                                 "parts": "${{parent.inputs.parts}}"}},
                 "two": {"component": "./second.yml", "inputs": {"previous": "${{parent.jobs.one.outputs.out}}"},
                         "outputs": {"out": "${{parent.outputs.final}}"}}}}, sort_keys=False))
    run_dir = tmp_path / f"run {evil}"
    env = dict(os.environ, JOBGEN_MLFLOW_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
    result = subprocess.run([*GENERATOR, "run", str(pipeline), "--run-dir", str(run_dir), "--no-lint", "--json",
                             "--data", f"table={data / f'table {evil}.csv'}"], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not list(tmp_path.rglob("PWNED")) and not Path("PWNED").exists()
    summary = json.loads(result.stdout)
    assert Path(summary["run_dir"]) == run_dir
    assert (run_dir / "one" / "outputs" / "out" / "result.txt").read_text() == "a,b|part-0.csv"
    assert (run_dir / "outputs" / "final" / "result.txt").read_text() == "result.txt"
    commands = [(run_dir / step / "command.txt").read_text() for step in ("one", "two")]
    assert all(evil not in c for c in commands), commands
    assert not list(Path(tempfile_dir(), "jobgen-runs").glob("run-*")), "the run folder's alias outlived the run"


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


# ------------------------------------------------------------------ nothing outlives a run

DAEMON = '''import os, sys, time
if os.fork():
    sys.exit(0)
os.setsid()
if os.fork():
    sys.exit(0)
time.sleep(300)
'''
SLEEPER = '''import sys, time
print("started", flush=True)
time.sleep(300)
'''


def _probe_job(folder: Path, command: str, **fields) -> Path:
    import yaml

    code = folder / "code"
    code.mkdir(exist_ok=True)
    (code / "daemon.py").write_text(DAEMON)
    (code / "sleeper.py").write_text(SLEEPER)
    spec = {"$schema": "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json", "type": "command",
            "code": "./code", "command": command, "environment": "azureml:env@latest", "compute": "azureml:cpu"}
    spec.update(fields)
    path = folder / "job.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _alive(marker: str) -> list:
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if marker in " ".join(proc.info["cmdline"] or []) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except psutil.Error:
            pass
    return found


def _gone(marker: str, within: float) -> bool:
    import time

    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not _alive(marker):
            return True
        time.sleep(0.1)
    for proc in _alive(marker):  # leave nothing behind for the next test
        proc.kill()
    return False


@pytest.mark.full
@pytest.mark.parametrize("sig", ["SIGKILL", "SIGHUP"])
def test_the_ranks_and_their_children_die_with_the_runner(tmp_path, sig):
    import signal
    import time
    import uuid

    marker = f"probe-{uuid.uuid4().hex[:12]}"
    path = _probe_job(tmp_path, f"python -c 'import time; time.sleep(300)' {marker} & python sleeper.py {marker}",
                      distribution={"type": "pytorch", "process_count_per_instance": 2})
    runner = subprocess.Popen([*GENERATOR, "run", str(path), "--run-dir", str(tmp_path / "r"), "--no-lint", "-q"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
                              env=dict(os.environ, JOBGEN_MLFLOW_URI=f"sqlite:///{tmp_path / 'm.db'}"))
    logs = [tmp_path / "r" / "user_logs" / f"std_log_process_{rank:02d}.txt" for rank in (0, 1)]
    deadline = time.monotonic() + 60
    while not all(log.exists() and "started" in log.read_text() for log in logs):
        assert time.monotonic() < deadline and runner.poll() is None, "the job did not start"
        time.sleep(0.05)
    assert len(_alive(marker)) >= 4  # two ranks, each with a background child
    runner.send_signal(getattr(signal, sig))
    runner.wait(timeout=30)
    assert _gone(marker, within=10), f"processes of the job outlived the runner ({sig})"


@pytest.mark.full
def test_a_job_s_background_processes_and_daemons_end_with_it(tmp_path):
    import uuid

    marker = f"probe-{uuid.uuid4().hex[:12]}"
    path = _probe_job(tmp_path, f"python -c 'import time; time.sleep(300)' {marker} & python daemon.py {marker}; "
                      "echo job done")
    result = subprocess.run([*GENERATOR, "run", str(path), "--run-dir", str(tmp_path / "r"), "--no-lint", "-q"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path,
                            env=dict(os.environ, JOBGEN_MLFLOW_URI=f"sqlite:///{tmp_path / 'm.db'}"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "job done" in (tmp_path / "r" / "user_logs" / "std_log_process_00.txt").read_text()
    assert _gone(marker, within=1), "a background process or a daemon outlived its job"
