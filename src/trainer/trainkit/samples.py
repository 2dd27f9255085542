"""Real inputs for parity checks and prediction: validation images or penguin rows, turned
into model inputs exactly as training's validation did."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from . import data as data_mod
from .errors import TrainError
from .meta import ModelCard


def image_tensor(path: Path, preprocessing: dict[str, Any] | None = None) -> torch.Tensor:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            image = img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise TrainError(f"image {path} cannot be read ({exc})", "pass JPEG or PNG files") from None
    return data_mod.image_transforms(False, preprocessing)(image)


def validation_set(meta: ModelCard, data: Path, limit: int | None = None,
                   seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Validation samples and labels from the training data (the same split training used);
    ``limit`` picks at most that many, spread over the classes."""
    return labelled_set(meta, data, "val", limit, seed)


def labelled_set(meta: ModelCard, data: Path, split: str, limit: int | None = None,
                 seed: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Samples and labels of one split ("train" or "val") of the training data, prepared as the
    model sees them when it serves (the validation transform, no augmentation)."""
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")
    if meta.task == "images":
        root = Path(data)
        classes = data_mod.check_image_folder(root)
        if classes != meta.classes:
            raise TrainError(f"classes in {root} ({classes}) differ from the model's ({meta.classes})",
                             "pass the data the model was trained on")
        files = [(p, i) for i, name in enumerate(classes) for p in data_mod._image_files(root / split / name)]
        if limit is not None and len(files) > limit:
            files = files[::max(1, len(files) // limit)][:limit]
        return (torch.stack([image_tensor(p, meta.preprocessing) for p, _ in files]),
                torch.tensor([i for _, i in files]))
    frame = data_mod.read_penguins(Path(data))
    split_seed = seed if seed is not None else meta.seed
    train_idx, val_idx = data_mod.split_indices(len(frame), split_seed)
    picked = (train_idx if split == "train" else val_idx).tolist()
    rows = frame.iloc[picked[:limit] if limit else picked]
    labels = torch.tensor([list(meta.classes).index(s) for s in rows["species"]])
    return data_mod.penguin_features(rows), labels


def validation_inputs(meta: ModelCard, data: Path, limit: int, seed: int | None = None) -> torch.Tensor:
    return validation_set(meta, data, limit, seed)[0]


def image_inputs(folder: Path, preprocessing: dict[str, Any] | None = None,
                 limit: int = 256) -> tuple[list[str], torch.Tensor]:
    folder = Path(folder)
    if not folder.exists():
        raise TrainError(f"image folder {folder} does not exist")
    files = sorted(p for p in (folder.rglob("*") if folder.is_dir() else [folder])
                   if p.is_file() and p.suffix.lower() in data_mod.IMAGE_EXTENSIONS)
    if not files:
        raise TrainError(f"no images in {folder}", f"pass a folder of {', '.join(data_mod.IMAGE_EXTENSIONS[:3])} files")
    if len(files) > limit:
        raise TrainError(f"{len(files)} images in {folder}; at most {limit} per call", "split the folder")
    return [str(p) for p in files], torch.stack([image_tensor(p, preprocessing) for p in files])
