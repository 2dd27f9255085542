"""Scoring script for Azure ML batch endpoints (model deployments), and for `generator.py run
deployment.yml --input ...` locally under the same contract: init() loads the ONNX model from
AZUREML_MODEL_DIR once per scoring process; run(mini_batch) gets a list of file paths and returns a
pandas DataFrame, whose rows Azure appends to the job's output file (predictions.csv: no header,
columns separated by spaces).

- image models: one row per image file: file, class, probability
- penguins models: CSV files (a header line with island, bill_length_mm, bill_depth_mm,
  flipper_length_mm, body_mass_g; other columns are ignored): one row per penguin: file, row, class,
  probability. A row with a missing or refused number (palmerpenguins writes NA) is skipped with a
  log line naming the file and row, as is a file that cannot be read: the other files are scored.

The deployment's WORKER_COUNT (its max_concurrency_per_instance) shares the node's cores out among
the scoring processes, as for the online server."""

import csv
import logging
import os
from pathlib import Path

import pandas as pd

from trainkit.serving import Scorer, ScoringError

scorer = None
log = logging.getLogger("batch_score")
IMAGE_COLUMNS = ["file", "class", "probability"]
PENGUIN_COLUMNS = ["file", "row", "class", "probability"]


def init():
    global scorer
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    scorer = Scorer(os.environ.get("AZUREML_MODEL_DIR", "."))
    log.info("loaded %s (%s, classes %s; %s, %s threads)", scorer.model_file, scorer.task, scorer.classes,
             scorer.provider, scorer.threads)


def run(mini_batch):
    rows = []
    for path in mini_batch:
        try:
            rows.extend(_score_images([path]) if scorer.task == "images" else _score_penguins(path))
        except (ScoringError, OSError, UnicodeDecodeError, csv.Error) as exc:
            log.warning("skipped %s: %s", Path(path).name, getattr(exc, "message", exc))
    columns = IMAGE_COLUMNS if scorer.task == "images" else PENGUIN_COLUMNS
    return pd.DataFrame(rows, columns=columns)


def _score_images(paths):
    raws = [Path(p).read_bytes() for p in paths]
    batch = scorer.decoded_batch(raws, [Path(p).name for p in paths])
    return [[Path(p).name, r["class"], r["probability"]] for p, r in zip(paths, scorer.predict_array(batch))]


def _score_penguins(path):
    name = Path(path).name
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        features = scorer.pre["features"]
        missing = [c for c in features if c not in (reader.fieldnames or [])]
        if missing:
            raise ScoringError(400, f"its header has no {', '.join(missing)} column (a penguins CSV has "
                                    f"{', '.join(features)})")
        kept, arrays = [], []
        for number, row in enumerate(reader):
            try:
                arrays.append(scorer.penguin_rows([_typed(row, features)]))
                kept.append(number)
            except ScoringError as exc:
                log.warning("%s row %d skipped: %s", name, number, exc.message.removeprefix("row 0: "))
    if not arrays:
        return []
    import numpy as np

    results = scorer.predict_array(np.concatenate(arrays))
    return [[name, number, r["class"], r["probability"]] for number, r in zip(kept, results)]


def _typed(row, features):
    """A CSV row as the scorer's JSON row: numbers as numbers, anything else left as text for the
    scorer to refuse with its own message."""
    out = {}
    for key in features:
        value = (row.get(key) or "").strip()
        if key == "island":
            out[key] = value
            continue
        try:
            out[key] = float(value)
        except ValueError:
            out[key] = value or "NA"
    return out
