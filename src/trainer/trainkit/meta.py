"""The model folder's description, ``model.json``: what export, registration, scoring and prediction
read to rebuild and serve the model. No torch here: reading it costs milliseconds."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from .errors import TrainError

MODEL_FILE = "model.pt"
META_FILE = "model.json"
FORMAT = "trainkit-model/1"
# the export folder: the ONNX model, its int8 variant and the parity report
ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
REPORT_FILE = "report.json"


REQUIRED = ("task", "arch", "classes", "input_shape", "preprocessing")


@dataclass
class ModelCard:
    """``model.json``: what a trained model is (task, architecture, classes, the input one sample
    has and how it is prepared) and where it came from (metrics, training set-up, the MLflow run,
    versions). The trainer writes it; export, registration, scoring and prediction read it, and
    export copies it beside the ONNX files."""

    task: str
    arch: str
    classes: list[str]
    input_shape: list[int]
    preprocessing: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    mlflow_run_id: str | None = None
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def val_accuracy(self) -> float | None:
        return self.metrics.get("val_accuracy")

    @property
    def seed(self) -> int:
        return int(self.training.get("seed", 0) or 0)

    @classmethod
    def from_dict(cls, data: Any, where: Path | str = META_FILE) -> "ModelCard":
        if not isinstance(data, dict):
            raise TrainError(f"{where} is not a JSON object", "re-run training to write a complete model folder")
        for key in REQUIRED:
            if key not in data:
                raise TrainError(f"{where} has no {key!r}", "re-run training to write a complete model folder")
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known and (v is not None or k in REQUIRED)})

    @classmethod
    def read(cls, folder: Path) -> "ModelCard":
        path = Path(folder) / META_FILE
        if not path.is_file():
            raise TrainError(f"{folder} is not a model folder: {META_FILE} is missing",
                             "pass the training job's model_dir output")
        return cls.from_file(path)

    @classmethod
    def from_file(cls, path: Path) -> "ModelCard":
        try:
            data = json.loads(Path(path).read_text())
        except json.JSONDecodeError as exc:
            raise TrainError(f"{path} is not valid JSON ({exc})") from None
        return cls.from_dict(data, path)

    def to_json(self) -> str:
        return json.dumps(dict(asdict(self), format=FORMAT), indent=2, sort_keys=True) + "\n"


def read_meta(folder: Path) -> ModelCard:
    """The model folder's card (``ModelCard.read``)."""
    return ModelCard.read(folder)


@dataclass
class Int8Report:
    """The int8 variant's verdict in ``report.json``: its accuracy against fp32's on the validation
    samples, and whether the drop is within the bound that lets the scorer serve it."""

    file: str
    method: str
    val_samples: int
    fp32_accuracy: float
    int8_accuracy: float
    accuracy_drop: float
    agreement_with_fp32: float  # the share of samples where int8 answers what fp32 answers
    max_accuracy_drop: float
    within_bound: bool
    provider: str


@dataclass
class ExportReport:
    """``report.json`` beside the ONNX files: the parity of ONNX Runtime with PyTorch, the model it
    was exported from (so registration refuses another model's export), the int8 variant's verdict
    and which file the scorer serves. export_onnx writes it; registration and scoring read it."""

    ok: bool
    max_abs_diff: float | None = None
    samples: int = 0
    tolerance: float | None = None
    predictions_equal: bool = False
    batch_1_max_abs_diff: float | None = None
    onnxruntime: str | None = None
    opset: int | None = None
    export_seconds: float | None = None
    task: str | None = None
    arch: str | None = None
    classes: list[str] | None = None
    val_accuracy: float | None = None
    mlflow_run_id: str | None = None
    selected: str = ONNX_FILE
    int8: Int8Report | None = None

    @classmethod
    def from_dict(cls, data: Any, where: Path | str = REPORT_FILE) -> "ExportReport":
        """A report as written, or one from an export that failed or is not ours: what is missing
        reads as not ok, from no known model."""
        if not isinstance(data, dict):
            raise TrainError(f"{where} is not a JSON object", "re-run export_onnx.py")
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["ok"] = bool(values.get("ok", False))
        if isinstance(values.get("int8"), dict):
            names = {f.name for f in fields(Int8Report)}
            try:
                values["int8"] = Int8Report(**{k: v for k, v in values["int8"].items() if k in names})
            except TypeError:  # an incomplete verdict: no int8 variant to trust
                values["int8"] = None
        else:
            values["int8"] = None
        return cls(**values)

    @classmethod
    def read(cls, folder: Path) -> "ExportReport":
        path = Path(folder) / REPORT_FILE
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise TrainError(f"{path} is not valid JSON ({exc})", "re-run export_onnx.py") from None
        return cls.from_dict(data, path)

    def to_json(self) -> str:
        data = asdict(self)
        if data["int8"] is None:  # no variant was made: the key is absent, as before the class
            del data["int8"]
        return json.dumps(data, indent=2, sort_keys=True) + "\n"
