"""Training entry point that Azure ML runs (the job's `code:` is this folder).

The generator's default command calls this script with one flag per job input and output
(`--data`, `--epochs`, ..., `--model-dir`, `--checkpoint-dir`). The training itself is the
trainer issue's work (issue 3); until it lands this script refuses to run rather than let a
GPU job "succeed" without training.
"""

import sys


def main() -> int:
    sys.stderr.write("error: src/trainer/train.py: training is not implemented yet (issue 3); "
                     "nothing was trained (hint: render and lint work; run a job after the trainer lands)\n")
    return 2


if __name__ == "__main__":
    sys.exit(main())
