"""Runner overhead: a 2 nodes x 2 processes job whose processes do nothing, run by
`generator.py run`, against the same four processes started directly with torchrun, measured
side by side (interleaved) in one run. Budget: the runner at most 1.2x torchrun.

    python bench/bench_runner.py [--runs 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def timed(cmd: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    return elapsed


def main() -> int:
    # Python caches bytecode by default; this sandbox turns that off for every process, which would
    # make each "cold" start recompile the sources. Measure what users get.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "src").mkdir()
        (tmp / "src" / "noop.py").write_text("pass\n")
        (tmp / "job.yml").write_text(
            "$schema: https://azuremlschemas.azureedge.net/latest/commandJob.schema.json\n"
            "type: command\ncode: src\ncommand: python noop.py\nenvironment: azureml:env@latest\n"
            "compute: azureml:cpu\nresources:\n  instance_count: 2\n"
            "distribution:\n  type: pytorch\n  process_count_per_instance: 2\n")
        env = dict(os.environ, OMP_NUM_THREADS="1", JOBGEN_MLFLOW_URI=f"sqlite:///{tmp / 'mlflow.db'}")
        runner = [sys.executable, str(ROOT / "generator.py"), "run", "job.yml", "-q"]
        direct = [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "4", "src/noop.py"]
        timed(runner, tmp, env)  # warm the file cache for both
        timed(direct, tmp, env)
        r, d = [], []
        for _ in range(args.runs):
            d.append(timed(direct, tmp, env))
            r.append(timed(runner, tmp, env))
    runner_s, direct_s = statistics.median(r), statistics.median(d)
    ratio = runner_s / direct_s
    print(f"{'figure':<66} {'seconds':>8}")
    print(f"{'generator.py run, 2 x 2 no-op job (lint, snapshot, 4 processes)':<66} {runner_s:8.3f}")
    print(f"{'torchrun --nproc_per_node 4, the same no-op processes':<66} {direct_s:8.3f}")
    print(f"{'runner / torchrun (budget 1.2)':<66} {ratio:8.2f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"runner_s": runner_s, "torchrun_s": direct_s, "ratio": ratio,
                                         "budget": 1.2}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
