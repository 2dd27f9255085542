"""Export a trained model folder to ONNX (dynamic batch axis) and prove it: run the same real
validation samples through PyTorch and onnxruntime, require max |logit difference| <= 1e-4
and identical predicted classes, write a JSON report, exit non-zero when parity fails."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import warnings
from pathlib import Path

import torch

from .artifacts import META_FILE, atomic_write_text, load_model_dir
from .errors import TrainError
from .samples import validation_inputs

TOLERANCE = 1e-4
ONNX_FILE = "model.onnx"
REPORT_FILE = "report.json"


def export(model: torch.nn.Module, example: torch.Tensor, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".onnx.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), str(tmp), dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=17)
    tmp.replace(path)


def parity(model: torch.nn.Module, onnx_path: Path, inputs: torch.Tensor) -> dict:
    import numpy as np
    import onnx
    import onnxruntime as ort

    onnx.checker.check_model(str(onnx_path))
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        expected = model(inputs).float().numpy()
    got = session.run(["logits"], {"input": inputs.numpy().astype(np.float32)})[0]
    diff = float(np.abs(expected - got).max()) if expected.size else 0.0
    same = bool((expected.argmax(1) == got.argmax(1)).all())
    # a second batch size proves the batch axis is really dynamic
    one = session.run(["logits"], {"input": inputs[:1].numpy().astype(np.float32)})[0]
    return {"samples": int(inputs.shape[0]), "max_abs_diff": diff, "tolerance": TOLERANCE,
            "predictions_equal": same, "batch_1_max_abs_diff": float(np.abs(one - expected[:1]).max()),
            "ok": diff <= TOLERANCE and same and float(np.abs(one - expected[:1]).max()) <= TOLERANCE,
            "onnxruntime": ort.__version__, "opset": 17}


def run(model_dir: Path, data: Path, output_dir: Path, samples: int) -> dict:
    model, meta = load_model_dir(model_dir)
    model = model.float().eval()
    inputs = validation_inputs(meta, data, samples)
    if inputs.shape[0] == 0:
        raise TrainError(f"no validation samples found in {data}")
    if meta["task"] == "images":
        inputs = inputs.contiguous()
    start = time.perf_counter()
    export(model, inputs[:2], output_dir / ONNX_FILE)
    report = parity(model, output_dir / ONNX_FILE, inputs)
    report.update({"export_seconds": round(time.perf_counter() - start, 3), "task": meta["task"],
                   "arch": meta["arch"], "classes": meta["classes"],
                   "val_accuracy": (meta.get("metrics") or {}).get("val_accuracy"),
                   "mlflow_run_id": meta.get("mlflow_run_id")})
    shutil.copyfile(Path(model_dir) / META_FILE, output_dir / META_FILE)  # the ONNX folder serves on its own
    atomic_write_text(output_dir / REPORT_FILE, json.dumps(report, indent=2, sort_keys=True) + "\n")
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="export_onnx.py", description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, required=True, help="the training job's model folder")
    p.add_argument("--data", "--data-dir", "--data-file", dest="data", type=Path, required=True,
                   help="the training data (validation samples are taken from it)")
    p.add_argument("--output-dir", "--onnx-dir", dest="output_dir", type=Path, required=True)
    p.add_argument("--samples", type=int, default=64, help="validation samples to compare (default 64)")
    args = p.parse_args(argv)
    try:
        report = run(args.model_dir, args.data, args.output_dir, args.samples)
    except TrainError as exc:
        sys.stderr.write(f"error: {exc.line()}\n")
        return 2
    verdict = "ok" if report["ok"] else "FAILED"
    print(f"[export] ONNX parity {verdict}: max |diff| {report['max_abs_diff']:.2e} (tolerance {TOLERANCE:g}) on "
          f"{report['samples']} validation samples, predictions equal: {report['predictions_equal']}; "
          f"{args.output_dir / ONNX_FILE}", flush=True)
    if not report["ok"]:
        sys.stderr.write(f"error: ONNX parity failed; see {args.output_dir / REPORT_FILE}\n")
        return 1
    return 0
