"""Entry point Azure ML runs: `python train.py --task images --data ... --model-dir ...`
(or under torchrun / mpirun). See trainkit/engine.py; `python train.py --help`."""

import sys

from trainkit.engine import main

if __name__ == "__main__":
    sys.exit(main())
