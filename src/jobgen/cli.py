"""Command line: ``python generator.py [render] [options]``, ``generator.py lint PATH...``.

User errors print one line per problem on stderr (what, where, how to fix) and exit 1;
usage errors exit 2. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from . import __version__, paths
from .errors import JobgenError, LintFailed

COMMANDS = ("render", "lint", "run", "logs", "services", "submit", "download", "serve")

EPILOG_RENDER = """\
examples:
  python generator.py --nodes 2 --gpus 4            render the default job into rendered/
  python generator.py -f jobs/penguins-mpi/values.yaml -o /tmp/out
  python generator.py --set inputs.epochs=5 --set cluster.tier=low_priority
  python generator.py render --all                  re-render every jobs/*/values.yaml
  python generator.py render --check                CI: exit 1 with a diff when committed YAML drifted
then:
  az ml job create -f rendered/job.yml              (after az ml compute/environment/data create -f ...)
"""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"error: {message} (hint: see '{self.prog} --help')\n")
        raise SystemExit(2)


def _render_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "render", help="render a job from values (the default command)", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Render Azure ML v2 YAML (command job, compute cluster, environment, data asset) from "
                    "templates/defaults.yaml, values files and flags, lint it, and write it atomically.",
        epilog=EPILOG_RENDER)
    values = p.add_argument_group("values (later wins: defaults < -f files < flags < --set)")
    values.add_argument("-f", "--values", action="append", default=[], metavar="FILE", type=Path,
                        help="values file (YAML, same shape as templates/defaults.yaml); repeatable")
    values.add_argument("--set", action="append", default=[], metavar="PATH=VALUE", dest="sets",
                        help="override one value; job paths as for 'az ml job create --set' "
                             "(resources.instance_count=2, inputs.epochs=5), or cluster./env./data./launcher. paths")
    short = p.add_argument_group("shortcuts")
    short.add_argument("--nodes", metavar="N", help="nodes (resources.instance_count)")
    short.add_argument("--gpus", metavar="P", help="processes per node, one per GPU (default: the VM size's GPUs)")
    short.add_argument("--distribution", metavar="KIND", help="pytorch | mpi | none")
    short.add_argument("--launcher", metavar="KIND", help="per-process (Azure starts P processes per node) | "
                       "torchrun (Azure starts one torchrun per node)")
    short.add_argument("--compute", metavar="NAME", help="compute cluster name (job.compute, cluster.name)")
    short.add_argument("--vm-size", metavar="SIZE", help="cluster VM size, e.g. Standard_NC24ads_A100_v4 (with "
                       "--serverless: the VM size of each node)")
    short.add_argument("--serverless", action="store_true", help="no cluster: Azure starts VMs of --vm-size for the "
                       "job and bills only while it runs (job.compute: serverless)")
    short.add_argument("--tier", choices=("spot", "basic", "standard", "premium", "dedicated", "low_priority"),
                       help="serverless: the job's queue tier (queue_settings.job_tier; spot is preemptible and "
                       "cheapest); a cluster: its VMs' tier (cluster.tier: dedicated or low_priority)")
    short.add_argument("--environment", metavar="REF", help="environment reference: azureml:<name>@latest, "
                       "azureml:<name>:<version> or azureml://registries/...; default: the one rendered from env:")
    short.add_argument("--experiment", metavar="NAME", help="experiment name")
    short.add_argument("--registry", metavar="NAME", help="an endpoint's model (and registry.environment) from this "
                       "Azure ML registry: azureml://registries/NAME/models/<name>/versions/<v> (registry.name)")
    out = p.add_argument_group("output")
    out.add_argument("-o", "--output", metavar="DIR", type=Path, help="output folder (default: rendered/)")
    out.add_argument("--no-lint", action="store_true", help="skip lint (faster; the spec is still validated)")
    out.add_argument("--all", action="store_true", help="render every job definition (jobs/*/values.yaml) in place")
    out.add_argument("--check", action="store_true", help="re-render every definition in memory and exit 1 with a "
                     "unified diff if committed files differ (writes nothing)")
    out.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    return p



