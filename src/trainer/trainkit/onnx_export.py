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
from .samples import validation_set

TOLERANCE = 1e-4
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
REPORT_FILE = "report.json"
MAX_ACCURACY_DROP = 0.01  # the int8 variant is chosen only within one point of fp32's accuracy


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


def _session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def accuracy(path: Path, inputs: torch.Tensor, labels: torch.Tensor, batch: int = 64) -> float:
    import numpy as np

    session = _session(path)
    correct = 0
    for start in range(0, inputs.shape[0], batch):
        x = inputs[start:start + batch].numpy().astype(np.float32)
        logits = session.run(["logits"], {"input": x})[0]
        correct += int((logits.argmax(1) == labels[start:start + batch].numpy()).sum())
    return correct / max(1, inputs.shape[0])


def quantize(fp32: Path, int8: Path, task: str, calibration: torch.Tensor) -> str:
    """int8 with onnxruntime.quantization: static QDQ (per-channel int8 weights, uint8
    activations calibrated on validation samples). Static, not dynamic: a request's answer
    must not depend on the other rows that came with it. Returns the method used."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = int8.with_suffix(".prep.onnx")
    try:
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        source = prepared
    except Exception:  # noqa: BLE001 - pre-processing is an optimisation, not required
        source = fp32
    try:
        class Reader(CalibrationDataReader):
            def __init__(self):
                self.batches = iter([{"input": calibration[i:i + 1].numpy().astype(np.float32)}
                                     for i in range(min(len(calibration), 128))])

            def get_next(self):
                return next(self.batches, None)

        quantize_static(str(source), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        return "static QDQ, per-channel int8 weights, uint8 activations"
    finally:
        if prepared.exists():
            prepared.unlink()


def run(model_dir: Path, data: Path, output_dir: Path, samples: int, int8: bool = True) -> dict:
    model, meta = load_model_dir(model_dir)
    model = model.float().eval()
    inputs, labels = validation_set(meta, data)
    if inputs.shape[0] == 0:
        raise TrainError(f"no validation samples found in {data}")
    if meta["task"] == "images":
        inputs = inputs.contiguous()
    picked = inputs[:: max(1, inputs.shape[0] // samples)][:samples] if inputs.shape[0] > samples else inputs
    start = time.perf_counter()
    export(model, picked[:2], output_dir / ONNX_FILE)
    report = parity(model, output_dir / ONNX_FILE, picked)
    report.update({"export_seconds": round(time.perf_counter() - start, 3), "task": meta["task"],
                   "arch": meta["arch"], "classes": meta["classes"],
                   "val_accuracy": (meta.get("metrics") or {}).get("val_accuracy"),
                   "mlflow_run_id": meta.get("mlflow_run_id"), "selected": ONNX_FILE})
    if int8 and report["ok"]:
        fp32_accuracy = accuracy(output_dir / ONNX_FILE, inputs, labels)
        method = quantize(output_dir / ONNX_FILE, output_dir / INT8_FILE, meta["task"], inputs)
        int8_accuracy = accuracy(output_dir / INT8_FILE, inputs, labels)
        drop = fp32_accuracy - int8_accuracy
        report["int8"] = {"file": INT8_FILE, "method": method, "val_samples": int(inputs.shape[0]),
                          "fp32_accuracy": fp32_accuracy, "int8_accuracy": int8_accuracy, "accuracy_drop": drop,
                          "max_accuracy_drop": MAX_ACCURACY_DROP, "within_bound": drop <= MAX_ACCURACY_DROP}
        if drop <= MAX_ACCURACY_DROP:
            report["selected"] = INT8_FILE
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
    p.add_argument("--int8", type=lambda v: str(v).lower() in ("1", "true", "yes"), default=True,
                   help="also make an int8 variant and select it when its accuracy drop is at most 1 point "
                        "(default true)")
    args = p.parse_args(argv)
    try:
        report = run(args.model_dir, args.data, args.output_dir, args.samples, args.int8)
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
    if "int8" in report:
        q = report["int8"]
        print(f"[export] int8 ({q['method']}): val accuracy {q['int8_accuracy']:.4f} vs fp32 {q['fp32_accuracy']:.4f} "
              f"on {q['val_samples']} samples, drop {q['accuracy_drop'] * 100:.2f} points (bound "
              f"{MAX_ACCURACY_DROP * 100:.0f}); serving {report['selected']}", flush=True)
    return 0
