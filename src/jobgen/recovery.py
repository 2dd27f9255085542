"""`generator.py submit --stream --retry N`: why a workspace job failed, and whether running it
again can help.

A failed job is classified from its error (the run's error, as `jobs.stream` reports it) and its
logs (every rank's user_logs), in this order, the first match winning:

    preempted      a low-priority (spot) node was taken back               recoverable
    node-failure   a node was lost or unhealthy                           recoverable
    comm-timeout   an NCCL / gloo collective or its watchdog timed out    recoverable
    capacity       no VMs of the size could be allocated just now          recoverable
    quota          the subscription's quota for the size is used up        not (request more)
    out-of-memory  CUDA (or the host) ran out of memory                    not (a smaller batch)
    user-error     a Python traceback in the job's own code                not (fix the code)
    unknown        none of these                                          not

Only recoverable kinds are resubmitted: the same job, with every folder output pinned to the
first attempt's storage path, so that the trainer finds its checkpoint and resumes
(`--checkpoint-dir ${{outputs.checkpoint_dir}}`), and after a preemption optionally on another
(dedicated) compute (`--fallback-compute NAME`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

RULES: tuple[tuple[str, bool, re.Pattern, str], ...] = (
    ("preempted", True, re.compile(r"preempt|low[- ]?priority node.*(?:taken|reclaim|evict)|spot.*evict|"
                                   r"NodePreempted", re.I),
     "resubmitted; it resumes from the checkpoint in its outputs"),
    ("node-failure", True, re.compile(r"node (?:failure|failed|unhealthy|unavailable|lost)|NodeFailure|"
                                      r"lost (?:contact|connection) (?:with|to) (?:the )?node|hardware failure", re.I),
     "resubmitted on other nodes; it resumes from its checkpoint"),
    ("comm-timeout", True, re.compile(r"Watchdog caught collective operation timeout|NCCL.{0,80}time(?:d )?out|"
                                      r"ProcessGroup(?:NCCL|Gloo).{0,80}time(?:d )?out|Connection reset by peer.{0,40}"
                                      r"gloo|collective operation timeout", re.I),
     "resubmitted (a collective timed out: often one slow or lost node)"),
    ("capacity", True, re.compile(r"AllocationFailed|ZonalAllocationFailed|OverconstrainedAllocationRequest|"
                                  r"insufficient capacity|not enough capacity|SkuNotAvailable", re.I),
     "resubmitted: capacity comes and goes"),
    ("quota", False, re.compile(r"quota", re.I),
     "request more quota for the VM family (Azure portal: Quotas), or use another size"),
    ("out-of-memory", False, re.compile(r"CUDA out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED|"
                                        r"Killed process \d+ .*out of memory|oom[-_ ]kill", re.I),
     "not resubmitted: it would run out of memory again; lower the batch size per process or use a larger GPU"),
    ("user-error", False, re.compile(r"Traceback \(most recent call last\)"),
     "not resubmitted: fix the error in the code (generator.py run reproduces it here)"),
)


@dataclass
class Verdict:
    kind: str
    recoverable: bool
    why: str  # the line of the error or log that decided it
    advice: str

    def line(self) -> str:
        return f"{self.kind} ({self.why}); {self.advice}"


def classify(error_text: str, logs: dict[str, str] | None = None) -> Verdict:
    """The kind of failure, from the run's error first, then each rank's log."""
    sources = [error_text or "", *(logs or {}).values()]
    for kind, recoverable, pattern, advice in RULES:
        for text in sources:
            found = pattern.search(text)
            if found:
                why = _exception_line(text, found.end()) if kind == "user-error" else _line_of(text, found.start())
                return Verdict(kind, recoverable, why, advice)
    return Verdict("unknown", False, (error_text or "no error reported").strip().splitlines()[0][:200]
                   if (error_text or "").strip() else "no error reported",
                   "not resubmitted: the cause is not one a retry fixes; see the logs (generator.py logs JOB_NAME)")


def _line_of(text: str, at: int) -> str:
    start = text.rfind("\n", 0, at) + 1
    end = text.find("\n", at)
    line = text[start:end if end >= 0 else len(text)].strip().strip('",')
    return line[:200]


def _exception_line(text: str, after: int) -> str:
    """The exception a traceback ends with: its first line that is not indented."""
    for row in text[after:].splitlines()[1:]:
        if row and not row[0].isspace():
            return row.strip()[:200]
    return "a traceback"


def error_text_of(exc: BaseException | None) -> str:
    """The run's error as jobs.stream raises it (a JobException holding the error's JSON): its
    messages, one per line, or the text as it is."""
    if exc is None:
        return ""
    text = str(getattr(exc, "message", "") or exc)
    start = text.find("{")
    if start >= 0:
        import json

        try:
            data = json.loads(text[start:text.rfind("}") + 1])
        except ValueError:
            data = None
        messages: list[str] = []

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "message" and isinstance(value, str) and value.strip():
                        messages.append(value.strip())
                    else:
                        walk(value)
            elif isinstance(node, list):
                for item in node:
                    walk(item)

        walk(data)
        if messages:
            return "\n".join(messages)
    return text.replace("\\n", "\n")


def default_output_path(job_name: str, output: str) -> str:
    """Where Azure keeps a job's named output when its YAML gives no path."""
    return f"azureml://datastores/workspaceblobstore/paths/azureml/{job_name}/{output}/"


FOLDER_TYPES = ("uri_folder", "custom_model", "mlflow_model", "mltable")


def pin_outputs(entity: Any, first_job: str) -> list[str]:
    """Every folder output of ``entity`` pointed at the first attempt's storage (its own path when
    the YAML gave one): the next attempt reads what the first wrote, its checkpoint included."""
    pinned = []
    for name, output in (getattr(entity, "outputs", None) or {}).items():
        if name == "default" or output is None or isinstance(output, str):
            continue
        if (getattr(output, "type", None) or "uri_folder") not in FOLDER_TYPES:
            continue
        if not getattr(output, "path", None):
            output.path = default_output_path(first_job, name)
        pinned.append(name)
    return pinned


@dataclass
class Attempt:
    attempt: int
    job: str
    status: str
    kind: str | None = None
    recoverable: bool | None = None
    why: str = ""
    action: str = ""
    compute: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, "")}


@dataclass
class RetryPlan:
    retries: int = 0
    fallback_compute: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