def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="generator.py", description="Render, lint, run and submit Azure ML v2 jobs for "
                     "distributed PyTorch training. Without a command, 'render' is assumed.",
                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG_RENDER)
    parser.add_argument("--version", action="version", version=f"jobgen {__version__}")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    _render_parser(sub)
    lint = sub.add_parser("lint", help="check Azure ML YAML files or folders",
                          description="Check jobs, components, pipelines, sweeps, environments, computes and data "
                          "assets (rendered or hand-written): our strict checks, then azure-ai-ml's. Prints "
                          "path:line: error|warning: message (hint: ...). Exit 0 without errors, 1 with.")
    lint.add_argument("paths", nargs="*", type=Path, metavar="PATH")
    lint.add_argument("--no-azure", action="store_true", help="skip azure-ai-ml's second opinion (faster)")
    lint.add_argument("--no-cache", action="store_true",
                      help="judge every file with azure-ai-ml again instead of reusing its verdict on files that "
                           "did not change (kept in ~/.cache/jobgen/lint; JOBGEN_LINT_CACHE=off does the same)")
    lint.add_argument("--disable", action="append", default=[], metavar="ID[,ID]",
                      help="silence a rule (repeatable); in a file, a '# jobgen: disable=ID' comment does the same "
                           "(on its own line: the whole file; at the end of a line: that line)")
    lint.add_argument("--list-rules", action="store_true", help="print every rule: its ID, severity and summary")
    lint.add_argument("--strict", action="store_true", help="treat warnings as errors")
    lint.add_argument("-q", "--quiet", action="store_true", help="print only problems")
    run = sub.add_parser("run", help="run a command, pipeline or sweep job (or score with a batch deployment) here, "
                         "as Azure ML would",
                         formatter_class=argparse.RawDescriptionHelpFormatter,
                         description="Run a rendered (or hand-written) Azure ML job on this machine: N simulated "
                         "nodes x P processes with Azure's variables (pytorch), Open MPI's mpirun (mpi), pipelines "
                         "step by step, sweeps trial by trial. No cloud, no Docker, no GPU.",
                         epilog="run folder: code/ (the snapshot the job runs from), outputs/<name>/, "
                         "user_logs/std_log_process_NN.txt (NN = global rank), one sub-folder per pipeline step or "
                         "sweep trial.\nMLflow: runs/mlflow.db (mlflow ui --backend-store-uri sqlite:///runs/mlflow.db)."
                         "\nData: azureml:<name>@latest resolves through jobs/data.yml or --data NAME=PATH."
                         "\nBatch deployment: run deployment.yml --input FOLDER|FILE scores it in mini-batches with "
                         "its scoring script; rows in outputs/score/predictions.csv, as Azure writes them.")
    run.add_argument("job", type=Path, metavar="JOB.yml")
    run.add_argument("--run-dir", type=Path, help="run folder (default runs/<job name>-<timestamp>/); running again "
                     "in the same folder resumes from the outputs a job left (its checkpoints)")
    run.add_argument("--set", action="append", default=[], dest="sets", metavar="PATH=VALUE",
                     help="override a value of the job YAML, as az ml job create --set does")
    run.add_argument("--data", action="append", default=[], metavar="NAME=PATH",
                     help="local path for data asset NAME (azureml:NAME@latest / azureml:NAME:<version>) or for a "
                          "remote URI (azureml://datastores/..., https://...)")
    run.add_argument("--component", action="append", default=[], dest="components", metavar="NAME=PATH",
                     help="local YAML file for registered component NAME (azureml:NAME:<version>, azureml:NAME@latest, "
                          "azureml://registries/.../components/NAME)")
    run.add_argument("--input", metavar="PATH|azureml:NAME@latest",
                     help="a batch deployment: the folder or file to score (a data asset through the catalog); the "
                          "model comes from the catalog or the local MLflow registry that the pipeline's register "
                          "step writes")
    run.add_argument("--catalog", type=Path, help="local data catalog (default: jobs/data.yml found upward)")
    run.add_argument("--dry-run", action="store_true", help="print the plan (every unit, its command, inputs and "
                     "outputs) and start nothing")
    run.add_argument("--env", choices=("layer", "venv"), default="layer",
                     help="layer (default): the job runs with this machine's Python packages and installs into a "
                          "layer in its run folder; venv: also install what its environment's conda file lists "
                          "(cached by content)")
    run.add_argument("--timeout", type=float, metavar="S", help="end the job after S seconds (with limits.timeout, "
                     "the smaller wins)")
    run.add_argument("--no-lint", action="store_true", help="run without linting the job first")
    run.add_argument("-q", "--quiet", action="store_true", help="print only the summary (CI)")
    run.add_argument("--json", action="store_true", help="print one JSON object at the end (progress goes to stderr)")
    faults = run.add_argument_group("failures (what Azure does to distributed jobs, made to happen here)")
    faults.add_argument("--preempt", action="append", default=[], metavar="[STEP:]NODE@WHEN",
                        help="preempt a node as a low-priority eviction does: SIGTERM to its processes, SIGKILL "
                             "after 30 s, the other nodes stopped, then the job requeued from the start with the "
                             "same outputs. WHEN: seconds after the start (1@20) or /REGEX/ matched by a log line "
                             "(1@/epoch 2\\//). Repeat it to preempt the 2nd attempt too")
    faults.add_argument("--kill", action="append", default=[], metavar="[STEP:]RANK@WHEN",
                        help="SIGKILL one rank (a crash, an out-of-memory kill): the job fails and is not requeued")
    faults.add_argument("--max-requeues", type=int, default=None, metavar="N",
                        help="requeue a preempted job at most N times (default 3; Azure documents no number)")
    faults.add_argument("--hang-timeout", type=float, metavar="S",
                        help="a rank that prints nothing and uses no CPU for S seconds is hung: every rank's Python "
                             "stacks go to user_logs/hang_stacks.txt, a summary is printed, the job is stopped")
    faults.add_argument("--hang-report-only", action="store_true",
                        help="with --hang-timeout: report a hang and let the job go on")

    def workspace_flags(p: argparse.ArgumentParser) -> None:
        g = p.add_argument_group("workspace (default: config.json found upward, or AZURE_SUBSCRIPTION_ID, "
                                 "AZURE_RESOURCE_GROUP, AZUREML_WORKSPACE_NAME)")
        g.add_argument("--workspace-config", type=Path, metavar="PATH", help="config.json of the workspace")
        g.add_argument("--subscription", metavar="ID")
        g.add_argument("--resource-group", metavar="RG")
        g.add_argument("--workspace", metavar="NAME")

    submit = sub.add_parser("submit", help="submit a job (or create an environment, compute, data asset, component, "
                            "endpoint, deployment) with MLClient", formatter_class=argparse.RawDescriptionHelpFormatter,
                            description="Submit with azure-ai-ml's MLClient. Credentials come from azure-identity's "
                            "DefaultAzureCredential (az login, environment variables, managed identity, ...).",
                            epilog="examples:\n  python generator.py submit jobs/penguins-pipeline/pipeline.yml "
                            "--ensure-compute --stream\n  python generator.py submit rendered/job.yml --dry-run\n"
                            "  python generator.py submit rendered/environment.yml")
    submit.add_argument("file", type=Path, metavar="FILE.yml", nargs="?",
                        help="the YAML to submit (not with --promote)")
    submit.add_argument("--set", action="append", default=[], dest="sets", metavar="PATH=VALUE",
                        help="override a value, as az ml job create --set")
    workspace_flags(submit)
    submit.add_argument("--ensure-compute", action="store_true",
                        help="create the job's cluster from the compute YAML beside it when it does not exist")
    submit.add_argument("--stream", action="store_true", help="follow the logs; exit 0 only when the job completes")
    submit.add_argument("--retry", type=int, default=0, metavar="N",
                        help="with --stream: resubmit a failed job up to N times when its failure is recoverable "
                             "(preempted, node failure, NCCL/gloo timeout, capacity), with its outputs pinned to the "
                             "first attempt's so that training resumes from its checkpoint; user errors, out of "
                             "memory and quota are never retried")
    submit.add_argument("--fallback-compute", metavar="NAME",
                        help="with --retry: after a preemption, resubmit on this (dedicated) compute")
    submit.add_argument("--fallback-tier", choices=("basic", "standard", "premium"),
                        help="with --retry, for a serverless job in the spot tier: after a preemption, resubmit in "
                             "this tier (not preemptible), e.g. standard")
    submit.add_argument("--no-preflight", action="store_true",
                        help="skip the pre-flight checks (quota of the size's VM family, the cluster's max nodes, "
                             "processes vs GPUs, InfiniBand) asked of the workspace before anything is uploaded")
    submit.add_argument("--dry-run", action="store_true", help="print the REST body the SDK would send; no network")
    submit.add_argument("--traffic", type=int, metavar="PCT", help="online deployments: route PCT%% of the "
                        "endpoint's traffic to it")
    submit.add_argument("--invoke", metavar="DATA", help="a batch endpoint (endpoint.yml): score DATA with it instead "
                        "of creating it - a local folder or file (uploaded first), a data asset azureml:NAME@latest, "
                        "or a datastore URI; prints the scoring job's name (--stream follows it)")
    submit.add_argument("--deployment", metavar="NAME", help="with --invoke: this deployment instead of the "
                        "endpoint's default")
    submit.add_argument("--set-default", action="store_true", help="a batch deployment: make it its endpoint's "
                        "default deployment (what --invoke uses without --deployment)")
    submit.add_argument("--disable", action="store_true", help="a schedule: disable it (it stays, and submitting "
                        "it again enables it)")
    registry = submit.add_argument_group("registries (assets shared by workspaces)")
    registry.add_argument("--registry", metavar="NAME", help="create the environment or component in this Azure ML "
                          "registry instead of the workspace (MLClient(registry_name=NAME)); with --promote: the "
                          "registry to copy the model into")
    registry.add_argument("--promote", metavar="MODEL:VERSION", help="copy a registered model version of the "
                          "workspace into --registry (models.share); prints its azureml://registries/... reference")
    submit.add_argument("--no-lint", action="store_true", help="submit without linting first")
    submit.add_argument("--json", action="store_true", help="print one JSON object")
    logs = sub.add_parser("logs", help="every rank's log of a run, merged in time order, the first failure first",
                          formatter_class=argparse.RawDescriptionHelpFormatter,
                          description="Merge user_logs/std_log_process_NN.txt of every rank (and every pipeline step "
                          "or sweep trial) in the order the lines were written, each prefixed [node/rank], led by "
                          "the first failure and its traceback. az ml job stream shows process 0 only.",
                          epilog="examples:\n  python generator.py logs runs/penguins-mlp-ddp-20261202-101500\n"
                          "  python generator.py logs RUN_DIR --rank 3 --grep 'Error|Traceback'\n"
                          "  python generator.py logs RUN_DIR --follow      (while generator.py run is going)")
    logs.add_argument("run", metavar="RUN_DIR|JOB_NAME", help="a run folder of generator.py run, or the name of a "
                      "job in the workspace (its every rank's user_logs are downloaded with MLClient)")
    logs.add_argument("--rank", action="append", default=[], metavar="N[,N]",
                      help="only these global ranks (repeatable)")
    logs.add_argument("--grep", metavar="REGEX", help="only lines that match (Python regular expression)")
    logs.add_argument("-f", "--follow", action="store_true", help="then print new lines as they are written, "
                      "until the run ends (Ctrl-C stops); for a workspace job: wait until it ends, then show them")
    workspace_flags(logs)
    services = sub.add_parser("services", help="a running workspace job's interactive services, node by node",
                              description="The endpoints of a job's JupyterLab, VS Code, TensorBoard and SSH "
                              "services on each of its nodes (the services: section of the values), read with "
                              "MLClient (jobs.show_services). Azure lists a node's services once the job runs there.")
    services.add_argument("job_name", metavar="JOB_NAME")
    workspace_flags(services)
    download = sub.add_parser("download", help="download a job's outputs")
    download.add_argument("job_name", metavar="JOB_NAME")
    download.add_argument("--output", metavar="NAME", help="one named output (default: all)")
    download.add_argument("-o", "--output-dir", type=Path, default=Path("downloads"), metavar="DIR",
                          help="where to put them (default downloads/<job name>/)")
    workspace_flags(download)
    serve = sub.add_parser("serve", help="serve an exported model locally under azureml-inference-server-http",
                           description="Run src/trainer/score.py under azureml-inference-server-http (the server "
                           "of Azure's managed online endpoints) on 127.0.0.1. POST JSON to /score.")
    serve.add_argument("model_dir", type=Path, metavar="MODEL_DIR", help="export_onnx.py's output folder")
    serve.add_argument("--port", type=int, default=5001)
    serve.add_argument("--variant", choices=("auto", "fp32", "int8"), default="auto",
                       help="auto: the int8 model when the export selected it (accuracy within 1 point)")
    serve.add_argument("--workers", type=_positive_int, default=1,
                       help="server processes (Azure's WORKER_COUNT, default 1); each gets cores / workers "
                            "ONNX Runtime threads")
    serve.add_argument("--provider", choices=("auto", "openvino", "cpu"), default="auto",
                       help="ONNX Runtime execution provider. auto: OpenVINO's when onnxruntime-openvino is "
                            "installed (as the project and the scoring environment install it on Linux x86-64; "
                            "int8 runs faster there), else the default CPU provider")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or (argv[0] not in COMMANDS and argv[0] not in ("-h", "--help", "--version")):
        argv = ["render", *argv]
    args = build_parser().parse_args(argv)
    try:
        if args.command == "lint":
            return cmd_lint(args)
        if args.command == "run":
            return cmd_run(args)
        if args.command == "submit":
            return cmd_submit(args)
        if args.command == "logs":
            return cmd_logs(args)
        if args.command == "services":
            return cmd_services(args)
        if args.command == "download":
            return cmd_download(args)
        if args.command == "serve":
            return cmd_serve(args)
        return cmd_render(args)
    except LintFailed:
        return 1
    except JobgenError as exc:
        sys.stderr.write("".join(f"error: {line}\n" for line in exc.line().splitlines()))
        return 1
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        return 130


