"""What a job's command runs, read once: its Python entry point, the launcher it starts (torchrun,
deepspeed, accelerate, ...), the workers each copy starts itself. `${{...}}` and `$[[...]]` are
masked first so that the shell's own splitting (shlex) reads the command as bash would."""

from __future__ import annotations

import os
import re
import shlex
from functools import lru_cache

from .refs import OPTIONAL_SEGMENT, REF

LAUNCHERS = ("torchrun", "deepspeed", "accelerate", "horovodrun", "mpirun", "mpiexec")
TORCH_RUN_MODULES = ("torch.distributed.run", "torch.distributed.launch")


def _mask(command: str) -> str:
    command = OPTIONAL_SEGMENT.sub(lambda m: " " + m.group(1) + " ", command)
    return REF.sub("AZUREML_PLACEHOLDER", command)


@lru_cache(maxsize=1024)
def tokens(command: str) -> tuple[str, ...] | None:
    """The command's words, or None when the shell could not split it either (an open quote)."""
    try:
        return tuple(shlex.split(_mask(command), comments=False))
    except ValueError:
        return None


def script_of(command: str) -> tuple[str, str] | None:
    """('file', 'train.py') or ('module', 'pkg.mod') for the Python entry point a command runs."""
    words = tokens(command)
    if words is None or any(t in ("cd", "pushd") for t in words):
        return None  # the working folder changes: do not guess
    for i, token in enumerate(words):
        base = os.path.basename(token)
        if re.fullmatch(r"python(3(\.\d+)?)?", base):
            rest = list(words[i + 1:])
            j = 0
            while j < len(rest) and rest[j].startswith("-") and rest[j] != "-m":
                j += 1
            if j < len(rest) and rest[j] == "-m" and j + 1 < len(rest):
                module = rest[j + 1]
                if module in TORCH_RUN_MODULES:
                    return _first_py(rest[j + 2:])
                return ("module", module)
            if j < len(rest) and rest[j].endswith(".py"):
                return ("file", rest[j])
            return None
        if base in LAUNCHERS:
            return _first_py(list(words[i + 1:]))
    return None


def launcher_of(command: str) -> str | None:
    """The launcher the command starts: torchrun (or python -m torch.distributed.run|launch),
    deepspeed, accelerate launch, horovodrun, mpirun; None for a plain command."""
    words = tokens(command)
    if words is None:
        return None
    for i, token in enumerate(words):
        base = os.path.basename(token)
        if base == "accelerate":
            return "accelerate launch" if words[i + 1:i + 2] == ("launch",) else None
        if base in LAUNCHERS:
            return base
        if token in TORCH_RUN_MODULES and i > 0 and words[i - 1] == "-m":
            return f"python -m {token}"
    return None


def per_node_workers(command: str) -> int | None:
    """Workers each launched copy of ``command`` starts itself (torchrun's --nproc_per_node),
    1 for a plain command, None when it cannot be told (``auto``, a variable)."""
    words = tokens(command)
    if words is None:
        return 1
    launcher = False
    for i, token in enumerate(words):
        base = os.path.basename(token)
        if base == "torchrun" or token in TORCH_RUN_MODULES:
            launcher = True
        if launcher:
            value = None
            if token in ("--nproc_per_node", "--nproc-per-node") and i + 1 < len(words):
                value = words[i + 1]
            elif token.startswith(("--nproc_per_node=", "--nproc-per-node=")):
                value = token.split("=", 1)[1]
            if value is not None:
                return int(value) if value.isdigit() else None
    return 1


def local_rank_from_rank(command: str) -> bool:
    """`--local_rank $RANK` (or --local-rank): the global rank given where the node-local one goes."""
    return bool(re.search(r"--local[_-]rank[ =]+\$\{?RANK\b", command))


def _first_py(words: list[str]) -> tuple[str, str] | None:
    for token in words:
        if token.endswith(".py") and not token.startswith("-"):
            return ("file", token)
    return None
