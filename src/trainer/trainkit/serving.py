"""Scoring with ONNX Runtime: what score.py's init() and run() do, without the web server, so it
can be tested and benchmarked directly.

Requests (JSON):
  penguins: {"data": [{"island": "Biscoe", "bill_length_mm": 48.7, "bill_depth_mm": 14.1,
             "flipper_length_mm": 210, "body_mass_g": 4450}, ...]}   (or a bare list, or one object)
  images:   {"images": ["<base64 JPEG or PNG>", ...]}                 (or {"image": "<base64>"}),
            or one JPEG/PNG file as the body (Content-Type image/jpeg, image/png, application/octet-stream)
Answer: {"predictions": [{"class": "Gentoo", "probability": 0.97}, ...]}
Bad input is a ScoringError with an HTTP status (400, 405, 413, 415), never a 500: that includes
NaN and Infinity (which Python's json reads, though JSON has neither), deep nesting, numbers
too large for a float and, when model.json records the training rows' ranges, numbers far
outside them.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .meta import ONNX_FILE, ExportReport, ModelCard

MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_ROWS = 1000
MAX_IMAGES = 32
MAX_IMAGE_BYTES = 8 * 1024 * 1024
MAX_PIXELS = 40_000_000  # the pixel budget: a decompression bomb is refused (413) before it is decoded
LARGEST = float(np.finfo(np.float32).max)  # the model's input is float32: beyond this a number is infinite


class ScoringError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _nearest(root: Path, name: str, near: Path | None = None) -> Path | None:
    """``name`` under ``root``: in ``near`` when it is there, else the shallowest match."""
    if near is not None and (near / name).is_file():
        return near / name
    # os.walk follows links to folders (Path.rglob does not, before Python 3.13): a model folder may be
    # a link, as where the local runners mount a registered model the way Azure does
    found = sorted((Path(folder) / name for folder, _, files in os.walk(root, followlinks=True) if name in files),
                   key=lambda p: (len(p.parts), str(p)))
    return found[0] if found else None


def find_model(root: Path) -> tuple[Path, Path, Path | None, Path | None]:
    """(model.json, model.onnx, model.int8.onnx or None, report.json or None) under ``root``.
    AZUREML_MODEL_DIR holds a registered model: MLflow's layout keeps model.onnx at the top and
    our files among its extra files, so they are looked up separately."""
    root = Path(root)
    meta = _nearest(root, "model.json")
    onnx = _nearest(root, "model.onnx", meta.parent if meta else None)
    if meta is None or onnx is None:
        raise FileNotFoundError(f"no model.json and model.onnx under {root}")
    return meta, onnx, _nearest(root, "model.int8.onnx", meta.parent), _nearest(root, "report.json", meta.parent)


def thread_plan(threads: int | None = None) -> tuple[int, bool]:
    """ONNX Runtime threads per server worker, and whether they spin between operators.

    The inference server runs WORKER_COUNT processes (Azure's setting, default 1), each scoring one
    request at a time (score.py's lock, however many threads read requests). With one worker the
    model has the cores to itself while it runs: its threads spin between operators instead of
    sleeping, which saves a wake-up per operator, and stop spinning when the run ends, leaving the
    other core to the next request's resize (together about 1 ms of a 12 ms ResNet-18 request
    here; spinning on after the run costs the resize more than it gains). With several workers the
    cores are shared out and idle threads sleep, so that one worker's spinning does not slow
    another's request.
    JOBGEN_ORT_SPINNING=0/1 overrides the choice."""
    cores = len(os.sched_getaffinity(0))
    try:
        workers = max(1, int(os.environ.get("WORKER_COUNT", "1")))
    except ValueError:
        workers = 1
    threads = threads or max(1, cores // workers)
    choice = os.environ.get("JOBGEN_ORT_SPINNING", "1" if workers == 1 else "0")
    spinning = choice.strip().lower() in ("1", "true", "yes")
    return threads, spinning


PROVIDERS = {"openvino": "OpenVINOExecutionProvider", "cpu": "CPUExecutionProvider"}


def _provider_choice(choice: str | None) -> str:
    return (choice or os.environ.get("JOBGEN_ORT_PROVIDER") or "auto").strip().lower()


def provider_plan(choice: str | None = None) -> str:
    """Which ONNX Runtime execution provider runs the model: "openvino" or "cpu".

    "auto" (the default) takes OpenVINO's when this onnxruntime has it (the onnxruntime-openvino
    package, which the project and the scoring environment install on Linux x86-64): on this
    Xeon it runs the int8 ResNet-18 in about 5 ms where the default CPU provider takes 7-9 ms.
    JOBGEN_ORT_PROVIDER=auto|openvino|cpu (or `choice`) decides otherwise."""
    import onnxruntime as ort

    choice = _provider_choice(choice)
    if choice not in ("auto", *PROVIDERS):
        raise ValueError(f"JOBGEN_ORT_PROVIDER={choice!r} is not a provider: use auto, openvino or cpu")
    has_openvino = PROVIDERS["openvino"] in ort.get_available_providers()
    if choice == "openvino" and not has_openvino:
        raise ValueError(f"JOBGEN_ORT_PROVIDER=openvino, but onnxruntime {ort.__version__} here has no OpenVINO "
                         "execution provider: install onnxruntime-openvino in place of onnxruntime, or use cpu")
    return "openvino" if choice == "openvino" or (choice == "auto" and has_openvino) else "cpu"


def open_session(path: Path, threads: int | None = None, spinning: bool | None = None,
                 provider: str | None = None):
    """An ONNX Runtime session for `path` as the scorer runs it: (session, provider name).
    `threads` and `spinning` default to thread_plan()'s; `provider` to provider_plan()'s.
    Nodes OpenVINO cannot take run on the CPU provider, in the same session."""
    import onnxruntime as ort

    planned_threads, planned_spinning = thread_plan(threads)
    spinning = planned_spinning if spinning is None else spinning
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.intra_op_num_threads = planned_threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.add_session_config_entry("session.force_spinning_stop", "1")  # see thread_plan
    name = provider_plan(provider)
    if name == "openvino":  # its own threads (TBB), as many as ours; fp32 stays fp32 (no bf16 or fp16 hint)
        openvino = (PROVIDERS["openvino"], {"device_type": "CPU", "num_of_threads": str(planned_threads),
                                            "precision": "ACCURACY"})
        try:
            return ort.InferenceSession(str(path), options, providers=[openvino, PROVIDERS["cpu"]]), name
        except Exception as exc:  # noqa: BLE001 - whatever OpenVINO raises, the CPU provider can still serve
            if _provider_choice(provider) == "openvino":  # asked for by name: its error is the answer
                raise
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
            logging.getLogger(__name__).warning(
                "OpenVINO's execution provider could not load %s (%s); the default CPU provider runs it "
                "(JOBGEN_ORT_PROVIDER=cpu skips the attempt)", Path(path).name, first)
    return ort.InferenceSession(str(path), options, providers=[PROVIDERS["cpu"]]), "cpu"


class Scorer:
    """The model folder's ONNX model behind the request checks. bench/eager_scoring.py subclasses it
    to serve the same weights with PyTorch eager, the reference the serving benchmark compares with."""

    # Resample the bottom half of an image on a helper thread (see _preprocess)
    split_resize = True

    def __init__(self, model_dir: Path, variant: str | None = None, threads: int | None = None,
                 provider: str | None = None):
        threads, spinning = thread_plan(threads)
        self.threads, self.spinning, self._pool = threads, spinning, None
        meta_path, onnx, int8, report_path = find_model(model_dir)
        self.meta = ModelCard.from_file(meta_path)
        selected = ExportReport.read(report_path.parent).selected if report_path else ONNX_FILE
        choice = (variant or os.environ.get("JOBGEN_ONNX_VARIANT") or "auto").lower()
        if choice == "int8" and int8 is None:
            raise FileNotFoundError("no model.int8.onnx beside the model (re-run export_onnx.py)")
        use_int8 = int8 is not None and (choice == "int8" or (choice == "auto" and selected == int8.name))
        self.model_file = int8 if use_int8 else onnx
        self.session, self.provider = open_session(self.model_file, threads, spinning, provider)
        self.classes = list(self.meta.classes)
        self.task = self.meta.task
        pre = self.meta.preprocessing
        self.pre = pre
        self._tables()

    def _tables(self) -> None:
        if self.task == "images":
            mean = np.asarray(self.pre["mean"], dtype=np.float32)
            std = np.asarray(self.pre["std"], dtype=np.float32)
            # (pixel / 255 - mean) / std = pixel * scale + shift, per channel
            self.scale = (1.0 / (255.0 * std)).astype(np.float32)
            self.shift = (-mean / std).astype(np.float32)
        else:  # per column, in order: (name, scale, lowest and highest number accepted)
            self.fields = {field.name: field for field in penguin_fields(self.pre)}
            self.checks = tuple((f.name, f.scale, f.low, f.high) for f in self.fields.values())

    def logits(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input": batch})[0]

    # -------------------------------------------------------------- inputs
    def penguin_rows(self, payload: Any) -> np.ndarray:
        rows = payload.get("data", payload.get("rows")) if isinstance(payload, dict) and (
            "data" in payload or "rows" in payload) else payload
        if isinstance(rows, dict):
            rows = [rows]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ScoringError(400, 'expected {"data": [{"island": ..., "bill_length_mm": ..., ...}, ...]}')
        if not rows:
            raise ScoringError(400, "no rows to score")
        if len(rows) > MAX_ROWS:
            raise ScoringError(413, f"{len(rows)} rows; at most {MAX_ROWS} per request")
        codes, checks = self.pre["island_codes"], self.checks
        flat: list[float] = []
        add = flat.append
        for i, row in enumerate(rows):
            for name, scale, low, high in checks:
                if name not in row:
                    raise ScoringError(400, f"row {i} has no field {name!r} (each row needs "
                                            f"{', '.join(self.pre['features'])})")
                value = row[name]
                if scale is None:  # the island, a name
                    if value.__class__ is not str or value not in codes:
                        raise ScoringError(400, bad_island(i, value, codes))
                    add(codes[value])
                    continue
                if value.__class__ is bool or not isinstance(value, (int, float)):
                    raise ScoringError(400, f"row {i}: {name} must be a number, got {shown(value)}")
                try:
                    number = float(value)
                except OverflowError:  # an integer past a float's range
                    number = math.inf
                if not low <= number <= high:  # NaN compares false
                    raise ScoringError(400, refused_number(i, self.fields[name], value, number))
                add(number / scale)
        return np.array(flat, dtype=np.float32).reshape(len(rows), len(checks))

    def image_batch(self, payload: Any) -> np.ndarray:
        if not isinstance(payload, dict) or not ("images" in payload or "image" in payload):
            raise ScoringError(400, 'expected {"images": ["<base64 JPEG or PNG>", ...]}')
        images = payload.get("images", [payload.get("image")])
        if not isinstance(images, list) or not images or not all(isinstance(b, str) for b in images):
            raise ScoringError(400, '"images" must be a non-empty list of base64 strings')
        if len(images) > MAX_IMAGES:
            raise ScoringError(413, f"{len(images)} images; at most {MAX_IMAGES} per request")
        raws = []
        for i, text in enumerate(images):
            if len(text) > MAX_IMAGE_BYTES * 4 // 3 + 4:
                raise ScoringError(413, f"image {i} is over {MAX_IMAGE_BYTES // (1024 * 1024)} MB")
            try:
                raws.append(base64.b64decode(text, validate=True))
            except (binascii.Error, ValueError):
                raise ScoringError(400, f"image {i} is not valid base64") from None
        return self.decoded_batch(raws)

    def decoded_batch(self, raws: list[bytes], names: list[str] | None = None) -> np.ndarray:
        """JPEG or PNG files -> the model's input batch (the validation transform of training)."""
        size, crop = int(self.pre["resize"]), int(self.pre["crop"])
        batch = np.empty((len(raws), 3, crop, crop), dtype=np.float32)
        for i, raw in enumerate(raws):
            name = names[i] if names else f"image {i}"
            if len(raw) > MAX_IMAGE_BYTES:
                raise ScoringError(413, f"{name} is over {MAX_IMAGE_BYTES // (1024 * 1024)} MB")
            self._decode_into(raw, name, size, crop, batch[i])
        return batch

    def _decode_into(self, raw: bytes, name: str, size: int, crop: int, out: np.ndarray) -> None:
        """One file into `out`. Too many pixels is a 413 however it shows: the header's size
        (checked here before decoding), Pillow's own refusal inside Image.open (an error past
        twice its limit, a warning past it, an error too where warnings are errors), or a
        decode that runs out of memory."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(raw)) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise ScoringError(413, too_many_pixels(name, img.size))
                img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when it is large
                self._preprocess(img if img.mode == "RGB" else img.convert("RGB"), size, crop, out)
        except ScoringError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise ScoringError(413, too_many_pixels(name)) from None
        except MemoryError:
            raise ScoringError(413, f"{name} is too large to decode here; at most "
                                    f"{MAX_PIXELS // 1_000_000} megapixels") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            raise ScoringError(415, f"{name} is not a JPEG or PNG image") from None

    def _preprocess(self, img, size: int, crop: int, out: np.ndarray) -> None:
        """torchvision's Resize(size) + CenterCrop(crop) + ToTensor + Normalize into `out` (3, crop, crop).
        Only the part of the resized image that survives the crop is computed: Pillow resamples
        a box of the source to the crop's size directly, with the same filter taps a full resize
        would use (the filter reads pixels outside the box), so the result is the same. With two
        or more threads, the bottom half is resampled on a helper thread while this one does the
        top (Pillow lets go of the GIL while it resamples): each output row depends only on its
        own position, so the halves are the whole image's rows, give or take one level (of 255)
        where the halves' box edges round differently in the last bit. That saves about 0.4 ms
        of 2.2 ms on a 640 x 480 photo here. Only for ONNX Runtime, whose threads stop spinning when a run
        ends: PyTorch's OpenMP threads spin on for milliseconds after a forward pass, and the
        helper thread would have to wait for the core (the split costs eager 0.3 ms; the eager
        scorer of the benchmarks turns `split_resize` off)."""
        from PIL import Image

        w, h = img.size
        if w <= h:
            nw, nh = size, int(size * h / w)
        else:
            nw, nh = int(size * w / h), size
        left, top = int(round((nw - crop) / 2.0)), int(round((nh - crop) / 2.0))
        if left < 0 or top < 0:  # the crop is larger than the resized image: CenterCrop pads with zeros, as PIL's does
            self._normalize(img.resize((nw, nh), Image.BILINEAR).crop((left, top, left + crop, top + crop)), out)
            return
        sx, sy = w / nw, h / nh
        x0, y0, x1, y1 = left * sx, top * sy, (left + crop) * sx, (top + crop) * sy
        img.load()  # decode once, here, before two threads resample it
        half = crop // 2 if self.threads > 1 and self.split_resize else crop
        if half < crop:
            bottom = self._helper().submit(img.resize, (crop, crop - half), Image.BILINEAR,
                                           (x0, y0 + half * sy, x1, y1))
        self._normalize(img.resize((crop, half), Image.BILINEAR, box=(x0, y0, x1, y0 + half * sy)), out[:, :half])
        if half < crop:
            self._normalize(bottom.result(), out[:, half:])

    def _normalize(self, img, out: np.ndarray) -> None:
        pixels = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)  # 3 x H x W view
        for channel in range(3):
            np.multiply(pixels[channel], self.scale[channel], out=out[channel], dtype=np.float32)
            out[channel] += self.shift[channel]

    def _helper(self):
        if self._pool is None:  # made on first use: in the server worker's process, after the fork
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="resample")
        return self._pool

    # -------------------------------------------------------------- scoring
    def predict_array(self, batch: np.ndarray) -> list[dict[str, Any]]:
        logits = self.logits(batch)
        logits = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(axis=1, keepdims=True)
        best = probs.argmax(axis=1)
        return [{"class": self.classes[int(k)], "probability": round(float(probs[n, k]), 6)}
                for n, k in enumerate(best)]

    def score_image_bytes(self, body: bytes) -> dict[str, Any]:
        """One image file as the whole request body (Content-Type image/jpeg, image/png or
        application/octet-stream): no base64 or JSON to unpack."""
        if self.task != "images":
            raise ScoringError(415, f"this model scores {self.task} rows as JSON, not an image body "
                                    "(send Content-Type: application/json)")
        if not body:
            raise ScoringError(400, "the request body is empty; send one JPEG or PNG file")
        batch = self.decoded_batch([bytes(body)], ["the request body"])
        return {"predictions": self.predict_array(batch), "model": self.model_file.name}

    def score_json(self, body: bytes | str) -> dict[str, Any]:
        if len(body) > MAX_BODY_BYTES:
            raise ScoringError(413, f"request body is {len(body)} bytes; at most {MAX_BODY_BYTES}")
        payload, constants = parse_json(body)
        # a NaN or Infinity in a penguin's field is refused with its row and field; anywhere else, as such
        batch = self.penguin_rows(payload) if self.task == "penguins" else None
        if constants:
            raise ScoringError(400, f"request body holds {constants[0]}, which JSON does not have: send finite numbers")
        if batch is None:
            batch = self.image_batch(payload)
        return {"predictions": self.predict_array(batch), "model": self.model_file.name}


# ------------------------------------------------------------------ request checks

def parse_json(body: bytes | str) -> tuple[Any, list[str]]:
    """The request's JSON and the NaN/Infinity literals in it (Python's json reads them as floats)."""
    constants: list[str] = []

    def constant(name: str) -> float:
        constants.append(name)
        return float(name)

    try:
        return json.loads(body, parse_constant=constant), constants
    except RecursionError:
        raise ScoringError(400, "request body is nested too deeply to read") from None
    except json.JSONDecodeError as exc:
        raise ScoringError(400, f"request body is not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError as exc:
        raise ScoringError(400, f"request body is not valid JSON ({exc})") from None
    except ValueError:  # an integer past Python's limit on digits
        raise ScoringError(400, "request body holds an integer with too many digits to read (Python's limit: "
                                "4300 by default)") from None


@dataclass(frozen=True)
class Field:
    """One input column of the penguins model: what the scorer checks and how it scales it.
    `scale` None is the island (a name); `low`..`high` is what it accepts, `trained` the training
    rows' range it came from (None: the model folder records none, so any finite number)."""

    name: str
    scale: float | None
    low: float = -LARGEST
    high: float = LARGEST
    trained: tuple[float, float] | None = None


