"""Serving speed, measured side by side in one run: a ResNet-18 image classifier (2 classes,
trained here by the train component for a few epochs on generated photos, so that the int8
accuracy figures are those of a model that has learned something) scored by PyTorch eager,
ONNX Runtime fp32 and ONNX Runtime int8 (static QDQ), first the model alone (batch 1 and 64),
then end to end through the local azureml-inference-server-http (`generator.py serve`) with
single-image requests in a bounded loop (the backends' servers take turns in blocks):
requests/s, p50 and p99 latency. The int8 variant's accuracy drop on the validation set and its
agreement with fp32 are reported beside it (it is selected only within one point).

Goal (issue 6): ONNX Runtime at least 3x PyTorch eager for single-image requests end to end.

    python bench/bench_serving.py [--requests 200] [--train-epochs 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "src" / "trainer"))
sys.path.insert(0, str(ROOT / "tests"))


INT8_CPU = "int8, cpu provider"


def ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def model_only(scorer, batch, repeat: int) -> float:
    scorer.logits(batch)  # warm up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        scorer.logits(batch)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def request_parts(scorer, jpeg: bytes, repeat: int = 100) -> dict:
    """Where a single-image request's time goes inside the scorer (medians, in this process):
    JPEG decoding, resize + crop + normalisation, the model."""
    import io

    import numpy as np
    from PIL import Image

    size, crop = int(scorer.pre["resize"]), int(scorer.pre["crop"])
    out = np.empty((1, 3, crop, crop), dtype=np.float32)
    times: dict[str, list[float]] = {"decode_ms": [], "resize_normalize_ms": [], "model_ms": []}
    for _ in range(repeat):
        t0 = time.perf_counter()
        img = Image.open(io.BytesIO(jpeg))
        img.draft("RGB", (size, size))
        img.load()
        t1 = time.perf_counter()
        scorer._preprocess(img, size, crop, out[0])
        t2 = time.perf_counter()
        scorer.logits(out)
        t3 = time.perf_counter()
        for key, value in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
            times[key].append(value * 1000)
    return {key: statistics.median(values) for key, values in times.items()}


class Client:
    """Sequential requests from one client connection (http.client reconnects by itself when the
    server closes it), as a service calling the endpoint would send them."""

    def __init__(self, port: int, body: bytes, content_type: str = "application/json"):
        import http.client

        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.body, self.headers = body, {"Content-Type": content_type}
        self.latencies: list[float] = []
        self.run_ms: list[float] = []  # run()'s own time, as the server measured it

    def one(self) -> None:
        self.conn.request("POST", "/score", self.body, self.headers)
        response = self.conn.getresponse()
        answer = response.read()
        if response.status != 200:
            raise RuntimeError(f"the server answered {response.status}: {answer[:200]!r}")
        self.last_run_ms = float(response.getheader("x-ms-run-fn-exec-ms") or "nan")

    def block(self, requests: int) -> None:
        for _ in range(2):  # warm up after the other servers' turn
            self.one()
        for _ in range(requests):
            t = time.perf_counter()
            self.one()
            self.latencies.append(time.perf_counter() - t)
            self.run_ms.append(self.last_run_ms)

    def figures(self) -> dict:
        self.conn.close()
        return {"rps": len(self.latencies) / sum(self.latencies), "p50_ms": percentile(self.latencies, 0.5) * 1000,
                "p99_ms": percentile(self.latencies, 0.99) * 1000, "run_p50_ms": percentile(self.run_ms, 0.5)}


def interleaved(clients: dict[str, Client], requests: int, rounds: int = 10) -> dict[str, dict]:
    """Every client's requests in `rounds` blocks taken in turn, so that a slow spell of this shared
    machine falls on all backends alike rather than on whichever ran at the time."""
    for r in range(rounds):
        for client in clients.values():
            client.block(requests // rounds + (1 if r < requests % rounds else 0))
    return {name: client.figures() for name, client in clients.items()}


def make_photo(path: Path) -> None:
    """A 640 x 480 JPEG with the statistics of a photo (smooth shading, shapes, edges, a little
    sensor noise), as a client would send: about 40 KB at quality 90."""
    import numpy as np
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:480, 0:640].astype(np.float32)
    base = np.stack([120 + 80 * np.sin(x / 90), 100 + 60 * np.cos(y / 70), 90 + 50 * np.sin((x + y) / 120)], -1)
    img = Image.fromarray(base.clip(0, 255).astype("uint8"))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, 560)), int(rng.integers(0, 400))
        draw.ellipse([x0, y0, x0 + int(rng.integers(30, 160)), y0 + int(rng.integers(30, 160))],
                     fill=tuple(int(v) for v in rng.integers(0, 255, 3)))
    img = img.filter(ImageFilter.GaussianBlur(2))
    noisy = np.asarray(img, dtype=np.float32) + rng.normal(0, 4, (480, 640, 3))
    Image.fromarray(noisy.clip(0, 255).astype("uint8")).save(path, quality=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--train-epochs", type=int, default=3, help="0: seeded random weights, no training")
    parser.add_argument("--val-per-class", type=int, default=100, help="validation photos per class")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    import numpy as np
    from PIL import Image

    from bench_training import make_photos
    from helpers.models import exported, model_folder
    from jobgen import serve
    from eager_scoring import EAGER_SCRIPT, EagerScorer
    from trainkit.serving import Scorer

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        make_photos(tmp / "photos", 48, args.val_per_class)
        model = tmp / "model"
        if args.train_epochs > 0:
            env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}", PYTHONUNBUFFERED="1")
            print(f"training the classifier ({args.train_epochs} epochs on 96 photos) ...", flush=True)
            result = subprocess.run([sys.executable, str(ROOT / "src" / "trainer" / "train.py"), "--task", "images",
                                     "--data", str(tmp / "photos"), "--epochs", str(args.train_epochs),
                                     "--model-dir", str(model), "--checkpoint-dir", str(tmp / "ckpt")],
                                    capture_output=True, text=True, env=env, cwd=tmp)
            if result.returncode != 0:
                raise SystemExit(f"training failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
        else:
            model_folder(model, "images")
        onnx_dir = exported(model, tmp / "photos", tmp / "served")
        shutil.copyfile(model / "model.pt", onnx_dir / "model.pt")  # the eager backend serves the same weights
        report = json.loads((onnx_dir / "report.json").read_text())

        photo = tmp / "photo.jpg"
        make_photo(photo)
        photo_kb = photo.stat().st_size / 1024
        body = json.dumps({"images": [base64.b64encode(photo.read_bytes()).decode()]}).encode()

        scorers = {"pytorch eager": EagerScorer(onnx_dir), "onnxruntime fp32": Scorer(onnx_dir, "fp32"),
                   "onnxruntime int8": Scorer(onnx_dir, "int8"), INT8_CPU: Scorer(onnx_dir, "int8", provider="cpu")}
        provider = scorers["onnxruntime int8"].provider
        one = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
        many = np.random.default_rng(2).standard_normal((64, 3, 224, 224)).astype(np.float32)
        model_rows = {name: {"batch1_ms": model_only(s, one, 30) * 1000, "batch64_ms": model_only(s, many, 3) * 1000}
                      for name, s in scorers.items()}
        parts = request_parts(scorers["onnxruntime int8"], photo.read_bytes())
        del scorers

        jpeg = photo.read_bytes()
        backends = {"pytorch eager": (EAGER_SCRIPT, None, None), "onnxruntime fp32": (None, "fp32", None),
                    "onnxruntime int8": (None, "int8", None), INT8_CPU: (None, "int8", "cpu")}
        procs, ports = [], {}
        try:  # all the servers up at once (one worker each, as deployed), taking turns
            for name, (script, variant, chosen) in backends.items():
                ports[name] = serve.free_port()
                procs.append(serve.start(onnx_dir, ports[name], variant=variant, provider=chosen, entry_script=script))
            served = interleaved({name: Client(port, body) for name, port in ports.items()}, args.requests)
            # the file itself as the body: no base64, no JSON
            raw_served = interleaved({name: Client(ports[name], jpeg, "image/jpeg")
                                      for name in ("pytorch eager", "onnxruntime int8", INT8_CPU)}, args.requests)
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=30)

    eager = model_rows["pytorch eager"]
    print(f"ONNX Runtime {ort_version()} with the {provider} execution provider (the scorer's choice here); "
          f"'{INT8_CPU}' is the same int8 model on the default CPU provider")
    print("model alone (median):")
    print(f"  {'backend':<18} {'batch 1 ms':>11} {'x eager':>8} {'batch 64 ms':>12} {'img/s':>8} {'x eager':>8}")
    for name, row in model_rows.items():
        print(f"  {name:<18} {row['batch1_ms']:11.2f} {eager['batch1_ms'] / row['batch1_ms']:8.2f} "
              f"{row['batch64_ms']:12.1f} {64000 / row['batch64_ms']:8.1f} {eager['batch64_ms'] / row['batch64_ms']:8.2f}")
    base = served["pytorch eager"]
    print(f"end to end, {args.requests} single-image requests ({photo_kb:.0f} KB JPEG, 640x480, base64 in JSON) "
          "through azureml-inference-server-http on 127.0.0.1:")
    print(f"  {'backend':<18} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'x eager':>8} {'p50 x':>6} {'run() p50':>10}")
    for name, row in served.items():
        print(f"  {name:<18} {row['rps']:8.1f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} {row['rps'] / base['rps']:8.2f} "
              f"{base['p50_ms'] / row['p50_ms']:6.2f} {row['run_p50_ms']:10.2f}")
    raw_base = raw_served["pytorch eager"]
    print("  the same JPEG sent as the body (Content-Type image/jpeg):")
    for name, row in raw_served.items():
        print(f"  {name:<18} {row['rps']:8.1f} {row['p50_ms']:8.2f} {row['p99_ms']:8.2f} "
              f"{row['rps'] / raw_base['rps']:8.2f} {raw_base['p50_ms'] / row['p50_ms']:6.2f} {row['run_p50_ms']:10.2f}")
    print(f"  an int8 request's parts, timed in this process (medians, ms): decode {parts['decode_ms']:.1f}, resize + "
          f"normalise {parts['resize_normalize_ms']:.1f}, model {parts['model_ms']:.1f}; run() took "
          f"{raw_served['onnxruntime int8']['run_p50_ms']:.1f} ms in the server (its x-ms-run-fn-exec-ms), and the "
          f"rest of the {raw_served['onnxruntime int8']['p50_ms']:.1f} ms is the server, the client and the connection")
    q = report["int8"]
    print(f"int8 ({q['method']}) accuracy on {q['val_samples']} validation photos: {q['int8_accuracy']:.4f} vs fp32 "
          f"{q['fp32_accuracy']:.4f} (drop {q['accuracy_drop'] * 100:.2f} points, bound 1), same answer as fp32 on "
          f"{q['agreement_with_fp32']:.1%}; selected: {report['selected']}")
    best = max(served["onnxruntime fp32"]["rps"], served["onnxruntime int8"]["rps"]) / base["rps"]  # auto provider
    raw_best = raw_served["onnxruntime int8"]["rps"] / raw_base["rps"]
    p50 = base["p50_ms"] / served["onnxruntime int8"]["p50_ms"]
    print(f"goal: ONNX Runtime >= 3x eager end to end (requests/s) -> {best:.2f}x with base64 JSON, {raw_best:.2f}x "
          f"with the image as the body (by median latency: {p50:.2f}x and "
          f"{raw_base['p50_ms'] / raw_served['onnxruntime int8']['p50_ms']:.2f}x)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": model_rows, "end_to_end": served, "end_to_end_raw_body": raw_served,
                                         "int8": q, "best_onnx_over_eager": best,
                                         "int8_request_parts_ms": parts, "p50_int8_over_eager": p50,
                                         "raw_body_onnx_over_eager": raw_best, "provider": provider,
                                         "onnxruntime": ort_version()}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
