"""Run folders: the only folders the local runner ever deletes anything in.

A run folder carries a marker file (`.jobgen-run`) written when the runner made it (or adopted it
empty). The runner replaces `code/` snapshots, old logs and rank status files only inside a
folder with that marker; any other folder given as `--run-dir` that is not empty is refused.

While a run uses its folder it holds an exclusive lock on `.jobgen-run.lock` (flock: the kernel
lets go of it when the process ends, however it ends), and a second run on the same folder is
refused with the first one's process id.

`summary.json` is reserved (written with room to spare) when the run starts and filled in place at
the end, so that a job that fills the disk still leaves a summary saying why it failed.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
from pathlib import Path

from .. import paths
from ..errors import JobgenError

class RunFolderError(JobgenError):
    """The run folder cannot take what the run writes (a full or read-only disk): the task fails
    with this reason in its summary instead of stopping the runner."""


MARKER = ".jobgen-run"
LOCK = ".jobgen-run.lock"
RESERVED_BYTES = 64 * 1024


def is_run_folder(folder: Path) -> bool:
    return (folder / MARKER).is_file()


def inside_run_folder(path: Path) -> bool:
    """Whether ``path`` is a run folder or lies inside one (pipeline steps, sweep trials)."""
    path = Path(path).absolute()
    return any(is_run_folder(folder) for folder in (path, *path.parents))


def claim(folder: Path, job: Path) -> None:
    """Make ``folder`` a run folder, or check that it is one. Refuses a folder that holds
    anything and was not made by the runner: nothing in it is touched."""
    shown = paths.display(folder)
    if folder.exists() and not folder.is_dir():
        raise JobgenError("the run folder is a file", where=shown, hint="choose another --run-dir")
    if folder.is_dir() and not is_run_folder(folder):
        try:
            entries = [e for e in os.listdir(folder) if e != LOCK]
        except OSError as exc:
            raise JobgenError(f"cannot read the run folder: {exc.strerror}", where=shown,
                              hint="choose another --run-dir") from None
        if entries:
            raise JobgenError(f"this folder holds files and was not made by 'generator.py run' (no {MARKER} file); "
                              "the runner replaces code/, logs and outputs in its run folders, so it will not use it",
                              where=shown, hint="choose a new or empty --run-dir (or leave it out: runs/<job>-<time>/)")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not is_run_folder(folder):
            marker = {"made_by": "jobgen run", "job": str(job), "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
            (folder / MARKER).write_text(json.dumps(marker) + "\n")
    except OSError as exc:
        raise JobgenError(f"cannot create the run folder: {exc.strerror}", where=shown,
                          hint="choose a writable --run-dir with free space") from None


def fresh(base: Path) -> Path:
    """``base``, or ``base-2``, ``base-3``... when a run made in the same second has it."""
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


class Lock:
    """Exclusive use of a run folder by this process (released on close or when the process ends)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.fd: int | None = None

    def acquire(self) -> "Lock":
        path = self.folder / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise JobgenError(f"cannot lock the run folder: {exc.strerror}", where=paths.display(self.folder),
                              hint="choose a writable --run-dir") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise JobgenError(f"cannot lock the run folder: {exc.strerror}", where=paths.display(self.folder),
                                  hint="choose another --run-dir") from None
            raise JobgenError(f"the run folder is in use by another run ({holder})", where=paths.display(self.folder),
                              hint="wait for that run to end, stop it, or choose another --run-dir") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"process {os.getpid()}, started {time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing the descriptor releases the flock
            self.fd = None


def _read_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return text or "process unknown"


def disk_full(folder: Path) -> bool:
    """Whether the disk of ``folder`` has (next to) no space left for a job's writes."""
    try:
        return shutil.disk_usage(folder).free < RESERVED_BYTES
    except OSError:
        return False


def reserve(path: Path, text: str) -> None:
    """Write ``text`` padded to RESERVED_BYTES, so that a later ``fill`` needs no new disk space."""
    body = text.encode("utf-8")
    with open(path, "wb") as fh:
        fh.write(body + b" " * max(0, RESERVED_BYTES - len(body)))


def fill(path: Path, text: str) -> None:
    """Overwrite a reserved file in place (JSON ignores the trailing spaces), or write it anew when
    it was not reserved or the text does not fit."""
    body = text.encode("utf-8")
    try:
        size = path.stat().st_size
    except OSError:
        size = 0
    if size >= len(body):
        with open(path, "r+b") as fh:
            fh.write(body)
            fh.truncate(len(body))
        return
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(body)
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