def penguin_fields(pre: dict[str, Any]) -> list[Field]:
    """The model's columns in order. A feature with a recorded training range [lo, hi] accepts
    that range widened by half its span on each side (2700-6300 g accepts 900-8100 g)."""
    ranges = pre.get("ranges") or {}
    fields = []
    for name in pre["features"]:
        if name == "island":
            fields.append(Field(name, None))
        elif name in ranges:
            lo, hi = (float(v) for v in ranges[name])
            margin = (hi - lo) / 2
            fields.append(Field(name, float(pre["scale"][name]), lo - margin, hi + margin, (lo, hi)))
        else:
            fields.append(Field(name, float(pre["scale"][name])))
    return fields


def too_many_pixels(name: str, size: tuple[int, int] | None = None) -> str:
    """The 413 message for an image over MAX_PIXELS; `size` when the header could be read."""
    budget = f"at most {MAX_PIXELS // 1_000_000} megapixels"
    return f"{name} has {size[0]}x{size[1]} pixels; {budget}" if size else f"{name} has too many pixels; {budget}"


def shown(value: Any) -> str:
    """A value from a request, short enough for a one-line message."""
    if isinstance(value, str):
        return repr(value) if len(value) <= 40 else repr(value[:40]) + "..."
    kinds = {list: "a list", dict: "an object", bool: "true or false", type(None): "null"}
    return kinds.get(type(value), type(value).__name__)


def bad_island(i: int, value: Any, codes: dict[str, int]) -> str:
    names = ", ".join(codes)
    if isinstance(value, str):
        return f"row {i}: unknown island {shown(value)} (one of {names})"
    return f"row {i}: island must be one of {names}, got {shown(value)}"


def refused_number(i: int, field: Field, value: Any, number: float) -> str:
    """Why `number` (read from `value`) is not accepted for `field`."""
    where = f"row {i}: {field.name}"
    if isinstance(value, int) and math.isinf(number):
        digits = len(str(abs(value))) if value.bit_length() < 14_000 else None
        return f"{where} is {'a %d-digit' % digits if digits else 'an'} integer, too large for a float"
    if not math.isfinite(number):
        name = "NaN" if number != number else ("Infinity" if number > 0 else "-Infinity") + ", or too large for a float"
        return f"{where} is not a finite number ({name})"
    if field.trained is None:
        return f"{where} {number:g} is too large for the model's float32 input"
    lo, hi = field.trained
    return (f"{where} {number:g} is outside what this model was trained on ({lo:g}-{hi:g}; "
            f"accepted {field.low:g}-{field.high:g})")
