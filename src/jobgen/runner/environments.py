"""The Python a local job runs with: a throw-away layer over this machine's, as Azure's container is.

On Azure ML a command job runs inside the image of its ``environment:`` (curated, registered, or
built from ``image`` + ``conda_file``). Whatever the command installs (``pip install ...``) lives
and dies with that job's container: it never reaches another job, nor the tool that submitted it.

Here there is no container. Each job gets a fresh virtualenv in its run folder
(``<run dir>/.jobgen-env``, made by :func:`layer`, a few milliseconds) over the interpreter that
runs jobgen:

- a ``.pth`` file in the layer's site-packages appends the runner's own site-packages, so that
  ``import torch`` / ``import mlflow`` work, and whatever the job installs (into the layer's
  site-packages, which comes first) shadows them;
- ``pip``, ``pip3`` and ``python -m pip`` in the layer install into the layer (pip itself is the
  runner's, imported through the ``.pth``; pip never uninstalls what lies outside the layer);
- the runner's console scripts (``torchrun``, ``mlflow``, ...) are copied into the layer's bin with
  the layer's ``python`` as their interpreter, so that torchrun's workers see the job's installs;
  the runner's other executables (``mpirun`` and the rest of Open MPI, ...) are symlinked.

Put :attr:`JobEnvironment.bin_dir` first on PATH (and the runner's own bin off it) and nothing a
job does is written into the runner's virtualenv.

``--env venv`` goes one step further: the pip requirements of the job's environment
(:func:`requirements_of` reads them from its conda file) are installed once into a virtualenv
cached by content (:func:`cached_environment`), and the job's layer sees, in this order: its own
installs, the cached virtualenv's packages, the runner's packages. Conda packages other than
``python`` and ``pip`` are not pip packages: :func:`requirements_of` leaves them out and
:func:`conda_packages_of` lists them, for the caller to say they are skipped. The Python is always
this machine's, whatever version the conda file asks for.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import time
import venv
from dataclasses import dataclass
from pathlib import Path

from ..errors import JobgenError
from ..yamlio import load_file

LAYER_NAME = ".jobgen-env"
PTH_NAME = "00-jobgen-layer.pth"  # sorts before the .pth files a job's installs may bring
MARKER = "jobgen-env.json"  # written last into a cached virtualenv: without it, it is no entry
REQUIREMENTS_FILE = "jobgen-requirements.txt"
MAX_SHEBANG = 127  # longer interpreter lines (or ones with spaces) use pip's /bin/sh trick
PY_VERSION = f"{sys.version_info.major}.{sys.version_info.minor}"
SH_EXEC = re.compile(rb"""^'''exec' "?(?P<python>[^"]+?)"? "\$0" "\$@"\s*$""")
PATH_OPTIONS = ("-r", "--requirement", "-c", "--constraint")  # always a path (or URL)
MAYBE_PATH_OPTIONS = ("-e", "--editable", "-f", "--find-links")
PIP_WRAPPER = """\
import sys
try:
    from pip._internal.cli.main import main
except ImportError:
    sys.exit("pip: the Python that runs jobgen has no pip; install pip there, or build the job's "
             "environment with --env venv")
sys.exit(main())
"""


@dataclass(frozen=True)
class JobEnvironment:
    bin_dir: Path  # first on PATH for every process of the job (the runner's own bin stays off PATH)
    python: Path  # the interpreter `python` / `python3` resolve to there
    header: str  # one line for the run's header


@dataclass(frozen=True)
class CondaFile:
    """What ``--env venv`` can use of an environment's conda file."""

    where: str  # the conda file (or ``environment: conda_file`` when written inline)
    pip: list[str]  # lines of a pip requirements file; relative paths made absolute
    conda_only: list[str]  # conda packages other than python and pip: skipped here


# ------------------------------------------------------------------ the layer

def layer(folder: Path, asked_for: str | None, requirements: list[str] | None = None,
          cache: Path | None = None) -> JobEnvironment:
    """A fresh virtualenv at ``folder / .jobgen-env`` over the runner's Python (and over the cached
    virtualenv of ``requirements``, when given): the job's installs go there and die with it."""
    env_dir = Path(folder).absolute() / LAYER_NAME
    _refuse_inside_runner(env_dir, "the run folder")
    below, note = None, ""
    if requirements:
        below, reused = cached_environment(requirements, cache, asked_for)
        state = "reused" if reused else "built now"
        note = f" under its {_count(_named(requirements), 'pip requirement')} ({state}: {below})"
    _remove(env_dir)
    _make_venv(env_dir)
    _write_pth(env_dir, ([_site_packages(below)] if below else []) + runner_site_dirs())
    _fill_bin(env_dir / "bin", [below / "bin"] if below else [])
    name = f"environment {asked_for}" if asked_for else "no environment named"
    header = (f"{name}: run with this machine's Python {PY_VERSION} and its packages{note}; "
              f"the job's own installs go to {env_dir}")
    return JobEnvironment(bin_dir=env_dir / "bin", python=env_dir / "bin" / "python", header=header)


def runner_site_dirs() -> list[str]:
    """The site-packages of the interpreter running jobgen (its virtualenv's, where torch is)."""
    dirs = list(site.getsitepackages())
    if site.ENABLE_USER_SITE:
        dirs.append(site.getusersitepackages())
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def _refuse_inside_runner(path: Path, what: str) -> None:
    if sys.prefix == sys.base_prefix:
        return  # not a virtualenv: there is no runner's venv to protect beyond the system's own
    prefix = Path(sys.prefix).resolve()
    if Path(path).resolve().is_relative_to(prefix):
        raise JobgenError(f"{what} is inside the virtualenv that runs jobgen ({prefix}); refused, "
                          "a job must not change the tool that runs it", where=str(path),
                          hint="choose a run folder or cache outside that virtualenv")


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _make_venv(env_dir: Path) -> None:
    """`python -m venv --without-pip`, in this process (no interpreter to start)."""
    try:
        venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt", clear=True).create(str(env_dir))
    except OSError as exc:
        raise JobgenError(f"cannot make a virtualenv: {exc.strerror or exc}", where=str(env_dir),
                          hint="check that the folder is writable and the disk is not full") from None


def _site_packages(env_dir: Path) -> str:
    scheme = "venv" if "venv" in sysconfig.get_scheme_names() else ("nt" if os.name == "nt" else "posix_prefix")
    return sysconfig.get_path("purelib", scheme, vars={"base": str(env_dir), "platbase": str(env_dir)})


def _write_pth(env_dir: Path, site_dirs: list[str]) -> None:
    """One line per folder: appended after the layer's own site-packages, their .pth files run."""
    lines = [f"import site, sys; d = {d!r}; d in sys.path or site.addsitedir(d)\n" for d in site_dirs]
    target = Path(_site_packages(env_dir))
    target.mkdir(parents=True, exist_ok=True)
    (target / PTH_NAME).write_text("".join(lines), encoding="utf-8")


# ------------------------------------------------------------------ the layer's bin

def _fill_bin(bin_dir: Path, below: list[Path]) -> None:
    """pip wrappers first, then the scripts of the cached virtualenv, then the runner's: the first
    of a name wins."""
    python = bin_dir / "python"
    for name in ("pip", "pip3", f"pip{PY_VERSION}"):
        _write_script(bin_dir / name, _shebang(python) + PIP_WRAPPER.encode(), 0o755)
    for source in [*below, Path(sys.executable).parent]:
        _copy_scripts(source, bin_dir, python)


def _copy_scripts(source: Path, bin_dir: Path, python: Path) -> None:
    for entry in sorted(source.iterdir()) if source.is_dir() else []:
        target = bin_dir / entry.name
        if entry.name.startswith("python") or os.path.lexists(target) or not _executable(entry):
            continue
        body = _script_body(entry, source)
        if body is None:
            target.symlink_to(entry)
        else:
            _write_script(target, _shebang(python) + body, entry.stat().st_mode & 0o777)


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _script_body(path: Path, bin_dir: Path) -> bytes | None:
    """The script after its interpreter line(s), when its interpreter is a `python` of ``bin_dir``
    (``#!/x/bin/python`` or pip's ``#!/bin/sh`` + ``'''exec' "/x/bin/python" ...`` form)."""
    with open(path, "rb") as fh:
        if fh.read(2) != b"#!":
            return None
        return _script_body_of(b"#!" + fh.read(), bin_dir)


