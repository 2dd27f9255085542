"""YAML reading with line numbers, safe scalar output for templates, atomic writes."""

from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from .errors import JobgenError

try:  # the C loader is several times faster; fall back quietly when it is missing
    _Loader = yaml.CSafeLoader  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover
    _Loader = yaml.SafeLoader

YamlPath = tuple  # ("jobs", "train", "inputs", "x") ; list indexes are ints

# What real Azure ML YAML never needs; past these a file is hostile or a mistake, and is refused
# before it can take the machine's memory or the interpreter's stack.
MAX_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 64  # nested mappings and lists (Azure ML YAML rarely goes past 10)
MAX_VALUES = 200_000  # keys and values once aliases are expanded ("billion laughs" expands to 10^9)


@dataclass
class Located:
    """A parsed YAML document plus where each value (and key) sits in the text."""

    data: Any
    lines: dict[YamlPath, int] = field(default_factory=dict)
    duplicates: list[tuple[YamlPath, int]] = field(default_factory=list)

    def line(self, path: YamlPath, default: int = 1) -> int:
        """Line of ``path``, or of its nearest ancestor that exists."""
        path = tuple(path)
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return self.lines.get((), default)


def load_located(text: str, where: str) -> Located:
    """Parse one YAML document, recording 1-based lines for every key and item.

    Duplicate keys (PyYAML silently keeps the last) are recorded so that lint reports them.
    """
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise JobgenError(f"not valid YAML: {problem}", where=f"{where}{line}",
                          hint="fix the YAML syntax (indentation, quotes, ':' spacing)") from None
    except RecursionError:  # the pure-Python composer, without libyaml
        raise JobgenError(f"YAML is nested more than {MAX_DEPTH} levels deep; refused", where=where,
                          hint="Azure ML YAML is never that deep") from None
    located = Located(data=None)
    if node is None:
        return located
    located.lines[()] = node.start_mark.line + 1
    constructor = yaml.SafeLoader("")  # only used to build scalars with YAML 1.1 rules
    count = [0]

    def build(n: yaml.Node, path: YamlPath) -> Any:
        count[0] += 1
        if count[0] > MAX_VALUES:
            raise JobgenError(f"YAML expands to more than {MAX_VALUES} values (its aliases repeat anchors); refused",
                              where=f"{where}:{n.start_mark.line + 1}",
                              hint="Azure ML YAML is far smaller; write the values out, or use fewer aliases")
        if len(path) > MAX_DEPTH:
            raise JobgenError(f"YAML is nested more than {MAX_DEPTH} levels deep; refused",
                              where=f"{where}:{n.start_mark.line + 1}", hint="Azure ML YAML is never that deep")
        if isinstance(n, yaml.MappingNode):
            constructor.flatten_mapping(n)
            out: dict[Any, Any] = {}
            for key_node, value_node in n.value:
                key = build(key_node, path + ("<key>",))
                try:
                    hash(key)
                except TypeError:
                    raise JobgenError("a mapping key must be a plain value",
                                      where=f"{where}:{key_node.start_mark.line + 1}") from None
                sub = path + (key,)
                if key in out:
                    located.duplicates.append((sub, key_node.start_mark.line + 1))
                located.lines[sub] = key_node.start_mark.line + 1
                out[key] = build(value_node, sub)
            return out
        if isinstance(n, yaml.SequenceNode):
            items = []
            for i, item in enumerate(n.value):
                located.lines[path + (i,)] = item.start_mark.line + 1
                items.append(build(item, path + (i,)))
            return items
        try:
            return constructor.construct_object(n, deep=True)
        except yaml.YAMLError as exc:
            raise JobgenError(f"not valid YAML: {exc}", where=f"{where}:{n.start_mark.line + 1}") from None

    located.data = build(node, ())
    return located


