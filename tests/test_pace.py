"""Each rank's own pace and the straggler it names (trainkit/pace.py), and the live view that
keeps the trainer's warning on screen."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src" / "trainer"))

from trainkit.pace import Pace, RankPace, straggler_line, stragglers  # noqa: E402


def ranks(*busy: tuple[float, float], samples: int = 1000) -> list[RankPace]:
    return [RankPace(r, samples, d, f) for r, (d, f) in enumerate(busy)]


@pytest.mark.parametrize("paces, slow_ranks, cause", [
    (ranks((0.2, 1.0), (0.2, 1.0), (0.2, 1.0), (0.2, 1.0)), [], None),           # even
    (ranks((0.2, 1.0), (0.2, 1.1), (0.25, 0.9), (0.2, 1.3)), [], None),          # noise
    (ranks((0.2, 1.0), (0.2, 1.0), (2.5, 1.0), (0.2, 1.0)), [2], "data"),        # slow input
    (ranks((0.1, 1.0), (0.1, 3.0), (0.1, 1.0), (0.1, 1.0)), [1], "compute"),     # slow device
    (ranks((0.01, 0.02), (0.01, 0.2)), [], None),  # 10x slower but costs 0.2 s an epoch: not worth a line
    (ranks((0.2, 1.0)), [], None),                  # one rank has nobody to lag behind
])
def test_stragglers_are_ranks_well_below_the_median_that_cost_time(paces, slow_ranks, cause):
    found = stragglers(paces)
    assert [p.rank for p, _, _ in found] == slow_ranks
    if cause:
        assert found[0][2] == cause


def test_the_straggler_line_names_rank_rates_and_a_fix():
    [slow] = stragglers(ranks((0.2, 1.0), (0.2, 1.0), (2.5, 1.0), (0.2, 1.0)))
    line = straggler_line(3, slow)
    assert line.startswith("[train] warning: straggler in epoch 3: rank 2 at 285.7 own samples/s")
    assert "median rank 833.3" in line and "data wait 2.50 s" in line and "DataLoader workers" in line


def test_pace_counts_data_waits_and_forward_time_only_while_active():
    import torch
    from torch import nn

    class Slow(nn.Module):
        def forward(self, x):
            time.sleep(0.05)
            return x

    model = Slow()
    pace = Pace(model, torch.device("cpu"))
    model(torch.zeros(1))  # before begin(): not counted
    pace.begin()
    pace.waited_for_data(0.3)
    model(torch.zeros(1))
    model(torch.zeros(1))
    mine = pace.end(rank=1, samples=64)
    model(torch.zeros(1))  # after end(): not counted
    assert mine.data_s == pytest.approx(0.3)
    assert 0.1 <= mine.forward_s < 0.3
    assert mine.own_rate == pytest.approx(64 / (0.3 + mine.forward_s))


def test_live_view_keeps_a_ranks_warning_under_the_table():
    from jobgen.runner.launch import Proc
    from jobgen.runner.progress import LiveReporter

    stream = io.StringIO()
    reporter = LiveReporter(stream)
    reporter.task_started("train", "2 node(s) x 2 process(es), pytorch")
    rank0, rank3 = Proc(0, 0, 0, Path("x"), state="running"), Proc(3, 1, 1, Path("x"), state="running")
    reporter.proc_line("train", rank3, "[train] rank 3: epoch 2/5 own_samples/s=285.7 data_s=2.500 forward_s=1.000")
    reporter.proc_line("train", rank0, "[train] warning: straggler in epoch 2: rank 3 at 285.7 own samples/s")
    reporter.proc_line("train", rank0, "[train] epoch 3/5 train_loss=0.1 samples/s=800.0")  # replaces the row's line
    reporter.close()
    screen = stream.getvalue().rsplit("jobgen run", 1)[1]  # the last frame drawn
    assert "node 1 rank 03" in screen and "own_samples/s=285.7" in screen
    assert "train node 0 rank 00: [train] warning: straggler in epoch 2: rank 3" in screen
