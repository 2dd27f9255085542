"""Job definitions kept in git: ``jobs/<name>/values.yaml`` renders into ``jobs/<name>/``.
``render --check`` re-renders every definition and reports drift as a unified diff."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from . import paths

VALUES_NAME = "values.yaml"
MARKER = "# Rendered by jobgen"


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


def is_rendered(path: Path) -> bool:
    """Whether a file on disk was written by the generator (its header says so)."""
    try:
        with path.open(encoding="utf-8") as fh:
            head = fh.read(400)
    except (OSError, UnicodeDecodeError):
        return False
    return MARKER in head


def stale_files(out_dir: Path, produced: set[Path]) -> list[Path]:
    """Generator-written files in ``out_dir`` that the current values no longer produce."""
    if not out_dir.is_dir():
        return []
    return sorted(p for p in out_dir.iterdir()
                  if p.is_file() and p.suffix in (".yml", ".yaml") and p.resolve() not in produced and is_rendered(p))


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