# ------------------------------------------------------------------ render

FLAG_PATHS = {
    "nodes": ("job.resources.instance_count", "--nodes"),
    "gpus": ("launcher.processes_per_node", "--gpus"),
    "launcher": ("launcher.type", "--launcher"),
    "vm_size": ("cluster.size", "--vm-size"),
    "environment": ("job.environment", "--environment"),
    "experiment": ("job.experiment_name", "--experiment"),
    "registry": ("registry.name", "--registry"),
}


def flags_patch(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, str]]:
    """Shortcut flags as a values patch, plus where each value came from (for messages)."""
    patch: dict[str, Any] = {}
    origins: dict[str, str] = {}

    def put(dotted: str, value: Any, origin: str) -> None:
        cursor = patch
        parts = dotted.split(".")
        for part in parts[:-1]:
            cursor = cursor.setdefault(part, {})
        cursor[parts[-1]] = value
        origins[dotted] = origin

    for attr, (dotted, flag) in FLAG_PATHS.items():
        value = getattr(args, attr)
        if value is not None:
            put(dotted, value, flag)
    if args.distribution is not None:
        if args.distribution == "none":
            put("job.distribution", None, "--distribution")
        else:
            put("job.distribution.type", args.distribution, "--distribution")
            origins["job.distribution"] = "--distribution"
    if getattr(args, "serverless", False):
        if args.compute is not None:
            raise JobgenError("--serverless and --compute NAME say two places to run", where="--serverless",
                              hint="give one: --serverless (no cluster) or --compute NAME (a cluster)")
        put("job.compute", "serverless", "--serverless")
    if getattr(args, "tier", None) in ("dedicated", "low_priority"):
        put("cluster.tier", args.tier, "--tier")
    elif getattr(args, "tier", None):
        put("job.queue_settings.job_tier", args.tier, "--tier")
    if args.compute is not None:
        name = args.compute[len("azureml:"):] if args.compute.startswith("azureml:") else args.compute
        put("cluster.name", name, "--compute")
        put("job.compute", f"azureml:{name}", "--compute")
    return patch, origins


