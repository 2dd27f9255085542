"""Register the exported model with MLflow's model registry: an embedded SQLite registry
locally, the Azure ML workspace on Azure (the environment carries mlflow and azureml-mlflow).
Tags carry the val accuracy, the ONNX parity and the source run. Nothing is registered if
training or export did not succeed."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import sys
import warnings
from pathlib import Path

from .errors import TrainError
from .meta import INT8_FILE, META_FILE, ONNX_FILE, REPORT_FILE, ExportReport, ModelCard, read_meta
from .tracking import setup_mlflow


def check_inputs(model_dir: Path, onnx_dir: Path) -> tuple[ModelCard, ExportReport]:
    meta = read_meta(model_dir)
    accuracy = meta.val_accuracy
    if accuracy is None:
        raise TrainError(f"{model_dir / META_FILE} has no val_accuracy: training did not finish",
                         "nothing was registered; re-run training")
    report_path = Path(onnx_dir) / REPORT_FILE
    if not report_path.is_file() or not (Path(onnx_dir) / ONNX_FILE).is_file():
        raise TrainError(f"{onnx_dir} has no {ONNX_FILE} and {REPORT_FILE}: the export did not run",
                         "nothing was registered; run export_onnx.py first")
    report = ExportReport.read(onnx_dir)
    for key in ("task", "arch", "classes"):
        if getattr(report, key) != getattr(meta, key):
            raise TrainError(f"{onnx_dir} was exported from another model ({key}: {getattr(report, key)!r}, the model "
                             f"folder has {getattr(meta, key)!r})", "pass the export of this model; nothing was registered")
    if report.mlflow_run_id != meta.mlflow_run_id:
        raise TrainError(f"{onnx_dir} was exported from training run {report.mlflow_run_id}, the model folder "
                         f"comes from {meta.mlflow_run_id}", "re-run the export; nothing was registered")
    if not report.ok:
        raise TrainError(f"ONNX parity failed (max |diff| {report.max_abs_diff}); see {report_path}",
                         "nothing was registered")
    return meta, report


def register(model_dir: Path, onnx_dir: Path, name: str, min_accuracy: float | None = None) -> dict:
    meta, report = check_inputs(model_dir, onnx_dir)
    accuracy = meta.val_accuracy
    if min_accuracy is not None and accuracy < min_accuracy:
        raise TrainError(f"val accuracy {accuracy:.4f} is below --min-accuracy {min_accuracy}",
                         "nothing was registered")
    warnings.filterwarnings("ignore")
    import onnx

    mlflow = setup_mlflow(f"jobgen-{meta.task}")
    tags = {
        "task": meta.task, "arch": meta.arch, "classes": ",".join(meta.classes),
        "val_accuracy": f"{accuracy:.4f}",
        "onnx_parity": "ok" if report.ok else "failed",
        "onnx_max_abs_diff": f"{report.max_abs_diff:.3e}",
        "source_run": meta.mlflow_run_id or "unknown",
    }
    with mlflow.start_run(run_id=os.environ.get("MLFLOW_RUN_ID")) as run:
        mlflow.set_tags({f"registered_model.{k}": v for k, v in tags.items()})
        onnx_model = onnx.load(str(Path(onnx_dir) / ONNX_FILE))
        extra = [str(Path(onnx_dir) / f) for f in (META_FILE, REPORT_FILE, INT8_FILE) if (Path(onnx_dir) / f).is_file()]
        # The flavor's own pinned requirements (onnx, onnxruntime): inferring them instead starts a
        # process that loads the model (seconds), and lists every onnxruntime build installed here,
        # which conflict when installed together.
        info = mlflow.onnx.log_model(onnx_model, name="model", extra_files=extra,  # served together
                                     pip_requirements=mlflow.onnx.get_default_pip_requirements(),
                                     metadata={"classes": meta.classes, "task": meta.task,
                                               "selected": report.selected})
        mlflow.log_artifact(str(Path(onnx_dir) / META_FILE), artifact_path="model_meta")
        mlflow.log_artifact(str(Path(onnx_dir) / REPORT_FILE), artifact_path="model_meta")
        chatter = io.StringIO()  # MLflow prints "Created version ..." itself; we print one line instead
        with contextlib.redirect_stderr(chatter), contextlib.redirect_stdout(chatter):
            version = mlflow.register_model(info.model_uri, name, tags=tags)
    return {"name": name, "version": int(version.version), "run_id": run.info.run_id, "tags": tags,
            "tracking_uri": mlflow.get_tracking_uri()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="register.py", description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", type=Path, required=True, help="the training job's model folder")
    p.add_argument("--onnx-dir", type=Path, required=True, help="export_onnx.py's output folder")
    p.add_argument("--model-name", required=True, help="registered model name (a new version each time)")
    p.add_argument("--min-accuracy", type=float, default=None, help="refuse to register below this val accuracy")
    p.add_argument("--output-dir", "--registration", dest="output_dir", type=Path, default=None,
                   help="write registration.json here")
    args = p.parse_args(argv)
    try:
        result = register(args.model_dir, args.onnx_dir, args.model_name, args.min_accuracy)
    except TrainError as exc:
        sys.stderr.write(f"error: {exc.line()}\n")
        return 2
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
        (args.output_dir / "registration.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    print(f"[register] {result['name']} version {result['version']} (val_accuracy {result['tags']['val_accuracy']}, "
          f"ONNX parity {result['tags']['onnx_parity']}, source run {result['tags']['source_run']})", flush=True)
    return 0
