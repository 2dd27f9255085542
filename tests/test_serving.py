"""Scoring: the scoring script with ONNX Runtime, bad requests answered 4xx (never a 500 with
a stack trace), a registered model's layout, and the real azureml-inference-server-http on
127.0.0.1 (`generator.py serve`)."""

from __future__ import annotations

import base64
import io
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers.datasets import make_images, penguins_csv
from helpers.models import exported, model_folder

ROW = {"island": "Biscoe", "bill_length_mm": 48.7, "bill_depth_mm": 14.1, "flipper_length_mm": 210,
       "body_mass_g": 4450}


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    penguins_csv(root / "penguins.csv")
    make_images(root / "images", per_class_train=2, per_class_val=6)
    out = {}
    out["penguins"] = exported(model_folder(root / "pm", "penguins"), root / "penguins.csv", root / "penguins")
    out["images"] = exported(model_folder(root / "im", "images"), root / "images", root / "images-onnx")
    out["root"] = root
    return out


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_export_offers_int8_with_its_accuracy_drop(models):
    for task in ("penguins", "images"):
        report = json.loads((models[task] / "report.json").read_text())
        q = report["int8"]
        assert (models[task] / "model.int8.onnx").exists()
        assert q["accuracy_drop"] == pytest.approx(q["fp32_accuracy"] - q["int8_accuracy"])
        # answers that differ on a share 1 - agreement of the samples can move accuracy by at most that much
        assert abs(q["accuracy_drop"]) <= 1 - q["agreement_with_fp32"] + 1e-9
        # calibrated on training samples: the validation samples that judge it took no part in making it
        assert "calibrated on" in q["method"] and "training samples" in q["method"]
        assert report["selected"] == ("model.int8.onnx" if q["accuracy_drop"] <= 0.01 else "model.onnx")


def test_training_and_validation_samples_are_the_two_sides_of_the_split(models):
    """int8 calibration takes training samples and is judged on validation samples: for the
    images the train/ and val/ folders, for penguins the two sides of training's own split."""
    from trainkit import data as data_mod
    from trainkit.meta import read_meta
    from trainkit.samples import labelled_set

    meta = read_meta(models["images"])
    train, _ = labelled_set(meta, models["root"] / "images", "train")
    val, _ = labelled_set(meta, models["root"] / "images", "val")
    assert (len(train), len(val)) == (4, 12)  # make_images(per_class_train=2, per_class_val=6), 2 classes
    meta = read_meta(models["penguins"])
    train, _ = labelled_set(meta, models["root"] / "penguins.csv", "train")
    val, _ = labelled_set(meta, models["root"] / "penguins.csv", "val")
    rows = len(data_mod.read_penguins(models["root"] / "penguins.csv"))
    assert len(train) + len(val) == rows and len(val) == round(rows * 0.3)


def test_penguins_rows_scored(models):
    from trainkit.serving import Scorer

    scorer = Scorer(models["penguins"])
    result = scorer.score_json(json.dumps({"data": [ROW, dict(ROW, island="Dream")]}))
    assert len(result["predictions"]) == 2
    for p in result["predictions"]:
        assert p["class"] in ("Adelie", "Chinstrap", "Gentoo") and 0 < p["probability"] <= 1
    assert scorer.score_json(json.dumps(ROW))["predictions"][0] == result["predictions"][0]  # one bare object


def test_images_scored_fp32_and_int8(models):
    from trainkit.serving import Scorer

    images = sorted((models["root"] / "images" / "val" / "turkeys").glob("*.jpg"))[:3]
    body = json.dumps({"images": [b64(p) for p in images]})
    fp32 = Scorer(models["images"], variant="fp32")
    int8 = Scorer(models["images"], variant="int8")
    assert fp32.model_file.name == "model.onnx" and int8.model_file.name == "model.int8.onnx"
    a, b = fp32.score_json(body)["predictions"], int8.score_json(body)["predictions"]
    assert len(a) == len(b) == 3 and all(p["class"] in ("chickens", "turkeys") for p in a + b)


