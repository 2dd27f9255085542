"""One exception family. A ``JobgenError`` is the user's to fix: the CLI prints it as one
line (what is wrong, where, how to fix it) and exits 1. Anything else is a bug and keeps
its traceback."""

from __future__ import annotations

from dataclasses import dataclass


class JobgenError(Exception):
    """A problem in the user's input. ``where`` names the file, flag or value path."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.where = where
        self.hint = hint

    def line(self) -> str:
        text = f"{self.where}: {self.message}" if self.where else self.message
        if self.hint:
            text += f" (hint: {self.hint})"
        return text

    def __str__(self) -> str:  # pragma: no cover - convenience
        return self.line()


@dataclass(frozen=True)
class Problem:
    """One problem found while building a spec; several are collected before reporting."""

    where: str
    message: str
    hint: str | None = None
    rule: str = ""  # the lint rule that decides the same fact (rules.py), when there is one

    def line(self) -> str:
        text = f"{self.where}: {self.message}"
        if self.hint:
            text += f" (hint: {self.hint})"
        return text + (f" [{self.rule}]" if self.rule else "")


class SpecError(JobgenError):
    """All the problems found in a set of values, reported together."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        first = self.problems[0]
        super().__init__(first.message, where=first.where, hint=first.hint)

    def line(self) -> str:
        # One line per problem; with a single problem this is the one clear line.
        return "\n".join(p.line() for p in self.problems)


class LintFailed(JobgenError):
    """Raised when rendered output does not pass lint; the diagnostics were printed."""
