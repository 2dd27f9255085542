"""The two tasks' data: an ImageFolder of photos (train/<class>/, val/<class>/) and the
Palmer penguins CSV. Both check their input up front and fail with one clear error naming
the path or column."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

from .errors import TrainError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_SIZE = 224
RESIZE = 256

# Penguins: the lab's features and scaling (flipper length / 10, body mass / 100).
PENGUIN_COLUMNS = ("species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
PENGUIN_FEATURES = ("island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g")
PENGUIN_SCALE = {"island": 1.0, "bill_length_mm": 1.0, "bill_depth_mm": 1.0, "flipper_length_mm": 10.0,
                 "body_mass_g": 100.0}
PENGUIN_ISLANDS = ("Biscoe", "Dream", "Torgersen")
PENGUIN_SPECIES = ("Adelie", "Chinstrap", "Gentoo")


@dataclass
class TaskData:
    train: Dataset
    val: Dataset
    classes: list[str]
    input_shape: list[int]  # one sample, without the batch axis
    preprocessing: dict[str, Any]


# ------------------------------------------------------------------ images

def image_preprocessing(size: int = IMAGE_SIZE) -> dict[str, Any]:
    """The recipe's evaluation transform (resize 256, centre crop 224 at the default size),
    recorded in the model folder so that export, prediction and serving apply the same."""
    return {"kind": "image", "resize": round(size * RESIZE / IMAGE_SIZE), "crop": size, "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD), "channels": "RGB", "layout": "NCHW"}


def image_transforms(train: bool, preprocessing: dict[str, Any] | None = None):
    from torchvision import transforms

    pre = preprocessing or image_preprocessing()
    normalize = transforms.Normalize(pre["mean"], pre["std"])
    if train:
        return transforms.Compose([transforms.RandomResizedCrop(pre["crop"]), transforms.RandomHorizontalFlip(),
                                   transforms.ToTensor(), normalize])
    return transforms.Compose([transforms.Resize(pre["resize"]), transforms.CenterCrop(pre["crop"]),
                               transforms.ToTensor(), normalize])


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def check_image_folder(root: Path) -> list[str]:
    """Check the layout and every image; returns the class names."""
    if not root.exists():
        raise TrainError(f"data folder {root} does not exist", "pass the folder that holds train/ and val/")
    if not root.is_dir():
        raise TrainError(f"data path {root} is a file; the images task needs a folder with train/ and val/",
                         "use --task penguins for a CSV")
    classes_by_split = {}
    for split in ("train", "val"):
        folder = root / split
        if not folder.is_dir():
            raise TrainError(f"data folder {root} has no {split}/ folder",
                             "lay the images out as train/<class>/*.jpg and val/<class>/*.jpg")
        classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
        if len(classes) < 2:
            raise TrainError(f"{folder} has {len(classes)} class folder{'s' if len(classes) != 1 else ''}"
                             f"{' (' + classes[0] + ')' if classes else ''}; a classifier needs at least two",
                             "add one folder of images per class")
        for name in classes:
            if not _image_files(folder / name):
                raise TrainError(f"class folder {folder / name} holds no images",
                                 f"add images ({', '.join(IMAGE_EXTENSIONS[:3])}, ...) or remove the folder")
        classes_by_split[split] = classes
    if classes_by_split["train"] != classes_by_split["val"]:
        raise TrainError(f"train/ and val/ under {root} have different classes: {classes_by_split['train']} "
                         f"vs {classes_by_split['val']}", "use the same class folder names in both")
    return classes_by_split["train"]


def verify_images(files: list[Path]) -> None:
    from PIL import Image, UnidentifiedImageError

    for path in files:
        try:
            with Image.open(path) as img:
                img.verify()
        except (UnidentifiedImageError, OSError, SyntaxError) as exc:
            raise TrainError(f"image {path} cannot be read ({type(exc).__name__}: {exc})",
                             "remove or replace the file") from None


class ImageFiles(Dataset):
    """(path, label) pairs decoded with PIL on access."""

    def __init__(self, samples: list[tuple[Path, int]], transform):
        self.samples = samples
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        from PIL import Image

        path, label = self.samples[index]
        try:
            with Image.open(path) as img:
                image = img.convert("RGB")
        except OSError as exc:
            raise TrainError(f"image {path} cannot be read ({exc})", "remove or replace the file") from None
        return self.transform(image), label


class CachedImages(Dataset):
    """Images decoded once, kept in memory as uint8 tensors: train images resized so their
    shorter side is the recipe's resize (256 at 224) and augmented per access on the tensor
    (RandomResizedCrop + flip, antialiased); val images stored already resized and centre-cropped.
    Samples are uint8; the trainer normalises the batch on the device. DataLoader workers
    share the cache (fork, copy-on-write)."""

    normalized = False  # the trainer applies mean/std to the uint8 batch

    def __init__(self, samples: list[tuple[Path, int]], train: bool, pre: dict[str, Any]):
        from PIL import Image
        from torchvision.transforms import v2

        self.labels = [label for _, label in samples]
        self.train = train
        self.images: list[torch.Tensor] = []
        resize, crop = int(pre["resize"]), int(pre["crop"])
        for path, _ in samples:
            try:
                with Image.open(path) as img:
                    img.draft("RGB", (resize, resize))  # JPEG: decode at a reduced scale when it is much larger
                    image = img.convert("RGB")
            except OSError as exc:
                raise TrainError(f"image {path} cannot be read ({exc})", "remove or replace the file") from None
            w, h = image.size
            scale = resize / min(w, h)
            image = image.resize((max(resize, round(w * scale)), max(resize, round(h * scale))), Image.BILINEAR)
            if not train:
                left, top = (image.width - crop) // 2, (image.height - crop) // 2
                image = image.crop((left, top, left + crop, top + crop))
            self.images.append(torch.from_numpy(_hwc(image)).permute(2, 0, 1).contiguous())
        self.augment = v2.Compose([v2.RandomResizedCrop(crop, antialias=True), v2.RandomHorizontalFlip()]) \
            if train else None

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        image = self.images[index]
        if self.augment is not None:
            image = self.augment(image)
        return image, self.labels[index]


def _hwc(image):
    import numpy as np

    return np.asarray(image, dtype=np.uint8).copy()


def cache_fits(samples: int, resize: int) -> bool:
    """Cache decoded images when they take at most a quarter of the machine's memory."""
    per_image = 3 * resize * int(resize * 4 / 3)  # bytes at a 4:3 aspect
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return False
    return samples * per_image <= total // 4


