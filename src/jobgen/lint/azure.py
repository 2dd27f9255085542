"""azure-ai-ml as a second opinion: ``load_*`` and ``_validate()``, offline, its errors
reported in our format with the line they point at. Imported only when linting (the
package alone costs over a second to import)."""

from __future__ import annotations

import io
import logging
import warnings
from typing import Any

from .model import Diagnostic, Document

_QUIETED = False


def _quiet() -> None:
    # azure-ai-ml logs "experimental" notices for fields we use; they are not findings.
    # (Once: Logger.setLevel clears every logger's cache, which is slow when repeated.)
    global _QUIETED
    if _QUIETED:
        return
    _QUIETED = True
    _fast_yaml()
    _no_location_lookup()
    for name in ("azure.ai.ml", "azure.ai.ml._utils._experimental", "azure"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", module="marshmallow")
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*marshmallow.*")


def prepare() -> None:
    """Import azure-ai-ml and set it up for linting (before lint forks workers)."""
    _quiet()
    from azure.ai.ml.entities import _load_functions  # noqa: F401


def _no_location_lookup() -> None:
    """azure-ai-ml turns each load error into a result whose diagnostics it locates by parsing the
    file again with a pure-Python YAML parser (half of the cost of linting a file it rejects). Lint
    locates findings itself, from the YAML path (``_diag``), so that lookup is skipped."""
    try:
        from azure.ai.ml.entities._validation.core import MutableValidationResult
    except ImportError:  # pragma: no cover - another azure-ai-ml layout: keep its own behaviour
        return
    MutableValidationResult.resolve_location_for_diagnostics = lambda self, *args, **kwargs: None


def _fast_yaml() -> None:
    """azure-ai-ml parses YAML with PyYAML's pure-Python SafeLoader; the C SafeLoader
    (same YAML 1.1 rules, same result) is about ten times faster. Swap it in for the
    loaders' own parse step when libyaml is present."""
    import yaml

    c_loader = getattr(yaml, "CSafeLoader", None)
    if c_loader is None:
        return
    from azure.ai.ml.entities import _load_functions

    original = getattr(_load_functions, "load_yaml", None)
    if original is None or getattr(original, "_jobgen_fast", False):
        return

    def load_yaml(source: Any) -> dict:
        if isinstance(source, io.StringIO):
            try:
                return yaml.load(source.getvalue(), Loader=c_loader)
            except yaml.YAMLError:
                pass  # let azure-ai-ml report it in its own words
        return original(source)

    load_yaml._jobgen_fast = True  # type: ignore[attr-defined]
    _load_functions.load_yaml = load_yaml


def available() -> bool:
    try:
        import azure.ai.ml  # noqa: F401
    except ImportError:
        return False
    return True


def _with_overlay(doc: Document, overlay: dict) -> str:
    """The pipeline's text with components that are staged (rendered in the same batch, not
    yet in place) pointed at their staged copies; same lines, so findings keep their line."""
    if doc.kind != "pipeline_job" or not overlay:
        return doc.text
    import re
    from pathlib import Path

    def swap(match: "re.Match[str]") -> str:
        ref = match.group(2).strip("'\"")
        target = (doc.path.parent / ref).resolve()
        staged = overlay.get(target)
        return f"{match.group(1)}{staged}" if staged else match.group(0)

    return re.sub(r"^(\s*component:\s*)(\S+)\s*$", swap, doc.text, flags=re.M)


def second_opinion(doc: Document, overlay: dict | None = None) -> list[Diagnostic]:
    from ..azml.kinds import load_function, loader as kind_loader

    if kind_loader(doc.kind) is None:
        return []
    _quiet()
    from marshmallow.exceptions import ValidationError

    loader = load_function(doc.kind)
    if loader is None:  # an older azure-ai-ml without this kind's loader
        return []
    out: list[Diagnostic] = []
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            entity = loader(source=io.StringIO(_with_overlay(doc, overlay or {})), relative_origin=str(doc.path))
            result = _validate(entity) if hasattr(entity, "_validate") else None
    except ValidationError as exc:
        for ypath, message in _flatten(_raw_messages(exc)):
            out.append(_diag(doc, ypath, message))
        if not out:
            out.append(_diag(doc, (), _first_line(str(exc))))
        return [_soften(doc, d) for d in out]
    except NotImplementedError:  # azure-ai-ml cannot validate this kind offline: no opinion
        return []
    except Exception as exc:  # noqa: BLE001 - azure-ai-ml raises many kinds for user input
        message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        return [_diag(doc, (), _first_line(message))]
    if result is not None and getattr(result, "passed", True) is False:
        for diagnostic in getattr(result, "_errors", []):
            ypath = tuple(p for p in str(diagnostic.yaml_path or "").split(".") if p and p != "*")
            out.append(_diag(doc, ypath, _first_line(diagnostic.message or "invalid")))
    return [_soften(doc, d) for d in out]


def _soften(doc: Document, diag: Diagnostic) -> Diagnostic:
    """What azure-ai-ml calls an error but the CLI user supplies at submission (a deployment's
    endpoint_name: --endpoint-name or --set) or a template's placeholder (<SUBSCRIPTION_ID>) is a
    warning that says so."""
    from dataclasses import replace

    from .checks import PLACEHOLDER

    if doc.kind in ("online_deployment", "batch_deployment", "model_batch_deployment", "pipeline_batch_deployment") \
            and diag.message.startswith("endpoint_name: Missing data for required field"):
        return replace(diag, severity="warning", message="no endpoint_name: the deployment names no endpoint",
                       hint="pass it when you create it: az ml online-deployment create --endpoint-name <name> (or "
                            "--set endpoint_name=<name>), or write endpoint_name: in the file")
    if doc.kind and doc.kind.endswith("_component") and diag.message.startswith("name: Missing data for required"):
        return replace(diag, severity="warning", message="no name: a pipeline can use this component inline, but "
                       "az ml component create needs one", hint="add name: <lower_case_name> to register it")
    lines = doc.text.splitlines()
    if 0 < diag.line <= len(lines) and PLACEHOLDER.search(lines[diag.line - 1]):
        return replace(diag, severity="warning", hint="the line holds a template placeholder; fill it in first")
    return diag


# Validation schemas built so far, by entity class (command jobs only, see _validate).
_SCHEMAS: dict[type, Any] = {}
REUSE_SCHEMAS = True


def _validate(entity: Any) -> Any:
    """``entity._validate()``, without rebuilding validation schemas every time.

    azure-ai-ml's ``_validate`` reads the ``_schema_for_validation`` property twice (dump,
    then validate), and each read builds the whole marshmallow schema again: about 15 ms for
    a command, most of the cost of linting a command job, and most of a pipeline's, whose
    command steps are validated one by one the same way. The schema's only state is its
    context (the YAML file's folder), a dict that nested schemas share by reference. So a
    command's schema (a command job's, a pipeline step's) is built once per process and its
    context is set to the command's before use; other kinds build theirs once per call. The
    checks themselves are unchanged (tests/test_lint_azure.py compares both ways on every
    fixture and on the corpus of official examples)."""
    from azure.ai.ml.entities import Command

    patched = [cls for cls in dict.fromkeys((Command, type(entity)))
               if isinstance(getattr(cls, "_schema_for_validation", None), property)
               and "_schema_for_validation" not in cls.__dict__]
    originals = {cls: cls._schema_for_validation for cls in patched}
    built: dict[int, Any] = {}

    def once_for(cls: type):
        prop = originals[cls]
        reuse = REUSE_SCHEMAS and cls is Command

        def once(self: Any) -> Any:
            if type(self) is not cls or (self is not entity and not reuse):
                return prop.fget(self)
            if id(self) in built:
                return built[id(self)]
            schema = _SCHEMAS.get(cls) if reuse else None
            context = self._default_context()
            if schema is not None and isinstance(schema.context, dict) and set(schema.context) == set(context):
                schema.context.clear()
                schema.context.update(context)
            else:
                schema = prop.fget(self)
                if reuse:
                    _SCHEMAS[cls] = schema
            built[id(self)] = schema
            return schema

        return property(once)

    for cls in patched:
        cls._schema_for_validation = once_for(cls)  # type: ignore[attr-defined]
    try:
        return entity._validate()
    finally:
        for cls in patched:
            del cls._schema_for_validation


def _raw_messages(exc: BaseException) -> Any:
    """The innermost marshmallow message dict (azure-ai-ml re-raises it as pretty text)."""
    found: Any = None
    seen = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        messages = getattr(current, "messages", None)
        if isinstance(messages, dict) and not _is_pretty(messages):
            found = messages
        current = current.__cause__ or current.__context__
    return found if found is not None else getattr(exc, "messages", None)


def _is_pretty(messages: dict) -> bool:
    return set(messages) <= {"_schema"} and all(isinstance(v, list) and v and isinstance(v[0], str)
                                                and v[0].startswith("Validation for") for v in messages.values())


def _flatten(messages: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    """marshmallow's nested messages -> [(yaml path, message)]; for union fields (a list of
    one dict per alternative) keep the alternative that got furthest."""
    if messages is None:
        return []
    if isinstance(messages, str):
        return [(path, messages)]
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            sub = path if key in ("_schema", "value") else path + (key,)
            out.extend(_flatten(value, sub))
        return out
    if isinstance(messages, list):
        if messages and all(isinstance(m, str) for m in messages):
            return [(path, "; ".join(dict.fromkeys(messages)))]
        alternatives = [_flatten(m, path) for m in messages]
        alternatives = [a for a in alternatives if a]
        if not alternatives:
            return []
        # Prefer an alternative whose 'type' matched (no complaint about type), then the fewest complaints.
        def score(alt: list[tuple[tuple, str]]) -> tuple[int, int]:
            type_miss = any(p[-1:] == ("type",) and "not in set" in m for p, m in alt)
            return (int(type_miss), len(alt))
        return min(alternatives, key=score)
    return [(path, str(messages))]


def _first_line(message: str) -> str:
    lines = [line.strip() for line in str(message).strip().splitlines() if line.strip()]
    text = lines[0] if lines else "invalid"
    return text if len(text) <= 300 else text[:297] + "..."


def _diag(doc: Document, ypath: tuple, message: str) -> Diagnostic:
    clean = tuple(int(p) if isinstance(p, str) and p.isdigit() else p for p in ypath)
    where = ".".join(str(p) for p in clean)
    text = f"{where}: {_first_line(message)}" if where else _first_line(message)
    return Diagnostic(doc.shown, doc.line(*clean), "error", text, None, source="azure-ai-ml", rule="JG007")
