"""Models: torchvision ResNets with a new head (transfer learning) and the penguins MLP."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from .errors import TrainError

RESNETS = ("resnet18", "resnet34", "resnet50")
ARCHS = RESNETS + ("mlp",)


class PenguinMLP(nn.Module):
    """5 -> 10 -> 10 -> 3 with ReLU, as in the Databricks lab."""

    def __init__(self, inputs: int = 5, hidden: int = 10, classes: int = 3):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(inputs, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _weights(arch: str):
    import torchvision.models as tvm

    return {"resnet18": tvm.ResNet18_Weights, "resnet34": tvm.ResNet34_Weights,
            "resnet50": tvm.ResNet50_Weights}[arch].DEFAULT


def cached_weights_path(arch: str) -> Path:
    """Where torchvision keeps (or will download) the pretrained weights: $TORCH_HOME/hub/checkpoints."""
    url = _weights(arch).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def build_model(arch: str, num_classes: int, pretrained: bool = False, freeze_backbone: bool = False,
                inputs: int = 5) -> nn.Module:
    if arch == "mlp":
        if pretrained:
            raise TrainError("--pretrained applies to the ResNets only", "use --pretrained false with --arch mlp")
        return PenguinMLP(inputs, 10, num_classes)
    if arch not in RESNETS:
        raise TrainError(f"unknown architecture {arch!r}", f"use one of {', '.join(ARCHS)}")
    import torchvision.models as tvm

    builder = getattr(tvm, arch)
    if pretrained:
        weights = _weights(arch)
        cached = cached_weights_path(arch)
        try:
            model = builder(weights=weights, progress=False)  # uses the cached file when present
        except (OSError, RuntimeError) as exc:  # URLError is an OSError
            if cached.exists():
                raise TrainError(f"pretrained weights {cached} cannot be loaded: {exc}",
                                 "delete the file so it is downloaded again") from None
            raise TrainError(f"pretrained {arch} weights are not in the cache ({cached}) and cannot be "
                             f"downloaded: {exc}", "allow access to download.pytorch.org, put the file in "
                             "$TORCH_HOME/hub/checkpoints, or use --pretrained false") from None
    else:
        model = builder(weights=None)
    if freeze_backbone:
        for p in model.parameters():
            p.requires_grad = False
    model.fc = nn.Linear(model.fc.in_features, num_classes)  # the new head always trains
    return model


def is_convolutional(arch: str) -> bool:
    return arch in RESNETS
