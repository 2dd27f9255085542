"""Small file systems for tests, without root on the host: a user and mount namespace
(`unshare -Urm`) in which a tmpfs of a chosen size (full disks) or a read-only one is mounted,
and a command runs. What the command leaves on those mounts is gone when it ends, so the
command prints what the test needs to see."""

from __future__ import annotations

import functools
import shlex
import subprocess
from pathlib import Path


@functools.lru_cache(maxsize=1)
def available() -> bool:
    try:
        probe = subprocess.run(["unshare", "-Urm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                               capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def run(script: str, mounts: list[tuple[Path, str]], timeout: float = 180, **kwargs) -> subprocess.CompletedProcess:
    """Run shell ``script`` with each (folder, tmpfs options) mounted, e.g. (p, "size=1m") or
    (p, "ro"); the folders must exist."""
    setup = " && ".join(f"mount -t tmpfs -o {shlex.quote(options)} tmpfs {shlex.quote(str(folder))}"
                        for folder, options in mounts)
    return subprocess.run(["unshare", "-Urm", "sh", "-c", f"{setup} && {{ {script}\n}}"], capture_output=True,
                          text=True, timeout=timeout, **kwargs)
