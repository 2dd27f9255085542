"""`generator.py logs RUN_DIR`: every rank's log of a run, merged in the order the lines were
written, each line prefixed with `[node/rank]` (and the step or trial in a pipeline or sweep),
led by the first failure and its traceback. `az ml job stream` shows process 0 only; the rank
that failed first is often another.

Order: the local runner records when it read each line of each rank's log (user_logs/.timeline:
time, rank, the byte offset where the line ends), so the merge is the order the lines were
written, give or take the runner's 50 ms poll. Logs without a timeline (downloaded from Azure)
are merged by the timestamps the lines start with, when they have them, else rank by rank.
"""

from __future__ import annotations

import json
import re
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterator, TextIO

from .errors import JobgenError
from .runner.launch import LINE_END, TIMELINE  # what the launch reads and records, read back the same way

LOG_NAME = re.compile(r"std_log_process_(\d+)\.txt$")
STAMP = re.compile(r"^\[?(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?)")
FOLLOW_POLL = 0.5


@dataclass
class Line:
    time: float | None
    unit: str
    rank: int
    text: str
    seq: int = 0  # the line's place in its own log (ties keep it)


@dataclass
class Unit:
    """One command job, pipeline step or sweep trial of a run: its logs and how it ended."""

    name: str  # "" for a command job; the step's or trial's path otherwise
    folder: Path
    per_node: int = 1
    status: str = ""
    failed_rank: int | None = None
    message: str = ""
    offsets: dict[int, int] = field(default_factory=dict)  # bytes of each rank's log already shown (--follow)
    timeline_offset: int = 0

    @property
    def logs(self) -> Path:
        return self.folder / "user_logs"

    def ranks(self) -> dict[int, Path]:
        found = {}
        for path in self.logs.glob("std_log_process_*.txt"):
            match = LOG_NAME.search(path.name)
            if match:
                found[int(match.group(1))] = path
        return dict(sorted(found.items()))

    def prefix(self, rank: int) -> str:
        where = f"{rank // max(1, self.per_node)}/{rank:02d}"
        return f"[{self.name} {where}]" if self.name else f"[{where}]"


def azure_unit(folder: Path, status: str, per_node: int, message: str = "") -> list[Unit]:
    """A downloaded Azure job (jobs.download(all=True): artifacts/user_logs/...), as one unit.
    A single-process job's `std_log.txt` is rank 0's log."""
    logs = folder / "user_logs"
    single = logs / "std_log.txt"
    if single.is_file() and not any(logs.glob("std_log_process_*.txt")):
        single.rename(logs / "std_log_process_0.txt")
    unit = Unit("", folder, per_node=max(1, per_node), status=status, message=message)
    return [unit]


def find_units(run_dir: Path) -> list[Unit]:
    """The run folder's units: the command job itself, or every step and trial below it."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise JobgenError("no such run folder", where=str(run_dir),
                          hint="pass a folder generator.py run made (runs/<job>-<time>/), or a job name on Azure")
    folders = sorted({p.parent for p in run_dir.rglob("user_logs")
                      if p.is_dir() and not any(part.startswith("attempt_") for part in p.relative_to(run_dir).parts)})
    if not folders:
        raise JobgenError("no user_logs/ in this folder", where=str(run_dir),
                          hint="pass the run folder of generator.py run (it holds user_logs/std_log_process_NN.txt)")
    units = []
    for folder in folders:
        name = "" if folder == run_dir else str(folder.relative_to(run_dir))
        unit = Unit(name, folder)
        _read_run_json(unit)
        units.append(unit)
    return units


def _read_run_json(unit: Unit) -> None:
    try:
        record = json.loads((unit.folder / "run.json").read_text())
    except (OSError, ValueError):
        record = {}
    unit.status = str(record.get("status") or "")
    unit.failed_rank = record.get("failed_rank")
    unit.message = str(record.get("message") or "")
    unit.per_node = int(record.get("processes_per_node") or 1)


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _split(raw: bytes) -> list[tuple[int, str]]:
    """(byte offset where the line ends, text) for each whole line of ``raw``."""
    out, start = [], 0
    for match in LINE_END.finditer(raw):
        out.append((match.end(), _decode(raw[start:match.start()])))
        start = match.end()
    if start < len(raw):
        out.append((len(raw), _decode(raw[start:])))
    return out


def _timeline(unit: Unit) -> list[tuple[float, int, int]]:
    try:
        text = (unit.logs / TIMELINE).read_text()
    except OSError:
        return []
    rows = []
    for row in text.splitlines():
        parts = row.split()
        if len(parts) == 3:
            try:
                rows.append((float(parts[0]), int(parts[1]), int(parts[2])))
            except ValueError:
                continue
    return rows


def _stamp(text: str) -> float | None:
    found = STAMP.match(text)
    if not found:
        return None
    try:
        return datetime.fromisoformat(found.group(1).replace(",", ".").replace(" ", "T")).timestamp()
    except ValueError:
        return None


def unit_lines(unit: Unit) -> list[Line]:
    """Every line of the unit's logs with the time it was written (None: not known)."""
    ranks = unit.ranks()
    raws = {rank: path.read_bytes() for rank, path in ranks.items()}
    ends: dict[tuple[int, int], float] = {(rank, end): t for t, rank, end in _timeline(unit)}
    lines: list[Line] = []
    for rank, raw in raws.items():
        last: float | None = None
        for seq, (end, text) in enumerate(_split(raw)):
            when = ends.get((rank, end))
            if when is None:
                when = _stamp(text)
            if when is None:
                when = last  # a line without a time of its own follows the one before it
            last = when
            lines.append(Line(when, unit.name, rank, text, seq))
    return lines


