"""PyTorch eager behind the production scorer's request checks: the reference the serving benchmark
compares ONNX Runtime with. Not shipped: the scoring script Azure runs (src/trainer/score.py) knows
only ONNX Runtime.

Also an entry script for azureml-inference-server-http (AZUREML_ENTRY_SCRIPT=this file): init()
loads model.pt beside model.json from AZUREML_MODEL_DIR, and run() is score.py's own, so requests
take the same path through the server as the ONNX backends' do. `EAGER_SCRIPT` is its path for
`jobgen.serve.start(..., entry_script=EAGER_SCRIPT)`."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from trainkit.serving import Scorer, _nearest, thread_plan

EAGER_SCRIPT = Path(__file__).resolve()


class EagerScorer(Scorer):
    """The model folder's model.pt in PyTorch eager, channels-last for images."""

    split_resize = False  # PyTorch's OpenMP threads spin on after a forward pass (see Scorer._preprocess)

    def __init__(self, model_dir: Path, threads: int | None = None):
        import torch

        from trainkit.artifacts import load_model_dir

        threads, spinning = thread_plan(threads)
        self.threads, self.spinning, self._pool, self.provider = threads, spinning, None, "pytorch"
        meta = _nearest(Path(model_dir), "model.json")
        if meta is None or not (meta.parent / "model.pt").is_file():
            raise FileNotFoundError(f"no model.pt beside model.json under {model_dir}")
        torch.set_num_threads(threads)
        self.torch_model, self.meta = load_model_dir(meta.parent)
        self.model_file = meta.parent / "model.pt"
        self.classes, self.task, self.pre = list(self.meta.classes), self.meta.task, self.meta.preprocessing
        self._tables()

    def logits(self, batch: np.ndarray) -> np.ndarray:
        import torch

        with torch.inference_mode():
            x = torch.from_numpy(batch)
            if self.task == "images":
                x = x.contiguous(memory_format=torch.channels_last)
            return self.torch_model(x).float().numpy()


# ------------------------------------------------------------------ entry script
import score as _score  # noqa: E402 - src/trainer is on the server's PYTHONPATH

run = _score.run


def init():
    _score.scorer = EagerScorer(os.environ.get("AZUREML_MODEL_DIR", "."))
    _score.log.info("loaded %s (PyTorch eager, %s threads)", _score.scorer.model_file, _score.scorer.threads)
