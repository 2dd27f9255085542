"""Launcher detection: torchrun -> Azure pytorch variables -> Open MPI -> single process."""

import pytest

from trainkit.errors import LauncherError
from trainkit.launcher import AZURE_MPI_PORT, DistEnv, detect


def test_single_process():
    assert detect({}) == DistEnv()


def test_torchrun_wins_over_everything():
    env = {"TORCHELASTIC_RUN_ID": "x", "RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "4",
           "GROUP_RANK": "1", "MASTER_ADDR": "10.0.0.4", "MASTER_PORT": "29500", "OMPI_COMM_WORLD_RANK": "0"}
    d = detect(env)
    assert (d.launcher, d.rank, d.local_rank, d.world_size, d.node_rank, d.local_world_size) == ("torchrun", 5, 1, 8, 1, 4)


def test_azure_pytorch_distribution_variables():
    # node 1 of 2, 4 processes per node: RANK = NODE_RANK * P + LOCAL_RANK
    env = {"RANK": "6", "LOCAL_RANK": "2", "WORLD_SIZE": "8", "NODE_RANK": "1", "MASTER_ADDR": "10.0.0.4",
           "MASTER_PORT": "6105"}
    d = detect(env)
    assert (d.launcher, d.rank, d.node_rank, d.local_world_size, d.master_port) == ("azure-pytorch", 6, 1, 4, 6105)


def test_open_mpi_on_one_node_uses_azures_port():
    env = {"OMPI_COMM_WORLD_RANK": "1", "OMPI_COMM_WORLD_SIZE": "2", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
           "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "AZ_BATCHAI_MPI_MASTER_NODE": "localhost"}
    d = detect(env)
    assert (d.launcher, d.rank, d.node_rank, d.master_addr, d.master_port) == ("mpi", 1, 0, "localhost", AZURE_MPI_PORT)
    assert d.torch_environ()["RANK"] == "1" and d.torch_environ()["WORLD_SIZE"] == "2"


def test_open_mpi_on_several_nodes_reads_az_batch_master_node():
    env = {"OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
           "OMPI_COMM_WORLD_LOCAL_SIZE": "4", "OMPI_COMM_WORLD_NODE_RANK": "3",  # not the node rank
           "AZ_BATCH_MASTER_NODE": "10.0.0.4:6105", "AZ_BATCHAI_MPI_MASTER_NODE": "10.0.0.4"}
    d = detect(env)
    assert (d.node_rank, d.master_addr, d.master_port) == (1, "10.0.0.4", 6105)


@pytest.mark.parametrize("env,names", [
    ({"RANK": "0"}, ["WORLD_SIZE", "RANK=0"]),
    ({"RANK": "3", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "a", "MASTER_PORT": "1"}, ["rank 3 outside"]),
    ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, ["MASTER_ADDR", "WORLD_SIZE=2"]),
    ({"RANK": "x", "WORLD_SIZE": "2"}, ["RANK='x'"]),
    ({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "0",
      "OMPI_COMM_WORLD_LOCAL_SIZE": "2"}, ["AZ_BATCH_MASTER_NODE", "OMPI_COMM_WORLD_SIZE=4"]),
    ({"OMPI_COMM_WORLD_RANK": "0"}, ["OMPI_COMM_WORLD_SIZE is missing"]),
    ({"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "0",
      "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "AZ_BATCH_MASTER_NODE": "nohost"}, ["not ip:port"]),
])
def test_inconsistent_variables_name_what_was_seen(env, names):
    with pytest.raises(LauncherError) as info:
        detect(env)
    for name in names:
        assert name in info.value.line()


def test_trainer_never_imports_the_generator():
    """src/trainer is what Azure uploads: it must stand alone."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "src" / "trainer"
    for path in root.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+jobgen\b", text, re.M), path


@pytest.mark.full
def test_cached_images_match_decoding_every_epoch(tmp_path):
    """The decode-once cache gives the validation tensors the per-epoch ImageFolder path gives,
    and augmented training samples of the same shape."""
    import torch

    from helpers.datasets import make_images
    from trainkit.data import load_images

    make_images(tmp_path / "d", per_class_train=2, per_class_val=2, size=80)
    cached = load_images(tmp_path / "d", cache="on")
    plain = load_images(tmp_path / "d", cache="off")
    assert type(cached.train).__name__ == "CachedImages" and type(plain.train).__name__ == "ImageFiles"
    mean = torch.tensor(cached.preprocessing["mean"]).view(3, 1, 1) * 255
    std = torch.tensor(cached.preprocessing["std"]).view(3, 1, 1) * 255
    for i in range(len(plain.val)):
        x_cached, y_cached = cached.val[i]
        x_plain, y_plain = plain.val[i]
        assert y_cached == y_plain and x_cached.dtype == torch.uint8
        assert ((x_cached.float() - mean) / std - x_plain).abs().max() < 0.05
    x, _ = cached.train[0]
    assert x.shape == (3, 224, 224) and x.dtype == torch.uint8
