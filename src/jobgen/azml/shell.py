"""What the shell makes of a literal that Azure pastes into a command.

Azure replaces `${{inputs.x}}` (and a sweep's `${{search_space.x}}`) with the value's text and
runs the command with a shell. Whether a value is safe depends on where the reference stands:
unquoted, every shell character counts (`;`, `|`, `$(`, quotes, globs...); inside double quotes
only `$`, a backquote, `"` and `\\` do; inside single quotes only `'` does. Spaces are not shell
syntax: unquoted they split the value into several words, which breaks an option's value
(`--name ${{inputs.name}}` with "my run"), so that case is a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REF = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")

ACTIVE = {
    "unquoted": set(";&|<>`$\\\"'(){}*?[]#~\n"),
    "double quotes": set('$`"\\'),
    "single quotes": {"'"},
}


@dataclass(frozen=True)
class Use:
    """One `${{...}}` in a command: what it names, its quoting, and the word before it."""

    ref: str  # inputs.x, search_space.y, ...
    context: str  # unquoted | double quotes | single quotes
    after_option: bool  # the word before it is an option (--name VALUE, --name=VALUE)


def uses(command: str) -> list[Use]:
    """Every reference in ``command`` with the quoting it stands in (a small POSIX shell scanner:
    quotes and backslashes, which is all that decides how a pasted value is read)."""
    found: list[Use] = []
    state = "unquoted"
    i = 0
    while i < len(command):
        match = REF.match(command, i)
        if match:
            found.append(Use(match.group(1), state, _after_option(command[:i])))
            i = match.end()
            continue
        char = command[i]
        if state == "single quotes":
            state = "unquoted" if char == "'" else state
        elif state == "double quotes":
            if char == "\\":
                i += 1
            elif char == '"':
                state = "unquoted"
        elif char == "\\":
            i += 1
        elif char == "'":
            state = "single quotes"
        elif char == '"':
            state = "double quotes"
        i += 1
    return found


def _after_option(before: str) -> bool:
    words = before.split()
    if not words:
        return False
    last = words[-1]
    glued = not before[-1:].isspace()  # --name=${{inputs.x}}
    return last.startswith("-") and (last.endswith("=") if glued else True)


def problem(value: object, use: Use) -> tuple[str, str, str] | None:
    """(severity, what is wrong, how to fix it) when ``value`` pasted at ``use`` changes the
    command; None when it reads as one plain word. Never repeats the value (it may be a secret)."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    text = str(value)
    active = set(text) & ACTIVE[use.context]
    if use.context == "double quotes" and "\\" in active and not re.search(r'\\([$`"\\\n]|$)', text):
        active.discard("\\")  # inside double quotes a backslash escapes only $ ` " \ and a newline
    active = sorted(active)
    if active:
        shown = " ".join("newline" if c == "\n" else c for c in active)
        return ("error", f"holds {shown}: characters the shell interprets where Azure pastes it into the command "
                         f"({use.context})", HINTS[use.context])
    if use.context == "unquoted" and use.after_option and text.split() != [text]:
        count = len(text.split())
        return ("warning", f"holds spaces: pasted unquoted after an option it becomes {count} word(s), and the "
                           "option gets only the first", HINTS["unquoted"])
    return None


HINTS = {
    "unquoted": "quote the reference in the command (\"${{inputs.x}}\" or '${{inputs.x}}'), or use letters, digits "
                "and . , : / = + @ % - _ only, or pass a uri_file input",
    "double quotes": "put the reference in single quotes ('${{inputs.x}}'), or keep $ ` \" \\ out of the value, or "
                     "pass a uri_file input",
    "single quotes": "keep ' out of the value, or pass a uri_file input",
}
