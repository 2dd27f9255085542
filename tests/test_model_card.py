"""model.json and report.json as typed classes (trainkit/meta.py): what the trainer and the export
write and export, registration, scoring and prediction read. No torch: the fast tier runs this."""

from __future__ import annotations

import json
import sys

import pytest

from helpers import runs

sys.path.insert(0, str(runs.TRAINER))
from trainkit.errors import TrainError  # noqa: E402
from trainkit.meta import ExportReport, read_meta  # noqa: E402

WRITTEN = {  # a model.json as the trainer has written it since format trainkit-model/1
    "arch": "mlp", "classes": ["Adelie", "Chinstrap", "Gentoo"], "format": "trainkit-model/1",
    "input_shape": [5], "metrics": {"epochs": 3, "val_accuracy": 0.97}, "mlflow_run_id": "abc",
    "preprocessing": {"kind": "tabular"}, "task": "penguins", "training": {"seed": 7, "world_size": 2},
    "versions": {"python": "3.11.7", "torch": "2.14.1"},
}


def test_a_card_reads_and_writes_the_same_json(tmp_path):
    (tmp_path / "model.json").write_text(json.dumps(WRITTEN, indent=2, sort_keys=True) + "\n")
    card = read_meta(tmp_path)
    assert (card.task, card.arch, card.val_accuracy, card.seed, card.mlflow_run_id) == ("penguins", "mlp", 0.97, 7,
                                                                                       "abc")
    assert card.to_json() == (tmp_path / "model.json").read_text()


def test_an_older_card_without_the_optional_parts_reads(tmp_path):
    minimal = {k: WRITTEN[k] for k in ("task", "arch", "classes", "input_shape", "preprocessing")}
    (tmp_path / "model.json").write_text(json.dumps(dict(minimal, mlflow_run_id=None, metrics=None)))
    card = read_meta(tmp_path)
    assert card.val_accuracy is None and card.seed == 0 and card.mlflow_run_id is None


@pytest.mark.parametrize("content,expected", [
    (None, "is not a model folder: model.json is missing"),
    ("{not json", "is not valid JSON"),
    ("[1, 2]", "is not a JSON object"),
    (json.dumps({"task": "penguins"}), "has no 'arch'"),
])
def test_a_bad_card_is_one_clear_error(tmp_path, content, expected):
    if content is not None:
        (tmp_path / "model.json").write_text(content)
    with pytest.raises(TrainError) as info:
        read_meta(tmp_path)
    assert expected in info.value.line()


REPORT = {  # a report.json as export_onnx.py has written it, with its int8 verdict
    "arch": "mlp", "batch_1_max_abs_diff": 1e-07, "classes": ["Adelie", "Chinstrap", "Gentoo"],
    "export_seconds": 0.412, "max_abs_diff": 2.4e-07, "mlflow_run_id": "abc", "ok": True, "onnxruntime": "1.24.1",
    "opset": 17, "predictions_equal": True, "samples": 64, "selected": "model.int8.onnx", "task": "penguins",
    "tolerance": 0.0001, "val_accuracy": 0.97,
    "int8": {"accuracy_drop": 0.0, "agreement_with_fp32": 1.0, "file": "model.int8.onnx", "fp32_accuracy": 0.97,
             "int8_accuracy": 0.97, "max_accuracy_drop": 0.01, "method": "static QDQ", "provider": "cpu",
             "val_samples": 103, "within_bound": True},
}


@pytest.mark.parametrize("written", [REPORT, {k: v for k, v in REPORT.items() if k != "int8"}],
                         ids=["with-int8", "fp32-only"])
def test_an_export_report_reads_and_writes_the_same_json(tmp_path, written):
    (tmp_path / "report.json").write_text(json.dumps(written, indent=2, sort_keys=True) + "\n")
    report = ExportReport.read(tmp_path)
    assert report.ok and report.task == "penguins" and report.max_abs_diff == 2.4e-07
    assert (report.int8 is not None) == ("int8" in written)
    assert report.to_json() == (tmp_path / "report.json").read_text()


def test_a_report_from_a_failed_or_foreign_export_reads_as_not_ok(tmp_path):
    """registration refuses it with its own message (another model, parity failed), not a KeyError"""
    (tmp_path / "report.json").write_text(json.dumps({"ok": False, "max_abs_diff": 0.5, "int8": {"file": "x"}}))
    report = ExportReport.read(tmp_path)
    assert not report.ok and report.task is None and report.int8 is None and report.selected == "model.onnx"
    (tmp_path / "report.json").write_text("{not json")
    with pytest.raises(TrainError, match="is not valid JSON"):
        ExportReport.read(tmp_path)
