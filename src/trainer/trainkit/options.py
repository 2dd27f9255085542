"""The trainer's command line: `python train.py --help`."""

from __future__ import annotations

import argparse
from pathlib import Path

from .models import ARCHS


def str2bool(value: str) -> bool:
    """Azure pastes a YAML boolean into the command as True/False; accept every spelling."""
    text = str(value).strip().lower()
    if text in ("true", "1", "yes", "y", "on"):
        return True
    if text in ("false", "0", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="train.py", description="Train an image classifier (ResNet transfer learning) or the penguins MLP, "
        "on one process or many (torchrun, Azure ML pytorch/mpi distributions).")
    p.add_argument("--task", choices=("images", "penguins"), default="images")
    p.add_argument("--data", "--data-dir", "--data-file", dest="data", type=Path, required=True,
                   help="images: folder with train/<class>/ and val/<class>/; penguins: the CSV file")
    p.add_argument("--arch", choices=ARCHS, default=None, help="default: resnet18 (images), mlp (penguins)")
    p.add_argument("--epochs", type=int, default=25)
    p.add_argument("--batch-size", type=int, default=32, help="per process")
    p.add_argument("--learning-rate", type=float, default=0.001,
                   help="images: SGD learning rate; penguins: Adam's, multiplied by the world size")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--step-size", type=int, default=7, help="StepLR step (epochs)")
    p.add_argument("--gamma", type=float, default=0.1, help="StepLR factor")
    p.add_argument("--pretrained", type=str2bool, default=False, help="start from torchvision's ImageNet weights")
    p.add_argument("--freeze-backbone", type=str2bool, default=False, help="train the new head only")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="auto: bf16 autocast on CUDA and on CPUs with bf16 matrix units, else fp32")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--image-size", type=int, default=224, help="images: crop size (the recipe's 224; resize scales "
                   "with it, 256 at 224)")
    p.add_argument("--cache-images", choices=("auto", "on", "off"), default="auto",
                   help="images: decode once and keep resized images in memory (auto: when they fit in a quarter "
                        "of RAM); off decodes every image every epoch")
    p.add_argument("--num-workers", type=int, default=None, help="DataLoader workers per process (default: from CPUs)")
    p.add_argument("--compile", type=str2bool, default=False, help="torch.compile the model (opt-in)")
    p.add_argument("--model-dir", type=Path, default=Path("outputs/model"))
    p.add_argument("--checkpoint-dir", type=Path, default=Path("outputs/checkpoints"))
    args = p.parse_args(argv)
    if args.arch is None:
        args.arch = "mlp" if args.task == "penguins" else "resnet18"
    if (args.task == "penguins") != (args.arch == "mlp"):
        p.error(f"--arch {args.arch} does not fit --task {args.task} (penguins use mlp, images a resnet)")
    for name in ("epochs", "batch_size", "image_size"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    if not args.learning_rate > 0:
        p.error("--learning-rate must be positive")
    return args