def _script_body_of(data: bytes, bin_dir: Path) -> bytes | None:
    lines = data.split(b"\n", 3)
    first = lines[0][2:].strip()
    if _is_python_of(first, bin_dir):
        return data.split(b"\n", 1)[1] if len(lines) > 1 else b""
    match = SH_EXEC.match(lines[1]) if len(lines) > 2 and first == b"/bin/sh" else None
    if match and _is_python_of(match["python"], bin_dir) and lines[2].strip() == b"' '''":
        return lines[3] if len(lines) > 3 else b""
    return None


def _is_python_of(interpreter: bytes, bin_dir: Path) -> bool:
    path = Path(os.fsdecode(interpreter))
    return path.name.startswith("python") and _same_folder(path.parent, bin_dir)


def _same_folder(a: Path, b: Path) -> bool:
    try:
        return str(a) == str(b) or os.path.samefile(a, b)
    except OSError:
        return False


def _shebang(python: Path) -> bytes:
    text = str(python)
    if len(text) + 2 <= MAX_SHEBANG and " " not in text:
        return f"#!{text}\n".encode()
    return f"#!/bin/sh\n'''exec' \"{text}\" \"$0\" \"$@\"\n' '''\n".encode()


def _write_script(path: Path, data: bytes, mode: int) -> None:
    path.write_bytes(data)
    path.chmod(mode)


