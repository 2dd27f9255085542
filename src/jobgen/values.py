"""Values: defaults file < ``-f`` files (later wins) < shortcut flags < ``--set a.b=c``.

``--set`` paths are the job's own YAML paths, exactly as ``az ml job create --set`` takes
them (``resources.instance_count=2``, ``inputs.epochs=5``, ``compute=azureml:big``); the
generator's other sections are addressed by their name (``cluster.size=...``,
``env.version=2``, ``data.path=...``, ``launcher.type=torchrun``).
"""

from __future__ import annotations

import copy
import difflib
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from . import paths
from .errors import JobgenError
from .yamlio import load_file

SECTIONS = ("job", "launcher", "cluster", "env", "data", "services", "pipeline", "sweep", "schedule", "endpoint", "batch",
            "registry", "components")

# Keys of an Azure ML command job (CLI v2 YAML reference); a --set path that starts with
# one of them is a job path, as with `az ml job create --set`.
JOB_KEYS = (
    "$schema", "type", "name", "display_name", "experiment_name", "description", "tags",
    "properties", "code", "command", "environment", "environment_variables", "compute",
    "resources", "distribution", "limits", "inputs", "outputs", "identity", "services",
    "queue_settings",
)

# Maps whose keys are the user's to choose (new keys are allowed there).
FREE_MAPS = {
    ("job", "inputs"), ("job", "outputs"), ("job", "environment_variables"), ("job", "tags"),
    ("job", "properties"), ("job", "services"), ("env", "conda"), ("job", "identity"),
    ("job", "queue_settings"), ("job", "resources", "properties"), ("sweep", "search_space"),
    ("sweep", "early_termination"), ("schedule", "recurrence"),
}


def _stamp() -> int:
    try:
        return paths.defaults_file().stat().st_mtime_ns
    except OSError:
        return 0


def load_defaults() -> dict[str, Any]:
    return copy.deepcopy(_defaults_cached(str(paths.defaults_file()), _stamp()))


@lru_cache(maxsize=4)
def _defaults_cached(path: str, stamp: int) -> dict[str, Any]:
    return load_values_file(Path(path), what="defaults file")


def load_values_file(path: Path, what: str = "values file") -> dict[str, Any]:
    located = load_file(path)
    data = located.data
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise JobgenError(f"{what} must be a mapping of sections (job:, cluster:, ...), "
                          f"found {type(data).__name__}", where=str(path),
                          hint="start the file with e.g. 'job:' and indent the job's keys under it")
    if located.duplicates:
        dup_path, line = located.duplicates[0]
        raise JobgenError(f"key '{'.'.join(map(str, dup_path))}' appears twice", where=f"{path}:{line}",
                          hint="keep one of them; YAML would silently use the last")
    return data


# Mappings that replace what they override instead of merging into it: a search-space
# parameter of another type, another early-termination policy.
REPLACED_WHOLE = {("sweep", "early_termination")}
REPLACED_CHILDREN = {("sweep", "search_space")}


