"""Job definitions kept in git: ``jobs/<name>/values.yaml`` renders into ``jobs/<name>/``.
``render --check`` re-renders every definition and reports drift as a unified diff."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from . import paths

VALUES_NAME = "values.yaml"
MARKER = "# Rendered by jobgen"
SOURCES_RE = re.compile(r"^# Rendered by jobgen from (.+?)\. Do not edit by hand", re.M)


@dataclass(frozen=True)
class Definition:
    name: str
    values: Path
    out_dir: Path


def definitions(jobs_dir: Path | None = None) -> list[Definition]:
    jobs_dir = jobs_dir or paths.jobs_dir()
    found = []
    for values in sorted(jobs_dir.glob(f"*/{VALUES_NAME}")):
        found.append(Definition(values.parent.name, values, values.parent))
    return found


def _head(path: Path) -> str:
    try:
        with path.open(encoding="utf-8") as fh:
            return fh.read(400)
    except (OSError, UnicodeDecodeError):
        return ""


def is_rendered(path: Path) -> bool:
    """Whether a file on disk was written by the generator (its header says so)."""
    return MARKER in _head(path)


def header_sources(path: Path) -> list[str] | None:
    """The values a rendered file came from, as its header names them; None if it has none."""
    found = SOURCES_RE.search(_head(path))
    return [s.strip() for s in found.group(1).split(",")] if found else None


def stale_files(out_dir: Path, produced: set[Path], sources: list[str] | None = None) -> list[Path]:
    """Generator-written files in ``out_dir`` that the current values no longer produce. With
    ``sources``, only files rendered from those same values: a file another set of values
    rendered is left alone."""
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.iterdir()
                  if p.is_file() and p.suffix in (".yml", ".yaml") and p.resolve() not in produced and is_rendered(p)
                  and (sources is None or header_sources(p) == sources))


def check_targets(files: dict[Path, str], value_files: list[Path]) -> None:
    """Refuse, before anything is written, a render that would replace what it did not render:
    a file without jobgen's header (a hand-written jobs/data.yml), or the files of a job
    definition folder (one with values.yaml) rendered from other values."""
    from .errors import JobgenError

    given = {Path(f).resolve() for f in value_files}
    for folder in sorted({path.parent for path in files}):
        values = folder / VALUES_NAME
        if values.is_file() and values.resolve() not in given:
            raise JobgenError(f"this folder holds the job definition {paths.display(values)}; rendering other "
                              "values into it would replace its files", where=paths.display(folder),
                              hint=f"render it from its own values (-f {paths.display(values)}, or render --all), "
                                   "or choose another folder with -o")
    for path in files:
        if (path.is_file() or path.is_symlink()) and not is_rendered(path):
            raise JobgenError("exists and was not written by jobgen (it has no '# Rendered by jobgen' header); "
                              "refusing to overwrite it", where=paths.display(path),
                              hint="move it away, or render into another folder with -o")


def diff(path: Path, expected: str) -> str:
    """Unified diff from what is on disk to what the values render ('' when equal)."""
    try:
        actual = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        actual = None
    if actual == expected:
        return ""
    shown = paths.display(path)
    before = [] if actual is None else actual.splitlines(keepends=True)
    lines = difflib.unified_diff(before, expected.splitlines(keepends=True),
                                 fromfile=f"{shown} (committed)" if actual is not None else "/dev/null",
                                 tofile=f"{shown} (rendered)")
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)