def _set_origins(sets: list[str]) -> dict[str, str]:
    from .values import JOB_KEYS, SECTIONS

    origins = {}
    for assignment in sets:
        dotted = assignment.split("=", 1)[0].strip()
        head = dotted.split(".")[0]
        full = f"job.{dotted}" if head in JOB_KEYS and head not in SECTIONS else dotted
        origins[full] = f"--set {dotted}"
    return origins


def resolve(value_files: list[Path], sets: list[str], args: argparse.Namespace | None = None):
    """values -> spec (raises SpecError with every problem)."""
    from . import spec as spec_mod
    from .values import resolve_values

    patch, flag_origins = flags_patch(args) if args is not None else ({}, {})
    origins: dict[str, str] = {}
    values = resolve_values(value_files, sets, patch, origins)
    origins.update(flag_origins)
    origins.update(_set_origins(sets))
    return spec_mod.build(values, origins)


def _lint_rendered(files: dict[Path, str], staged: dict[Path, Path]) -> int:
    """Lint the staged copies (relative paths resolve as they will), report final paths.
    Returns the number of warnings; raises LintFailed on errors. The spec's warnings are the
    same rules' findings on the values, so with lint they are not printed again."""
    from .lint import Document, lint_documents

    docs = [Document(staged[path], text, display_as=path) for path, text in files.items() if path.suffix == ".yml"]
    overlay = {path.resolve(): staged_path for path, staged_path in staged.items()}
    diagnostics = lint_documents(docs, overlay=overlay)
    errors = [d for d in diagnostics if d.severity == "error"]
    for d in diagnostics:
        sys.stderr.write(d.format() + "\n")
    if errors:
        sys.stderr.write(f"error: lint found {len(errors)} error(s) in the rendered files; nothing was written\n")
        raise LintFailed("lint failed")
    return len(diagnostics)


