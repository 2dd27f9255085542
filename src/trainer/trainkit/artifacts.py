"""The model folder (everything needed to rebuild and serve the model) and checkpoints."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import torch

from .errors import TrainError
from .files import atomic_write_bytes, atomic_write_text
from .meta import META_FILE, MODEL_FILE, ModelCard, read_meta
from .models import build_model, is_convolutional

CHECKPOINT_FILE = "checkpoint.pt"


def atomic_torch_save(obj: Any, path: Path) -> None:
    atomic_write_bytes(path, lambda fh: torch.save(obj, fh))


def save_model_dir(folder: Path, model: torch.nn.Module, card: ModelCard) -> None:
    state = {k: v.detach().to("cpu", torch.float32) if v.is_floating_point() else v.detach().cpu()
             for k, v in model.state_dict().items()}
    atomic_torch_save(state, folder / MODEL_FILE)
    atomic_write_text(folder / META_FILE, card.to_json())


def load_model_dir(folder: Path) -> tuple[torch.nn.Module, ModelCard]:
    """Rebuild the trained model (eval mode, fp32, CPU) from its folder."""
    folder = Path(folder)
    meta = read_meta(folder)
    weights = folder / MODEL_FILE
    if not weights.is_file():
        raise TrainError(f"{folder} has no {MODEL_FILE}", "pass the training job's model_dir output")
    model = build_model(meta.arch, len(meta.classes), pretrained=False,
                        inputs=meta.input_shape[0] if meta.task == "penguins" else 5)
    state = torch.load(weights, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise TrainError(f"{weights} does not match a {meta.arch} with {len(meta.classes)} classes "
                         f"({str(exc).splitlines()[0]})", "the model folder is inconsistent; re-run training") from None
    model.eval()
    if is_convolutional(meta.arch):
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
