"""Diagnostics and the documents they point into."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from ..yamlio import Located

ERROR = "error"
WARNING = "warning"

SCHEMAS = {
    "command_job": "https://azuremlschemas.azureedge.net/latest/commandJob.schema.json",
    "pipeline_job": "https://azuremlschemas.azureedge.net/latest/pipelineJob.schema.json",
    "sweep_job": "https://azuremlschemas.azureedge.net/latest/sweepJob.schema.json",
    "command_component": "https://azuremlschemas.azureedge.net/latest/commandComponent.schema.json",
    "environment": "https://azuremlschemas.azureedge.net/latest/environment.schema.json",
    "compute": "https://azuremlschemas.azureedge.net/latest/amlCompute.schema.json",
    "data": "https://azuremlschemas.azureedge.net/latest/data.schema.json",
    "model": "https://azuremlschemas.azureedge.net/latest/model.schema.json",
    "online_endpoint": "https://azuremlschemas.azureedge.net/latest/managedOnlineEndpoint.schema.json",
    "online_deployment": "https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json",
}


@dataclass(frozen=True, order=True)
class Diagnostic:
    path: str
    line: int
    severity: str
    message: str
    hint: str | None = None
    source: str = "jobgen"

    def format(self) -> str:
        prefix = "azure-ai-ml: " if self.source == "azure-ai-ml" else ""
        text = f"{self.path}:{self.line}: {self.severity}: {prefix}{self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


@dataclass
class Document:
    """One YAML file being linted (possibly not yet on disk: rendered output is linted
    before it is written)."""

    path: Path  # absolute; relative references resolve against path.parent
    text: str
    located: Located | None = None
    kind: str | None = None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    display_as: Path | None = None  # where the file will live, when linted from a staging folder

    @property
    def data(self) -> Any:
        return self.located.data if self.located else None

    @property
    def shown(self) -> str:
        return paths.display(self.display_as or self.path)

    def line(self, *yaml_path: Any) -> int:
        return self.located.line(tuple(yaml_path)) if self.located else 1

    def error(self, yaml_path: tuple, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(self.shown, self.line(*yaml_path), ERROR, message, hint))

    def warning(self, yaml_path: tuple, message: str, hint: str | None = None) -> None:
        self.diagnostics.append(Diagnostic(self.shown, self.line(*yaml_path), WARNING, message, hint))
