"""Which launcher started this process, and what rank it is.

One detector turns the launcher's variables into a frozen ``DistEnv``, in a fixed order
(as Lightning's ClusterEnvironment and accelerate do): torchrun -> Azure ML `pytorch`
distribution -> Open MPI (Azure ML `mpi` distribution) -> a single process. Missing or
inconsistent variables raise ``LauncherError`` naming the variables seen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

from .errors import LauncherError

AZURE_MPI_PORT = 54965  # the port Azure ML's own MPI helpers use on one node

_TORCH_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "NODE_RANK",
               "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID")
_MPI_VARS = ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
             "OMPI_COMM_WORLD_LOCAL_SIZE", "AZ_BATCH_MASTER_NODE", "AZ_BATCHAI_MPI_MASTER_NODE", "MASTER_PORT")


@dataclass(frozen=True)
class DistEnv:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    node_rank: int = 0
    master_addr: str | None = None
    master_port: int | None = None
    launcher: str = "single"  # torchrun | azure-pytorch | mpi | single

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def torch_environ(self) -> dict[str, str]:
        """The variables torch.distributed's env:// rendezvous reads."""
        out = {"RANK": str(self.rank), "LOCAL_RANK": str(self.local_rank), "WORLD_SIZE": str(self.world_size),
               "LOCAL_WORLD_SIZE": str(self.local_world_size)}
        if self.master_addr:
            out["MASTER_ADDR"] = self.master_addr
        if self.master_port:
            out["MASTER_PORT"] = str(self.master_port)
        return out


def _seen(env: Mapping[str, str], names: tuple[str, ...]) -> str:
    found = [f"{n}={env[n]}" for n in names if n in env]
    return ", ".join(found) if found else "none"


def _int(env: Mapping[str, str], name: str, names: tuple[str, ...]) -> int:
    value = env.get(name)
    if value is None:
        raise LauncherError(f"launcher variable {name} is missing (seen: {_seen(env, names)})",
                            "start the script with torchrun, an Azure ML distribution, or mpirun; or unset the partial variables")
    try:
        return int(value)
    except ValueError:
        raise LauncherError(f"launcher variable {name}={value!r} is not a number (seen: {_seen(env, names)})") from None


def detect(env: Mapping[str, str] | None = None) -> DistEnv:
    env = os.environ if env is None else env
    if "TORCHELASTIC_RUN_ID" in env or ("GROUP_RANK" in env and "LOCAL_WORLD_SIZE" in env):
        d = _from_torch(env, "torchrun")
    elif "RANK" in env or "WORLD_SIZE" in env:
        d = _from_torch(env, "azure-pytorch")
    elif any(n.startswith("OMPI_COMM_WORLD_") for n in env):
        d = _from_mpi(env)
    else:
        return DistEnv()
    _check(d, env)
    return d


def _from_torch(env: Mapping[str, str], launcher: str) -> DistEnv:
    names = _TORCH_VARS
    rank = _int(env, "RANK", names)
    world = _int(env, "WORLD_SIZE", names)
    local_rank = _int(env, "LOCAL_RANK", names) if "LOCAL_RANK" in env or world > 1 else 0
    if launcher == "torchrun":
        local_world = _int(env, "LOCAL_WORLD_SIZE", names)
        node_rank = _int(env, "GROUP_RANK", names) if "GROUP_RANK" in env else rank // max(local_world, 1)
    else:
        node_rank = _int(env, "NODE_RANK", names) if "NODE_RANK" in env else 0
        if "LOCAL_WORLD_SIZE" in env:
            local_world = _int(env, "LOCAL_WORLD_SIZE", names)
        elif node_rank > 0:
            local_world = (rank - local_rank) // node_rank  # RANK = NODE_RANK * P + LOCAL_RANK
        else:
            local_world = world  # node 0 cannot tell; an upper bound is safe for sizing workers
    addr = env.get("MASTER_ADDR")
    port = env.get("MASTER_PORT")
    if world > 1 and (not addr or not port):
        raise LauncherError(f"{launcher}: WORLD_SIZE={world} but MASTER_ADDR/MASTER_PORT are not set "
                            f"(seen: {_seen(env, names)})", "the launcher sets them; do not start ranks by hand")
    try:
        port_n = int(port) if port else None
    except ValueError:
        raise LauncherError(f"MASTER_PORT={port!r} is not a port number (seen: {_seen(env, names)})") from None
    return DistEnv(rank, local_rank, world, local_world, node_rank, addr, port_n, launcher)


def _from_mpi(env: Mapping[str, str]) -> DistEnv:
    names = _MPI_VARS
    rank = _int(env, "OMPI_COMM_WORLD_RANK", names)
    world = _int(env, "OMPI_COMM_WORLD_SIZE", names)
    local_rank = _int(env, "OMPI_COMM_WORLD_LOCAL_RANK", names)
    local_world = _int(env, "OMPI_COMM_WORLD_LOCAL_SIZE", names)
    node_rank = rank // max(local_world, 1)  # OMPI_COMM_WORLD_NODE_RANK is not the node rank
    addr, port = None, None
    if "AZ_BATCH_MASTER_NODE" in env:  # set by Azure only with more than one node: "ip:port"
        value = env["AZ_BATCH_MASTER_NODE"]
        addr, _, port_text = value.rpartition(":")
        if not addr or not port_text.isdigit():
            raise LauncherError(f"AZ_BATCH_MASTER_NODE={value!r} is not ip:port (seen: {_seen(env, names)})")
        port = int(port_text)
    elif world > 1:
        addr = env.get("AZ_BATCHAI_MPI_MASTER_NODE")
        if addr is None:
            if local_world != world:
                raise LauncherError(f"mpi: {world} ranks on several nodes but neither AZ_BATCH_MASTER_NODE nor "
                                    f"AZ_BATCHAI_MPI_MASTER_NODE is set (seen: {_seen(env, names)})",
                                    "export the head node's address to every rank (mpirun -x AZ_BATCH_MASTER_NODE=ip:port)")
            addr = "localhost"
        port = int(env["MASTER_PORT"]) if env.get("MASTER_PORT", "").isdigit() else AZURE_MPI_PORT
    return DistEnv(rank, local_rank, world, local_world, node_rank, addr, port, "mpi")


def _check(d: DistEnv, env: Mapping[str, str]) -> None:
    names = _TORCH_VARS if d.launcher != "mpi" else _MPI_VARS
    problems = []
    if d.world_size < 1:
        problems.append(f"world size {d.world_size} < 1")
    if not 0 <= d.rank < d.world_size:
        problems.append(f"rank {d.rank} outside 0..{d.world_size - 1}")
    if not 0 <= d.local_rank < max(d.local_world_size, 1):
        problems.append(f"local rank {d.local_rank} outside 0..{d.local_world_size - 1}")
    if d.local_world_size > d.world_size:
        problems.append(f"local world size {d.local_world_size} above world size {d.world_size}")
    if problems:
        raise LauncherError(f"{d.launcher}: inconsistent launcher variables: {'; '.join(problems)} "
                            f"(seen: {_seen(env, names)})")
