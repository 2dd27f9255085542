"""Spec -> YAML text through the Jinja templates. Pure: no clock, no randomness, no
machine-specific paths in the output (paths are written relative to the output folder)."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import jinja2
import yaml

from . import paths, yamlio
from .errors import JobgenError
from .spec import DataInput, Spec

# Which template makes which file.
JOB_TEMPLATES = {
    "job.yml": "job.yml.j2",
    "compute.yml": "compute.yml.j2",
    "environment.yml": "environment.yml.j2",
    "conda.yaml": "conda.yaml.j2",
    "data.yml": "data.yml.j2",
}

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


@lru_cache(maxsize=4)
def jinja_env(templates: Path) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates)),
        undefined=jinja2.StrictUndefined,
        # (( )) for values: Azure's ${{inputs.x}} and $[[...]] stay plain text in templates.
        variable_start_string="((",
        variable_end_string="))",
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )
    env.filters["y"] = yamlio.scalar_text
    env.filters["ys"] = yamlio.quoted
    env.filters["ycommand"] = yamlio.command_block
    env.tests["data_input"] = lambda value: isinstance(value, DataInput)
    return env


def render_template(name: str, context: dict, templates: Path | None = None) -> str:
    templates = templates or paths.templates_dir()
    try:
        text = jinja_env(templates).get_template(name).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise JobgenError(f"template '{exc.name}' not found", where=paths.display(templates),
                          hint="restore it from git; templates/ ships with the project") from None
    except jinja2.TemplateSyntaxError as exc:
        where = f"{paths.display(templates / (exc.name or name))}:{exc.lineno}"
        raise JobgenError(f"template syntax error: {exc.message}", where=where,
                          hint="values use (( name )); blocks use {% ... %}") from None
    except jinja2.UndefinedError as exc:
        raise JobgenError(f"template uses an undefined value: {exc.message}", where=_template_line(templates, name),
                          hint="define it in templates/defaults.yaml and the spec, or fix the name in the template") from None
    text = text.rstrip("\n") + "\n"
    # The output must be YAML: anything else is a broken template, not bad values.
    try:  # a syntax check is enough here (lint reads the files in full)
        for _ in yaml.parse(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
            pass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise JobgenError(f"template produced invalid YAML ({getattr(exc, 'problem', exc)}, output line "
                          f"{mark.line + 1 if mark else '?'})", where=paths.display(templates / name),
                          hint="check indentation and use the y filter for values") from None
    return text


def _template_line(templates: Path, name: str) -> str:
    """The template file and line that raised, from the traceback Jinja rewrites."""
    tb = sys.exc_info()[2]
    where = paths.display(templates / name)
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            where = f"{paths.display(Path(filename))}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


@dataclass(frozen=True)
class RenderedSet:
    """The files of one rendering, by absolute path, not yet written."""

    files: dict[Path, str]
    spec: Spec


def source_names(value_files: list[Path]) -> list[str]:
    """How the header names where the values came from: project-relative when possible
    (so the bytes do not depend on where the checkout lives)."""
    names = ["templates/defaults.yaml"]
    root = paths.root().resolve()
    for f in value_files:
        f = Path(f).resolve()
        try:
            names.append(f.relative_to(root).as_posix())
        except ValueError:
            names.append(f.name)
    return names


def render_job(spec: Spec, out_dir: Path, value_files: list[Path]) -> RenderedSet:
    out_dir = out_dir.resolve()
    sources = source_names(value_files)
    context = {"sources": sources}
    files: dict[Path, str] = {}
    if spec.endpoint is not None:
        ctx = dict(context, endpoint=spec.endpoint, batch=None, vm=spec.endpoint_vm,
                   code=paths.relative_posix(spec.endpoint.code, out_dir))
        files[out_dir / "endpoint.yml"] = render_template("online_endpoint.yml.j2", ctx)
        files[out_dir / "deployment.yml"] = render_template("online_deployment.yml.j2", ctx)
        if not spec.endpoint.environment_ref:  # an environment from a registry brings its own
            files[out_dir / "conda-serve.yaml"] = render_template("conda-serve.yaml.j2", ctx)
        return RenderedSet(files=files, spec=spec)
    if spec.batch is not None:
        ctx = dict(context, batch=spec.batch, endpoint=spec.batch, vm=spec.vm,
                   code=paths.relative_posix(spec.batch.code, out_dir))
        files[out_dir / "endpoint.yml"] = render_template("batch_endpoint.yml.j2", ctx)
        files[out_dir / "deployment.yml"] = render_template("batch_deployment.yml.j2", ctx)
        if not spec.batch.environment_ref:
            files[out_dir / "conda-serve.yaml"] = render_template("conda-serve.yaml.j2", ctx)
        if spec.cluster is not None:
            files[out_dir / "compute.yml"] = render_template(
                JOB_TEMPLATES["compute.yml"], dict(context, cluster=spec.cluster, vm=spec.vm))
        return RenderedSet(files=files, spec=spec)
    if spec.pipeline is not None:
        p = spec.pipeline
        files[out_dir / "pipeline.yml"] = render_template("pipeline.yml.j2", dict(
            context, job=spec.job, pipeline=p, data=p.data, data_input=p.data_input, train_inputs=p.train_inputs,
            components=paths.relative_posix(paths.components_dir(), out_dir)))
    elif spec.sweep is not None:
        files[out_dir / "sweep.yml"] = render_template("sweep.yml.j2", dict(
            context, job=spec.job, sweep=spec.sweep, code=paths.relative_posix(spec.job.code, out_dir)))
    else:
        job_ctx = dict(context, job=spec.job, code=paths.relative_posix(spec.job.code, out_dir))
        files[out_dir / "job.yml"] = render_template(JOB_TEMPLATES["job.yml"], job_ctx)
    if spec.schedule is not None:
        main_file = next(name for name in ("pipeline.yml", "sweep.yml", "job.yml") if out_dir / name in files)
        files[out_dir / "schedule.yml"] = render_template("schedule.yml.j2", dict(
            context, schedule=spec.schedule, job_file=main_file))
    if spec.cluster is not None:
        files[out_dir / "compute.yml"] = render_template(
            JOB_TEMPLATES["compute.yml"], dict(context, cluster=spec.cluster, vm=spec.vm))
    if spec.environment is not None:
        build = spec.environment.build_path
        env_ctx = dict(context, env=spec.environment, build_path=paths.relative_posix(build, out_dir) if build else None)
        files[out_dir / "environment.yml"] = render_template(JOB_TEMPLATES["environment.yml"], env_ctx)
        if build is None:  # a build context's Dockerfile installs the packages itself
            files[out_dir / "conda.yaml"] = render_template(JOB_TEMPLATES["conda.yaml"], env_ctx)
    if spec.data is not None:
        data_path = spec.data.path
        if not _SCHEME.match(data_path):  # a local folder: project-relative in values
            data_path = paths.relative_posix(paths.root() / data_path, out_dir)
        files[out_dir / "data.yml"] = render_template(
            JOB_TEMPLATES["data.yml"], dict(context, data=spec.data, data_path=data_path))
    return RenderedSet(files=files, spec=spec)


COMPONENT_TEMPLATES = ("train", "export_onnx", "register")


def render_components(spec: Spec, out_dir: Path | None = None) -> dict[Path, str]:
    """components/*.yml from the defaults' environment and trainer code."""
    out_dir = (out_dir or paths.components_dir()).resolve()
    if spec.components is None:
        return {}
    environment = spec.job.environment
    context = {"sources": ["templates/defaults.yaml"], "prefix": spec.components.prefix,
               "version": spec.components.version, "environment": environment,
               "code": paths.relative_posix(spec.job.code, out_dir)}
    return {out_dir / f"{name}.yml": render_template(f"components/{name}.yml.j2", context)
            for name in COMPONENT_TEMPLATES}
