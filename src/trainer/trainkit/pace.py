"""Each rank's own pace, for finding a straggler.

Under synchronous data-parallel training every rank's samples/s is the slowest rank's: the
others wait for it in the gradient all-reduce. What differs between ranks is the part of a step
that nobody waits for: the time blocked on the DataLoader and the forward pass. ``Pace``
measures both on each rank (forward hooks on the inner module, so that DDP's buffer broadcast at
the start of its forward, a collective, is not counted; CUDA events on a GPU, since kernels run
asynchronously), and ``stragglers`` compares the ranks once per epoch.

A rank's "own samples/s" is its samples divided by (data wait + forward): the rate it would
set if that were all the work. It is not the job's throughput; it ranks the ranks.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

SLOW_FRACTION = 0.6  # a rank below 60% of the median own rate ...
MIN_GAP_S = 0.5      # ... that also costs the job at least half a second per epoch


@dataclass(frozen=True)
class RankPace:
    rank: int
    samples: int
    data_s: float
    forward_s: float

    @property
    def busy_s(self) -> float:
        return self.data_s + self.forward_s

    @property
    def own_rate(self) -> float:
        return self.samples / max(self.busy_s, 1e-9)


class Pace:
    """Data wait and forward time of this rank in the current epoch."""

    def __init__(self, module: nn.Module, device: torch.device, hooks: bool = True):
        self.cuda = device.type == "cuda"
        self.active = False
        self.data_s = 0.0
        self.forward_s = 0.0
        self._start: float | None = None
        self._events: list[tuple[torch.cuda.Event, torch.cuda.Event]] = []
        self._pending: torch.cuda.Event | None = None
        self.hooked = hooks
        if hooks:
            module.register_forward_pre_hook(self._before)
            module.register_forward_hook(self._after)

    def begin(self) -> None:
        self.active, self.data_s, self.forward_s, self._events = True, 0.0, 0.0, []

    def waited_for_data(self, seconds: float) -> None:
        self.data_s += seconds

    def _before(self, *_args) -> None:
        if not self.active:
            return
        if self.cuda:
            self._pending = torch.cuda.Event(enable_timing=True)
            self._pending.record()
        else:
            self._start = time.perf_counter()

    def _after(self, *_args) -> None:
        if not self.active:
            return
        if self.cuda and self._pending is not None:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
            self._events.append((self._pending, end))
            self._pending = None
        elif self._start is not None:
            self.forward_s += time.perf_counter() - self._start
            self._start = None

    def forward_outside(self, seconds: float) -> None:
        """Forward time measured by the caller (a compiled model, where hooks are not used)."""
        if not self.hooked:
            self.forward_s += seconds

    def end(self, rank: int, samples: int) -> RankPace:
        self.active = False
        if self._events:
            torch.cuda.synchronize()
            self.forward_s += sum(a.elapsed_time(b) for a, b in self._events) / 1000.0
            self._events = []
        return RankPace(rank, samples, self.data_s, self.forward_s)


def stragglers(paces: list[RankPace]) -> list[tuple[RankPace, float, str]]:
    """The ranks that hold the others back: own rate below SLOW_FRACTION of the median, and at
    least MIN_GAP_S more busy time than the median rank. Each with the median own rate and its
    likelier cause ("data" or "compute")."""
    if len(paces) < 2:
        return []
    median_rate = statistics.median(p.own_rate for p in paces)
    median_busy = statistics.median(p.busy_s for p in paces)
    slow = []
    for p in paces:
        if p.own_rate < SLOW_FRACTION * median_rate and p.busy_s - median_busy >= MIN_GAP_S:
            slow.append((p, median_rate, "data" if p.data_s >= p.forward_s else "compute"))
    return slow


def straggler_line(epoch: int, slow: tuple[RankPace, float, str]) -> str:
    p, median_rate, cause = slow
    fix = ("more DataLoader workers, or data on a faster mount (download instead of ro_mount)"
           if cause == "data" else "a slower or throttled device, or other work on that node")
    return (f"[train] warning: straggler in epoch {epoch}: rank {p.rank} at {p.own_rate:.1f} own samples/s, "
            f"the median rank {median_rate:.1f} (data wait {p.data_s:.2f} s, forward {p.forward_s:.2f} s); "
            f"likely {fix}")
