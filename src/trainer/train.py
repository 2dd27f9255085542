"""Entry point Azure ML runs: `python train.py --task images --data ... --model-dir ...`
(or under torchrun / mpirun). See trainkit/engine.py; `python train.py --help`."""

from trainkit.engine import leave, main

if __name__ == "__main__":
    leave(main())  # sys.exit(main()), but see leave() for a rank of a distributed run