# ------------------------------------------------------------------ --env venv: the cached virtualenv

def default_cache() -> Path:
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    root = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return root / "jobgen" / "envs"


def cache_key(requirements: list[str]) -> str:
    """Content key: the sorted requirements, this Python's version, the runner's interpreter."""
    facts = {"requirements": sorted(requirements), "interpreter": sys.executable,
             "python": f"{platform.python_implementation()} {platform.python_version()}"}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:24]


def cached_environment(requirements: list[str], cache: Path | None = None,
                       asked_for: str | None = None) -> tuple[Path, bool]:
    """The cached virtualenv holding ``requirements`` (built now, once, under a lock) and whether
    it was there already."""
    cache = Path(cache or default_cache()).absolute()
    _refuse_inside_runner(cache, "the environment cache")
    _check_local_paths(requirements, asked_for)
    entry = cache / cache_key(requirements)
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise JobgenError(f"cannot make the environment cache: {exc.strerror}", where=str(cache),
                          hint="set XDG_CACHE_HOME to a writable folder") from None
    with _locked(cache / f"{entry.name}.lock", entry):
        if (entry / MARKER).is_file():
            return entry, True
        _build(entry, requirements, asked_for)
        return entry, False


class _locked:
    """An exclusive lock on ``path``: two runs never build the same entry at once."""

    def __init__(self, path: Path, entry: Path):
        self.path, self.entry = path, entry

    def __enter__(self) -> None:
        self.fh = open(self.path, "a")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"jobgen: waiting for another run that is building {self.entry}", file=sys.stderr, flush=True)
            fcntl.flock(self.fh, fcntl.LOCK_EX)

    def __exit__(self, *exc) -> None:
        self.fh.close()  # closing releases the lock


def _check_local_paths(requirements: list[str], asked_for: str | None) -> None:
    """An absolute path that does not exist is named before pip starts."""
    for line in requirements:
        token = line.split()[-1] if line.strip() else ""
        if token.startswith("/") and not os.path.exists(token):
            raise JobgenError(f"pip requirement {line!r}: no such file or folder", where=_where(asked_for),
                              hint="fix the path in the environment's pip list")


