"""The paths a command sees for its inputs and outputs: always shell-safe, as Azure's are.

Azure pastes `${{inputs.x}}` and `${{outputs.y}}` into the command unquoted, and its own mount
paths (`/mnt/azureml/cr/j/<id>/cap/data-capability/wd/INPUT_x`) never hold a character the
shell interprets. Here the paths come from the user's file system: a run folder named
`rd;touch PWNED;` or `My Runs`, a data folder with a space. So the runner binds every path
through a shell-safe alias:

- the run folder, when its own path is not safe, is reached through a link
  `<temp>/jobgen-runs/<name>-<hash>` (removed when the run ends);
- a data input whose path is not safe is linked as `<step folder>/inputs/<input name>`
  (a file keeps its name, with unsafe characters replaced), inside the run folder.

What the job writes through an alias lands in the real folder; the summary shows real paths.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from ..errors import JobgenError

SAFE = re.compile(r"^[A-Za-z0-9_./,:=+@%-]*$")
UNSAFE_CHAR = re.compile(r"[^A-Za-z0-9_./,:=+@%-]")
LINKS = "jobgen-runs"


def _clear(path: Path) -> None:
    """Remove what an earlier run left at ``path`` (inside this run's folder: the runner's own)."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


class BoundPath(str):
    """A local path bound to an input (a data input, a step's output), not a literal."""


def safe(path: str) -> bool:
    return bool(SAFE.fullmatch(path))


def _first_unsafe(path: str) -> str:
    char = UNSAFE_CHAR.search(path).group()
    return {"\n": "a newline", " ": "a space", "\t": "a tab"}.get(char, repr(char))


class Mount:
    """How one run's folder appears to its commands."""

    def __init__(self, run_dir: Path):
        self.real = Path(run_dir)
        self.root = self.real
        self.link: Path | None = None
        if not safe(str(self.real)):
            self.root = self.link = self._make_link()

    def _make_link(self) -> Path:
        base = Path(tempfile.gettempdir()) / LINKS
        if not safe(str(base)):
            raise JobgenError(f"the run folder's path holds {_first_unsafe(str(self.real))}, which the shell would "
                              f"interpret where Azure pastes ${{{{outputs.x}}}}, and the temporary folder {base} "
                              "cannot stand in for it", where=str(self.real),
                              hint="choose a --run-dir made of letters, digits and . _ - / only")
        digest = hashlib.sha256(str(self.real).encode()).hexdigest()[:12]
        name = re.sub(r"[^A-Za-z0-9_.-]+", "-", self.real.name).strip("-.")[:40] or "run"
        link = base / f"{name}-{digest}"
        base.mkdir(exist_ok=True)
        if link.is_symlink() and Path(os.readlink(link)) != self.real:
            link.unlink()  # left by another folder with the same name and digest prefix
        if not link.is_symlink():
            link.symlink_to(self.real, target_is_directory=True)
        return link

    def shown(self, path: str | Path) -> str:
        """``path`` as the command sees it (through the alias when it lies in the run folder)."""
        path = Path(path)
        try:
            return str(self.root / path.relative_to(self.real))
        except ValueError:
            return str(path)

    def bind_input(self, step_dir: Path, name: str, value: str) -> str:
        """A bound input as the command sees it: literals as they are, paths shell-safe."""
        if not isinstance(value, BoundPath):
            return value
        seen = self.shown(value)
        if safe(seen):
            return seen
        target = Path(value)
        folder = step_dir / "inputs"
        folder.mkdir(parents=True, exist_ok=True)
        if target.is_dir():
            link = folder / name
        else:  # a file keeps its name (a trainer may look at its suffix)
            if (folder / name).is_symlink() or (folder / name).is_file():
                _clear(folder / name)
            (folder / name).mkdir(exist_ok=True)
            link = folder / name / (re.sub(r"[^A-Za-z0-9_.,=+@%-]", "_", target.name) or "file")
        _clear(link)
        link.symlink_to(target, target_is_directory=target.is_dir())
        return self.shown(link)

    def close(self) -> None:
        if self.link is not None and self.link.is_symlink():
            try:
                self.link.unlink()
            except OSError:
                pass