def load_images(root: Path, size: int = IMAGE_SIZE, verify: bool = True, cache: str = "auto") -> TaskData:
    classes = check_image_folder(root)
    pre = image_preprocessing(size)
    splits = {}
    listed = {split: [(p, i) for i, name in enumerate(classes) for p in _image_files(root / split / name)]
              for split in ("train", "val")}
    use_cache = cache == "on" or (cache == "auto" and cache_fits(sum(map(len, listed.values())), pre["resize"]))
    for split, samples in listed.items():
        if verify and not use_cache:
            verify_images([p for p, _ in samples])
        if use_cache:
            splits[split] = CachedImages(samples, split == "train", pre)
        else:
            splits[split] = ImageFiles(samples, image_transforms(split == "train", pre))
    return TaskData(splits["train"], splits["val"], classes, [3, size, size], pre)


# ------------------------------------------------------------------ penguins

def penguin_preprocessing(ranges: dict[str, list[float]] | None = None) -> dict[str, Any]:
    """The features, their scaling and the island codes; with `ranges` (penguin_ranges of the
    training rows) the scorer also refuses numbers far outside what the model was trained on."""
    pre = {"kind": "tabular", "features": list(PENGUIN_FEATURES), "scale": dict(PENGUIN_SCALE),
           "island_codes": {name: i for i, name in enumerate(PENGUIN_ISLANDS)}}
    if ranges is not None:
        pre["ranges"] = ranges
    return pre


def penguin_ranges(frame) -> dict[str, list[float]]:
    """[min, max] of each numeric feature over these rows, in the CSV's units (before scaling)."""
    return {name: [float(frame[name].min()), float(frame[name].max())] for name in PENGUIN_FEATURES
            if name != "island"}


def find_csv(path: Path) -> Path:
    if not path.exists():
        raise TrainError(f"data file {path} does not exist", "pass the penguins CSV (a uri_file input)")
    if path.is_dir():
        csvs = sorted(path.glob("*.csv"))
        if len(csvs) != 1:
            raise TrainError(f"data folder {path} holds {len(csvs)} CSV files; expected exactly one",
                             "pass the CSV file itself")
        return csvs[0]
    return path


