"""The code snapshot: the files Azure would upload from `code:` (honouring .amlignore, else
.gitignore, with azure-ai-ml's own matcher), copied into the run folder the job runs from."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import JobgenError

LIMIT_BYTES = 300 * 1024 * 1024  # Azure refuses larger snapshots


def snapshot(code: Path, dest: Path) -> int:
    """Copy ``code`` (a folder or one file) into ``dest`` (replaced); returns bytes copied."""
    from azure.ai.ml._utils._asset_utils import IgnoreFile, get_ignore_file, get_upload_files_from_folder

    if not code.exists():
        raise JobgenError(f"code path {code} does not exist", hint="fix `code:` (relative to the YAML file)")
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    if code.is_file():
        shutil.copy2(code, dest / code.name)
        return code.stat().st_size
    files = get_upload_files_from_folder(code, ignore_file=get_ignore_file(code) or IgnoreFile())
    total = 0
    for source, relative in files:
        total += os.path.getsize(source)
        if total > LIMIT_BYTES:
            raise JobgenError(f"code folder {code} holds more than 300 MB; Azure refuses snapshots that large",
                              hint="point code at the sources only, or list data and checkpoints in .amlignore")
        target = dest / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
    return total