def _build(entry: Path, requirements: list[str], asked_for: str | None) -> None:
    """Install ``requirements`` into a new virtualenv at ``entry``; on any failure nothing stays."""
    _remove(entry)  # a build that was killed left no marker: start again
    started = time.monotonic()
    try:
        _make_venv(entry)
        _write_pth(entry, runner_site_dirs())
        (entry / REQUIREMENTS_FILE).write_text("".join(f"{r}\n" for r in requirements), encoding="utf-8")
        print(f"jobgen: {_where(asked_for)}: installing {_count(_named(requirements), 'pip requirement')} into "
              f"{entry} (once; later runs reuse it)", file=sys.stderr, flush=True)
        code, output = _run_pip(entry)
        if code != 0:
            raise JobgenError(_pip_failure(requirements, output), where=_where(asked_for),
                              hint="fix or remove it in the environment's pip list; pip's output is above")
        facts = {"requirements": requirements, "interpreter": sys.executable, "python": platform.python_version(),
                 "seconds": round(time.monotonic() - started, 2)}
        (entry / MARKER).write_text(json.dumps(facts, indent=1) + "\n", encoding="utf-8")
    except BaseException:
        shutil.rmtree(entry, ignore_errors=True)
        raise


def _run_pip(entry: Path) -> tuple[int, list[str]]:
    """pip of the runner, run by the new virtualenv's python (so it installs there), with whatever
    index pip is configured for; its output goes to stderr line by line, and is kept."""
    argv = [str(entry / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "--no-input",
            "-r", str(entry / REQUIREMENTS_FILE)]
    output: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                          text=True, errors="replace") as proc:
        for line in proc.stdout:  # type: ignore[union-attr]
            sys.stderr.write(line)
            output.append(line.rstrip("\n"))
        sys.stderr.flush()
    return proc.returncode, output


def _pip_failure(requirements: list[str], output: list[str]) -> str:
    """One line: the requirement pip could not install, and pip's own reason."""
    notes = [line.strip() for line in output if line.lstrip().startswith(("ERROR:", "WARNING:", "Hint:"))]
    errors = [line for line in notes if line.startswith("ERROR:")]
    for lines in (errors, notes):  # a requirement an ERROR line names, else one a warning names
        for requirement in _named(requirements):
            names = {requirement, _project_name(requirement)} - {""}
            said = next((line for line in lines if any(name in line for name in names)), None)
            if said:
                return f"pip could not install {requirement!r}: {_reason(said)}"
    last = (errors or notes or ["pip failed (its output is above)"])[0]
    return f"pip could not install the environment's requirements: {_reason(last)}"


def _project_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    return match.group(0) if match and "/" not in requirement else ""


def _reason(line: str) -> str:
    return re.sub(r"^(ERROR|WARNING|Hint):\s*", "", line)


def _where(asked_for: str | None) -> str:
    return f"environment {asked_for}" if asked_for else "environment"


def _named(requirements: list[str]) -> list[str]:
    """The requirements themselves, without pip's option lines (--no-index, -r file, ...)."""
    return [r for r in requirements if not r.startswith("-")]


def _count(items: list, noun: str) -> str:
    return f"{len(items)} {noun}{'' if len(items) == 1 else 's'}"


# ------------------------------------------------------------------ reading an environment's pip list

def requirements_of(environment: object, base: Path) -> list[str] | None:
    """The pip list of an environment this machine can read: an inline mapping (``{image: ...,
    conda_file: ./conda.yml}``) or a local environment YAML (``./env.yml``, ``file:./env.yml``),
    relative to ``base``. ``azureml:...`` (registered, registry, curated) and environments without a
    conda file give None. Conda packages are left out (see :func:`conda_packages_of`)."""
    conda = conda_file_of(environment, base)
    return None if conda is None else conda.pip


def conda_packages_of(environment: object, base: Path) -> list[str]:
    """The conda packages (other than python and pip) that ``--env venv`` skips."""
    conda = conda_file_of(environment, base)
    return [] if conda is None else conda.conda_only


