"""Nothing of the user's is lost: the runner deletes only inside its own run folders and refuses a
busy one, the code snapshot never copies what lies outside the code folder, a full disk ends a
run Failed with a summary that says why, log tailing stays small whatever a job prints, and
render never writes over files it did not render."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
import yaml

from helpers import mounts

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = [sys.executable, str(ROOT / "generator.py")]
SCHEMA = "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json"
SECRET = "root:$6$not-really-a-shadow-file"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """jobs/myjob/job.yml with its code in jobs/myjob/code (a common Azure ML layout)."""
    code = tmp_path / "jobs" / "myjob" / "code"
    code.mkdir(parents=True)
    (code / "hello.py").write_text("print('hello from the job', flush=True)\n")
    (code / "sleep.py").write_text("import sys, time\nprint('sleeper started', flush=True)\n"
                                   "time.sleep(float(sys.argv[1]))\nprint('sleeper done', flush=True)\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOBGEN_MLFLOW_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def job(project: Path, command: str = "python hello.py", **fields) -> Path:
    spec = {"$schema": SCHEMA, "type": "command", "code": "./code", "command": command,
            "environment": "azureml:env@latest", "compute": "azureml:cpu"}
    spec.update(fields)
    path = project / "jobs" / "myjob" / "job.yml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def generator(*args, timeout=180, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*GENERATOR, *map(str, args)], capture_output=True, text=True, timeout=timeout, **kwargs)


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# ------------------------------------------------------------------ run folders

@pytest.mark.full
def test_a_folder_the_runner_did_not_make_is_refused_and_left_as_it_was(project):
    """--run-dir at the job's own folder used to delete its code/ (the user's training code)."""
    path = job(project)
    before = tree(path.parent)
    line = one_error_line(generator("run", path, "--run-dir", path.parent, "--no-lint"))
    assert "was not made by 'generator.py run'" in line and "hint:" in line
    assert tree(path.parent) == before


@pytest.mark.full
def test_a_run_folder_is_reused_by_later_runs(project):
    path = job(project)
    for _ in range(2):
        result = generator("run", path, "--run-dir", "r", "--no-lint", "-q")
        assert result.returncode == 0, result.stdout + result.stderr
    assert "hello from the job" in (project / "r" / "user_logs" / "std_log_process_00.txt").read_text()
    assert json.loads((project / "r" / "summary.json").read_text())["status"] == "Completed"


@pytest.mark.full
def test_a_second_run_in_a_busy_run_folder_is_refused_naming_the_first(project):
    """The second run used to replace the first one's code and logs; the first then failed."""
    path = job(project, command="python sleep.py 4")
    first = subprocess.Popen([*GENERATOR, "run", str(path), "--run-dir", "r", "--no-lint", "-q"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    log = project / "r" / "user_logs" / "std_log_process_00.txt"
    deadline = time.monotonic() + 60
    while not (log.exists() and "sleeper started" in log.read_text()):
        assert time.monotonic() < deadline and first.poll() is None, "the first run did not start"
        time.sleep(0.05)
    line = one_error_line(generator("run", path, "--run-dir", "r", "--no-lint"))
    assert "in use by another run" in line and f"process {first.pid}" in line
    out, err = first.communicate(timeout=60)
    assert first.returncode == 0, out + err
    assert "sleeper done" in log.read_text() and (project / "r" / "code" / "sleep.py").is_file()


# ------------------------------------------------------------------ the code snapshot and links

@pytest.mark.full
def test_links_out_of_the_code_folder_are_never_copied_and_lint_reports_them(project):
    code = project / "jobs" / "myjob" / "code"
    outside = project / "outside"
    outside.mkdir()
    (outside / "shadow").write_text(SECRET)
    (code / "etc").symlink_to(outside, target_is_directory=True)
    (code / "gone.py").symlink_to(project / "nothing.py")
    path = job(project)
    line = one_error_line(generator("run", path, "--run-dir", "r", "--no-lint"))
    assert "etc links to" in line and "outside the code folder" in line and "(and 1 more)" in line
    assert "nothing was copied" in line
    copied = [p for p in (project / "r").rglob("*") if p.is_file() and SECRET in p.read_text(errors="replace")]
    assert not copied
    assert not (project / "r" / "code").exists()
    lint = generator("lint", path, "--no-azure")
    assert lint.returncode == 1
    errors = [line for line in lint.stdout.splitlines() if ": error: " in line]
    assert any("etc links to" in e and "outside the code folder" in e for e in errors), lint.stdout
    assert any("gone.py links to" in e and "nowhere" in e for e in errors), lint.stdout
    assert SECRET not in lint.stdout + lint.stderr


@pytest.mark.full
def test_links_inside_the_code_folder_are_followed_as_azure_uploads_them(project):
    from azure.ai.ml._utils._asset_utils import get_upload_files_from_folder

    code = project / "jobs" / "myjob" / "code"
    (code / "lib").mkdir()
    (code / "lib" / "util.py").write_text("VALUE = 7\n")
    (code / "alias").symlink_to("lib", target_is_directory=True)
    (code / "util_link.py").symlink_to("lib/util.py")
    path = job(project)
    result = generator("run", path, "--run-dir", "r", "-q", "--no-lint")  # the snapshot is the subject
    assert result.returncode == 0, result.stdout + result.stderr
    snap = project / "r" / "code"
    copied = {str(p.relative_to(snap)) for p in snap.rglob("*") if p.is_file()}
    uploaded = {relative for _, relative in get_upload_files_from_folder(code)}
    assert copied == uploaded
    assert not (snap / "alias").is_symlink() and (snap / "alias" / "util.py").read_text() == "VALUE = 7\n"


@pytest.mark.full
def test_a_linked_folder_that_holds_its_own_link_is_refused(project):
    (project / "jobs" / "myjob" / "code" / "loop").symlink_to(".", target_is_directory=True)
    line = one_error_line(generator("run", job(project), "--run-dir", "r", "--no-lint"))
    assert "loop links to ." in line and "holds the link itself" in line


# ------------------------------------------------------------------ full disks

needs_mounts = pytest.mark.skipif(not mounts.available(), reason="unshare -Urm (user and mount namespaces) "
                                  "is not allowed here, so no small file system can be made for the test")


def _run_on_small_disk(project: Path, path: Path, size: str) -> tuple[subprocess.CompletedProcess, dict, str]:
    folder = project / "small"
    folder.mkdir()
    command = " ".join(shlex.quote(a) for a in [*GENERATOR, "run", str(path), "--run-dir", str(folder), "--json",
                                                "--no-lint"])
    script = (f"{command}; echo \"rc=$?\"; echo '=== summary'; cat {folder}/summary.json; "
              f"echo '=== files'; ls -A {folder}; for f in {folder}/run.json; do echo '=== run'; cat $f; done")
    result = mounts.run(script, [(folder, f"size={size}")], cwd=project)
    parts = result.stdout.split("=== ")
    summary = json.loads(parts[1].split("\n", 1)[1])
    return result, summary, result.stdout


@pytest.mark.full
@needs_mounts
def test_a_full_disk_during_the_snapshot_ends_the_run_failed_with_a_summary(project):
    (project / "jobs" / "myjob" / "code" / "weights.bin").write_bytes(b"\0" * 3_000_000)
    result, summary, stdout = _run_on_small_disk(project, job(project), "1m")
    assert "rc=1" in stdout and "Traceback" not in result.stderr, result.stderr
    assert summary["status"] == "Failed"
    assert "cannot copy the code snapshot" in summary["message"] and "No space left on device" in summary["message"]
    files = stdout.split("=== files")[1].split("===")[0].split()
    assert "code" not in files  # the half copy is removed


@pytest.mark.full
@needs_mounts
def test_a_job_that_fills_the_disk_still_gets_its_records(project):
    path = job(project, command="head -c 3000000 /dev/zero > ${{outputs.out}}/big; echo done",
               outputs={"out": {"type": "uri_folder"}})
    result, summary, stdout = _run_on_small_disk(project, path, "1m")
    assert "rc=1" in stdout and "Traceback" not in result.stderr, result.stderr
    assert summary["status"] == "Failed" and "disk is full" in summary["message"]
    record = json.loads(stdout.split("=== run")[1].split("\n", 1)[1])
    assert record["status"] == "Failed"


# ------------------------------------------------------------------ log tailing

def test_log_tailing_reads_each_byte_once_and_keeps_little_of_a_long_line(tmp_path):
    """A progress bar that never ends its line: the runner used to re-read the whole line every
    50 ms and hold all of it (a 100 MB line took it to 700 MiB)."""
    from jobgen.runner.launch import Launch, Proc

    lines: list[str] = []
    launch = Launch(name="t", command="", cwd=tmp_path, env={}, logs=tmp_path, instance_count=1,
                    distribution=None, on_line=lambda proc, line: lines.append(line), on_state=lambda proc: None)
    proc = Proc(0, 0, 0, tmp_path / "std_log_process_00.txt")
    tracemalloc.start()
    with open(proc.log, "wb") as fh:
        for _ in range(30):
            fh.write(b"#" * 1_000_000)
            fh.flush()
            launch._tail(proc)
        fh.write(b"\r10/10 done\nlast words")
        fh.flush()
        launch._tail(proc, final=True)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert proc.offset == proc.log.stat().st_size  # every byte read, once
    assert peak < 4_000_000, f"{peak} bytes held while tailing a 30 MB line"
    assert len(lines) == 3 and lines[0].endswith("[line cut at 16 KiB]") and len(lines[0]) < 20_000
    assert lines[1:] == ["10/10 done", "last words"]
    assert proc.last_line == "last words"


# ------------------------------------------------------------------ render writes only its own files

def _files(folder: Path) -> dict[str, bytes]:
    return tree(folder) if folder.exists() else {}


def test_render_never_overwrites_a_file_it_did_not_render(cli, checkout, tmp_path):
    """-o jobs used to overwrite the hand-written jobs/data.yml (the local data catalog)."""
    out = checkout / "jobs"
    before = _files(out)
    rc, stdout, stderr = cli("render", "-o", out)
    assert rc == 1 and len(stderr.splitlines()) == 1, stderr
    assert "data.yml: exists and was not written by jobgen" in stderr and "hint:" in stderr
    assert _files(out) == before


def test_render_into_a_job_definition_from_other_values_is_refused(cli, checkout):
    """-o jobs/<definition> used to replace its files and delete its pipeline.yml."""
    folder = checkout / "jobs" / "penguins-pipeline"
    before = _files(folder)
    rc, stdout, stderr = cli("render", "-o", folder)
    assert rc == 1 and len(stderr.splitlines()) == 1, stderr
    assert "holds the job definition" in stderr and "values.yaml" in stderr
    assert _files(folder) == before
    rc, stdout, stderr = cli("render", "-f", folder / "values.yaml", "-o", folder)
    assert rc == 0, stderr
    assert _files(folder) == before


def test_another_render_leaves_the_files_of_other_values_alone(cli, checkout, tmp_path):
    out = tmp_path / "out"
    assert cli("render", "-f", checkout / "jobs" / "penguins-pipeline" / "values.yaml", "-o", out)[0] == 0
    assert (out / "pipeline.yml").is_file()
    assert cli("render", "-o", out)[0] == 0
    assert (out / "job.yml").is_file() and (out / "pipeline.yml").is_file()


def test_a_folder_where_a_file_goes_stops_the_render_before_anything_is_written(cli, checkout, tmp_path):
    out = tmp_path / "out"
    (out / "job.yml").mkdir(parents=True)
    rc, stdout, stderr = cli("render", "-o", out)
    assert rc == 1 and len(stderr.splitlines()) == 1, stderr
    assert "job.yml: a folder is where this file would be written" in stderr
    assert sorted(p.name for p in out.iterdir()) == ["job.yml"] and not list((out / "job.yml").iterdir())


@needs_mounts
def test_a_read_only_output_folder_is_one_line(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    command = " ".join(shlex.quote(a) for a in [*GENERATOR, "render", "-o", str(out), "--no-lint"])
    result = mounts.run(f"{command}; echo \"rc=$?\"; ls -A {out}", [(out, "ro")], cwd=tmp_path)
    lines = result.stderr.splitlines()
    assert "rc=1" in result.stdout and len(lines) == 1, result.stdout + result.stderr
    assert "cannot write to output folder: Read-only file system" in lines[0] and "Traceback" not in result.stderr
    assert result.stdout.strip().splitlines()[-1] == "rc=1"  # nothing listed in the folder


@needs_mounts
def test_rendering_into_a_mount_point_writes_every_file(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    command = " ".join(shlex.quote(a) for a in [*GENERATOR, "render", "-o", str(out), "-q", "--no-lint"])
    result = mounts.run(f"{command}; echo \"rc=$?\"; ls {out}", [(out, "size=4m")], cwd=tmp_path)
    assert "rc=0" in result.stdout, result.stdout + result.stderr
    listed = result.stdout.split("rc=0", 1)[1].split()
    assert {"job.yml", "compute.yml", "environment.yml", "conda.yaml", "data.yml"} <= set(listed)
    assert not [name for name in listed if name.startswith(".")]


# ------------------------------------------------------------------ literals that reach a shell

@pytest.mark.full
def test_run_refuses_pipeline_and_sweep_literals_the_shell_would_execute(project):
    """Command jobs were refused; the same values in a pipeline or a sweep were executed."""
    jobs = project / "jobs" / "myjob"
    pipeline = jobs / "pipeline.yml"
    pipeline.write_text(yaml.safe_dump({
        "$schema": "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json", "type": "pipeline",
        "inputs": {"text": "hi; touch PWNED"},
        "jobs": {"say": {"type": "command", "command": "echo ${{inputs.text}}", "environment": "azureml:env@latest",
                         "inputs": {"text": "${{parent.inputs.text}}"}}}}, sort_keys=False))
    sweep = jobs / "sweep.yml"
    sweep.write_text(yaml.safe_dump({
        "$schema": "https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json", "type": "sweep",
        "compute": "azureml:cpu", "sampling_algorithm": "grid",
        "search_space": {"word": {"type": "choice", "values": ["a", "b && touch PWNED"]}},
        "objective": {"goal": "maximize", "primary_metric": "m"}, "limits": {"max_total_trials": 2},
        "inputs": {"word": "${{search_space.word}}"},
        "trial": {"code": "./code", "command": "python hello.py ${{inputs.word}}",
                  "environment": "azureml:env@latest"}}, sort_keys=False))
    for path in (pipeline, sweep):
        result = generator("run", path, "--run-dir", project / f"r-{path.stem}")
        assert one_error_line(result).endswith("(hint: fix them, or pass --no-lint to run anyway)")
        assert "no process was started" in result.stderr and "characters the shell interprets" in result.stderr
    assert not list(project.rglob("PWNED"))
