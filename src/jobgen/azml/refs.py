"""Azure ML's `${{...}}` references and `$[[...]]` optional segments, parsed one way for lint,
the runner and the Azure path.

    ${{inputs.x}}  ${{outputs.y}}  ${{search_space.p}}
    ${{parent.inputs.x}}  ${{parent.outputs.y}}  ${{parent.jobs.step.outputs.y}}
    ${{name}}  ${{output_name}}   (in an output's path: the job's name, the output's name)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REF = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
OPTIONAL_SEGMENT = re.compile(r"\$\[\[(.*?)\]\]", re.S)
# The preview's optional segment, [--flag ${{inputs.x}}]: not v2 syntax (v2 writes $[[...]]).
OLD_OPTIONAL = re.compile(r"(?<![$\[])\[\s*-{1,2}[A-Za-z0-9_-]+[ =]\$\{\{\s*inputs\.[A-Za-z_][A-Za-z0-9_]*\s*\}\}\s*\]")


@dataclass(frozen=True)
class Ref:
    """One reference: ``parent.jobs.train.outputs.model`` -> scope parent, step train, kind outputs, name model."""

    text: str
    scope: str  # "" (the job or component itself) or "parent"
    kind: str  # inputs | outputs | search_space | jobs-less names (name, output_name) | ""
    name: str
    step: str | None = None

    @property
    def valid(self) -> bool:
        return bool(self.kind) and bool(self.name)


def parse(text: str) -> Ref:
    parts = text.split(".")
    if parts[0] == "parent":
        if len(parts) == 3 and parts[1] in ("inputs", "outputs"):
            return Ref(text, "parent", parts[1], parts[2])
        if len(parts) == 5 and parts[1] == "jobs" and parts[3] in ("inputs", "outputs"):
            return Ref(text, "parent", parts[3], parts[4], step=parts[2])
        return Ref(text, "parent", "", "")
    if len(parts) == 2 and parts[0] in ("inputs", "outputs", "search_space"):
        return Ref(text, "", parts[0], parts[1])
    if len(parts) == 1 and parts[0] in ("name", "output_name"):
        return Ref(text, "", "job", parts[0])
    return Ref(text, "", "", "")


def find(text: str) -> list[Ref]:
    """Every reference in ``text``, in order."""
    return [parse(m.group(1)) for m in REF.finditer(text)]


def only(text: object) -> Ref | None:
    """The reference when ``text`` is nothing but one reference (`${{parent.inputs.x}}`), else None."""
    if not isinstance(text, str):
        return None
    match = REF.fullmatch(text.strip())
    return parse(match.group(1)) if match else None


_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def local_path(text: object) -> str | None:
    """A local path as azure-ai-ml reads one - ``./data``, ``data``, ``/abs``, ``file:./data``, ``file://data``
    (as the examples write it; ``file:///abs`` is absolute) - without its prefix; None for assets
    (``azureml:``), URIs and anything that is not a string."""
    if not isinstance(text, str) or not text:
        return None
    if text.startswith("file://"):
        return text[len("file://"):] or None
    if text.startswith("file:"):
        return text[len("file:"):] or None
    return None if _SCHEME.match(text) else text