def test_execution_provider_choice(models, monkeypatch):
    """OpenVINO's provider when onnxruntime-openvino is installed (what the project installs on
    Linux x86-64), the default CPU provider on request; both give the same answers."""
    import numpy as np
    import onnxruntime as ort

    from trainkit.serving import Scorer

    has_openvino = "OpenVINOExecutionProvider" in ort.get_available_providers()
    monkeypatch.delenv("JOBGEN_ORT_PROVIDER", raising=False)
    auto = Scorer(models["images"], variant="fp32")
    assert auto.provider == ("openvino" if has_openvino else "cpu")
    monkeypatch.setenv("JOBGEN_ORT_PROVIDER", "cpu")
    cpu = Scorer(models["images"], variant="fp32")
    assert cpu.provider == "cpu" and cpu.session.get_providers() == ["CPUExecutionProvider"]
    images = sorted((models["root"] / "images" / "val").rglob("*.jpg"))
    batch = cpu.decoded_batch([p.read_bytes() for p in images])
    assert np.abs(auto.logits(batch) - cpu.logits(batch)).max() < 1e-3
    for variant in ("int8",):  # int8 arithmetic may round differently; the answers agree
        a = Scorer(models["images"], variant=variant, provider="auto").logits(batch).argmax(1)
        assert (a == Scorer(models["images"], variant=variant, provider="cpu").logits(batch).argmax(1)).mean() >= 0.9
    monkeypatch.setenv("JOBGEN_ORT_PROVIDER", "cuda")
    with pytest.raises(ValueError, match="use auto, openvino or cpu"):
        Scorer(models["images"])
    monkeypatch.setenv("JOBGEN_ORT_PROVIDER", "openvino")
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(ValueError, match="install onnxruntime-openvino"):
        Scorer(models["images"])


def test_openvino_failure_falls_back_to_the_cpu_provider(models, monkeypatch, caplog):
    """auto: a model OpenVINO's provider cannot load is served by the default CPU provider, with a
    warning that says so; asked for by name, its error stands."""
    import onnxruntime as ort

    from trainkit import serving

    real = ort.InferenceSession

    def fussy(path, options=None, providers=None):
        if any(isinstance(p, tuple) and p[0] == "OpenVINOExecutionProvider" for p in providers or []):
            raise RuntimeError("OpenVINO: unsupported operation\ndetails")
        return real(path, options, providers=providers)

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["OpenVINOExecutionProvider", "CPUExecutionProvider"])
    monkeypatch.setattr(ort, "InferenceSession", fussy)
    monkeypatch.delenv("JOBGEN_ORT_PROVIDER", raising=False)
    with caplog.at_level("WARNING"):
        scorer = serving.Scorer(models["images"])
    assert scorer.provider == "cpu" and scorer.session.get_providers() == ["CPUExecutionProvider"]
    assert "could not load model" in caplog.text and "OpenVINO: unsupported operation" in caplog.text
    with pytest.raises(RuntimeError, match="unsupported operation"):
        serving.Scorer(models["images"], provider="openvino")


def test_export_reports_the_provider_that_judged_int8(models):
    from trainkit.serving import provider_plan

    report = json.loads((models["images"] / "report.json").read_text())
    assert report["int8"]["provider"] == provider_plan()


@pytest.mark.parametrize("size", [None, (640, 480), (333, 517), (120, 90), (224, 224)])
def test_server_preprocessing_matches_training(models, tmp_path, size):
    """The scorer's resize/crop/normalise gives the tensors torchvision's eval transform gives,
    for photos larger than the model input (landscape and portrait) and smaller ones, whether it
    resamples on one thread or splits the rows over two."""
    import numpy as np
    from PIL import Image

    from trainkit.data import image_transforms
    from trainkit.serving import Scorer

    scorer, single = Scorer(models["images"], threads=2), Scorer(models["images"], threads=1)
    path = sorted((models["root"] / "images" / "val" / "chickens").glob("*.jpg"))[0]
    if size:
        rng = np.random.default_rng(sum(size))
        y, x = np.mgrid[0:size[1], 0:size[0]].astype(np.float32)
        photo = np.stack([128 + 100 * np.sin(x / 17), 128 + 90 * np.cos(y / 11), 128 + 60 * np.sin((x - y) / 7)], -1)
        photo += rng.normal(0, 12, photo.shape)  # fine detail, where resampling differences would show
        path = tmp_path / "photo.jpg"
        Image.fromarray(photo.clip(0, 255).astype("uint8")).save(path, quality=92)
    ours, one_thread = scorer.decoded_batch([path.read_bytes()])[0], single.decoded_batch([path.read_bytes()])[0]
    with Image.open(path) as img:
        theirs = image_transforms(False, scorer.pre)(img.convert("RGB")).numpy()
    assert ours.shape == theirs.shape == (3, 224, 224)
    assert np.abs(ours - theirs).max() < 0.05
    assert np.abs(ours - one_thread).max() <= 1.001 * scorer.scale.max()  # one level of 255 at most


