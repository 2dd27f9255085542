"""One rank's guard: runs the rank's command and makes sure nothing it starts outlives it or
the runner, as the end of a container ends every process in it on Azure.

    python guard.py LIFELINE_FD -- COMMAND...

- The guard is a child subreaper (Linux prctl PR_SET_CHILD_SUBREAPER): every process the command
  leaves behind, background jobs (`sleep 120 &`) and daemons that fork twice and call setsid
  included, becomes the guard's child instead of init's, so the guard can find and end them.
- When the command ends, whatever it left running is stopped (SIGTERM, SIGKILL after a short
  grace) and the guard exits with the command's status (a signal is passed on as that signal).
- LIFELINE_FD is the read end of a pipe whose write end only the runner holds: when the runner
  dies, however it dies (SIGKILL, a lost terminal), the pipe reads end-of-file and the guard
  stops the command and everything under it.
- SIGTERM (the runner stopping the job) is passed on to every process under the guard; those
  still alive shortly before the runner's own SIGKILL are killed by the guard, so that none that
  the runner does not know of survives.

Standalone on purpose (standard library only, started with -S -E): it costs a few milliseconds
per rank and must not depend on the environment the job runs in.
"""

from __future__ import annotations

import ctypes
import os
import select
import signal
import subprocess
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
LEFTOVER_GRACE = 2.0  # after the command ends: what it left gets this long after SIGTERM
STOP_GRACE = 4.5  # after a SIGTERM: the runner kills at 5 s; the guard kills what is left just before


def become_subreaper() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: background processes are stopped as far as seen
        pass


def descendants(root: int) -> list[int]:
    """Every process under ``root`` (from /proc; orphans of the command are the guard's children)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != b"Z":
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found, queue = [], [root]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def signal_all(sig: int) -> int:
    pids = descendants(os.getpid())
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            pass
    return len(pids)


def reap() -> dict[int, int]:
    """Statuses of children that ended (the command's, and orphans the guard inherited)."""
    ended = {}
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return ended
        if pid == 0:
            return ended
        ended[pid] = status


def stop_everything(grace: float) -> None:
    if not signal_all(signal.SIGTERM):
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        reap()
        if not descendants(os.getpid()):
            return
        time.sleep(0.05)
    signal_all(signal.SIGKILL)
    deadline = time.monotonic() + 2
    while descendants(os.getpid()) and time.monotonic() < deadline:
        reap()
        time.sleep(0.02)
    reap()


def leave(status: int) -> None:
    """Exit as the command did: its code, or death by its signal."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
        time.sleep(1)  # pragma: no cover - the signal ends the process
    sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)


def main(argv: list[str]) -> None:
    lifeline = int(argv[0])
    command = argv[argv.index("--") + 1:]
    become_subreaper()
    stopping = {"at": None}

    def on_term(signum, frame):  # the runner stops the job: pass it on, kill what is left in time
        if stopping["at"] is None:
            stopping["at"] = time.monotonic()
        signal_all(signal.SIGTERM)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_term)
    child = subprocess.Popen(command, close_fds=True)
    status = None
    while status is None:
        ready, _, _ = select.select([lifeline], [], [], 0.1)
        if ready and not os.read(lifeline, 1):  # end of file: the runner is gone
            stop_everything(LEFTOVER_GRACE)
            sys.exit(137)
        ended = reap()
        status = ended.get(child.pid)
        if status is None and stopping["at"] is not None and time.monotonic() - stopping["at"] > STOP_GRACE:
            signal_all(signal.SIGKILL)
    stop_everything(LEFTOVER_GRACE)
    leave(status)


if __name__ == "__main__":
    main(sys.argv[1:])
