"""Training speed, measured side by side in one run on the same generated JPEG dataset:

- images: our train component (`src/trainer/train.py`: cached decoded images, bf16 autocast
  on CPUs with bf16 matrix units, channels_last, persistent workers, no per-step host syncs)
  against a plain reference loop written here (the PyTorch transfer-learning tutorial:
  torchvision ImageFolder decoding every JPEG with PIL every epoch, a default DataLoader, fp32,
  `loss.item()` each step), same model (ResNet-18), image size, batch size, learning rate,
  epochs and seed: training samples/s (epochs after the first) and final val accuracy.
  Goal: at least 2.5x, val accuracy within 2 points.
- penguins: samples/s of 1 process against 2 processes (torchrun, gloo): scaling efficiency.
- peak resident memory of each training process.

    python bench/bench_training.py [--epochs 3] [--per-class 96] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The reference runs where the component runs: CUDA when there is one (a GPU machine reports
# images/s for both), else the CPU.
TRAINER = ROOT / "src" / "trainer"
BIN = Path(sys.executable).parent

REFERENCE = r'''
import json, sys, time, resource
import torch, torch.nn as nn
from torchvision import datasets, models, transforms
data_dir, epochs, batch_size, lr, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
torch.manual_seed(seed)
data_transforms = {
    "train": transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(),
                                 transforms.ToTensor(), transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]),
    "val": transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                               transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]),
}
image_datasets = {x: datasets.ImageFolder(f"{data_dir}/{x}", data_transforms[x]) for x in ["train", "val"]}
dataloaders = {x: torch.utils.data.DataLoader(image_datasets[x], batch_size=batch_size, shuffle=(x == "train"))
               for x in ["train", "val"]}
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
model = models.resnet18(weights=None)
model.fc = nn.Linear(model.fc.in_features, len(image_datasets["train"].classes))
model = model.to(device)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=7, gamma=0.1)
rates, acc = [], 0.0
for epoch in range(epochs):
    model.train()
    start, seen, running_loss = time.perf_counter(), 0, 0.0
    for inputs, labels in dataloaders["train"]:
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        optimizer.step()
        running_loss += loss.item() * inputs.size(0)
        seen += inputs.size(0)
    rates.append(seen / (time.perf_counter() - start))
    scheduler.step()
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for inputs, labels in dataloaders["val"]:
            inputs, labels = inputs.to(device), labels.to(device)
            correct += (model(inputs).argmax(1) == labels).sum().item()
            total += labels.size(0)
    acc = correct / total
    print(f"epoch {epoch + 1} train samples/s {rates[-1]:.1f} val_accuracy {acc:.4f}", flush=True)
print(json.dumps({"samples_per_s": sum(rates[1:]) / max(1, len(rates) - 1) if len(rates) > 1 else rates[0],
                  "val_accuracy": acc, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
'''


def make_photos(root: Path, per_class: int, val_per_class: int, seed: int = 0) -> None:
    """Photo-sized JPEGs (500 x 375, like the tutorial's data): 'chickens' warm round shapes on
    light, 'turkeys' dark striped shapes, over smooth random backgrounds with noise."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    y, x = np.mgrid[0:375, 0:500].astype(np.float32)
    for split, count in (("train", per_class), ("val", val_per_class)):
        for label in ("chickens", "turkeys"):
            folder = root / split / label
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(count):
                phase = rng.random() * 6
                light = 150 if label == "chickens" else 60
                base = np.stack([light + 40 * np.sin(x / 80 + phase), light + 30 * np.cos(y / 60 + phase),
                                 light + 20 * np.sin((x + y) / 100)], -1)
                img = Image.fromarray(base.clip(0, 255).astype("uint8"))
                draw = ImageDraw.Draw(img)
                for _ in range(rng.randint(2, 5)):
                    cx, cy, r = rng.randint(60, 440), rng.randint(60, 315), rng.randint(25, 70)
                    if label == "chickens":
                        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(rng.randint(200, 255), rng.randint(90, 160), 30))
                    else:
                        for k in range(-r, r, 9):
                            draw.rectangle([cx + k, cy - r, cx + k + 4, cy + r], fill=(30, rng.randint(60, 120), rng.randint(150, 230)))
                img = img.filter(ImageFilter.GaussianBlur(1.2))
                noisy = np.asarray(img, dtype=np.float32) + nrng.normal(0, 6, (375, 500, 3))
                Image.fromarray(noisy.clip(0, 255).astype("uint8")).save(folder / f"{label}_{i:04d}.jpg", quality=88)


