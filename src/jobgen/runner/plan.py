"""Plan, then run: every unit that a job runs here (a command job; each step of a pipeline,
nested pipelines included; each trial of a sweep) with its bound command, its processes, its
inputs as local paths and its outputs as run-folder paths, decided before any process starts.
Every problem is collected; a plan with problems is refused whole.

Pipelines bind as Azure does: `${{parent.inputs.x}}` is the pipeline's input (for a nested
pipeline, what its step was given), `${{parent.jobs.s.outputs.o}}` the folder (or file) step s
writes, a step's output bound to `${{parent.outputs.p}}` is the pipeline's output p, and every
command step has the default output `artifacts`: the folder holding what it wrote to ./outputs
and ./logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from ..azml import model, refs
from ..azml.model import AZURE_ONLY_STEPS, Command, Pipeline, Step, Sweep
from ..errors import JobgenError
from ..yamlio import load_file
from .binding import bind, literal
from .catalog import Catalog
from .mounts import BoundPath
from .tasks import DATA_TYPES, Task, resolve_data, slug

COMPONENT_KINDS = {"command_component": "command", "pipeline_component": "pipeline"}
UNRESOLVED = BoundPath("<unresolved>")  # an input whose problem is already in the plan


@dataclass
class Plan:
    kind: str  # command | pipeline | sweep
    tasks: list[Task] = field(default_factory=list)  # in an order that respects dependencies
    problems: list[str] = field(default_factory=list)  # each one line: where: what (hint: how to fix)
    notes: list[str] = field(default_factory=list)  # said before the run starts
    outputs: dict[str, Path] = field(default_factory=dict)  # a pipeline's outputs
    keep_going: bool = False  # continue_on_step_failure
    sweep: Any = None  # sweep.SweepPlan for sweeps


@dataclass
class _Scope:
    """What `${{parent...}}` means inside one pipeline (the job itself or a nested component)."""

    prefix: str  # step ids inside it start with this ("" at the top, "outer/" inside step outer)
    run_dir: Path
    inputs: dict[str, str | BoundPath | None]
    outputs: dict[str, Path]
    output_files: set[str]
    where: str


class Planner:
    def __init__(self, path: Path, data: dict, text: str, catalog: Catalog, run_dir: Path, timeout: float | None,
                 experiment: str):
        self.path, self.data, self.catalog = path, data, catalog
        self.base = path.parent
        self.run_dir, self.timeout, self.experiment = run_dir, timeout, experiment
        self.job = model.read_job(data, self.base, path.stem, text)
        self.name = slug(self.job.name)
        self.where = paths.display(path)
        self.problems: list[str] = []

    def problem(self, exc: JobgenError | str, where: str | None = None) -> None:
        if isinstance(exc, JobgenError):
            text = exc.line() if exc.where else f"{where}: {exc.line()}"
        else:
            text = f"{where}: {exc}" if where else exc
        if text not in self.problems:
            self.problems.append(text)

    # -------------------------------------------------------------- entry
    def build(self) -> Plan:
        body = self.job.body
        if isinstance(body, Pipeline):
            plan = self.pipeline_plan(body)
        elif isinstance(body, Sweep):
            from .sweep import plan_sweep

            plan = plan_sweep(self, body)
        else:
            plan = Plan("command", tasks=self.command_tasks(body))
        plan.problems = self.problems + plan.problems
        return plan

    def command_tasks(self, job: Command) -> list[Task]:
        inputs = self.bind_inputs(job.inputs, self.base, self.where)
        outputs, files = self.output_slots(job.outputs, self.run_dir / "outputs", {})
        task = self.task(job, self.base, self.run_dir, self.name, self.name, self.name, inputs, outputs, files)
        return [task] if task else []

    # -------------------------------------------------------------- one unit
    def task(self, spec: Command, base: Path, run_dir: Path, unit_id: str, label: str, name: str,
             inputs: dict[str, str], outputs: dict[str, Path], files: set[str], deps: set[str] | None = None,
             where: str | None = None) -> Task | None:
        where = where or f"{self.where}: {label}"
        code = self.code_path(spec.code, base, where)
        dist = spec.distribution
        if dist and str(dist.get("type", "")).lower() == "ray":
            self.problem("distribution ray needs the Ray cluster Azure starts on its nodes, and none is started here "
                         "(hint: submit it to Azure; to try the script here, drop the distribution: ray.init() "
                         "then starts a one-machine Ray if ray is installed)", where)
        if spec.command is None:
            self.problem("has no command", where)
            return None
        limits = spec.limits or {}
        timeouts = [t for t in (limits.get("timeout"), self.timeout) if isinstance(t, (int, float)) and t > 0]
        outputs = dict(outputs, artifacts=run_dir / "artifacts")
        task = Task(name=name, label=label, run_dir=run_dir, code=code, command=spec.command, inputs=inputs,
                    outputs=outputs, file_outputs=set(files),
                    environment_variables={str(k): "" if v is None else str(v)
                                           for k, v in (spec.environment_variables or {}).items()},
                    instance_count=_whole(spec.resources.get("instance_count"), 1), distribution=dist,
                    timeout=float(min(timeouts)) if timeouts else None, experiment=self.experiment,
                    id=unit_id, deps=set(deps or ()), environment=spec.environment, environment_base=base,
                    services=spec.services)
        try:
            task.bound = bind(task.command, {k: str(v) for k, v in inputs.items()},
                              {k: str(v) for k, v in outputs.items()})
        except KeyError as exc:
            self.problem(f"the command uses ${{{{{exc.args[0]}}}}}, which this job does not have "
                         "(hint: run 'python generator.py lint' on the file)", where)
        return task

    def code_path(self, code: Any, base: Path, where: str) -> Path | None:
        if code is None:
            return None
        local = refs.local_path(code)
        if local is None:
            self.problem(f"code {code!r} is not a local folder (hint: give a local path)", where)
            return None
        target = (base / local).resolve()
        if not target.exists():
            self.problem(f"code path {code} does not exist (resolved to {target}) (hint: paths are relative to "
                         "the YAML file's folder)", where)
            return None
        return target

    # -------------------------------------------------------------- inputs and outputs
    def bind_inputs(self, ios: dict[str, model.IO], base: Path, where: str) -> dict[str, str]:
        """A job's own inputs as Azure binds them: literals through str(), data to local paths."""
        out: dict[str, str] = {}
        for name, io in ios.items():
            value = self.data_or_literal(io.value if not isinstance(io.value, dict) else io.value, io, base,
                                         f"{where}: inputs.{name}")
            if value is not None:
                out[name] = value
        return out

    def data_or_literal(self, value: Any, io: model.IO, base: Path, where: str) -> str | BoundPath | None:
        if value is None:
            return None
        if io.type in DATA_TYPES or (io.type is None and isinstance(value, str) and _looks_like_data(value)
                                     and io.type != "string"):
            try:
                return BoundPath(resolve_data(str(value), base, self.catalog, where))
            except JobgenError as exc:
                self.problem(exc, where)
                return UNRESOLVED  # said once; the command still binds, so that nothing else is said of it
        return literal(value)

    def output_slots(self, declared: dict[str, model.IO], folder: Path, bound: dict[str, Path],
                     bound_files: set[str] = frozenset()) -> tuple[dict[str, Path], set[str]]:
        """Where each output goes: bound to a pipeline output, or ``folder``/<name>; a uri_file
        output is a file path in an existing folder."""
        slots, files = {}, set()
        for name, io in declared.items():
            if name == "artifacts":
                continue
            slots[name] = bound.get(name, folder / name)
            if io.is_file or name in bound_files:
                files.add(name)
        return slots, files

    # -------------------------------------------------------------- pipelines
    def pipeline_plan(self, pipeline: Pipeline) -> Plan:
        plan = Plan("pipeline", keep_going=bool(pipeline.settings.get("continue_on_step_failure", False)))
        inputs = {}
        for name, io in pipeline.inputs.items():
            raw = io.value
            inputs[name] = self.data_or_literal(raw, io, self.base, f"{self.where}: inputs.{name}")
        outputs = {name: self.run_dir / "outputs" / name for name in pipeline.outputs}
        files = {name for name, io in pipeline.outputs.items() if io.is_file}
        plan.outputs = outputs
        scope = _Scope("", self.run_dir, inputs, outputs, files, self.where)
        plan.tasks = self.pipeline_tasks(pipeline, scope)
        return plan

    def pipeline_tasks(self, pipeline: Pipeline, scope: _Scope) -> list[Task]:
        order = self.step_order(pipeline, scope.where)
        tasks: list[Task] = []
        produced: dict[str, dict[str, tuple[Path, bool, set[str]]]] = {}  # step -> output -> (slot, file, unit ids)
        for name in order:
            step = pipeline.steps[name]
            where = f"{scope.where}: jobs.{name}"
            tasks.extend(self.step_tasks(step, pipeline, scope, produced, where))
            produced.setdefault(name, None)  # refused: its problem is said; steps that bind it say nothing more
        return tasks

    def step_order(self, pipeline: Pipeline, where: str) -> list[str]:
        deps = {name: set() for name in pipeline.steps}
        for name, step in pipeline.steps.items():
            for value in step.inputs.values():
                text = value.get("path") if isinstance(value, dict) else value
                for ref in refs.find(text) if isinstance(text, str) else []:
                    if ref.scope == "parent" and ref.step:
                        deps[name].add(ref.step)
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(step: str, trail: list[str]) -> None:
            if state.get(step) == 2:
                return
            if state.get(step) == 1:
                self.problem(f"steps depend on each other in a cycle: {' -> '.join(trail + [step])}", where)
                return
            state[step] = 1
            for dep in sorted(deps[step]):
                if dep in deps:
                    visit(dep, trail + [step])
            state[step] = 2
            order.append(step)

        for step in pipeline.steps:
            visit(step, [])
        return order

    def step_tasks(self, step: Step, pipeline: Pipeline, scope: _Scope, produced: dict, where: str) -> list[Task]:
        if step.kind in AZURE_ONLY_STEPS:
            self.problem(f"step '{step.name}' is {_article(step.kind)} {step.kind} step: {AZURE_ONLY_STEPS[step.kind]}; it runs only on "
                         "Azure (hint: submit the pipeline, or run its command steps as their own jobs here)", where)
            return []
        used = self.step_body(step, pipeline.base, where)
        if used is None:
            return []
        body, base = used
        step_dir = scope.run_dir / step.name
        deps: set[str] = set()
        declared_inputs = body.inputs
        inputs = self.step_inputs(step, declared_inputs, pipeline.base, scope, produced, deps, where)
        bound, bound_files = self.step_output_bindings(step, scope, where)
        if isinstance(body, Pipeline):
            slots = {name: bound.get(name, step_dir / "outputs" / name) for name in body.outputs}
            files = {name for name, io in body.outputs.items() if io.is_file} | (bound_files & set(slots))
            inner = _Scope(f"{scope.prefix}{step.name}/", step_dir, dict(inputs), slots, files, where)
            tasks = self.pipeline_tasks(body, inner)
            ids = {t.id for t in tasks}
            for t in tasks:
                t.deps |= {d for d in deps}
            produced[step.name] = {name: (path, name in files, ids) for name, path in slots.items()}
            return tasks
        outputs = dict(body.outputs)
        for name in step.outputs:
            outputs.setdefault(name, model.read_io(name, step.outputs[name], output=True))
        slots, files = self.output_slots(outputs, step_dir / "outputs", bound, bound_files)
        unit_id = f"{scope.prefix}{step.name}"
        spec = body.overridden(step)
        task = self.task(spec, base, step_dir, unit_id, unit_id, f"{self.name}-{unit_id.replace('/', '-')}", inputs,
                         slots, files, deps, where)
        if task is None:
            return []
        produced[step.name] = {name: (path, name in files, {unit_id}) for name, path in task.outputs.items()}
        return [task]

    def step_body(self, step: Step, base: Path, where: str) -> tuple[Command | Pipeline, Path] | None:
        """What a step runs: its inline command, or its component (a file, a registered one mapped to a
        file by the catalog or --component, an inline mapping)."""
        if step.inline is not None:
            return step.inline, base
        ref = step.component
        if isinstance(ref, dict):
            return self.component(ref, base, where), base
        if not isinstance(ref, str) or not ref:
            self.problem(f"step '{step.name}' has neither a command nor a component", where)
            return None
        try:
            if ref.startswith("azureml:"):
                path = self.catalog.component(ref, where)
            else:
                path = (base / (refs.local_path(ref) or ref)).resolve()
                if not path.is_file():
                    raise JobgenError(f"component file {path} does not exist",
                                      hint="paths are relative to the pipeline file's folder")
            data = load_file(path).data
        except JobgenError as exc:
            self.problem(exc, where)
            return None
        if not isinstance(data, dict):
            self.problem(f"component {ref} is not a mapping", where)
            return None
        body = self.component(data, path.parent, where)
        return (body, path.parent) if body is not None else None

    def component(self, data: dict, base: Path, where: str) -> Command | Pipeline | None:
        from ..azml import kinds

        kind = kinds.detect(data) or ""
        if kind in ("pipeline_component", "pipeline_job") or data.get("type") == "pipeline":
            return model.read_pipeline(data, base)
        if kind in ("command_component", "command_job") or data.get("type") in (None, "command"):
            return model.read_command(data, base)
        step_kind = str(data.get("type"))
        self.problem(f"its component is {_article(step_kind)} {step_kind} component: "
                     f"{AZURE_ONLY_STEPS.get(step_kind, 'it has no runtime here')}; it runs only on Azure", where)
        return None

    def step_inputs(self, step: Step, declared: dict[str, model.IO], base: Path, scope: _Scope, produced: dict,
                    deps: set[str], where: str) -> dict[str, str]:
        inputs: dict[str, str] = {}
        for name, value in step.inputs.items():
            io = declared.get(name) or model.read_io(name, value)
            bound = self.step_input(name, value, io, base, scope, produced, deps, f"{where}: inputs.{name}")
            if bound is not None:
                inputs[name] = bound
        for name, io in declared.items():
            if name not in inputs and io.value is not None and not io.is_data:
                inputs[name] = literal(io.value)  # the component's default
        return inputs

    def step_input(self, name: str, value: Any, io: model.IO, base: Path, scope: _Scope, produced: dict,
                   deps: set[str], where: str) -> str | None:
        if isinstance(value, dict):
            kind = value.get("type") or io.type
            given = value.get("path", value.get("value"))
            io = model.IO(name, kind, given)
            value = given
        ref = refs.only(value)
        if ref is None:
            if isinstance(value, str) and refs.REF.search(value):
                self.problem(f"input '{name}' is '{value}': only a whole ${{{{...}}}} binds here", where)
                return None
            return self.data_or_literal(value, io, base, where)
        if ref.scope == "parent" and ref.kind == "inputs" and not ref.step:
            if ref.name not in scope.inputs:
                self.problem(f"binds ${{{{{ref.text}}}}} but the pipeline declares no input '{ref.name}'", where)
                return UNRESOLVED
            return scope.inputs.get(ref.name)
        if ref.scope == "parent" and ref.step:
            if ref.step in produced and produced[ref.step] is None:
                return UNRESOLVED  # that step was refused, and said so
            found = (produced.get(ref.step) or {}).get(ref.name)
            if found is None:
                self.problem(f"binds ${{{{{ref.text}}}}}, which no step of this pipeline produces", where)
                return UNRESOLVED
            path, _, ids = found
            deps.update(ids)
            return BoundPath(path)
        self.problem(f"binds ${{{{{ref.text}}}}}; a step takes ${{{{parent.inputs.x}}}} or "
                     "${{parent.jobs.<step>.outputs.<name>}}", where)
        return None

    def step_output_bindings(self, step: Step, scope: _Scope, where: str) -> tuple[dict[str, Path], set[str]]:
        bound: dict[str, Path] = {}
        files: set[str] = set()
        for name, value in step.outputs.items():
            text = value.get("path") if isinstance(value, dict) else value
            ref = refs.only(text)
            if ref is None:
                continue
            if ref.scope == "parent" and ref.kind == "outputs" and not ref.step:
                if ref.name not in scope.outputs:
                    self.problem(f"output '{name}' binds ${{{{{ref.text}}}}} but the pipeline declares no output "
                                 f"'{ref.name}'", where)
                    continue
                bound[name] = scope.outputs[ref.name]
                if ref.name in scope.output_files:
                    files.add(name)
        return bound, files


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeio" else "a"


def _whole(value: Any, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except (TypeError, ValueError):
        return default


def _looks_like_data(value: str) -> bool:
    """A step's untyped input given as a path or an asset: azureml:..., a URI, ./data."""
    return bool(re.match(r"^(azureml:|[a-z]+://|\.{1,2}/)", value))
