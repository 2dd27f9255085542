"""The model folder (everything needed to rebuild and serve the model) and checkpoints."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import TrainError
from .models import build_model, is_convolutional

MODEL_FILE = "model.pt"
META_FILE = "model.json"
CHECKPOINT_FILE = "checkpoint.pt"
FORMAT = "trainkit-model/1"


def atomic_write_bytes(path: Path, write) -> None:
    """Write through a temp file in the same folder, then ``os.replace``: a reader (or a
    restarted job) sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
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


def load_checkpoint(path: Path, arch: str, task: str) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        snap = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise TrainError(f"checkpoint {path} cannot be read ({type(exc).__name__}: {exc})",
                         "delete it to start over, or point --checkpoint-dir elsewhere") from None
    if not isinstance(snap, dict) or "model" not in snap:
        raise TrainError(f"checkpoint {path} is not a trainkit checkpoint", "point --checkpoint-dir elsewhere")
    if snap.get("arch") != arch or snap.get("task") != task:
        raise TrainError(f"checkpoint {path} was written for {snap.get('task')}/{snap.get('arch')}, this job "
                         f"trains {task}/{arch}", "use an empty --checkpoint-dir, or the same task and --arch")
    return snap
