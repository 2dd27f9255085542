"""`generator.py run deployment.yml --input PATH`: a batch endpoint's model deployment scored here
as Azure's batch executor scores it (docs: "Author scoring scripts for batch deployments").

- The input (a file, a folder, or a data asset through the local catalog) is the list of its files,
  cut into mini-batches of `settings.mini_batch_size` files.
- `resources.instance_count` x `settings.max_concurrency_per_instance` scoring processes each import
  the scoring script from the code snapshot, call init() once, then run(mini_batch) with a list of
  file paths, with AZUREML_MODEL_DIR (the model's folder), AZUREML_BI_OUTPUT_PATH (the output
  folder) and the deployment's settings.environment_variables set (a top-level
  environment_variables never reaches Azure: azure-ai-ml drops it, lint's JG112).
- A mini-batch whose run() raises, crashes its process or outlives `retry_settings.timeout` is
  retried `retry_settings.max_retries` times (a process that crashed or was stopped for its timeout
  is started again, with init()); then its files count as failed. A run() that returns fewer rows than it was given files counts the
  difference as failed. More failed files than `settings.error_threshold` (-1: no limit) fail the
  job, as in Azure.
- append_row: what run() returned, appended to outputs/score/<output_file_name> (Azure's
  named-outputs/score/predictions.csv: a DataFrame's rows with values separated by spaces, no
  header); here in input order (Azure appends in the order mini-batches finish). summary_only
  writes no file: the script writes its own into AZUREML_BI_OUTPUT_PATH.
- logs/user/<node>/process<NN>.txt per scoring process, logs/job_result.txt at the end.

The model: `azureml:<name>@latest` / `:<version>` from the local catalog (jobs/data.yml, --data
NAME=PATH) when it lists the name, else from the local MLflow registry that the pipeline's register
step writes (runs/mlflow.db); a local `path:` as written.
"""

from __future__ import annotations

import json
import os
import re
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from ..errors import JobgenError
from ..jobsettings import batch_block, batch_problems, batch_settings
from . import rundir
from .catalog import Catalog

WORKER = Path(__file__).with_name("batch_worker.py")
OUTPUT_NAME = "score"  # the batch job's output, as Azure names it (named-outputs/score/)
START_TIMEOUT = 600.0  # init() of one process: loading a large model takes a while


@dataclass(frozen=True)
class Settings:
    """A model deployment's `settings:` and `resources:`, with Azure's defaults."""

    mini_batch_size: int = 10
    max_concurrency_per_instance: int = 1
    instance_count: int = 1
    output_action: str = "append_row"
    output_file_name: str = "predictions.csv"
    error_threshold: int = -1
    max_retries: int = 3
    timeout: float = 30.0

    @property
    def processes(self) -> int:
        return self.instance_count * self.max_concurrency_per_instance


