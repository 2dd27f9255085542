"""Data the tests make themselves (nothing is downloaded): two visually distinct image
classes as JPEGs, and the penguins CSV the palmerpenguins package ships."""

from __future__ import annotations

import random
import shutil
from pathlib import Path


def make_images(root: Path, per_class_train: int = 16, per_class_val: int = 8, size: int = 64, seed: int = 0) -> Path:
    """train/<class>/*.jpg and val/<class>/*.jpg: 'chickens' are warm discs on light
    backgrounds, 'turkeys' are cool stripes on dark backgrounds, each with noise."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    for split, count in (("train", per_class_train), ("val", per_class_val)):
        for label in ("chickens", "turkeys"):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                if label == "chickens":
                    bg = tuple(rng.randint(180, 255) for _ in range(3))
                    img = Image.new("RGB", (size, size), bg)
                    draw = ImageDraw.Draw(img)
                    r = rng.randint(size // 6, size // 3)
                    cx, cy = rng.randint(r, size - r), rng.randint(r, size - r)
                    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(rng.randint(200, 255), rng.randint(60, 140), 20))
                else:
                    bg = tuple(rng.randint(0, 70) for _ in range(3))
                    img = Image.new("RGB", (size, size), bg)
                    draw = ImageDraw.Draw(img)
                    for x in range(rng.randint(0, 6), size, rng.randint(8, 14)):
                        draw.rectangle([x, 0, x + 3, size], fill=(20, rng.randint(60, 140), rng.randint(200, 255)))
                img.save(folder / f"{label}_{i:03d}.jpg", quality=90)
    return root


def penguins_csv(dest: Path) -> Path:
    import palmerpenguins

    source = Path(palmerpenguins.__file__).parent / "data" / "penguins.csv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    return dest