def cmd_render(args: argparse.Namespace) -> int:
    from . import gitops
    from .render import render_job, source_names
    from .yamlio import write_files_atomically

    if args.check or args.all:
        if args.values or args.output or any(getattr(args, a) is not None for a in FLAG_PATHS) \
                or args.distribution or args.compute or args.serverless or args.tier:
            raise JobgenError("--check/--all render the definitions under jobs/ as they are",
                              where="render", hint="drop -f, -o and shortcut flags (use --set for a what-if)")
        return _render_definitions(args, check=args.check)

    spec = resolve(args.values, args.sets, args)
    if args.no_lint:  # with lint, the same rules report on the rendered files, with their lines
        for w in spec.warnings:
            sys.stderr.write(f"warning: {w.line()}\n")
    lint_warnings = []
    out_dir = (args.output or Path("rendered")).absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise JobgenError("output path exists and is not a folder", where=str(args.output or "rendered"),
                          hint="choose a folder with -o/--output")
    rendered = render_job(spec, out_dir, args.values)
    gitops.check_targets(rendered.files, args.values)
    check = None if args.no_lint else (lambda staged: lint_warnings.append(_lint_rendered(rendered.files, staged)))
    write_files_atomically(rendered.files, check=check)
    produced = {p.resolve() for p in rendered.files}
    for stale in gitops.stale_files(out_dir, produced, source_names(args.values)):
        stale.unlink()
    if not args.quiet:
        print(f"rendered {_summary(spec)}")
        for path in rendered.files:
            print(f"  {paths.display(path)}")
        shown = paths.display(out_dir)
        if not args.no_lint:
            count = sum(lint_warnings)
            print("lint: ok" + (f" ({count} warning{'s' if count != 1 else ''})" if count else ""))
        if spec.kind == "endpoint":
            print(f"next: az ml online-endpoint create -f {shown}/endpoint.yml, then "
                  f"az ml online-deployment create -f {shown}/deployment.yml --all-traffic")
        elif spec.kind == "batch":
            print(f"next: python generator.py submit {shown}/endpoint.yml, then submit {shown}/deployment.yml "
                  f"--ensure-compute --set-default, then submit {shown}/endpoint.yml --invoke DATA "
                  f"(here: python generator.py run {shown}/deployment.yml --input DATA)")
        else:
            main_file = {"pipeline": "pipeline.yml", "sweep": "sweep.yml"}.get(spec.kind, "job.yml")
            print(f"next: az ml job create -f {shown}/{main_file}"
                  + (" (first: az ml compute create / environment create / data create -f the files above)"
                     if len(rendered.files) > 1 else ""))
            if spec.schedule is not None:
                print(f"on its timer: python generator.py submit {shown}/schedule.yml (--disable stops it)")
    return 0


def _summary(spec) -> str:
    """One line saying what a definition rendered."""
    if spec.kind == "endpoint":
        e = spec.endpoint
        return (f"online endpoint {e.name} with deployment {e.deployment}: {e.instance_count} x {e.instance_type}, "
                f"model {e.model}")
    if spec.kind == "batch":
        b = spec.batch
        return (f"batch endpoint {b.name} with deployment {b.deployment}: {b.instance_count} node(s) of {b.compute} x "
                f"{b.max_concurrency_per_instance} process(es), mini-batches of {b.mini_batch_size} file(s), "
                f"model {b.model}")
    job = spec.job
    dist = f"{job.distribution.type}" if job.distribution else "no distribution"
    what = ("pipeline train -> export_onnx -> register, train on" if spec.kind == "pipeline" else
            f"sweep of {spec.sweep.max_total_trials} trials, each on" if spec.kind == "sweep" else "job on")
    return (f"{what} {job.resources.instance_count} node(s) x {spec.launcher.processes_per_node} process(es) per "
            f"node ({dist}, {spec.launcher.type}) on {job.compute or 'serverless compute'}"
            + (f" [{spec.vm.name}]" if spec.vm else "")
            + (f", {job.queue_settings['job_tier']} tier" if job.queue_settings.get("job_tier") else ""))


