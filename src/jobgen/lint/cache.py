"""azure-ai-ml's verdicts on files that have not changed, kept on disk by content, as linters keep
theirs (ruff's and mypy's caches): the second opinion costs a second or two of importing
azure-ai-ml before the first file, and is most of what lint does after that.

An entry is found by a key over everything the verdict is computed from:
- the document's text (as azure-ai-ml is given it), kind and absolute path (relative references
  resolve against its folder);
- the installed azure-ai-ml and marshmallow versions, and the source of the modules here that load
  and word the verdict (so a new azure-ai-ml or a change to jobgen checks everything again);
and it is used only while the files the verdict depends on are as they were: every file
azure-ai-ml opened or listed while judging (a pipeline's component files, a conda file), and every
local path the document names (``code: ./src``, ``path: ./data``), recorded with their size and
modification time, or as absent. A file that appears, disappears or changes is judged again.

Entries live under ``$JOBGEN_LINT_CACHE`` or ``$XDG_CACHE_HOME/jobgen/lint`` (else
``~/.cache/jobgen/lint``), one small JSON file each; ``JOBGEN_LINT_CACHE=off`` or
``lint --no-cache`` turns the cache off. A cache that cannot be read or written is skipped
without a word: it only ever saves time.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from .model import Diagnostic, Document

FORMAT = 1
OFF = ("0", "off", "no", "false")
# jobgen's modules whose code shapes a verdict: what is loaded, how findings are located and worded.
SOURCES = ("lint/azure.py", "lint/model.py", "lint/cache.py", "lint/checks.py", "azml/kinds.py", "rules.py",
           "yamlio.py")
SKIP_PREFIXES = ("azureml:", "azureml://", "http://", "https://", "wasbs://", "abfss://", "adl://", "${{", "git+")

_disabled_by_flag = False


def disable() -> None:
    """``lint --no-cache``: judge every file again in this process."""
    global _disabled_by_flag
    _disabled_by_flag = True


def directory() -> Path | None:
    """Where entries are kept, or None when the cache is off."""
    if _disabled_by_flag:
        return None
    chosen = os.environ.get("JOBGEN_LINT_CACHE", "")
    if chosen.strip().lower() in OFF:
        return None
    if chosen:
        return Path(chosen).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return root / "jobgen" / "lint"


@lru_cache(maxsize=1)
def stamp() -> str:
    """What every key shares: the versions and the source of the code that makes a verdict."""
    from importlib import metadata

    digest = hashlib.sha256(f"format {FORMAT}\n".encode())
    for dist in ("azure-ai-ml", "marshmallow"):
        try:
            digest.update(f"{dist} {metadata.version(dist)}\n".encode())
        except metadata.PackageNotFoundError:
            digest.update(f"{dist} absent\n".encode())
    package = Path(__file__).resolve().parents[1]
    for name in SOURCES:
        try:
            digest.update(name.encode() + b"\0" + (package / name).read_bytes())
        except OSError:
            digest.update(name.encode() + b"\0absent")
    return digest.hexdigest()


def _where(doc: Document) -> Path:
    """Where the file lives: a rendered file is linted in a staging copy in a folder beside its
    own (so ``../`` paths mean the same) and its verdict is kept under the place it is written to;
    one that names a staged sibling (``./conda.yaml``) records that copy, which moves, and is
    judged again when linted in place."""
    return Path(os.path.abspath(doc.display_as)) if doc.display_as else doc.path


def key(doc: Document, text: str) -> str:
    facts = json.dumps([stamp(), doc.kind, str(_where(doc)), text], ensure_ascii=False)
    return hashlib.sha256(facts.encode("utf-8")).hexdigest()


# ------------------------------------------------------------------ what a verdict depends on

def _fingerprint(path: str) -> list:
    try:
        st = os.stat(path)
    except OSError:
        return [path, None, None]
    return [path, st.st_mtime_ns, st.st_size]


def _ours(path: str) -> bool:
    """Files of the Python installation (azure-ai-ml's own schema files) change only with a version,
    which the key holds already."""
    return not any(path.startswith(prefix) for prefix in _installation())


@lru_cache(maxsize=1)
def _installation() -> tuple[str, ...]:
    import sysconfig

    found = {sys.prefix, sys.base_prefix, sys.exec_prefix, str(Path(__file__).resolve().parents[1])}
    for name in ("stdlib", "platstdlib", "purelib", "platlib"):
        try:
            found.add(sysconfig.get_paths()[name])
        except KeyError:  # pragma: no cover
            pass
    return tuple(p.rstrip("/") + "/" for p in found if p)


class _Recorder:
    """The files and folders this process opens or lists while ``active`` (an audit hook: it sees
    every open(), os.listdir() and os.scandir(), whoever calls them)."""

    def __init__(self) -> None:
        self.seen: list[str] | None = None
        self.installed = False

    def install(self) -> None:
        if not self.installed:
            sys.addaudithook(self.hook)
            self.installed = True

    def hook(self, event: str, args: tuple) -> None:
        seen = self.seen
        if seen is None or event not in ("open", "os.listdir", "os.scandir"):
            return
        target = args[0] if args else None
        if isinstance(target, (str, bytes, os.PathLike)):
            try:
                seen.append(os.path.abspath(os.fsdecode(target)))
            except (TypeError, ValueError):
                pass


_RECORDER = _Recorder()


def start_recording() -> None:
    _RECORDER.install()
    _RECORDER.seen = []


def stop_recording() -> list[str]:
    seen, _RECORDER.seen = _RECORDER.seen or [], None
    return list(dict.fromkeys(p for p in seen if _ours(p)))


def named_paths(doc: Document) -> list[str]:
    """Every local path the document names, resolved against its folder, whether it exists or not
    (a ``code:`` folder that is created later changes the verdict too)."""
    from ..azml.refs import local_path

    base = doc.path.parent
    out: list[str] = []
    for value in _strings(doc.data):
        text = value.strip()
        if not text or len(text) > 512 or "\n" in text or text.startswith(SKIP_PREFIXES):
            continue
        local = local_path(text)
        candidate = local if local is not None else text
        path = os.path.normpath(os.path.join(base, candidate))
        if "/" in candidate or "." in candidate or os.path.exists(path):
            out.append(path)
    return list(dict.fromkeys(out))


def _strings(data: Any) -> Iterable[str]:
    if isinstance(data, str):
        yield data
    elif isinstance(data, dict):
        for value in data.values():
            yield from _strings(value)
    elif isinstance(data, list):
        for value in data:
            yield from _strings(value)


def depends_on(doc: Document, opened: list[str]) -> list[list]:
    own = {str(doc.path), str(_where(doc))}
    return [_fingerprint(p) for p in dict.fromkeys(named_paths(doc) + opened) if p not in own]


# ------------------------------------------------------------------ entries

def lookup(doc: Document, text: str) -> list[Diagnostic] | None:
    """The stored verdict on ``doc``, or None when there is none or it may be stale."""
    folder = directory()
    if folder is None:
        return None
    name = key(doc, text)
    try:
        entry = json.loads((folder / name[:2] / f"{name}.json").read_text("utf-8"))
        if entry.get("format") != FORMAT:
            return None
        for recorded in entry["depends_on"]:
            if _fingerprint(recorded[0]) != recorded:
                return None
        return [Diagnostic(path=doc.shown, **d) for d in entry["diagnostics"]]
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return None


def store(doc: Document, text: str, diagnostics: list[Diagnostic], opened: list[str]) -> None:
    folder = directory()
    if folder is None or text != doc.text:  # staged components swapped in: those files are about to move
        return
    name = key(doc, text)
    entry = {"format": FORMAT, "file": str(_where(doc)), "depends_on": depends_on(doc, opened),
             "diagnostics": [{k: v for k, v in asdict(d).items() if k != "path"} for d in diagnostics]}
    target = folder / name[:2] / f"{name}.json"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name[:8]}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(entry, fh)
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError:
        return  # a read-only or full cache: lint still works, only slower
