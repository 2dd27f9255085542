"""Predict for new samples from the PyTorch model folder or the ONNX folder: penguin
measurements (JSON rows, as the lab's last step) or a folder of images; JSON out."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

from . import data as data_mod
from .meta import read_meta
from .errors import TrainError
from .samples import image_inputs

MAX_ROWS = 10_000


def load_rows(source: str) -> list[dict[str, Any]]:
    text = Path(source).read_text() if source != "-" and Path(source).is_file() else (
        sys.stdin.read() if source == "-" else source)
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise TrainError(f"penguin input is not valid JSON ({exc})",
                         'pass e.g. [{"island": "Biscoe", "bill_length_mm": 48.7, "bill_depth_mm": 14.1, '
                         '"flipper_length_mm": 210, "body_mass_g": 4450}]') from None
    rows = [rows] if isinstance(rows, dict) else rows
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise TrainError("penguin input must be a JSON object or a list of objects")
    if not rows:
        raise TrainError("penguin input holds no rows")
    if len(rows) > MAX_ROWS:
        raise TrainError(f"{len(rows)} rows; at most {MAX_ROWS} per call", "split the input")
    return rows


def logits_torch(model_dir: Path, inputs: torch.Tensor) -> torch.Tensor:
    from .artifacts import load_model_dir

    model, _ = load_model_dir(model_dir)
    with torch.no_grad():
        return model(inputs).float()


def logits_onnx(onnx_dir: Path, inputs: torch.Tensor) -> torch.Tensor:
    import numpy as np
    import onnxruntime as ort

    path = Path(onnx_dir) / "model.onnx"
    if not path.is_file():
        raise TrainError(f"{onnx_dir} has no model.onnx", "pass export_onnx.py's output folder")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return torch.from_numpy(session.run(["logits"], {"input": inputs.numpy().astype(np.float32)})[0])


def predict(folder: Path, *, onnx: bool, rows: list[dict] | None = None, images: Path | None = None) -> list[dict]:
    meta = read_meta(folder)
    if meta.task == "penguins":
        if rows is None:
            raise TrainError("a penguins model takes --input JSON rows", "use --input '[{...}]'")
        inputs = data_mod.penguin_features(rows)
        names = [str(i) for i in range(len(rows))]
    else:
        if images is None:
            raise TrainError("an image model takes --images FOLDER")
        names, inputs = image_inputs(images, meta.preprocessing)
    logits = logits_onnx(folder, inputs) if onnx else logits_torch(folder, inputs)
    probs = torch.softmax(logits, dim=1)
    best = probs.argmax(1)
    return [{"input": name, "class": meta.classes[int(i)], "probability": round(float(probs[n, i]), 6)}
            for n, (name, i) in enumerate(zip(names, best))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="predict.py", description=__doc__.splitlines()[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-dir", type=Path, help="PyTorch model folder (training's model_dir)")
    source.add_argument("--onnx-dir", type=Path, help="ONNX folder (export_onnx.py's output)")
    p.add_argument("--input", help="penguins: JSON rows, a JSON file, or - for stdin")
    p.add_argument("--images", type=Path, help="images: a folder (or one file)")
    p.add_argument("--output", type=Path, help="write the JSON here instead of stdout")
    args = p.parse_args(argv)
    try:
        rows = load_rows(args.input) if args.input is not None else None
        result = predict(args.onnx_dir or args.model_dir, onnx=args.onnx_dir is not None, rows=rows,
                         images=args.images)
    except TrainError as exc:
        sys.stderr.write(f"error: {exc.line()}\n")
        return 2
    text = json.dumps({"predictions": result}, indent=2) + "\n"
    if args.output:
        args.output.write_text(text)
    else:
        sys.stdout.write(text)
    return 0
