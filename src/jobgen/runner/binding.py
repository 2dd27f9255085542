"""Binding a command as Azure does: `${{inputs.x}}` becomes str() of a literal value (a YAML
`true` arrives as `True`) or the local path of a data input, `${{outputs.y}}` a writable
folder, and a `$[[...]]` segment is dropped when an optional input inside it is absent."""

from __future__ import annotations

import re
from typing import Any

REF = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
OPTIONAL = re.compile(r"\$\[\[(.*?)\]\]", re.S)


def literal(value: Any) -> str:
    """What Azure pastes for a literal input: Python's str() of the YAML value."""
    return str(value)


def bind(command: str, inputs: dict[str, str], outputs: dict[str, str]) -> str:
    """``inputs``/``outputs`` are already strings (paths or str() of literals); an input that
    is absent (optional and not given) is missing from ``inputs``."""

    def segment(match: re.Match) -> str:
        body = match.group(1)
        for kind, name in REF.findall(body):
            table = inputs if kind == "inputs" else outputs
            if name not in table:
                return ""
        return body

    command = OPTIONAL.sub(segment, command)

    def ref(match: re.Match) -> str:
        kind, name = match.group(1), match.group(2)
        table = inputs if kind == "inputs" else outputs
        if name not in table:
            raise KeyError(f"{kind}.{name}")
        return table[name]

    return REF.sub(ref, command)