def test_an_image_file_as_the_body_scores_like_base64_json(models):
    from trainkit.serving import Scorer, ScoringError

    scorer = Scorer(models["images"])
    image = sorted((models["root"] / "images" / "val" / "turkeys").glob("*.jpg"))[0]
    assert scorer.score_image_bytes(image.read_bytes()) == scorer.score_json(json.dumps({"images": [b64(image)]}))
    for body, status, text in [(b"", 400, "empty"), (b"plain text", 415, "the request body is not a JPEG or PNG")]:
        with pytest.raises(ScoringError) as info:
            scorer.score_image_bytes(body)
        assert info.value.status == status and text in info.value.message
    with pytest.raises(ScoringError) as info:
        Scorer(models["penguins"]).score_image_bytes(image.read_bytes())
    assert info.value.status == 415 and "application/json" in info.value.message


def test_the_int8_variant_has_a_space_to_depth_stem_with_the_same_function(models, tmp_path):
    """The export rewrites ResNet's 7x7 stride-2 stem on 3 channels as SpaceToDepth + a 4x4
    convolution on 12 channels before quantizing; the rewritten fp32 graph gives the same logits."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    from trainkit.onnx_export import space_to_depth_stem

    report = json.loads((models["images"] / "report.json").read_text())
    assert "space-to-depth stem" in report["int8"]["method"]
    assert "SpaceToDepth" in {n.op_type for n in onnx.load(str(models["images"] / "model.int8.onnx")).graph.node}
    model = onnx.load(str(models["images"] / "model.onnx"))
    assert space_to_depth_stem(model)
    onnx.save(model, str(tmp_path / "stem.onnx"))
    x = np.random.default_rng(0).standard_normal((3, 3, 224, 224)).astype(np.float32)
    plain = ort.InferenceSession(str(models["images"] / "model.onnx")).run(None, {"input": x})[0]
    stem = ort.InferenceSession(str(tmp_path / "stem.onnx")).run(None, {"input": x})[0]
    assert np.abs(plain - stem).max() < 1e-4
    penguins = onnx.load(str(models["penguins"] / "model.onnx"))
    assert not space_to_depth_stem(penguins)  # an MLP has no stem: left alone


def _png(width, height) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (200, 10, 10)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def _png_header(width: int, height: int) -> bytes:
    """A valid PNG that declares width x height RGB pixels and carries almost no data (69 bytes)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def _jpeg_header(width: int, height: int) -> bytes:
    """A baseline JPEG header (SOF0, SOS) that declares width x height pixels, and no image (53 bytes)."""
    import struct

    frame = b"\xff\xc0" + struct.pack(">HBHHB", 17, 8, height, width, 3) + \
        b"".join(bytes([c, 0x11, 0]) for c in (1, 2, 3))
    scan = b"\xff\xda" + struct.pack(">HB", 12, 3) + b"".join(bytes([c, 0]) for c in (1, 2, 3)) + b"\x00\x3f\x00"
    return b"\xff\xd8" + frame + scan + b"\x00" * 16 + b"\xff\xd9"


BOMBS = {"png 20000x20000": _png_header(20000, 20000), "png 65000x65000": _png_header(65000, 65000),
         "jpeg 65000x65000": _jpeg_header(65000, 65000)}


