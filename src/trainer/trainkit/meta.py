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
