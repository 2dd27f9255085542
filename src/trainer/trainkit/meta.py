"""The model folder's description, ``model.json``: what export, registration, scoring and prediction
read to rebuild and serve the model. No torch here: reading it costs milliseconds."""

from __future__ import annotations

import json
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


def read_meta(folder: Path) -> dict[str, Any]:
    path = Path(folder) / META_FILE
    if not path.is_file():
        raise TrainError(f"{folder} is not a model folder: {META_FILE} is missing",
                         "pass the training job's model_dir output")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TrainError(f"{path} is not valid JSON ({exc})") from None
    for key in ("task", "arch", "classes", "input_shape", "preprocessing"):
        if key not in meta:
            raise TrainError(f"{path} has no {key!r}", "re-run training to write a complete model folder")
    return meta