def read_penguins(path: Path):
    """The CSV as a DataFrame with complete rows only, checked column by column."""
    import pandas as pd

    csv = find_csv(path)
    try:
        frame = pd.read_csv(csv)
    except Exception as exc:  # pandas raises many kinds for unreadable CSV
        raise TrainError(f"cannot read {csv} as CSV: {exc}") from None
    missing = [c for c in PENGUIN_COLUMNS if c not in frame.columns]
    if missing:
        raise TrainError(f"{csv} has no column {', '.join(repr(m) for m in missing)} "
                         f"(columns: {', '.join(map(str, frame.columns))})",
                         "use the palmerpenguins CSV layout: species, island, bill_length_mm, bill_depth_mm, "
                         "flipper_length_mm, body_mass_g")
    frame = frame.dropna(subset=list(PENGUIN_COLUMNS)).reset_index(drop=True)
    bad_island = sorted(set(frame["island"]) - set(PENGUIN_ISLANDS))
    if bad_island:
        raise TrainError(f"{csv}: column 'island' has unknown values {bad_island}",
                         f"islands are {', '.join(PENGUIN_ISLANDS)}")
    bad_species = sorted(set(frame["species"]) - set(PENGUIN_SPECIES))
    if bad_species:
        raise TrainError(f"{csv}: column 'species' has unknown values {bad_species}",
                         f"species are {', '.join(PENGUIN_SPECIES)}")
    if len(frame) < 10:
        raise TrainError(f"{csv} has {len(frame)} complete rows; too few to train and validate")
    return frame


def penguin_features(rows) -> torch.Tensor:
    """Features in the lab's order and scale, from a DataFrame or a list of dicts."""
    import pandas as pd

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows))
    codes = {name: i for i, name in enumerate(PENGUIN_ISLANDS)}
    columns = []
    for name in PENGUIN_FEATURES:
        if name not in frame.columns:
            raise TrainError(f"input has no field {name!r}", f"each row needs {', '.join(PENGUIN_FEATURES)}")
        if name == "island":
            unknown = sorted(set(map(str, frame[name])) - set(codes))
            if unknown:
                raise TrainError(f"unknown island {unknown[0]!r}", f"use one of {', '.join(PENGUIN_ISLANDS)}")
            columns.append(frame[name].map(codes).astype("float32").to_numpy())
        else:
            try:
                values = frame[name].astype("float32").to_numpy()
            except (TypeError, ValueError):
                raise TrainError(f"field {name!r} must be a number") from None
            columns.append(values / PENGUIN_SCALE[name])
    import numpy as np

    return torch.from_numpy(np.stack(columns, axis=1).astype("float32"))


def split_indices(n: int, seed: int, val_fraction: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_val = int(round(n * val_fraction))
    return order[n_val:], order[:n_val]


def load_penguins(path: Path, seed: int) -> TaskData:
    frame = read_penguins(path)
    x = penguin_features(frame)
    y = torch.tensor([PENGUIN_SPECIES.index(s) for s in frame["species"]], dtype=torch.long)
    train_idx, val_idx = split_indices(len(frame), seed)  # 70/30 with a fixed seed
    ranges = penguin_ranges(frame.iloc[train_idx.numpy()])
    return TaskData(TensorDataset(x[train_idx], y[train_idx]), TensorDataset(x[val_idx], y[val_idx]),
                    list(PENGUIN_SPECIES), [len(PENGUIN_FEATURES)], penguin_preprocessing(ranges))


def load_task(task: str, data: Path, seed: int, image_size: int = IMAGE_SIZE, cache: str = "auto") -> TaskData:
    if task == "images":
        return load_images(Path(data), image_size, cache=cache)
    if task == "penguins":
        return load_penguins(Path(data), seed)
    raise TrainError(f"unknown task {task!r}", "use images or penguins")


def default_workers(local_world_size: int, cached: bool = False) -> int:
    """DataLoader workers per process, from the CPUs this process gets (shared by the processes
    on the node). Decoding JPEGs every epoch wants every spare CPU (one left for the training
    loop, at most 8); cached images need only a light augmentation, which the training loop
    does itself on small machines (a worker would take a core from the compute threads)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    per_process = cpus // max(local_world_size, 1)
    if cached:
        return min(2, per_process // 4)
    return max(0, min(8, per_process - 1))
