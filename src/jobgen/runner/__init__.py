"""The local runner: run a rendered (or hand-written) Azure ML job on this machine as Azure ML
would, under ../shared/RUNTIME_CONTRACT.md: N simulated nodes x P processes with Azure's
variables, the real launchers (plain processes, Open MPI's mpirun, the user's torchrun),
per-rank logs, first failure reported, pipelines and sweeps."""
