"""Diagnostics and the documents they point into."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import paths
from ..yamlio import Located
from ..rules import ERROR, WARNING, Rule

__all__ = ["ERROR", "WARNING", "Diagnostic", "Document"]


@dataclass(frozen=True, order=True)
class Diagnostic:
    path: str
    line: int
    severity: str
    message: str
    hint: str | None = None
    source: str = "jobgen"
    rule: str = ""

    def format(self) -> str:
        prefix = "azure-ai-ml: " if self.source == "azure-ai-ml" else ""
        text = f"{self.path}:{self.line}: {self.severity}: {prefix}{self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text + (f" [{self.rule}]" if self.rule else "")


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

    def report(self, rule: Rule, yaml_path: tuple, message: str, hint: str | None = None,
               severity: str | None = None, line: int | None = None) -> None:
        """A finding of ``rule`` at ``yaml_path`` (or ``line``), at the rule's severity unless told."""
        where = line if line is not None else self.line(*yaml_path)
        self.diagnostics.append(Diagnostic(self.shown, where, severity or rule.severity, message, hint,
                                           rule=rule.id))
