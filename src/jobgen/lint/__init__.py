"""Lint Azure ML YAML: our strict checks first, then azure-ai-ml as a second opinion.

``lint_paths`` takes files and folders; ``lint_documents`` takes text not yet on disk (the
generator lints what it rendered before writing it). Every finding names its rule (rules.py);
``disable`` and `# jobgen: disable=ID` comments silence rules.
"""

from __future__ import annotations

import os
from pathlib import Path

from .. import paths
from ..azml import kinds
from ..errors import JobgenError
from ..yamlio import load_located, read_text
from .. import rules as R
from .checks import Checker, _load_plain, detect_kind
from .model import ERROR, WARNING, Diagnostic, Document

__all__ = ["Diagnostic", "Document", "lint_paths", "lint_documents", "ERROR", "WARNING", "collect_files"]

SKIP_DIRS = {".git", ".venv", "venv", "node_modules", "__pycache__", "runs", ".pytest_cache", "mlruns"}
OWN_KINDS = ("values", "conda", "catalog")


def collect_files(targets: list[Path]) -> list[Path]:
    files: list[Path] = []
    for target in targets:
        target = Path(target)
        if target.is_dir():
            for dirpath, dirnames, filenames in os.walk(target):
                dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith("."))
                for name in sorted(filenames):
                    if name.endswith((".yml", ".yaml")):
                        files.append(Path(dirpath) / name)
        elif target.exists():
            files.append(target)
        else:
            raise JobgenError("no such file or folder", where=str(target), hint="check the path")
    unique = []
    seen = set()
    for f in files:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


def lint_paths(targets: list[Path], azure: bool = True, disable: set[str] | None = None) -> list[Diagnostic]:
    docs = []
    for f in collect_files(targets):
        try:
            text = read_text(f, paths.display(f))
        except JobgenError as exc:
            docs.append(Document(f.resolve(), "", diagnostics=[Diagnostic(paths.display(f), 1, ERROR, exc.message,
                                                                          exc.hint, rule=R.NOT_YAML.id)]))
            continue
        docs.append(Document(f.resolve(), text))
    return lint_documents(docs, azure=azure, explicit=True, disable=disable)


def lint_documents(docs: list[Document], azure: bool = True, explicit: bool = False,
                   overlay: dict[Path, Path] | None = None, disable: set[str] | None = None) -> list[Diagnostic]:
    """Lint ``docs`` (and local component files they use). With ``explicit``, files that are
    not Azure ML YAML are reported as skipped. ``overlay`` maps files about to be written to
    where they are staged, so that a pipeline may use components rendered with it."""
    overlay = {Path(k).resolve(): Path(v) for k, v in (overlay or {}).items()}
    by_path = {d.path: d for d in docs}
    for doc in docs:
        _parse(doc)
    computes = _compute_catalog(docs)
    queue = list(docs)
    done: list[Document] = []
    while queue:
        doc = queue.pop(0)
        done.append(doc)
        if doc.located is None:  # unreadable or not YAML: already reported
            continue
        checker = Checker(doc, _compute_size(computes), overlay)
        if doc.kind in OWN_KINDS or doc.kind is None:
            checker.generic()  # a secret is a leak in any YAML that is committed
            if doc.kind == "values":
                checker.values_secret_names()
            if doc.kind is None and explicit and doc.data is not None:
                doc.diagnostics.append(_unrecognised(doc))
            continue
        checker.common()
        _CHECKS.get(doc.kind, lambda c: None)(checker)
        for ref in checker.referenced:
            if ref not in by_path:
                try:
                    extra = Document(ref, read_text(ref))
                except JobgenError:
                    continue
                by_path[ref] = extra
                _parse(extra)
                queue.append(extra)
    if azure:
        _second_opinions([d for d in done if d.located is not None and d.kind not in OWN_KINDS and d.kind],
                         overlay)
    out: list[Diagnostic] = []
    for doc in done:
        kept = _enabled(doc, set(disable or ()))
        out.extend(sorted(set(kept), key=lambda d: (d.line, d.severity, d.message)))
    return out


PARALLEL_FROM = 16  # documents; below this a process pool costs more than it saves
_PENDING: list[tuple[Document, dict]] = []  # what forked workers read (inherited, never pickled)


