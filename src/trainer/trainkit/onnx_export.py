"""Export a trained model folder to ONNX (dynamic batch axis) and prove it: run the same real
validation samples through PyTorch and onnxruntime, require max |logit difference| <= 1e-4
and identical predicted classes, write a JSON report, exit non-zero when parity fails."""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import warnings
from pathlib import Path

import torch

from .artifacts import load_model_dir
from .errors import TrainError
from .files import atomic_write_text
from .meta import INT8_FILE, META_FILE, ONNX_FILE, REPORT_FILE, ExportReport, Int8Report
from .samples import labelled_set, validation_set

TOLERANCE = 1e-4
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
    """The reference: ONNX Runtime's default CPU provider."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def predictions(path: Path, inputs: torch.Tensor, batch: int = 64):
    """The model's top-1 class for every sample (a numpy array) and the execution provider that
    ran it: the scorer's, as the scorer runs it, so that the int8 accuracy reported is the
    accuracy served."""
    import numpy as np

    from .serving import open_session

    session, provider = open_session(path)
    out = [session.run(["logits"], {"input": inputs[start:start + batch].numpy().astype(np.float32)})[0].argmax(1)
           for start in range(0, inputs.shape[0], batch)]
    return (np.concatenate(out) if out else np.zeros(0, dtype=np.int64)), provider


def space_to_depth_stem(model, max_channels: int = 4) -> bool:
    """Rewrite a stride-2 convolution on the graph input with few channels (ResNet's 7x7 stem on
    RGB) as SpaceToDepth(2) followed by a stride-1 convolution with 4x the channels and the
    same weights rearranged (zero where no original tap falls). The result is the same function
    (exact up to float rounding); int8 convolution kernels vectorise over input channels, and
    with 3 of them the stem took about a fifth of ResNet-18's int8 time. Returns whether the
    graph was changed; anything it does not recognise is left alone."""
    import numpy as np
    from onnx import helper, numpy_helper

    graph = model.graph
    if len(graph.input) != 1:
        return False
    name = graph.input[0].name
    dims = [d.dim_value if d.HasField("dim_value") else 0 for d in graph.input[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or not (0 < dims[1] <= max_channels) or dims[2] % 2 or dims[3] % 2 or not dims[2] or not dims[3]:
        return False
    convs = [n for n in graph.node if n.op_type == "Conv" and n.input and n.input[0] == name]
    if len(convs) != 1 or sum(name in n.input for n in graph.node) != 1:
        return False
    conv = convs[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    inits = {i.name: i for i in graph.initializer}
    if (attrs.get("strides") != [2, 2] or attrs.get("group", 1) != 1 or attrs.get("dilations", [1, 1]) != [1, 1]
            or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET") or conv.input[1] not in inits):
        return False
    w = numpy_helper.to_array(inits[conv.input[1]])
    out_ch, channels, kh, kw = w.shape
    pads = attrs.get("pads", [0, 0, 0, 0])
    if channels != dims[1]:
        return False

    def taps(k: int, before: int, after: int, size: int) -> tuple[int, int, int] | None:
        # original output i reads x[2i + t], t = k - before; in s2d terms j = i + t // 2, b = t % 2
        lo, hi = -((before + 1) // 2), (k - 1 - before) // 2
        if (size + before + after - k) // 2 + 1 != size // 2:
            return None  # output size would differ
        return lo, hi, hi - lo + 1

    rows, cols = taps(kh, pads[0], pads[2], dims[2]), taps(kw, pads[1], pads[3], dims[3])
    if rows is None or cols is None:
        return False
    (rlo, rhi, rn), (clo, chi, cn) = rows, cols
    w4 = np.zeros((out_ch, 4 * channels, rn, cn), dtype=w.dtype)
    for ah in range(rn):
        for bh in range(2):
            k_h = 2 * (ah + rlo) + bh + pads[0]
            if not 0 <= k_h < kh:
                continue
            for aw in range(cn):
                for bw in range(2):
                    k_w = 2 * (aw + clo) + bw + pads[1]
                    if 0 <= k_w < kw:  # SpaceToDepth's channel order: (bh * 2 + bw) * C + c
                        w4[:, (bh * 2 + bw) * channels:(bh * 2 + bw + 1) * channels, ah, aw] = w[:, :, k_h, k_w]
    inits[conv.input[1]].CopyFrom(numpy_helper.from_array(w4, conv.input[1]))
    s2d_out = f"{conv.name or 'stem'}/space_to_depth"
    s2d = helper.make_node("SpaceToDepth", [name], [s2d_out], blocksize=2, name=s2d_out)
    conv.input[0] = s2d_out
    del conv.attribute[:]
    conv.attribute.extend([helper.make_attribute("kernel_shape", [rn, cn]), helper.make_attribute("strides", [1, 1]),
                           helper.make_attribute("pads", [-rlo, -clo, rhi, chi]),
                           helper.make_attribute("dilations", [1, 1]), helper.make_attribute("group", 1)])
    graph.node.insert(list(graph.node).index(conv), s2d)
    return True


def stem_rewritten(fp32: Path, dest: Path, samples: torch.Tensor) -> bool:
    """``fp32`` with space_to_depth_stem applied, written to ``dest`` only when it changed the
    graph and still gives the same logits (within the export tolerance) on ``samples``."""
    import numpy as np
    import onnx

    model = onnx.load(str(fp32))
    if not space_to_depth_stem(model):
        return False
    onnx.checker.check_model(model)
    onnx.save(model, str(dest))
    x = samples[:4].numpy().astype(np.float32)
    if np.abs(_session(fp32).run(None, {"input": x})[0] - _session(dest).run(None, {"input": x})[0]).max() > TOLERANCE:
        dest.unlink()
        return False
    return True


def quantize(fp32: Path, int8: Path, task: str, calibration: torch.Tensor) -> str:
    """int8 with onnxruntime.quantization: static QDQ (per-channel int8 weights, uint8
    activations calibrated on up to 128 training samples). Static, not dynamic: a request's
    answer must not depend on the other rows that came with it. Returns the method used."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = int8.with_suffix(".prep.onnx")
    stem = int8.with_suffix(".stem.onnx")
    source = stem if stem_rewritten(fp32, stem, calibration) else fp32
    try:
        quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
        source = prepared
    except Exception:  # noqa: BLE001 - pre-processing is an optimisation, not required
        pass
    try:
        class Reader(CalibrationDataReader):
            def __init__(self):
                self.batches = iter([{"input": calibration[i:i + 1].numpy().astype(np.float32)}
                                     for i in range(min(len(calibration), 128))])

            def get_next(self):
                return next(self.batches, None)

        quantize_static(str(source), str(int8), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        used = min(len(calibration), 128)
        return (f"static QDQ calibrated on {used} training samples, per-channel int8 weights, uint8 activations"
                + ("; space-to-depth stem" if stem.exists() else ""))
    finally:
        for path in (prepared, stem):
            if path.exists():
                path.unlink()


def run(model_dir: Path, data: Path, output_dir: Path, samples: int, int8: bool = True) -> ExportReport:
    model, meta = load_model_dir(model_dir)
    model = model.float().eval()
    inputs, labels = validation_set(meta, data)
    if inputs.shape[0] == 0:
        raise TrainError(f"no validation samples found in {data}")
    if meta.task == "images":
        inputs = inputs.contiguous()
    picked = inputs[:: max(1, inputs.shape[0] // samples)][:samples] if inputs.shape[0] > samples else inputs
    start = time.perf_counter()
    export(model, picked[:2], output_dir / ONNX_FILE)
    report = ExportReport(**parity(model, output_dir / ONNX_FILE, picked),
                          export_seconds=round(time.perf_counter() - start, 3), task=meta.task, arch=meta.arch,
                          classes=meta.classes, val_accuracy=meta.val_accuracy, mlflow_run_id=meta.mlflow_run_id,
                          selected=ONNX_FILE)
    if int8 and report.ok:
        truth = labels.numpy()
        fp32_top1, _ = predictions(output_dir / ONNX_FILE, inputs)
        # calibrated on training samples: the validation samples that judge the result take no part in it
        calibration, _ = labelled_set(meta, data, "train", limit=128)
        method = quantize(output_dir / ONNX_FILE, output_dir / INT8_FILE, meta.task, calibration)
        int8_top1, served_by = predictions(output_dir / INT8_FILE, inputs)
        n = max(1, len(truth))
        fp32_accuracy, int8_accuracy = float((fp32_top1 == truth).sum() / n), float((int8_top1 == truth).sum() / n)
        drop = fp32_accuracy - int8_accuracy
        report.int8 = Int8Report(file=INT8_FILE, method=method, val_samples=int(inputs.shape[0]),
                                 fp32_accuracy=fp32_accuracy, int8_accuracy=int8_accuracy, accuracy_drop=drop,
                                 agreement_with_fp32=float((fp32_top1 == int8_top1).sum() / n),
                                 max_accuracy_drop=MAX_ACCURACY_DROP, within_bound=drop <= MAX_ACCURACY_DROP,
                                 provider=served_by)
        if drop <= MAX_ACCURACY_DROP:
            report.selected = INT8_FILE
    shutil.copyfile(Path(model_dir) / META_FILE, output_dir / META_FILE)  # the ONNX folder serves on its own
    atomic_write_text(output_dir / REPORT_FILE, report.to_json())
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
    verdict = "ok" if report.ok else "FAILED"
    print(f"[export] ONNX parity {verdict}: max |diff| {report.max_abs_diff:.2e} (tolerance {TOLERANCE:g}) on "
          f"{report.samples} validation samples, predictions equal: {report.predictions_equal}; "
          f"{args.output_dir / ONNX_FILE}", flush=True)
    if not report.ok:
        sys.stderr.write(f"error: ONNX parity failed; see {args.output_dir / REPORT_FILE}\n")
        return 1
    if report.int8 is not None:
        q = report.int8
        print(f"[export] int8 ({q.method}): val accuracy {q.int8_accuracy:.4f} vs fp32 {q.fp32_accuracy:.4f} "
              f"on {q.val_samples} samples (ONNX Runtime, {q.provider} provider), drop "
              f"{q.accuracy_drop * 100:.2f} points (bound {MAX_ACCURACY_DROP * 100:.0f}), same answer as fp32 on "
              f"{q.agreement_with_fp32:.1%}; serving {report.selected}", flush=True)
    return 0