def _render_definitions(args: argparse.Namespace, check: bool) -> int:
    from . import gitops
    from .render import render_job, source_names
    from .yamlio import write_files_atomically

    defs = gitops.definitions()
    if not defs:
        raise JobgenError("no job definitions found", where=paths.display(paths.jobs_dir()),
                          hint=f"add jobs/<name>/{gitops.VALUES_NAME}")
    from .render import render_components

    all_files: dict[Path, str] = {}
    stale: list[Path] = []
    components = render_components(resolve([], []))
    all_files.update(components)
    stale.extend(gitops.stale_files(paths.components_dir(), {p.resolve() for p in components}, source_names([])))
    for d in defs:
        spec = resolve([d.values], args.sets)
        if args.no_lint or check:
            for w in spec.warnings:
                shown = paths.display(d.values)
                sys.stderr.write(f"warning: {w.line() if w.where.startswith(shown) else f'{shown}: {w.line()}'}\n")
        rendered = render_job(spec, d.out_dir, [d.values])
        all_files.update(rendered.files)
        stale.extend(gitops.stale_files(d.out_dir, {p.resolve() for p in rendered.files}, source_names([d.values])))
    if check:
        drift = [gitops.diff(path, text) for path, text in all_files.items()]
        drift = [d for d in drift if d]
        for path in stale:
            drift.append(f"{paths.display(path)}: rendered file no longer produced by its values; delete it\n")
        if drift:
            sys.stdout.write("".join(drift))
            sys.stderr.write(f"error: {len(drift)} rendered file(s) differ from their values "
                             "(hint: run 'python generator.py render --all' and commit the result)\n")
            return 1
        if not args.quiet:
            print(f"render --check: {len(all_files)} files from {len(defs)} definitions and the components "
                  "are up to date")
        return 0
    gitops.check_targets(all_files, [d.values for d in defs])
    lint = None if args.no_lint else (lambda staged: _lint_rendered(all_files, staged))
    write_files_atomically(all_files, check=lint)
    for path in stale:
        path.unlink()
    if not args.quiet:
        print(f"rendered {paths.display(paths.components_dir())}/ from templates/components/")
        for d in defs:
            print(f"rendered {paths.display(d.out_dir)}/ from {paths.display(d.values)}")
    return 0


# ------------------------------------------------------------------ lint

def cmd_lint(args: argparse.Namespace) -> int:
    from .lint import collect_files, lint_paths
    from . import rules

    if args.list_rules:
        print(rules.listing())
        return 0
    if not args.paths:
        raise JobgenError("no files to lint", where="lint", hint="pass YAML files or folders, or --list-rules")
    disable = set().union(*(rules.parse_ids(d) for d in args.disable)) if args.disable else set()
    unknown = rules.unknown(disable)
    if unknown:
        raise JobgenError(f"unknown rule {', '.join(unknown)}", where="--disable",
                          hint="see python generator.py lint --list-rules")
    files = collect_files(args.paths)
    if not files:
        raise JobgenError("no YAML files found", where=" ".join(map(str, args.paths)),
                          hint="pass .yml/.yaml files or folders that hold them")
    if args.no_cache:
        from .lint import cache

        cache.disable()
    diagnostics = lint_paths(args.paths, azure=not args.no_azure, disable=disable)
    for d in diagnostics:
        print(d.format())
    errors = sum(d.severity == "error" for d in diagnostics)
    warnings = len(diagnostics) - errors
    failed = errors or (args.strict and warnings)
    if not args.quiet or failed:
        print(f"{len(files)} file(s): {errors} error(s), {warnings} warning(s)", file=sys.stderr)
    return 1 if failed else 0


# ------------------------------------------------------------------ run

def cmd_run(args: argparse.Namespace) -> int:
    from .runner.run import Options, run

    if args.timeout is not None and args.timeout <= 0:
        raise JobgenError("--timeout must be positive", where="--timeout", hint="seconds, e.g. --timeout 600")
    options = Options(run_dir=args.run_dir, sets=args.sets, data=args.data, components=args.components,
                      timeout=args.timeout, quiet=args.quiet, json=args.json, catalog=args.catalog,
                      lint=not args.no_lint, dry_run=args.dry_run, env=args.env, faults=_faults(args),
                      input=args.input)
    return run(args.job, options)


def cmd_logs(args: argparse.Namespace) -> int:
    from . import logs

    ranks = None
    if args.rank:
        try:
            ranks = {int(part) for text in args.rank for part in text.split(",") if part.strip()}
        except ValueError:
            raise JobgenError(f"--rank {' '.join(args.rank)!r} is not a list of rank numbers", where="--rank",
                              hint="e.g. --rank 3 or --rank 0,3") from None
    target = Path(args.run)
    if target.exists() or not JOB_NAME.match(args.run):
        return logs.show(target, ranks=ranks, grep=args.grep, follow=args.follow)
    return _azure_logs(args, ranks)


JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,254}$")


def cmd_services(args: argparse.Namespace) -> int:
    from . import cloud

    client = cloud.make_client(_workspace(args))
    job, rows = cloud.job_services(client, args.job_name)
    status = cloud.status_of(job)
    if not rows and str(getattr(job, "type", "")) == "pipeline":
        return _step_services(cloud, client, job, status)
    if not rows and str(getattr(job, "type", "")) == "sweep":
        raise JobgenError(f"job {args.job_name} is a sweep: its trials are the jobs with services",
                          where=args.job_name, hint="give the name of a trial's own job (az ml job list "
                          f"--parent-job-name {args.job_name})")
    if not rows:
        raise JobgenError(f"job {args.job_name} ({status}) lists no interactive services" +
                          ("" if status == "Running" else "; Azure lists them once the job runs"),
                          where=args.job_name, hint="give the job some in the values' services: section (jupyter_lab, "
                          "vs_code, tensor_board, ssh_public_key_file) and submit it again")
    print(f"job {args.job_name} ({status}): {len({r[0] for r in rows})} node(s) with services")
    _print_services(rows)
    return 0


def _print_services(rows, indent: str = "  ") -> None:
    for node, name, instance in rows:
        endpoint = getattr(instance, "endpoint", None) or "(no endpoint yet)"
        print(f"{indent}node {node}  {name:<14} {str(getattr(instance, 'type', '') or ''):<12} "
              f"{str(getattr(instance, 'status', '') or ''):<9} {endpoint}")


def _step_services(cloud, client, pipeline, status: str) -> int:
    """generator.py services PIPELINE_JOB: each step's job and its services, node by node."""
    steps = cloud.step_services(client, pipeline)
    with_services = [(child, rows) for child, rows in steps if rows]
    if not with_services:
        raise JobgenError(f"pipeline job {pipeline.name} ({status}): none of its {len(steps)} step job(s) lists "
                          "interactive services" + ("" if steps else "; Azure lists the steps once the pipeline runs"),
                          where=pipeline.name, hint="give the train step some in the values' services: section "
                          "(jupyter_lab, vs_code, tensor_board, ssh_public_key_file) and submit it again")
    print(f"pipeline job {pipeline.name} ({status}): {len(with_services)} of {len(steps)} step(s) with services")
    for child, rows in with_services:
        print(f"  step {child.display_name} (job {child.name}, {cloud.status_of(child)})")
        _print_services(rows, indent="    ")
    return 0


def _azure_logs(args: argparse.Namespace, ranks: set[int] | None) -> int:
    """generator.py logs JOB_NAME: the workspace job's every rank, merged as for a local run."""
    import tempfile

    from . import cloud, logs

    ws = _workspace(args)
    client = cloud.make_client(ws)
    with tempfile.TemporaryDirectory(prefix="jobgen-logs-") as tmp:
        say = lambda text: print(text, file=sys.stderr, flush=True)  # noqa: E731
        job, folder = cloud.job_logs(client, args.run, Path(tmp), ws, follow=args.follow, say=say)
        status = cloud.status_of(job)
        if not (folder / "user_logs").is_dir():
            raise JobgenError(f"job {args.run} ({status}) has no user_logs in its artifacts", where=args.run,
                              hint="it may have failed before any process started: see its status in the studio")
        distribution = getattr(job, "distribution", None)
        per_node = int(getattr(distribution, "process_count_per_instance", None) or 1)
        message = f"job {args.run} {status}" if status != "Completed" else ""
        units = logs.azure_unit(folder, status, per_node, message)
        return logs.show(folder.parent, ranks=ranks, grep=args.grep, units=units)


def _faults(args: argparse.Namespace):
    """--preempt, --kill, --max-requeues, --hang-timeout as a faults.Faults (None: none given)."""
    from .runner.faults import MAX_REQUEUES, Faults, parse_fault

    if args.hang_timeout is not None and not args.hang_timeout > 0:
        raise JobgenError("--hang-timeout must be positive", where="--hang-timeout",
                          hint="seconds without output or CPU, e.g. --hang-timeout 120")
    if args.max_requeues is not None and args.max_requeues < 0:
        raise JobgenError("--max-requeues must be 0 or more", where="--max-requeues", hint="e.g. --max-requeues 3")
    if args.hang_report_only and args.hang_timeout is None:
        raise JobgenError("--hang-report-only needs --hang-timeout", where="--hang-report-only",
                          hint="e.g. --hang-timeout 120 --hang-report-only")
    faults = Faults(preempts=[parse_fault("preempt", t) for t in args.preempt],
                    kills=[parse_fault("kill", t) for t in args.kill],
                    max_requeues=MAX_REQUEUES if args.max_requeues is None else args.max_requeues,
                    hang_timeout=args.hang_timeout, hang_stop=not args.hang_report_only)
    return faults if faults or args.max_requeues is not None else None


# ------------------------------------------------------------------ Azure

def _workspace(args: argparse.Namespace, required: bool = True):
    from .cloud import resolve_workspace

    return resolve_workspace(args.workspace_config, args.subscription, args.resource_group, args.workspace,
                             required=required)


