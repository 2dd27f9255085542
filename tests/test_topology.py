"""resolve_topology: distribution x launcher x processes per node x VM size -> what Azure starts
on each node. A table of the cases a user meets, then every combination against the rules the
README states."""

from __future__ import annotations

import itertools

import pytest

from jobgen import vmsizes
from jobgen.spec import resolve_topology

T4 = vmsizes.lookup("Standard_NC4as_T4_v3")  # 1 GPU
T4X4 = vmsizes.lookup("Standard_NC64as_T4_v3")  # 4 GPUs
CPU = vmsizes.lookup("Standard_DS3_v2")  # 4 vCPUs, no GPU

# (distribution, launcher, nodes, --gpus, process_count_per_instance, VM) ->
#   (processes per node, Azure's process_count_per_instance, problem text or None)
TABLE = [
    (("pytorch", "per-process", 2, None, None, T4X4), (4, 4, None)),  # default: the VM's GPUs
    (("pytorch", "per-process", 2, 2, None, T4X4), (2, 2, "leave 2 of the 4 GPUs")),  # fewer: a warning
    (("pytorch", "per-process", 1, 8, None, T4X4), (8, 8, "8 processes per node but Standard_NC64as_T4_v3 has 4")),
    (("pytorch", "per-process", 1, None, 2, T4X4), (2, 2, "leave 2 of the 4 GPUs")),
    (("pytorch", "per-process", 1, 2, 4, T4X4), (4, 4, "is 4 but processes per node (--gpus) is 2")),
    (("mpi", "per-process", 2, None, None, T4), (1, 1, None)),
    (("mpi", "per-process", 2, None, None, None), (1, 1, None)),  # no VM known: one process
    (("pytorch", "per-process", 1, None, None, CPU), (1, 1, None)),  # CPU sizes: one process by default
    (("pytorch", "per-process", 1, 8, None, CPU), (8, 8, "8 processes per node on Standard_DS3_v2, which has 4 vCPUs")),
    (("pytorch", "torchrun", 2, None, None, T4X4), (4, 1, None)),  # one torchrun per node, 4 workers
    (("pytorch", "torchrun", 2, None, 2, T4X4), (4, 1, "must be 1 with the torchrun launcher")),
    (("mpi", "torchrun", 1, None, None, T4X4), (4, 1, "the torchrun launcher needs distribution pytorch")),
    (("none", "torchrun", 2, None, None, T4X4), (4, 1, "torchrun on 2 nodes needs distribution pytorch")),
    (("none", "torchrun", 1, None, None, T4X4), (4, 1, None)),  # torchrun --standalone on one node
    (("none", "per-process", 1, None, None, T4X4), (1, 1, "leaves 3 of the 4 GPUs")),
    (("none", "per-process", 1, 4, None, T4X4), (1, 1, "4 processes per node need a distribution")),
    (("none", "per-process", 3, None, None, None), (1, 1, "3 nodes without a distribution")),
]


@pytest.mark.parametrize("given,expected", TABLE, ids=[f"{g[0]}-{g[1]}-{g[2]}n-{g[3]}g-{g[4]}p-"
                                                       f"{g[5].name if g[5] else 'novm'}" for g, _ in TABLE])
def test_topology_table(given, expected):
    topology = resolve_topology(*given)
    processes, count, problem = expected
    assert (topology.processes, topology.process_count_per_instance) == (processes, count)
    texts = [message for _, message, _, _, _ in topology.problems]
    if problem is None:
        assert not texts, texts
    else:
        assert any(problem in t for t in texts), texts


@pytest.mark.parametrize("distribution,launcher", list(itertools.product(("pytorch", "mpi", "none"),
                                                                          ("per-process", "torchrun"))))
def test_every_combination_follows_the_rules(distribution, launcher):
    for nodes, gpus, count, vm in itertools.product((1, 2), (None, 1, 4), (None, 1, 2), (None, T4, T4X4, CPU)):
        t = resolve_topology(distribution, launcher, nodes, gpus, count, vm)
        errors = [m for _, m, _, _, severity in t.problems if severity == "error"]
        assert t.processes and t.processes >= 1
        if launcher == "torchrun":
            assert t.process_count_per_instance == 1  # Azure starts one torchrun per node
        elif distribution in ("pytorch", "mpi"):
            assert t.process_count_per_instance == t.processes == (count or gpus or t.processes)
        else:
            assert t.processes == 1 and t.azure_distribution is None
        if vm is not None and vm.gpus and t.processes > vm.whole_gpus:
            assert any("GPU" in e for e in errors), (distribution, launcher, nodes, gpus, count, vm.name)
        if distribution == "none" and nodes > 1:
            assert errors
        if launcher == "torchrun" and distribution == "mpi":
            assert any("needs distribution pytorch" in e for e in errors)