def merged(units: list[Unit], ranks: set[int] | None = None, grep: re.Pattern | None = None) -> list[Line]:
    lines = [line for unit in units for line in unit_lines(unit)]
    known = [line.time for line in lines if line.time is not None]
    start = min(known) if known else 0.0
    # lines with no time at all come first within their rank (the start of a log with no timestamps)
    lines.sort(key=lambda line: (line.time if line.time is not None else start, line.unit, line.rank, line.seq))
    if ranks is not None:
        lines = [line for line in lines if line.rank in ranks]
    if grep is not None:
        lines = [line for line in lines if grep.search(line.text)]
    return lines


def first_failure(units: list[Unit]) -> tuple[Unit, int, str] | None:
    """The unit and rank that failed first (run.json), else the earliest traceback in any log."""
    from .runner.launch import tail_of

    for unit in units:
        if unit.status in ("Failed", "TimedOut") and unit.failed_rank is not None:
            log = unit.ranks().get(int(unit.failed_rank))
            if log is not None:
                return unit, int(unit.failed_rank), tail_of(log)
    earliest = None
    for unit in units:
        for line in unit_lines(unit):
            if line.text.startswith("Traceback (most recent call last)"):
                if earliest is None or (line.time or 0) < (earliest[0] or 0):
                    earliest = (line.time, unit, line.rank)
                break
    if earliest is None:
        return None
    _, unit, rank = earliest
    return unit, rank, tail_of(unit.ranks()[rank])


def show(run_dir: Path, ranks: set[int] | None = None, grep: str | None = None, follow: bool = False,
         out: TextIO | None = None, units: list[Unit] | None = None) -> int:
    out = out or sys.stdout
    pattern = _pattern(grep)
    units = units if units is not None else find_units(run_dir)
    by_unit = {unit.name: unit for unit in units}
    failure = first_failure(units)
    if failure is not None:
        unit, rank, traceback = failure
        step = f" in step {unit.name}" if unit.name else ""
        what = unit.message
        if unit.failed_rank is None:  # no record of which rank failed: the earliest traceback
            what = (f"rank {rank} (node {rank // max(1, unit.per_node)}), the earliest traceback"
                    + (f"; {unit.message}" if unit.message else ""))
        out.write(f"first failure{step}: {what}\n")
        out.write("".join(f"  | {row}\n" for row in traceback.splitlines()))
        out.write("--- every rank's log, in the order written ---\n")
    shown = 0
    for line in merged(units, ranks, pattern):
        out.write(f"{by_unit[line.unit].prefix(line.rank)} {line.text}\n")
        shown += 1
    out.flush()
    if follow:
        _follow(units, ranks, pattern, out)
    return 0


def _pattern(grep: str | None) -> re.Pattern | None:
    if grep is None:
        return None
    try:
        return re.compile(grep)
    except re.error as exc:
        raise JobgenError(f"--grep {grep!r} is not a regular expression ({exc})", where="--grep",
                          hint="e.g. --grep 'Error|Traceback'") from None


def _running(units: list[Unit]) -> bool:
    for unit in units:
        _read_run_json(unit)
    return any(unit.status in ("", "Preparing", "Running") for unit in units)


def _follow(units: list[Unit], ranks: set[int] | None, pattern: re.Pattern | None, out: TextIO) -> None:
    """New lines as they are written, until every unit of the run has ended (Ctrl-C stops)."""
    for unit in units:
        unit.offsets = {rank: path.stat().st_size for rank, path in unit.ranks().items()}
    try:
        while True:
            running = _running(units)
            for unit in units:
                for rank, path in unit.ranks().items():
                    if ranks is not None and rank not in ranks:
                        continue
                    for text in _new_lines(unit, rank, path):
                        if pattern is None or pattern.search(text):
                            out.write(f"{unit.prefix(rank)} {text}\n")
            out.flush()
            if not running:
                return
            time.sleep(FOLLOW_POLL)
    except KeyboardInterrupt:
        return


def _new_lines(unit: Unit, rank: int, path: Path) -> Iterator[str]:
    start = unit.offsets.get(rank, 0)
    try:
        with open(path, "rb") as fh:
            fh.seek(start)
            raw = fh.read()
    except OSError:
        return
    whole = raw[:max((m.end() for m in LINE_END.finditer(raw)), default=0)]
    unit.offsets[rank] = start + len(whole)
    for _, text in _split(whole):
        yield text