def _client(ws):
    """MLClient for the workspace; a failure to make one (no credential, ...) said in one line."""
    from . import cloud

    try:
        return cloud.make_client(ws)
    except Exception as exc:  # noqa: BLE001
        mapped = cloud.explain(exc, ws)
        if mapped is None:
            raise
        raise mapped from None


def _registry_args(args: argparse.Namespace) -> None:
    """--registry and --promote: what they go with, said before anything is read or sent."""
    from .spec import REGISTRY_NAME_RE

    if args.promote and not args.registry:
        raise JobgenError("--promote copies a model into a registry: which one?", where="--promote",
                          hint="add --registry NAME")
    if args.promote and args.file:
        raise JobgenError("--promote copies a registered model; it takes no file", where="--promote",
                          hint=f"drop {args.file}, or submit the file without --promote")
    if not args.promote and not args.file:
        raise JobgenError("nothing to submit", where="submit", hint="give FILE.yml, or --promote MODEL:VERSION "
                          "--registry NAME")
    if args.registry and not REGISTRY_NAME_RE.match(args.registry):
        raise JobgenError(f"'{args.registry}' is not a registry name", where="--registry",
                          hint="3-33 letters, digits, '-' and '_' (az ml registry list shows yours)")
    if args.promote:
        from .cloud import parse_promote

        parse_promote(args.promote)


def _promote(args: argparse.Namespace) -> int:
    from . import cloud

    if args.dry_run:
        name, version = cloud.parse_promote(args.promote)
        print(f"would copy model {name} version {version} into registry {args.registry}: "
              f"azureml://registries/{args.registry}/models/{name}/versions/{version}")
        return 0
    ws = _workspace(args)
    client = _client(ws)
    return cloud.promote(client, ws, args.promote, args.registry, json_out=args.json)


def _submit_to_registry(args: argparse.Namespace, options) -> int:
    from . import cloud

    if args.dry_run:
        return cloud.submit(args.file, options)
    kind, data = cloud.detect(args.file)  # what a registry cannot take is one line before any sign-in
    cloud.registry_options(args.file, kind, data, options)
    try:
        client = cloud.make_registry_client(args.registry)
    except Exception as exc:  # noqa: BLE001 - registry discovery happens when the client is made
        mapped = cloud.explain(exc, None, {"registry": args.registry})
        if mapped is None:
            raise
        raise mapped from None
    return cloud.submit(args.file, options, client=client)


def cmd_submit(args: argparse.Namespace) -> int:
    from . import cloud

    _registry_args(args)
    if args.promote:
        return _promote(args)
    options = cloud.SubmitOptions(sets=args.sets, ensure_compute=args.ensure_compute, stream=args.stream,
                                  dry_run=args.dry_run, json=args.json, lint=not args.no_lint, traffic=args.traffic,
                                  retry=args.retry, fallback_compute=args.fallback_compute,
                                  fallback_tier=args.fallback_tier, disable=args.disable,
                                  preflight=not args.no_preflight, invoke=args.invoke, deployment=args.deployment,
                                  set_default=args.set_default, registry=args.registry)
    if args.retry < 0:
        raise JobgenError("--retry must be 0 or more", where="--retry", hint="e.g. --stream --retry 2")
    if (args.retry or args.fallback_compute or args.fallback_tier) and not args.stream:
        given = "--retry" if args.retry else "--fallback-compute" if args.fallback_compute else "--fallback-tier"
        raise JobgenError("--retry and --fallback-compute need --stream (the job is followed to its end), and so "
                          "does --fallback-tier", where=given, hint="add --stream")
    if args.fallback_tier and args.fallback_compute:
        raise JobgenError("--fallback-tier is for serverless jobs, --fallback-compute for jobs on a cluster",
                          where="--fallback-tier", hint="give one of them")
    if args.traffic is not None and not 0 <= args.traffic <= 100:
        raise JobgenError("--traffic must be 0..100", where="--traffic", hint="a percentage, e.g. --traffic 100")
    if args.registry:
        return _submit_to_registry(args, options)
    if args.dry_run:  # no network, no credential: the workspace only names ARM ids when it is known
        return cloud.submit(args.file, options, ws=_workspace(args, required=False))
    ws = _workspace(args)
    client = _client(ws)
    return cloud.submit(args.file, options, client=client, ws=ws)


def cmd_download(args: argparse.Namespace) -> int:
    from . import cloud

    ws = _workspace(args)
    dest = args.output_dir / args.job_name
    client = cloud.make_client(ws)
    cloud.download(client, args.job_name, args.output, dest, ws)
    print(f"downloaded {args.output or 'all outputs'} of {args.job_name} to {paths.display(dest)}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from . import serve

    model_dir = serve.check_model_dir(args.model_dir)
    serve.check_provider(args.provider)
    print(f"serving {paths.display(model_dir)} on http://127.0.0.1:{args.port}/score (Ctrl-C stops)", flush=True)
    env = serve.environment(model_dir, args.variant, workers=args.workers, provider=args.provider)
    return serve.run_until_stopped(serve.command(args.port, args.workers), env, serve.trainer_dir())