@dataclass
class BatchPlan:
    deployment: str
    endpoint: str
    code: Path
    script: str
    model: Path
    model_ref: str
    input_ref: str
    files: list[Path]
    settings: Settings
    env: dict[str, str]
    run_dir: Path
    mini_batches: list[list[Path]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {"deployment": self.deployment, "endpoint": self.endpoint, "model": self.model_ref,
                "model_dir": str(self.model), "code": str(self.code), "scoring_script": self.script,
                "input": self.input_ref, "files": len(self.files), "mini_batches": len(self.mini_batches),
                "processes": f"{s.instance_count} node(s) x {s.max_concurrency_per_instance}",
                "output": f"outputs/{OUTPUT_NAME}/{s.output_file_name}" if s.output_action == "append_row"
                else "summary_only (the script writes its own files)", "run_dir": str(self.run_dir)}


def settings_of(data: dict, where: str, problems: list[str]) -> Settings:
    """The executor's settings with Azure's defaults; what it cannot run with goes to ``problems``
    (the facts lint's JG111 reports, from jobsettings)."""
    found = batch_problems(data)
    action = str(batch_block(data)[0].get("output_action") or "append_row").lower()
    if action not in ("append_row", "summary_only"):
        found.append((("output_action",), f"output_action '{action}' is not append_row or summary_only", ""))
    problems.extend(f"{where}: {'.'.join(path)}: {message}" + (f" (hint: {hint})" if hint else "")
                    for path, message, hint in found)
    if found:
        return Settings()
    s = batch_settings(data)
    return Settings(mini_batch_size=s["mini_batch_size"], max_concurrency_per_instance=s["max_concurrency_per_instance"],
                    instance_count=s["instance_count"], output_action=s["output_action"],
                    output_file_name=s["output_file_name"], error_threshold=s["error_threshold"],
                    max_retries=s["max_retries"], timeout=s["timeout"])


def input_files(target: Path) -> list[Path]:
    """The files Azure hands out in mini-batches: the file itself, or every file under the
    folder (hidden ones too, as a uri_folder holds them), in path order."""
    if target.is_file():
        return [target]
    return sorted((p for p in target.rglob("*") if p.is_file()), key=lambda p: p.relative_to(target).as_posix())


def registered_model(name: str, version: str | None, where: str) -> Path:
    """A model version of the local MLflow registry (runs/mlflow.db), as a local folder."""
    from urllib.parse import unquote, urlsplit

    from .run import mlflow_store

    try:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise JobgenError(f"model '{name}' is not in the local data catalog, and MLflow (to read the local model "
                          "registry) is not installed", where=where,
                          hint=f"pip install -e '.[train]' (make does), or pass --data {name}=MODEL_DIR") from None
    uri = mlflow_store()

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException:
        versions = []
    if not versions:
        raise JobgenError(f"model '{name}' is neither in the local data catalog nor registered in {uri}", where=where,
                          hint=f"run the pipeline that registers it (make demo registers penguins-mlp), or pass "
                               f"--data {name}=MODEL_DIR (export_onnx.py's output)")
    chosen = max(versions, key=lambda v: int(v.version)) if version in (None, "latest") else \
        next((v for v in versions if str(v.version) == str(version)), None)
    if chosen is None:
        known = ", ".join(sorted((str(v.version) for v in versions), key=int))
        raise JobgenError(f"model '{name}' has no version {version} in {uri}", where=where,
                          hint=f"registered versions: {known}")
    source = client.get_model_version_download_uri(name, chosen.version)
    parts = urlsplit(source)
    local = Path(unquote(parts.path)) if parts.scheme in ("", "file") else None
    if local is None or not local.is_dir():
        import mlflow

        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=source, tracking_uri=uri))
    return local


def resolve_model(ref: Any, base: Path, catalog: Catalog, where: str) -> tuple[Path, str]:
    """(the model's local folder, how it was named)."""
    from .catalog import _REF, _REGISTRY

    if isinstance(ref, dict):
        if ref.get("path"):  # an inline model: registered at deployment as <name>, version 1
            return _local(base, str(ref["path"]), where), f"{ref.get('name') or 'model'}:{ref.get('version') or 1} " \
                f"from {ref['path']}"
        ref = f"azureml:{ref.get('name')}" + (f":{ref['version']}" if ref.get("version") else "@latest")
    text = str(ref or "")
    if not text:
        raise JobgenError("the deployment names no model", where=where, hint="add model: azureml:<name>@latest")
    match = _REF.match(text) or _REGISTRY.match(text)
    if match is None:
        return _local(base, text.removeprefix("file:"), where), text
    name = match.group("name")
    if name in catalog.entries or name in catalog.overrides:
        return catalog.resolve(text, where), text
    groups = match.groupdict()
    return registered_model(name, groups.get("version") or groups.get("v") or groups.get("label"), where), text


def _local(base: Path, text: str, where: str) -> Path:
    path = (base / text).resolve()
    if not path.exists():
        raise JobgenError(f"model path '{text}' does not exist", where=where,
                          hint="fix model.path (relative to the YAML file) or reference a registered model")
    return path


def resolve_input(given: str | None, catalog: Catalog, where: str) -> tuple[Path, str]:
    from .catalog import REMOTE

    if not given:
        raise JobgenError("a batch deployment scores an input: none was given", where=where,
                          hint="pass --input FOLDER_OR_FILE (or --input azureml:<data asset>@latest)")
    if given.startswith("azureml:") or REMOTE.match(given):
        return catalog.resolve(given, "--input"), given
    path = Path(given).expanduser()
    if not path.exists():
        raise JobgenError(f"input '{given}' does not exist", where="--input",
                          hint="give a local folder or file, or a data asset (azureml:<name>@latest)")
    return path.resolve(), given