def deep_merge(base: dict[str, Any], override: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """Mappings merge key by key; anything else (lists, scalars, null) replaces."""
    out = dict(base)
    for key, value in override.items():
        sub = path + (str(key),)
        if isinstance(value, dict) and isinstance(out.get(key), dict) and sub not in REPLACED_WHOLE \
                and path not in REPLACED_CHILDREN:
            out[key] = deep_merge(out[key], value, sub)
        else:
            out[key] = copy.deepcopy(value)
    return out


def check_known_keys(values: dict[str, Any], defaults: dict[str, Any], where: str) -> None:
    """Every key of ``values`` must exist in ``defaults`` (except inside free maps)."""

    def walk(node: Any, ref: Any, path: tuple[str, ...]) -> None:
        if not isinstance(node, dict) or path in FREE_MAPS:
            return
        if not isinstance(ref, dict):
            return
        for key, value in node.items():
            if key not in ref:
                dotted = ".".join(path + (str(key),))
                known = [str(k) for k in ref]
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"did you mean '{'.'.join(path + (close[0],))}'?" if close else \
                    f"known keys here: {', '.join(known)}"
                if not path and str(key) in JOB_KEYS:
                    hint = f"job keys go under 'job:' (job.{key})"
                raise JobgenError(f"unknown key '{dotted}'", where=where, hint=hint)
            walk(value, ref[key], path + (str(key),))

    walk(values, defaults, ())


def parse_set_value(raw: str) -> Any:
    """A --set value keeps the meaning it has for `az ml job create --set`, where it is a
    string that Azure's schema coerces. It becomes a YAML number only when that number
    prints back as the same text (so `5` -> 5, `0.001` -> 0.001), which changes nothing in a
    command line; `true`, `1e-3`, `01` and the like stay strings."""
    try:
        parsed = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw
    if isinstance(parsed, (int, float)) and not isinstance(parsed, bool) and str(parsed) == raw:
        return parsed
    return raw


def apply_sets(data: dict, sets: list[str]) -> dict:
    """`--set a.b=c` on the job YAML itself, as `az ml job create --set` does."""
    for assignment in sets:
        if "=" not in assignment:
            raise JobgenError(f"--set expects PATH=VALUE, got '{assignment}'", where="--set",
                              hint="e.g. --set resources.instance_count=2")
        dotted, raw = assignment.split("=", 1)
        parts = [p for p in dotted.strip().split(".")]
        if not all(parts):
            raise JobgenError(f"malformed --set path '{dotted}'", where="--set")
        cursor = data
        for part in parts[:-1]:
            nxt = cursor.get(part)
            if nxt is None:
                nxt = cursor[part] = {}
            if not isinstance(nxt, dict):
                raise JobgenError(f"--set {dotted}: '{part}' is not a mapping", where="--set")
            cursor = nxt
        cursor[parts[-1]] = parse_set_value(raw)
    return data


def set_path(values: dict[str, Any], assignment: str, defaults: dict[str, Any]) -> dict[str, Any]:
    """Apply one ``a.b=c``; returns new values. Unknown paths are errors with a suggestion."""
    if "=" not in assignment:
        raise JobgenError(f"--set expects PATH=VALUE, got '{assignment}'", where="--set",
                          hint="e.g. --set resources.instance_count=2")
    dotted, raw = assignment.split("=", 1)
    dotted = dotted.strip()
    parts = dotted.split(".")
    if not dotted or any(p == "" for p in parts):
        raise JobgenError(f"malformed --set path '{dotted}'", where="--set",
                          hint="use dotted keys like distribution.process_count_per_instance=4")
    if parts[0] not in SECTIONS:
        if parts[0] in JOB_KEYS:
            parts = ["job", *parts]
        else:
            close = difflib.get_close_matches(parts[0], list(JOB_KEYS) + list(SECTIONS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else \
                "paths start with a job key (resources, distribution, inputs, ...) or cluster., env., data., launcher."
            raise JobgenError(f"unknown --set path '{dotted}'", where="--set", hint=hint)
    value = parse_set_value(raw)
    patch: dict[str, Any] = {}
    cursor = patch
    for part in parts[:-1]:
        cursor = cursor.setdefault(part, {})
    cursor[parts[-1]] = value
    # A path must exist in the defaults unless it lands in a free map (new inputs are fine).
    ref: Any = defaults
    for i, part in enumerate(parts):
        if tuple(parts[:i]) in FREE_MAPS:
            break
        if not isinstance(ref, dict) or part not in ref:
            # Allow any key under a mapping the user has already given (e.g. job.inputs.data.mode).
            current: Any = values
            for p in parts[:i]:
                current = current.get(p) if isinstance(current, dict) else None
            if isinstance(current, dict) and i > 0 and tuple(parts[:i - 1]) in FREE_MAPS:
                break
            known = list(ref) if isinstance(ref, dict) else []
            close = difflib.get_close_matches(part, [str(k) for k in known], n=1)
            hint = f"did you mean '{'.'.join(parts[:i] + [close[0]])}'?" if close else \
                "see templates/defaults.yaml for every path"
            raise JobgenError(f"unknown --set path '{dotted}'", where="--set", hint=hint)
        ref = ref[part]
    return deep_merge(values, patch)


def leaf_paths(data: Any, prefix: tuple[str, ...] = ()) -> list[str]:
    """Dotted paths of every value in a nested mapping (mappings themselves included)."""
    out = []
    if isinstance(data, dict):
        for key, value in data.items():
            path = prefix + (str(key),)
            out.append(".".join(path))
            out.extend(leaf_paths(value, path))
    return out


def resolve_values(files: list[Path], sets: list[str], flags: dict[str, Any] | None = None,
                   origins: dict[str, str] | None = None) -> dict[str, Any]:
    """defaults < files (in order) < flags (already shaped as a patch) < --set (in order).
    ``origins`` (if given) learns which values file set each path, for error messages."""
    reference = _defaults_cached(str(paths.defaults_file()), _stamp())  # read only: which keys exist
    values = load_defaults()  # a fresh copy
    for f in files:
        data = load_values_file(Path(f))
        check_known_keys(data, reference, where=str(f))
        values = deep_merge(values, data)
        if origins is not None:
            shown = paths.display(Path(f))
            for dotted in leaf_paths(data):
                origins[dotted] = f"{shown}: {dotted}"
    if flags:
        values = deep_merge(values, flags)
    for assignment in sets:
        values = set_path(values, assignment, reference)
    return values