@pytest.mark.parametrize("task,body,status,text", [
    ("penguins", "{not json", 400, "not valid JSON"),
    ("penguins", json.dumps({"data": "rows"}), 400, "expected"),
    ("penguins", json.dumps({"data": []}), 400, "no rows"),
    ("penguins", json.dumps({"data": [ROW] * 1001}), 413, "at most 1000"),
    ("penguins", json.dumps({"data": [{"island": "Biscoe"}]}), 400, "has no field 'bill_length_mm'"),
    ("penguins", json.dumps({"data": [dict(ROW, island="Mars")]}), 400, "unknown island 'Mars'"),
    ("penguins", json.dumps({"data": [dict(ROW, body_mass_g="heavy")]}), 400, "must be a number"),
    ("images", json.dumps({"pictures": []}), 400, "expected"),
    ("images", json.dumps({"images": ["not base64!"]}), 400, "not valid base64"),
    ("images", json.dumps({"images": [base64.b64encode(b"plain text").decode()]}), 415, "not a JPEG or PNG"),
    ("images", json.dumps({"images": ["QUFB" * 3_000_000]}), 413, "over 8 MB"),
    # made when the test runs, not at collection: a 48-megapixel PNG takes a second to encode
    ("images", lambda: json.dumps({"images": [_png(8000, 6000)]}), 413, "megapixels"),
    ("images", lambda: json.dumps({"images": [_png(10, 10)] * 33}), 413, "at most 32"),
    *[("images", json.dumps({"images": [base64.b64encode(bomb).decode()]}), 413, "at most 40 megapixels")
      for bomb in BOMBS.values()],
])
def test_bad_requests_are_4xx_with_a_clear_message(models, task, body, status, text):
    from trainkit.serving import Scorer, ScoringError

    body = body() if callable(body) else body
    with pytest.raises(ScoringError) as info:
        Scorer(models[task]).score_json(body)
    assert info.value.status == status and text in info.value.message


@pytest.mark.parametrize("bomb", list(BOMBS))
def test_a_decompression_bomb_is_413_as_json_or_as_the_body(models, bomb):
    """A header that claims billions of pixels in a few bytes: Pillow itself refuses it in
    Image.open (DecompressionBombError), before the scorer can look at its size."""
    from trainkit.serving import Scorer, ScoringError

    scorer = Scorer(models["images"])
    body = BOMBS[bomb]
    for score in (lambda: scorer.score_image_bytes(body),
                  lambda: scorer.score_json(json.dumps({"images": [base64.b64encode(body).decode()]}))):
        with pytest.raises(ScoringError) as info:
            score()
        assert info.value.status == 413 and "too many pixels; at most 40 megapixels" in info.value.message


