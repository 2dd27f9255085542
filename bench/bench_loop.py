"""The local loop in seconds: what a user waits for, each figure against its floor or budget, all
measured in one run (interleaved, median of --runs) since this machine is shared and noisy.

- `generator.py run jobs/penguins-single/job.yml` end to end, against `python -c "import torch"`
  (the floor: every training process pays it). Budget 5 s. Beside it `import torch, torch._dynamo`,
  what the trainer cannot avoid importing (torch.optim's optimizers import dynamo in their
  constructor and first step, whatever the switches), and the run's seconds above that: the
  runner, the data, 60 epochs, the tracking process's end.
- `generator.py lint FILE` of one unchanged file (azure-ai-ml's verdict from lint's cache), and the
  first lint of it (`--no-cache`). Budget 1 s for the unchanged file.
- with --demo: the demo pipeline (2 x 2 penguins training, ONNX export, registration), as
  `make demo` runs it after set-up. Budget 25 s.

    python bench/bench_loop.py [--runs 3] [--demo] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from bench_runner import timed  # (cmd, cwd, env) -> seconds; exits with the output when cmd fails

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = [sys.executable, str(ROOT / "generator.py")]


def main() -> int:
    # This sandbox turns bytecode caching off for every process, which would make each start
    # recompile jobgen and the trainer; users' machines cache it. Measure what users get.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--demo", action="store_true", help="also time the demo pipeline (about 30 s a run)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    data = ROOT / "data" / "penguins.csv"
    if not data.is_file():
        raise SystemExit(f"{data} is missing: run `make data/penguins.csv` (make demo does) first")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, OMP_NUM_THREADS="1", JOBGEN_MLFLOW_URI=f"sqlite:///{tmp / 'mlflow.db'}",
                   JOBGEN_LINT_CACHE=str(tmp / "lint-cache"))
        job = ROOT / "jobs" / "penguins-single" / "job.yml"
        floor = [sys.executable, "-c", "import torch"]
        imports = [sys.executable, "-c", "import torch, torch._dynamo"]
        run = [*GENERATOR, "run", str(job), "-q"]
        lint = [*GENERATOR, "lint", str(job), "-q"]
        first_lint = [*lint, "--no-cache"]
        demo_job = tmp / "demo"
        render_demo = [*GENERATOR, "-f", str(ROOT / "jobs/penguins-pipeline/values.yaml"), "--nodes", "2",
                       "--gpus", "2", "-o", str(demo_job)]
        if args.demo:
            timed(render_demo, tmp, env)
        demo = [*GENERATOR, "run", str(demo_job / "pipeline.yml"), "-q", "--catalog", str(ROOT / "jobs" / "data.yml")]
        timed(run, tmp, env)  # warm: the MLflow store, the file cache, the lint cache
        timed(lint, tmp, env)
        times: dict[str, list[float]] = {"floor": [], "imports": [], "run": [], "lint": [], "first_lint": [], "demo": []}
        for _ in range(args.runs):
            times["floor"].append(timed(floor, tmp, env))
            times["imports"].append(timed(imports, tmp, env))
            times["run"].append(timed(run, tmp, env))
            times["lint"].append(timed(lint, tmp, env))
            times["first_lint"].append(timed(first_lint, tmp, env))
            if args.demo:
                times["demo"].append(timed(demo, tmp, env))
        shutil.rmtree(tmp / "runs", ignore_errors=True)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    rows = [
        ("python -c 'import torch' (the floor)", med["floor"], ""),
        ("generator.py run jobs/penguins-single/job.yml", med["run"], "<= 5"),
        ("  run / floor", med["run"] / med["floor"], ""),
        ("python -c 'import torch, torch._dynamo' (the trainer's imports)", med["imports"], ""),
        ("  run - the trainer's imports", med["run"] - med["imports"], ""),
        ("generator.py lint FILE, unchanged (cached verdict)", med["lint"], "<= 1"),
        ("generator.py lint FILE --no-cache (first lint)", med["first_lint"], ""),
    ]
    if "demo" in med:
        rows.append(("demo pipeline run (2 x 2 train, export, register)", med["demo"], "<= 25"))
    print(f"{'figure (median of ' + str(args.runs) + ')':<64} {'value':>8}  budget")
    for name, value, budget in rows:
        print(f"{name:<64} {value:8.2f}  {budget}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"median_s": med, "runs": times}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