def conda_file_of(environment: object, base: Path) -> CondaFile | None:
    found = _environment_spec(environment, Path(base))
    if found is None:
        return None
    spec, where, folder = found
    conda = spec.get("conda_file")
    if conda is None:
        return None
    if isinstance(conda, dict):
        return _read_conda(conda, f"{where}: conda_file", folder, lines=None)
    if not isinstance(conda, str):
        raise JobgenError("conda_file must be a path or a mapping", where=where)
    path = folder / _strip_file(conda)
    located = load_file(path)
    if not isinstance(located.data, dict):
        raise JobgenError("a conda file must be a mapping with `dependencies:`", where=str(path))
    return _read_conda(located.data, str(path), path.parent, lines=located)


def _environment_spec(environment: object, base: Path) -> tuple[dict, str, Path] | None:
    """(the environment's mapping, where it was written, the folder its paths start from)."""
    if isinstance(environment, dict):
        return environment, "environment", base
    if not isinstance(environment, str) or environment.strip().startswith("azureml:"):
        return None
    text = _strip_file(environment.strip())
    if not (text.endswith((".yml", ".yaml")) or environment.strip().startswith("file:")):
        return None  # not a local file: nothing to read here
    path = base / text
    data = load_file(path).data
    if not isinstance(data, dict):
        raise JobgenError("an environment file must be a mapping", where=str(path))
    return data, str(path), path.parent


def _strip_file(text: str) -> str:
    return text[len("file:"):] if text.startswith("file:") else text


def _read_conda(data: dict, where: str, folder: Path, lines) -> CondaFile:
    deps = data.get("dependencies") or []
    if not isinstance(deps, list):
        raise JobgenError("`dependencies:` must be a list", where=_at(where, lines, ("dependencies",)))
    pip: list[str] = []
    conda_only: list[str] = []
    for i, item in enumerate(deps):
        at = _at(where, lines, ("dependencies", i))
        if isinstance(item, dict) and set(item) == {"pip"}:
            pip.extend(_pip_lines(item["pip"], at, folder))
        elif isinstance(item, (str, int, float)):
            if _conda_name(str(item)) not in ("python", "pip"):
                conda_only.append(str(item))
        else:
            raise JobgenError("a dependency is a conda package or `pip: [...]`", where=at)
    return CondaFile(where=where, pip=pip, conda_only=conda_only)


def _pip_lines(items: object, where: str, folder: Path) -> list[str]:
    if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
        raise JobgenError("`pip:` must be a list of requirement strings", where=where)
    lines = [x.strip() for x in items]
    return [_absolute(line, folder) for line in lines if line and not line.startswith("#")]


def _absolute(line: str, folder: Path) -> str:
    """Relative paths of a conda pip list start from the conda file's folder (conda runs pip
    there); the cached virtualenv's pip runs elsewhere, so they are made absolute."""
    option, _, value = line.partition(" ")
    if option in PATH_OPTIONS and "://" not in value:
        return f"{option} {folder / os.path.expanduser(value.strip())}"
    if option in MAYBE_PATH_OPTIONS:
        return f"{option} {_absolute(value.strip(), folder)}"
    if not line.startswith("-") and _looks_like_path(line):
        return str(folder / os.path.expanduser(line))
    return line


def _looks_like_path(text: str) -> bool:
    """pip's rule: a requirement with a path separator, or starting with '.', is a path."""
    return "://" not in text and " @ " not in text and ";" not in text and (
        text.startswith((".", "/", "~")) or "/" in text)


def _conda_name(spec: str) -> str:
    spec = spec.split("::")[-1].strip()  # conda-forge::python=3.10
    match = re.match(r"[A-Za-z0-9_.\-]+", spec)
    return match.group(0).lower() if match else spec


def _at(where: str, lines, path: tuple) -> str:
    return f"{where}:{lines.line(path)}" if lines is not None else where
