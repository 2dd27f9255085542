"""How the local runner does on the official examples' jobs (tests/corpus/azureml-examples).

Every valid command, pipeline and sweep job of the corpus index is planned (`run --dry-run`);
the refusals are counted by cause. With --run, the planned ones are also run (each in its own
run folder under --work, with a time limit) and counted by status. Not a test: the figures
depend on what this machine has installed (julia, R, ...), and the corpus holds placeholders
for the examples' code and data.

    python bench/corpus_jobs.py [--run] [--timeout 150] [--work /tmp/corpus-jobs] [--json FILE]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "corpus" / "azureml-examples"
JOB_KINDS = ("command_job", "pipeline_job", "sweep_job")


def jobs() -> list[str]:
    index = yaml.safe_load((CORPUS / "INDEX.yaml").read_text())
    return [f["path"] for f in index["files"] if f["valid"] and f["kind"] in JOB_KINDS]


def generator(args: list[str], work: Path, timeout: float) -> dict:
    env = {**os.environ, "JOBGEN_MLFLOW_URI": f"sqlite:///{work / 'mlflow.db'}"}
    try:
        result = subprocess.run([sys.executable, str(ROOT / "generator.py"), "run", *args, "--json"],
                                capture_output=True, text=True, cwd=work, env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "Hung"}
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        return {"status": "Crashed", "message": (result.stderr or result.stdout)[-300:]}


def cause(problem: str) -> str:
    """A refusal without its file names, assets and paths, so that alike ones count together."""
    text = re.sub(r"^(?:inputs|outputs)\.\S+: ", "", problem.split(": ", 2)[-1])
    text = re.sub(r"'[^']*'|\S+\.ya?ml|/\S+|azureml:\S+|[a-z]+://\S+", "X", text)
    return text.split(" (hint")[0].split("; it runs")[0][:100]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", action="store_true", help="also run the jobs that are planned")
    parser.add_argument("--timeout", type=float, default=150, help="time limit per run, seconds")
    parser.add_argument("--work", type=Path, help="where run folders go (default: a temporary folder)")
    parser.add_argument("--json", type=Path, help="write every job's result here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="corpus-jobs-"))
    work.mkdir(parents=True, exist_ok=True)
    planned, refused, causes, results = [], [], collections.Counter(), {}
    for path in jobs():
        body = generator([str(CORPUS / path), "--dry-run", "--run-dir", str(work / "plan")], work, 120)
        results[path] = {"plan": body.get("status"), "problems": body.get("problems", [])}
        (planned if body.get("status") == "Planned" else refused).append(path)
        for problem in set(map(cause, body.get("problems", []))):
            causes[problem] += 1
    total = len(planned) + len(refused)
    print(f"{total} jobs: {len(planned)} planned as they are, {len(refused)} refused before anything starts")
    print("refusals by cause (jobs):")
    for text, count in causes.most_common():
        print(f"  {count:3d}  {text}")
    if args.run:
        statuses = collections.Counter()
        for number, path in enumerate(planned):
            body = generator([str(CORPUS / path), "--no-lint", "--timeout", f"{args.timeout:g}",
                              "--run-dir", str(work / f"run{number:03d}")], work, args.timeout + 240)
            statuses[body.get("status")] += 1
            results[path].update(run=body.get("status"), message=body.get("message"))
            print(f"  {body.get('status'):<10} {path}  {body.get('message') or ''}", flush=True)
        print("planned jobs run: " + ", ".join(f"{n} {s}" for s, n in statuses.most_common()))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    print(f"run folders: {work}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
