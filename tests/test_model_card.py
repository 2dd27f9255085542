"""model.json as one typed class (trainkit/meta.py): what the trainer writes and export,
registration, scoring and prediction read. No torch: the fast tier runs this."""

from __future__ import annotations

import json
import sys

import pytest

from helpers import runs

sys.path.insert(0, str(runs.TRAINER))
from trainkit.errors import TrainError  # noqa: E402
from trainkit.meta import read_meta  # noqa: E402

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
