"""The model folder (everything needed to rebuild and serve the model) and checkpoints."""

from __future__ import annotations

import json
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterable

import torch

from .errors import TrainError
from .models import build_model, is_convolutional

MODEL_FILE = "model.pt"
META_FILE = "model.json"
CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = "trainkit-model/1"


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


def atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_write_bytes(path, lambda fh: torch.save(obj, fh))


def save_model_dir(folder: Path, model: torch.nn.Module, meta: dict[str, Any]) -> None:
    state = {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items()}
    atomic_torch_save(state, folder / MODEL_FILE)
    atomic_write_text(folder / META_FILE, json.dumps(dict(meta, format=FORMAT), indent=2, sort_keys=True) + "\n")


def read_meta(folder: Path) -> dict[str, Any]:
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise TrainError(f"{folder} is not a model folder: {META_FILE} is missing",
                         "pass the training job's model_dir output")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TrainError(f"{path} is not valid JSON ({exc})") from None
    for key in ("task", "arch", "classes", "input_shape", "preprocessing"):
        if key not in meta:
            raise TrainError(f"{path} has no {key!r}", "re-run training to write a complete model folder")
    return meta


def load_model_dir(folder: Path) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Rebuild the trained model (eval mode, fp32, CPU) from its folder."""
    folder = Path(folder)
    meta = read_meta(folder)
    weights = folder / MODEL_FILE
    if not weights.is_file():
        raise TrainError(f"{folder} has no {MODEL_FILE}", "pass the training job's model_dir output")
    model = build_model(meta["arch"], len(meta["classes"]), pretrained=False,
                        inputs=meta["input_shape"][0] if meta["task"] == "penguins" else 5)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise TrainError(f"{weights} does not match a {meta['arch']} with {len(meta['classes'])} classes "
                         f"({str(exc).splitlines()[0]})", "the model folder is inconsistent; re-run training") from None
    model.eval()
    if is_convolutional(meta["arch"]):
        model = model.to(memory_format=torch.channels_last)
    return model, meta


def damaged_member(fh) -> str | None:
    """The first record of a torch.save zip whose bytes fail their CRC-32 (torch.load does not
    check them, and would load a flipped weight as it is), or None when all match."""
    try:
        return zipfile.ZipFile(fh).testzip()
    finally:
        fh.seek(0)


def load_checkpoint(path: Path, arch: str, task: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    hint = "delete it to start over, or point --checkpoint-dir elsewhere"
    with open(path, "rb") as fh:  # one open file for the check and the load: the same bytes
        try:
            damaged = damaged_member(fh)
            snap = None if damaged else torch.load(fh, map_location="cpu", weights_only=False)
        except Exception as exc:  # a truncated or foreign file
            raise TrainError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})", hint) from None
    if damaged:
        raise TrainError(f"checkpoint {path} is damaged ({damaged} does not match its checksum)", hint)
    if not isinstance(snap, dict) or "model" not in snap:
        raise TrainError(f"checkpoint {path} is not a trainkit checkpoint", "point --checkpoint-dir elsewhere")
    if snap.get("arch") != arch or snap.get("task") != task:
        raise TrainError(f"checkpoint {path} was written for {snap.get('task')}/{snap.get('arch')}, this job "
                         f"trains {task}/{arch}", "use an empty --checkpoint-dir, or the same task and --arch")
    return snap
