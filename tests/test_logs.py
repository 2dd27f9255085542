"""generator.py logs RUN_DIR: every rank's log merged in the order written, [node/rank] prefixes,
the first failure and its traceback first, --rank, --grep, --follow; pipelines prefix the step."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = [sys.executable, str(ROOT / "generator.py")]
SCHEMA = "https://azuremlschemas.azureedge.net/latest/"
ENV = "azureml://registries/azureml/environments/sklearn-1.5/labels/latest"

# Ranks take turns (each waits for the file of the one before): the order written is known.
TURNS = """import os, sys, time
from pathlib import Path
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
turns = Path(sys.argv[1])
for turn in range(2):
    mine = turn * world + rank
    while mine and not (turns / str(mine - 1)).exists():
        time.sleep(0.02)
    print(f"turn {mine} from rank {rank}", flush=True)
    time.sleep(0.15)  # the runner reads it (every 50 ms) before the next rank writes
    (turns / str(mine)).touch()
if rank == 2:
    time.sleep(0.5)  # after rank 3's last turn
    raise RuntimeError("rank 2 broke after its turns")
"""


@pytest.fixture
def work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JOBGEN_MLFLOW_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    return tmp_path


def job(work: Path, script: str, command: str, nodes: int = 2, per_node: int = 2) -> Path:
    (work / "src").mkdir(exist_ok=True)
    (work / "src" / "job.py").write_text(script)
    path = work / "job.yml"
    path.write_text(yaml.safe_dump({
        "$schema": f"{SCHEMA}commandJob.schema.json", "type": "command", "environment": ENV, "compute": "azureml:cpu",
        "code": "./src", "command": command, "resources": {"instance_count": nodes},
        "distribution": {"type": "pytorch", "process_count_per_instance": per_node}}, sort_keys=False))
    return path


def logs(*args) -> subprocess.CompletedProcess:
    return subprocess.run([*GENERATOR, "logs", *map(str, args)], capture_output=True, text=True, timeout=60)


@pytest.fixture
def failed_run(work):
    (work / "turns").mkdir()
    path = job(work, TURNS, f"python job.py {work / 'turns'}")
    result = subprocess.run([*GENERATOR, "run", str(path), "--no-lint", "-q", "--run-dir", str(work / "r")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    return work / "r"


def test_every_ranks_log_merged_in_the_order_written_led_by_the_first_failure(failed_run):
    result = logs(failed_run)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "first failure: rank 2 (node 1) failed first, exit code 1"
    assert any("RuntimeError: rank 2 broke after its turns" in line for line in lines[1:12])
    merged = lines[lines.index("--- every rank's log, in the order written ---") + 1:]
    turns = [line for line in merged if " turn " in line]
    assert turns == [f"[{r // 2}/{r:02d}] turn {t} from rank {r}" for t in range(8) for r in [t % 4]]
    assert merged[-1].startswith("[1/02] RuntimeError")


def test_rank_and_grep_narrow_the_merge(failed_run):
    only = logs(failed_run, "--rank", "1,3").stdout.split("in the order written ---\n")[1].splitlines()
    assert only == ["[0/01] turn 1 from rank 1", "[1/03] turn 3 from rank 3", "[0/01] turn 5 from rank 1",
                    "[1/03] turn 7 from rank 3"]
    grepped = logs(failed_run, "--grep", r"turn [67] ").stdout.split("in the order written ---\n")[1].splitlines()
    assert grepped == ["[1/02] turn 6 from rank 2", "[1/03] turn 7 from rank 3"]
    bad = logs(failed_run, "--grep", "(")
    assert bad.returncode == 1 and "--grep '(' is not a regular expression" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_pipeline_steps_are_named_in_the_prefix(work):
    (work / "src").mkdir()
    (work / "src" / "say.py").write_text("import os, sys\nprint('hello from', sys.argv[1], os.environ.get('RANK'))\n")
    step = {"type": "command", "code": "./src", "environment": ENV, "command": "python say.py {}"}
    pipeline = work / "pipeline.yml"
    pipeline.write_text(yaml.safe_dump({
        "$schema": f"{SCHEMA}pipelineJob.schema.json", "type": "pipeline", "settings": {"default_compute": "azureml:cpu"},
        "jobs": {"first": dict(step, command="python say.py first"),
                 "second": dict(step, command="python say.py second", resources={"instance_count": 2},
                                distribution={"type": "pytorch", "process_count_per_instance": 1})}}, sort_keys=False))
    result = subprocess.run([*GENERATOR, "run", str(pipeline), "--no-lint", "-q", "--run-dir", str(work / "p")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    shown = logs(work / "p").stdout.splitlines()
    assert "[first 0/00] hello from first None" in shown
    assert "[second 0/00] hello from second 0" in shown and "[second 1/01] hello from second 1" in shown
    assert not any(line.startswith("first failure") for line in shown)


def test_follow_prints_what_a_running_job_writes_until_it_ends(work):
    path = job(work, "import os, time\nfor i in range(6):\n    print('tick', i, flush=True)\n    time.sleep(0.5)\n",
               "python job.py", nodes=1, per_node=1)
    runner = subprocess.Popen([*GENERATOR, "run", str(path), "--no-lint", "-q", "--run-dir", str(work / "f")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        log = work / "f" / "user_logs" / "std_log_process_00.txt"
        while not (log.exists() and "tick 1" in log.read_text()) and time.monotonic() < deadline:
            time.sleep(0.1)
        followed = subprocess.run([*GENERATOR, "logs", str(work / "f"), "--follow"], capture_output=True, text=True,
                                  timeout=60)
        assert runner.wait(timeout=60) == 0
    finally:
        runner.kill()
    assert followed.returncode == 0, followed.stderr
    assert [line for line in followed.stdout.splitlines() if "tick" in line] == [f"[0/00] tick {i}" for i in range(6)]


def test_a_folder_that_is_not_a_run_is_one_clear_line(work):
    for target, text in ((work / "nowhere", "no such run folder"), (work, "no user_logs/ in this folder")):
        result = logs(target)
        assert result.returncode == 1 and text in result.stderr and len(result.stderr.strip().splitlines()) == 1