def read_text(path: Path, where: str | None = None) -> str:
    """A YAML file's text: a regular file of at most MAX_BYTES, UTF-8. Devices, FIFOs and sockets
    are refused without reading (``/dev/zero`` never ends, a FIFO may never answer)."""
    where = where or str(path)
    try:
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise JobgenError("is a folder, expected a YAML file", where=where)
        if not stat.S_ISREG(info.st_mode):
            raise JobgenError("is not a regular file (a device, FIFO or socket); refused", where=where,
                              hint="pass a YAML file")
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise JobgenError("file not found", where=where,
                          hint="check the path; relative paths start from the current folder") from None
    except OSError as exc:
        raise JobgenError(f"cannot read: {exc.strerror}", where=where) from None
    if len(raw) > MAX_BYTES:
        raise JobgenError(f"file is over {MAX_BYTES // (1024 * 1024)} MiB; refused", where=where,
                          hint="Azure ML YAML is never that large: check that this is the right file")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise JobgenError("not UTF-8 text", where=where, hint="save the file as UTF-8") from None


def load_file(path: Path) -> Located:
    return load_located(read_text(path), str(path))


# ---------------------------------------------------------------- output helpers

class _Dumper(yaml.SafeDumper):
    pass


def _str_representer(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def scalar(value: Any) -> str:
    """A value as one YAML flow scalar: plain when that reads back identically, else quoted."""
    if isinstance(value, (str, int, float, bool)) or value is None:
        return _scalar_cached(type(value), value)
    return _scalar(value)


@lru_cache(maxsize=4096)
def _scalar_cached(kind: type, value: Any) -> str:  # the type keeps True apart from 1
    return _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, str) and "\n" in value:
        raise ValueError("multi-line strings must be written with yaml_block")
    text = yaml.dump(value, Dumper=_Dumper, default_flow_style=True, width=10**9,
                     allow_unicode=True, sort_keys=False)
    text = text.rstrip("\n")
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    return text


def block(value: Any, indent: int) -> str:
    """A mapping or list in block style, indented by ``indent`` spaces (first line included)."""
    text = yaml.dump(value, Dumper=_Dumper, default_flow_style=False, width=10**9,
                     allow_unicode=True, sort_keys=False, indent=2)
    pad = " " * indent
    return "\n".join(pad + line if line else line for line in text.rstrip("\n").split("\n"))


# ---------------------------------------------------------------- atomic writes

def write_files_atomically(files: dict[Path, str], check=None) -> None:
    """Write every file or none.

    Files are first written into a staging folder beside each output folder (same parent, so
    relative paths such as ``code: ../src/trainer`` and sibling files such as ``conda.yaml``
    resolve as they will; what the output folder already holds besides them, such as a Docker
    build context, is linked in), then ``check(staged)`` runs with a map final path -> staged path (the
    generator lints there). Then each file is written again as a hidden temporary file in its
    final folder (one file system with its target, even when the folder is a mount point) and
    moved into place with ``os.replace``. A failure anywhere removes the staged and temporary
    files and any folder this call created; a move that fails half-way puts back the files it
    had already replaced.
    """
    for target in files:
        if target.is_dir():
            raise JobgenError("a folder is where this file would be written", where=str(target),
                              hint="move the folder away, or choose another output folder with -o/--output")
    made: list[Path] = []  # folders this call created, removed again on failure
    stages: dict[Path, Path] = {}  # output folder -> staging folder
    staged: dict[Path, Path] = {}
    temps: dict[Path, Path] = {}
    ok = False
    try:
        for target, text in files.items():
            folder = target.parent
            if folder not in stages:
                stages[folder] = _staging_folder(folder, made)
                _link_the_rest(folder, stages[folder], {t.name for t in files if t.parent == folder})
            staged[target] = _write(stages[folder] / target.name, text, folder)
        if check is not None:
            check(staged)
        for target, text in files.items():
            temps[target] = _temp_beside(target, text, made)
        _move_into_place(temps)
        ok = True
    finally:
        for stage in stages.values():
            shutil.rmtree(stage, ignore_errors=True)
        for path in temps.values():
            try:
                path.unlink()
            except OSError:
                pass
        if not ok:
            for folder in reversed(made):  # deepest first
                try:
                    folder.rmdir()
                except OSError:
                    pass


