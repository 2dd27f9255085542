"""Model folders made directly (no training): the real model classes with seeded random weights,
saved and exported exactly as the trainer and export_onnx.py do. Serving and benchmarks need
the files, not the accuracy."""

from __future__ import annotations

from pathlib import Path


def model_folder(dest: Path, task: str, seed: int = 0) -> Path:
    import torch

    from trainkit import data as data_mod
    from trainkit.artifacts import save_model_dir
    from trainkit.meta import ModelCard
    from trainkit.models import build_model

    torch.manual_seed(seed)
    if task == "penguins":
        model = build_model("mlp", 3, inputs=5)
        meta = {"task": "penguins", "arch": "mlp", "classes": list(data_mod.PENGUIN_SPECIES), "input_shape": [5],
                "preprocessing": data_mod.penguin_preprocessing(), "metrics": {"val_accuracy": 0.5},
                "mlflow_run_id": None, "training": {"seed": 0}}
    else:
        model = build_model("resnet18", 2)
        meta = {"task": "images", "arch": "resnet18", "classes": ["chickens", "turkeys"],
                "input_shape": [3, 224, 224], "preprocessing": data_mod.image_preprocessing(),
                "metrics": {"val_accuracy": 0.5}, "mlflow_run_id": None, "training": {"seed": 0}}
    save_model_dir(dest, model.eval(), ModelCard.from_dict(meta))
    return dest


def exported(model_dir: Path, data: Path, dest: Path, int8: bool = True) -> Path:
    from trainkit import onnx_export

    onnx_export.run(model_dir, data, dest, samples=16, int8=int8)
    return dest