def _second_opinions(docs: list[Document], overlay: dict[Path, Path]) -> None:
    """azure-ai-ml's verdict on each document: from the cache (lint/cache.py) when neither the file
    nor what it depends on changed, else judged now, on every core when there are many (judging is
    most of the time lint takes: azure-ai-ml builds its marshmallow schemas again for every file)."""
    from . import cache
    from .azure import _with_overlay

    texts = [_with_overlay(doc, overlay) for doc in docs]
    results: list[list[Diagnostic] | None] = [cache.lookup(doc, text) for doc, text in zip(docs, texts)]
    todo = [i for i, found in enumerate(results) if found is None]
    if todo:
        from .azure import prepare

        prepare()  # import azure-ai-ml once, before forking
        workers = min(len(todo) // 8, len(os.sched_getaffinity(0)))
        _PENDING[:] = [(docs[i], overlay) for i in todo]
        try:
            if len(todo) < PARALLEL_FROM or workers < 2:
                judged = [_opinion(n) for n in range(len(todo))]
            else:
                import multiprocessing

                with multiprocessing.get_context("fork").Pool(workers) as pool:
                    judged = pool.map(_opinion, range(len(todo)), chunksize=4)
        finally:
            _PENDING.clear()
        for i, (found, opened) in zip(todo, judged):
            results[i] = found
            cache.store(docs[i], texts[i], found, opened)
    for doc, found in zip(docs, results):
        own = {d.line for d in doc.diagnostics if d.severity == ERROR or d.rule == R.PLACEHOLDER.id}
        doc.diagnostics.extend(d for d in found or () if d.line not in own)  # we already said what is wrong there


def _opinion(index: int) -> tuple[list[Diagnostic], list[str]]:
    """azure-ai-ml's verdict on the index-th pending document, and the files it read to reach it."""
    from . import cache
    from .azure import second_opinion

    doc, overlay = _PENDING[index]
    cache.start_recording()
    try:
        found = second_opinion(doc, overlay)
    finally:
        opened = cache.stop_recording()
    return found, opened


_CHECKS = {
    "command_job": Checker.command_job,
    "command_component": Checker.command_component,
    "pipeline_job": Checker.pipeline_job,
    "pipeline_component": Checker.pipeline_job,
    "sweep_job": Checker.sweep_job,
    "environment": Checker.environment,
    "compute": Checker.compute,
    "data": Checker.data_asset,
    "model": Checker.preview_keys,
    "online_endpoint": Checker.preview_keys,
    "online_deployment": Checker.online_deployment,
    "batch_deployment": Checker.batch_deployment,
    "model_batch_deployment": Checker.batch_deployment,
    "schedule": Checker.schedule,
}


def _enabled(doc: Document, disable: set[str]) -> list[Diagnostic]:
    """The findings not silenced by --disable or the file's `# jobgen: disable=ID` comments."""
    whole, by_line = R.disabled_in(doc.text)
    off = disable | whole
    return [d for d in doc.diagnostics if d.rule not in off and d.rule not in by_line.get(d.line, ())]


def _unrecognised(doc: Document) -> Diagnostic:
    name = kinds.schema_name(doc.data)
    if name is not None:
        return Diagnostic(doc.shown, doc.line("$schema"), WARNING, f"$schema '{doc.data['$schema']}' is not a schema "
                          "jobgen knows; only generic checks ran", "check the URL (e.g. .../latest/commandJob.schema"
                          ".json); a newer Azure ML kind is judged by azure-ai-ml when it is submitted",
                          rule=R.UNKNOWN_SCHEMA.id)
    return Diagnostic(doc.shown, 1, WARNING, "not recognised as Azure ML YAML; skipped",
                      "add a $schema line naming the resource type", rule=R.UNRECOGNISED.id)


def _parse(doc: Document) -> None:
    if doc.diagnostics or doc.located is not None:
        return
    try:
        doc.located = load_located(doc.text, doc.shown)
    except JobgenError as exc:
        line = 1
        where = exc.where or ""
        if ":" in where and where.rsplit(":", 1)[1].isdigit():
            line = int(where.rsplit(":", 1)[1])
        doc.diagnostics.append(Diagnostic(doc.shown, line, ERROR, exc.message, exc.hint, rule=R.NOT_YAML.id))
        return
    doc.kind = detect_kind(doc.data, doc.text)


def _compute_size(computes: dict[str, list[tuple[str, str]]]):
    def compute_size(d: Document, ref: str) -> tuple[str | None, bool]:
        name = ref.split(":", 1)[1] if ref.startswith("azureml:") else ref
        found = computes.get(name)
        if found is None:
            return (_sibling_compute(d.path.parent, name), False)
        sizes = {size for _, size in found}
        return (found[0][1], True) if len(sizes) == 1 else (None, True)  # two definitions disagree: judge by neither

    return compute_size


def _compute_catalog(docs: list[Document]) -> dict[str, list[tuple[str, str]]]:
    """Compute name -> [(file, VM size)], from compute YAML among the documents. Two files that
    define one name are reported: jobs are then judged by neither."""
    catalog: dict[str, list[tuple[str, str]]] = {}
    for doc in docs:
        data = doc.data
        if doc.kind == "compute" and data.get("name") and data.get("size"):
            catalog.setdefault(str(data["name"]), []).append((doc.shown, str(data["size"])))
    by_shown = {doc.shown: doc for doc in docs}
    for name, found in catalog.items():
        if len({size for _, size in found}) > 1:
            for shown, size in found:
                others = ", ".join(f"{s} ({z})" for s, z in found if s != shown)
                by_shown[shown].report(R.DUPLICATE_COMPUTE, ("name",), f"compute '{name}' is also defined in "
                                       f"{others} with another size; jobs on it are not checked against either",
                                       "give each cluster its own name, or lint the folders separately")
    return catalog


def _sibling_compute(folder: Path, name: str) -> str | None:
    """A compute YAML named ``name`` next to the job (the layout we render)."""
    try:
        candidates = sorted(p for p in folder.iterdir() if p.suffix in (".yml", ".yaml"))
    except OSError:
        return None
    for path in candidates:
        data = _load_plain(path)
        if data and detect_kind(data) == "compute" and str(data.get("name")) == name and data.get("size"):
            return str(data["size"])
    return None