def _staging_folder(folder: Path, made: list[Path]) -> Path:
    parent = folder.parent
    try:
        missing = [p for p in [parent, *parent.parents] if not p.exists()]
        parent.mkdir(parents=True, exist_ok=True)
        made.extend(reversed(missing))
        return Path(tempfile.mkdtemp(prefix=f".{folder.name}.jobgen-", dir=parent))
    except OSError as exc:
        raise _cannot_write(exc, folder) from None


def _link_the_rest(folder: Path, stage: Path, rendered: set[str]) -> None:
    """Links in ``stage`` to what ``folder`` holds besides the files about to be written (not hidden
    ones), so that the staged files' relative paths into their own folder resolve as they will."""
    try:
        entries = [e for e in folder.iterdir() if e.name not in rendered and not e.name.startswith(".")]
    except OSError:
        return  # no folder yet, or not readable: nothing in it to find
    for entry in entries:
        try:
            (stage / entry.name).symlink_to(entry.resolve(), target_is_directory=entry.is_dir())
        except OSError:
            pass  # no links here (some file systems): such a path is reported as missing, as before


def _write(path: Path, text: str, where: Path) -> Path:
    try:
        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write(text)
        os.chmod(path, 0o644)
    except OSError as exc:
        raise _cannot_write(exc, where) from None
    return path


def _temp_beside(target: Path, text: str, made: list[Path]) -> Path:
    folder = target.parent
    try:
        if not folder.exists():
            folder.mkdir()
            made.append(folder)
        fd, name = tempfile.mkstemp(prefix=".jobgen-", suffix=f".{target.name}.tmp", dir=folder)
        os.close(fd)
    except OSError as exc:
        raise _cannot_write(exc, folder) from None
    try:
        return _write(Path(name), text, folder)
    except JobgenError:
        Path(name).unlink(missing_ok=True)
        raise


def _cannot_write(exc: OSError, where: Path) -> JobgenError:
    return JobgenError(f"cannot write to output folder: {exc.strerror}", where=str(where),
                       hint="choose a writable folder with free space with -o/--output")


def _move_into_place(staged: dict[Path, Path]) -> None:
    replaced: list[tuple[Path, bytes | None]] = []  # (target, what it held before; None: it did not exist)
    try:
        for target, path in staged.items():
            try:
                before = target.read_bytes() if target.is_file() else None
            except OSError:
                before = None
            os.replace(path, target)
            replaced.append((target, before))
    except OSError as exc:
        for target, before in reversed(replaced):
            try:
                if before is None:
                    target.unlink()
                else:
                    target.write_bytes(before)
            except OSError:
                pass
        raise _cannot_write(exc, target.parent) from None


_YAML12_NUMBER = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$|^0x[0-9a-fA-F]+$|^0o[0-7]+$")


def scalar_text(value: Any) -> str:
    """Like ``scalar`` but a string that a YAML 1.2 reader would take for a number (``1e-3``)
    is quoted too, so every reader agrees it is text."""
    if isinstance(value, str) and _YAML12_NUMBER.match(value):
        return "'" + value + "'"
    return scalar(value)


def quoted(value: Any) -> str:
    """Always a quoted string (asset versions: ``'1'``, not the integer 1)."""
    return "'" + str(value).replace("'", "''") + "'"


def command_block(command: str, indent: int = 2) -> str:
    """A command as a YAML block scalar: folded (``>-``) for one line, literal (``|-``) for
    several. Block scalars keep ``${{...}}``, quotes and ``#`` exactly as written."""
    pad = " " * indent
    lines = command.strip("\n").split("\n")
    style = ">-" if len(lines) == 1 else "|-"
    return style + "\n" + "\n".join(pad + line if line.strip() else "" for line in lines)
