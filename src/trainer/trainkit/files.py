"""Atomic file writes and what killed ones leave behind (no torch: the tracking process and the
register step use them too)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Iterable


def _temp_affixes(name: str) -> tuple[str, str]:
    """Prefix and suffix of the temporary files atomic writes of ``name`` make beside it."""
    return f".{name}.", ".tmp"


def atomic_write_bytes(path: Path, write) -> None:
    """Write through a temp file in the same folder, then ``os.replace``: a reader (or a
    restarted job) sees the old file or the new one, never half of one. A process killed
    mid-write leaves the temp file; ``remove_stale_temps`` clears it at the next start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = _temp_affixes(path.name)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; outputs are read by other steps and users
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _temp_pattern(name: str) -> re.Pattern[str]:
    """mkstemp's names for ``name``: the prefix, 8 characters of [a-z0-9_], the suffix."""
    prefix, suffix = _temp_affixes(name)
    return re.compile(re.escape(prefix) + "[a-z0-9_]{8}" + re.escape(suffix))


def remove_stale_temps(targets: Iterable[Path]) -> list[Path]:
    """Remove the temporary files that killed atomic writes of ``targets`` left beside them, and
    nothing else (a user's file in the same folder stays, whatever its name). Call it before
    writing, from the only process that writes these files. Returns what was removed."""
    removed = []
    for target in targets:
        pattern = _temp_pattern(target.name)
        try:
            entries = list(os.scandir(target.parent))
        except FileNotFoundError:
            continue
        for entry in entries:
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                except FileNotFoundError:
                    continue
                removed.append(Path(entry.path))
    return removed


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, lambda fh: fh.write(text.encode("utf-8")))
