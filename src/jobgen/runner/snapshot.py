"""The code snapshot: the files Azure would upload from `code:`, copied into the run folder the job
runs from.

What azure-ai-ml 1.35.2 uploads (`get_upload_files_from_folder`): every file under the folder,
following symbolic links (a linked file is uploaded under the link's name, a linked folder is
walked), minus what the folder's `.amlignore` (else `.gitignore`) excludes, matched against the
link's *target* path. So a link to a folder outside `code` is uploaded whatever the ignore file
says, and a link to nothing makes the upload fail.

Here the same list is made, with three refusals that lint reports too: a link that points outside
the code folder (its files are never copied), a link that points nowhere, and a linked folder
that contains itself (the walk would never end).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from ..errors import JobgenError
from .rundir import RunFolderError

LIMIT_BYTES = 300 * 1024 * 1024  # Azure refuses larger snapshots
IGNORE_FILES = (".amlignore", ".gitignore")  # the first one present is used, as azure-ai-ml does
LINK_HINT = ("copy what the job needs into the code folder (components can list folders outside it under "
             "additional_includes), or remove the link")


@dataclass
class CodeFiles:
    """What the snapshot of a code folder holds: (source, path inside the snapshot) pairs, their
    size, and the links that stop it (one line each, never the files' contents)."""

    files: list[tuple[Path, str]] = field(default_factory=list)
    size: int = 0
    problems: list[str] = field(default_factory=list)
    truncated: bool = False  # the walk stopped at the size limit


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _ignore_matcher(root: Path) -> Callable[[Path], bool] | None:
    """``is_file_excluded`` of the ignore file azure-ai-ml would use for ``root`` (its
    ``get_ignore_file``), or None when the folder has none."""
    for name in IGNORE_FILES:
        if (root / name).is_file():
            return IgnoreRules(root / name).excluded
    return None


class IgnoreRules:
    """azure-ai-ml's ``IgnoreFile.is_file_excluded`` (``_utils/_asset_utils.py``) over its own
    gitwildmatch patterns (``_utils/_pathspec.py``): the lines of the file, each a pattern; a
    path relative to the file's folder is excluded when the last pattern that matches it
    excludes. The pattern module is loaded from its file, as it needs only the standard library:
    importing it by name would run azure-ai-ml's package ``__init__`` first (over a second, on
    every lint and run of a job whose code folder has a .gitignore)."""

    def __init__(self, path: Path):
        module = _pathspec_module()
        self.base = path.parent
        with open(path, "r", encoding="utf-8-sig") as fh:  # DefaultOpenEncoding.READ
            lines = [line.rstrip() for line in fh if line]
        self.normalize = module.normalize_file
        self.patterns = [module.GitWildMatchPattern(line) for line in lines]

    def excluded(self, real: Path) -> bool:
        if not self.patterns:
            return False
        relative = os.path.relpath(Path(real).absolute(), self.base)
        norm = self.normalize(relative)
        matched = False
        for pattern in self.patterns:
            if pattern.include is not None and pattern.match_file(norm) is not None:
                matched = pattern.include
        return bool(matched)


@lru_cache(maxsize=1)
def _pathspec_module():
    import importlib.util
    import sys

    name = "jobgen._azure_ai_ml_pathspec"
    if name in sys.modules:
        return sys.modules[name]
    azure = importlib.util.find_spec("azure")  # a namespace package: finding it runs nothing
    for base in (azure.submodule_search_locations or []) if azure else []:
        path = Path(base) / "ai" / "ml" / "_utils" / "_pathspec.py"
        if path.is_file():
            spec = importlib.util.spec_from_file_location(name, path)
            if spec is None or spec.loader is None:
                break
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            try:
                spec.loader.exec_module(module)
            except Exception:  # pragma: no cover - another azure-ai-ml layout: import it whole
                del sys.modules[name]
                break
            return module
    from azure.ai.ml._utils import _pathspec

    return _pathspec


def code_files(code: Path, skip: Callable[[Path], bool] | None = None, limit: int | None = None) -> CodeFiles:
    """The snapshot's files; ``skip(folder)`` leaves a folder out (the runner's own run folders),
    ``limit`` stops counting once the size is past it."""
    root = Path(code).resolve()
    out = CodeFiles()
    if root.is_file():
        out.files.append((root, root.name))
        out.size = root.stat().st_size
        return out
    excluded = _ignore_matcher(root) or (lambda real: False)

    def add(source: Path, relative: str) -> None:
        try:
            out.size += source.stat().st_size
        except OSError as exc:
            out.problems.append(f"{relative}: cannot be read ({exc.strerror})")
            return
        out.files.append((source, relative))
        if limit is not None and out.size > limit:
            out.truncated = True

    def walk(folder: Path, prefix: str, stack: frozenset[Path]) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            out.problems.append(f"{prefix or '.'}/: cannot be read ({exc.strerror})")
            return
        for entry in entries:
            if out.truncated:
                return
            relative = f"{prefix}/{entry.name}" if prefix else entry.name
            path = Path(entry.path)
            if entry.is_symlink():
                link(path, relative, stack)
            elif entry.is_dir(follow_symlinks=False):
                if not (skip and skip(path)):
                    walk(path, relative, stack | {path})
            elif entry.is_file(follow_symlinks=False):
                if not excluded(path):
                    add(path, relative)
            elif not excluded(path):
                out.problems.append(f"{relative} is not a regular file (a socket, pipe or device); the upload "
                                    "cannot read it")

    def link(path: Path, relative: str, stack: frozenset[Path]) -> None:
        target = Path(os.path.realpath(path))
        shown = os.readlink(path)
        if not _inside(target, root):
            state = "outside the code folder" if target.exists() else "nowhere (it does not exist)"
            out.problems.append(f"{relative} links to {shown}, {state}; Azure would follow it" +
                                (" and upload what it points to, whatever the ignore file says"
                                 if target.exists() else " and its upload fails"))
        elif not target.exists():
            if not excluded(target):
                out.problems.append(f"{relative} links to {shown}, which does not exist; Azure's upload fails on it")
        elif target.is_dir():
            if any(_inside(folder, target) for folder in stack):
                out.problems.append(f"{relative} links to {shown}, a folder that holds the link itself; the "
                                    "upload would walk it forever")
            elif not (skip and skip(target)):
                walk(target, relative, stack | {target})
        elif not excluded(target):
            add(target, relative)

    walk(root, "", frozenset({root}))
    return out


@lru_cache(maxsize=64)
def code_files_cached(code: str, mtime: float) -> CodeFiles:
    """For lint: one walk per code folder (and modification time) per process."""
    return code_files(Path(code), limit=LIMIT_BYTES)


def refusal(code: Path, problems: list[str]) -> JobgenError:
    more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
    return JobgenError(f"code folder {code}: {problems[0]}{more}; nothing was copied", hint=LINK_HINT)


def snapshot(code: Path, dest: Path, skip: Callable[[Path], bool] | None = None) -> int:
    """Copy ``code`` (a folder or one file) into ``dest``, which the caller owns and which is
    replaced; returns bytes copied. Nothing is copied when a link is refused or the folder is
    too large; a copy that fails (a full disk) is removed again."""
    if not code.exists():
        raise JobgenError(f"code path {code} does not exist", hint="fix `code:` (relative to the YAML file)")
    if _inside(code.resolve(), dest.resolve()):
        raise JobgenError(f"code folder {code} is inside the run folder's snapshot {dest}; it would be replaced",
                          hint="choose a --run-dir that does not hold the code")
    listing = code_files(code, skip=skip, limit=LIMIT_BYTES)
    if listing.problems:
        raise refusal(code, listing.problems)
    if listing.truncated:
        raise JobgenError(f"code folder {code} holds more than 300 MB; Azure refuses snapshots that large",
                          hint="point code at the sources only, or list data and checkpoints in .amlignore")
    try:
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        for source, relative in listing.files:
            target = dest / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    except OSError as exc:
        shutil.rmtree(dest, ignore_errors=True)  # a half copy only takes the space the summary needs
        raise RunFolderError(f"cannot copy the code snapshot into {dest}: {exc.strerror}",
                          hint="free disk space (df -h) or choose a --run-dir on another disk") from None
    return listing.size