def test_pillows_bomb_warning_turned_error_is_413(models):
    """Between 89 and 179 million pixels Pillow only warns (DecompressionBombWarning); where warnings
    are errors, that warning is what comes out of Image.open."""
    import warnings

    from trainkit.serving import Scorer, ScoringError

    scorer = Scorer(models["images"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ScoringError) as info:
            scorer.score_image_bytes(_png_header(10000, 10000))
    assert info.value.status == 413 and "at most 40 megapixels" in info.value.message


def test_a_decode_that_runs_out_of_memory_is_413(models, monkeypatch):
    from PIL import ImageFile

    from trainkit.serving import Scorer, ScoringError

    def out_of_memory(self, *args, **kwargs):
        raise MemoryError()

    scorer = Scorer(models["images"])
    monkeypatch.setattr(ImageFile.ImageFile, "load", out_of_memory)
    image = sorted((models["root"] / "images" / "val" / "turkeys").glob("*.jpg"))[0]
    with pytest.raises(ScoringError) as info:
        scorer.score_image_bytes(image.read_bytes())
    assert info.value.status == 413 and "too large to decode" in info.value.message


def test_a_registered_model_serves_from_its_registry_layout(models, tmp_path, monkeypatch):
    """What a deployment gets in AZUREML_MODEL_DIR: the MLflow model the register step logged."""
    import mlflow

    from trainkit import registry
    from trainkit.serving import Scorer

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    model_dir = models["root"] / "pm"
    result = registry.register(model_dir, models["penguins"], "serve-test")
    local = Path(mlflow.artifacts.download_artifacts(f"models:/serve-test/{result['version']}",
                                                     dst_path=str(tmp_path / "registered")))
    scorer = Scorer(local)
    assert scorer.model_file.name in ("model.onnx", "model.int8.onnx")
    assert scorer.score_json(json.dumps([ROW]))["predictions"][0]["class"] in ("Adelie", "Chinstrap", "Gentoo")


# ------------------------------------------------------------------ hostile numbers

@pytest.fixture(scope="module")
def trained(models):
    """A penguins model trained by train.py (one process, two epochs) and exported to ONNX: its
    model.json holds the ranges of the training rows."""
    from helpers import runs

    root = models["root"]
    result = runs.run("train.py", ["--task", "penguins", "--data", root / "penguins.csv", "--epochs", "2",
                                   "--batch-size", "16", "--precision", "fp32", "--model-dir", root / "tm",
                                   "--checkpoint-dir", root / "tc"], root)
    assert result.returncode == 0, result.stdout + result.stderr
    return exported(root / "tm", root / "penguins.csv", root / "trained-onnx", int8=False)


def _ranges(folder: Path) -> dict:
    return json.loads((folder / "model.json").read_text())["preprocessing"]["ranges"]


def test_training_records_the_ranges_of_its_training_rows(models, trained):
    from trainkit import data as data_mod

    meta = json.loads((models["root"] / "tm" / "model.json").read_text())
    frame = data_mod.read_penguins(models["root"] / "penguins.csv")
    train_idx, _ = data_mod.split_indices(len(frame), meta["training"]["seed"])
    rows = frame.iloc[train_idx.numpy()]
    expected = {name: [float(rows[name].min()), float(rows[name].max())] for name in data_mod.PENGUIN_FEATURES[1:]}
    assert meta["preprocessing"]["ranges"] == expected  # raw units (grams, millimetres), not the model's scale
    assert 2500 < expected["body_mass_g"][0] < expected["body_mass_g"][1] < 6500
    assert _ranges(trained) == expected  # the ONNX folder serves on its own: the export copies them


def _row(**fields) -> str:
    """One request body with ROW's fields, some replaced by raw JSON text (NaN, 1e400, ...)."""
    parts = [f'"{k}": {fields.pop(k) if k in fields else json.dumps(v)}' for k, v in ROW.items()]
    return '{"data": [%s, {%s}]}' % (json.dumps(ROW), ", ".join(parts))


@pytest.mark.parametrize("body,texts", [
    (_row(bill_length_mm="NaN"), ["row 1: bill_length_mm", "NaN"]),
    (_row(body_mass_g="Infinity"), ["row 1: body_mass_g", "Infinity"]),
    (_row(flipper_length_mm="-Infinity"), ["row 1: flipper_length_mm", "-Infinity"]),
    (_row(bill_depth_mm="1e400"), ["row 1: bill_depth_mm", "finite"]),  # json.loads makes it inf
    (_row(body_mass_g=str(10 ** 400)), ["row 1: body_mass_g", "401-digit"]),  # float() overflows
    (_row(body_mass_g="1" * 5000), ["integer with too many digits"]),  # past Python's int parsing limit
    (_row(island='["Biscoe"]'), ["row 1: island", "must be one of Biscoe, Dream, Torgersen", "a list"]),
    (_row(island='{"name": "Biscoe"}'), ["row 1: island", "an object"]),
    (_row(bill_length_mm='[1, 2]'), ["row 1: bill_length_mm", "must be a number", "a list"]),
    ('{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", ["nested"]),
])
def test_hostile_numbers_and_shapes_are_400_naming_the_row_and_field(trained, body, texts):
    from trainkit.serving import Scorer, ScoringError

    with pytest.raises(ScoringError) as info:
        Scorer(trained).score_json(body)
    assert info.value.status == 400, info.value.message
    assert len(info.value.message.splitlines()) == 1 and len(info.value.message) < 300
    for text in texts:
        assert text in info.value.message, info.value.message


def test_numbers_outside_the_training_range_are_refused(trained):
    """Accepted: the training rows' range widened by half its span on each side."""
    from trainkit.serving import Scorer, ScoringError

    scorer = Scorer(trained)
    ranges = _ranges(trained)
    for name, (low, high) in ranges.items():
        span = high - low
        for inside in (low - 0.49 * span, high + 0.49 * span, low, high):
            assert scorer.score_json(json.dumps({"data": [dict(ROW, **{name: inside})]}))["predictions"]
        for outside in (low - 0.51 * span, high + 0.51 * span):
            with pytest.raises(ScoringError) as info:
                scorer.score_json(json.dumps({"data": [ROW, dict(ROW, **{name: outside})]}))
            accepted = f"{low - span / 2:g}-{high + span / 2:g}"
            assert info.value.status == 400
            assert info.value.message == (f"row 1: {name} {outside:g} is outside what this model was trained on "
                                          f"({low:g}-{high:g}; accepted {accepted})")
    low, high = ranges["body_mass_g"]
    with pytest.raises(ScoringError) as info:
        scorer.score_json(json.dumps({"data": [dict(ROW, body_mass_g=1e9)]}))
    accepted = f"{low - (high - low) / 2:g}-{high + (high - low) / 2:g}"
    assert info.value.message == (f"row 0: body_mass_g 1e+09 is outside what this model was trained on "
                                  f"({low:g}-{high:g}; accepted {accepted})")


def test_a_model_folder_without_ranges_still_scores(models, tmp_path):
    """A folder written before ranges were recorded: any finite number scores, non-finite ones are refused."""
    import shutil

    from trainkit.serving import Scorer, ScoringError

    folder = shutil.copytree(models["penguins"], tmp_path / "old")
    meta = json.loads((folder / "model.json").read_text())
    meta["preprocessing"].pop("ranges", None)
    (folder / "model.json").write_text(json.dumps(meta))
    scorer = Scorer(folder)
    assert scorer.score_json(json.dumps({"data": [dict(ROW, body_mass_g=1e9)]}))["predictions"]
    for body in (_row(body_mass_g="NaN"), _row(body_mass_g=str(10 ** 400))):
        with pytest.raises(ScoringError) as info:
            scorer.score_json(body)
        assert info.value.status == 400 and info.value.message.startswith("row 1: body_mass_g")


@pytest.mark.parametrize("body,text", [
    ('{"images": ["QUFB"], "scale": NaN}', "NaN"),
    ('{"images": ["QUFB"], "scale": -Infinity}', "-Infinity"),
    ('{"images": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested"),
])
def test_image_requests_refuse_nan_literals_and_deep_nesting(models, body, text):
    from trainkit.serving import Scorer, ScoringError

    with pytest.raises(ScoringError) as info:
        Scorer(models["images"]).score_json(body)
    assert info.value.status == 400 and text in info.value.message, info.value.message


# ------------------------------------------------------------------ the real server

def _post(port, body, method="POST", content_type="application/json", timeout=30):
    request = urllib.request.Request(f"http://127.0.0.1:{port}/score", data=body if method == "POST" else None,
                                     method=method, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture(scope="module")
def server(models):
    from jobgen import serve

    port = serve.free_port()
    log = open(models["root"] / "server.log", "wb")
    proc = serve.start(models["images"], port, log=log)
    yield port, models["root"] / "server.log"
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def test_inference_server_scores_and_refuses_bad_requests(server, models):
    port, log = server
    image = sorted((models["root"] / "images" / "val" / "chickens").glob("*.jpg"))[0]
    status, answer = _post(port, json.dumps({"images": [b64(image)]}).encode())
    assert status == 200 and answer["predictions"][0]["class"] in ("chickens", "turkeys")
    status, answer = _post(port, b"{oops")
    assert status == 400 and "not valid JSON" in answer["error"]
    status, answer = _post(port, json.dumps({"images": ["QUFB" * 3_000_000]}).encode())
    assert status == 413
    status, answer = _post(port, None, method="GET")
    assert status == 405 and "POST" in answer["error"]
    status, answer = _post(port, image.read_bytes(), content_type="image/jpeg")  # the file itself as the body
    assert status == 200 and answer["predictions"][0]["class"] in ("chickens", "turkeys")
    status, answer = _post(port, b"GIF89a...", content_type="application/octet-stream")
    assert status == 415 and "not a JPEG or PNG" in answer["error"]
    status, answer = _post(port, json.dumps({"images": [b64(image)], "scale": float("nan")}).encode())  # NaN literal
    assert status == 400 and "NaN" in answer["error"]
    status, answer = _post(port, b'{"images": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    assert status == 400 and "nested too deeply" in answer["error"]
    text = log.read_text(errors="replace")
    assert "Traceback" not in text
    import os

    from trainkit.serving import provider_plan

    # one worker: the model's threads have every core (the CPU provider's also spin between operators)
    cores = len(os.sched_getaffinity(0))
    assert f"; {provider_plan()}, {cores} threads" in text


def test_inference_server_answers_413_to_decompression_bombs(server):
    port, log = server
    for name, bomb in BOMBS.items():
        for body, content_type in ((bomb, "image/png" if name.startswith("png") else "image/jpeg"),
                                   (json.dumps({"images": [base64.b64encode(bomb).decode()]}).encode(),
                                    "application/json")):
            status, answer = _post(port, body, content_type=content_type)
            assert status == 413 and "at most 40 megapixels" in answer["error"], (name, content_type, answer)
    assert "Traceback" not in log.read_text(errors="replace")


def test_a_client_sending_its_body_slowly_does_not_hold_the_only_worker(server, models):
    """One worker (Azure's default). A client sends its headers, then its body at one byte a
    second: meanwhile another client's request is answered at once."""
    import select
    import socket
    import threading
    import time

    port, log = server
    image = sorted((models["root"] / "images" / "val" / "chickens").glob("*.jpg"))[0]
    slow = socket.create_connection(("127.0.0.1", port), timeout=5)
    stop = threading.Event()

    def trickle():
        while not stop.wait(1.0):
            try:
                slow.sendall(b" ")
            except OSError:
                return

    sender = threading.Thread(target=trickle, daemon=True)
    try:
        slow.sendall(b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{")
        sender.start()
        time.sleep(1.5)  # the server has read the slow request's headers and is reading its body
        start = time.monotonic()
        status, answer = _post(port, json.dumps({"images": [b64(image)]}).encode(), timeout=8)
        elapsed = time.monotonic() - start
        assert status == 200 and answer["predictions"], answer
        assert elapsed < 2.0, f"the second client waited {elapsed:.1f} s"
        assert sender.is_alive() and not select.select([slow], [], [], 0)[0]  # still sending, not answered
    finally:
        stop.set()
        if sender.is_alive():
            sender.join(timeout=5)
        slow.close()
    time.sleep(0.5)  # the server sees the slow client go away
    assert _post(port, json.dumps({"images": [b64(image)]}).encode(), timeout=8)[0] == 200
    assert "Traceback" not in log.read_text(errors="replace")


def test_inference_server_refuses_hostile_penguin_rows(trained, models):
    """Through azureml-inference-server-http, as a deployment answers: each a 400 with its one line."""
    from jobgen import serve

    port = serve.free_port()
    with open(models["root"] / "penguins-server.log", "wb") as log:
        proc = serve.start(trained, port, log=log)
        try:
            assert _post(port, json.dumps({"data": [ROW]}).encode())[0] == 200
            for body, text in [(_row(bill_length_mm="NaN"), "row 1: bill_length_mm is not a finite number (NaN)"),
                               (_row(body_mass_g=str(10 ** 400)), "row 1: body_mass_g is a 401-digit integer"),
                               (_row(island='["Biscoe"]'), "row 1: island must be one of"),
                               (_row(body_mass_g="1e9"), "row 1: body_mass_g 1e+09 is outside what this model"),
                               ('{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply")]:
                status, answer = _post(port, body.encode())
                assert status == 400 and text in answer["error"], answer
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    assert "Traceback" not in (models["root"] / "penguins-server.log").read_text(errors="replace")


def _server_processes(port: int) -> list:
    """gunicorn's master and workers bound to 127.0.0.1:<port> (the workers are forks: same command line)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["cmdline"]):
        line = proc.info["cmdline"] or []
        if any("gunicorn" in part for part in line[:2]) and f"127.0.0.1:{port}" in line:
            found.append(proc)
    return found


def _port_answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return s.recv(12).startswith(b"HTTP/1.")
    except OSError:
        return False


@pytest.mark.parametrize("sig,rc", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_signal_to_serve_stops_the_whole_server(trained, models, sig, rc):
    """`generator.py serve` told to stop (SIGTERM from a process manager, Ctrl-C in a terminal) stops
    gunicorn and its workers and frees the port; only the generator gets the signal."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    import psutil

    from jobgen import serve

    port = serve.free_port()
    generator = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parents[1] / "generator.py"), "serve",
                                  str(trained), "--port", str(port)], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.PIPE)
    server = []
    try:
        deadline = time.monotonic() + 120
        while not _port_answers(port):
            assert generator.poll() is None and time.monotonic() < deadline, generator.stderr.read().decode()
            time.sleep(0.2)
        server = _server_processes(port)
        assert len(server) >= 2  # the master and one worker
        generator.send_signal(getattr(signal, sig))
        assert generator.wait(timeout=20) == rc
        _, alive = psutil.wait_procs(server, timeout=3)
        assert not alive and not _server_processes(port)
        assert not _port_answers(port)
        with socket.socket() as s:  # nobody listens on it: it can be bound again
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
        assert "Traceback" not in generator.stderr.read().decode(errors="replace")
    finally:
        for proc in [*server, *_server_processes(port)]:  # what a failure would leave behind
            try:
                proc.kill()
            except psutil.Error:
                pass
        if generator.poll() is None:
            generator.kill()
        generator.wait()


def test_server_workers_share_the_cores(models, monkeypatch):
    """One worker (Azure's default) gets every core and spinning threads; several share the cores
    out and sleep when idle, so one worker's spinning does not slow another's request."""
    import os

    from trainkit.serving import Scorer

    cores = len(os.sched_getaffinity(0))
    monkeypatch.delenv("WORKER_COUNT", raising=False)
    monkeypatch.delenv("JOBGEN_ORT_SPINNING", raising=False)
    alone = Scorer(models["images"])
    assert (alone.threads, alone.spinning) == (cores, True)
    monkeypatch.setenv("WORKER_COUNT", "2")
    shared = Scorer(models["images"])
    assert (shared.threads, shared.spinning) == (max(1, cores // 2), False)
    monkeypatch.setenv("WORKER_COUNT", "1")
    monkeypatch.setenv("JOBGEN_ORT_SPINNING", "0")
    assert Scorer(models["images"]).spinning is False


def test_serve_command_checks_the_folder(cli, tmp_path):
    rc, out, err = cli("serve", tmp_path / "nothing")
    assert rc == 1 and "model folder not found" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "model").mkdir()
    rc, out, err = cli("serve", tmp_path / "model")
    assert rc == 1 and "no model.onnx" in err
    rc, out, err = cli("serve", tmp_path / "model", "--workers", "0")
    assert rc == 2 and "--workers: 0 is not at least 1" in err


def test_serve_refuses_openvino_where_onnxruntime_has_none(cli, models, monkeypatch):
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    rc, out, err = cli("serve", models["images"], "--provider", "openvino")
    assert rc == 1 and len(err.strip().splitlines()) == 1
    assert "--provider openvino: onnxruntime" in err and "install onnxruntime-openvino" in err


# ------------------------------------------------------------------ endpoint templates

def test_endpoint_definition_renders_and_loads(root):
    import yaml
    from azure.ai.ml import load_online_deployment, load_online_endpoint

    folder = root / "jobs" / "penguins-endpoint"
    endpoint = load_online_endpoint(folder / "endpoint.yml")
    deployment = load_online_deployment(folder / "deployment.yml")
    assert endpoint.name == "penguins-species" and endpoint.auth_mode == "key"
    assert deployment.endpoint_name == "penguins-species" and deployment.instance_type == "Standard_DS2_v2"
    assert str(deployment.model).endswith("penguins-mlp@latest")
    assert deployment.code_configuration.scoring_script == "score.py"
    assert deployment.liveness_probe.failure_threshold == 30 and deployment.request_settings.request_timeout_ms == 5000
    conda = yaml.safe_load((folder / "conda-serve.yaml").read_text())
    assert "azureml-inference-server-http" in conda["dependencies"][-1]["pip"]
    assert not any("torch" in p for p in conda["dependencies"][-1]["pip"])


@pytest.mark.parametrize("sets,expected", [
    (["endpoint.name=x"], "is not a valid name"),
    (["endpoint.instance_type=Standard_NC6"], "was retired"),
    (["endpoint.model=penguins-mlp"], "is not a valid name"),
    (["endpoint.onnx_variant=int4"], "unknown value 'int4'"),
    (["endpoint.liveness_probe.period=0"], "must be at least 1"),
    (["endpoint.scoring_script=serve.py"], "'serve.py' is not in the code folder"),
])
def test_bad_endpoint_values(cli, checkout, tmp_path, sets, expected):
    args = ["render", "--set", "endpoint.enabled=true"]
    for s in sets:
        args += ["--set", s]
    rc, out, err = cli(*args, "-o", tmp_path / "out")
    assert rc == 1 and expected in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("values,expected", [
    ("endpoint: {enabled: true, pip: ['onnxruntime>=1.18', onnxruntime_openvino, pillow]}",
     "endpoint.pip: lists onnxruntime and onnxruntime-openvino: both install the one onnxruntime module"),
    ("env: {pip: [torch, onnxruntime-gpu, onnxruntime]}", "env.pip: lists onnxruntime and onnxruntime-gpu"),
])
def test_two_onnxruntime_builds_in_one_environment_are_refused(cli, checkout, tmp_path, values, expected):
    """onnxruntime, onnxruntime-openvino and onnxruntime-gpu are one Python module: with two, the
    last one pip installs overwrites the other's files."""
    (tmp_path / "values.yaml").write_text(values + "\n")
    rc, out, err = cli("render", "-f", tmp_path / "values.yaml", "-o", tmp_path / "out")
    assert rc == 1 and expected in err, err
    assert not (tmp_path / "out").exists()