def plan(path: Path, data: dict, catalog: Catalog, given_input: str | None, run_dir: Path) -> BatchPlan:
    """The whole run before anything starts, or every problem at once (Refused)."""
    from .run import Refused

    where = paths.display(path)
    base = path.parent
    problems: list[str] = []
    if str(data.get("type") or "model").lower() != "model":
        raise JobgenError(f"cannot run a {data.get('type')} batch deployment here", where=where,
                          hint="a pipeline component deployment runs as its pipeline: generator.py run the "
                               "pipeline job YAML")
    settings = settings_of(data, where, problems)
    config = data.get("code_configuration") if isinstance(data.get("code_configuration"), dict) else {}
    code = (base / str(config.get("code") or ".")).resolve()
    script = str(config.get("scoring_script") or "")
    if not config or not script:
        problems.append(f"{where}: no code_configuration.scoring_script (an MLflow model's generated scorer does not "
                        "run here): add code_configuration with code and scoring_script")
    elif not (code / script).is_file():
        problems.append(f"{where}: scoring script '{script}' is not in {paths.display(code)}")
    model, model_ref, files, input_ref = Path(), "", [], ""
    try:
        target, input_ref = resolve_input(given_input, catalog, where)
        files = input_files(target)
        if not files:
            problems.append(f"--input {given_input}: the folder holds no files to score")
    except JobgenError as exc:
        problems.append(exc.line())
    try:  # after the input: the local registry's lookup imports MLflow, which takes a while
        model, model_ref = resolve_model(data.get("model"), base, catalog, f"{where}: model")
    except JobgenError as exc:
        problems.append(exc.line())
    env = {} if problems else batch_settings(data)["environment_variables"]  # what azure-ai-ml sends
    if problems:
        raise Refused(problems)
    size = settings.mini_batch_size
    batches = [files[i:i + size] for i in range(0, len(files), size)]
    return BatchPlan(str(data.get("name") or path.stem), str(data.get("endpoint_name") or "?"), code, script, model,
                     model_ref, input_ref, files, settings, env, run_dir, batches)


# ------------------------------------------------------------------ running