def run(cmd: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    if result.returncode != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--per-class", type=int, default=96, help="training images per class")
    parser.add_argument("--reference-batch", type=int, default=4, help="the tutorial's batch size (4)")
    parser.add_argument("--batch-size", type=int, default=32, help="the train component's (its default, 32)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    lr, seed = 0.003, 0
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_photos(tmp / "photos", args.per_class, max(8, args.per_class // 3))
        env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}", PYTHONUNBUFFERED="1")
        env.pop("OMP_NUM_THREADS", None)  # both sides use every core, as a user's job would

        (tmp / "reference.py").write_text(REFERENCE)
        start = time.perf_counter()
        ref_out = run([sys.executable, str(tmp / "reference.py"), str(tmp / "photos"), str(args.epochs),
                       str(args.reference_batch), str(lr), str(seed)], env, tmp)
        ref_wall = time.perf_counter() - start
        reference = json.loads(ref_out.stdout.strip().splitlines()[-1])

        start = time.perf_counter()
        run([sys.executable, str(TRAINER / "train.py"), "--task", "images", "--data", str(tmp / "photos"),
             "--epochs", str(args.epochs), "--batch-size", str(args.batch_size), "--learning-rate", str(lr),
             "--seed", str(seed), "--model-dir", str(tmp / "ours" / "model"), "--checkpoint-dir",
             str(tmp / "ours" / "ckpt")], env, tmp)
        ours_wall = time.perf_counter() - start
        ours_meta = json.loads((tmp / "ours" / "model" / "model.json").read_text())

        shutil.copyfile(Path(__import__("palmerpenguins").__file__).parent / "data" / "penguins.csv",
                        tmp / "penguins.csv")
        penguins = {}
        for procs in (1, 2):
            out = tmp / f"penguins{procs}"
            base = ["--task", "penguins", "--data", str(tmp / "penguins.csv"), "--epochs", "40", "--batch-size", "16",
                    "--precision", "fp32", "--model-dir", str(out / "model"), "--checkpoint-dir", str(out / "ckpt")]
            cmd = ([sys.executable, str(TRAINER / "train.py"), *base] if procs == 1 else
                   [str(BIN / "torchrun"), "--standalone", "--nproc_per_node", "2", str(TRAINER / "train.py"), *base])
            run(cmd, env, tmp)
            penguins[procs] = json.loads((out / "model" / "model.json").read_text())["training"]

    ours_rate = ours_meta["training"]["samples_per_s"]
    ours_acc = ours_meta["metrics"]["val_accuracy"]
    speedup = ours_rate / reference["samples_per_s"]
    print(f"images: ResNet-18, 224 px, {args.per_class * 2} training JPEGs (500 x 375), {args.epochs} epochs, "
          f"learning rate {lr}; batch {args.reference_batch} (reference) and {args.batch_size} (train component)")
    print(f"  {'':<34} {'samples/s':>10} {'val acc':>8} {'wall s':>7} {'peak MiB':>9}")
    print(f"  {'reference loop (tutorial, fp32)':<34} {reference['samples_per_s']:10.1f} {reference['val_accuracy']:8.4f} "
          f"{ref_wall:7.1f} {reference['peak_rss_mb']:9.0f}")
    print(f"  {'train component (' + ours_meta['training']['precision'] + ', cached)':<34} {ours_rate:10.1f} "
          f"{ours_acc:8.4f} {ours_wall:7.1f} {max(ours_meta['training']['peak_rss_mb_per_process']):9.0f}")
    print(f"  speed-up {speedup:.2f}x (goal 2.5x); val accuracy difference "
          f"{(ours_acc - reference['val_accuracy']) * 100:+.1f} points (bound 2)")
    one, two = penguins[1]["samples_per_s"], penguins[2]["samples_per_s"]
    print(f"penguins: 1 process {one:.0f} samples/s, 2 processes {two:.0f} samples/s: scaling efficiency "
          f"{two / (2 * one):.0%}; peak MiB per process {penguins[2]['peak_rss_mb_per_process']}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "images": {"reference_batch": args.reference_batch, "batch": args.batch_size, "reference": reference, "reference_wall_s": ref_wall, "ours_samples_per_s": ours_rate,
                       "ours_val_accuracy": ours_acc, "ours_wall_s": ours_wall, "speedup": speedup,
                       "ours_peak_rss_mb": ours_meta["training"]["peak_rss_mb_per_process"],
                       "precision": ours_meta["training"]["precision"]},
            "penguins": {"one_process": penguins[1], "two_processes": penguins[2],
                         "scaling_efficiency": two / (2 * one)}}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
