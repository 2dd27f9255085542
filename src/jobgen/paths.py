"""Where the project's files are. The repository layout is part of the product: templates/,
components/ and jobs/ sit at the root beside generator.py; paths in values files are relative
to that root."""

from __future__ import annotations

import os
from pathlib import Path


def root() -> Path:
    """The project root: $JOBGEN_ROOT, else the checkout this package lives in."""
    env = os.environ.get("JOBGEN_ROOT")
    if env:
        return Path(env).resolve()
    return Path(__file__).resolve().parents[2]


def templates_dir() -> Path:
    return root() / "templates"


def defaults_file() -> Path:
    return templates_dir() / "defaults.yaml"


def jobs_dir() -> Path:
    return root() / "jobs"


def components_dir() -> Path:
    return root() / "components"


def display(path: Path) -> str:
    """A path as the user should read it: relative to the current folder when inside it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:  # pragma: no cover - other drive on Windows
        return str(path)
    return str(Path(path).absolute()) if rel.startswith("..") else rel


def relative_posix(target: Path, start: Path) -> str:
    """``target`` relative to folder ``start``, with forward slashes (YAML is shared across OSes)."""
    return Path(os.path.relpath(target, start)).as_posix()