class _Worker:
    """One scoring process (node `node`, process `index` on it), started under the runner's guard
    (guard.py): what the script starts is ended with it, and everything ends when the runner dies."""

    def __init__(self, plan: BatchPlan, node: int, index: int, env: dict[str, str], stopping: threading.Event):
        self.plan, self.node, self.index, self.env, self.stopping = plan, node, index, env, stopping
        self.proc: subprocess.Popen | None = None
        self.lock = threading.Lock()
        self.log = plan.run_dir / "logs" / "user" / f"node-{node}" / f"process{index:02d}.txt"

    def start(self) -> None:
        from .launch import GUARD, lifeline

        self.log.parent.mkdir(parents=True, exist_ok=True)
        code = self.plan.run_dir / "code"
        fd = lifeline()
        with self.lock:
            if self.stopping.is_set():
                raise JobgenError("the job is stopping", where=paths.display(self.log))
            self.proc = subprocess.Popen(
                [sys.executable, "-S", "-E", str(GUARD), str(fd), "--", sys.executable, str(WORKER), str(self.log),
                 str(code / self.plan.script)], cwd=code, env=self.env, stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, text=True, bufsize=1, start_new_session=True, pass_fds=(fd,))
        answer = self.receive(START_TIMEOUT)
        if answer is None or "init_error" in answer:
            ended = self.proc.poll() is not None
            self.stop()
            detail = answer["init_error"] if answer else "its process ended" if ended else \
                f"it did not finish within {START_TIMEOUT:g} s"
            raise JobgenError(f"init() of the scoring script failed: {detail}", where=paths.display(self.log),
                              hint="its output and traceback are in this log; fix the script or the model folder")

    def receive(self, timeout: float) -> dict | None:
        """The worker's next answer, or None when it ended (then it is waited for) or stayed silent
        ``timeout`` seconds. It writes each answer as one line at once, so a begun line arrives whole."""
        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        try:
            answer = json.loads(line) if line else None
        except ValueError:  # cut short: the process died while writing
            answer = None
        if answer is None:
            try:
                self.proc.wait(timeout=10)  # the pipe closed: the process is ending
            except subprocess.TimeoutExpired:
                pass
        return answer

    def score(self, number: int, files: list[Path]) -> dict:
        """One mini-batch: {"lines", "returned"} or {"error"} (a crash and a timeout are errors)."""
        assert self.proc is not None and self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps({"id": number, "files": [str(f) for f in files]}) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError):
            return {"error": "the scoring process had ended"}
        answer = self.receive(self.plan.settings.timeout)
        if answer is None:
            ended = self.proc.poll() is not None
            self.stop()
            return {"error": f"the scoring process ended (exit {self.proc.returncode})" if ended else
                    f"run() took longer than retry_settings.timeout ({self.plan.settings.timeout:g} s)"}
        return answer

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to the guard (it passes it on to everything under it), SIGKILL after ``grace``."""
        with self.lock:
            proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        try:
            proc.terminate()
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            proc.wait()

    def close(self) -> None:
        if self.alive:
            try:
                self.proc.stdin.close()  # the worker's loop ends and calls shutdown()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.stop()


@dataclass
class Outcome:
    lines: dict[int, list[str]] = field(default_factory=dict)
    failed_files: int = 0
    failed_batches: list[tuple[int, str]] = field(default_factory=list)
    retries: int = 0
    rows: int = 0


def model_mount(plan: BatchPlan) -> Path:
    """AZUREML_MODEL_DIR as a deployment sees it: .../azureml-models/<name>/<version>/ holding the
    registered folder (or file) under its own name, so that a script written as the docs write it
    (os.path.join(os.environ["AZUREML_MODEL_DIR"], "model")) finds it. A model from the local MLflow
    registry is its logged "model" folder (MLflow keeps it as .../artifacts)."""
    from .catalog import _REF, _REGISTRY

    inline = re.match(r"^(?P<name>[^:\s]+):(?P<version>\S+) from ", plan.model_ref)
    match = inline or _REF.match(plan.model_ref) or _REGISTRY.match(plan.model_ref)
    groups = match.groupdict() if match else {}
    name = groups.get("name") or "model"
    version = groups.get("version") or groups.get("v") or "1"
    folder = plan.run_dir / "azureml-models" / name / version
    folder.mkdir(parents=True, exist_ok=True)
    link = folder / ("model" if plan.model.name == "artifacts" else plan.model.name)
    if not link.is_symlink():
        link.symlink_to(plan.model, target_is_directory=plan.model.is_dir())
    return folder


def _environment(plan: BatchPlan) -> dict[str, str]:
    from .launch import clean_environment

    env = clean_environment()
    env.update(plan.env)
    code = str(plan.run_dir / "code")
    env.update({"AZUREML_MODEL_DIR": str(model_mount(plan)), "AZUREML_BI_OUTPUT_PATH": str(output_dir(plan)),
                "PYTHONPATH": code + os.pathsep + env.get("PYTHONPATH", ""), "PYTHONUNBUFFERED": "1"})
    return env


def output_dir(plan: BatchPlan) -> Path:
    return plan.run_dir / "outputs" / OUTPUT_NAME


def execute(plan: BatchPlan, say) -> Outcome:
    """Every mini-batch through the pool of scoring processes; stops early when the failed files
    pass the error threshold, when a process's init() fails, or on Ctrl-C / SIGTERM (the processes
    are stopped, none is started again)."""
    env = _environment(plan)
    s = plan.settings
    queue = list(enumerate(plan.mini_batches, 1))
    outcome, lock, stop = Outcome(), threading.Lock(), threading.Event()
    errors: list[BaseException] = []
    done = [0]

    def next_batch():
        with lock:
            return queue.pop(0) if queue and not stop.is_set() else None

    def started(worker: _Worker) -> bool:
        """(Re)start a scoring process; an init() that fails stops the whole job, as in Azure."""
        try:
            worker.start()
            return True
        except JobgenError as exc:
            if not stop.is_set():
                errors.append(exc)
            stop.set()
            return False

    def finish(number: int, files: list[Path], answer: dict) -> None:
        with lock:
            done[0] += len(files)
            if "error" in answer:
                outcome.failed_files += len(files)
                outcome.failed_batches.append((number, answer["error"]))
            else:
                outcome.lines[number] = answer["lines"]
                outcome.rows += len(answer["lines"])
                outcome.failed_files += max(0, len(files) - int(answer["returned"]))
            if 0 <= s.error_threshold < outcome.failed_files:
                stop.set()
            say(f"[batch] mini-batch {number}/{len(plan.mini_batches)} "
                f"{'failed' if 'error' in answer else 'done'}: {done[0]}/{len(plan.files)} files")

    def work(worker: _Worker) -> None:
        try:
            if not started(worker):
                return
            while (item := next_batch()) is not None:
                number, files = item
                for attempt in range(s.max_retries + 1):
                    answer = worker.score(number, files)
                    if "error" not in answer or stop.is_set():
                        break
                    if not worker.alive and not started(worker):
                        return
                    if attempt < s.max_retries:
                        with lock:
                            outcome.retries += 1
                        say(f"[batch] mini-batch {number}: {answer['error']}; retry {attempt + 1} of {s.max_retries}")
                if not stop.is_set() or "error" not in answer:
                    finish(number, files, answer)
        except BaseException as exc:  # noqa: BLE001 - a bug here must not pass for a completed job
            errors.append(exc)
            stop.set()
        finally:
            worker.close()

    workers = [_Worker(plan, node, index, env, stop) for node in range(s.instance_count)
               for index in range(s.max_concurrency_per_instance)]
    threads = [threading.Thread(target=work, args=(w,), daemon=True) for w in workers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    except KeyboardInterrupt:
        stop.set()
        for w in workers:
            w.stop(grace=2.0)
        for t in threads:
            t.join(timeout=10)
        raise
    if errors:
        raise errors[0]
    missing = len(plan.mini_batches) - len(outcome.lines) - len(outcome.failed_batches)
    if missing and not stop.is_set():  # pragma: no cover - every mini-batch ends done or failed
        raise RuntimeError(f"{missing} mini-batch(es) neither scored nor failed")
    return outcome


def write_outputs(plan: BatchPlan, outcome: Outcome) -> Path | None:
    folder = output_dir(plan)
    folder.mkdir(parents=True, exist_ok=True)
    if plan.settings.output_action != "append_row":
        return None
    target = folder / plan.settings.output_file_name
    tmp = target.with_name(target.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as f:
        for number in sorted(outcome.lines):
            for line in outcome.lines[number]:
                f.write(line + "\n")
    os.replace(tmp, target)
    return target


def summary(plan: BatchPlan, outcome: Outcome, status: str, seconds: float, written: Path | None) -> dict[str, Any]:
    return {"status": status, "deployment": plan.deployment, "files": len(plan.files),
            "mini_batches": len(plan.mini_batches), "failed_files": outcome.failed_files,
            "failed_mini_batches": [{"mini_batch": n, "error": e} for n, e in outcome.failed_batches],
            "retries": outcome.retries, "rows": outcome.rows, "seconds": round(seconds, 2),
            "output": str(written) if written else None, "run_dir": str(plan.run_dir)}


def run(path: Path, batch_plan: BatchPlan, options) -> int:
    """Claim the run folder, snapshot the code, score, write the output file and the summary."""
    run_dir = batch_plan.run_dir
    quiet, as_json = options.quiet, options.json

    def say(text: str) -> None:
        if not quiet:
            print(text, file=sys.stderr if as_json else sys.stdout, flush=True)

    if options.dry_run:
        print(json.dumps(batch_plan.describe(), indent=2))
        return 0
    rundir.claim(run_dir, path)
    lock = rundir.Lock(run_dir).acquire()
    try:
        return _score(batch_plan, say, as_json)
    finally:
        lock.release()


def _score(batch_plan: BatchPlan, say, as_json: bool) -> int:
    from .snapshot import snapshot

    run_dir = batch_plan.run_dir
    snapshot(batch_plan.code, run_dir / "code")
    s = batch_plan.settings
    say(f"[batch] {batch_plan.deployment}: {len(batch_plan.files)} file(s) in {len(batch_plan.mini_batches)} "
        f"mini-batch(es) of {s.mini_batch_size}, {s.instance_count} node(s) x {s.max_concurrency_per_instance} "
        f"scoring process(es); model {batch_plan.model_ref}")
    start = time.monotonic()
    (run_dir / "logs").mkdir(parents=True, exist_ok=True)
    try:
        outcome = execute(batch_plan, say)
    except (JobgenError, KeyboardInterrupt) as exc:  # init() failed, or Ctrl-C: the job ends, its summary says so
        status = "Canceled" if isinstance(exc, KeyboardInterrupt) else "Failed"
        result = summary(batch_plan, Outcome(), status, time.monotonic() - start, None)
        result["message"] = "stopped (Ctrl-C)" if status == "Canceled" else exc.line()
        (run_dir / "logs" / "job_result.txt").write_text(json.dumps(result, indent=2) + "\n")
        if status == "Canceled":
            raise
        if as_json:
            print(json.dumps(result, indent=2))
            return 1
        raise
    over = 0 <= s.error_threshold < outcome.failed_files
    status = "Failed" if over else "Completed"
    written = write_outputs(batch_plan, outcome)
    result = summary(batch_plan, outcome, status, time.monotonic() - start, written)
    (run_dir / "logs" / "job_result.txt").write_text(json.dumps(result, indent=2) + "\n")
    line = (f"{status}: {len(batch_plan.files)} file(s), {outcome.rows} row(s)" +
            (f" in {paths.display(written)}" if written else "") +
            (f"; {outcome.failed_files} file(s) failed" if outcome.failed_files else "") +
            (f" (above error_threshold {s.error_threshold})" if over else "") + f" ({result['seconds']:.1f} s)")
    if as_json:
        print(json.dumps(result, indent=2))
    else:
        print(line, flush=True)
        for number, error in outcome.failed_batches[:5]:
            print(f"  mini-batch {number}: {error}")
    return 1 if over else 0
